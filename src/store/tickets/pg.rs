//! The ticket store in PostgreSQL, shared by several centre instances. Every change is one transaction
//! that locks the ticket row (`FOR UPDATE`); two instances raising the same zone and rule at once are
//! kept to one open ticket by the partial unique index (the loser re-reads and gets the open one); the
//! SLA clock escalates only a ticket still at the tier it read, skipping rows another instance holds.

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use deadpool_postgres::{GenericClient, Pool};

use super::model::{pg_row_to_event, pg_row_to_ticket, COLUMNS};
use super::{detail, Action, ListFilter, Measure, NewTicket, Raised, State, Ticket, TicketEvent, Tier};
use crate::store::pg_schema::is_unique_violation;
use crate::store::{from_ms, ms, StoreError};

async fn event(
    c: &impl GenericClient,
    id: i64,
    ts: DateTime<Utc>,
    kind: &str,
    actor: &str,
    detail: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO ticket_events (ticket_id, ts, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &ms(ts), &kind, &actor, &detail],
    )
    .await?;
    Ok(())
}

async fn get_opt(c: &impl GenericClient, id: i64, lock: &str) -> Result<Option<Ticket>, StoreError> {
    let row = c.query_opt(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1 {lock}"), &[&id]).await?;
    Ok(row.as_ref().map(pg_row_to_ticket).transpose()?)
}

async fn get(c: &impl GenericClient, id: i64, lock: &str) -> Result<Ticket, StoreError> {
    get_opt(c, id, lock).await?.ok_or(StoreError::NoTicket(id))
}

async fn open_for(
    c: &impl GenericClient,
    (site, zone, rule): (&str, &str, &str),
    lock: &str,
) -> Result<Option<Ticket>, StoreError> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM tickets WHERE site = $1 AND zone = $2 AND rule = $3 AND state <> 'resolved' {lock}"
            ),
            &[&site, &zone, &rule],
        )
        .await?;
    Ok(row.as_ref().map(pg_row_to_ticket).transpose()?)
}

