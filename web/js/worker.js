// Grid worker's phone view: my open tickets nearest first, density now and trend, the four actions, live.
import {
  api, apiObjectUrl, captureToken, me, liveUpdates, renderIdentity, toast, esc, logout,
  LEVEL_RANK, isOpen, queueOrder, STATE_LABEL, TIER_LABEL,
  fmtNum, fmtDensity, fmtMeasure, fmtDuration, fmtClock, ageOf, trendText, centroid, distanceM, gridNames,
} from './api.js';

const S = {
  who: null,
  tickets: new Map(),
  zones: new Map(), // "site/zone" → zone
  centres: new Map(), // "site/zone" → [lat, lng]
  offsets: new Map(), // site → utc offset minutes
  here: null, // [lat, lng] of the device, when geolocation answers
  geoState: 'asking',
  fresh: new Set(),
  busy: new Set(),
  prevNotes: new Map(), // reopened ticket id → its last resolve note ('' none, null being fetched)
  snaps: new Map(), // ticket id → object URL of its camera snapshot, or '' when there is none
  names: new Map(), // worker id → roster name
};

const key = (site, zone) => `${site}/${zone}`;

async function main() {
  captureToken();
  try {
    S.who = await me();
  } catch (e) {
    if (e.status !== 401) showError(`Cannot reach the centre: ${e.message}`);
    return;
  }
  renderIdentity(S.who);
  document.getElementById('logout2').onclick = logout;
  document.getElementById('whoami').textContent =
    S.who.role === 'grid_worker'
      ? `${S.who.worker || S.who.name} · grid ${gridNames(S.who.grids).join(', ') || '–'}`
      : `${S.who.name} (${S.who.role.replace('_', ' ')}): every open ticket`;
  if (S.who.role !== 'grid_worker') document.getElementById('mine-h').firstChild.textContent = 'Open tickets ';
  wireDialog();
  locate();
  await Promise.all([loadSites(), loadGeometry()]);
  // The header by the roster name, once the rosters are in.
  if (S.who.role === 'grid_worker' && S.names.has(S.who.worker)) {
    document.getElementById('whoami').textContent = `${S.names.get(S.who.worker)} · grid ${gridNames(S.who.grids).join(', ') || '–'}`;
  }
  await Promise.all([refreshZones(), refreshTickets()]);
  liveUpdates({
    // A zone's level changes only: the phone needs levels (the resolve warning), not every reading.
    zones: 'level',
    handlers: { ticket: onTicket, zone: onZone },
    poll: async () => Promise.all([refreshZones(), refreshTickets()]),
    onStatus: (state, text) => {
      const c = document.getElementById('conn');
      c.dataset.state = state;
      c.textContent = text;
    },
  });
  setInterval(render, 15000);
}

function showError(msg) {
  const box = document.createElement('div');
  box.className = 'error-box';
  box.textContent = msg;
  document.querySelector('main').prepend(box);
}

async function loadSites() {
  try {
    for (const s of await api('/sites')) {
      S.offsets.set(s.id, s.utc_offset_minutes);
      for (const w of s.hierarchy?.workers || []) S.names.set(w.id, w.name);
    }
  } catch {
    /* times then show in the phone's own zone */
  }
}

async function loadGeometry() {
  try {
    const fc = await api('/zones.geojson');
    for (const f of fc.features || []) {
      const c = centroid(f.geometry);
      if (c) S.centres.set(key(f.properties.site, f.properties.zone), c);
      S.zones.set(key(f.properties.site, f.properties.zone), { ...f.properties });
    }
  } catch {
    /* distances unavailable */
  }
}

async function refreshZones() {
  try {
    for (const z of await api('/zones')) {
      const k = key(z.site, z.zone);
      S.zones.set(k, { ...(S.zones.get(k) || {}), ...z });
    }
  } catch (e) {
    if (e.status === 401) return;
  }
  render();
}

async function refreshTickets() {
  const list = await api('/tickets?state=all');
  const seen = new Set();
  for (const t of list) {
    seen.add(t.id);
    S.tickets.set(t.id, t);
  }
  for (const id of [...S.tickets.keys()]) if (!seen.has(id)) S.tickets.delete(id);
  render();
}

function onZone(z) {
  const k = key(z.site, z.zone);
  S.zones.set(k, { ...(S.zones.get(k) || {}), ...z });
  render();
}

