//! Dispatch tickets and their append-only event trail in SQLite. At most one unresolved ticket per
//! zone and rule is enforced by a partial unique index; every change is one IMMEDIATE transaction.

mod model;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::Level;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use model::{row_to_ticket, COLUMNS};
pub use model::{Ticket, TicketEvent, Tier};

use super::{from_ms, ms, schema, StoreError};

/// A ticket to raise.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Grid id.
    pub grid: String,
    /// Community id.
    pub community: String,
    /// Sub-district id.
    pub subdistrict: String,
    /// Rule id.
    pub rule: String,
    /// `crowd` or `data_quality`.
    pub kind: String,
    /// `grid_worker` or `engineer`.
    pub audience: String,
    /// Level.
    pub level: Level,
    /// Value that crossed.
    pub density: f64,
    /// When it crossed (reading time).
    pub ts: DateTime<Utc>,
    /// On-duty workers of the grid in roster order; the least loaded gets it.
    pub candidates: Vec<String>,
    /// Acknowledge by.
    pub ack_due: Option<DateTime<Utc>>,
    /// Resolve by.
    pub resolve_due: Option<DateTime<Utc>>,
    /// A ticket resolved less than this long ago is reopened instead of raising a new one.
    pub reopen_window: Duration,
}

/// What [`TicketStore::raise`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Raised {
    /// A new ticket.
    New(Ticket),
    /// The open ticket for the zone and rule (nothing changed).
    Existing(Ticket),
    /// A recently resolved ticket was reopened.
    Reopened(Ticket),
}

/// Which tickets to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only unresolved ones.
    pub open_only: bool,
    /// Only this site.
    pub site: Option<String>,
    /// Only this zone.
    pub zone: Option<String>,
    /// Only this assignee.
    pub assignee: Option<String>,
}

/// Kept for callers that only want open or all tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Not yet resolved.
    Open,
    /// Everything.
    All,
}

/// The ticket store.
#[derive(Clone)]
pub struct TicketStore {
    conn: Arc<Mutex<Connection>>,
}

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

