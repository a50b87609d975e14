//! Helpers for the rule tests: an in-memory site, explicit timestamps (the "paused clock") and observations.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::config::{parse_toml, Problems};
use crowdgrid_proto::site::{Site, SiteConfig};

use super::compile::{compile_file, RuleSet};
use super::config::RuleFile;
use super::{Engine, Observation, RuleEvent, SourceValue, Transition};

use crowdgrid_proto::testing::{site_head, SQUARE};

/// A site `t` (UTC+8) with zones `beach` (beach, capacity 1000, default thresholds 2 / 3.6 / 5),
/// `jetty` (jetty, capacity 100, thresholds 1.5 / 2.5 / 3.5) and `lane` (vehicle_lane, no capacity).
pub fn site() -> Arc<Site> {
    let text = format!(
        r#"{head}
[[workers]]
id = "w"
name = "W"
grids = ["g"]
[[zones]]
id = "beach"
name = "Beach"
grid = "g"
kind = "beach"
capacity = 1000
geometry = {SQUARE}
[[zones]]
id = "jetty"
name = "Jetty"
grid = "g"
kind = "jetty"
capacity = 100
thresholds = {{ notice = 1.5, warning = 2.5, critical = 3.5, clear_ratio = 0.8 }}
geometry = {SQUARE}
[[zones]]
id = "lane"
name = "Lane"
grid = "g"
kind = "vehicle_lane"
geometry = {SQUARE}
"#,
        head = site_head("t")
    );
    let cfg: SiteConfig = parse_toml(Path::new("t.toml"), &text).expect("test site parses");
    Arc::new(Site::from_config(cfg, Path::new("t.toml")).expect("test site is valid"))
}

/// Rules for site `t` from rule-file text (`site = "t"` is prepended); panics on problems.
pub fn rules(text: &str) -> RuleSet {
    let file: RuleFile = parse_toml(Path::new("rules.toml"), &format!("site = \"t\"\n{text}")).expect("parses");
    let mut p = Problems::new();
    let compiled = compile_file(&file, site(), &mut p);
    assert!(p.is_empty(), "{:?}", p.items());
    RuleSet { sites: vec![compiled] }
}

/// An engine for `text`.
pub fn engine(text: &str) -> Engine {
    Engine::new(rules(text))
}

/// Tuesday 2026-03-10 14:00 local (06:00 UTC) plus `s` seconds.
pub fn t(s: i64) -> DateTime<Utc> {
    at("2026-03-10T14:00:00+08:00") + Duration::seconds(s)
}

/// An RFC 3339 instant.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("valid time").with_timezone(&Utc)
}

/// Feeds a density observation for `zone` at `ts` (count = density × 10,000 m²).
pub fn feed(e: &mut Engine, zone: &str, ts: DateTime<Utc>, density: f64) -> Vec<RuleEvent> {
    feed_with(e, zone, ts, density, None, &[])
}

/// Feeds an observation with inflow and sources.
pub fn feed_with(
    e: &mut Engine,
    zone: &str,
    ts: DateTime<Utc>,
    density: f64,
    inflow_per_min: Option<f64>,
    sources: &[SourceValue],
) -> Vec<RuleEvent> {
    observe(e, zone, ts, density, inflow_per_min, None, sources)
}

/// Feeds an observation with a people–vehicle conflict.
pub fn feed_conflict(e: &mut Engine, zone: &str, ts: DateTime<Utc>, density: f64, conflict: f64) -> Vec<RuleEvent> {
    observe(e, zone, ts, density, None, Some(conflict), &[])
}

fn observe(
    e: &mut Engine,
    zone: &str,
    ts: DateTime<Utc>,
    density: f64,
    inflow_per_min: Option<f64>,
    conflict: Option<f64>,
    sources: &[SourceValue],
) -> Vec<RuleEvent> {
    e.observe(&Observation {
        site: "t",
        zone,
        ts,
        density,
        count: density * 10_000.0,
        inflow_per_min,
        conflict,
        sources,
    })
}

/// The transitions of `events`, without the rest.
pub fn transitions(events: &[RuleEvent]) -> Vec<Transition> {
    events.iter().map(|e| e.transition.clone()).collect()
}

/// True when `events` is exactly one event of kind `kind` (`fire`, `upgrade`, `clear`).
pub fn is_one(events: &[RuleEvent], kind: &str) -> bool {
    events.len() == 1
        && matches!(
            (&events[0].transition, kind),
            (Transition::Fire { .. }, "fire")
                | (Transition::Upgrade { .. }, "upgrade")
                | (Transition::Clear { .. }, "clear")
        )
}
