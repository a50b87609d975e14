//! The live picture: per zone, the latest density (fused when fresh, otherwise the latest source),
//! each source's latest value, a display level with hysteresis and the recent trend. Pure; the
//! processor owns it behind a lock. Tickets are the rule engine's business (`crate::rules`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Level, Reading, SourceKind, Thresholds};
use serde::Serialize;

use super::events::ZoneEvent;
use crate::rules::SourceValue;

/// The latest value from one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceLatest {
    /// Source kind.
    pub kind: SourceKind,
    /// People count.
    pub count: f64,
    /// People per m².
    pub density: f64,
    /// Confidence.
    pub confidence: f64,
    /// Timestamp.
    pub ts: DateTime<Utc>,
    /// Gate inflow, people/min.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflow_per_min: Option<f64>,
    /// People–vehicle conflict, people (cameras, drones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<f64>,
}

/// One zone's live state.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneLive {
    /// Latest density used for the level (people/m²).
    pub density: Option<f64>,
    /// Latest people count.
    pub count: Option<f64>,
    /// When `density` was measured.
    pub ts: Option<DateTime<Utc>>,
    /// Which source `density` came from.
    pub from: Option<String>,
    /// Latest per source id.
    pub sources: BTreeMap<String, SourceLatest>,
    level: Level,
    last_fused: Option<DateTime<Utc>>,
    #[serde(skip)]
    history: VecDeque<(DateTime<Utc>, f64)>,
}

/// How far back the trend looks.
const TREND_WINDOW_S: i64 = 300;

impl ZoneLive {
    fn new() -> Self {
        ZoneLive {
            density: None,
            count: None,
            ts: None,
            from: None,
            sources: BTreeMap::new(),
            level: Level::Normal,
            last_fused: None,
            history: VecDeque::new(),
        }
    }

    /// The zone's display level (with hysteresis on the zone's thresholds).
    pub fn level(&self) -> Level {
        self.level
    }

    /// Least-squares slope of density over the recent window, in people/m² per minute.
    pub fn trend_per_min(&self) -> Option<f64> {
        slope_per_min(self.history.iter().copied())
    }

    /// The latest inflow reported by any source.
    pub fn inflow_per_min(&self) -> Option<f64> {
        self.sources.values().filter(|s| s.inflow_per_min.is_some()).max_by_key(|s| s.ts).and_then(|s| s.inflow_per_min)
    }

    /// The people–vehicle conflict: the largest of the sources that report one and were heard within
    /// `max_age` of `at`. A camera that went quiet stops counting: with every such source stale the conflict
    /// is 0 (so an alert can clear; the camera's silence is the `silent` rule's business); `None` for a zone
    /// no source ever reported a conflict for.
    pub fn conflict(&self, at: DateTime<Utc>, max_age: Duration) -> Option<f64> {
        // One pass, no allocation: this runs for every reading that moves a zone.
        let mut out: Option<f64> = None;
        for s in self.sources.values() {
            let Some(c) = s.conflict else { continue };
            let fresh = if at - s.ts <= max_age && c.is_finite() { c } else { 0.0 };
            out = Some(out.map_or(fresh, |o| o.max(fresh)));
        }
        out
    }

    /// Every source's latest value, for the rule engine.
    pub fn source_values(&self) -> Vec<SourceValue> {
        self.sources
            .iter()
            .filter(|(_, s)| s.kind != SourceKind::Fused)
            .map(|(id, s)| SourceValue { source_id: id.clone(), kind: s.kind, density: s.density, ts: s.ts })
            .collect()
    }

    fn remember(&mut self, ts: DateTime<Utc>, density: f64) {
        self.history.push_back((ts, density));
        while self.history.front().is_some_and(|(t, _)| (ts - *t).num_seconds() > TREND_WINDOW_S)
            || self.history.len() > 1000
        {
            self.history.pop_front();
        }
    }
}

/// The next display level: up at once, down only through levels whose clear threshold the density is below.
pub fn next_level(t: &Thresholds, prev: Level, density: f64) -> Level {
    let raw = t.level(density);
    if raw >= prev {
        return raw;
    }
    let mut level = prev;
    while level > raw && density < t.clear_below(level) {
        level = match level {
            Level::Critical => Level::Warning,
            Level::Warning => Level::Notice,
            Level::Notice | Level::Normal => Level::Normal,
        };
    }
    level
}

/// Least-squares slope of `(ts, value)` points, per minute; `None` with fewer than 3 points or no time spread.
pub fn slope_per_min(points: impl Iterator<Item = (DateTime<Utc>, f64)>) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points.map(|(t, v)| (t.timestamp_millis() as f64 / 60_000.0, v)).collect();
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// Every zone of every site.
#[derive(Debug)]
pub struct Live {
    sites: HashMap<String, Arc<Site>>,
    zones: HashMap<(String, String), ZoneLive>,
    fused_fresh: Duration,
}

impl Live {
    /// Empty state for `sites`.
    pub fn new(sites: &[Arc<Site>], fused_fresh: Duration) -> Self {
        let mut zones = HashMap::new();
        for s in sites {
            for z in &s.zones {
                zones.insert((s.config.id.clone(), z.config.id.clone()), ZoneLive::new());
            }
        }
        Self { sites: sites.iter().map(|s| (s.config.id.clone(), s.clone())).collect(), zones, fused_fresh }
    }

