//! Dispatch tickets and their append-only event trail in SQLite. At most one unresolved ticket per
//! zone and rule is enforced by a partial unique index.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

use super::{from_ms, ms, schema, StoreError};

/// A dispatch ticket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    /// Ticket number.
    pub id: i64,
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Grid the zone belongs to.
    pub grid: String,
    /// Rule that raised it.
    pub rule: String,
    /// Highest level reached.
    pub level: String,
    /// `raised`, `dispatched`, `acknowledged`, `on_site` or `resolved`.
    pub state: String,
    /// Grid worker it is assigned to.
    pub assignee: Option<String>,
    /// When it was raised.
    pub opened_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it was resolved.
    pub closed_at: Option<DateTime<Utc>>,
    /// Density when raised or last upgraded (people/m²).
    pub density: f64,
    /// Highest density seen by the rule while open.
    pub peak_density: f64,
    /// `auto` (density back under the clear level) or the worker's note.
    pub resolution: Option<String>,
}

/// One entry of a ticket's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketEvent {
    /// Event number.
    pub id: i64,
    /// When.
    pub ts: DateTime<Utc>,
    /// `raised`, `dispatched`, `upgraded`, `acknowledged`, `resolved`, ...
    pub kind: String,
    /// Who (`system` for the rule engine).
    pub actor: String,
    /// Why.
    pub detail: String,
}

/// A ticket to raise.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Grid id.
    pub grid: String,
    /// Rule name.
    pub rule: String,
    /// Level.
    pub level: Level,
    /// Density that crossed.
    pub density: f64,
    /// When it crossed (reading time).
    pub ts: DateTime<Utc>,
    /// On-duty workers of the grid, in roster order; the least loaded gets it.
    pub candidates: Vec<String>,
}

const COLUMNS: &str =
    "id, site, zone, grid, rule, level, state, assignee, opened_at, updated_at, closed_at, density, peak_density, resolution";

fn row_to_ticket(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: r.get(0)?,
        site: r.get(1)?,
        zone: r.get(2)?,
        grid: r.get(3)?,
        rule: r.get(4)?,
        level: r.get(5)?,
        state: r.get(6)?,
        assignee: r.get(7)?,
        opened_at: from_ms(r.get(8)?),
        updated_at: from_ms(r.get(9)?),
        closed_at: r.get::<_, Option<i64>>(10)?.map(from_ms),
        density: r.get(11)?,
        peak_density: r.get(12)?,
        resolution: r.get(13)?,
    })
}

/// Which tickets to list.
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

impl TicketStore {
    /// Opens the store (same file as the series is fine).
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

