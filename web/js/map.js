// Operators' live map: zones coloured by level, labels, edges, ticket pins and the ticket queue. The zone panel,
// the ticket dialog and the replay live beside it (zone_panel.js, ticket_actions.js, replay.js).
/* global L */
import {
  api, captureToken, me, liveUpdates, renderIdentity, toast, esc,
  LEVELS, LEVEL_COLOR, LEVEL_RANK, levelOf, isOpen, queueOrder, stateLabel, TIER_LABEL,
  fmtNum, fmtDensity, fmtMeasure, fmtDuration, fmtClock, ageOf, trendText, centroid,
} from './api.js';
import { declutter } from './declutter.js';
import { initActions, openAction } from './ticket_actions.js';
import { initZonePanel, selectZone, renderZoneFacts, refreshChart } from './zone_panel.js';
import { initReplay, loadTimeline, drawStrip, replayValueAt, exitReplay } from './replay.js';


const S = {
  who: null,
  sites: [],
  site: null,
  siteInfo: null,
  zones: new Map(), // zone id → zone object (geojson properties merged with /zones and live events)
  geo: new Map(), // zone id → geometry
  layers: new Map(), // zone id → L.Polygon
  labels: new Map(), // zone id → L.Marker
  tickets: new Map(), // id → ticket (this site)
  fresh: new Set(), // ticket ids raised since the page opened (blink)
  edges: [],
  edgeLayer: null,
  pinLayer: null,
  rules: null,
  selected: null,
  replay: { active: false, hours: 3, data: null, from: 0, to: 0, playing: null },
  live: null,
  canAct: false,
};

let map;

// ── start ────────────────────────────────────────────────────────────────────────────────────────

async function main() {
  captureToken();
  try {
    S.who = await me();
  } catch (e) {
    if (e.status === 401) return;
    fatal(`Cannot reach the API: ${e.message}`);
    return;
  }
  renderIdentity(S.who);
  S.canAct = ['operator', 'admin'].includes(S.who.role);
  if (S.who.role === 'grid_worker') {
    location.replace('worker.html');
    return;
  }

  map = L.map('map', { zoomSnap: 0.25, zoomControl: true, attributionControl: true, preferCanvas: false });
  map.attributionControl.setPrefix('Leaflet');
  map.setView([31.78, 119.96], 15); // replaced by the site's bounds; layers need a loaded map to render
  L.control.scale({ imperial: false, position: 'bottomright' }).addTo(map);
  map.on('zoomend', fitLabels);
  map.on('tooltipopen', (e) => keepInside(e.tooltip));
  S.pinLayer = L.layerGroup().addTo(map);
  S.edgeLayer = L.layerGroup().addTo(map);
  renderLegend();

  S.sites = await api('/sites');
  const sel = document.getElementById('site');
  sel.innerHTML = S.sites.map((s) => `<option value="${esc(s.id)}">${esc(s.name || s.id)}</option>`).join('');
  const wanted = new URLSearchParams(location.search).get('site') || localStorage.getItem('crowdgrid.site');
  const first = S.sites.find((s) => s.id === wanted) || S.sites[0];
  if (!first) {
    fatal('The centre has no sites configured.');
    return;
  }
  sel.value = first.id;
  sel.onchange = () => loadSite(sel.value);
  initReplay({
    S,
    paintAll: () => {
      for (const id of S.zones.keys()) paintZone(id);
    },
    renderPins,
  });
  initActions(S, {
    zoneName,
    changed: () => {
      renderQueue();
      renderPins();
    },
  });
  initZonePanel(S, { drawStrip });
  document.getElementById('zone-close').onclick = () => selectZone(null);
  document.getElementById('chart-hours').onchange = () => S.selected && refreshChart();
  setInterval(tick, 1000);
  await loadSite(first.id);
}

function fatal(msg) {
  const box = document.createElement('div');
  box.className = 'error-box';
  box.textContent = msg;
  document.querySelector('.panel').prepend(box);
}

