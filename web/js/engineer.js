// Engineers' console: KPIs against the 70/80/95 targets, the engineers' own tickets, rules per zone, sources'
// health, cameras' models and settings (models.js), and replay & tuning (tuning.js).
import {
  api, captureToken, me, liveUpdates, renderIdentity, esc,
  fmtNum, fmtDensity, fmtDuration, fmtDateTime, ageOf, fmtMetric, sortedLevels,
} from './api.js';
import { renderEngineerTickets } from './eng_tickets.js';
import { initTuning } from './tuning.js';
import { renderModels } from './models.js';

const S = { who: null, sites: [], site: '', zones: new Map(), edges: [] };
const offsetOf = (site) => S.sites.find((s) => s.id === site)?.utc_offset_minutes;

async function main() {
  captureToken();
  try {
    S.who = await me();
  } catch (e) {
    if (e.status !== 401) document.querySelector('main').prepend(errorBox(`Cannot reach the centre: ${e.message}`));
    return;
  }
  renderIdentity(S.who);
  if (S.who.role === 'grid_worker') {
    location.replace('worker.html');
    return;
  }
  S.sites = await api('/sites');
  const sel = document.getElementById('site');
  sel.innerHTML += S.sites.map((s) => `<option value="${esc(s.id)}">${esc(s.name || s.id)}</option>`).join('');
  // A city's console (thousands of zones) opens on its first site; "all sites" stays one choice away.
  const zonesInAll = S.sites.reduce((n, s) => n + (s.zones || 0), 0);
  S.site = new URLSearchParams(location.search).get('site') || (zonesInAll > 400 ? S.sites[0]?.id || '' : '');
  sel.value = S.site;
  sel.onchange = () => {
    S.site = sel.value;
    const u = new URL(location.href);
    if (S.site) u.searchParams.set('site', S.site);
    else u.searchParams.delete('site');
    history.replaceState(null, '', u.pathname + u.search + u.hash);
    refreshAll();
  };
  document.getElementById('kpi-period').onchange = renderKpis;
  renderTools();
  await refreshAll();
  liveUpdates({
    handlers: {
      edge: (e) => {
        const i = S.edges.findIndex((x) => x.site === e.site && x.edge_id === e.edge_id);
        if (i >= 0) S.edges[i] = e;
        else S.edges.push(e);
        renderEdges();
      },
    },
    poll: async () => refreshEdges(),
    pollMs: 10000,
    onStatus: (state, text) => {
      const c = document.getElementById('conn');
      c.dataset.state = state;
      c.textContent = text;
    },
  });
  setInterval(() => {
    renderRules();
    renderEdges();
    renderEngineerTickets(S.site, offsetOf);
  }, 10000);
}

function errorBox(msg) {
  const d = document.createElement('div');
  d.className = 'error-box';
  d.textContent = msg;
  return d;
}

const q = () => (S.site ? `?site=${encodeURIComponent(S.site)}` : '');

async function refreshAll() {
  try {
    for (const z of await api('/zones' + q())) S.zones.set(`${z.site}/${z.zone}`, z);
  } catch {
    /* names fall back to ids */
  }
  await Promise.all([renderKpis(), renderRules(), refreshEdges(), renderEngineerTickets(S.site, offsetOf)]);
}

function unavailable(e, what) {
  if (e.status === 404) return `<p class="muted">The centre does not serve ${esc(what)} yet.</p>`;
  if (e.status === 403) return `<p class="muted">Your role may not read ${esc(what)}.</p>`;
  return `<p class="muted">${esc(e.message)}</p>`;
}

// ── KPIs ─────────────────────────────────────────────────────────────────────────────────────────

