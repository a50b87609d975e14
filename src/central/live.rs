//! The live picture: per zone, the density fused at the centre from every source's latest estimate (weighted by
//! confidence and by how much of the zone each observed, `central::fusion`), each source's latest value, a display
//! level with hysteresis and the recent trend. Edges' own `fused` readings are kept as sources to show, never used
//! to drive a zone (two edges seeing one zone would overwrite each other). Pure; the processor owns it behind a
//! lock. Tickets are the rule engine's business (`crate::rules`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Level, Reading, SourceKind, Thresholds};
use serde::Serialize;

use super::events::ZoneEvent;
use super::fusion::{self, Estimate};

/// What a zone's density is, in the live state and its events.
pub const FUSED: &str = "fused";
pub use crate::store::series::MAP_SERIES;
/// At most one row of [`MAP_SERIES`] per zone and this much data time (history, replay and backtests then see
/// the number operators saw).
const MAP_SERIES_EVERY_MS: i64 = 1000;
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
    /// Area it observed, m².
    pub area_m2: f64,
    /// Timestamp.
    pub ts: DateTime<Utc>,
    /// Gate inflow, people/min (gates, and cameras with a counting line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflow_per_min: Option<f64>,
    /// Outflow, people/min.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outflow_per_min: Option<f64>,
    /// What a tracking camera adds: its detector's own count, dwell, vehicles through its line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracked: Option<crowdgrid_proto::Tracked>,
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
    /// What `density` is: `fused` (the centre's fusion of the sources below).
    pub from: Option<String>,
    /// Part of the zone observed by the fused estimate (0..1).
    pub coverage: Option<f64>,
    /// Confidence of the fused estimate.
    pub confidence: Option<f64>,
    /// Latest per source id.
    pub sources: BTreeMap<String, SourceLatest>,
    level: Level,
    #[serde(skip)]
    history: VecDeque<(DateTime<Utc>, f64)>,
    /// Data time of the last [`MAP_SERIES`] row.
    #[serde(skip)]
    stored: Option<DateTime<Utc>>,
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
            coverage: None,
            confidence: None,
            sources: BTreeMap::new(),
            stored: None,
            level: Level::Normal,
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
    /// site → zone → (index in the site's zones, state): looked up by `&str`, no allocation per reading.
    zones: HashMap<String, HashMap<String, (usize, ZoneLive)>>,
    fused_fresh: Duration,
}

impl Live {
    /// Empty state for `sites`.
    pub fn new(sites: &[Arc<Site>], fused_fresh: Duration) -> Self {
        let mut zones: HashMap<String, HashMap<String, (usize, ZoneLive)>> = HashMap::new();
        for s in sites {
            let of_site = zones.entry(s.config.id.clone()).or_default();
            for (i, z) in s.zones.iter().enumerate() {
                of_site.insert(z.config.id.clone(), (i, ZoneLive::new()));
            }
        }
        Self { sites: sites.iter().map(|s| (s.config.id.clone(), s.clone())).collect(), zones, fused_fresh }
    }

