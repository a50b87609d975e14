// Shared client for the crowdgrid API (docs/API.md): bearer token handling, JSON fetch, the live event
// stream (SSE opened with a short-lived ticket, falling back to polling, and reporting "disconnected" when
// nothing — not even the centre's 10 s heartbeat — has arrived for a while), and small formatting helpers.

const TOKEN_KEY = 'crowdgrid.token';

/** Takes `#token=…` from the URL fragment (then removes it from the address bar) and stores it. */
export function captureToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    const rest = location.hash.replace(/(?:^|[#&])token=[^&]+/, '').replace(/^#?&?/, '');
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }
  return localStorage.getItem(TOKEN_KEY);
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  localStorage.setItem(TOKEN_KEY, t);
}

export function logout() {
  localStorage.removeItem(TOKEN_KEY);
  toLogin('signed out');
}

/** Sends the browser to the login page, remembering where to come back to. */
export function toLogin(reason) {
  const here = location.pathname.split('/').pop() || 'index.html';
  if (here === 'login.html') return;
  const q = new URLSearchParams({ next: here + location.search });
  if (reason) q.set('reason', reason);
  location.replace('login.html?' + q.toString());
}

export class ApiError extends Error {
  constructor(status, message, data = null) {
    super(message);
    this.status = status;
    /** The JSON body of the answer (e.g. `problems` of a 422). */
    this.data = data;
  }
}

/** `fetch('/api/v1' + path)` with the bearer token; JSON in and out. 401 → login page. */
export async function api(path, { method = 'GET', body, redirect401 = true } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch('/api/v1' + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (resp.status === 401 && redirect401) {
    toLogin('the token was refused (401)');
    throw new ApiError(401, 'unauthorised');
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!resp.ok) {
    const msg = (data && data.error) || (typeof data === 'string' && data) || resp.statusText;
    throw new ApiError(resp.status, `${method} ${path}: ${resp.status} ${msg}`, data);
  }
  return data;
}

/** A binary resource (e.g. an evidence JPEG) as an object URL, or `null` on 404. */
export async function apiObjectUrl(path) {
  const t = token();
  const resp = await fetch('/api/v1' + path, { headers: t ? { Authorization: 'Bearer ' + t } : {}, cache: 'no-store' });
  if (resp.status === 404) return null;
  if (!resp.ok) throw new ApiError(resp.status, `GET ${path}: ${resp.status}`);
  return URL.createObjectURL(await resp.blob());
}

/** The signed-in identity, or sends to login. */
export async function me() {
  if (!token()) {
    toLogin('no token');
    throw new ApiError(401, 'no token');
  }
  return api('/me');
}

/** Seconds without any event (the centre sends a heartbeat every 10 s) before a page says "disconnected". */
export const STALE_S = 30;

/**
 * Live updates. Opens `GET /api/v1/events` (EventSource, with a 60 s ticket from `POST /events/ticket`: the
 * token itself never goes into a URL) and calls handlers.zone/ticket/edge/lagged; `zones: 'level'` asks for a zone
 * only when its level changes (phones on mobile data). If the stream cannot be
 * opened it falls back to calling `poll()` every `pollMs`. `onStatus(kind, text)` reports 'live' | 'polling' |
 * 'down'; 'live' carries the time of the last event, and after STALE_S seconds of silence the page turns
 * 'down' ("disconnected") and reconnects.
 */
export function liveUpdates({ site, zones, handlers, poll, pollMs = 5000, onStatus = () => {} }) {
  let es = null;
  let pollTimer = null;
  let failures = 0;
  let closed = false;
  let lastEvent = 0;

  const startPolling = () => {
    if (pollTimer || closed) return;
    onStatus('polling', `polling every ${pollMs / 1000} s`);
    pollTimer = setInterval(() => poll && poll().catch(() => onStatus('down', 'API unreachable')), pollMs);
  };
  const stopPolling = () => {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  };
  const heard = () => {
    lastEvent = Date.now();
    onStatus('live', 'live · ' + new Date(lastEvent).toLocaleTimeString());
  };
  const retry = () => {
    failures += 1;
    setTimeout(open, Math.min(30000, 2000 * failures));
  };

  const open = async () => {
    if (closed) return;
    let ticket;
    try {
      ticket = (await api('/events/ticket', { method: 'POST' })).ticket;
    } catch (e) {
      if (e.status === 401) return;
      onStatus('down', 'disconnected — the centre does not answer');
      startPolling();
      retry();
      return;
    }
    const q = new URLSearchParams({ ticket });
    if (site) q.set('site', site);
    if (zones) q.set('zones', zones);
    es = new EventSource('/api/v1/events?' + q.toString());
    es.onopen = () => {
      failures = 0;
      stopPolling();
      heard();
      // Catch up with whatever happened while the stream was down.
      if (poll) poll().catch(() => {});
    };
    for (const type of ['zone', 'ticket', 'edge', 'lagged', 'heartbeat']) {
      es.addEventListener(type, (ev) => {
        heard();
        if (type === 'heartbeat') return;
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (type === 'lagged') {
          if (poll) poll().catch(() => {});
        }
        const h = handlers[type];
        if (h) h(data);
      });
    }
    es.onerror = () => {
      // The ticket is single-use for reconnects after it expires: always reopen with a fresh one.
      es.close();
      onStatus('down', 'disconnected — reconnecting…');
      startPolling();
      retry();
    };
  };
  const watchdog = setInterval(() => {
    if (closed || !es || es.readyState !== EventSource.OPEN) return;
    const silent = Math.round((Date.now() - lastEvent) / 1000);
    if (silent >= STALE_S) {
      es.close();
      onStatus('down', `disconnected — nothing for ${silent} s`);
      startPolling();
      retry();
    }
  }, 5000);
  open();
  return {
    close() {
      closed = true;
      clearInterval(watchdog);
      stopPolling();
      if (es) es.close();
    },
  };
}

// ── presentation helpers ─────────────────────────────────────────────────────────────────────────

export const LEVELS = ['normal', 'notice', 'warning', 'critical'];
export const LEVEL_RANK = { normal: 0, notice: 1, warning: 2, critical: 3 };
export const LEVEL_COLOR = {
  normal: '#2e9e5b',
  notice: '#e3c01c',
  warning: '#f07f13',
  critical: '#e0262b',
  unknown: '#7b8794',
};
export const LEVEL_LABEL = {
  normal: 'normal',
  notice: 'notice',
  warning: 'warning',
  critical: 'critical',
};

/** Level of a density against a zone's thresholds (no hysteresis: used for replay). */
export function levelOf(density, th) {
  if (density == null || !th) return 'normal';
  if (density >= th.critical) return 'critical';
  if (density >= th.warning) return 'warning';
  if (density >= th.notice) return 'notice';
  return 'normal';
}

export const OPEN_STATES = ['raised', 'dispatched', 'acknowledged', 'on_site'];
export const isOpen = (t) => OPEN_STATES.includes(t.state);

/** A ticket's state as shown: engineers' tickets have no grid worker, so "no one on duty" is not their story. */
export function stateLabel(t) {
  if (t.audience === 'engineer' && t.state === 'raised') return 'raised — for the engineers';
  return STATE_LABEL[t.state] || t.state;
}

export const STATE_LABEL = {
  raised: 'raised — no one on duty',
  dispatched: 'dispatched',
  acknowledged: 'acknowledged',
  on_site: 'on site',
  resolved: 'resolved',
};

export const TIER_LABEL = {
  grid: 'grid 网格',
  community: 'community 社村',
  subdistrict: 'sub-district 街镇',
  department: 'department 部门 (whistle)',
};

export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

export function fmtNum(n, digits = 0) {
  if (n == null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function fmtDensity(d) {
  return d == null ? '–' : Number(d).toFixed(2);
}

/**
 * What a ticket's rule measured, in its unit, and the zone's density beside it: "3.71 /m² (peak 3.95)",
 * "640 /min (peak 712) · 1.90 /m²", "warning in 1 min 30 s (nearest …)". Tickets stored before the value had a
 * metric show the density.
 */
export function fmtMeasure(t) {
  if (!t.metric) return `${fmtDensity(t.density)} /m² (peak ${fmtDensity(t.peak_density)})`;
  const value = `${fmtMetric(t.metric, t.value)} (${t.metric === 'predictive' ? 'nearest' : 'peak'} ${fmtMetric(t.metric, t.peak_value)})`;
  return t.metric === 'density' ? value : `${value} · ${fmtDensity(t.density)} /m²`;
}

/** "4 min", "2 h 05 min" from seconds. */
export function fmtDuration(s) {
  if (s == null || Number.isNaN(s)) return '–';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function ageOf(ts, now = Date.now()) {
  if (!ts) return null;
  return (now - Date.parse(ts)) / 1000;
}

/** HH:MM in the site's local time (utc_offset_minutes), or the browser's if unknown. */
export function fmtClock(ts, offsetMin, withSeconds = false) {
  const d = new Date(typeof ts === 'number' ? ts : Date.parse(ts));
  if (Number.isNaN(d.getTime())) return '–';
  if (offsetMin == null) {
    return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: withSeconds ? '2-digit' : undefined });
  }
  const local = new Date(d.getTime() + offsetMin * 60000);
  const hh = String(local.getUTCHours()).padStart(2, '0');
  const mm = String(local.getUTCMinutes()).padStart(2, '0');
  const ss = String(local.getUTCSeconds()).padStart(2, '0');
  return withSeconds ? `${hh}:${mm}:${ss}` : `${hh}:${mm}`;
}

export function fmtDateTime(ts, offsetMin) {
  if (!ts) return '–';
  const d = new Date(Date.parse(ts) + (offsetMin ?? -new Date().getTimezoneOffset()) * 60000);
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)}`;
}

/** Trend text and arrow from people/m² per minute. */
export function trendText(perMin) {
  if (perMin == null || Number.isNaN(perMin)) return { arrow: '·', text: 'trend unknown', cls: 'flat' };
  const abs = Math.abs(perMin);
  if (abs < 0.005) return { arrow: '→', text: 'steady', cls: 'flat' };
  const sign = perMin > 0 ? '+' : '−';
  return {
    arrow: perMin > 0 ? '↑' : '↓',
    text: `${sign}${abs.toFixed(2)}/m² per min`,
    cls: perMin > 0 ? 'up' : 'down',
  };
}

/** Area-weighted centroid of a GeoJSON Polygon's outer ring, as [lat, lng]. */
export function centroid(geometry) {
  const ring = geometry && geometry.type === 'Polygon' ? geometry.coordinates[0] : null;
  if (!ring || ring.length < 3) return null;
  let a = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < ring.length - 1; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[i + 1];
    const f = x0 * y1 - x1 * y0;
    a += f;
    x += (x0 + x1) * f;
    y += (y0 + y1) * f;
  }
  if (Math.abs(a) < 1e-18) {
    const n = ring.length - 1;
    return [ring.slice(0, n).reduce((s, p) => s + p[1], 0) / n, ring.slice(0, n).reduce((s, p) => s + p[0], 0) / n];
  }
  a *= 0.5;
  return [y / (6 * a), x / (6 * a)];
}

/** Great-circle distance in metres. */
export function distanceM([lat1, lon1], [lat2, lon2]) {
  const r = 6371008.8;
  const p1 = (lat1 * Math.PI) / 180;
  const p2 = (lat2 * Math.PI) / 180;
  const dp = p2 - p1;
  const dl = ((lon2 - lon1) * Math.PI) / 180;
  const h = Math.sin(dp / 2) ** 2 + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) ** 2;
  return 2 * r * Math.asin(Math.sqrt(h));
}

/** Sort key for a ticket queue: severity first, then the oldest first. */
export function queueOrder(a, b) {
  return (LEVEL_RANK[b.level] ?? 0) - (LEVEL_RANK[a.level] ?? 0) || Date.parse(a.opened_at) - Date.parse(b.opened_at);
}

/** A small transient message at the bottom of the page. */
export function toast(msg, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = document.createElement('div');
    box.id = 'toasts';
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
    document.body.appendChild(box);
  }
  const el = document.createElement('div');
  el.className = 'toast ' + kind;
  el.textContent = msg;
  box.appendChild(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/** Fills the shared header's identity box and role-based navigation. */
export function renderIdentity(who) {
  const el = document.getElementById('who');
  if (el) {
    el.innerHTML = `<span class="who-name">${esc(who.name)}</span> <span class="role">${esc(who.role.replace('_', ' '))}</span>
      <button type="button" class="link" id="logout">sign out</button>`;
    document.getElementById('logout').onclick = logout;
  }
  const nav = document.getElementById('nav');
  if (nav) {
    const links = [
      ['city.html', 'City', ['operator', 'engineer', 'admin']],
      ['index.html', 'Live map', ['operator', 'engineer', 'admin']],
      ['worker.html', 'Grid worker', ['grid_worker', 'operator', 'admin']],
      ['engineer.html', 'Engineering console', ['engineer', 'operator', 'admin']],
    ];
    const here = location.pathname.split('/').pop() || 'index.html';
    const mine = links.filter(([, , roles]) => roles.includes(who.role));
    nav.innerHTML = (mine.length > 1 ? mine : [])
      .map(([href, label]) => `<a href="${href}"${href === here ? ' aria-current="page"' : ''}>${label}</a>`)
      .join('');
  }
}

/** A rule metric's value with its unit: density in people/m², occupancy and other ratios in %. */
export function fmtMetric(metric, v) {
  if (v == null || Number.isNaN(v)) return '–';
  if (metric === 'density') return `${Number(v).toFixed(2)} /m²`;
  if (/occupancy|ratio|share|capacity/.test(metric || '')) return `${Math.round(Number(v) * 100)} %`;
  if (metric === 'silent') return fmtDuration(Number(v));
  if (metric === 'predictive') return `warning in ${fmtDuration(Number(v))}`;
  if (metric === 'conflict') return `${fmtNum(v)} people`;
  if (metric === 'inflow' || metric === 'outflow') return `${fmtNum(v)} /min`;
  return Number(v).toLocaleString('en-US', { maximumFractionDigits: 2 });
}

/** A rule's levels, notice → critical, as [level, value] pairs. */
export function sortedLevels(levels) {
  const rank = { notice: 1, warning: 2, critical: 3 };
  return Object.entries(levels || {}).sort((a, b) => (rank[a[0]] ?? 9) - (rank[b[0]] ?? 9));
}

/** The grids of `/me`: plain ids, or [site, grid] pairs, or {site, grid} objects. */
export function gridNames(grids) {
  return (grids || []).map((g) => (Array.isArray(g) ? `${g[1]} (${g[0]})` : typeof g === 'object' && g ? `${g.grid} (${g.site})` : String(g)));
}