async function renderKpis() {
  const box = document.getElementById('kpi-body');
  const hours = Number(document.getElementById('kpi-period').value);
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600e3);
  const params = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  if (S.site) params.set('site', S.site);
  let k;
  try {
    k = await api('/kpis?' + params.toString());
  } catch (e) {
    if (e.status !== 401) box.innerHTML = unavailable(e, '/kpis');
    return;
  }
  const tiers = k.tiers || {};
  const targets = { grid: 0.7, community: 0.8, subdistrict: 0.95, ...(k.targets || {}) };
  const labels = {
    grid: ['Handled in the grid', '小事不出网格'],
    community: ['Closed at community level or below', '大事不出社村'],
    subdistrict: ['Resolved at sub-district level or below', '难事不出街镇'],
  };
  const tierCards = ['grid', 'community', 'subdistrict']
    .map((t) => {
      const v = tiers[t];
      const target = targets[t];
      const ok = v != null && v >= target;
      const pct = v == null ? '–' : `${Math.round(v * 100)} %`;
      return `<div class="tier" data-tier="${t}">
        <div class="k">${esc(labels[t][0])} <span class="muted">${labels[t][1]}</span></div>
        <div class="v ${v == null ? '' : ok ? 'ok' : 'bad'}">${pct}</div>
        <div class="bar-track" role="img" aria-label="${pct} against a target of ${Math.round(target * 100)} %">
          <div class="bar-fill ${ok ? 'ok' : 'bad'}" style="width:${Math.round((v || 0) * 100)}%"></div>
          <div class="bar-target" style="left:${Math.round(target * 100)}%" title="target"></div>
        </div>
        <div class="small muted">target ${Math.round(target * 100)} % · ${v == null ? 'no resolved tickets yet' : ok ? 'met' : 'below target'}</div>
      </div>`;
    })
    .join('');
  const timeCard = (title, t) => `<div class="kpi-card"><div class="k">${title}</div>
      <div class="v">${t && t.p50 != null ? fmtDuration(t.p50) : '–'} <span class="sub">median</span></div>
      <div class="sub">p90 ${t && t.p90 != null ? fmtDuration(t.p90) : '–'} · mean ${t && t.mean != null ? fmtDuration(t.mean) : '–'}</div></div>`;
  const workers = (k.workers || [])
    .map(
      (w) => `<tr><td>${esc(w.worker)}</td><td class="num">${fmtNum(w.assigned)}</td><td class="num">${fmtNum(w.acknowledged)}</td>
      <td class="num">${fmtNum(w.resolved)}</td><td class="num">${fmtNum(w.escalated)}</td><td class="num">${w.mean_ack_s != null ? fmtDuration(w.mean_ack_s) : '–'}</td>
      <td class="num">${fmtNum(w.with_note)}</td></tr>`,
    )
    .join('');
  const depts = (k.departments || [])
    .map(
      (d) => `<tr><td>${esc(d.department)}</td><td class="num">${fmtNum(d.whistles)}</td><td class="num">${fmtNum(d.resolved)}</td>
      <td class="num">${d.mean_resolve_s != null ? fmtDuration(d.mean_resolve_s) : '–'}</td></tr>`,
    )
    .join('');
  box.innerHTML = `
    <p class="muted">${fmtNum(k.tickets)} ticket${k.tickets === 1 ? "" : "s"} raised, ${fmtNum(k.resolved)} resolved in the period${S.site ? '' : ', all sites'}.</p>
    <div class="tiers">${tierCards}</div>
    <div class="times">
      ${timeCard('Time to acknowledge', k.time_to_ack_s)}
      ${timeCard('Time to on site', k.time_on_site_s)}
      ${timeCard('Time to relief (density back under the clear level)', k.time_to_relief_s)}
    </div>
    <div class="two">
      <div><h3>Grid workers</h3>${
        workers
          ? `<table class="grid"><thead><tr><th>worker</th><th class="num">assigned</th><th class="num">ack’d</th><th class="num">resolved</th><th class="num">escalated</th><th class="num">mean ack</th><th class="num">with note</th></tr></thead><tbody>${workers}</tbody></table>`
          : '<p class="muted">No tickets assigned in the period.</p>'
      }</div>
      <div><h3>Departments (whistles 吹哨)</h3>${
        depts
          ? `<table class="grid"><thead><tr><th>department</th><th class="num">whistles</th><th class="num">resolved</th><th class="num">mean resolve</th></tr></thead><tbody>${depts}</tbody></table>`
          : '<p class="muted">No whistle was blown in the period.</p>'
      }</div>
    </div>`;
}

// ── rules ────────────────────────────────────────────────────────────────────────────────────────

async function renderRules() {
  const box = document.getElementById('rules-body');
  let rules;
  try {
    rules = await api('/rules' + q());
  } catch (e) {
    if (e.status !== 401) box.innerHTML = unavailable(e, '/rules');
    return;
  }
  document.getElementById('rules-note').textContent = `${rules.length} rules · refreshed ${new Date().toLocaleTimeString('en-GB')}`;
  const byZone = new Map();
  for (const r of rules) {
    const k = `${r.site}/${r.zone}`;
    if (!byZone.has(k)) byZone.set(k, []);
    byZone.get(k).push(r);
  }
  if (!byZone.size) {
    box.innerHTML = '<p class="muted">No rules configured.</p>';
    return;
  }
  box.innerHTML = [...byZone.entries()]
    .map(([k, rs]) => {
      const z = S.zones.get(k);
      const off = offsetOf(rs[0].site);
      const rows = rs
        .map((r) => {
          const st = r.state || {};
          const levels = sortedLevels(r.levels)
            .map(([lv, v]) => `<span class="badge ${esc(lv)}">${esc(lv)}</span> ${esc(typeof v === 'object' ? JSON.stringify(v) : fmtMetric(r.metric, v))}`)
            .join(' ');
          return `<tr data-rule="${esc(r.rule)}">
            <td><b>${esc(r.rule)}</b><div class="muted small">${esc(r.metric)}${r.audience ? ` → ${esc(r.audience.replace('_', ' '))}` : ''}</div></td>
            <td>${levels}</td>
            <td class="num small">${esc(r.for_s)} s / ${esc(r.clear_for_s)} s / ${esc(r.cooldown_s)} s</td>
            <td>${r.active_now === false ? '<span class="pill">inactive now</span>' : '<span class="pill online">active</span>'}</td>
            <td><span class="badge ${esc(st.level || 'normal')}">${esc(st.level || 'normal')}</span></td>
            <td class="num">${fmtMetric(r.metric, st.last_value)}</td>
            <td class="small">${st.pending_since ? `pending since ${fmtDateTime(st.pending_since, off)}<br>` : ''}${
              st.firing_since ? `firing since ${fmtDateTime(st.firing_since, off)}` : ''
            }</td>
            <td class="small">${st.last_fired ? `${fmtDateTime(st.last_fired, off)}<br><span class="muted">${fmtDuration(ageOf(st.last_fired))} ago</span>` : '<span class="muted">never</span>'}</td>
          </tr>`;
        })
        .join('');
      return `<div class="zone-rules" data-zone="${esc(k)}"><h3>${esc(z?.name || k)} <span class="muted small">${esc(k)}${
        z ? ` · now ${fmtDensity(z.density)} /m² · ${esc(z.level)}` : ''
      }</span></h3>
      <table class="grid rules"><colgroup><col style="width:15%"><col style="width:23%"><col style="width:11%"><col style="width:8%"><col style="width:9%"><col style="width:9%"><col style="width:14%"><col style="width:11%"></colgroup><thead><tr><th>rule</th><th>levels</th><th class="num">for / clear / cooldown</th><th>schedule</th><th>state</th><th class="num">current value</th><th>since</th><th>last firing</th></tr></thead><tbody>${rows}</tbody></table></div>`;
    })
    .join('');
}

