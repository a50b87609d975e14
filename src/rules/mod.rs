//! Alert rules: a pure, synchronous engine that turns zone observations into ticket events.
//!
//! Layout:
//! - [`config`]: the rule file as written (`config/<site>/rules.toml`), parsed with `deny_unknown_fields`.
//! - [`compile`]: validation (every problem at once) into a [`RuleSet`]; [`load`] and [`RuleSet::defaults`].
//! - [`schedule`]: time windows, school days, holiday calendars and mute windows, in site-local time.
//! - [`machine`]: the per (zone, rule) state machine: `for`, hysteresis, `clear_for`, cooldown.
//! - [`predict`]: the least-squares trend behind the predictive early warning.
//! - [`quality`]: data-quality conditions (silent source, disagreeing sources) for engineer tickets.
//! - [`engine`]: [`Engine`], which owns every state machine; [`view`]: what `GET /api/v1/rules` shows and the
//!   [`Snapshot`] that carries the state across a restart.
//!
//! Time: data time (the reading's `ts`) drives `for`/clear timers in [`Engine::observe`]; wall-clock time is
//! only used by [`Engine::tick`] (silent sources, schedule windows closing, clear timers without new readings).
//! Nothing here reads the clock itself except [`Engine::views`], so tests run on explicit timestamps.

pub mod compile;
pub mod config;
pub mod engine;
pub mod machine;
pub mod predict;
pub mod quality;
pub mod schedule;
pub mod validate;
pub mod view;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod metric_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod testutil;

use chrono::{DateTime, Utc};
use crowdgrid_proto::{Level, SourceKind};
use serde::{Deserialize, Serialize};

pub use compile::{compile, load, Metric, Rule, RuleSet, RuleText, SiteRules, Target};
pub use engine::Engine;
pub use view::{RuleView, Snapshot, StateView};

/// Who a rule's ticket goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// A grid worker on the street (crowd rules).
    GridWorker,
    /// An engineer (data-quality rules: silent or disagreeing sources).
    Engineer,
}

/// The latest value of one source for a zone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceValue {
    /// Source id (as in the reading).
    pub source_id: String,
    /// Source kind.
    pub kind: SourceKind,
    /// People per m².
    pub density: f64,
    /// When the value was measured.
    pub ts: DateTime<Utc>,
}

/// One zone's state right after a reading was applied.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// Site id.
    pub site: &'a str,
    /// Zone id.
    pub zone: &'a str,
    /// The reading's time: data time drives the `for` and clear timers.
    pub ts: DateTime<Utc>,
    /// The zone's current density (fused when fresh), people/m².
    pub density: f64,
    /// The zone's current people count.
    pub count: f64,
    /// Latest gate inflow in people/min, if a source reports it.
    pub inflow_per_min: Option<f64>,
    /// Latest people–vehicle conflict (people), if a camera or drone reports it.
    pub conflict: Option<f64>,
    /// Latest value per source of the zone.
    pub sources: &'a [SourceValue],
}

/// What a rule asks the ticket manager to do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Transition {
    /// Open a ticket at `level` (engineer rules use [`Level::Warning`], predictive ones [`Level::Notice`]).
    Fire {
        /// The level reached.
        level: Level,
        /// The rule's value (density, occupancy fraction, inflow/min, ETA seconds, silence seconds, ratio).
        value: f64,
    },
    /// Raise the open ticket's level.
    Upgrade {
        /// The new level.
        level: Level,
        /// The rule's value.
        value: f64,
    },
    /// The condition stayed cleared for `clear_for` (or the schedule window closed): resolve automatically.
    Clear {
        /// The rule's last value.
        value: f64,
    },
}

/// One transition of one rule in one zone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleEvent {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Rule id.
    pub rule: String,
    /// Who the ticket goes to.
    pub audience: Audience,
    /// Data time (observe) or wall-clock time (tick) of the transition.
    pub ts: DateTime<Utc>,
    /// What happened.
    pub transition: Transition,
    /// Human-readable explanation, e.g. `density 3.80/m² ≥ warning 3.60` or `warning in ~6 min`.
    pub detail: String,
    /// What the transition's value measures (the rule's metric, as written in rule files).
    pub metric: &'static str,
    /// The value's unit (`people/m²`, `people/min`, `s to warning`, ...).
    pub unit: &'static str,
    /// A smaller value is the more urgent one (the predictive rule's seconds to warning).
    pub lower_is_urgent: bool,
    /// The zone's density (people/m²) when the transition happened: the latest one the engine saw.
    pub density: f64,
}
