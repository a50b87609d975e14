//! Ticket rows, events and the SQL that maps them.

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use rusqlite::Row;
use serde::Serialize;

use crate::store::from_ms;

/// Where a matter sits in the escalation ladder (小事不出网格、大事不出社村、难事不出街镇, then the whistle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The grid's own workers.
    Grid,
    /// The community (社村).
    Community,
    /// The sub-district (街镇).
    Subdistrict,
    /// The responsible department, summoned by the whistle (吹哨, 部门报到).
    Department,
}

impl Tier {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Grid => "grid",
            Tier::Community => "community",
            Tier::Subdistrict => "subdistrict",
            Tier::Department => "department",
        }
    }

    /// Parses [`Tier::as_str`].
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "grid" => Some(Tier::Grid),
            "community" => Some(Tier::Community),
            "subdistrict" => Some(Tier::Subdistrict),
            "department" => Some(Tier::Department),
            _ => None,
        }
    }

    /// The next tier up, if any.
    pub fn next(self) -> Option<Tier> {
        match self {
            Tier::Grid => Some(Tier::Community),
            Tier::Community => Some(Tier::Subdistrict),
            Tier::Subdistrict => Some(Tier::Department),
            Tier::Department => None,
        }
    }
}

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
    /// The grid's community (社村).
    pub community: String,
    /// The community's sub-district (街镇).
    pub subdistrict: String,
    /// Rule that raised it.
    pub rule: String,
    /// `crowd` (grid workers) or `data_quality` (engineers).
    pub kind: String,
    /// `grid_worker` or `engineer`.
    pub audience: String,
    /// Highest level reached.
    pub level: String,
    /// `raised`, `dispatched`, `acknowledged`, `on_site` or `resolved`.
    pub state: String,
    /// `grid`, `community`, `subdistrict` or `department`.
    pub tier: String,
    /// Worker it is assigned to.
    pub assignee: Option<String>,
    /// When it was raised.
    pub opened_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First acknowledgement.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Worker arrived on site.
    pub on_site_at: Option<DateTime<Utc>>,
    /// When it was resolved.
    pub closed_at: Option<DateTime<Utc>>,
    /// When density fell back under the clear level (time to relief).
    pub relief_at: Option<DateTime<Utc>>,
    /// Acknowledge by this time or it escalates.
    pub ack_due: Option<DateTime<Utc>>,
    /// Resolve by this time or it escalates.
    pub resolve_due: Option<DateTime<Utc>>,
    /// The zone's density (people/m²) when raised or last upgraded.
    pub density: f64,
    /// Highest of those densities while open.
    pub peak_density: f64,
    /// `auto` or the worker's feedback note.
    pub resolution: Option<String>,
    /// `system` (auto) or who resolved it.
    pub resolved_by: Option<String>,
    /// Times it was reopened.
    pub reopened: i64,
    /// The rule's metric (`density`, `inflow`, `predictive`, ...); empty on tickets stored before schema v5.
    pub metric: String,
    /// The unit of `value` and `peak_value` (`people/m²`, `people/min`, `s to warning`, ...).
    pub unit: String,
    /// The rule's value when raised or last upgraded.
    pub value: f64,
    /// The most urgent value while open: the highest, or for `predictive` (seconds left) the lowest.
    pub peak_value: f64,
}

impl Ticket {
    /// The level as an enum.
    pub fn level(&self) -> Level {
        Level::parse(&self.level).unwrap_or(Level::Warning)
    }

    /// The tier as an enum.
    pub fn tier(&self) -> Tier {
        Tier::parse(&self.tier).unwrap_or(Tier::Grid)
    }

    /// The state as a type (an unknown string, which no backend writes, reads as raised).
    pub fn state(&self) -> crate::ticket_state::State {
        crate::ticket_state::State::parse(&self.state).unwrap_or(crate::ticket_state::State::Raised)
    }

    /// Not yet resolved.
    pub fn is_open(&self) -> bool {
        self.state().is_open()
    }

    /// What `action` would make of it, or the refusal as a store error (409 at the API).
    pub fn after(
        &self,
        action: crate::ticket_state::Action,
    ) -> Result<crate::ticket_state::State, crate::store::StoreError> {
        crate::ticket_state::after(self.state(), action, self.assignee.is_some()).map_err(|r| {
            crate::store::StoreError::Transition {
                id: self.id,
                state: r.state.as_str().to_string(),
                action: r.action.done().to_string(),
            }
        })
    }
}