function onTicket(msg) {
  const t = msg.ticket || msg;
  if (!t || t.id == null) return;
  const known = S.tickets.has(t.id);
  S.tickets.set(t.id, { ...(S.tickets.get(t.id) || {}), ...t });
  if ((msg.event === 'raised' || !known) && isOpen(t) && mine(t)) {
    S.fresh.add(t.id);
    setTimeout(() => S.fresh.delete(t.id), 20000);
    toast(`New ticket #${t.id}: ${zoneName(t)} — ${t.level}`);
    if (navigator.vibrate && navigator.userActivation?.hasBeenActive) navigator.vibrate([200, 100, 200]);
  }
  render();
}

function mine(t) {
  return S.who.role !== 'grid_worker' || t.assignee === (S.who.worker || S.who.name);
}

function zoneName(t) {
  return S.zones.get(key(t.site, t.zone))?.name || t.zone;
}

// ── location ─────────────────────────────────────────────────────────────────────────────────────

function locate() {
  if (!('geolocation' in navigator) || !window.isSecureContext) {
    S.geoState = 'unavailable';
    renderSortNote();
    return;
  }
  navigator.geolocation.watchPosition(
    (pos) => {
      S.here = [pos.coords.latitude, pos.coords.longitude];
      S.geoState = 'ok';
      render();
    },
    () => {
      S.geoState = 'denied';
      render();
    },
    { enableHighAccuracy: true, maximumAge: 30000, timeout: 10000 },
  );
  renderSortNote();
}

function distanceTo(t) {
  const c = S.centres.get(key(t.site, t.zone));
  return S.here && c ? distanceM(S.here, c) : null;
}

function renderSortNote() {
  const el = document.getElementById('sort-note');
  el.dataset.sort = S.here ? 'distance' : 'severity';
  el.textContent = S.here
    ? 'Nearest first, from your location.'
    : S.geoState === 'asking'
      ? 'Finding your location… meanwhile: most severe first, then oldest.'
      : 'Your location is unavailable: most severe first, then oldest.';
}

// ── rendering ────────────────────────────────────────────────────────────────────────────────────

function order(a, b) {
  if (S.here) {
    const da = distanceTo(a);
    const db = distanceTo(b);
    if (da != null && db != null && da !== db) return da - db;
  }
  return queueOrder(a, b);
}

function render() {
  renderSortNote();
  const all = [...S.tickets.values()];
  const open = all.filter(isOpen);
  const mineOpen = open.filter(mine).sort(order);
  // Engineers' tickets (an edge offline, a silent source) are not the grid worker's to act on.
  const others = open.filter((t) => !mine(t) && t.audience !== 'engineer').sort(order);
  const since = Date.now() - 12 * 3600e3;
  const done = all
    .filter((t) => !isOpen(t) && mine(t) && Date.parse(t.closed_at || t.updated_at) >= since)
    .sort((a, b) => Date.parse(b.closed_at || b.updated_at) - Date.parse(a.closed_at || a.updated_at));
  fill('mine', mineOpen, true, 'Nothing open for you right now. 暂无待办');
  fill('others', others, false, 'No other open tickets in your grids.');
  fill('done', done.slice(0, 20), false, 'None.');
  document.getElementById('others-sec').classList.toggle('hidden', S.who.role !== 'grid_worker');
}

function fill(id, list, actions, emptyText) {
  document.getElementById(`${id}-count`).textContent = list.length;
  const ol = document.getElementById(id);
  // Keep a note being typed: only re-render when no dialog is open.
  if (document.querySelector('dialog[open]')) return;
  ol.innerHTML = list.length ? list.map((t) => card(t, actions)).join('') : `<li class="empty">${esc(emptyText)}</li>`;
  for (const b of ol.querySelectorAll('button[data-act]')) b.onclick = () => onAction(Number(b.dataset.id), b.dataset.act);
  for (const b of ol.querySelectorAll('button[data-snap]')) b.onclick = () => showSnapshot(b);
}

