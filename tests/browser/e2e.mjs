// End-to-end test of the web app in Debian's headless Chromium, driven by playwright-core.
// Run by tests/browser.rs against a centre it started; can also be run by hand against any centre:
//
//   BASE_URL=http://127.0.0.1:8088 OPERATOR_TOKEN=cg_… WORKER_TOKEN=cg_… MQTT_HOST=127.0.0.1 MQTT_PORT=1884 \
//   SCREENSHOT_DIR=target/browser-screenshots node tests/browser/e2e.mjs
//
// Optional: WORKER_TOKENS='{"wang-lei":"cg_…",…}' (the token of whichever worker the ticket is routed to),
// SITE (default west-taihu), ZONE (default beach), SOURCE (default report), CHROMIUM (default /usr/bin/chromium),
// HEADFUL=1.
//
// Steps: (1) the operator's map draws every zone of the site; (2) readings published over MQTT push a zone
// above its warning level: its polygon changes colour without a reload and a ticket appears in the panel;
// (3) the assigned grid worker opens the ticket's camera snapshot, acknowledges and resolves it on the phone view; (4) the operator's panel shows
// it resolved, live; (5) with ENGINEER_TOKEN: an engineer tightens the jetty's warning level in the console, runs
// the backtest (the candidate's extra ticket on the chart), applies it, and the next jetty reading raises a ticket
// under the new level. Screenshots of every step go to SCREENSHOT_DIR. Exits 1 with a message on any failure.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { harness, launch } from './harness.mjs';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') fail(`environment variable ${name} is required`);
  return v;
};

const { log, fail, step, shot } = harness('e2e', path.resolve(process.env.SCREENSHOT_DIR || 'target/browser-screenshots'));
const BASE = env('BASE_URL').replace(/\/$/, '');
const OP = env('OPERATOR_TOKEN');
const ENGINEER = process.env.ENGINEER_TOKEN || '';
const WORKER_TOKEN = process.env.WORKER_TOKEN || '';
const WORKER_TOKENS = JSON.parse(process.env.WORKER_TOKENS || '{}');
const MQTT_HOST = env('MQTT_HOST', '127.0.0.1');
const MQTT_PORT = env('MQTT_PORT');
const SITE = env('SITE', 'west-taihu');
const ZONE = env('ZONE', 'beach');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const PREFIX = env('TOPIC_PREFIX', 'crowdgrid/v1');
const SOURCE = env('SOURCE', 'report'); // the reading's source kind (docs/PROTOCOL.md)

if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} not found: install Debian's chromium (scripts/test.sh does)`);
if (spawnSync('mosquitto_pub', ['--help']).error) fail('mosquitto_pub not found: install mosquitto-clients (scripts/test.sh does)');