/// One entry of a ticket's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketEvent {
    /// Event number.
    pub id: i64,
    /// When.
    pub ts: DateTime<Utc>,
    /// `raised`, `dispatched`, `upgraded`, `acknowledged`, `escalated`, `resolved`, ...
    pub kind: String,
    /// Who (`system` for the rule engine and the SLA clock).
    pub actor: String,
    /// Why.
    pub detail: String,
}

/// The selected columns, in [`row_to_ticket`]'s order.
pub const COLUMNS: &str =
    "id, site, zone, grid, community, subdistrict, rule, kind, audience, level, state, tier, assignee, \
     opened_at, updated_at, acknowledged_at, on_site_at, closed_at, relief_at, ack_due, resolve_due, density, \
     peak_density, resolution, resolved_by, reopened, metric, unit, value, peak_value";

fn opt_ts(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(r.get::<_, Option<i64>>(i)?.map(from_ms))
}

/// Maps a row selected with [`COLUMNS`].
pub fn row_to_ticket(r: &Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: r.get(0)?,
        site: r.get(1)?,
        zone: r.get(2)?,
        grid: r.get(3)?,
        community: r.get(4)?,
        subdistrict: r.get(5)?,
        rule: r.get(6)?,
        kind: r.get(7)?,
        audience: r.get(8)?,
        level: r.get(9)?,
        state: r.get(10)?,
        tier: r.get(11)?,
        assignee: r.get(12)?,
        opened_at: from_ms(r.get(13)?),
        updated_at: from_ms(r.get(14)?),
        acknowledged_at: opt_ts(r, 15)?,
        on_site_at: opt_ts(r, 16)?,
        closed_at: opt_ts(r, 17)?,
        relief_at: opt_ts(r, 18)?,
        ack_due: opt_ts(r, 19)?,
        resolve_due: opt_ts(r, 20)?,
        density: r.get(21)?,
        peak_density: r.get(22)?,
        resolution: r.get(23)?,
        resolved_by: r.get(24)?,
        reopened: r.get(25)?,
        metric: r.get(26)?,
        unit: r.get(27)?,
        value: r.get(28)?,
        peak_value: r.get(29)?,
    })
}

fn pg_ts(r: &tokio_postgres::Row, i: usize) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    Ok(r.try_get::<_, Option<i64>>(i)?.map(from_ms))
}

/// Maps a PostgreSQL row selected with [`COLUMNS`].
pub fn pg_row_to_ticket(r: &tokio_postgres::Row) -> Result<Ticket, tokio_postgres::Error> {
    Ok(Ticket {
        id: r.try_get(0)?,
        site: r.try_get(1)?,
        zone: r.try_get(2)?,
        grid: r.try_get(3)?,
        community: r.try_get(4)?,
        subdistrict: r.try_get(5)?,
        rule: r.try_get(6)?,
        kind: r.try_get(7)?,
        audience: r.try_get(8)?,
        level: r.try_get(9)?,
        state: r.try_get(10)?,
        tier: r.try_get(11)?,
        assignee: r.try_get(12)?,
        opened_at: from_ms(r.try_get(13)?),
        updated_at: from_ms(r.try_get(14)?),
        acknowledged_at: pg_ts(r, 15)?,
        on_site_at: pg_ts(r, 16)?,
        closed_at: pg_ts(r, 17)?,
        relief_at: pg_ts(r, 18)?,
        ack_due: pg_ts(r, 19)?,
        resolve_due: pg_ts(r, 20)?,
        density: r.try_get(21)?,
        peak_density: r.try_get(22)?,
        resolution: r.try_get(23)?,
        resolved_by: r.try_get(24)?,
        reopened: r.try_get(25)?,
        metric: r.try_get(26)?,
        unit: r.try_get(27)?,
        value: r.try_get(28)?,
        peak_value: r.try_get(29)?,
    })
}

/// Maps a PostgreSQL row of `id, ts, kind, actor, detail`.
pub fn pg_row_to_event(r: &tokio_postgres::Row) -> Result<TicketEvent, tokio_postgres::Error> {
    Ok(TicketEvent {
        id: r.try_get(0)?,
        ts: from_ms(r.try_get(1)?),
        kind: r.try_get(2)?,
        actor: r.try_get(3)?,
        detail: r.try_get(4)?,
    })
}
