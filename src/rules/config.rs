//! The rule file as written (`config/<site>/rules.toml`). Each field's doc comment is its user documentation.
//! Values are checked in [`super::compile`], which reports every problem with a path like `rule[2].levels`.

use crowdgrid_proto::{Level, SourceKind};
use serde::{Deserialize, Serialize};

use super::Audience;

/// The whole rule file of one site.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The site these rules apply to (must be one of `central.toml`'s sites).
    pub site: String,
    /// Public holidays, `YYYY-MM-DD` (not school days; `holidays_only` schedules run on them).
    #[serde(default)]
    pub holidays: Vec<String>,
    /// School holidays, inclusive date ranges (not school days).
    #[serde(default)]
    pub school_holidays: Vec<DateRangeConfig>,
    /// The rules, `[[rule]]`.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

/// An inclusive range of dates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRangeConfig {
    /// First day, `YYYY-MM-DD`.
    pub from: String,
    /// Last day, `YYYY-MM-DD` (inclusive).
    pub to: String,
}

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// People per m².
    Density,
    /// People count / zone capacity (levels as fractions, e.g. 0.8 / 0.9 / 1.0).
    Occupancy,
    /// Gate inflow, people per minute.
    Inflow,
    /// People–vehicle conflict from cameras and drones: people standing in a vehicle lane, or people
    /// and vehicles in the same zone at the same moment (levels in people).
    Conflict,
    /// Estimated time until the warning density is reached, from the recent trend.
    Predictive,
    /// A source not heard for longer than expected (engineer).
    Silent,
    /// Two sources of one zone disagreeing beyond a factor (engineer).
    Disagree,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Identifier, unique in the file (the ticket's rule name).
    pub id: String,
    /// What the rule measures.
    pub metric: MetricName,
    /// Zones the rule applies to (default: every zone of the site, or those of `zone_kinds`).
    #[serde(default)]
    pub zones: Option<Vec<String>>,
    /// Zone kinds the rule applies to (`campsite`, `beach`, ...).
    #[serde(default)]
    pub zone_kinds: Option<Vec<String>>,
    /// Level thresholds; density rules may omit them to use each zone's own thresholds.
    #[serde(default)]
    pub levels: Option<LevelsConfig>,
    /// A level clears only below `clear_ratio` × its threshold (default: the zone's, else 0.8).
    #[serde(default)]
    pub clear_ratio: Option<f64>,
    /// The lowest level that opens a ticket (default `warning`); lower levels only show in the rule view.
    #[serde(default)]
    pub fire_from: Option<Level>,
    /// The value must stay at/above a level this long (data time) before it fires.
    #[serde(default)]
    pub for_s: i64,
    /// The value must stay below the clear threshold this long before the alert clears
    /// (default 120; 0 for `silent`).
    #[serde(default)]
    pub clear_for_s: Option<i64>,
    /// After a clear or a manual close, no new ticket for this long.
    #[serde(default)]
    pub cooldown_s: i64,
    /// Active only inside this weekly window (site-local time); always active without it.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// Windows in which the rule does not fire or upgrade (clears still happen).
    #[serde(default)]
    pub mute: Vec<MuteConfig>,
    /// Who gets the ticket (default: engineer for `silent`/`disagree`, grid worker otherwise).
    #[serde(default)]
    pub audience: Option<Audience>,
    /// `predictive`: fire when the warning level is less than this many seconds away.
    #[serde(default)]
    pub horizon_s: Option<i64>,
    /// `predictive`: the trend is fitted over this many seconds of observations (default 600).
    #[serde(default)]
    pub window_s: Option<i64>,
    /// `predictive`: observations needed before a trend is trusted (default 5).
    #[serde(default)]
    pub min_points: Option<usize>,
    /// `silent`: a source not heard for this many seconds is silent.
    #[serde(default)]
    pub expected_every_s: Option<i64>,
    /// `silent`: only sources of these kinds are watched (default: every source of the zone).
    #[serde(default)]
    pub source_kinds: Option<Vec<SourceKind>>,
    /// `disagree`: max/min density ratio above which two sources disagree.
    #[serde(default)]
    pub factor: Option<f64>,
    /// `disagree`: sources below this density (people/m²) are ignored (default 0.2).
    #[serde(default)]
    pub min_density: Option<f64>,
    /// `disagree`: sources older than this (seconds, against the observation) are ignored (default 300).
    #[serde(default)]
    pub max_age_s: Option<i64>,
}

/// `levels = { notice = …, warning = …, critical = … }`; any subset, rising.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelsConfig {
    /// Notice threshold.
    #[serde(default)]
    pub notice: Option<f64>,
    /// Warning threshold.
    #[serde(default)]
    pub warning: Option<f64>,
    /// Critical threshold.
    #[serde(default)]
    pub critical: Option<f64>,
}

/// `schedule = { days = ["mon", …], from = "15:30", to = "16:30", school_days = true }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Weekdays (`mon` … `sun`) on which the window opens (default: every day).
    #[serde(default)]
    pub days: Option<Vec<String>>,
    /// Window start, `HH:MM` site-local (default `00:00`).
    #[serde(default = "default_from")]
    pub from: String,
    /// Window end, `HH:MM` site-local, exclusive (default `24:00`); before `from` means it ends the next day.
    #[serde(default = "default_to")]
    pub to: String,
    /// Only on school days: not a holiday and not in a school holiday.
    #[serde(default)]
    pub school_days: bool,
    /// Only on the file's `holidays`.
    #[serde(default)]
    pub holidays_only: bool,
}

fn default_from() -> String {
    "00:00".to_string()
}
fn default_to() -> String {
    "24:00".to_string()
}

/// `mute = [{ from = "2026-10-01T00:00:00+08:00", to = "…" }]` (RFC 3339).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteConfig {
    /// Start (inclusive).
    pub from: String,
    /// End (exclusive).
    pub to: String,
}