/** Tile layer from the site description, if the server provides one (e.g. a city GIS server). */
function tileUrlOf(site) {
  const t = site && (site.tiles || site.ui?.tiles || site.ui || {});
  const url = site && (site.tile_url || t.url || t.tile_url);
  return url ? { url, attribution: t.attribution || site.tile_attribution || '', maxZoom: t.max_zoom || 20 } : null;
}

let tileLayer = null;

async function loadSite(siteId) {
  S.site = siteId;
  S.siteInfo = S.sites.find((s) => s.id === siteId);
  localStorage.setItem('crowdgrid.site', siteId);
  const u = new URL(location.href);
  u.searchParams.set('site', siteId);
  history.replaceState(null, '', u.pathname + u.search + u.hash);
  exitReplay();
  S.replay.data = null;
  S.replay.tickets = null;
  document.getElementById('timeline').replaceChildren();
  selectZone(null);
  if (S.live) S.live.close();

  for (const l of S.layers.values()) l.remove();
  for (const l of S.labels.values()) l.remove();
  S.layers.clear();
  S.labels.clear();
  S.zones.clear();
  S.geo.clear();
  S.tickets.clear();
  S.fresh.clear();
  S.rules = null;

  if (tileLayer) tileLayer.remove();
  tileLayer = null;
  const tiles = tileUrlOf(S.siteInfo);
  if (tiles) {
    tileLayer = L.tileLayer(tiles.url, { attribution: tiles.attribution, maxZoom: tiles.maxZoom }).addTo(map);
    document.getElementById('map').classList.add('with-tiles');
  }

  const fc = await api(`/zones.geojson?site=${encodeURIComponent(siteId)}`);
  const bounds = L.latLngBounds([]);
  for (const f of fc.features || []) {
    const z = { ...f.properties };
    S.zones.set(z.zone, z);
    S.geo.set(z.zone, f.geometry);
    const layer = L.geoJSON(f, { style: () => zoneStyle(z.level) }).getLayers()[0];
    layer.addTo(map);
    const elp = layer.getElement();
    elp.classList.add('zone');
    elp.setAttribute('data-zone', z.zone);
    elp.setAttribute('data-site', z.site);
    elp.setAttribute('data-level', z.level || 'normal');
    // A zone is a button to the keyboard and to screen readers: Tab reaches it, Enter opens its details.
    elp.setAttribute('role', 'button');
    elp.setAttribute('tabindex', '0');
    elp.setAttribute('aria-label', z.name);
    elp.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        selectZone(z.zone);
      }
    });
    layer.bindTooltip(() => zoneTip(z.zone), { sticky: true, className: 'zone-tip', direction: 'top', offset: [0, -8] });
    layer.on('click', () => selectZone(z.zone));
    S.layers.set(z.zone, layer);
    bounds.extend(layer.getBounds());
    const c = centroid(f.geometry);
    if (c) {
      const label = L.marker(c, { icon: labelIcon(z), interactive: false, keyboard: false }).addTo(map);
      S.labels.set(z.zone, label);
    }
  }
  if (bounds.isValid()) map.fitBounds(bounds, fitPadding());
  S.bounds = bounds;
  fitLabels();
  await Promise.all([refreshZones(), refreshTickets(), refreshEdges()]);
  focusFromUrl();
  // The timeline under the map, in the background (a large site's series are many requests: on first use).
  if (S.zones.size <= 80) loadTimeline().catch(() => {});
  else document.getElementById('replay').addEventListener('pointerenter', () => S.replay.data || loadTimeline().catch(() => {}), { once: true });

  S.live = liveUpdates({
    site: siteId,
    handlers: { zone: onZone, ticket: onTicket, edge: onEdge },
    poll: async () => {
      await Promise.all([refreshZones(), refreshTickets(), refreshEdges()]);
    },
    onStatus: (state, text) => {
      const c = document.getElementById('conn');
      c.dataset.state = state;
      c.textContent = text;
    },
  });
}

/**
 * Turns a tooltip to whichever side keeps it inside the map: Leaflet places it above its anchor whatever room
 * there is, and the map's box clips what sticks out (a zone near the top edge lost its name and level).
 */
