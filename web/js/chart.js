// A small time-series chart as inline SVG (no dependency): one line per source, the fused one thick,
// the zone's thresholds as dashed bands, a hover read-out.

import { esc, fmtClock, LEVEL_COLOR } from './api.js';

const NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#4aa3ff', '#b58cff', '#2bd4c4', '#ff8fab', '#c3e88d', '#ffcb6b', '#89ddff'];

/** Keeps at most ~`max` points by taking the max of each bucket (peaks are what matters here). */
function downsample(points, max) {
  if (points.length <= max) return points;
  const step = points.length / max;
  const out = [];
  for (let i = 0; i < max; i++) {
    const a = Math.floor(i * step);
    const b = Math.min(points.length, Math.floor((i + 1) * step));
    let best = points[a];
    for (let j = a + 1; j < b; j++) if (points[j][1] > best[1]) best = points[j];
    out.push(best);
  }
  return out;
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

/**
 * series: [{label, kind, points: [[ms, density], …], fused: bool}]
 * opts: {from, to (ms), thresholds, offsetMin, height}
 */
export function drawChart(container, series, opts) {
  container.innerHTML = '';
  const width = Math.max(280, container.clientWidth || 380);
  const height = opts.height || 200;
  const m = { l: 38, r: 10, t: 12, b: 24 };
  const w = width - m.l - m.r;
  const h = height - m.t - m.b;
  const th = opts.thresholds || {};
  let ymax = Math.max(th.warning ? th.warning * 1.15 : 1, ...series.flatMap((s) => s.points.map((p) => p[1])));
  if (th.critical && ymax > th.critical * 0.9) ymax = Math.max(ymax, th.critical * 1.1);
  ymax = ymax * 1.05 || 1;
  const yStep = [0.1, 0.25, 0.5, 1, 2, 2.5, 5].find((st) => ymax / st <= 5) || 10;
  ymax = Math.ceil(ymax / yStep) * yStep;
  const { from, to } = opts;
  const x = (t) => m.l + ((t - from) / (to - from)) * w;
  const y = (v) => m.t + h - (v / ymax) * h;

  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart', role: 'img' });
  svg.appendChild(el('title', {}, opts.title || 'Density over time'));

  // Threshold bands
  const bands = [
    ['notice', th.notice, th.warning],
    ['warning', th.warning, th.critical],
    ['critical', th.critical, ymax],
  ];
  for (const [lvl, lo, hi] of bands) {
    if (lo == null || lo >= ymax) continue;
    const top = y(Math.min(hi ?? ymax, ymax));
    svg.appendChild(el('rect', { x: m.l, y: top, width: w, height: y(lo) - top, fill: LEVEL_COLOR[lvl], opacity: 0.09 }));
    svg.appendChild(
      el('line', { x1: m.l, x2: m.l + w, y1: y(lo), y2: y(lo), stroke: LEVEL_COLOR[lvl], 'stroke-dasharray': '4 3', 'stroke-width': 1 }),
    );
    svg.appendChild(el('text', { x: m.l + w - 2, y: y(lo) - 3, 'text-anchor': 'end', class: 'chart-th', fill: LEVEL_COLOR[lvl] }, `${lvl} ${lo}`));
  }

  // Axes
  for (let i = 0; i <= Math.round(ymax / yStep); i++) {
    const v = yStep * i;
    svg.appendChild(el('line', { x1: m.l, x2: m.l + w, y1: y(v), y2: y(v), class: 'chart-grid' }));
    svg.appendChild(el('text', { x: m.l - 5, y: y(v) + 4, 'text-anchor': 'end', class: 'chart-axis' }, yStep < 0.5 ? v.toFixed(2) : v.toFixed(1)));
  }
  const span = to - from;
  const stepMin = [5, 10, 15, 30, 60, 120, 180, 360].find((s) => span / (s * 60000) <= 6) || 720;
  const step = stepMin * 60000;
  const off = (opts.offsetMin || 0) * 60000;
  for (let t = Math.ceil((from + off) / step) * step - off; t <= to; t += step) {
    svg.appendChild(el('line', { x1: x(t), x2: x(t), y1: m.t, y2: m.t + h, class: 'chart-grid' }));
    svg.appendChild(el('text', { x: x(t), y: height - 6, 'text-anchor': 'middle', class: 'chart-axis' }, fmtClock(t, opts.offsetMin)));
  }

  // Lines
  let colorIdx = 0;
  const drawn = [];
  for (const s of series) {
    const pts = downsample(s.points, Math.max(60, Math.floor(w)));
    if (!pts.length) continue;
    const color = s.fused ? '#ffffff' : PALETTE[colorIdx++ % PALETTE.length];
    s.color = color;
    const d = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
    svg.appendChild(
      el('path', {
        d,
        fill: 'none',
        stroke: color,
        'stroke-width': s.fused ? 2.5 : 1.3,
        opacity: s.fused ? 1 : 0.85,
        class: s.fused ? 'chart-fused' : 'chart-source',
        'data-source': s.label,
      }),
    );
    drawn.push(s);
  }
  if (!drawn.length) {
    svg.appendChild(el('text', { x: m.l + w / 2, y: m.t + h / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no readings in this window'));
  }

  // Hover read-out
  const cursor = el('line', { y1: m.t, y2: m.t + h, class: 'chart-cursor', visibility: 'hidden' });
  svg.appendChild(cursor);
  const hit = el('rect', { x: m.l, y: m.t, width: w, height: h, fill: 'transparent' });
  svg.appendChild(hit);
  const readout = document.createElement('div');
  readout.className = 'chart-readout';
  hit.addEventListener('mousemove', (ev) => {
    const r = svg.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * width;
    const t = from + ((px - m.l) / w) * (to - from);
    cursor.setAttribute('x1', px);
    cursor.setAttribute('x2', px);
    cursor.setAttribute('visibility', 'visible');
    const rows = drawn.map((s) => {
      let best = null;
      for (const p of s.points) {
        if (p[0] <= t) best = p;
        else break;
      }
      return `<span style="color:${s.color}">■</span> ${esc(s.label)} <b>${best ? best[1].toFixed(2) : '–'}</b>`;
    });
    readout.innerHTML = `<b>${fmtClock(t, opts.offsetMin, true)}</b><br>${rows.join('<br>')}`;
    readout.style.display = 'block';
  });
  hit.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    readout.style.display = 'none';
  });

  container.appendChild(svg);
  container.appendChild(readout);
  const legend = document.createElement('div');
  legend.className = 'chart-legend';
  legend.innerHTML = drawn
    .map((s) => `<span><i style="background:${s.color}"></i>${esc(s.label)}${s.kind ? ` <span class="muted">(${esc(s.kind)})</span>` : ''}</span>`)
    .join('');
  container.appendChild(legend);
}