    /// Raises a ticket, or returns the open one for the same zone and rule. `true` if it is new.
    pub async fn raise(&self, t: NewTicket) -> Result<(Ticket, bool), StoreError> {
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(open) = open_for(&tx, &t.site, &t.zone, &t.rule)? {
                return Ok((open, false));
            }
            let mut assignee = None;
            let mut best = i64::MAX;
            for w in &t.candidates {
                let load: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM tickets WHERE assignee = ?1 AND state <> 'resolved'",
                    params![w],
                    |r| r.get(0),
                )?;
                if load < best {
                    best = load;
                    assignee = Some(w.clone());
                }
            }
            let state = if assignee.is_some() { "dispatched" } else { "raised" };
            tx.execute(
                "INSERT INTO tickets (site, zone, grid, rule, level, state, assignee, opened_at, updated_at, density, peak_density)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?9)",
                params![t.site, t.zone, t.grid, t.rule, t.level.as_str(), state, assignee, ms(t.ts), t.density],
            )?;
            let id = tx.last_insert_rowid();
            event(&tx, id, t.ts, "raised", "system", &format!("{} density {:.2} /m² reached {}", t.zone, t.density, t.level.as_str()))?;
            match &assignee {
                Some(w) => event(&tx, id, t.ts, "dispatched", "system", &format!("to {w} (least loaded: {best} open)"))?,
                None => event(&tx, id, t.ts, "unassigned", "system", &format!("no worker on the roster of grid {}", t.grid))?,
            }
            let ticket = get(&tx, id)?;
            tx.commit()?;
            Ok((ticket, true))
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
            event(&tx, open.id, ts, "upgraded", "system", &format!("{} -> {} at {:.2} /m²", open.level, level.as_str(), density))?;
            let t = get(&tx, open.id)?;
            tx.commit()?;
            Ok(Some(t))
        })
        .await
    }

    /// Resolves the open ticket for the zone and rule because density stayed under the clear level.
    pub async fn auto_resolve(
        &self,
        site: &str,
        zone: &str,
        rule: &str,
        density: f64,
        ts: DateTime<Utc>,
    ) -> Result<Option<Ticket>, StoreError> {
        let (site, zone, rule) = (site.to_string(), zone.to_string(), rule.to_string());
        self.with(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(open) = open_for(&tx, &site, &zone, &rule)? else { return Ok(None) };
            tx.execute(
                "UPDATE tickets SET state = 'resolved', resolution = 'auto', closed_at = ?2, updated_at = ?2 WHERE id = ?1",
                params![open.id, ms(ts)],
            )?;
            event(&tx, open.id, ts, "resolved", "system", &format!("auto: density {density:.2} /m² stayed under the clear level"))?;
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
            let now = Utc::now();
            if to == "resolved" {
                tx.execute(
                    "UPDATE tickets SET state = 'resolved', resolution = ?2, closed_at = ?3, updated_at = ?3 WHERE id = ?1",
                    params![id, note, ms(now)],
                )?;
            } else {
                tx.execute("UPDATE tickets SET state = ?2, updated_at = ?3 WHERE id = ?1", params![id, to, ms(now)])?;
            }
            event(&tx, id, now, &to, &actor, &note)?;
            let t = get(&tx, id)?;
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    /// Tickets, newest first.
    pub async fn list(&self, filter: Filter, site: Option<String>) -> Result<Vec<Ticket>, StoreError> {
        self.with(move |c| {
            let where_state = match filter {
                Filter::Open => "state <> 'resolved'",
                Filter::All => "1 = 1",
            };
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM tickets WHERE {where_state} AND (?1 IS NULL OR site = ?1) ORDER BY id DESC LIMIT 1000"
            ))?;
            let rows = stmt.query_map(params![site], row_to_ticket)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// A ticket and its audit trail.
    pub async fn get(&self, id: i64) -> Result<(Ticket, Vec<TicketEvent>), StoreError> {
        self.with(move |c| {
            let t = get(c, id)?;
            let mut stmt =
                c.prepare("SELECT id, ts, kind, actor, detail FROM ticket_events WHERE ticket_id = ?1 ORDER BY id")?;
            let events = stmt
                .query_map(params![id], |r| {
                    Ok(TicketEvent {
                        id: r.get(0)?,
                        ts: from_ms(r.get(1)?),
                        kind: r.get(2)?,
                        actor: r.get(3)?,
                        detail: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((t, events))
        })
        .await
    }

    /// Open tickets' `(site, zone, level)` for the rule, to resume rule state after a restart.
    pub async fn open_alerts(&self, rule: &str) -> Result<Vec<(String, String, Level)>, StoreError> {
        let rule = rule.to_string();
        self.with(move |c| {
            let mut stmt =
                c.prepare("SELECT site, zone, level FROM tickets WHERE rule = ?1 AND state <> 'resolved'")?;
            let rows = stmt.query_map(params![rule], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (s, z, l) = row?;
                out.push((s, z, Level::parse(&l).unwrap_or(Level::Warning)));
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_ticket(ts: DateTime<Utc>) -> NewTicket {
        NewTicket {
            site: "t".into(),
            zone: "z".into(),
            grid: "g".into(),
            rule: "density".into(),
            level: Level::Warning,
            density: 3.8,
            ts,
            candidates: vec!["w1".into(), "w2".into()],
        }
    }

    #[tokio::test]
    async fn one_open_ticket_per_zone_and_rule_routed_to_least_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = TicketStore::open(&dir.path().join("t.db")).unwrap();
        let now = Utc::now();
        let (a, new_a) = store.raise(new_ticket(now)).await.unwrap();
        assert!(new_a);
        assert_eq!(a.assignee.as_deref(), Some("w1"));
        assert_eq!(a.state, "dispatched");
        let (b, new_b) = store.raise(new_ticket(now)).await.unwrap();
        assert!(!new_b);
        assert_eq!(a.id, b.id);
        let mut other = new_ticket(now);
        other.zone = "y".into();
        let (c, _) = store.raise(other).await.unwrap();
        assert_eq!(c.assignee.as_deref(), Some("w2"), "w1 already has one open");

        let up = store.upgrade("t", "z", "density", Level::Critical, 5.3, now).await.unwrap().unwrap();
        assert_eq!(up.level, "critical");
        assert_eq!(up.peak_density, 5.3);
        let done = store.auto_resolve("t", "z", "density", 2.0, now).await.unwrap().unwrap();
        assert_eq!(done.state, "resolved");
        assert_eq!(done.resolution.as_deref(), Some("auto"));
        let (_, events) = store.get(a.id).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["raised", "dispatched", "upgraded", "resolved"]);
        let (d, new_d) = store.raise(new_ticket(now)).await.unwrap();
        assert!(new_d && d.id != a.id, "a resolved ticket does not block a new one");
        assert_eq!(store.open_alerts("density").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn transitions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TicketStore::open(&dir.path().join("t.db")).unwrap();
        let (t, _) = store.raise(new_ticket(Utc::now())).await.unwrap();
        store.transition(t.id, "acknowledged", "w1", "").await.unwrap();
        assert!(matches!(store.transition(t.id, "acknowledged", "w1", "").await, Err(StoreError::Transition { .. })));
        let r = store.transition(t.id, "resolved", "w1", "crowd guided to the east exit").await.unwrap();
        assert_eq!(r.resolution.as_deref(), Some("crowd guided to the east exit"));
        assert!(matches!(store.transition(999, "resolved", "w1", "").await, Err(StoreError::NoTicket(999))));
    }
}