function keepInside(tip) {
  const el = tip.getElement();
  if (!el || !tip.getLatLng()) return;
  const p = map.latLngToContainerPoint(tip.getLatLng());
  const size = map.getSize();
  const w = el.offsetWidth;
  const h = el.offsetHeight;
  let dir = 'top';
  if (p.y - h - 20 < 0) dir = 'bottom';
  if (dir === 'bottom' && p.y + h + 20 > size.y) dir = p.x < size.x / 2 ? 'right' : 'left';
  if (p.x - w / 2 < 4 && dir !== 'left') dir = 'right';
  if (p.x + w / 2 > size.x - 4 && dir !== 'right') dir = 'left';
  if (tip.options.direction !== dir) {
    tip.options.direction = dir;
    tip.options.offset = dir === 'top' ? [0, -8] : dir === 'bottom' ? [0, 8] : [dir === 'right' ? 8 : -8, 0];
    tip.update();
  }
}

/** Room for the legend on the left and the replay bar below, so neither covers a zone. */
function fitPadding() {
  const lg = document.getElementById('legend').getBoundingClientRect();
  const narrow = window.innerWidth < 700;
  return narrow
    ? { paddingTopLeft: [16, 16], paddingBottomRight: [lg.width + 16, document.getElementById('replay').offsetHeight + 20] }
    : { paddingTopLeft: [lg.width + 24, 40], paddingBottomRight: [20, document.getElementById('replay').offsetHeight + 30] };
}

/** `?zone=` or `?grid=` (links from the city view): zoom to it (and open the zone), once. */
function focusFromUrl() {
  const u = new URL(location.href);
  const zone = u.searchParams.get('zone');
  const grid = u.searchParams.get('grid');
  if (!zone && !grid) return;
  u.searchParams.delete('zone');
  u.searchParams.delete('grid');
  history.replaceState(null, '', u.pathname + u.search + u.hash);
  const b = L.latLngBounds([]);
  for (const [id, z] of S.zones) if (id === zone || z.grid === grid) b.extend(S.layers.get(id).getBounds());
  if (!b.isValid()) {
    toast(zone ? `No zone ${zone} in this site` : `No grid ${grid} in this site`, 'error');
    return;
  }
  map.fitBounds(b, { padding: [60, 60], maxZoom: 19 });
  if (zone) selectZone(zone);
}

// ── zones ────────────────────────────────────────────────────────────────────────────────────────

function zoneStyle(level) {
  const c = LEVEL_COLOR[level] || LEVEL_COLOR.unknown;
  return { color: c, weight: 2, opacity: 1, fillColor: c, fillOpacity: level === 'normal' ? 0.45 : 0.65, className: 'zone' };
}

function labelIcon(z, replayDensity) {
  const d = replayDensity !== undefined ? replayDensity : z.density;
  const short = String(z.name || z.zone);
  return L.divIcon({
    className: 'zone-label',
    iconSize: null,
    html: `<div class="zl-inner" style="transform:translate(-50%,-50%)"><span class="zname">${esc(short)}</span><b>${
      d == null ? '–' : fmtDensity(d) + ' /m²'
    }</b></div>`,
  });
}

/** Hides zone names that do not fit their polygon at this zoom (narrow lanes), keeping the number. */
function fitLabels() {
  for (const [id, label] of S.labels) {
    const layer = S.layers.get(id);
    if (!layer) continue;
    const b = layer.getBounds();
    const p1 = map.latLngToContainerPoint(b.getNorthWest());
    const p2 = map.latLngToContainerPoint(b.getSouthEast());
    const w = Math.abs(p2.x - p1.x);
    const h = Math.abs(p2.y - p1.y);
    const e = label.getElement();
    if (!e) continue;
    e.classList.toggle('hidden', w < 26 && h < 26);
    const name = e.querySelector('.zname');
    if (name) name.classList.toggle('hidden', w < 90 || h < 34);
  }
  // Worst level first, then the larger zone: a label that would overlap a more important one is hidden.
  const order = [...S.labels.keys()].sort((a, b) => {
    const za = S.zones.get(a);
    const zb = S.zones.get(b);
    return (LEVEL_RANK[zb?.level] ?? 0) - (LEVEL_RANK[za?.level] ?? 0) || (zb?.area_m2 ?? 0) - (za?.area_m2 ?? 0);
  });
  const items = order.map((id) => ({ el: S.labels.get(id).getElement()?.querySelector('.zl-inner') })).filter((x) => x.el);
  declutter(items);
}

