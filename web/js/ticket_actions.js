// The operator's ticket actions: acknowledge and on-site at once; resolve, escalate and reassign through a
// dialog (a note, the roster picker). Every change goes through the API and comes back as the ticket.

import { api, toast, esc, TIER_LABEL } from './api.js';

let S;
let hooks; // { zoneName(id), changed() }

export function initActions(state, h) {
  S = state;
  hooks = h;
  wireDialog();
}

let pending = null;

function wireDialog() {
  const dlg = document.getElementById('action-dialog');
  document.getElementById('action-cancel').onclick = () => dlg.close();
  document.getElementById('action-form').onsubmit = async (ev) => {
    ev.preventDefault();
    if (!pending) return;
    const note = document.getElementById('action-note').value.trim();
    const body = {};
    if (note) body.note = note;
    if (pending.act === 'resolve' && !note) {
      toast('Resolving needs a short feedback note.', 'error');
      return;
    }
    if (pending.act === 'reassign') {
      body.to = document.getElementById('action-to').value;
      if (!body.to) {
        toast('Pick the worker to reassign to.', 'error');
        return;
      }
    }
    dlg.close();
    await act(pending.id, pending.act, body);
  };
}

export async function openAction(id, action) {
  const t = S.tickets.get(id);
  if (!t) return;
  if (action === 'acknowledge' || action === 'on_site') {
    await act(id, action, {});
    return;
  }
  pending = { id, act: action };
  const titles = {
    resolve: `Resolve #${id} — ${hooks.zoneName(t.zone)}`,
    escalate: `Escalate #${id} — ${hooks.zoneName(t.zone)}`,
    reassign: `Reassign #${id} — ${hooks.zoneName(t.zone)}`,
  };
  const help = {
    resolve: 'Feedback note (required): what was done on site.',
    escalate:
      t.tier === 'subdistrict'
        ? 'Blow the whistle (吹哨): the responsible department must report and act.'
        : `Move the matter up one tier, from ${TIER_LABEL[t.tier] || t.tier}.`,
    reassign: `Another worker who covers grid ${t.grid}.`,
  };
  document.getElementById('action-title').textContent = titles[action];
  document.getElementById('action-help').textContent = help[action];
  document.getElementById('action-note').value = '';
  const toLabel = document.getElementById('to-label');
  toLabel.classList.toggle('hidden', action !== 'reassign');
  if (action === 'reassign') {
    // The roster: who covers the ticket's grid first, then the rest of the site (a neighbour can step in).
    const roster = (S.siteInfo?.hierarchy?.workers || []).filter((w) => w.id !== t.assignee);
    const opt = (w) => `<option value="${esc(w.id)}">${esc(w.name || w.id)}</option>`;
    const here = roster.filter((w) => (w.grids || []).includes(t.grid));
    const rest = roster.filter((w) => !(w.grids || []).includes(t.grid));
    document.getElementById('action-to').innerHTML =
      (here.length ? `<optgroup label="Covers grid ${esc(t.grid)}">${here.map(opt).join('')}</optgroup>` : '') +
      (rest.length ? `<optgroup label="Elsewhere in the site">${rest.map(opt).join('')}</optgroup>` : '');
  }
  document.getElementById('action-dialog').showModal();
  document.getElementById(action === 'reassign' ? 'action-to' : 'action-note').focus();
}

/** Workers of a grid from `/sites` when it lists them (objects or ids); otherwise those seen on its tickets
 * (the API gives only a count of workers per site, so the operator may also type any worker id). */

async function act(id, action, body) {
  try {
    const t = await api(`/tickets/${id}/${action}`, { method: 'POST', body });
    S.tickets.set(t.id, t);
    hooks.changed();
    const done = { acknowledge: 'acknowledged', on_site: 'marked on site', resolve: 'resolved', escalate: `escalated to ${t.tier}`, reassign: `reassigned to ${t.assignee}` };
    toast(`#${id} ${done[action] || action}`, 'ok');
  } catch (e) {
    if (e.status !== 401) toast(e.message, 'error');
  }
}