    /// Applies a validated reading: remembers it as its source's latest, then re-fuses the zone over the sources
    /// fresh at the reading's time. Returns the zone's new state, unless the reading is an edge's own `fused` one
    /// or older than the zone's current value (stored and shown, but the zone's data time never runs backwards).
    pub fn apply(&mut self, r: &Reading) -> Option<ZoneEvent> {
        let site = self.sites.get(r.site.as_str())?;
        let (zi, z) = self.zones.get_mut(r.site.as_str())?.get_mut(r.zone.as_str())?;
        let zone_cfg = site.zones.get(*zi)?;
        let (thresholds, area) = (zone_cfg.thresholds, zone_cfg.area_m2);
        let latest = SourceLatest {
            kind: r.source,
            count: r.count,
            density: r.density,
            confidence: r.confidence,
            area_m2: r.area_m2,
            ts: r.ts,
            inflow_per_min: r.inflow_per_min,
            outflow_per_min: r.outflow_per_min,
            tracked: r.tracked,
            conflict: r.conflict,
        };
        // In place when the source is known (its id is cloned once, on its first reading).
        match z.sources.get_mut(r.source_id.as_str()) {
            Some(s) if r.ts >= s.ts => *s = latest,
            Some(_) => {}
            None => {
                z.sources.insert(r.source_id.clone(), latest);
            }
        }
        if r.source == SourceKind::Fused || z.ts.is_some_and(|t| r.ts < t) {
            return None;
        }
        // Straight from the sources map: no allocation per reading on this hot path.
        let estimates = z.sources.values().filter(|s| s.kind != SourceKind::Fused).map(|s| Estimate {
            density: s.density,
            area_m2: s.area_m2,
            confidence: s.confidence,
            ts: s.ts,
        });
        let fused = fusion::fuse(area, estimates, r.ts, self.fused_fresh)?;
        z.density = Some(fused.density);
        z.count = Some(fused.count);
        z.coverage = Some(fused.coverage);
        z.confidence = Some(fused.confidence);
        z.ts = Some(r.ts);
        if z.from.is_none() {
            z.from = Some(FUSED.to_string());
        }
        z.level = next_level(&thresholds, z.level, fused.density);
        z.remember(r.ts, fused.density);
        Some(ZoneEvent {
            site: r.site.clone(),
            zone: r.zone.clone(),
            grid: zone_cfg.config.grid.clone(),
            level: z.level,
            density: fused.density,
            count: fused.count,
            ts: r.ts,
            from: FUSED,
        })
    }

    /// Takes another cluster instance's value of a zone of a site this instance does not judge (see
    /// `cluster::live_fanout`); returns whether it is newer than what the zone has. The zone's sources stay with
    /// the owner.
    pub fn mirror(&mut self, e: &ZoneEvent) -> bool {
        let Some((_, z)) = self.zones.get_mut(e.site.as_str()).and_then(|s| s.get_mut(e.zone.as_str())) else {
            return false;
        };
        if z.ts.is_some_and(|t| e.ts <= t) {
            return false;
        }
        z.density = Some(e.density);
        z.count = Some(e.count);
        z.ts = Some(e.ts);
        z.from = Some(FUSED.to_string());
        z.level = e.level;
        z.remember(e.ts, e.density);
        true
    }

    /// The zone's current fused value as a row of [`MAP_SERIES`], unless one was taken less than a data-second
    /// ago. Its `area_m2` is the part of the zone observed, its confidence the fused one.
    pub fn series_row(&mut self, site: &str, zone: &str) -> Option<Reading> {
        let (zi, z) = self.zones.get_mut(site)?.get_mut(zone)?;
        let area = self.sites.get(site)?.zones.get(*zi)?.area_m2;
        let ts = z.ts?;
        if z.stored.is_some_and(|t| (ts - t).num_milliseconds() < MAP_SERIES_EVERY_MS) {
            return None;
        }
        z.stored = Some(ts);
        Some(Reading {
            site: site.to_string(),
            zone: zone.to_string(),
            source: SourceKind::Fused,
            source_id: MAP_SERIES.to_string(),
            ts,
            seq: 0,
            epoch: 0,
            count: z.count?,
            area_m2: z.coverage? * area,
            density: z.density?,
            confidence: z.confidence?,
            classes: None,
            inflow_per_min: None,
            outflow_per_min: None,
            conflict: None,
            tracked: None,
        })
    }

    /// The first zone of `site` (in site order) that `edge` has reported for, if any.
    pub fn zone_of_edge(&self, site: &str, edge: &str) -> Option<String> {
        let s = self.sites.get(site)?;
        s.zones
            .iter()
            .find(|z| {
                self.zones.get(site).and_then(|of| of.get(&z.config.id)).is_some_and(|(_, l)| {
                    l.sources.keys().any(|id| crowdgrid_proto::reading::edge_of_source(id) == Some(edge))
                })
            })
            .map(|z| z.config.id.clone())
    }

