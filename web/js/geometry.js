// The camera geometry editor: the camera's latest blurred frame with its image zones, counting lines and
// calibration points drawn on it. An engineer drags any point (or selects it and moves it with the arrow keys,
// Shift for 10 px), adds and removes zones, lines and points, names which site zone each image zone counts for,
// and pushes the result to the edge as a new settings version — the same audited path as a threshold change, so
// the camera's status says when it runs it, and a rollback brings the old geometry back. The centre checks the
// geometry against the site before storing it (every problem listed here, nothing pushed) and the edge again
// before applying it. What is drawn is in the frame's own pixels (the view's width × height).
import { api, apiObjectUrl, esc, fmtDateTime, toast } from './api.js';

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#2b8cbe', '#e6550d', '#31a354', '#756bb1', '#dd1c77', '#636363'];
const G = { cam: null, view: null, geometry: null, zones: [], sel: null, onDone: () => {}, img: '' };

const enc = encodeURIComponent;
const camPath = (c) => `/cameras/${enc(c.site)}/${enc(c.edge)}/${enc(c.camera)}`;
const round = (v) => Math.round(v * 10) / 10;

function dialog() {
  let d = document.getElementById('geometry-dialog');
  if (!d) {
    d = document.createElement('dialog');
    d.id = 'geometry-dialog';
    d.className = 'geometry-dialog';
    d.setAttribute('aria-labelledby', 'geometry-h');
    document.body.appendChild(d);
  }
  return d;
}

/** Opens the editor for camera `c` (a row of `GET /cameras`); `onDone` runs after a push. */
export async function openGeometry(c, { offsetOf, onDone }) {
  G.cam = c;
  G.onDone = onDone || (() => {});
  G.sel = null;
  const d = dialog();
  d.innerHTML = `<h2 id="geometry-h">${esc(c.camera)} geometry <span class="muted small">${esc(c.site)} / ${esc(c.edge)}</span></h2><p class="muted">Loading the camera's view…</p>`;
  d.showModal();
  try {
    const [view, zones] = await Promise.all([api(`${camPath(c)}/view`), api(`/zones?site=${enc(c.site)}`)]);
    G.view = view;
    G.zones = zones;
    if (G.img) URL.revokeObjectURL(G.img);
    G.img = await apiObjectUrl(`${camPath(c)}/view.jpg`);
  } catch (e) {
    d.innerHTML = `<h2 id="geometry-h">${esc(c.camera)} geometry</h2><p class="err">${esc(e.message)}</p>
      <div class="actions"><button type="button" data-close>Close</button></div>`;
    d.querySelector('[data-close]').onclick = () => d.close();
    return;
  }
  // What to start from: the geometry the centre last pushed, else what the camera counts with now.
  G.geometry = structuredClone(c.desired?.geometry || G.view.geometry);
  const v = G.view;
  const runs = v.settings_version ? `settings v${v.settings_version}` : 'its edge file';
  d.innerHTML = `<form method="dialog" class="geometry-form">
    <h2 id="geometry-h">${esc(c.camera)} geometry <span class="muted small">${esc(c.site)} / ${esc(c.edge)}</span></h2>
    <p class="muted small">Frame of ${esc(fmtDateTime(v.taken_at, offsetOf(c.site)))}, ${v.width}×${v.height} px, people blurred at the edge; the camera runs ${esc(runs)}.
      Drag a point, or select it and use the arrow keys (Shift: 10 px).</p>
    <div class="geometry-body">
      <div class="geometry-canvas"><svg id="geometry-svg" viewBox="0 0 ${v.width} ${v.height}" role="group" aria-label="Camera frame with zones, lines and calibration points"></svg>
        <p class="geo-selected small" aria-live="polite"></p></div>
      <div class="geometry-side"></div>
    </div>
    <ul class="geometry-problems err small" aria-live="polite"></ul>
    <label>Why <input name="note" type="text" maxlength="500" placeholder="e.g. lane moved after the road works"></label>
    <div class="actions"><button type="button" data-cancel>Cancel</button><button type="button" class="primary" data-push>Push to the edge</button></div>
  </form>`;
  // No submit button: Enter in a field (a line's name, a ground coordinate) must not close the editor.
  d.querySelector('[data-cancel]').onclick = () => d.close('cancel');
  d.querySelector('[data-push]').onclick = () => push(d);
  redraw();
}