function card(t, actions) {
  const z = S.zones.get(key(t.site, t.zone)) || {};
  const off = S.offsets.get(t.site);
  const tr = trendText(z.trend_per_min);
  const dist = distanceTo(t);
  const open = isOpen(t);
  const now = Date.now();
  const ackLate = open && !t.acknowledged_at && t.ack_due && Date.parse(t.ack_due) < now;
  const resLate = open && t.resolve_due && Date.parse(t.resolve_due) < now;
  let due = '';
  if (open && !t.acknowledged_at && t.ack_due) {
    due = ackLate
      ? `<div class="due late">Acknowledge overdue by ${fmtDuration((now - Date.parse(t.ack_due)) / 1000)}</div>`
      : `<div class="due">Acknowledge within ${fmtDuration((Date.parse(t.ack_due) - now) / 1000)}</div>`;
  } else if (open && t.resolve_due) {
    due = resLate
      ? `<div class="due late">Resolution overdue by ${fmtDuration((now - Date.parse(t.resolve_due)) / 1000)}</div>`
      : `<div class="due">Resolve by ${fmtClock(t.resolve_due, off)}</div>`;
  }
  const busy = S.busy.has(t.id);
  const st = t.state;
  const btns =
    actions && open
      ? `<div class="btns">
      <button type="button" class="big ack" data-act="acknowledge" data-id="${t.id}" ${busy || !['raised', 'dispatched'].includes(st) ? 'disabled' : ''}>Acknowledge <span class="zh">收到</span></button>
      <button type="button" class="big onsite" data-act="on_site" data-id="${t.id}" ${busy || st === 'on_site' ? 'disabled' : ''}>On site <span class="zh">到场</span></button>
      <button type="button" class="big resolve" data-act="resolve" data-id="${t.id}" ${busy ? 'disabled' : ''}>Resolve <span class="zh">办结</span></button>
      <button type="button" class="big whistle" data-act="escalate" data-id="${t.id}" ${busy || t.tier === 'department' ? 'disabled' : ''}>Whistle <span class="zh">吹哨</span></button>
    </div>`
      : '';
  const density = open ? z.density : t.density;
  return `<li class="card${S.fresh.has(t.id) ? ' new' : ''}" data-ticket="${t.id}" data-zone="${esc(t.zone)}" data-state="${esc(st)}" data-level="${esc(t.level)}">
    <div class="top"><span class="badge ${esc(t.level)}">${esc(t.level)}</span><span class="zname">${esc(zoneName(t))}</span></div>
    <div class="meta">
      <span>#${t.id}</span>
      <span data-role="state"><b>${esc(STATE_LABEL[st] || st)}</b></span>
      ${t.reopened ? `<span class="pill" title="resolved, then over its level again within the reopen window">reopened ×${t.reopened}</span>` : ''}
      <span>raised <b>${fmtDuration(ageOf(t.opened_at))}</b> ago</span>
      ${dist != null ? `<span><b>${dist < 1000 ? `${Math.round(dist)} m` : `${(dist / 1000).toFixed(1)} km`}</b> away</span>` : ''}
      ${t.assignee && !mine(t) ? `<span>→ ${esc(S.names.get(t.assignee) || t.assignee)}</span>` : ''}
      ${t.tier && t.tier !== 'grid' ? `<span>tier ${esc(TIER_LABEL[t.tier] || t.tier)}</span>` : ''}
    </div>
    ${
      open
        ? `<div class="now"><span class="dens">${fmtDensity(density)} <small>people/m² now</small></span>
      <span class="trend ${tr.cls}">${tr.arrow} ${esc(tr.text)}</span>
      <span class="muted">${fmtNum(z.count)} people · ${esc(t.rule)}: ${esc(fmtMeasure(t))}</span></div>`
        : `<div class="meta">closed ${fmtClock(t.closed_at || t.updated_at, off)}${t.resolved_by ? ` by ${esc(t.resolved_by)}` : ''}</div>`
    }
    ${due}
    ${t.resolution ? `<div class="note">“${esc(t.resolution)}”</div>` : ''}
    ${!t.resolution && t.reopened ? previousNote(t.id) : ''}
    ${open && hasCamera(z) ? snapshot(t.id) : ''}
    ${btns}
  </li>`;
}

/**
 * A reopened ticket's last resolve note (the reopen clears it on the ticket; the trail keeps it): fetched once,
 * so the worker sees what was done before the crowd came back.
 */