function zoneTip(id) {
  const z = S.zones.get(id);
  if (!z) return '';
  let density = z.density;
  let count = z.count;
  let level = z.level;
  let when = z.ts ? `at ${fmtClock(z.ts, S.siteInfo?.utc_offset_minutes, true)}` : 'no reading yet';
  if (S.replay.active) {
    const v = replayValueAt(id, S.replay.t);
    density = v ? v.density : null;
    count = v ? v.count : null;
    level = v ? levelOf(v.density, z.thresholds) : 'unknown';
    when = v ? `replay, reading of ${fmtClock(v.ts, S.siteInfo?.utc_offset_minutes, true)}` : 'replay: no reading';
  }
  const t = trendText(z.trend_per_min);
  const cap = z.capacity && count != null ? ` · ${Math.round((100 * count) / z.capacity)} % of capacity` : '';
  return `<div class="tip-name">${esc(z.name)}</div>
    <div><span class="badge ${esc(level)}">${esc(level)}</span> <span class="muted">${esc(when)}</span></div>
    <div class="tip-big num">${fmtDensity(density)} <small>people/m²</small></div>
    <div class="num">${fmtNum(count)} people${cap}</div>
    ${S.replay.active ? '' : `<div class="trend ${t.cls}">${t.arrow} ${esc(t.text)}</div>`}
    <div class="muted small">grid ${esc(z.grid)} · ${fmtNum(z.area_m2)} m²</div>`;
}

function paintZone(id) {
  const z = S.zones.get(id);
  const layer = S.layers.get(id);
  if (!z || !layer) return;
  let level = z.level || 'normal';
  let density;
  if (S.replay.active) {
    const v = replayValueAt(id, S.replay.t);
    level = v ? levelOf(v.density, z.thresholds) : 'unknown';
    density = v ? v.density : null;
  }
  layer.setStyle(zoneStyle(level));
  const e = layer.getElement();
  e.setAttribute('data-level', level);
  e.classList.toggle('selected', S.selected === id);
  const label = S.labels.get(id);
  if (label) {
    label.setIcon(labelIcon(z, density));
    fitLabelsSoon();
  }
  if (layer.isTooltipOpen()) layer.setTooltipContent(zoneTip(id));
}

let fitTimer = null;
function fitLabelsSoon() {
  clearTimeout(fitTimer);
  fitTimer = setTimeout(fitLabels, 50);
}

function mergeZone(z) {
  const old = S.zones.get(z.zone);
  if (!old) return false;
  const { sources, ...rest } = z;
  Object.assign(old, rest);
  if (sources) old.sources = sources;
  return true;
}

async function refreshZones() {
  const list = await api(`/zones?site=${encodeURIComponent(S.site)}`);
  for (const z of list) if (mergeZone(z)) paintZone(z.zone);
  if (S.selected) renderZoneFacts();
  renderPins();
}

function onZone(z) {
  if (z.site !== S.site) return;
  if (mergeZone(z)) {
    paintZone(z.zone);
    if (S.selected === z.zone) renderZoneFacts();
  }
}

// ── edges ────────────────────────────────────────────────────────────────────────────────────────

async function refreshEdges() {
  try {
    S.edges = (await api('/edges')).filter((e) => e.site === S.site);
  } catch {
    // The centre is unreachable: keep the edges as last known (the header says "disconnected"), not an empty map.
    return;
  }
  renderEdges();
}

function onEdge(e) {
  if (e.site !== S.site) return;
  const i = S.edges.findIndex((x) => x.edge_id === e.edge_id);
  if (i >= 0) S.edges[i] = e;
  else S.edges.push(e);
  renderEdges();
}