// ── edges, sources, models ───────────────────────────────────────────────────────────────────────

async function refreshEdges() {
  try {
    S.edges = await api('/edges');
  } catch (e) {
    if (e.status !== 401) document.getElementById('edges-body').innerHTML = unavailable(e, '/edges');
    return;
  }
  renderEdges();
}

function health(s) {
  const age = ageOf(s.last_ok);
  if (s.last_ok == null) return ['health-bad', 'never delivered'];
  if (age > 300) return ['health-stale', `silent for ${fmtDuration(age)}`];
  return ['health-ok', `ok ${fmtDuration(age)} ago`];
}

function renderEdges() {
  const edges = S.edges.filter((e) => !S.site || e.site === S.site).sort((a, b) => (a.site + a.edge_id).localeCompare(b.site + b.edge_id));
  const box = document.getElementById('edges-body');
  if (!edges.length) {
    box.innerHTML = '<p class="muted">No edge has reported its status yet.</p>';
    renderModels({ role: S.who.role, site: S.site, offsetOf });
    return;
  }
  box.innerHTML = edges
    .map((e) => {
      const off = offsetOf(e.site);
      const srcs = (e.sources || [])
        .map((s) => {
          const [cls, txt] = health(s);
          const rej = Object.entries(s.rejected || {});
          return `<tr data-source="${esc(s.id)}"><td><b>${esc(s.id)}</b></td><td>${esc(s.kind)}</td><td class="${cls}">${esc(txt)}</td>
            <td class="num">${fmtNum(s.accepted)}</td>
            <td>${rej.length ? rej.map(([r, n]) => `${esc(r)} <b class="num">${fmtNum(n)}</b>`).join(', ') : '<span class="muted">none</span>'}</td>
            <td>${s.last_error ? `<span class="err">${esc(s.last_error)}</span>` : '<span class="muted">–</span>'}</td></tr>`;
        })
        .join('');
      return `<div class="edge-card" data-edge="${esc(e.edge_id)}" data-state="${esc(e.state)}">
        <div class="eh"><b>${esc(e.edge_id)}</b><span class="pill ${e.state === 'online' ? 'online' : 'offline'}">${esc(e.state)}</span>${
          e.degraded ? `<span class="pill degraded" title="${esc(e.degraded)}">degraded</span>` : ''
        }
          <span class="muted">site ${esc(e.site)} · version ${esc(e.version || '–')} · queue ${fmtNum(e.queue_depth)}${
            e.queue_dropped ? ` · <span class="health-bad">${fmtNum(e.queue_dropped)} dropped</span>` : ' · none dropped'
          } · last status ${fmtDateTime(e.received_at || e.ts, off)} (${fmtDuration(ageOf(e.received_at || e.ts))} ago)</span></div>
        ${e.degraded ? `<p class="health-stale small">Degraded: ${esc(e.degraded)}</p>` : ''}
        ${
          srcs
            ? `<table class="grid"><thead><tr><th>source</th><th>kind</th><th>health</th><th class="num">accepted</th><th>rejected by reason</th><th>last error</th></tr></thead><tbody>${srcs}</tbody></table>`
            : '<p class="muted">No sources reported (an offline edge’s Last Will carries none).</p>'
        }
      </div>`;
    })
    .join('');
  renderModels({ role: S.who.role, site: S.site, offsetOf });
}

// ── replay & tuning (tuning.js) ───────────────────────────────────────────────────────────────────

function renderTools() {
  initTuning({ sites: S.sites, site: S.site, offsetOf, onApplied: () => refreshAll() }).catch((e) => {
    if (e.status !== 401) document.getElementById('tools-body').innerHTML = unavailable(e, '/rulesets');
  });
}

main().catch((e) => {
  console.error(e);
  if (e.status !== 401) document.querySelector('main').prepend(errorBox(e.message));
});