impl TicketStore {
    /// Opens the store (the same file as the series).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { conn: Arc::new(Mutex::new(schema::open(path)?)) })
    }

    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Raises a ticket, returns the open one for the same zone and rule, or reopens a recent one.
    pub async fn raise(&self, t: NewTicket) -> Result<Raised, StoreError> {
        self.with(move |c| {
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
                     ack_due = ?6, resolve_due = ?7, acknowledged_at = NULL, on_site_at = NULL, reopened = reopened + 1
                     WHERE id = ?1",
                    params![id, state, t.level.as_str(), t.density, ms(t.ts), t.ack_due.map(ms), t.resolve_due.map(ms)],
                )?;
                let detail = format!("{} at {:.2} again within {} s of closing", t.level.as_str(), t.density, t.reopen_window.num_seconds());
                event(&tx, id, t.ts, "reopened", "system", &detail)?;
                let ticket = get(&tx, id)?;
                tx.commit()?;
                return Ok(Raised::Reopened(ticket));
            }
            let assignee = least_loaded(&tx, &t.candidates)?;
            let state = if assignee.is_some() { "dispatched" } else { "raised" };
            tx.execute(
                "INSERT INTO tickets (site, zone, grid, community, subdistrict, rule, kind, audience, level, state, tier,
                 assignee, opened_at, updated_at, ack_due, resolve_due, density, peak_density)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'grid', ?11, ?12, ?12, ?13, ?14, ?15, ?15)",
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
                    t.density
                ],
            )?;
            let id = tx.last_insert_rowid();
            event(&tx, id, t.ts, "raised", "system", &format!("{}: {} reached {} at {:.2}", t.rule, t.zone, t.level.as_str(), t.density))?;
            match &assignee {
                Some((w, load)) => event(&tx, id, t.ts, "dispatched", "system", &format!("to {w} (least loaded: {load} open)"))?,
                None => event(&tx, id, t.ts, "unassigned", "system", &format!("no one on the roster of grid {}", t.grid))?,
            }
            let ticket = get(&tx, id)?;
            tx.commit()?;
            Ok(Raised::New(ticket))
        })
        .await
    }

    /// Raises the level of the open ticket for the zone and rule.
    pub async fn upgrade(
        &self,
        site: &str,
        zone: &str,
        rule: &str,
        level: Level,
        density: f64,
        ts: DateTime<Utc>,
    ) -> Result<Option<Ticket>, StoreError> {
        let (site, zone, rule) = (site.to_string(), zone.to_string(), rule.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(open) = open_for(&tx, &site, &zone, &rule)? else { return Ok(None) };
            tx.execute(
                "UPDATE tickets SET level = ?2, density = ?3, peak_density = MAX(peak_density, ?3), updated_at = ?4 WHERE id = ?1",
                params![open.id, level.as_str(), density, ms(ts)],
            )?;
            event(&tx, open.id, ts, "upgraded", "system", &format!("{} -> {} at {:.2}", open.level, level.as_str(), density))?;
            let t = get(&tx, open.id)?;
            tx.commit()?;
            Ok(Some(t))
        })
        .await
    }

    /// The value fell back under the clear level for long enough: record relief and resolve automatically.
    pub async fn clear(
        &self,
        site: &str,
        zone: &str,
        rule: &str,
        value: f64,
        ts: DateTime<Utc>,
    ) -> Result<Option<Ticket>, StoreError> {
        let (site, zone, rule) = (site.to_string(), zone.to_string(), rule.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(open) = open_for(&tx, &site, &zone, &rule)? else { return Ok(None) };
            tx.execute(
                "UPDATE tickets SET state = 'resolved', resolution = 'auto', resolved_by = 'system', closed_at = ?2,
                 relief_at = COALESCE(relief_at, ?2), updated_at = ?2 WHERE id = ?1",
                params![open.id, ms(ts)],
            )?;
            event(&tx, open.id, ts, "resolved", "system", &format!("auto: {value:.2} stayed under the clear level"))?;
            let t = get(&tx, open.id)?;
            tx.commit()?;
            Ok(Some(t))
        })
        .await
    }

    /// Moves a ticket to `to` (`acknowledged`, `on_site` or `resolved`) on behalf of `actor`.
    pub async fn transition(&self, id: i64, to: &str, actor: &str, note: &str) -> Result<Ticket, StoreError> {
        let (to, actor, note) = (to.to_string(), actor.to_string(), note.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let t = get(&tx, id)?;
            let allowed = match to.as_str() {
                "acknowledged" => matches!(t.state.as_str(), "raised" | "dispatched"),
                "on_site" => matches!(t.state.as_str(), "raised" | "dispatched" | "acknowledged"),
                "resolved" => t.state != "resolved",
                _ => false,
            };
            if !allowed {
                return Err(StoreError::Transition { id, state: t.state, action: to });
            }
            let now = ms(Utc::now());
            match to.as_str() {
                "resolved" => tx.execute(
                    "UPDATE tickets SET state = 'resolved', resolution = ?2, resolved_by = ?3, closed_at = ?4, updated_at = ?4 WHERE id = ?1",
                    params![id, note, actor, now],
                )?,
                "acknowledged" => tx.execute(
                    "UPDATE tickets SET state = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, ?2), updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?,
                _ => tx.execute(
                    "UPDATE tickets SET state = 'on_site', acknowledged_at = COALESCE(acknowledged_at, ?2), on_site_at = ?2, updated_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?,
            };
            event(&tx, id, from_ms(now), &to, &actor, &note)?;
            let t = get(&tx, id)?;
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    /// Moves an open ticket one tier up (the SLA clock, or a worker blowing the whistle).
    pub async fn escalate(
        &self,
        id: i64,
        actor: &str,
        reason: &str,
        resolve_due: Option<DateTime<Utc>>,
    ) -> Result<Ticket, StoreError> {
        let (actor, reason) = (actor.to_string(), reason.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let t = get(&tx, id)?;
            let next = t.tier().next().filter(|_| t.is_open());
            let Some(next) = next else {
                return Err(StoreError::Transition {
                    id,
                    state: format!("{} at tier {}", t.state, t.tier),
                    action: "escalate".into(),
                });
            };
            let now = Utc::now();
            tx.execute(
                "UPDATE tickets SET tier = ?2, ack_due = NULL, resolve_due = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, next.as_str(), resolve_due.map(ms), ms(now)],
            )?;
            event(&tx, id, now, "escalated", &actor, &format!("{} -> {}: {reason}", t.tier, next.as_str()))?;
            let t = get(&tx, id)?;
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    /// Gives an open ticket to another worker.
    pub async fn reassign(&self, id: i64, to: &str, actor: &str, note: &str) -> Result<Ticket, StoreError> {
        let (to, actor, note) = (to.to_string(), actor.to_string(), note.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let t = get(&tx, id)?;
            if !t.is_open() {
                return Err(StoreError::Transition { id, state: t.state, action: "reassign".into() });
            }
            let now = Utc::now();
            tx.execute(
                "UPDATE tickets SET assignee = ?2, state = CASE WHEN state = 'raised' THEN 'dispatched' ELSE state END, updated_at = ?3 WHERE id = ?1",
                params![id, to, ms(now)],
            )?;
            let from = t.assignee.as_deref().unwrap_or("nobody");
            event(&tx, id, now, "reassigned", &actor, &format!("{from} -> {to}: {note}"))?;
            let t = get(&tx, id)?;
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    /// Appends an event without changing the ticket (notification outcomes).
    pub async fn note(&self, id: i64, kind: &str, actor: &str, detail: &str) -> Result<(), StoreError> {
        let (kind, actor, detail) = (kind.to_string(), actor.to_string(), detail.to_string());
        self.with(move |c| event(c, id, Utc::now(), &kind, &actor, &detail)).await
    }

    /// Open crowd tickets whose acknowledge or resolve deadline has passed.
    pub async fn overdue(&self, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tickets WHERE state <> 'resolved' AND tier <> 'department' AND
                 ((ack_due IS NOT NULL AND ack_due < ?1 AND state IN ('raised', 'dispatched')) OR
                  (resolve_due IS NOT NULL AND resolve_due < ?1)) ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![ms(now)], row_to_ticket)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Tickets matching `f`, newest first (at most 1,000).
    pub async fn list_where(&self, f: ListFilter) -> Result<Vec<Ticket>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tickets WHERE (?1 = 0 OR state <> 'resolved') AND (?2 IS NULL OR site = ?2)
                 AND (?3 IS NULL OR zone = ?3) AND (?4 IS NULL OR assignee = ?4) ORDER BY id DESC LIMIT 1000"
            ))?;
            let rows = stmt.query_map(params![f.open_only as i64, f.site, f.zone, f.assignee], row_to_ticket)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Tickets, newest first.
    pub async fn list(&self, filter: Filter, site: Option<String>) -> Result<Vec<Ticket>, StoreError> {
        self.list_where(ListFilter { open_only: filter == Filter::Open, site, ..Default::default() }).await
    }

    /// Tickets opened in `[from, to]` with their events (for KPIs).
    pub async fn history(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        site: Option<String>,
    ) -> Result<Vec<(Ticket, Vec<TicketEvent>)>, StoreError> {
        self.with(move |c| {
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
        })
        .await
    }

    /// A ticket and its audit trail.
    pub async fn get(&self, id: i64) -> Result<(Ticket, Vec<TicketEvent>), StoreError> {
        self.with(move |c| Ok((get(c, id)?, events_of(c, id)?))).await
    }

    /// Open tickets' `(site, zone, rule, level)`, to resume rule state after a restart.
    pub async fn open_alerts(&self) -> Result<Vec<(String, String, String, Level)>, StoreError> {
        self.with(move |c| {
            let mut stmt = c.prepare("SELECT site, zone, rule, level FROM tickets WHERE state <> 'resolved'")?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (s, z, rule, l) = row?;
                out.push((s, z, rule, Level::parse(&l).unwrap_or(Level::Warning)));
            }
            Ok(out)
        })
        .await
    }
}

fn events_of(c: &Connection, id: i64) -> Result<Vec<TicketEvent>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT id, ts, kind, actor, detail FROM ticket_events WHERE ticket_id = ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![id], |r| {
        Ok(TicketEvent { id: r.get(0)?, ts: from_ms(r.get(1)?), kind: r.get(2)?, actor: r.get(3)?, detail: r.get(4)? })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
