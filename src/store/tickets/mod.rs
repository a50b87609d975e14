//! Dispatch tickets and their append-only event trail, in SQLite ([`sqlite`]) or PostgreSQL ([`pg`], shared
//! by several centre instances). At most one unresolved ticket per zone and rule is enforced by a partial
//! unique index in both; every change is one transaction.

mod model;
mod pg;
mod sqlite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_pg;

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::Level;
use deadpool_postgres::Pool;
use rusqlite::Connection;

pub use crate::ticket_state::{Action, State};
pub use model::{Ticket, TicketEvent, Tier};

use super::{schema, StoreError};

/// What the rule measured at a raise or an upgrade: its value with metric and unit, and the zone's density
/// beside it (a ticket from an inflow rule says 640 people/min *and* 1.9 people/m²).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    /// The rule's metric (`density`, `occupancy`, `inflow`, `conflict`, `predictive`, `silent`, `disagree`).
    pub metric: &'static str,
    /// The value's unit.
    pub unit: &'static str,
    /// The rule's value.
    pub value: f64,
    /// A smaller value is the more urgent one (the ticket's peak is then the minimum).
    pub lower_is_urgent: bool,
    /// The zone's density at the time, people/m².
    pub density: f64,
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
    /// What crossed, and the zone's density.
    pub measure: Measure,
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
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(Pool),
}

/// The event texts both backends write.
mod detail {
    use super::{Level, Measure, NewTicket, Ticket, Tier};
    use crate::store::StoreError;

    /// `640.00 people/min (density 1.90/m²)`: the value in its unit, and the density unless it is the value.
    pub fn measured(m: &Measure) -> String {
        if m.metric == "density" {
            format!("{:.2} {}", m.value, m.unit)
        } else {
            format!("{:.2} {} (density {:.2}/m²)", m.value, m.unit, m.density)
        }
    }

    pub fn reopened(t: &NewTicket) -> String {
        format!(
            "{} at {} again within {} s of closing",
            t.level.as_str(),
            measured(&t.measure),
            t.reopen_window.num_seconds()
        )
    }

    pub fn raised(t: &NewTicket) -> String {
        format!("{}: {} reached {} at {}", t.rule, t.zone, t.level.as_str(), measured(&t.measure))
    }

    /// The second event of a new ticket: `dispatched` to the least loaded worker, or `unassigned`.
    pub fn assigned(t: &NewTicket, assignee: Option<&(String, i64)>) -> (&'static str, String) {
        match assignee {
            Some((w, load)) => ("dispatched", format!("to {w} (least loaded: {load} open)")),
            None => {
                ("unassigned", format!("no one on duty in grid {} (the acknowledge deadline escalates it)", t.grid))
            }
        }
    }

    pub fn upgraded(open: &Ticket, level: Level, m: &Measure) -> String {
        format!("{} -> {} at {}", open.level, level.as_str(), measured(m))
    }

    pub fn cleared(value: f64) -> String {
        format!("auto: {value:.2} stayed under the clear level")
    }

    pub fn escalated(t: &Ticket, next: Tier, reason: &str) -> String {
        format!("{} -> {}: {reason}", t.tier, next.as_str())
    }

    pub fn cannot_escalate(t: &Ticket) -> StoreError {
        StoreError::Transition { id: t.id, state: format!("{} at tier {}", t.state, t.tier), action: "escalate".into() }
    }

    pub fn reassigned(t: &Ticket, to: &str, note: &str) -> String {
        let from = t.assignee.as_deref().unwrap_or("nobody");
        format!("{from} -> {to}: {note}")
    }
}