/**
 * Edges have no coordinates in the API: each is drawn just outside the north-west corner of its site's
 * zones (one after another), labelled, grey when offline, amber when degraded (losing data: the reason in its
 * tooltip, and an engineers' ticket raised by the centre).
 */
function renderEdges() {
  S.edgeLayer.clearLayers();
  if (!S.bounds || !S.bounds.isValid()) return;
  const nw = S.bounds.getNorthWest();
  const span = S.bounds.getEast() - S.bounds.getWest();
  S.edges.forEach((e, i) => {
    const pos = L.latLng(nw.lat, nw.lng + span * 0.06 * i);
    const online = e.state === 'online';
    const cls = !online ? 'offline' : e.degraded ? 'degraded' : 'online';
    const m = L.marker(pos, {
      icon: L.divIcon({
        className: '',
        iconSize: [26, 26],
        iconAnchor: [13, 30],
        html: `<div class="edge-marker ${cls}" data-edge="${esc(e.edge_id)}" data-state="${esc(e.state)}"${e.degraded ? ' data-degraded="1"' : ''}>E${i + 1}</div>`,
      }),
      keyboard: false,
    });
    const srcs = (e.sources || [])
      .map((s) => {
        const rej = Object.values(s.rejected || {}).reduce((a, b) => a + b, 0);
        return `${esc(s.id)} (${esc(s.kind)}): ${fmtNum(s.accepted)} ok${rej ? `, <span style="color:var(--bad)">${fmtNum(rej)} rejected</span>` : ''}`;
      })
      .join('<br>');
    m.bindTooltip(
      `<div class="tip-name">Edge ${esc(e.edge_id)}</div>
       <div><span class="pill ${online ? 'online' : 'offline'}">${esc(e.state)}</span> v${esc(e.version || '?')} · queue ${fmtNum(e.queue_depth)}${
         e.queue_dropped ? ` · <b style="color:var(--bad)">${fmtNum(e.queue_dropped)} dropped</b>` : ''
       }</div>
       ${e.degraded ? `<div class="small" style="color:var(--warning)"><b>degraded:</b> ${esc(e.degraded)}</div>` : ''}
       <div class="muted small">last status ${fmtClock(e.received_at || e.ts, S.siteInfo?.utc_offset_minutes, true)}</div>
       <div class="small">${srcs || 'no sources reported'}</div>
       <div class="muted small">edges carry no coordinates: drawn at the site's corner</div>`,
      { className: 'zone-tip', direction: 'right' },
    );
    m.addTo(S.edgeLayer);
  });
}

// ── tickets ──────────────────────────────────────────────────────────────────────────────────────

async function refreshTickets() {
  const list = await api(`/tickets?state=all&site=${encodeURIComponent(S.site)}`);
  const seen = new Set();
  for (const t of list) {
    seen.add(t.id);
    S.tickets.set(t.id, t);
  }
  for (const id of [...S.tickets.keys()]) if (!seen.has(id)) S.tickets.delete(id);
  renderQueue();
  renderPins();
}

function onTicket(msg) {
  const t = msg.ticket || msg;
  if (!t || t.site !== S.site) return;
  const known = S.tickets.has(t.id);
  S.tickets.set(t.id, { ...(S.tickets.get(t.id) || {}), ...t });
  if (msg.event === 'raised' || (!known && isOpen(t))) {
    S.fresh.add(t.id);
    setTimeout(() => {
      S.fresh.delete(t.id);
      renderPins();
    }, 60000);
    toast(`New ticket #${t.id}: ${zoneName(t.zone)} — ${t.level}`, 'info');
  }
  if (msg.event === 'upgraded') toast(`Ticket #${t.id} upgraded to ${t.level}`, 'info');
  renderQueue(t.id);
  renderPins();
}

/** Who has the ticket, by their roster name (`liu-fang` → 刘芳 Liu Fang …). */
function assigneeName(t) {
  if (!t.assignee) return t.audience === 'engineer' ? 'engineers' : 'unassigned';
  return S.siteInfo?.hierarchy?.workers?.find((w) => w.id === t.assignee)?.name || t.assignee;
}

