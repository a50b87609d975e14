// Engineers' ticket queue in the console: the open tickets addressed to engineers (data quality, silent sources,
// offline edges) with their deadlines, and the actions engineers may take on them (acknowledge, resolve with a
// note, escalate). Grid workers' crowd tickets are not here: engineers read them on the map but do not act.
import { api, esc, fmtDateTime, fmtDuration, ageOf, fmtMeasure, stateLabel, TIER_LABEL, toast } from './api.js';

let box;
let site = '';
let offsetOf = () => undefined;

/** Draws the queue into `#eng-tickets-body` for `siteId` ('' = all sites). */
export async function renderEngineerTickets(siteId, offsetOfSite) {
  box = document.getElementById('eng-tickets-body');
  site = siteId;
  offsetOf = offsetOfSite;
  let tickets;
  try {
    tickets = await api(`/tickets?state=open${site ? `&site=${encodeURIComponent(site)}` : ''}`);
  } catch (e) {
    if (e.status !== 401) box.innerHTML = `<p class="err">${esc(e.message)}</p>`;
    return;
  }
  const mine = tickets.filter((t) => t.audience === 'engineer');
  document.getElementById('eng-count').textContent = mine.length ? `${mine.length} open` : 'none open';
  if (!mine.length) {
    box.innerHTML = '<p class="muted">No open engineers’ tickets.</p>';
    return;
  }
  box.innerHTML = `<table class="grid"><thead><tr><th>#</th><th>site / zone</th><th>rule</th><th>what</th><th>state</th><th>deadline</th><th></th></tr></thead><tbody>${mine
    .map((t) => {
      const off = offsetOf(t.site);
      const unacked = t.state === 'raised' || t.state === 'dispatched';
      const due = unacked ? t.ack_due : t.resolve_due;
      const late = due && Date.parse(due) < Date.now();
      return `<tr data-ticket="${t.id}" data-state="${esc(t.state)}">
        <td class="num">${t.id}</td><td>${esc(t.site)} / ${esc(t.zone)}</td><td><b>${esc(t.rule)}</b></td>
        <td class="small">${esc(fmtMeasure(t))}<div class="muted">open ${fmtDuration(ageOf(t.opened_at))} · tier ${esc(TIER_LABEL[t.tier] || t.tier)}</div></td>
        <td>${esc(stateLabel(t))}</td>
        <td class="small ${late ? 'overdue' : ''}">${unacked ? 'acknowledge' : 'resolve'} by ${due ? esc(fmtDateTime(due, off)) : '–'}</td>
        <td class="actions">${unacked ? '<button data-act="acknowledge">Acknowledge</button>' : ''}
          <button data-act="resolve">Resolve…</button><button data-act="escalate">Escalate</button></td></tr>`;
    })
    .join('')}</tbody></table>`;
  box.querySelectorAll('button[data-act]').forEach((b) => {
    b.onclick = () => act(Number(b.closest('tr').dataset.ticket), b.dataset.act);
  });
}

async function act(id, action) {
  let note = '';
  if (action === 'resolve') {
    note = prompt(`Ticket #${id}: what was done?`) || '';
    if (!note.trim()) return;
  }
  try {
    await api(`/tickets/${id}/${action}`, { method: 'POST', body: { note } });
    toast(`#${id}: ${action}d`);
  } catch (e) {
    toast(e.message, 'error');
  }
  renderEngineerTickets(site, offsetOf);
}
