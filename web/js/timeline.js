// The replay's timeline under the map: the site's worst density against the warning level over the window (or
// the selected zone's), ticket opened/closed marks, a time axis in site time, and the replay cursor. Drawn as
// inline SVG across the same width as the time slider laid over it, so a mark sits where the slider's thumb
// would be at that time.

import { esc, fmtClock, LEVEL_COLOR } from './api.js';

const NS = 'http://www.w3.org/2000/svg';
const H = 46; // plot height in px; marks above it
const BUCKETS = 240;

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

/** Worst ratio (density / warning) per bucket over `zones` (ids), 0 where no zone has a reading. */
export function worstRatio(data, thresholds, zones, from, to, buckets = BUCKETS) {
  const out = new Array(buckets).fill(null);
  const span = to - from;
  for (const id of zones) {
    const th = thresholds.get(id);
    if (!th || !(th.warning > 0)) continue;
    for (const p of data.get(id) || []) {
      if (p.t < from || p.t > to || p.density == null) continue;
      const b = Math.min(buckets - 1, Math.floor(((p.t - from) / span) * buckets));
      const r = p.density / th.warning;
      if (out[b] == null || r > out[b]) out[b] = r;
    }
  }
  return out;
}

function levelOfRatio(r, th) {
  if (r == null) return 'unknown';
  const d = r * th.warning;
  if (d >= th.critical) return 'critical';
  if (d >= th.warning) return 'warning';
  if (d >= th.notice) return 'notice';
  return 'normal';
}

/**
 * Draws into `box` (a positioned element). `opts`: from, to (ms), data (zone → [{t, density}]), thresholds
 * (zone → {notice, warning, critical}), zones (ids to aggregate), tickets ([{id, level, opened_at, closed_at}]),
 * offset (site UTC offset, minutes), label (what the line is).
 */
export function drawTimeline(box, opts) {
  const w = Math.max(200, box.clientWidth);
  const { from, to } = opts;
  const x = (t) => ((t - from) / (to - from)) * w;
  const ratios = worstRatio(opts.data, opts.thresholds, opts.zones, from, to);
  const top = Math.max(1.5, ...ratios.filter((r) => r != null)) * 1.05;
  const y = (r) => 12 + H - (Math.min(r, top) / top) * H;
  const svg = el('svg', { class: 'timeline', width: w, height: H + 30, viewBox: `0 0 ${w} ${H + 30}`, role: 'img', 'aria-label': `${opts.label} from ${fmtClock(from, opts.offset)} to ${fmtClock(to, opts.offset)}, ${opts.tickets.length} tickets` });
  // Columns coloured by the level the worst zone was at: the strip reads at a glance.
  const bw = w / ratios.length;
  const th0 = opts.thresholds.get(opts.zones[0]) || { notice: 2, warning: 3.6, critical: 5 };
  const unit = { notice: th0.notice / th0.warning, warning: 1, critical: th0.critical / th0.warning };
  ratios.forEach((r, i) => {
    if (r == null) return;
    const lvl = levelOfRatio(r, { notice: unit.notice, warning: 1, critical: unit.critical });
    svg.append(el('rect', { x: (i * bw).toFixed(1), y: y(r).toFixed(1), width: Math.max(1, bw - 0.3).toFixed(1), height: (12 + H - y(r)).toFixed(1), fill: LEVEL_COLOR[lvl], class: 'tl-bar', 'data-level': lvl }));
  });
  svg.append(el('line', { x1: 0, x2: w, y1: y(1), y2: y(1), class: 'tl-warning' }));
  svg.append(el('text', { x: 4, y: y(1) - 3, class: 'tl-axis' }, 'warning'));
  // Ticket marks: ▼ opened (level colour), | closed.
  for (const t of opts.tickets) {
    const o = Date.parse(t.opened_at);
    if (o >= from && o <= to) {
      const cx = x(o);
      svg.append(el('path', { d: `M${cx - 5},0 L${cx + 5},0 L${cx},9 Z`, fill: LEVEL_COLOR[t.level] || '#fff', stroke: '#fff', 'stroke-width': 0.8, class: 'tl-open', 'data-ticket': t.id }, null));
    }
    const c = t.closed_at ? Date.parse(t.closed_at) : null;
    if (c && c >= from && c <= to) {
      svg.append(el('rect', { x: x(c) - 1, y: 0, width: 2, height: 10, fill: '#9fb0c0', class: 'tl-closed', 'data-ticket': t.id }));
    }
  }
  // Time axis: about one label per 120 px, on round seconds or minutes (with seconds when the window is short).
  const n = Math.max(2, Math.floor(w / 120));
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];
  const step = (steps.find((sec) => (to - from) / 1000 / sec <= n) || 43200) * 1000;
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) {
    if (x(t) < 28 || x(t) > w - 28) continue; // a label cut by the edge reads wrong
    svg.append(el('line', { x1: x(t), x2: x(t), y1: 12 + H, y2: 16 + H, class: 'tl-tick' }));
    svg.append(el('text', { x: x(t), y: H + 28, class: 'tl-axis', 'text-anchor': 'middle' }, fmtClock(t, opts.offset, step < 60e3)));
  }
  svg.append(el('line', { x1: 0, x2: 0, y1: 0, y2: 12 + H, class: 'tl-cursor', id: 'tl-cursor' }));
  box.replaceChildren(svg);
  box.title = opts.label;
}

/** Moves the cursor to `t` (or hides it when null). */
export function moveCursor(box, from, to, t) {
  const c = box.querySelector('#tl-cursor');
  if (!c) return;
  const w = box.clientWidth;
  const px = t == null ? -10 : ((t - from) / (to - from)) * w;
  c.setAttribute('x1', px);
  c.setAttribute('x2', px);
}
