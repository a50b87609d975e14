// Replay & tuning in the engineers' console: edit a site's rules (the whole rules file, as in the repository),
// check it (every problem listed), backtest it against the rules in force over the stored readings (the same
// engine code the centre runs, on data time; nothing is notified), see per zone the map's series with where each
// rule set would have opened and closed tickets, then apply it (a new version with who and why, in force at
// once) or roll back to any earlier version.
import { api, esc, fmtDateTime, fmtDuration, toast } from './api.js';

const T = { sites: [], site: '', offsetOf: () => undefined, onApplied: () => {}, sets: null, zones: [], report: null };
const MAP_SERIES = 'crowdgrid-central/fused';
const COLORS = { notice: '#d6b400', warning: '#f08c00', critical: '#e03131' };

/** Renders the tuning tool into `#tools-body`. */
export async function initTuning({ sites, site, offsetOf, onApplied }) {
  Object.assign(T, { sites, offsetOf, onApplied, site: site || sites[0]?.id || '' });
  const box = document.getElementById('tools-body');
  box.innerHTML = `<div class="tune">
    <div class="tune-bar">
      <label>Site <select id="tune-site">${sites.map((s) => `<option value="${esc(s.id)}">${esc(s.name || s.id)}</option>`).join('')}</select></label>
      <span id="tune-version" class="muted small"></span>
    </div>
    <textarea id="tune-toml" spellcheck="false" rows="16" aria-label="Rules file"></textarea>
    <div class="tune-bar">
      <button id="tune-check">Check</button>
      <label>Backtest over the last <select id="tune-hours"><option value="1">hour</option><option value="6">6 h</option><option value="24" selected>24 h</option><option value="168">7 days</option></select></label>
      <button id="tune-run">Backtest</button>
      <span class="spacer"></span>
      <input id="tune-note" placeholder="Why (kept with the version)" size="36">
      <button id="tune-apply" class="primary">Apply</button>
    </div>
    <div id="tune-problems" role="status"></div>
    <div id="tune-result"></div>
    <details id="tune-history-box"><summary>Versions of these rules</summary><ol id="tune-history" reversed></ol></details>
  </div>`;
  const sel = document.getElementById('tune-site');
  sel.value = T.site;
  sel.onchange = () => {
    T.site = sel.value;
    load();
  };
  document.getElementById('tune-check').onclick = check;
  document.getElementById('tune-run').onclick = backtest;
  document.getElementById('tune-apply').onclick = apply;
  await load();
}

function template(site) {
  return `site = "${site}"\n\n# The default: every zone at its own thresholds, a ticket from warning.\n[[rule]]\nid = "density"\nmetric = "density"\nclear_for_s = 120\n`;
}

async function load() {
  T.sets = await api('/rulesets');
  T.zones = await api(`/zones?site=${encodeURIComponent(T.site)}`);
  const cur = T.sets.sites.find((s) => s.site === T.site);
  document.getElementById('tune-toml').value = cur?.toml ?? template(T.site);
  document.getElementById('tune-version').textContent = cur?.version
    ? `in force: version ${cur.version}`
    : cur?.toml
      ? 'in force: the rules file in the configuration'
      : 'in force: the default rule (no rules file)';
  document.getElementById('tune-problems').innerHTML = '';
  const hist = T.sets.history.filter((v) => v.site === T.site);
  const off = T.offsetOf(T.site);
  document.getElementById('tune-history').innerHTML = hist.length
    ? hist
        .map(
          (v) => `<li data-version="${v.version}"><b>version ${v.version}</b> · ${esc(fmtDateTime(v.created_at, off))} · ${esc(v.author)}
          ${v.note ? `— “${esc(v.note)}”` : ''} ${v.version === cur?.version ? '<span class="pill online">in force</span>' : `<button data-rollback="${v.version}">Roll back to this</button>`}
          ${v.diff ? `<details><summary>diff</summary><pre class="diff">${esc(v.diff)}</pre></details>` : ''}</li>`,
        )
        .join('')
    : '<li class="muted">No change made through the console yet.</li>';
  document.querySelectorAll('#tune-history button[data-rollback]').forEach((b) => {
    b.onclick = () => rollback(Number(b.dataset.rollback));
  });
}