// ── drawing ────────────────────────────────────────────────────────────────────────────────────────────────────

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function redraw() {
  drawSvg();
  drawSide();
}

function drawSvg() {
  const svg = document.getElementById('geometry-svg');
  if (!svg) return;
  const { width, height } = G.view;
  const r = Math.max(width, height) / 110;
  svg.innerHTML = '';
  el('image', { href: G.img, x: 0, y: 0, width, height }, svg);
  const defs = el('defs', {}, svg);
  const m = el('marker', { id: 'geo-arrow', viewBox: '0 0 10 10', refX: 5, refY: 5, markerWidth: 5, markerHeight: 5, orient: 'auto' }, defs);
  el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#ffd400' }, m);
  const g = G.geometry;
  g.zones.forEach((z, i) => {
    const color = COLORS[i % COLORS.length];
    el('polygon', { points: z.polygon.map((p) => p.join(',')).join(' '), fill: color, 'fill-opacity': 0.25, stroke: color, 'stroke-width': r / 3, class: 'geo-zone' }, svg);
    const [cx, cy] = z.polygon.reduce((a, p) => [a[0] + p[0] / z.polygon.length, a[1] + p[1] / z.polygon.length], [0, 0]);
    const t = el('text', { x: cx, y: cy, 'font-size': r * 2, fill: '#fff', stroke: '#000', 'stroke-width': r / 8, 'text-anchor': 'middle', class: 'geo-label' }, svg);
    t.textContent = z.zone;
    z.polygon.forEach((p, j) => handle(svg, ['zone', i, j], p, r, color, `zone ${z.zone} point ${j + 1}`));
  });
  g.lines.forEach((l, i) => {
    el('line', { x1: l.from[0], y1: l.from[1], x2: l.to[0], y2: l.to[1], stroke: '#ffd400', 'stroke-width': r / 2.5 }, svg);
    // `in` is the right-hand side looking from `from` to `to`: an arrow from the middle towards it.
    const [mx, my] = [(l.from[0] + l.to[0]) / 2, (l.from[1] + l.to[1]) / 2];
    const [dx, dy] = [l.to[0] - l.from[0], l.to[1] - l.from[1]];
    const n = Math.hypot(dx, dy) || 1;
    // In image coordinates (y down) the right-hand side of from → to is (-dy, dx): a line drawn upwards has `in`
    // on the right, as the tracker counts it (tests/data/vision/vtest_gate_crossings.toml).
    const [ix, iy] = [(-dy / n) * r * 5, (dx / n) * r * 5];
    el('line', { x1: mx, y1: my, x2: mx + ix, y2: my + iy, stroke: '#ffd400', 'stroke-width': r / 3, 'marker-end': 'url(#geo-arrow)' }, svg);
    const t = el('text', { x: mx + ix * 1.6, y: my + iy * 1.6 + r, 'font-size': r * 1.8, fill: '#ffd400', stroke: '#000', 'stroke-width': r / 8, 'text-anchor': 'middle' }, svg);
    t.textContent = `${l.id}: in`;
    handle(svg, ['line', i, 'from'], l.from, r, '#ffd400', `line ${l.id} start`);
    handle(svg, ['line', i, 'to'], l.to, r, '#ffd400', `line ${l.id} end`);
  });
  g.calibration.image.forEach((p, i) => {
    handle(svg, ['cal', i], p, r, '#fff', `calibration point ${i + 1}`, true);
    const t = el('text', { x: p[0] + r * 1.3, y: p[1] - r * 1.3, 'font-size': r * 1.8, fill: '#fff', stroke: '#000', 'stroke-width': r / 8 }, svg);
    t.textContent = `C${i + 1}`;
  });
}

