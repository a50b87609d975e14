// The zone panel beside the map: a zone's facts, its density chart (every source and the fusion), the rules
// that judge it with their state, and what each source reported last.

import { api, esc, fmtNum, fmtDensity, fmtClock, fmtDateTime, trendText, fmtMetric, sortedLevels } from './api.js';
import { drawChart } from './chart.js';

/** The centre's fusion of every source of a zone, stored as its own series: what the map showed. */
const MAP_SERIES = 'crowdgrid-central/fused';

let S;
let hooks; // { hooks.drawStrip() }

export function initZonePanel(state, h) {
  S = state;
  hooks = h;
}

export async function selectZone(id) {
  const prev = S.selected;
  S.selected = id || null;
  if (prev && S.layers.get(prev)) S.layers.get(prev).getElement().classList.remove('selected');
  document.getElementById('zone-panel').classList.toggle('hidden', !id);
  document.getElementById('zone-hint').classList.toggle('hidden', !!id);
  hooks.drawStrip();
  if (!id) return;
  const layer = S.layers.get(id);
  if (layer) {
    layer.getElement().classList.add('selected');
    layer.bringToFront();
  }
  const z = S.zones.get(id);
  document.getElementById('zone-title').innerHTML = `${esc(z?.name || id)} <span class="muted small">${esc(id)}</span>`;
  renderZoneFacts();
  document.getElementById('zone-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
  await Promise.all([refreshChart(), renderRules(), renderSources()]);
}

export function renderZoneFacts() {
  const z = S.zones.get(S.selected);
  if (!z) return;
  const t = trendText(z.trend_per_min);
  const cap = z.capacity && z.count != null ? `${Math.round((100 * z.count) / z.capacity)} %` : '–';
  const th = z.thresholds || {};
  document.getElementById('zone-facts').innerHTML = `
    <div class="fact"><div class="k">level</div><div class="v"><span class="badge ${esc(z.level)}">${esc(z.level)}</span></div></div>
    <div class="fact"><div class="k">people/m²</div><div class="v num">${fmtDensity(z.density)}</div></div>
    <div class="fact"><div class="k">people</div><div class="v num">${fmtNum(z.count)}</div></div>
    <div class="fact"><div class="k">trend</div><div class="v trend ${t.cls}" title="${esc(t.text)}">${t.arrow} <small class="small">${esc(t.text)}</small></div></div>
    <div class="fact"><div class="k">of capacity</div><div class="v num">${cap}</div></div>
    <div class="fact"><div class="k">area</div><div class="v num">${fmtNum(z.area_m2)} <small>m²</small></div></div>
    <div class="fact" style="grid-column: span 3"><div class="k">grid · kind · thresholds (notice / warning / critical)</div>
      <div>${esc(z.grid)} · ${esc(z.kind)} · <span class="num">${th.notice ?? '–'} / ${th.warning ?? '–'} / ${th.critical ?? '–'}</span> people/m²</div></div>`;
}

export async function refreshChart() {
  const id = S.selected;
  if (!id) return;
  const z = S.zones.get(id);
  const hours = Number(document.getElementById('chart-hours').value);
  const to = Date.now();
  const from = to - hours * 3600e3;
  const box = document.getElementById('chart');
  let points;
  try {
    points = await api(
      `/zones/${encodeURIComponent(S.site)}/${encodeURIComponent(id)}/series?from=${new Date(from).toISOString()}&limit=100000`,
    );
  } catch (e) {
    if (e.status !== 401) box.innerHTML = `<p class="muted">${esc(e.message)}</p>`;
    return;
  }
  if (S.selected !== id) return;
  const bySource = new Map();
  for (const p of points) {
    if (!bySource.has(p.source_id)) bySource.set(p.source_id, { kind: p.source, points: [] });
    bySource.get(p.source_id).points.push([Date.parse(p.ts), p.density]);
  }
  const series = [...bySource.entries()]
    .map(([sid, s]) => ({ label: sid === MAP_SERIES ? 'map (all sources)' : sid.includes('/') ? sid.split('/').slice(1).join('/') : sid, kind: s.kind, fused: sid === MAP_SERIES, points: s.points }))
    .sort((a, b) => Number(a.fused) - Number(b.fused));
  drawChart(box, series, { from, to, thresholds: z?.thresholds, offsetMin: S.siteInfo?.utc_offset_minutes, title: `Density of ${z?.name}` });
  drawFlows(points, from, to, z);
}

/**
 * People (and a camera line's vehicles) in and out per minute, from the sources that report flows (a gate's
 * turnstiles, a camera's counting line): one line each way per source and class. Hidden for a zone whose sources
 * report none.
 */
function drawFlows(points, from, to, z) {
  const flows = new Map();
  for (const p of points) {
    const flowsOf = [
      ['inflow_per_min', 'people in'],
      ['outflow_per_min', 'people out'],
      ['vehicle_inflow_per_min', 'vehicles in'],
      ['vehicle_outflow_per_min', 'vehicles out'],
    ];
    for (const [key, dir] of flowsOf) {
      if (p[key] == null) continue;
      const name = `${p.source_id.includes('/') ? p.source_id.split('/').slice(1).join('/') : p.source_id} ${dir}`;
      if (!flows.has(name)) flows.set(name, { label: name, kind: p.source, fused: dir === 'people in', points: [] });
      flows.get(name).points.push([Date.parse(p.ts), p[key]]);
    }
  }
  document.getElementById('flow-box').classList.toggle('hidden', flows.size === 0);
  if (!flows.size) return;
  drawChart(document.getElementById('flow-chart'), [...flows.values()], {
    from,
    to,
    height: 150,
    offsetMin: S.siteInfo?.utc_offset_minutes,
    title: `People per minute through the gates and lines of ${z?.name}`,
  });
}

async function renderRules() {
  const box = document.getElementById('zone-rules');
  if (!S.rules) {
    try {
      S.rules = await api(`/rules?site=${encodeURIComponent(S.site)}`);
    } catch (e) {
      box.innerHTML = `<p class="muted">${e.status === 404 ? 'The centre does not serve /rules yet.' : esc(e.message)}</p>`;
      return;
    }
  }
  const off = S.siteInfo?.utc_offset_minutes;
  const rules = S.rules.filter((r) => r.zone === S.selected);
  if (!rules.length) {
    box.innerHTML = '<p class="muted">No rules for this zone.</p>';
    return;
  }
  box.innerHTML = `<table class="grid compact"><thead><tr><th>rule</th><th>levels</th><th>now</th><th>last fired</th></tr></thead><tbody>${rules
    .map((r) => {
      const lv = sortedLevels(r.levels)
        .map(([k, v]) => `${esc(k)} ${esc(typeof v === 'object' ? JSON.stringify(v) : fmtMetric(r.metric, v))}`)
        .join('<br>');
      const st = r.state || {};
      return `<tr><td><b>${esc(r.rule)}</b><div class="muted small">${esc(r.metric)} · for ${esc(r.for_s)} s · clear ${esc(r.clear_for_s)} s · cooldown ${esc(r.cooldown_s)} s${
        r.active_now === false ? ' · <b>inactive now</b>' : ''
      }</div></td><td class="small">${lv}</td><td><span class="badge ${esc(st.level || 'normal')}">${esc(st.level || 'normal')}</span><div class="small num">${
        fmtMetric(r.metric, st.last_value)
      }</div>${st.firing_since ? `<div class="small">firing since ${fmtClock(st.firing_since, off)}</div>` : ''}</td><td class="small">${
        st.last_fired ? fmtDateTime(st.last_fired, off) : 'never'
      }</td></tr>`;
    })
    .join('')}</tbody></table>`;
}

async function renderSources() {
  const box = document.getElementById('zone-sources');
  const id = S.selected;
  let z;
  try {
    z = (await api(`/zones?site=${encodeURIComponent(S.site)}`)).find((x) => x.zone === id);
  } catch (e) {
    return;
  }
  if (S.selected !== id) return;
  const off = S.siteInfo?.utc_offset_minutes;
  const rows = Object.entries(z?.sources || {});
  box.innerHTML = rows.length
    ? `<table class="grid compact"><thead><tr><th>source</th><th class="num">people</th><th class="num">/m²</th><th class="num">conf.</th><th>at</th></tr></thead><tbody>${rows
        .map(
          ([sid, s]) =>
            `<tr><td>${esc(sid)}<div class="muted small">${esc(s.kind)}</div></td><td class="num">${fmtNum(s.count)}</td><td class="num">${fmtDensity(
              s.density,
            )}</td><td class="num">${fmtNum(s.confidence, 2)}</td><td class="num small">${fmtClock(s.ts, off, true)}</td></tr>`,
        )
        .join('')}</tbody></table>`
    : '<p class="muted">No source has reported for this zone yet.</p>';
}