function previousNote(id) {
  if (!S.prevNotes.has(id)) {
    S.prevNotes.set(id, null);
    api(`/tickets/${id}`)
      .then((full) => {
        const last = (full.events || []).filter((e) => e.kind === 'resolved').pop();
        S.prevNotes.set(id, last?.detail || '');
        render();
      })
      .catch(() => S.prevNotes.delete(id));
  }
  const note = S.prevNotes.get(id);
  return note ? `<div class="note reopened-note">Reopened — the crowd came back after “${esc(note)}”</div>` : '';
}

/** Whether a camera sees the zone (only then can a ticket of it have a snapshot). */
function hasCamera(z) {
  return Object.values(z?.sources || {}).some((s) => s.kind === 'camera');
}

/** The snapshot of a ticket once fetched, else the button that fetches it. */
function snapshot(id) {
  const url = S.snaps.get(id);
  if (url) return `<img class="evidence" src="${url}" alt="Camera snapshot of ticket ${id}, people blurred">`;
  if (url === '') return '<div class="muted">No camera snapshot for this ticket</div>';
  return `<button type="button" class="snap" data-snap="${id}">Camera snapshot <span class="zh">现场画面</span></button>`;
}

/** Fetches the ticket's evidence snapshot (people blurred at the camera) only when asked for. */
async function showSnapshot(button) {
  const id = Number(button.dataset.snap);
  button.disabled = true;
  try {
    S.snaps.set(id, (await apiObjectUrl(`/tickets/${id}/evidence`)) || '');
    render();
  } catch (e) {
    button.disabled = false;
    showError(e.message);
  }
}

// ── actions ──────────────────────────────────────────────────────────────────────────────────────

let pending = null;

function wireDialog() {
  const dlg = document.getElementById('note-dialog');
  document.getElementById('note-cancel').onclick = () => {
    dlg.close();
    render();
  };
  document.getElementById('note-form').onsubmit = async (ev) => {
    ev.preventDefault();
    const note = document.getElementById('note-text').value.trim();
    if (!note) return;
    dlg.close();
    await act(pending.id, pending.act, { note });
  };
}

async function onAction(id, action) {
  const t = S.tickets.get(id);
  if (!t) return;
  if (action === 'acknowledge' || action === 'on_site') {
    await act(id, action, {});
    return;
  }
  pending = { id, act: action };
  document.getElementById('note-title').textContent =
    action === 'resolve' ? `Resolve #${id} — ${zoneName(t)}` : `Blow the whistle on #${id} — ${zoneName(t)}`;
  // Resolving while the zone is still over its level: the ticket would reopen at the next reading — say so first
  // (the stream sends level changes only: the density shown is fetched now).
  if (action === 'resolve') await refreshZones().catch(() => {});
  const z = S.zones.get(key(t.site, t.zone));
  const still = action === 'resolve' && z && ['warning', 'critical'].includes(z.level);
  document.getElementById('note-help').textContent =
    action === 'resolve'
      ? `${still ? `The zone is still at ${z.level} (${fmtDensity(z.density)} people/m²): resolving now reopens the ticket at its next reading unless the crowd has gone. ` : ''}A short note on what you did (required), e.g. “opened the south gate, crowd guided out”.`
      : 'What you cannot handle in the grid: the matter moves up one tier (community → sub-district → department).';
  document.getElementById('note-help').classList.toggle('warn', Boolean(still));
  document.getElementById('note-ok').textContent = action === 'resolve' ? 'Resolve ticket' : 'Escalate';
  const ta = document.getElementById('note-text');
  ta.value = '';
  document.getElementById('note-dialog').showModal();
  ta.focus();
}

async function act(id, action, body) {
  S.busy.add(id);
  render();
  try {
    const t = await api(`/tickets/${id}/${action}`, { method: 'POST', body });
    S.tickets.set(t.id, t);
    const done = { acknowledge: 'acknowledged', on_site: 'marked on site', resolve: 'resolved', escalate: 'escalated' }[action];
    toast(`#${id} ${done}`, 'ok');
  } catch (e) {
    if (e.status === 409) toast(`#${id}: not possible in its current state (${e.message})`, 'error');
    else if (e.status !== 401) toast(e.message, 'error');
  } finally {
    S.busy.delete(id);
    render();
  }
}

void LEVEL_RANK;
main().catch((e) => {
  console.error(e);
  if (e.status !== 401) showError(e.message);
});