const same = (a, b) => a && b && a.length === b.length && a.every((x, i) => x === b[i]);

function handle(svg, key, p, r, color, label, square = false) {
  const attrs = { tabindex: 0, role: 'button', 'aria-label': `${label} at ${round(p[0])}, ${round(p[1])}`, fill: color, stroke: '#000', 'stroke-width': r / 5, class: 'geo-handle', 'data-key': key.join(':') };
  const h = square
    ? el('rect', { ...attrs, x: p[0] - r, y: p[1] - r, width: r * 2, height: r * 2 }, svg)
    : el('circle', { ...attrs, cx: p[0], cy: p[1], r }, svg);
  if (same(G.sel, key)) h.classList.add('selected');
  h.addEventListener('pointerdown', (ev) => startDrag(ev, key, svg));
  h.addEventListener('keydown', (ev) => nudge(ev, key));
  h.addEventListener('focus', () => select(key, false));
}

function pointOf(key) {
  const g = G.geometry;
  if (key[0] === 'zone') return g.zones[key[1]].polygon[key[2]];
  if (key[0] === 'line') return g.lines[key[1]][key[2]];
  return g.calibration.image[key[1]];
}

function setPoint(key, [x, y]) {
  const p = [round(Math.min(Math.max(x, 0), G.view.width)), round(Math.min(Math.max(y, 0), G.view.height))];
  const g = G.geometry;
  if (key[0] === 'zone') g.zones[key[1]].polygon[key[2]] = p;
  else if (key[0] === 'line') g.lines[key[1]][key[2]] = p;
  else g.calibration.image[key[1]] = p;
}

function select(key, draw = true) {
  G.sel = key;
  if (draw) redraw();
  else drawSide();
}

function startDrag(ev, key, svg) {
  ev.preventDefault();
  select(key, false);
  const toFrame = (e) => {
    const pt = svg.createSVGPoint();
    pt.x = e.clientX;
    pt.y = e.clientY;
    const q = pt.matrixTransform(svg.getScreenCTM().inverse());
    return [q.x, q.y];
  };
  // The handles are redrawn on every move, so the drag listens on the window, not on the handle.
  const move = (e) => {
    setPoint(key, toFrame(e));
    drawSvg();
  };
  const up = () => {
    window.removeEventListener('pointermove', move);
    window.removeEventListener('pointerup', up);
    redraw();
    focusHandle(key);
  };
  window.addEventListener('pointermove', move);
  window.addEventListener('pointerup', up);
}

function nudge(ev, key) {
  const step = ev.shiftKey ? 10 : 1;
  const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[ev.key];
  if (d) {
    ev.preventDefault();
    const p = pointOf(key);
    setPoint(key, [p[0] + d[0], p[1] + d[1]]);
    redraw();
    focusHandle(key);
  } else if (ev.key === 'Delete' || ev.key === 'Backspace') {
    ev.preventDefault();
    removePoint(key);
  }
}

function focusHandle(key) {
  document.querySelector(`#geometry-svg [data-key="${key.join(':')}"]`)?.focus();
}

// ── the side panel: zones, lines, calibration ──────────────────────────────────────────────────────────────────

function zoneOptions(selected) {
  return G.zones
    .map((z) => `<option value="${esc(z.zone)}"${z.zone === selected ? ' selected' : ''}>${esc(z.name || z.zone)} (${esc(z.zone)})</option>`)
    .join('');
}