function zoneName(id) {
  return S.zones.get(id)?.name || id;
}

function renderQueue(highlight) {
  const open = [...S.tickets.values()].filter(isOpen).sort(queueOrder);
  const sixHours = Date.now() - 6 * 3600e3;
  const closed = [...S.tickets.values()]
    .filter((t) => !isOpen(t) && Date.parse(t.closed_at || t.updated_at) >= sixHours)
    .sort((a, b) => Date.parse(b.closed_at || b.updated_at) - Date.parse(a.closed_at || a.updated_at))
    .slice(0, 30);
  document.getElementById('queue-count').textContent = open.length;
  document.getElementById('closed-count').textContent = closed.length;
  const ol = document.getElementById('tickets');
  ol.innerHTML = open.length ? open.map((t) => ticketItem(t, highlight)).join('') : '<li class="empty">No open tickets. 暂无待办工单</li>';
  document.getElementById('closed').innerHTML = closed.map((t) => ticketItem(t)).join('') || '<li class="empty">none in the last 6 h</li>';
  for (const li of document.querySelectorAll('li.ticket')) {
    const id = Number(li.dataset.ticket);
    li.querySelector('.zone-name').onclick = () => selectZone(S.tickets.get(id)?.zone);
    for (const b of li.querySelectorAll('button[data-act]')) b.onclick = () => openAction(id, b.dataset.act);
  }
}

function ticketItem(t, highlight) {
  const now = Date.now();
  const off = S.siteInfo?.utc_offset_minutes;
  const open = isOpen(t);
  const ackOverdue = open && !t.acknowledged_at && t.ack_due && Date.parse(t.ack_due) < now;
  const resOverdue = open && t.resolve_due && Date.parse(t.resolve_due) < now;
  const acts = [];
  if (open && S.canAct) {
    const st = t.state;
    acts.push(`<button data-act="acknowledge" ${['raised', 'dispatched'].includes(st) ? '' : 'disabled'} title="Acknowledge on behalf of the assignee">Ack</button>`);
    acts.push(`<button data-act="on_site" ${st === 'on_site' ? 'disabled' : ''}>On site</button>`);
    acts.push(`<button data-act="resolve">Resolve…</button>`);
    acts.push(`<button data-act="escalate" ${t.tier === 'department' ? 'disabled' : ''} title="Up one tier; from the sub-district: blow the whistle">Escalate…</button>`);
    acts.push(`<button data-act="reassign">Reassign…</button>`);
  }
  return `<li class="ticket${highlight === t.id && S.fresh.has(t.id) ? ' fresh' : ''}" data-ticket="${t.id}" data-zone="${esc(t.zone)}" data-state="${esc(t.state)}" data-level="${esc(t.level)}">
    <div class="row1">
      <span class="tid">#${t.id}</span>
      <span class="badge ${esc(t.level)}">${esc(t.level)}</span>
      <button type="button" class="zone-name" title="Show the zone">${esc(zoneName(t.zone))}</button>
      <span class="pill state-${esc(t.state)}" data-role="state">${esc(stateLabel(t))}</span>
    </div>
    <div class="row2">
      <span>${open ? 'open' : 'took'} <b class="num">${fmtDuration(((open ? now : Date.parse(t.closed_at || t.updated_at)) - Date.parse(t.opened_at)) / 1000)}</b></span>
      <span>→ <b>${esc(assigneeName(t))}</b></span>
      <span>tier <b>${esc(TIER_LABEL[t.tier] || t.tier || '–')}</b></span>
      <span class="num">${esc(fmtMeasure(t))}</span>
      ${t.rule ? `<span>rule ${esc(t.rule)}</span>` : ''}
      ${t.reopened ? `<span class="pill reopened" title="resolved, then over its level again within the reopen window">reopened ×${t.reopened}</span>` : ''}
      ${t.audience === 'engineer' ? '<span class="pill eng" title="for the engineers: data quality, silent sources, offline edges">engineering</span>' : ''}
      ${ackOverdue ? `<span class="overdue">ack overdue since ${fmtClock(t.ack_due, off)}</span>` : ''}
      ${!ackOverdue && resOverdue ? `<span class="overdue">resolve overdue since ${fmtClock(t.resolve_due, off)}</span>` : ''}
      ${!open && t.closed_at ? `<span>closed ${fmtClock(t.closed_at, off)}${t.resolved_by ? ` by <b>${esc(t.resolved_by)}</b>` : ''}</span>` : ''}
    </div>
    ${t.resolution ? `<div class="note">“${esc(t.resolution)}”</div>` : ''}
    ${acts.length ? `<div class="acts">${acts.join('')}</div>` : ''}
  </li>`;
}

