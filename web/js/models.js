// Models and camera settings in the console: every camera with the settings version the centre holds for it and
// what its edge says it runs (in step, pending, or refused and why); the pool's eval-model results as a curve of
// count error against the threshold; and, for engineers and admins, a change dialog that says what the new
// threshold would do to the count on the labelled set before it is pushed, and each camera's history with
// rollback; the geometry editor (geometry.js) draws a camera's zones and lines on its view. The server decides
// who may change what (operators read; grid workers never reach this page).
import { api, esc, fmtDateTime, toast } from './api.js';
import { openGeometry } from './geometry.js';

const M = { cameras: [], pool: null, canTune: false, offsetOf: () => undefined, site: '' };

/** Draws `#models-body` (and refreshes it on later calls); `role` decides whether changes are offered. */
export async function renderModels({ role, site, offsetOf }) {
  M.canTune = role === 'engineer' || role === 'admin';
  M.site = site;
  M.offsetOf = offsetOf;
  const box = document.getElementById('models-body');
  try {
    const [cameras, pool] = await Promise.all([api('/cameras'), M.pool ? Promise.resolve(M.pool) : api('/models')]);
    M.cameras = cameras;
    M.pool = pool;
  } catch (e) {
    if (e.status !== 401) box.innerHTML = `<p class="err">${esc(e.message)}</p>`;
    return;
  }
  // Keep what an engineer is typing: no redraw while the dialog is open.
  if (document.getElementById('tune-dialog')?.open || document.getElementById('geometry-dialog')?.open) return;
  const cams = M.cameras.filter((c) => !M.site || c.site === M.site);
  box.innerHTML = `${camerasTable(cams)}${evaluations(M.pool)}`;
  box.querySelectorAll('button[data-tune]').forEach((b) => (b.onclick = () => openDialog(cams[Number(b.dataset.tune)])));
  const again = () => renderModels({ role: M.canTune ? 'engineer' : 'operator', site: M.site, offsetOf: M.offsetOf });
  box.querySelectorAll('button[data-geometry]').forEach(
    (b) => (b.onclick = () => openGeometry(cams[Number(b.dataset.geometry)], { offsetOf: M.offsetOf, onDone: again })),
  );
}

function fmtT(v) {
  return v == null ? '–' : Number(v).toFixed(2);
}

function stepOf(c) {
  const r = c.running;
  const want = c.desired?.version;
  if (r?.refused) return ['refused', `refused ${r.refused}`];
  if (!r) return ['pending', c.edge_state === 'offline' ? 'edge offline: gets it when it connects' : 'not reported yet'];
  if (c.in_step) return ['ok', want ? `runs v${want}` : 'runs its edge file'];
  return ['pending', `runs ${r.settings_version ? `v${r.settings_version}` : 'its edge file'}, v${want} on its way`];
}