function drawSide() {
  const side = document.querySelector('#geometry-dialog .geometry-side');
  if (!side) return;
  const g = G.geometry;
  // The selection is told under the picture, on a line that is always there: the picture never moves under the
  // pointer while a point is dragged.
  const selected = document.querySelector('#geometry-dialog .geo-selected');
  selected.innerHTML = G.sel
    ? `Selected: ${esc(G.sel.join(' '))} at ${pointOf(G.sel).map(round).join(', ')}
      ${G.sel[0] !== 'line' ? '<button type="button" data-act="remove-point">Remove point</button>' : ''}`
    : 'Nothing selected: drag a point, or Tab to one.';
  selected.querySelector('button[data-act]')?.addEventListener('click', () => act('remove-point'));
  side.innerHTML = `
    <h3>Zones</h3>
    ${g.zones
      .map(
        (z, i) => `<fieldset class="geo-item" style="border-color:${COLORS[i % COLORS.length]}"><legend>Image zone ${i + 1}</legend>
          <label>Counts for <select data-zone="${i}">${zoneOptions(z.zone)}</select></label>
          <label><input type="checkbox" data-lane="${i}"${z.vehicle_lane ? ' checked' : ''}> vehicle lane</label>
          <button type="button" data-act="add-point" data-i="${i}">Add point</button>
          <button type="button" data-act="remove-zone" data-i="${i}">Remove zone</button></fieldset>`,
      )
      .join('')}
    <button type="button" data-act="add-zone">Add zone</button>
    <h3>Counting lines</h3>
    ${g.lines
      .map(
        (l, i) => `<fieldset class="geo-item"><legend>Line ${i + 1}</legend>
          <label>Name <input data-line-id="${i}" value="${esc(l.id)}" maxlength="64" pattern="[a-z0-9_\\-]+"></label>
          <label>Flows on <select data-line-zone="${i}">${g.zones.map((z) => `<option${z.zone === l.zone ? ' selected' : ''}>${esc(z.zone)}</option>`).join('')}</select></label>
          <button type="button" data-act="flip-line" data-i="${i}">Swap in/out</button>
          <button type="button" data-act="remove-line" data-i="${i}">Remove line</button></fieldset>`,
      )
      .join('')}
    <button type="button" data-act="add-line">Add line</button>
    <h3>Calibration</h3>
    <p class="muted small">Each point C on the image and where it is on the ground (metres). At least 4.</p>
    <table class="grid small"><thead><tr><th>point</th><th>image x, y</th><th>ground x m</th><th>ground y m</th></tr></thead><tbody>
    ${g.calibration.image
      .map(
        (p, i) => `<tr><td>C${i + 1}</td><td class="num">${p.map(round).join(', ')}</td>
          <td><input type="number" step="0.01" data-ground="${i}:0" value="${g.calibration.ground[i]?.[0] ?? 0}" aria-label="C${i + 1} ground x"></td>
          <td><input type="number" step="0.01" data-ground="${i}:1" value="${g.calibration.ground[i]?.[1] ?? 0}" aria-label="C${i + 1} ground y"></td></tr>`,
      )
      .join('')}</tbody></table>
    <button type="button" data-act="add-cal">Add calibration point</button>`;
  side.querySelectorAll('select[data-zone]').forEach((s) => (s.onchange = () => {
    const i = Number(s.dataset.zone);
    const old = g.zones[i].zone;
    g.zones[i].zone = s.value;
    g.lines.filter((l) => l.zone === old).forEach((l) => (l.zone = s.value));
    redraw();
  }));
  side.querySelectorAll('input[data-lane]').forEach((c) => (c.onchange = () => {
    const z = g.zones[Number(c.dataset.lane)];
    if (c.checked) z.vehicle_lane = true;
    else delete z.vehicle_lane;
  }));
  side.querySelectorAll('input[data-line-id]').forEach((t) => (t.oninput = () => {
    g.lines[Number(t.dataset.lineId)].id = t.value;
    drawSvg();
  }));
  side.querySelectorAll('select[data-line-zone]').forEach((s) => (s.onchange = () => (g.lines[Number(s.dataset.lineZone)].zone = s.value)));
  side.querySelectorAll('input[data-ground]').forEach((t) => (t.onchange = () => {
    const [i, k] = t.dataset.ground.split(':').map(Number);
    g.calibration.ground[i][k] = Number(t.value);
  }));
  side.querySelectorAll('button[data-act]').forEach((b) => (b.onclick = () => act(b.dataset.act, Number(b.dataset.i))));
}

