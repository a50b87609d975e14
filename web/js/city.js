// The all-sites city view: sub-districts, communities and grids as circles coloured by their worst zone (drawn
// on one canvas, so 7,151 grids cost what 62 do), the worst zones and oldest tickets always beside the map.
// Drilling down: a sub-district zooms in to its communities, a community lists its grids, a grid or a zone opens
// the site's own map. Data: `GET /api/v1/city` every 5 s (aggregated on the centre; see src/api/city.rs).
/* global L */
import {
  api, captureToken, me, renderIdentity, esc, LEVELS, LEVEL_COLOR, fmtNum, fmtDensity, fmtMetric, fmtDuration, STATE_LABEL, STALE_S,
} from './api.js';
import { declutter } from './declutter.js';

const POLL_MS = 5000;
const S = { city: null, lastOk: 0, zoom0: 12, focus: null, layers: {}, labels: [] };
let map;
let renderer;

function conn(state, text) {
  const c = document.getElementById('conn');
  c.dataset.state = state;
  c.textContent = text;
}

/** Which tier is drawn at this zoom: sub-districts when the whole city fits, then communities, then grids. */
function tierAt(zoom) {
  if (zoom < S.zoom0 + 1.5) return 'subdistricts';
  if (zoom < S.zoom0 + 3) return 'communities';
  return 'grids';
}

function colourOf(a) {
  return a.max_ratio == null ? LEVEL_COLOR.unknown : LEVEL_COLOR[a.level];
}

function areaTip(a, tier) {
  const l = a.levels;
  const counts = LEVELS.filter((k) => l[k]).map((k) => `${fmtNum(l[k])} ${k}`).concat(l.stale ? [`${fmtNum(l.stale)} no reading`] : []);
  return `<div class="tip-name">${esc(a.name)}</div>
    <div><span class="badge ${esc(a.max_ratio == null ? 'unknown' : a.level)}">${esc(a.max_ratio == null ? 'no reading' : a.level)}</span>
    <span class="muted">${esc(tier.replace(/s$/, ''))} · ${fmtNum(a.zones)} zones</span></div>
    <div class="num">${counts.join(' · ')}</div>
    <div class="num">worst ${a.max_ratio == null ? '–' : `${Math.round(a.max_ratio * 100)} % of its warning level`}</div>
    <div class="num">${fmtNum(a.open_tickets)} open tickets</div>`;
}

function bounds(a) {
  return L.latLngBounds([a.bbox[1], a.bbox[0]], [a.bbox[3], a.bbox[2]]);
}

function siteMap(site, q) {
  return `index.html?site=${encodeURIComponent(site)}&${q}`;
}

function draw() {
  const c = S.city;
  for (const g of Object.values(S.layers)) g.remove();
  for (const m of S.labels) m.remove();
  S.labels = [];
  const tier = tierAt(map.getZoom());
  const list = c[tier];
  const group = L.layerGroup();
  const labelled = [];
  const radius = tier === 'grids' ? () => 7 : (a) => Math.min(26, 6 + 1.6 * Math.sqrt(a.zones));
  for (const a of list) {
    const m = L.circleMarker([a.center[1], a.center[0]], {
      renderer,
      radius: radius(a),
      color: '#fff',
      weight: a.open_tickets ? 3 : 1,
      fillColor: colourOf(a),
      fillOpacity: 0.85,
    });
    m.bindTooltip(() => areaTip(a, tier), { className: 'zone-tip', direction: 'top', offset: [0, -6] });
    m.on('click', () => open(tier, a));
    group.addLayer(m);
    if (tier !== 'grids') labelled.push(a);
  }
  group.addTo(map);
  S.layers = { [tier]: group };
  document.body.dataset.tier = tier;
  // Labels for the areas in view, worst first; the declutter hides any that would overlap a worse one.
  const view = map.getBounds().pad(0.1);
  const shown = labelled
    .filter((a) => view.contains([a.center[1], a.center[0]]))
    .sort((x, y) => (y.max_ratio ?? -1) - (x.max_ratio ?? -1))
    .slice(0, 300);
  const items = [];
  for (const a of shown) {
    const short = a.name.split(' ')[0];
    const icon = L.divIcon({
      className: 'area-label',
      iconSize: null,
      html: `<div class="zl-inner" style="transform:translate(-50%, ${radius(a) + 2}px)" data-area="${esc(a.site)}/${esc(a.id)}"><b>${esc(short)}</b>${
        a.open_tickets ? `${fmtNum(a.open_tickets)} open` : ''
      }</div>`,
    });
    const lm = L.marker([a.center[1], a.center[0]], { icon, interactive: false, keyboard: false }).addTo(map);
    S.labels.push(lm);
    const el = lm.getElement()?.querySelector('.zl-inner');
    if (el) items.push({ el });
  }
  declutter(items);
  renderCrumbs();
}