function camerasTable(cams) {
  if (!cams.length) return '<p class="muted">No camera has reported and none has settings from the centre.</p>';
  const rows = cams
    .map((c, i) => {
      const r = c.running || {};
      const [cls, txt] = stepOf(c);
      return `<tr data-camera="${esc(c.edge)}/${esc(c.camera)}" data-step="${cls}">
        <td><b>${esc(c.camera)}</b><div class="muted small">${esc(c.site)} / ${esc(c.edge)} · edge ${esc(c.edge_state || 'never seen')}</div></td>
        <td>${esc(r.name || '–')}<div class="muted small">${esc(r.version || '')}</div></td>
        <td class="num">${fmtT(r.person_threshold)}</td><td class="num">${fmtT(r.vehicle_threshold)}</td><td class="num">${fmtT(r.nms_iou)}</td>
        <td class="step-${cls}">${esc(txt)}</td>
        <td>${M.canTune ? `<button data-tune="${i}">Change…</button> <button data-geometry="${i}">Geometry…</button>` : ''}</td></tr>`;
    })
    .join('');
  return `<table class="grid cameras"><thead><tr><th>camera</th><th>model it runs</th><th class="num">person</th>
    <th class="num">vehicle</th><th class="num">NMS IoU</th><th>settings</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

// ── eval-model results ──────────────────────────────────────────────────────────────────────────────────────────

/** The run of a report at the deployed input (fitted, whole frame) with the IoU nearest `iou`. */
function deployedRun(report, iou = 0.6) {
  const runs = report.runs.filter((r) => r.input === 'fitted' && !r.slicing);
  const pool = runs.length ? runs : report.runs;
  return pool.reduce((a, b) => (Math.abs(b.nms_iou - iou) < Math.abs(a.nms_iou - iou) ? b : a), pool[0]);
}

function pointAt(run, t) {
  return run.points.reduce((a, b) => (Math.abs(b.threshold - t) < Math.abs(a.threshold - t) ? b : a), run.points[0]);
}

/** Newest report per (model, set). */
function latestReports(pool) {
  const seen = new Set();
  return (pool?.evaluations || []).filter((r) => {
    const k = `${r.model}\u0000${r.set}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const COLOURS = ['#1971c2', '#e8590c', '#2f9e44', '#9c36b5', '#c92a2a'];

function curve(reports) {
  const W = 520, H = 200, L = 44, B = 28, T = 10, R = 10;
  const runs = reports.map((r) => deployedRun(r));
  const ts = runs.flatMap((r) => r.points.map((p) => p.threshold));
  const ys = runs.flatMap((r) => r.points.map((p) => p.person.count.mae));
  const [x0, x1, y1] = [Math.min(...ts), Math.max(...ts), Math.max(1, ...ys) * 1.1];
  const x = (t) => L + ((t - x0) / (x1 - x0 || 1)) * (W - L - R);
  const y = (v) => T + (1 - v / y1) * (H - T - B);
  const lines = runs
    .map((run, i) => {
      const d = run.points.map((p, j) => `${j ? 'L' : 'M'}${x(p.threshold).toFixed(1)},${y(p.person.count.mae).toFixed(1)}`).join('');
      return `<path d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2"><title>${esc(reports[i].model)}</title></path>`;
    })
    .join('');
  const xt = [x0, (x0 + x1) / 2, x1].map((t) => `<text x="${x(t)}" y="${H - 8}" text-anchor="middle">${t.toFixed(2)}</text>`).join('');
  const yt = [0, y1 / 2, y1].map((v) => `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(1)}</text>`).join('');
  const legend = reports
    .map((r, i) => `<span class="legend-item"><span class="swatch" style="background:${COLOURS[i % COLOURS.length]}"></span>${esc(r.model)}</span>`)
    .join(' ');
  return `<figure class="eval-curve"><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img"
      aria-label="Person count error per image against the confidence threshold">
      <line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#888"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#888"/>
      ${xt}${yt}${lines}</svg>
    <figcaption class="small">${legend} — person count MAE per image (y) against the threshold (x), fitted input, whole frame</figcaption></figure>`;
}

function evaluations(pool) {
  const reports = latestReports(pool);
  if (!reports.length) {
    return '<h3>Evaluations</h3><p class="muted">No eval-model report in the pool (crowdgrid eval-model --json models/evals/NAME.json).</p>';
  }
  const rows = reports
    .map((r) => {
      const run = deployedRun(r);
      const best = run.points.reduce((a, b) => (b.person.count.mae < a.person.count.mae ? b : a), run.points[0]);
      const ap = run.person_ap50 == null ? '–' : run.person_ap50.toFixed(2);
      return `<tr data-eval="${esc(r.model)}"><td><b>${esc(r.model)}</b><div class="muted small">${esc(r.sha256.slice(0, 12))}…</div></td>
        <td>${esc(r.set)}<div class="muted small">${r.images} images, ${r.persons_labelled} persons</div></td>
        <td class="num">${best.threshold.toFixed(2)}</td><td class="num">${best.person.count.mae.toFixed(2)}</td>
        <td class="num">${ap}</td><td class="num">${run.model_ms_per_frame.toFixed(1)}</td>
        <td class="small">${esc(fmtDateTime(r.finished_at))}</td></tr>`;
    })
    .join('');
  return `<h3>Evaluations on labelled frames</h3>
    <table class="grid evals"><thead><tr><th>model</th><th>labelled set</th><th class="num">best person threshold</th>
    <th class="num">count MAE</th><th class="num">AP50</th><th class="num">model ms/frame</th><th>run</th></tr></thead><tbody>${rows}</tbody></table>
    ${curve(reports)}`;
}

/** "Would change the count by …": the labelled set's mean person count at `from` and at `to` with `model`. */
export function wouldChange(pool, model, fromT, toT) {
  const report = latestReports(pool).find((r) => r.model === model);
  if (!report || fromT == null || toT == null) return null;
  const run = deployedRun(report);
  const [a, b] = [pointAt(run, fromT), pointAt(run, toT)];
  const d = b.person.mean_count - a.person.mean_count;
  return {
    text: `On ${report.set} (${report.images} images), ${b.threshold.toFixed(2)} instead of ${a.threshold.toFixed(2)} would count ${d >= 0 ? '+' : ''}${d.toFixed(2)} persons per image (${a.person.mean_count.toFixed(2)} → ${b.person.mean_count.toFixed(2)}); count error ${a.person.count.mae.toFixed(2)} → ${b.person.count.mae.toFixed(2)} per image.`,
    delta: d,
  };
}

// ── the change dialog ──────────────────────────────────────────────────────────────────────────────────────────

function dialog() {
  let d = document.getElementById('tune-dialog');
  if (!d) {
    d = document.createElement('dialog');
    d.id = 'tune-dialog';
    d.setAttribute('aria-labelledby', 'tune-h');
    document.body.appendChild(d);
  }
  return d;
}

async function openDialog(c) {
  const d = dialog();
  const r = c.running || {};
  const cur = c.desired || {};
  const models = (M.pool?.models || []).map((m) => m.spec.name);
  const opt = (v, label, sel) => `<option value="${esc(v)}"${sel ? ' selected' : ''}>${esc(label)}</option>`;
  d.innerHTML = `<form method="dialog" class="tune-form">
    <h2 id="tune-h">${esc(c.camera)} <span class="muted small">${esc(c.site)} / ${esc(c.edge)}</span></h2>
    <label>Model <select name="model">${opt('', `the edge file's (${r.name || '?'})`, !cur.model)}${models
      .map((m) => opt(m, m, cur.model === m))
      .join('')}</select></label>
    <label>Person threshold <input name="person_threshold" type="number" min="0.01" max="0.99" step="0.01" value="${esc(cur.person_threshold ?? r.person_threshold ?? '')}"></label>
    <label>Vehicle threshold <input name="vehicle_threshold" type="number" min="0.01" max="0.99" step="0.01" value="${esc(cur.vehicle_threshold ?? r.vehicle_threshold ?? '')}"></label>
    <label>NMS IoU <input name="nms_iou" type="number" min="0.01" max="0.99" step="0.01" value="${esc(cur.nms_iou ?? r.nms_iou ?? '')}"></label>
    <label>Why <input name="note" type="text" maxlength="500" placeholder="e.g. cones counted as people at the gate"></label>
    <p class="would small" aria-live="polite"></p>
    <div class="actions"><button value="cancel" formnovalidate>Cancel</button><button value="push" class="primary">Push to the edge</button></div>
    <h3>History</h3><div class="history small">loading…</div></form>`;
  const f = d.querySelector('form');
  const would = () => {
    const model = f.model.value || r.name;
    const w = wouldChange(M.pool, model, r.person_threshold, Number(f.person_threshold.value));
    d.querySelector('.would').textContent = w ? w.text : `No eval-model report for ${model}: the effect on the count is unknown.`;
  };
  f.oninput = would;
  would();
  d.onclose = async () => {
    if (d.returnValue !== 'push') return;
    const num = (v) => (v === '' ? null : Number(v));
    const body = {
      model: f.model.value || null,
      person_threshold: num(f.person_threshold.value),
      vehicle_threshold: num(f.vehicle_threshold.value),
      nms_iou: num(f.nms_iou.value),
      // The geometry stays as the centre last set it (the geometry editor changes it).
      geometry: cur.geometry ?? null,
      note: f.note.value,
    };
    try {
      const out = await api(`/cameras/${enc(c.site)}/${enc(c.edge)}/${enc(c.camera)}/settings`, { method: 'POST', body });
      toast(`${c.camera}: version ${out.version} pushed`);
    } catch (e) {
      toast(e.data?.problems ? `${e.message}: ${e.data.problems.join('; ')}` : e.message, 'error');
    }
    renderModels({ role: M.canTune ? 'engineer' : 'operator', site: M.site, offsetOf: M.offsetOf });
  };
  d.showModal();
  try {
    const hist = await api(`/cameras/${enc(c.site)}/${enc(c.edge)}/${enc(c.camera)}/settings`);
    const box = d.querySelector('.history');
    box.innerHTML = hist.length
      ? `<table class="grid"><thead><tr><th>v</th><th>model</th><th>person</th><th>vehicle</th><th>IoU</th><th>geometry</th><th>who / why</th><th></th></tr></thead><tbody>${hist
          .map(
            (h) => `<tr><td class="num">${h.version}</td><td>${esc(h.model || 'edge file')}</td><td class="num">${fmtT(h.person_threshold)}</td>
              <td class="num">${fmtT(h.vehicle_threshold)}</td><td class="num">${fmtT(h.nms_iou)}</td>
              <td>${h.geometry ? `${h.geometry.zones.length} zones, ${h.geometry.lines.length} lines` : 'edge file'}</td>
              <td>${esc(h.author)} · ${esc(fmtDateTime(h.created_at, M.offsetOf(c.site)))}<div class="muted">${esc(h.note)}</div></td>
              <td><button type="button" data-rollback="${h.version}">Roll back to this</button></td></tr>`,
          )
          .join('')}</tbody></table>`
      : '<p class="muted">No settings from the centre yet: the camera runs its edge file.</p>';
    box.querySelectorAll('button[data-rollback]').forEach((b) => {
      b.onclick = async () => {
        try {
          const out = await api(`/cameras/settings/${b.dataset.rollback}/rollback`, { method: 'POST', body: {} });
          toast(`${c.camera}: version ${out.version} (rollback to ${b.dataset.rollback}) pushed`);
          d.close('cancel');
        } catch (e) {
          toast(e.message, 'error');
        }
      };
    });
  } catch (e) {
    d.querySelector('.history').textContent = e.message;
  }
}

const enc = encodeURIComponent;