function showProblems(e) {
  const box = document.getElementById('tune-problems');
  const problems = e?.data?.problems;
  box.innerHTML = problems
    ? `<div class="err"><b>${problems.length} problem(s); nothing was changed:</b><ul>${problems.map((p) => `<li>${esc(p)}</li>`).join('')}</ul></div>`
    : `<p class="err">${esc(e.message)}</p>`;
}

async function check() {
  try {
    await api('/rulesets/check', { method: 'POST', body: { site: T.site, toml: document.getElementById('tune-toml').value } });
    document.getElementById('tune-problems').innerHTML = '<p class="ok">Valid: the centre would accept these rules.</p>';
    return true;
  } catch (e) {
    showProblems(e);
    return false;
  }
}

async function backtest() {
  const hours = Number(document.getElementById('tune-hours').value);
  const result = document.getElementById('tune-result');
  result.innerHTML = '<p class="muted">Replaying…</p>';
  try {
    T.report = await api('/backtest', {
      method: 'POST',
      body: {
        site: T.site,
        from: new Date(Date.now() - hours * 3600e3).toISOString(),
        candidates: [{ name: 'candidate', site: T.site, toml: document.getElementById('tune-toml').value }],
      },
    });
  } catch (e) {
    result.innerHTML = '';
    showProblems(e);
    return;
  }
  document.getElementById('tune-problems').innerHTML = '';
  renderReport();
}

function renderReport() {
  const r = T.report;
  const [cur, cand] = r.sets;
  const diff = r.diffs[0]?.zones || {};
  const zones = T.zones.map((z) => `${T.site}/${z.zone}`);
  const rows = zones
    .map((k) => {
      const a = cur.zones[k] || { tickets: 0, open_s: 0, flaps: 0 };
      const b = cand.zones[k] || { tickets: 0, open_s: 0, flaps: 0 };
      const d = diff[k];
      return `<tr data-zone="${esc(k.split('/')[1])}"${d ? ' class="changed"' : ''}><td>${esc(k.split('/')[1])}</td>
        <td class="num">${a.tickets}</td><td class="num">${b.tickets}</td>
        <td class="num">${fmtDuration(a.open_s)}</td><td class="num">${fmtDuration(b.open_s)}</td>
        <td class="num">${a.flaps} / ${b.flaps}</td>
        <td>${d ? `${d.added.length ? `<b class="added">+${d.added.length} added</b> ` : ''}${d.dropped.length ? `<b class="dropped">−${d.dropped.length} dropped</b>` : ''}${!d.added.length && !d.dropped.length ? 'open time differs' : ''}` : '<span class="muted">same</span>'}</td></tr>`;
    })
    .join('');
  const first = Object.keys(diff)[0]?.split('/')[1] || T.zones[0]?.zone;
  document.getElementById('tune-result').innerHTML = `<p class="small muted">${r.readings.toLocaleString('en-US')} readings replayed through the rules in force and the candidate; nothing was notified.</p>
    <table class="grid"><thead><tr><th>zone</th><th class="num">tickets now</th><th class="num">candidate</th><th class="num">open now</th><th class="num">candidate</th><th class="num">flaps</th><th>difference</th></tr></thead><tbody>${rows}</tbody></table>
    <label>Chart of <select id="tune-zone">${T.zones.map((z) => `<option value="${esc(z.zone)}">${esc(z.name || z.zone)}</option>`).join('')}</select></label>
    <div id="tune-chart"></div>`;
  const zs = document.getElementById('tune-zone');
  zs.value = first;
  zs.onchange = () => chart(zs.value);
  chart(first);
}