impl TicketStore {
    /// Opens the store (the same file as the series).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { backend: Backend::Sqlite(Arc::new(Mutex::new(schema::open(path)?))) })
    }

    /// Connects to PostgreSQL at `url` (creating the tables if needed).
    pub async fn connect_pg(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_pool(super::pg_schema::connect(url).await?))
    }

    /// The store on an already connected pool (see [`super::pg_schema::connect`]).
    pub fn from_pool(pool: Pool) -> Self {
        Self { backend: Backend::Postgres(pool) }
    }

    async fn with<R: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Raises a ticket, returns the open one for the same zone and rule, or reopens a recent one.
    pub async fn raise(&self, t: NewTicket) -> Result<Raised, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, move |c| sqlite::raise(c, &t)).await,
            Backend::Postgres(p) => pg::raise(p, &t).await,
        }
    }

    /// Raises the level of the open ticket for the zone and rule.
    pub async fn upgrade(
        &self,
        site: &str,
        zone: &str,
        rule: &str,
        level: Level,
        measure: Measure,
        ts: DateTime<Utc>,
    ) -> Result<Option<Ticket>, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let (site, zone, rule) = (site.to_string(), zone.to_string(), rule.to_string());
                Self::with(c, move |c| sqlite::upgrade(c, (&site, &zone, &rule), level, &measure, ts)).await
            }
            Backend::Postgres(p) => pg::upgrade(p, (site, zone, rule), level, &measure, ts).await,
        }
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
        match &self.backend {
            Backend::Sqlite(c) => {
                let (site, zone, rule) = (site.to_string(), zone.to_string(), rule.to_string());
                Self::with(c, move |c| sqlite::clear(c, (&site, &zone, &rule), value, ts)).await
            }
            Backend::Postgres(p) => pg::clear(p, (site, zone, rule), value, ts).await,
        }
    }

    /// Acknowledges, puts on site or resolves (with `note`) a ticket on behalf of `actor`, as
    /// [`crate::ticket_state::after`] allows.
    pub async fn transition(&self, id: i64, action: Action, actor: &str, note: &str) -> Result<Ticket, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let (actor, note) = (actor.to_string(), note.to_string());
                Self::with(c, move |c| sqlite::transition(c, id, action, &actor, &note)).await
            }
            Backend::Postgres(p) => pg::transition(p, id, action, actor, note).await,
        }
    }

    /// Moves an open ticket one tier up (a worker blowing the whistle, an operator).
    pub async fn escalate(
        &self,
        id: i64,
        actor: &str,
        reason: &str,
        resolve_due: Option<DateTime<Utc>>,
    ) -> Result<Ticket, StoreError> {
        self.escalate_inner(id, None, actor, reason, resolve_due).await?.ok_or(StoreError::NoTicket(id))
    }

    /// The SLA clock's escalation: moves the ticket one tier up only if it is still open at `from` (so
    /// two centre instances running the clock escalate it once). `None` if it was not (or another
    /// instance is escalating it right now).
    pub async fn escalate_from(
        &self,
        id: i64,
        from: Tier,
        actor: &str,
        reason: &str,
        resolve_due: Option<DateTime<Utc>>,
    ) -> Result<Option<Ticket>, StoreError> {
        self.escalate_inner(id, Some(from), actor, reason, resolve_due).await
    }

    async fn escalate_inner(
        &self,
        id: i64,
        expect: Option<Tier>,
        actor: &str,
        reason: &str,
        resolve_due: Option<DateTime<Utc>>,
    ) -> Result<Option<Ticket>, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let (actor, reason) = (actor.to_string(), reason.to_string());
                Self::with(c, move |c| sqlite::escalate(c, id, expect, &actor, &reason, resolve_due)).await
            }
            Backend::Postgres(p) => pg::escalate(p, id, expect, actor, reason, resolve_due).await,
        }
    }

    /// Gives an open ticket to another worker.
    pub async fn reassign(&self, id: i64, to: &str, actor: &str, note: &str) -> Result<Ticket, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let (to, actor, note) = (to.to_string(), actor.to_string(), note.to_string());
                Self::with(c, move |c| sqlite::reassign(c, id, &to, &actor, &note)).await
            }
            Backend::Postgres(p) => pg::reassign(p, id, to, actor, note).await,
        }
    }

    /// Appends an event without changing the ticket (notification outcomes).
    pub async fn note(&self, id: i64, kind: &str, actor: &str, detail: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => {
                let (kind, actor, detail) = (kind.to_string(), actor.to_string(), detail.to_string());
                Self::with(c, move |c| sqlite::note(c, id, &kind, &actor, &detail)).await
            }
            Backend::Postgres(p) => pg::note(p, id, kind, actor, detail).await,
        }
    }

    /// Open crowd tickets whose acknowledge or resolve deadline has passed.
    pub async fn overdue(&self, now: DateTime<Utc>) -> Result<Vec<Ticket>, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, move |c| sqlite::overdue(c, now)).await,
            Backend::Postgres(p) => pg::overdue(p, now).await,
        }
    }

    /// Tickets matching `f`, newest first (at most 1,000).
    pub async fn list_where(&self, f: ListFilter) -> Result<Vec<Ticket>, StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, move |c| sqlite::list_where(c, &f)).await,
            Backend::Postgres(p) => pg::list_where(p, &f).await,
        }
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
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, move |c| sqlite::history(c, from, to, site.as_deref())).await,
            Backend::Postgres(p) => pg::history(p, from, to, site.as_deref()).await,
        }
    }

    /// A ticket and its audit trail.
    pub async fn get(&self, id: i64) -> Result<(Ticket, Vec<TicketEvent>), StoreError> {
        match &self.backend {
            Backend::Sqlite(c) => Self::with(c, move |c| sqlite::get_with_events(c, id)).await,
            Backend::Postgres(p) => pg::get_with_events(p, id).await,
        }
    }

    /// Open tickets' `(site, zone, rule, level)`, to resume rule state after a restart.
    pub async fn open_alerts(&self) -> Result<Vec<(String, String, String, Level)>, StoreError> {
        let rows = match &self.backend {
            Backend::Sqlite(c) => Self::with(c, sqlite::open_alerts).await?,
            Backend::Postgres(p) => pg::open_alerts(p).await?,
        };
        Ok(rows.into_iter().map(|(s, z, r, l)| (s, z, r, Level::parse(&l).unwrap_or(Level::Warning))).collect())
    }
}