pub(super) async fn raise(pool: &Pool, t: &NewTicket) -> Result<Raised, StoreError> {
    let key = (t.site.as_str(), t.zone.as_str(), t.rule.as_str());
    let mut c = pool.get().await?;
    match try_raise(&mut c, t).await {
        Ok(Some(r)) => Ok(r),
        // Another instance raised or reopened it between our read and our write: take theirs.
        Ok(None) => open_for(&c, key, "")
            .await?
            .map(Raised::Existing)
            .ok_or(StoreError::Postgres("ticket raised concurrently but not found open afterwards".into())),
        Err(e) if is_unique_violation(&e) => {
            tracing::debug!(site = %t.site, zone = %t.zone, rule = %t.rule, "raised concurrently by another instance");
            open_for(&c, key, "").await?.map(Raised::Existing).ok_or(StoreError::Postgres(format!(
                "unique violation but no open ticket for {}/{}/{}",
                t.site, t.zone, t.rule
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// `None`: lost a race (the caller re-reads the open ticket). Errors are PostgreSQL's own so the caller
/// can recognise a unique violation.
async fn try_raise(c: &mut deadpool_postgres::Client, t: &NewTicket) -> Result<Option<Raised>, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    let lookup =
        format!("SELECT {COLUMNS} FROM tickets WHERE site = $1 AND zone = $2 AND rule = $3 AND state <> 'resolved'");
    if let Some(row) = tx.query_opt(&lookup, &[&t.site, &t.zone, &t.rule]).await? {
        return Ok(Some(Raised::Existing(pg_row_to_ticket(&row)?)));
    }
    let recent = tx
        .query_opt(
            "SELECT id, assignee FROM tickets WHERE site = $1 AND zone = $2 AND rule = $3 AND state = 'resolved'
             AND closed_at >= $4 ORDER BY closed_at DESC LIMIT 1",
            &[&t.site, &t.zone, &t.rule, &ms(t.ts - t.reopen_window)],
        )
        .await?;
    if let Some(row) = recent {
        let id: i64 = row.try_get(0)?;
        let assignee: Option<String> = row.try_get(1)?;
        let state = if assignee.is_some() { "dispatched" } else { "raised" };
        // `state = 'resolved'`: if another instance reopened it first, nothing changes here.
        let n = tx
            .execute(
                "UPDATE tickets SET state = $2, level = $3, density = $4, peak_density = GREATEST(peak_density, $4),
                 updated_at = $5, closed_at = NULL, relief_at = NULL, resolution = NULL, resolved_by = NULL,
                 ack_due = $6, resolve_due = $7, acknowledged_at = NULL, on_site_at = NULL, reopened = reopened + 1,
                 metric = $8, unit = $9, value = $10, peak_value = $10
                 WHERE id = $1 AND state = 'resolved'",
                &[
                    &id,
                    &state,
                    &t.level.as_str(),
                    &t.measure.density,
                    &ms(t.ts),
                    &t.ack_due.map(ms),
                    &t.resolve_due.map(ms),
                    &t.measure.metric,
                    &t.measure.unit,
                    &t.measure.value,
                ],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO ticket_events (ticket_id, ts, kind, actor, detail) VALUES ($1, $2, 'reopened', 'system', $3)",
            &[&id, &ms(t.ts), &detail::reopened(t)],
        )
        .await?;
        let row = tx.query_one(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1"), &[&id]).await?;
        let ticket = pg_row_to_ticket(&row)?;
        tx.commit().await?;
        return Ok(Some(Raised::Reopened(ticket)));
    }
    let mut assignee: Option<(String, i64)> = None;
    for w in &t.candidates {
        let row =
            tx.query_one("SELECT COUNT(*) FROM tickets WHERE assignee = $1 AND state <> 'resolved'", &[w]).await?;
        let load: i64 = row.try_get(0)?;
        if assignee.as_ref().is_none_or(|(_, b)| load < *b) {
            assignee = Some((w.clone(), load));
        }
    }
    let state = if assignee.is_some() { "dispatched" } else { "raised" };
    let row = tx
        .query_one(
            "INSERT INTO tickets (site, zone, grid, community, subdistrict, rule, kind, audience, level, state, tier,
             assignee, opened_at, updated_at, ack_due, resolve_due, density, peak_density, metric, unit, value, peak_value)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'grid', $11, $12, $12, $13, $14, $15, $15, $16, $17, $18, $18)
             RETURNING id",
            &[
                &t.site,
                &t.zone,
                &t.grid,
                &t.community,
                &t.subdistrict,
                &t.rule,
                &t.kind,
                &t.audience,
                &t.level.as_str(),
                &state,
                &assignee.as_ref().map(|a| a.0.as_str()),
                &ms(t.ts),
                &t.ack_due.map(ms),
                &t.resolve_due.map(ms),
                &t.measure.density,
                &t.measure.metric,
                &t.measure.unit,
                &t.measure.value,
            ],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    let ev = "INSERT INTO ticket_events (ticket_id, ts, kind, actor, detail) VALUES ($1, $2, $3, 'system', $4)";
    tx.execute(ev, &[&id, &ms(t.ts), &"raised", &detail::raised(t)]).await?;
    let (kind, text) = detail::assigned(t, assignee.as_ref());
    tx.execute(ev, &[&id, &ms(t.ts), &kind, &text]).await?;
    let row = tx.query_one(&format!("SELECT {COLUMNS} FROM tickets WHERE id = $1"), &[&id]).await?;
    let ticket = pg_row_to_ticket(&row)?;
    tx.commit().await?;
    Ok(Some(Raised::New(ticket)))
}

pub(super) async fn upgrade(
    pool: &Pool,
    key: (&str, &str, &str),
    level: Level,
    m: &Measure,
    ts: DateTime<Utc>,
) -> Result<Option<Ticket>, StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let Some(open) = open_for(&tx, key, "FOR UPDATE").await? else { return Ok(None) };
    tx.execute(
        "UPDATE tickets SET level = $2, density = $3, peak_density = GREATEST(peak_density, $3), updated_at = $4,
         value = $5, peak_value = CASE WHEN $6 THEN LEAST(peak_value, $5) ELSE GREATEST(peak_value, $5) END
         WHERE id = $1",
        &[&open.id, &level.as_str(), &m.density, &ms(ts), &m.value, &m.lower_is_urgent],
    )
    .await?;
    event(&tx, open.id, ts, "upgraded", "system", &detail::upgraded(&open, level, m)).await?;
    let t = get(&tx, open.id, "").await?;
    tx.commit().await?;
    Ok(Some(t))
}

pub(super) async fn clear(
    pool: &Pool,
    key: (&str, &str, &str),
    value: f64,
    ts: DateTime<Utc>,
) -> Result<Option<Ticket>, StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let Some(open) = open_for(&tx, key, "FOR UPDATE").await? else { return Ok(None) };
    tx.execute(
        "UPDATE tickets SET state = 'resolved', resolution = 'auto', resolved_by = 'system', closed_at = $2,
         relief_at = COALESCE(relief_at, $2), updated_at = $2 WHERE id = $1",
        &[&open.id, &ms(ts)],
    )
    .await?;
    event(&tx, open.id, ts, "resolved", "system", &detail::cleared(value)).await?;
    let t = get(&tx, open.id, "").await?;
    tx.commit().await?;
    Ok(Some(t))
}

pub(super) async fn transition(
    pool: &Pool,
    id: i64,
    action: Action,
    actor: &str,
    note: &str,
) -> Result<Ticket, StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let t = get(&tx, id, "FOR UPDATE").await?;
    let now = ms(Utc::now());
    let sql = match t.after(action)? {
        State::Resolved => {
            "UPDATE tickets SET state = 'resolved', resolution = $2, resolved_by = $3, closed_at = $4, updated_at = $4
             WHERE id = $1"
        }
        State::Acknowledged => {
            "UPDATE tickets SET state = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, $4), updated_at = $4
             WHERE id = $1 AND $2::TEXT IS NOT NULL AND $3::TEXT IS NOT NULL"
        }
        State::OnSite => {
            "UPDATE tickets SET state = 'on_site', acknowledged_at = COALESCE(acknowledged_at, $4), on_site_at = $4,
             updated_at = $4 WHERE id = $1 AND $2::TEXT IS NOT NULL AND $3::TEXT IS NOT NULL"
        }
        other => return Err(StoreError::Transition { id, state: other.as_str().into(), action: action.done().into() }),
    };
    tx.execute(sql, &[&id, &note, &actor, &now]).await?;
    event(&tx, id, from_ms(now), action.done(), actor, note).await?;
    let t = get(&tx, id, "").await?;
    tx.commit().await?;
    Ok(t)
}

pub(super) async fn escalate(
    pool: &Pool,
    id: i64,
    expect: Option<Tier>,
    actor: &str,
    reason: &str,
    resolve_due: Option<DateTime<Utc>>,
) -> Result<Option<Ticket>, StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let t = match expect {
        // The SLA clock: another instance holding the row is escalating it; one that already moved it
        // changed the tier. Either way, not ours to do.
        Some(tier) => {
            let row = tx
                .query_opt(
                    &format!(
                        "SELECT {COLUMNS} FROM tickets WHERE id = $1 AND tier = $2 AND state <> 'resolved'
                         FOR UPDATE SKIP LOCKED"
                    ),
                    &[&id, &tier.as_str()],
                )
                .await?;
            match row {
                Some(row) => pg_row_to_ticket(&row)?,
                None => return Ok(None),
            }
        }
        None => get(&tx, id, "FOR UPDATE").await?,
    };
    t.after(Action::Escalate)?;
    let Some(next) = t.tier().next() else {
        return Err(detail::cannot_escalate(&t));
    };
    let now = Utc::now();
    tx.execute(
        "UPDATE tickets SET tier = $2, ack_due = NULL, resolve_due = $3, updated_at = $4 WHERE id = $1",
        &[&id, &next.as_str(), &resolve_due.map(ms), &ms(now)],
    )
    .await?;
    event(&tx, id, now, "escalated", actor, &detail::escalated(&t, next, reason)).await?;
    let t = get(&tx, id, "").await?;
    tx.commit().await?;
    Ok(Some(t))
}

pub(super) async fn reassign(pool: &Pool, id: i64, to: &str, actor: &str, note: &str) -> Result<Ticket, StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    let t = get(&tx, id, "FOR UPDATE").await?;
    let state = t.after(Action::Reassign)?;
    let now = Utc::now();
    tx.execute(
        "UPDATE tickets SET assignee = $2, state = $3, updated_at = $4 WHERE id = $1",
        &[&id, &to, &state.as_str(), &ms(now)],
    )
    .await?;
    event(&tx, id, now, "reassigned", actor, &detail::reassigned(&t, to, note)).await?;
    let t = get(&tx, id, "").await?;
    tx.commit().await?;
    Ok(t)
}