/** Pins of the open tickets, or of `asOf` (the tickets open at the replay's time). */
function renderPins(asOf) {
  if (!S.pinLayer) return;
  if (asOf === undefined && S.replay.active) return; // live updates do not repaint a replay
  S.pinLayer.clearLayers();
  const perZone = new Map();
  const list = asOf || [...S.tickets.values()].filter(isOpen);
  for (const t of [...list].sort((a, b) => a.id - b.id)) {
    const geom = S.geo.get(t.zone);
    const c = geom && centroid(geom);
    if (!c) continue;
    const n = perZone.get(t.zone) || 0;
    perZone.set(t.zone, n + 1);
    const m = L.marker(c, {
      icon: L.divIcon({
        className: '',
        iconSize: [40, 24],
        iconAnchor: [-14 - n * 44, 46],
        html: `<div class="ticket-pin ${esc(t.level)}${S.fresh.has(t.id) ? ' blink' : ''}" data-ticket-pin="${t.id}" title="Ticket #${t.id}">#${t.id}</div>`,
      }),
      zIndexOffset: 1000,
    });
    m.bindTooltip(
      `<div class="tip-name">Ticket #${t.id} — ${esc(zoneName(t.zone))}</div>
       <div><span class="badge ${esc(t.level)}">${esc(t.level)}</span> ${esc(stateLabel(t))} → ${esc(assigneeName(t))}</div>
       <div class="muted">open ${fmtDuration(ageOf(t.opened_at))}</div>`,
      { className: 'zone-tip', direction: 'top' },
    );
    m.on('click', () => {
      selectZone(t.zone);
      const li = document.querySelector(`li.ticket[data-ticket="${t.id}"]`);
      if (li) li.scrollIntoView({ behavior: 'smooth', block: 'center' });
    });
    m.addTo(S.pinLayer);
  }
}

// ── periodic ─────────────────────────────────────────────────────────────────────────────────────

let lastQueueRender = 0;
function tick() {
  const off = S.siteInfo?.utc_offset_minutes;
  document.getElementById('clock').textContent = `${fmtClock(Date.now(), off, true)} site time`;
  if (Date.now() - lastQueueRender > 15000) {
    lastQueueRender = Date.now();
    if (!document.querySelector('dialog[open]')) renderQueue();
    if (S.selected && !S.replay.active && Date.now() % 30000 < 15000) refreshChart();
  }
  // The timeline follows the data once a minute (not while replaying: the window would move under the cursor).
  if (Date.now() - lastTimeline > 60000 && S.replay.data && !S.replay.active && S.zones.size <= 80) {
    lastTimeline = Date.now();
    S.replay.data = null;
    loadTimeline().catch(() => {});
  }
}
let lastTimeline = Date.now();

function renderLegend() {
  document.getElementById('legend').innerHTML =
    LEVELS.map((l) => `<div><i style="background:${LEVEL_COLOR[l]}"></i>${l}</div>`).join('') +
    `<div><i class="pin-i"></i>open ticket</div><div><i class="edge-i"></i>edge online</div><div><i class="edge-deg"></i>edge degraded</div><div><i class="edge-off"></i>edge offline</div>`;
}

main().catch((e) => {
  console.error(e);
  if (e.status !== 401) fatal(e.message);
});