function act(what, i) {
  const g = G.geometry;
  const { width: w, height: h } = G.view;
  if (what === 'add-zone') {
    const used = new Set(g.zones.map((z) => z.zone));
    const zone = (G.zones.find((z) => !used.has(z.zone)) || G.zones[0])?.zone || '';
    g.zones.push({ zone, polygon: [[w * 0.4, h * 0.4], [w * 0.6, h * 0.4], [w * 0.6, h * 0.6], [w * 0.4, h * 0.6]].map((p) => p.map(round)) });
  } else if (what === 'remove-zone') {
    const [gone] = g.zones.splice(i, 1);
    g.lines = g.lines.filter((l) => l.zone !== gone.zone);
    G.sel = null;
  } else if (what === 'add-point') {
    const poly = g.zones[i].polygon;
    const [a, b] = [poly[poly.length - 1], poly[0]];
    poly.push([round((a[0] + b[0]) / 2), round((a[1] + b[1]) / 2)]);
    G.sel = ['zone', i, poly.length - 1];
  } else if (what === 'add-line') {
    const zone = g.zones[0]?.zone || '';
    g.lines.push({ id: `line-${g.lines.length + 1}`, zone, from: [round(w / 2), round(h * 0.8)], to: [round(w / 2), round(h * 0.2)] });
  } else if (what === 'remove-line') {
    g.lines.splice(i, 1);
    G.sel = null;
  } else if (what === 'flip-line') {
    const l = g.lines[i];
    [l.from, l.to] = [l.to, l.from];
  } else if (what === 'add-cal') {
    g.calibration.image.push([round(w / 2), round(h / 2)]);
    g.calibration.ground.push([0, 0]);
    G.sel = ['cal', g.calibration.image.length - 1];
  } else if (what === 'remove-point' && G.sel) {
    removePoint(G.sel);
    return;
  }
  redraw();
}

function removePoint(key) {
  const g = G.geometry;
  if (key[0] === 'zone') {
    const poly = g.zones[key[1]].polygon;
    if (poly.length <= 3) return toast('A zone needs at least 3 points', 'error');
    poly.splice(key[2], 1);
  } else if (key[0] === 'cal') {
    if (g.calibration.image.length <= 4) return toast('The calibration needs at least 4 points', 'error');
    g.calibration.image.splice(key[1], 1);
    g.calibration.ground.splice(key[1], 1);
  } else {
    return;
  }
  G.sel = null;
  redraw();
}

// ── pushing ────────────────────────────────────────────────────────────────────────────────────────────────────

async function push(d) {
  const c = G.cam;
  const cur = c.desired || {};
  const problems = d.querySelector('.geometry-problems');
  problems.innerHTML = '';
  // The whole of the camera's settings: its thresholds and model stay as the centre last set them.
  const body = {
    model: cur.model ?? null,
    person_threshold: cur.person_threshold ?? null,
    vehicle_threshold: cur.vehicle_threshold ?? null,
    nms_iou: cur.nms_iou ?? null,
    geometry: G.geometry,
    note: d.querySelector('input[name=note]').value || 'geometry drawn on the camera view',
  };
  try {
    const out = await api(`${camPath(c)}/settings`, { method: 'POST', body });
    toast(`${c.camera}: geometry in version ${out.version} pushed${out.published ? '' : ' (stored; the edge gets it when it can be published)'}`);
    d.close('pushed');
    G.onDone(out);
  } catch (e) {
    const list = e.data?.problems || [e.message];
    problems.innerHTML = list.map((p) => `<li>${esc(p)}</li>`).join('');
  }
}