pub(super) async fn note(pool: &Pool, id: i64, kind: &str, actor: &str, detail: &str) -> Result<(), StoreError> {
    let c = pool.get().await?;
    event(&c, id, Utc::now(), kind, actor, detail).await
}

async fn tickets(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Ticket>, StoreError> {
    let rows = c.query(sql, params).await?;
    Ok(rows.iter().map(pg_row_to_ticket).collect::<Result<Vec<_>, _>>()?)
}

pub(super) async fn overdue(pool: &Pool, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
    let c = pool.get().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets WHERE state <> 'resolved' AND tier <> 'department' AND
         ((ack_due IS NOT NULL AND ack_due < $1 AND state IN ('raised', 'dispatched')) OR
          (resolve_due IS NOT NULL AND resolve_due < $1)) ORDER BY id"
    );
    tickets(&c, &sql, &[&ms(now)]).await
}

pub(super) async fn list_where(pool: &Pool, f: &ListFilter) -> Result<Vec<Ticket>, StoreError> {
    let c = pool.get().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets WHERE (NOT $1 OR state <> 'resolved') AND ($2::text IS NULL OR site = $2)
         AND ($3::text IS NULL OR zone = $3) AND ($4::text IS NULL OR assignee = $4) ORDER BY id DESC LIMIT 1000"
    );
    tickets(&c, &sql, &[&f.open_only, &f.site, &f.zone, &f.assignee]).await
}