async function apiGet(p, token = OP) {
  const r = await fetch(BASE + '/api/v1' + p, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) fail(`GET ${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

// ── MQTT readings (docs/PROTOCOL.md) ───────────────────────────────────────────────────────────────
const epoch = Date.now();
let seq = 0;
function publish(zone, count, area) {
  seq += 1;
  const reading = {
    site: SITE,
    zone,
    source: SOURCE,
    source_id: `e2e-browser-test/${SOURCE}`,
    ts: new Date().toISOString(),
    seq,
    epoch,
    count,
    area_m2: area,
    density: count / area,
    confidence: 0.9,
  };
  const r = spawnSync(
    'mosquitto_pub',
    ['-h', MQTT_HOST, '-p', String(MQTT_PORT), '-q', '1', '-i', `e2e-pub-${process.pid}-${seq}`, '-t', `${PREFIX}/${SITE}/${zone}/reading`, '-m', JSON.stringify(reading)],
    { encoding: 'utf8', timeout: 10000 },
  );
  if (r.status !== 0) fail(`mosquitto_pub exited ${r.status}: ${r.stderr || r.error}`);
}

/** Keeps publishing `count` people for `zone` once a second until `stop()`. */
function keepPublishing(zone, count, area) {
  publish(zone, count, area);
  const t = setInterval(() => publish(zone, count, area), 1000);
  return () => clearInterval(t);
}

// ── browser ───────────────────────────────────────────────────────────────────────────────────────
const pageErrors = [];
function watch(page, name) {
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/401|403|favicon/.test(m.text())) log(`${name} console error: ${m.text()}`);
  });
}

const browser = await launch(CHROMIUM, Boolean(process.env.HEADFUL));
const timeoutGuard = setTimeout(() => fail('the whole run took longer than 4 minutes'), 240000);

try {
  const zones = await apiGet(`/zones?site=${SITE}`);
  if (!zones.length) fail(`the API lists no zones for ${SITE}`);
  const target = zones.find((z) => z.zone === ZONE);
  if (!target) fail(`no zone ${ZONE} in ${SITE}`);
  const area = target.area_m2;
  const th = target.thresholds;

  // (1) The operator's map draws every zone.
  const opCtx = await browser.newContext({ viewport: { width: 1600, height: 900 } });
  const op = await opCtx.newPage();
  watch(op, 'operator');
  await step(`operator map shows all ${zones.length} zones of ${SITE}`, async () => {
    await op.goto(`${BASE}/ui/?site=${SITE}#token=${encodeURIComponent(OP)}`);
    await op.waitForFunction((n) => document.querySelectorAll('path[data-zone]').length === n, zones.length, { timeout: 20000 });
    const drawn = await op.$$eval('path[data-zone]', (ps) => ps.map((p) => p.getAttribute('data-zone')).sort());
    const want = zones.map((z) => z.zone).sort();
    if (JSON.stringify(drawn) !== JSON.stringify(want)) throw new Error(`drawn ${drawn} but the API lists ${want}`);
    if (op.url().includes('token=')) throw new Error('the token stayed in the address bar');
    await op.waitForSelector('#conn[data-state="live"]', { timeout: 20000 });
    await op.evaluate(() => {
      window.__noReload = true;
    });
    await shot(op, 'operator-map');
  });

  // (2) A reading over MQTT pushes the zone above warning: colour changes live, a ticket appears.
  const before = await op.getAttribute(`path[data-zone="${ZONE}"]`, 'fill');
  const beforeLevel = await op.getAttribute(`path[data-zone="${ZONE}"]`, 'data-level');
  const crowd = Math.round(area * ((th.warning + th.critical) / 2));
  let ticket;
  let stop = keepPublishing(ZONE, crowd, area);
  await step(`a reading of ${crowd} people (${(crowd / area).toFixed(2)}/m²) turns ${ZONE} warning or worse without a reload`, async () => {
    await op.waitForSelector(`path[data-zone="${ZONE}"][data-level="warning"], path[data-zone="${ZONE}"][data-level="critical"]`, {
      timeout: 30000,
    });
    const after = await op.getAttribute(`path[data-zone="${ZONE}"]`, 'fill');
    if (after === before) throw new Error(`the fill colour stayed ${before} (level was ${beforeLevel})`);
    if (!(await op.evaluate(() => window.__noReload === true))) throw new Error('the page reloaded');
    log(`${ZONE}: ${beforeLevel} ${before} → ${await op.getAttribute(`path[data-zone="${ZONE}"]`, 'data-level')} ${after}`);
  });
  await step(`a ticket for ${ZONE} appears in the operator's queue`, async () => {
    const li = await op.waitForSelector(`#tickets li.ticket[data-zone="${ZONE}"]`, { timeout: 60000 });
    const id = Number(await li.getAttribute('data-ticket'));
    ticket = await apiGet(`/tickets/${id}`);
    if (ticket.zone !== ZONE) throw new Error(`ticket #${id} is for ${ticket.zone}`);
    log(`ticket #${id} ${ticket.level} ${ticket.state} → ${ticket.assignee}`);
    await op.waitForSelector(`[data-ticket-pin="${id}"]`, { timeout: 10000 });
    await op.waitForTimeout(500);
    await shot(op, 'operator-ticket-raised');
  });
  stop();

  // (3) The assigned grid worker acknowledges and resolves it on the phone.
  const wToken = WORKER_TOKENS[ticket.assignee] || WORKER_TOKEN;
  if (!wToken) fail(`no token for ${ticket.assignee}, the ticket's assignee (set WORKER_TOKENS or WORKER_TOKEN)`);
  const wCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const wp = await wCtx.newPage();
  watch(wp, 'worker');
  const card = `#mine li.card[data-ticket="${ticket.id}"]`;
  await step(`grid worker ${ticket.assignee} sees ticket #${ticket.id}`, async () => {
    await wp.goto(`${BASE}/ui/worker.html#token=${encodeURIComponent(wToken)}`);
    const me = await apiGet('/me', wToken);
    if (me.role !== 'grid_worker' || me.worker !== ticket.assignee) throw new Error(`WORKER_TOKEN is ${me.name} (${me.role}), not ${ticket.assignee}`);
    await wp.waitForSelector(card, { timeout: 20000 });
    await wp.waitForSelector('#conn[data-state="live"]', { timeout: 20000 });
    // Names from the roster, not ids: the worker's header, and the operator's queue.
    const roster = (await apiGet('/sites', wToken)).flatMap((s) => s.hierarchy?.workers || []);
    const name = roster.find((w) => w.id === ticket.assignee)?.name;
    if (!name) throw new Error(`${ticket.assignee} is not on the roster`);
    await wp.waitForFunction((n) => document.getElementById('whoami').textContent.includes(n), name, { timeout: 10000 });
    const queued = await op.textContent(`#tickets li.ticket[data-ticket="${ticket.id}"]`);
    if (!queued.includes(name)) throw new Error(`the operator's queue says ${queued}, not ${name}`);
    await shot(wp, 'worker-ticket');
  });
  await step('the worker opens the camera snapshot an edge sent for the ticket', async () => {
    // As an edge camera with `evidence` would (docs/PROTOCOL.md): a blurred JPEG on the ticket's evidence topic
    // (the fixture is what `vision::evidence::blurred_jpeg` made of vtest_100.jpg at the privacy threshold).
    const jpeg = path.join(path.dirname(new URL(import.meta.url).pathname), '../data/vision/evidence_vtest_100.jpg');
    const topic = `${PREFIX}/${SITE}/evidence/${ZONE}/${ticket.id}`;
    const r = spawnSync('mosquitto_pub', ['-h', MQTT_HOST, '-p', String(MQTT_PORT), '-q', '1', '-t', topic, '-f', jpeg], { encoding: 'utf8', timeout: 10000 });
    if (r.status !== 0) throw new Error(`mosquitto_pub exited ${r.status}: ${r.stderr || r.error}`);
    const served = async () => (await fetch(`${BASE}/api/v1/tickets/${ticket.id}/evidence`, { headers: { Authorization: `Bearer ${wToken}` } })).status;
    for (let i = 0; i < 50 && (await served()) !== 200; i++) await new Promise((res) => setTimeout(res, 200));
    await wp.click(`${card} button[data-snap]`);
    const img = await wp.waitForSelector(`${card} img.evidence`, { timeout: 10000 });
    await wp.waitForFunction((el) => el.complete && el.naturalWidth === 768, img, { timeout: 10000 });
    // Still there after the next live update re-renders the list.
    await wp.waitForTimeout(1500);
    if (!(await wp.$(`${card} img.evidence`))) throw new Error('the snapshot vanished on re-render');
    await shot(wp, 'worker-snapshot');
  });
  await step('the worker acknowledges it', async () => {
    await wp.click(`${card} button[data-act="acknowledge"]`);
    await wp.waitForSelector(`${card}[data-state="acknowledged"]`, { timeout: 15000 });
    await shot(wp, 'worker-acknowledged');
  });
  await step('resolving while the zone is still over its level warns first', async () => {
    await wp.click(`${card} button[data-act="resolve"]`);
    await wp.waitForSelector('#note-dialog[open]', { timeout: 5000 });
    const help = await wp.textContent('#note-help.warn');
    if (!/still at (warning|critical)/.test(help)) throw new Error(`the dialog says: ${help}`);
    await wp.click('#note-cancel');
  });
  // The crowd disperses: back under the notice level.
  stop = keepPublishing(ZONE, Math.round(area * th.notice * 0.25), area);
  await step('the worker resolves it with a note', async () => {
    await wp.click(`${card} button[data-act="resolve"]`);
    await wp.waitForSelector('#note-dialog[open]', { timeout: 5000 });
    await wp.fill('#note-text', 'Opened the south exit and guided visitors to the lakeside path (e2e test).');
    await shot(wp, 'worker-resolve-note');
    await wp.click('#note-ok');
    await wp.waitForSelector(`#done li.card[data-ticket="${ticket.id}"][data-state="resolved"]`, { timeout: 15000 });
    if (await wp.$(card)) throw new Error('the ticket is still among the open ones');
    const t = await apiGet(`/tickets/${ticket.id}`);
    if (t.state !== 'resolved') throw new Error(`the API says ${t.state}`);
    const kinds = (t.events || []).map((e) => e.kind);
    for (const k of ['acknowledged', 'resolved']) if (!kinds.includes(k)) throw new Error(`trail lacks ${k}: ${kinds}`);
    await shot(wp, 'worker-resolved');
  });

  // (4) The operator's panel shows it resolved, live.
  await step(`the operator's panel shows #${ticket.id} resolved without a reload`, async () => {
    await op.waitForSelector(`#closed li.ticket[data-ticket="${ticket.id}"][data-state="resolved"]`, { state: 'attached', timeout: 20000 });
    if (await op.$(`#tickets li.ticket[data-ticket="${ticket.id}"]`)) throw new Error('still in the open queue');
    if (await op.$(`[data-ticket-pin="${ticket.id}"]`)) throw new Error('still pinned on the map');
    if (!(await op.evaluate(() => window.__noReload === true))) throw new Error('the page reloaded');
    await op.waitForSelector(`path[data-zone="${ZONE}"][data-level="normal"]`, { timeout: 20000 });
    await op.evaluate(() => {
      document.getElementById('closed-box').open = true;
    });
    await op.click(`path[data-zone="${ZONE}"]`);
    await op.waitForSelector('#chart svg.chart path.chart-source', { timeout: 15000 });
    await op.waitForTimeout(500);
    await shot(op, 'operator-resolved');
  });
  stop();

  await step('the engineering console renders', async () => {
    const ec = await opCtx.newPage();
    watch(ec, 'console');
    await ec.goto(`${BASE}/ui/engineer.html?site=${SITE}`);
    await ec.waitForSelector('#rules-body table, #rules-body p', { timeout: 15000 });
    await ec.waitForSelector('#kpi-body .tiers, #kpi-body p', { timeout: 15000 });
    await ec.waitForTimeout(500);
    await shot(ec, 'engineer-console');
  });

  // (5) The engineers' tuning loop: edit a zone's warning level, backtest, apply, judged live.
  if (ENGINEER) {
    const jetty = zones.find((z) => z.zone === 'jetty');
    if (!jetty) fail(`no jetty in ${SITE}`);
    const quiet = Math.round(jetty.area_m2 * 1.5); // 1.5/m²: under the jetty's 2.5 warning, over the candidate's 1.0
    const rules = `site = "${SITE}"\n\n[[rule]]\nid = "density"\nmetric = "density"\nclear_for_s = 120\n\n[[rule]]\nid = "jetty-tight"\nmetric = "density"\nzones = ["jetty"]\nlevels = { notice = 0.5, warning = 1.0, critical = 3.5 }\n`;
    const ecCtx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const ec = await ecCtx.newPage();
    watch(ec, 'engineer');
    ec.on('dialog', (d) => d.accept());
    for (let i = 0; i < 3; i++) {
      publish('jetty', quiet, jetty.area_m2);
      await new Promise((res) => setTimeout(res, 400));
    }
    await step('an engineer edits the jetty\'s warning level and backtests it', async () => {
      await ec.goto(`${BASE}/ui/engineer.html?site=${SITE}#token=${encodeURIComponent(ENGINEER)}`);
      await ec.waitForFunction(() => document.getElementById('tune-toml')?.value.includes('site ='), null, { timeout: 15000 });
      await ec.fill('#tune-toml', rules);
      await ec.selectOption('#tune-hours', '1');
      await ec.click('#tune-run');
      await ec.waitForSelector('#tune-result tr[data-zone="jetty"].changed', { timeout: 30000 });
      await ec.selectOption('#tune-zone', 'jetty');
      await ec.waitForSelector('svg.tune-chart rect.tk[data-set="candidate"][data-added="1"]', { timeout: 15000 });
      if (await ec.$('svg.tune-chart rect.tk[data-set="current"]')) throw new Error('the rules in force had a jetty ticket at 1.5/m²');
      await ec.locator('#tune-chart').scrollIntoViewIfNeeded();
      await shot(ec, 'engineer-backtest');
    });
    await step('the engineer applies it and the next reading is judged by it', async () => {
      await ec.fill('#tune-note', 'ferry queue: dispatch from 1.0/m² (e2e test)');
      await ec.click('#tune-apply');
      await ec.waitForFunction(() => /Version \d+ is in force/.test(document.getElementById('tune-problems').textContent), null, { timeout: 15000 });
      await ec.waitForSelector('#tune-history li[data-version] .pill.online', { state: 'attached', timeout: 10000 });
      publish('jetty', quiet, jetty.area_m2);
      await op.waitForSelector('#tickets li.ticket[data-zone="jetty"]', { timeout: 30000 });
      const open = await apiGet('/tickets?site=' + SITE);
      const t = open.find((x) => x.zone === 'jetty' && x.rule === 'jetty-tight');
      if (!t) throw new Error(`no jetty-tight ticket: ${JSON.stringify(open.map((x) => [x.zone, x.rule]))}`);
      await shot(ec, 'engineer-applied');
    });
  }

  // (6) Camera settings: a camera edge's status lists its model; the engineer reads the pool's evaluation, opens
  // the camera's dialog, sees what a new threshold would do to the count, and pushes it (the edge, not running
  // here, shows as pending).
  if (ENGINEER) {
    const status = {
      edge_id: 'e2e-cam', site: SITE, state: 'online', ts: new Date().toISOString(), version: 'e2e',
      models: [{ name: 'nanodet-g-coco', version: 'e2e', sha256: 'ab'.repeat(32), source: 'e2e-cam/beach-cam', person_threshold: 0.45, vehicle_threshold: 0.4, nms_iou: 0.6 }],
    };
    const r = spawnSync('mosquitto_pub', ['-h', MQTT_HOST, '-p', String(MQTT_PORT), '-q', '1', '-r', '-t', `${PREFIX}/${SITE}/edge/e2e-cam/status`, '-m', JSON.stringify(status)], { encoding: 'utf8', timeout: 10000 });
    if (r.status !== 0) fail(`mosquitto_pub exited ${r.status}: ${r.stderr || r.error}`);
    const ecCtx = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const ec = await ecCtx.newPage();
    watch(ec, 'engineer-models');
    await step('the engineer reads the evaluation and pushes a camera threshold', async () => {
      await ec.goto(`${BASE}/ui/engineer.html?site=${SITE}#token=${encodeURIComponent(ENGINEER)}`);
      await ec.waitForSelector('#models-body tr[data-eval="nanodet-g-coco"]', { timeout: 20000 });
      await ec.waitForSelector('#models-body .eval-curve svg path', { timeout: 5000 });
      const row = await ec.waitForSelector('#models-body tr[data-camera="e2e-cam/beach-cam"]', { timeout: 20000 });
      const text = await row.innerText();
      if (!/nanodet-g-coco/.test(text) || !/0\.45/.test(text)) throw new Error(`camera row reads: ${text}`);
      await row.$eval('button[data-tune]', (b) => b.click());
      await ec.waitForSelector('#tune-dialog[open]');
      await ec.fill('#tune-dialog input[name="person_threshold"]', '0.40');
      await ec.waitForFunction(() => /0\.40 instead of 0\.45 would count [+-]\d/.test(document.querySelector('#tune-dialog .would').textContent), null, { timeout: 5000 });
      await ec.fill('#tune-dialog input[name="note"]', 'e2e: a person behind the sign is missed');
      await shot(ec, 'engineer-camera-dialog');
      await ec.click('#tune-dialog button[value="push"]');
      await ec.waitForFunction(() => /version \d+ pushed/.test(document.getElementById('toasts')?.textContent || ''), null, { timeout: 10000 });
      await ec.waitForFunction(() => /v\d+ on its way/.test(document.querySelector('#models-body tr[data-camera="e2e-cam/beach-cam"]')?.textContent || ''), null, { timeout: 15000 });
      const hist = await apiGet(`/cameras/${SITE}/e2e-cam/beach-cam/settings`, ENGINEER);
      if (hist.length !== 1 || Math.abs(hist[0].person_threshold - 0.4) > 1e-6 || !/sign/.test(hist[0].note)) throw new Error(`history: ${JSON.stringify(hist)}`);
    });
    // (7) The camera's geometry: its view (a frame and the geometry it counts with) arrives retained; the engineer
    // drags a zone's corner, nudges it with the keyboard, adds a counting line, is told every problem of a bad
    // calibration before anything is stored, then pushes a good one as a new settings version.
    await step('the engineer draws the camera\'s zone and line on its view and pushes them', async () => {
      const jpeg = fs.readFileSync(path.resolve('../data/vision/vtest_300.jpg')).toString('base64');
      const geometry = {
        calibration: { image: [[0, 576], [768, 576], [700, 180], [60, 180]], ground: [[0, 0], [22, 0], [30, 35], [-8, 35]] },
        zones: [{ zone: ZONE, polygon: [[100, 200], [600, 200], [600, 560], [100, 560]] }],
        lines: [],
      };
      const view = { camera: 'beach-cam', taken_at: new Date().toISOString(), width: 768, height: 576, geometry, jpeg };
      const file = path.join(process.env.SCREENSHOT_DIR || '.', 'view.json');
      fs.writeFileSync(file, JSON.stringify(view));
      const r = spawnSync('mosquitto_pub', ['-h', MQTT_HOST, '-p', String(MQTT_PORT), '-q', '1', '-r', '-t', `${PREFIX}/${SITE}/edge/e2e-cam/view/beach-cam`, '-f', file], { encoding: 'utf8', timeout: 10000 });
      if (r.status !== 0) fail(`mosquitto_pub exited ${r.status}: ${r.stderr || r.error}`);
      const row = await ec.waitForSelector('#models-body tr[data-camera="e2e-cam/beach-cam"]', { timeout: 20000 });
      await row.$eval('button[data-geometry]', (b) => b.click());
      const corner = await ec.waitForSelector('#geometry-svg [data-key="zone:0:0"]', { timeout: 20000 });
      // Drag the zone's first corner from (100, 200) by about a fifth of the frame to the right and down.
      const box = await corner.boundingBox();
      const svg = await (await ec.$('#geometry-svg')).boundingBox();
      const scale = svg.width / 768;
      await ec.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await ec.mouse.down();
      await ec.mouse.move(box.x + box.width / 2 + 150 * scale, box.y + box.height / 2 + 100 * scale, { steps: 5 });
      await ec.mouse.up();
      await ec.focus('#geometry-svg [data-key="zone:0:0"]');
      await ec.keyboard.press('Shift+ArrowRight');
      const label = await ec.$eval('#geometry-svg [data-key="zone:0:0"]', (e) => e.getAttribute('aria-label'));
      const [x, y] = label.match(/at ([\d.]+), ([\d.]+)/).slice(1).map(Number);
      if (Math.abs(x - 260) > 6 || Math.abs(y - 300) > 6) throw new Error(`the corner is at ${x}, ${y}: ${label}`);
      await ec.click('#geometry-dialog button[data-act="add-line"]');
      await ec.waitForSelector('#geometry-svg [data-key="line:0:from"]');
      // Enter in a field keeps the editor open (nothing is lost to a stray key).
      await ec.press('#geometry-dialog input[data-line-id="0"]', 'Enter');
      if (!(await ec.$('#geometry-dialog[open]'))) throw new Error('Enter in the line name closed the editor');
      // A calibration whose ground points lie on one line cannot be fitted: listed, nothing stored.
      for (const [i, v] of [[0, 0], [1, 1], [2, 2], [3, 3]]) {
        await ec.fill(`#geometry-dialog input[data-ground="${i}:0"]`, String(v));
        await ec.fill(`#geometry-dialog input[data-ground="${i}:1"]`, '0');
        await ec.dispatchEvent(`#geometry-dialog input[data-ground="${i}:1"]`, 'change');
        await ec.dispatchEvent(`#geometry-dialog input[data-ground="${i}:0"]`, 'change');
      }
      await ec.click('#geometry-dialog button[data-push]');
      await ec.waitForFunction(() => /calibration/.test(document.querySelector('#geometry-dialog .geometry-problems')?.textContent || ''), null, { timeout: 10000 });
      await shot(ec, 'engineer-geometry-refused');
      const [gx, gy] = [[0, 0], [22, 0], [30, 35], [-8, 35]].reduce((a, p) => [a[0].concat(p[0]), a[1].concat(p[1])], [[], []]);
      for (let i = 0; i < 4; i++) {
        await ec.fill(`#geometry-dialog input[data-ground="${i}:0"]`, String(gx[i]));
        await ec.dispatchEvent(`#geometry-dialog input[data-ground="${i}:0"]`, 'change');
        await ec.fill(`#geometry-dialog input[data-ground="${i}:1"]`, String(gy[i]));
        await ec.dispatchEvent(`#geometry-dialog input[data-ground="${i}:1"]`, 'change');
      }
      await ec.fill('#geometry-dialog input[name="note"]', 'e2e: zone drawn on the view');
      await shot(ec, 'engineer-geometry');
      await ec.click('#geometry-dialog button[data-push]');
      await ec.waitForFunction(() => /geometry in version \d+ pushed/.test(document.getElementById('toasts')?.textContent || ''), null, { timeout: 10000 });
      const hist = await apiGet(`/cameras/${SITE}/e2e-cam/beach-cam/settings`, ENGINEER);
      const g = hist[0].geometry;
      if (hist.length !== 2 || !g || g.lines.length !== 1 || g.lines[0].zone !== ZONE) throw new Error(`history: ${JSON.stringify(hist[0])}`);
      const [hx, hy] = g.zones[0].polygon[0];
      if (Math.abs(hx - x) > 0.01 || Math.abs(hy - y) > 0.01) throw new Error(`stored corner ${hx}, ${hy}, drawn ${x}, ${y}`);
      if (Math.abs(hist[0].person_threshold - 0.4) > 1e-6) throw new Error(`the threshold was not kept: ${JSON.stringify(hist[0])}`);
    });
    await step('a camera edge dropping most of its frames turns amber on the operator map, with the reason', async () => {
      const health = (accepted, dropped) => ({ ...status, ts: new Date().toISOString(), sources: [{ id: 'e2e-cam/beach-cam', kind: 'camera', accepted, rejected: { frame_dropped: dropped } }] });
      for (const s of [health(100, 0), health(110, 90)]) {
        const r = spawnSync('mosquitto_pub', ['-h', MQTT_HOST, '-p', String(MQTT_PORT), '-q', '1', '-r', '-t', `${PREFIX}/${SITE}/edge/e2e-cam/status`, '-m', JSON.stringify(s)], { encoding: 'utf8', timeout: 10000 });
        if (r.status !== 0) fail(`mosquitto_pub exited ${r.status}: ${r.stderr || r.error}`);
      }
      const marker = await op.waitForSelector('.edge-marker.degraded[data-edge="e2e-cam"]', { timeout: 15000 });
      const colour = await marker.evaluate((el) => getComputedStyle(el).backgroundColor);
      if (colour !== 'rgb(179, 89, 0)') throw new Error(`degraded edge drawn in ${colour}`);
      await marker.hover();
      await op.waitForFunction(() => /degraded: e2e-cam\/beach-cam dropping frames: 90 of 100/.test(document.querySelector('.leaflet-tooltip')?.textContent || ''), null, { timeout: 5000 });
      await shot(op, 'operator-degraded-edge');
    });
  }

  if (pageErrors.length) fail(`uncaught errors in the pages:\n  ${pageErrors.join('\n  ')}`);
  log('all steps passed');
} catch (e) {
  fail(e.stack || String(e));
} finally {
  clearTimeout(timeoutGuard);
  await browser.close().catch(() => {});
}