function open(tier, a) {
  if (tier === 'grids') {
    location.href = siteMap(a.site, `grid=${encodeURIComponent(a.id)}`);
    return;
  }
  S.focus = { tier, area: a };
  map.fitBounds(bounds(a), { padding: [30, 30] });
  if (tier === 'communities') showArea(a);
}

function showArea(a) {
  const grids = S.city.grids.filter((g) => g.site === a.site && g.parent === a.id);
  document.getElementById('area-panel').classList.remove('hidden');
  document.getElementById('area-title').textContent = a.name;
  document.getElementById('area-facts').textContent = `${fmtNum(a.zones)} zones in ${grids.length} grids · ${fmtNum(a.open_tickets)} open tickets`;
  document.getElementById('area-children').innerHTML = grids
    .sort((x, y) => (y.max_ratio ?? -1) - (x.max_ratio ?? -1))
    .map(
      (g) => `<li data-level="${esc(g.max_ratio == null ? 'unknown' : g.level)}"><a href="${siteMap(g.site, `grid=${encodeURIComponent(g.id)}`)}">${esc(g.name)}</a>
        <span class="v num">${g.max_ratio == null ? 'no reading' : `${Math.round(g.max_ratio * 100)} % of warning`}</span></li>`,
    )
    .join('');
}

function renderCrumbs() {
  const f = S.focus;
  const el = document.getElementById('crumbs');
  const parts = ['<button type="button" class="link" data-crumb="city">City</button>'];
  if (f) {
    const sd = f.tier === 'subdistricts' ? f.area : S.city.subdistricts.find((s) => s.site === f.area.site && s.id === f.area.parent);
    if (sd) parts.push(`<button type="button" class="link" data-crumb="sd">${esc(sd.name)}</button>`);
    if (f.tier === 'communities') parts.push(`<span>${esc(f.area.name)}</span>`);
  }
  el.innerHTML = parts.join(' › ');
  el.querySelector('[data-crumb="city"]').onclick = () => {
    S.focus = null;
    document.getElementById('area-panel').classList.add('hidden');
    fitCity();
  };
  const sdb = el.querySelector('[data-crumb="sd"]');
  if (sdb) {
    sdb.onclick = () => {
      const sd = f.tier === 'subdistricts' ? f.area : S.city.subdistricts.find((s) => s.site === f.area.site && s.id === f.area.parent);
      open('subdistricts', sd);
    };
  }
}