async fn events_of(c: &impl GenericClient, id: i64) -> Result<Vec<TicketEvent>, StoreError> {
    let rows = c
        .query("SELECT id, ts, kind, actor, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY id", &[&id])
        .await?;
    Ok(rows.iter().map(pg_row_to_event).collect::<Result<Vec<_>, _>>()?)
}

pub(super) async fn history(
    pool: &Pool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    site: Option<&str>,
) -> Result<Vec<(Ticket, Vec<TicketEvent>)>, StoreError> {
    let mut c = pool.get().await?;
    // One snapshot for tickets and events.
    let tx = c
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets WHERE opened_at >= $1 AND opened_at <= $2 AND ($3::text IS NULL OR site = $3) ORDER BY id"
    );
    let list = tickets(&tx, &sql, &[&ms(from), &ms(to), &site]).await?;
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        let events = events_of(&tx, t.id).await?;
        out.push((t, events));
    }
    tx.commit().await?;
    Ok(out)
}

pub(super) async fn get_with_events(pool: &Pool, id: i64) -> Result<(Ticket, Vec<TicketEvent>), StoreError> {
    let c = pool.get().await?;
    let t = get(&c, id, "").await?;
    Ok((t, events_of(&c, id).await?))
}

pub(super) async fn open_alerts(pool: &Pool) -> Result<Vec<(String, String, String, String)>, StoreError> {
    let c = pool.get().await?;
    let rows = c.query("SELECT site, zone, rule, level FROM tickets WHERE state <> 'resolved'", &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
    }
    Ok(out)
}
