//! The ticket store in SQLite: every change is one IMMEDIATE transaction (one writer at a time).

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::model::{row_to_ticket, COLUMNS};
use super::{detail, Action, ListFilter, Measure, NewTicket, Raised, State, Ticket, TicketEvent, Tier};
use crate::store::{from_ms, ms, StoreError};

fn event(c: &Connection, id: i64, ts: DateTime<Utc>, kind: &str, actor: &str, detail: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO ticket_events (ticket_id, ts, kind, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, ms(ts), kind, actor, detail],
    )?;
    Ok(())
}

fn get(c: &Connection, id: i64) -> Result<Ticket, StoreError> {
    c.query_row(&format!("SELECT {COLUMNS} FROM tickets WHERE id = ?1"), params![id], row_to_ticket)
        .optional()?
        .ok_or(StoreError::NoTicket(id))
}

fn open_for(c: &Connection, site: &str, zone: &str, rule: &str) -> Result<Option<Ticket>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM tickets WHERE site = ?1 AND zone = ?2 AND rule = ?3 AND state <> 'resolved'"),
        params![site, zone, rule],
        row_to_ticket,
    )
    .optional()?)
}

fn least_loaded(c: &Connection, candidates: &[String]) -> Result<Option<(String, i64)>, StoreError> {
    let mut best: Option<(String, i64)> = None;
    for w in candidates {
        let load: i64 =
            c.query_row("SELECT COUNT(*) FROM tickets WHERE assignee = ?1 AND state <> 'resolved'", params![w], |r| {
                r.get(0)
            })?;
        if best.as_ref().is_none_or(|(_, b)| load < *b) {
            best = Some((w.clone(), load));
        }
    }
    Ok(best)
}

pub(super) fn raise(c: &mut Connection, t: &NewTicket) -> Result<Raised, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(open) = open_for(&tx, &t.site, &t.zone, &t.rule)? {
        return Ok(Raised::Existing(open));
    }
    let recent: Option<i64> = tx
        .query_row(
            "SELECT id FROM tickets WHERE site = ?1 AND zone = ?2 AND rule = ?3 AND state = 'resolved'
             AND closed_at >= ?4 ORDER BY closed_at DESC LIMIT 1",
            params![t.site, t.zone, t.rule, ms(t.ts - t.reopen_window)],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = recent {
        let old = get(&tx, id)?;
        let state = if old.assignee.is_some() { "dispatched" } else { "raised" };
        tx.execute(
            "UPDATE tickets SET state = ?2, level = ?3, density = ?4, peak_density = MAX(peak_density, ?4),
             updated_at = ?5, closed_at = NULL, relief_at = NULL, resolution = NULL, resolved_by = NULL,
             ack_due = ?6, resolve_due = ?7, acknowledged_at = NULL, on_site_at = NULL, reopened = reopened + 1,
             metric = ?8, unit = ?9, value = ?10, peak_value = ?10
             WHERE id = ?1",
            params![
                id,
                state,
                t.level.as_str(),
                t.measure.density,
                ms(t.ts),
                t.ack_due.map(ms),
                t.resolve_due.map(ms),
                t.measure.metric,
                t.measure.unit,
                t.measure.value
            ],
        )?;
        event(&tx, id, t.ts, "reopened", "system", &detail::reopened(t))?;
        let ticket = get(&tx, id)?;
        tx.commit()?;
        return Ok(Raised::Reopened(ticket));
    }
    let assignee = least_loaded(&tx, &t.candidates)?;
    let state = if assignee.is_some() { "dispatched" } else { "raised" };
    tx.execute(
        "INSERT INTO tickets (site, zone, grid, community, subdistrict, rule, kind, audience, level, state, tier,
         assignee, opened_at, updated_at, ack_due, resolve_due, density, peak_density, metric, unit, value, peak_value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'grid', ?11, ?12, ?12, ?13, ?14, ?15, ?15, ?16, ?17, ?18, ?18)",
        params![
            t.site,
            t.zone,
            t.grid,
            t.community,
            t.subdistrict,
            t.rule,
            t.kind,
            t.audience,
            t.level.as_str(),
            state,
            assignee.as_ref().map(|a| a.0.clone()),
            ms(t.ts),
            t.ack_due.map(ms),
            t.resolve_due.map(ms),
            t.measure.density,
            t.measure.metric,
            t.measure.unit,
            t.measure.value
        ],
    )?;
    let id = tx.last_insert_rowid();
    event(&tx, id, t.ts, "raised", "system", &detail::raised(t))?;
    let (kind, text) = detail::assigned(t, assignee.as_ref());
    event(&tx, id, t.ts, kind, "system", &text)?;
    let ticket = get(&tx, id)?;
    tx.commit()?;
    Ok(Raised::New(ticket))
}

pub(super) fn upgrade(
    c: &mut Connection,
    (site, zone, rule): (&str, &str, &str),
    level: Level,
    m: &Measure,
    ts: DateTime<Utc>,
) -> Result<Option<Ticket>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(open) = open_for(&tx, site, zone, rule)? else { return Ok(None) };
    tx.execute(
        "UPDATE tickets SET level = ?2, density = ?3, peak_density = MAX(peak_density, ?3), updated_at = ?4,
         value = ?5, peak_value = CASE WHEN ?6 THEN MIN(peak_value, ?5) ELSE MAX(peak_value, ?5) END WHERE id = ?1",
        params![open.id, level.as_str(), m.density, ms(ts), m.value, m.lower_is_urgent],
    )?;
    event(&tx, open.id, ts, "upgraded", "system", &detail::upgraded(&open, level, m))?;
    let t = get(&tx, open.id)?;
    tx.commit()?;
    Ok(Some(t))
}