function renderLists() {
  const c = S.city;
  document.getElementById('totals').textContent = `${fmtNum(c.zones)} zones · ${LEVELS.map((l) => `${fmtNum(c.levels[l])} ${l}`).join(' · ')}${
    c.levels.stale ? ` · ${fmtNum(c.levels.stale)} no reading` : ''
  }`;
  document.getElementById('worst').innerHTML = c.worst.length
    ? c.worst
        .map(
          (z) => `<li data-level="${esc(z.level)}" data-zone="${esc(z.site)}/${esc(z.zone)}"><a href="${siteMap(z.site, `zone=${encodeURIComponent(z.zone)}`)}">${esc(z.name)}</a>
            <span class="v num">${fmtDensity(z.density)} /m² · ${Math.round(z.ratio * 100)} % of warning</span></li>`,
        )
        .join('')
    : '<li class="empty">No zone has a fresh reading.</li>';
  document.getElementById('ticket-count').textContent = fmtNum(c.open_tickets);
  const now = Date.now();
  document.getElementById('oldest').innerHTML = c.oldest_tickets.length
    ? c.oldest_tickets
        .map(
          (t) => `<li data-level="${esc(t.level)}" data-ticket="${t.id}"><a href="${siteMap(t.site, `zone=${encodeURIComponent(t.zone)}`)}">#${t.id} ${esc(t.zone_name)}</a>
            <span class="v num">${esc(fmtMetric(t.metric, t.value))} · ${esc(STATE_LABEL[t.state] || t.state)}${t.assignee_name ? ` · ${esc(t.assignee_name)}` : ''} · ${fmtDuration(
              (now - Date.parse(t.opened_at)) / 1000,
            )}</span></li>`,
        )
        .join('')
    : '<li class="empty">No open tickets.</li>';
}

function fitCity() {
  const b = L.latLngBounds([]);
  for (const a of S.city.subdistricts) b.extend(bounds(a));
  // Room on the right for the legend.
  const lg = document.getElementById('legend').getBoundingClientRect();
  if (b.isValid()) map.fitBounds(b, { paddingTopLeft: [30, 50], paddingBottomRight: [lg.width + 30, 30] });
}

async function refresh() {
  try {
    S.city = await api('/city?top=20');
    S.lastOk = Date.now();
    conn('live', 'live · ' + new Date(S.lastOk).toLocaleTimeString());
    renderLists();
    draw();
  } catch (e) {
    if (e.status === 401) return;
    conn('down', 'disconnected — the centre does not answer');
  }
}

async function main() {
  captureToken();
  let who;
  try {
    who = await me();
  } catch (e) {
    if (e.status !== 401) conn('down', `cannot reach the API: ${e.message}`);
    return;
  }
  if (who.role === 'grid_worker') {
    location.replace('worker.html');
    return;
  }
  renderIdentity(who);
  document.getElementById('legend-body').innerHTML =
    LEVELS.map((l) => `<div><i style="background:${LEVEL_COLOR[l]}"></i>worst zone ${l}</div>`).join('') +
    `<div><i style="background:${LEVEL_COLOR.unknown}"></i>no fresh reading</div><div><i class="ring-i"></i>thick ring: open tickets</div>`;
  document.getElementById('area-close').onclick = () => document.getElementById('area-panel').classList.add('hidden');
  renderer = L.canvas({ padding: 0.3 });
  map = L.map('map', { zoomSnap: 0.25, preferCanvas: true });
  map.attributionControl.setPrefix('Leaflet');
  L.control.scale({ imperial: false, position: 'bottomright' }).addTo(map);
  map.setView([31.8, 119.97], 12);
  S.city = await api('/city?top=20');
  S.lastOk = Date.now();
  conn('live', 'live · ' + new Date(S.lastOk).toLocaleTimeString());
  fitCity();
  S.zoom0 = map.getZoom();
  renderLists();
  draw();
  map.on('zoomend moveend', () => draw());
  document.body.dataset.ready = String(Math.round(performance.now()));
  setInterval(refresh, POLL_MS);
  setInterval(() => {
    const silent = (Date.now() - S.lastOk) / 1000;
    if (silent >= STALE_S) conn('down', `disconnected — nothing for ${Math.round(silent)} s`);
  }, 5000);
}

main().catch((e) => {
  console.error(e);
  conn('down', e.message);
});