async function chart(zone) {
  const r = T.report;
  const from = Date.parse(r.from || r.to);
  const to = Date.parse(r.to);
  const pts = await api(
    `/zones/${encodeURIComponent(T.site)}/${encodeURIComponent(zone)}/series?source=${encodeURIComponent(MAP_SERIES)}&from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&limit=100000`,
  );
  const z = T.zones.find((x) => x.zone === zone);
  const W = 900;
  const H = 180;
  const rowH = 16;
  const span = Math.max(1, to - from);
  const x = (t) => 40 + ((t - from) / span) * (W - 50);
  const top = Math.max(1, ...pts.map((p) => p.density), z?.thresholds?.critical || 0) * 1.1;
  const y = (d) => 10 + (1 - d / top) * (H - 20);
  const line = pts.map((p, i) => `${i ? 'L' : 'M'}${x(Date.parse(p.ts)).toFixed(1)},${y(p.density).toFixed(1)}`).join('');
  const bands = ['notice', 'warning', 'critical']
    .filter((l) => z?.thresholds?.[l] != null)
    .map((l) => `<line x1="40" x2="${W - 10}" y1="${y(z.thresholds[l])}" y2="${y(z.thresholds[l])}" stroke="${COLORS[l]}" stroke-dasharray="4 3"/><text x="2" y="${y(z.thresholds[l]) + 4}" class="lbl">${z.thresholds[l]}</text>`)
    .join('');
  const added = new Set((r.diffs[0]?.zones[`${T.site}/${zone}`]?.added || []).map((t) => t.opened + t.rule));
  const bars = r.sets
    .map((set, row) =>
      set.tickets
        .filter((t) => t.zone === zone && t.site === T.site)
        .map((t) => {
          const x0 = x(Math.max(from, Date.parse(t.opened)));
          const x1 = x(t.closed ? Date.parse(t.closed) : to);
          const isAdded = row > 0 && added.has(t.opened + t.rule);
          return `<rect class="tk" data-set="${esc(set.name)}" data-added="${isAdded ? 1 : 0}" x="${x0.toFixed(1)}" y="${H + 8 + row * (rowH + 6)}" width="${Math.max(2, x1 - x0).toFixed(1)}" height="${rowH}" fill="${COLORS[t.level] || '#888'}" ${isAdded ? 'stroke="#fff" stroke-width="2"' : ''}><title>${esc(set.name)}: ${esc(t.rule)} ${esc(t.level)} from ${esc(t.opened)} for ${fmtDuration(t.open_s)}</title></rect>`;
        })
        .join('') + `<text x="2" y="${H + 20 + row * (rowH + 6)}" class="lbl">${esc(set.name)}</text>`,
    )
    .join('');
  document.getElementById('tune-chart').innerHTML = `<svg class="tune-chart" viewBox="0 0 ${W} ${H + 8 + r.sets.length * (rowH + 6)}" role="img" aria-label="Density of ${esc(zone)} and the tickets each rule set would have raised">
    ${bands}<path d="${line}" fill="none" stroke="#9ecbff" stroke-width="1.5"/>${bars}</svg>
    <p class="small muted">The map's density (people/m²) with the zone's levels; below, where each rule set would have had a ticket open (outlined: only the candidate).</p>`;
}

async function apply() {
  if (!(await check())) return;
  const note = document.getElementById('tune-note').value.trim();
  let r;
  try {
    r = await api('/rulesets', { method: 'POST', body: { site: T.site, toml: document.getElementById('tune-toml').value, note } });
  } catch (e) {
    showProblems(e);
    return;
  }
  toast(`Version ${r.version} in force`);
  await load();
  document.getElementById('tune-problems').innerHTML = `<p class="ok">Version ${r.version} is in force (on every centre instance within seconds).</p>`;
  T.onApplied();
}

async function rollback(version) {
  const note = document.getElementById('tune-note').value.trim();
  try {
    const r = await api(`/rulesets/${version}/rollback`, { method: 'POST', body: { note } });
    toast(`Rolled back: version ${r.version} in force`);
  } catch (e) {
    showProblems(e);
    return;
  }
  await load();
  T.onApplied();
}