pub(super) fn clear(
    c: &mut Connection,
    (site, zone, rule): (&str, &str, &str),
    value: f64,
    ts: DateTime<Utc>,
) -> Result<Option<Ticket>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(open) = open_for(&tx, site, zone, rule)? else { return Ok(None) };
    tx.execute(
        "UPDATE tickets SET state = 'resolved', resolution = 'auto', resolved_by = 'system', closed_at = ?2,
         relief_at = COALESCE(relief_at, ?2), updated_at = ?2 WHERE id = ?1",
        params![open.id, ms(ts)],
    )?;
    event(&tx, open.id, ts, "resolved", "system", &detail::cleared(value))?;
    let t = get(&tx, open.id)?;
    tx.commit()?;
    Ok(Some(t))
}

pub(super) fn transition(
    c: &mut Connection,
    id: i64,
    action: Action,
    actor: &str,
    note: &str,
) -> Result<Ticket, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let t = get(&tx, id)?;
    let now = ms(Utc::now());
    match t.after(action)? {
        State::Resolved => tx.execute(
            "UPDATE tickets SET state = 'resolved', resolution = ?2, resolved_by = ?3, closed_at = ?4, updated_at = ?4 WHERE id = ?1",
            params![id, note, actor, now],
        )?,
        State::Acknowledged => tx.execute(
            "UPDATE tickets SET state = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, ?2), updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?,
        State::OnSite => tx.execute(
            "UPDATE tickets SET state = 'on_site', acknowledged_at = COALESCE(acknowledged_at, ?2), on_site_at = ?2, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?,
        other => {
            return Err(StoreError::Transition { id, state: other.as_str().into(), action: action.done().into() })
        }
    };
    event(&tx, id, from_ms(now), action.done(), actor, note)?;
    let t = get(&tx, id)?;
    tx.commit()?;
    Ok(t)
}

/// Escalates one tier; with `expect`, only if the ticket is still open at that tier (else `None`).
pub(super) fn escalate(
    c: &mut Connection,
    id: i64,
    expect: Option<Tier>,
    actor: &str,
    reason: &str,
    resolve_due: Option<DateTime<Utc>>,
) -> Result<Option<Ticket>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let t = get(&tx, id)?;
    if expect.is_some_and(|e| e != t.tier() || !t.is_open()) {
        return Ok(None);
    }
    t.after(Action::Escalate)?;
    let Some(next) = t.tier().next() else {
        return Err(detail::cannot_escalate(&t));
    };
    let now = Utc::now();
    tx.execute(
        "UPDATE tickets SET tier = ?2, ack_due = NULL, resolve_due = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, next.as_str(), resolve_due.map(ms), ms(now)],
    )?;
    event(&tx, id, now, "escalated", actor, &detail::escalated(&t, next, reason))?;
    let t = get(&tx, id)?;
    tx.commit()?;
    Ok(Some(t))
}

pub(super) fn reassign(c: &mut Connection, id: i64, to: &str, actor: &str, note: &str) -> Result<Ticket, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let t = get(&tx, id)?;
    let state = t.after(Action::Reassign)?;
    let now = Utc::now();
    tx.execute(
        "UPDATE tickets SET assignee = ?2, state = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, to, state.as_str(), ms(now)],
    )?;
    event(&tx, id, now, "reassigned", actor, &detail::reassigned(&t, to, note))?;
    let t = get(&tx, id)?;
    tx.commit()?;
    Ok(t)
}

pub(super) fn note(c: &mut Connection, id: i64, kind: &str, actor: &str, detail: &str) -> Result<(), StoreError> {
    event(c, id, Utc::now(), kind, actor, detail)
}

pub(super) fn overdue(c: &mut Connection, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE state <> 'resolved' AND tier <> 'department' AND
         ((ack_due IS NOT NULL AND ack_due < ?1 AND state IN ('raised', 'dispatched')) OR
          (resolve_due IS NOT NULL AND resolve_due < ?1)) ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![ms(now)], row_to_ticket)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn list_where(c: &mut Connection, f: &ListFilter) -> Result<Vec<Ticket>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE (?1 = 0 OR state <> 'resolved') AND (?2 IS NULL OR site = ?2)
         AND (?3 IS NULL OR zone = ?3) AND (?4 IS NULL OR assignee = ?4) ORDER BY id DESC LIMIT 1000"
    ))?;
    let rows = stmt.query_map(params![f.open_only as i64, f.site, f.zone, f.assignee], row_to_ticket)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) fn history(
    c: &mut Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    site: Option<&str>,
) -> Result<Vec<(Ticket, Vec<TicketEvent>)>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE opened_at >= ?1 AND opened_at <= ?2 AND (?3 IS NULL OR site = ?3) ORDER BY id"
    ))?;
    let tickets = stmt.query_map(params![ms(from), ms(to), site], row_to_ticket)?.collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(tickets.len());
    for t in tickets {
        let events = events_of(c, t.id)?;
        out.push((t, events));
    }
    Ok(out)
}

pub(super) fn get_with_events(c: &mut Connection, id: i64) -> Result<(Ticket, Vec<TicketEvent>), StoreError> {
    Ok((get(c, id)?, events_of(c, id)?))
}

pub(super) fn open_alerts(c: &mut Connection) -> Result<Vec<(String, String, String, String)>, StoreError> {
    let mut stmt = c.prepare("SELECT site, zone, rule, level FROM tickets WHERE state <> 'resolved'")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn events_of(c: &Connection, id: i64) -> Result<Vec<TicketEvent>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT id, ts, kind, actor, detail FROM ticket_events WHERE ticket_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![id], |r| {
        Ok(TicketEvent { id: r.get(0)?, ts: from_ms(r.get(1)?), kind: r.get(2)?, actor: r.get(3)?, detail: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
