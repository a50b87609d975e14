// Replay of the last hours on the operator's map: the fused series of every zone of the site, fetched once per
// window; the slider (keyboard: arrows, Page Up/Down, Home/End) picks a time, zones take the level they had then,
// pins show the tickets open then, and the timeline under the map shows the worst zone against its warning
// level with ticket marks. The window starts where the data starts, so minutes of data fill the strip.

import { api, toast, fmtClock } from './api.js';
import { drawTimeline, moveCursor } from './timeline.js';

let ctx; // { S, paintAll(), renderPins(tickets|null), onChange() }

const $ = (id) => document.getElementById(id);
const off = () => ctx.S.siteInfo?.utc_offset_minutes;

export function initReplay(context) {
  ctx = context;
  const slider = $('slider');
  slider.oninput = () => scrub(Number(slider.value));
  $('replay-live').onclick = () => exitReplay();
  $('replay-hours').onchange = (e) => {
    ctx.S.replay.hours = Number(e.target.value);
    ctx.S.replay.data = null;
    loadTimeline();
    if (ctx.S.replay.active) scrub(Number(slider.value));
  };
  $('replay-play').onclick = () => togglePlay();
  window.addEventListener('resize', () => drawStrip());
}

/** Fetches the window's series and tickets (once per window) and draws the strip. */
export async function loadTimeline() {
  const R = ctx.S.replay;
  if (R.loading) return R.loading;
  R.loading = (async () => {
    const to = Date.now();
    let from = to - R.hours * 3600e3;
    const data = new Map();
    const site = ctx.S.site;
    const q = (id) =>
      `/zones/${encodeURIComponent(site)}/${encodeURIComponent(id)}/series?source=crowdgrid-central%2Ffused&from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&limit=100000`;
    const ids = [...ctx.S.zones.keys()];
    // Six at a time: a 300-zone site does not open 300 requests at once.
    for (let i = 0; i < ids.length; i += 6) {
      await Promise.all(
        ids.slice(i, i + 6).map(async (id) => {
          const pts = await api(q(id));
          data.set(id, pts.map((p) => ({ t: Date.parse(p.ts), ts: p.ts, density: p.density, count: p.count })));
        }),
      );
    }
    const tickets = await api(`/tickets?site=${encodeURIComponent(site)}&state=all`);
    if (site !== ctx.S.site) return;
    const first = Math.min(...[...data.values()].filter((p) => p.length).map((p) => p[0].t), ...tickets.map((t) => Date.parse(t.opened_at)));
    // The window fits the data: from just before the first reading or ticket, if that is later.
    if (Number.isFinite(first) && first > from) from = Math.max(from, first - Math.max(200, 0.05 * (to - first)));
    Object.assign(R, { data, tickets, from, to });
    drawStrip();
  })();
  try {
    await R.loading;
  } finally {
    R.loading = null;
  }
}

/** Redraws the strip for the site, or for the selected zone. */
export function drawStrip() {
  const R = ctx.S.replay;
  const box = $('timeline');
  if (!R.data || !box) return;
  const sel = ctx.S.selected;
  const zones = sel ? [sel] : [...ctx.S.zones.keys()];
  const thresholds = new Map([...ctx.S.zones].map(([id, z]) => [id, z.thresholds]));
  const name = sel ? ctx.S.zones.get(sel)?.name : 'worst zone of the site';
  drawTimeline(box, {
    from: R.from,
    to: R.to,
    data: R.data,
    thresholds,
    zones,
    tickets: (R.tickets || []).filter((t) => !sel || t.zone === sel),
    offset: off(),
    label: `Density against the warning level, ${name}`,
  });
  $('timeline-label').textContent = `${name} · density ÷ warning level · ▼ ticket opened, | closed`;
  moveCursor(box, R.from, R.to, R.active ? R.t : null);
}

/** The last fused reading at or before `t` (none if older than 10 minutes). */
export function replayValueAt(id, t) {
  const pts = ctx.S.replay.data?.get(id);
  if (!pts || !pts.length) return null;
  let lo = 0;
  let hi = pts.length - 1;
  if (pts[0].t > t) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (pts[mid].t <= t) lo = mid;
    else hi = mid - 1;
  }
  return t - pts[lo].t <= 600e3 ? pts[lo] : null;
}

async function scrub(v) {
  const R = ctx.S.replay;
  if (v >= 1000 && !R.playing) {
    exitReplay();
    return;
  }
  if (!R.data) {
    try {
      await loadTimeline();
    } catch (e) {
      toast(`Replay unavailable: ${e.message}`, 'error');
      return;
    }
  }
  R.active = true;
  R.t = R.from + ((R.to - R.from) * v) / 1000;
  $('replay').classList.add('replaying');
  $('replay-live').disabled = false;
  const when = fmtClock(R.t, off(), true);
  $('replay-time').textContent = `replay ${when}`;
  $('slider').setAttribute('aria-valuetext', `replay at ${when} site time`);
  document.body.dataset.replay = 'on';
  ctx.paintAll();
  const open = (R.tickets || []).filter((t) => Date.parse(t.opened_at) <= R.t && (!t.closed_at || Date.parse(t.closed_at) > R.t));
  ctx.renderPins(open);
  moveCursor($('timeline'), R.from, R.to, R.t);
}

export function exitReplay() {
  const R = ctx.S.replay;
  if (R.playing) togglePlay();
  if (!R.active && document.body.dataset.replay !== 'on') return;
  R.active = false;
  document.body.dataset.replay = 'off';
  $('slider').value = 1000;
  $('slider').setAttribute('aria-valuetext', 'live');
  $('replay').classList.remove('replaying');
  $('replay-live').disabled = true;
  $('replay-time').textContent = 'live';
  ctx.paintAll();
  ctx.renderPins(null);
  moveCursor($('timeline'), R.from, R.to, null);
}

function togglePlay() {
  const R = ctx.S.replay;
  const btn = $('replay-play');
  if (R.playing) {
    clearInterval(R.playing);
    R.playing = null;
    btn.textContent = '▶';
    btn.setAttribute('aria-label', 'Play');
    return;
  }
  const slider = $('slider');
  if (Number(slider.value) >= 1000) slider.value = 0;
  btn.textContent = '❚❚';
  btn.setAttribute('aria-label', 'Pause');
  // The whole window in about 40 s.
  R.playing = setInterval(async () => {
    const v = Number(slider.value) + 2.5;
    if (v >= 1000) {
      togglePlay();
      exitReplay();
      return;
    }
    slider.value = v;
    await scrub(v);
  }, 100);
  scrub(Number(slider.value));
}