    /// Applies a validated reading; returns the zone's new state if this reading set its density.
    pub fn apply(&mut self, r: &Reading) -> Option<ZoneEvent> {
        let zone_cfg = self.sites.get(&r.site)?.zone(&r.zone)?;
        let (thresholds, grid) = (zone_cfg.thresholds, zone_cfg.config.grid.clone());
        let z = self.zones.get_mut(&(r.site.clone(), r.zone.clone()))?;
        if z.sources.get(&r.source_id).is_none_or(|s| r.ts >= s.ts) {
            z.sources.insert(
                r.source_id.clone(),
                SourceLatest {
                    kind: r.source,
                    count: r.count,
                    density: r.density,
                    confidence: r.confidence,
                    ts: r.ts,
                    inflow_per_min: r.inflow_per_min,
                    conflict: r.conflict,
                },
            );
        }
        let drives = if r.source == SourceKind::Fused {
            z.last_fused = Some(z.last_fused.map_or(r.ts, |t| t.max(r.ts)));
            true
        } else {
            z.last_fused.is_none_or(|f| r.ts - f > self.fused_fresh)
        };
        if !drives || z.ts.is_some_and(|t| r.ts < t) {
            return None;
        }
        z.density = Some(r.density);
        z.count = Some(r.count);
        z.ts = Some(r.ts);
        z.from = Some(r.source_id.clone());
        z.level = next_level(&thresholds, z.level, r.density);
        z.remember(r.ts, r.density);
        Some(ZoneEvent {
            site: r.site.clone(),
            zone: r.zone.clone(),
            grid,
            level: z.level,
            density: r.density,
            count: r.count,
            ts: r.ts,
            from: r.source_id.clone(),
        })
    }

    /// One zone's state.
    pub fn zone(&self, site: &str, zone: &str) -> Option<&ZoneLive> {
        self.zones.get(&(site.to_string(), zone.to_string()))
    }

    /// How long a fused reading (or a measure such as the conflict) stays current.
    pub fn fresh(&self) -> Duration {
        self.fused_fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::validate::tests::test_site;

    fn reading(kind: SourceKind, id: &str, ts: DateTime<Utc>, density: f64) -> Reading {
        Reading::new("t", "z", kind, id, ts, density * 10_000.0, 10_000.0, 0.8)
    }

    #[test]
    fn fused_drives_the_level_when_fresh() {
        let mut live = Live::new(&[test_site()], Duration::seconds(120));
        let now = Utc::now();
        assert!(live.apply(&reading(SourceKind::Camera, "cam", now, 4.0)).is_some(), "no fused yet: the source drives");
        let mut live = Live::new(&[test_site()], Duration::seconds(120));
        assert!(live.apply(&reading(SourceKind::Fused, "e/fused", now, 1.0)).is_some());
        assert!(live.apply(&reading(SourceKind::Camera, "cam", now, 4.0)).is_none(), "fused is fresh");
        assert_eq!(live.zone("t", "z").unwrap().level(), Level::Normal);
        assert_eq!(live.zone("t", "z").unwrap().sources.len(), 2);
        let ev = live.apply(&reading(SourceKind::Fused, "e/fused", now + Duration::seconds(1), 3.8)).unwrap();
        assert_eq!(ev.level, Level::Warning);
        assert_eq!(live.zone("t", "z").unwrap().source_values().len(), 1, "fused is not a source for the rules");
    }

    #[test]
    fn conflict_is_the_worst_fresh_view_and_zero_once_the_cameras_go_quiet() {
        let mut z = ZoneLive::new();
        let t0 = Utc::now();
        let max_age = Duration::seconds(10);
        let src = |conflict: Option<f64>, ts: DateTime<Utc>| SourceLatest {
            kind: SourceKind::Camera,
            count: 1.0,
            density: 0.1,
            confidence: 0.8,
            ts,
            inflow_per_min: None,
            conflict,
        };
        z.sources.insert("gate".into(), SourceLatest { kind: SourceKind::Gate, ..src(None, t0) });
        assert_eq!(z.conflict(t0, max_age), None, "no camera: no conflict measure at all");
        z.sources.insert("cam-a".into(), src(Some(2.0), t0));
        z.sources.insert("cam-b".into(), src(Some(3.0), t0 - Duration::seconds(30)));
        assert_eq!(z.conflict(t0, max_age), Some(2.0), "cam-b is stale");
        assert_eq!(z.conflict(t0 + Duration::seconds(60), max_age), Some(0.0), "both quiet: the alert can clear");
    }

    #[test]
    fn display_level_has_hysteresis() {
        let t = Thresholds::default();
        assert_eq!(next_level(&t, Level::Normal, 3.7), Level::Warning);
        assert_eq!(next_level(&t, Level::Warning, 3.0), Level::Warning, "above 0.8 × 3.6");
        assert_eq!(next_level(&t, Level::Warning, 2.5), Level::Notice);
        assert_eq!(next_level(&t, Level::Critical, 0.1), Level::Normal);
    }

    #[test]
    fn trend_is_the_least_squares_slope() {
        let t0 = Utc::now();
        let pts = (0..5).map(|i| (t0 + Duration::seconds(30 * i), 1.0 + 0.25 * i as f64));
        let slope = slope_per_min(pts).unwrap();
        assert!((slope - 0.5).abs() < 1e-9, "0.25 per 30 s is 0.5 per minute, got {slope}");
        assert_eq!(slope_per_min([(t0, 1.0), (t0, 2.0)].into_iter()), None);
    }
}