    /// One zone's state.
    pub fn zone(&self, site: &str, zone: &str) -> Option<&ZoneLive> {
        self.zones.get(site)?.get(zone).map(|(_, z)| z)
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

    #[test]
    fn every_source_of_every_edge_is_fused_and_edge_fused_readings_do_not_drive() {
        let mut live = Live::new(&[test_site()], Duration::seconds(120));
        let area = test_site().zone("z").unwrap().area_m2;
        let now = Utc::now();
        let est = |id: &str, kind, d: f64, a: f64, c: f64, ts| {
            let mut r = Reading::new("t", "z", kind, id, ts, d * a, a, c);
            r.density = d;
            r
        };
        // Edge 1: a base station over the whole zone, 3.0/m² at 0.6.
        let ev = live.apply(&est("e1/cells", SourceKind::BaseStation, 3.0, area, 0.6, now)).unwrap();
        assert!((ev.density - 3.0).abs() < 1e-12);
        assert_eq!(ev.from, FUSED);
        // Edge 2: a drone over 30 % of it, 3.4/m² at 0.7 → w 0.6 and 0.21: 3.10370.
        let ev = live.apply(&est("e2/drone", SourceKind::Drone, 3.4, 0.3 * area, 0.7, now)).unwrap();
        assert!((ev.density - 3.103_70).abs() < 1e-4, "{}", ev.density);
        // Each edge's own fused reading (what the zone used to flip between) is kept but does not drive.
        assert!(live.apply(&est("e1/fused", SourceKind::Fused, 3.0, area, 0.6, now)).is_none());
        assert!(live.apply(&est("e2/fused", SourceKind::Fused, 3.4, area, 0.7, now)).is_none());
        let z = live.zone("t", "z").unwrap();
        assert!((z.density.unwrap() - 3.103_70).abs() < 1e-4, "unchanged by the edges' fused readings");
        assert_eq!(z.sources.len(), 4);
        assert_eq!(z.coverage, Some(1.0));
        assert_eq!(live.zone("t", "z").unwrap().source_values().len(), 2, "fused is not a source for the rules");
        // An older reading is stored as its source's latest only if newer than that source's, and moves nothing.
        assert!(live.apply(&est("e3/cam", SourceKind::Camera, 9.0, area, 0.9, now - Duration::seconds(5))).is_none());
        // Two minutes on, the base station has gone quiet: the drone alone speaks, with its low confidence.
        let later = now + Duration::seconds(130);
        let ev = live.apply(&est("e2/drone", SourceKind::Drone, 3.2, 0.3 * area, 0.7, later)).unwrap();
        assert!((ev.density - 3.2).abs() < 1e-12);
        let z = live.zone("t", "z").unwrap();
        assert!((z.confidence.unwrap() - 0.21).abs() < 1e-9 && (z.coverage.unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(ev.level, Level::Notice, "3.2 after 3.1: still under warning");
    }

    #[test]
    fn the_map_number_is_stored_as_its_own_series_once_a_data_second() {
        let mut live = Live::new(&[test_site()], Duration::seconds(120));
        let area = test_site().zone("z").unwrap().area_m2;
        assert!(live.series_row("t", "z").is_none(), "nothing fused yet");
        let now = Utc::now();
        let mut r = Reading::new("t", "z", SourceKind::Drone, "e2/drone", now, 0.3 * area * 3.4, 0.3 * area, 0.7);
        r.density = 3.4;
        live.apply(&r).unwrap();
        let row = live.series_row("t", "z").unwrap();
        assert_eq!((row.source_id.as_str(), row.source, row.ts), (MAP_SERIES, SourceKind::Fused, now));
        assert!((row.density - 3.4).abs() < 1e-12 && (row.count - 3.4 * area).abs() < 1e-6, "{row:?}");
        assert!((row.area_m2 - 0.3 * area).abs() < 1e-6, "the area observed: {row:?}");
        assert!(row.source_id.starts_with(crowdgrid_proto::signed::CENTRE), "the centre's reserved identity");
        // 400 ms of data later: no second row; a second later: the next.
        r.ts = now + Duration::milliseconds(400);
        live.apply(&r).unwrap();
        assert!(live.series_row("t", "z").is_none());
        r.ts = now + Duration::milliseconds(1000);
        live.apply(&r).unwrap();
        assert_eq!(live.series_row("t", "z").unwrap().ts, r.ts);
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
            area_m2: 100.0,
            ts,
            inflow_per_min: None,
            outflow_per_min: None,
            tracked: None,
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
