//! One density reading: the JSON payload published on `crowdgrid/v1/{site}/{zone}/reading`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What produced a reading. `Fused` is the edge's confidence-weighted combination of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Mobile operator base-station connected-device counts.
    BaseStation,
    /// Scenic-area turnstile entry/exit events turned into occupancy.
    Gate,
    /// A fixed camera running a people/vehicle detector.
    Camera,
    /// Drone patrol imagery.
    Drone,
    /// A report by a citizen, courier or grid worker.
    Report,
    /// The built-in generator used by the demo; never real data.
    Simulated,
    /// The edge's per-zone combination of all the sources above.
    Fused,
}

impl SourceKind {
    /// Lower-case name as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::BaseStation => "base_station",
            SourceKind::Gate => "gate",
            SourceKind::Camera => "camera",
            SourceKind::Drone => "drone",
            SourceKind::Report => "report",
            SourceKind::Simulated => "simulated",
            SourceKind::Fused => "fused",
        }
    }

    /// Parses [`SourceKind::as_str`] output.
    pub fn parse(s: &str) -> Option<SourceKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// Per-class counts from a detector (people and vehicles seen in the zone).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassCounts {
    /// People counted.
    pub person: f64,
    /// Vehicles counted (bicycle, car, motorcycle, bus, truck).
    pub vehicle: f64,
}

/// One estimate of how many people are in a zone at a moment, from one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Site id (the first topic level after the prefix).
    pub site: String,
    /// Zone id within the site.
    pub zone: String,
    /// What kind of source measured it.
    pub source: SourceKind,
    /// Stable id of the source, unique per site (e.g. `west-taihu-edge-1/cmcc-cells`).
    pub source_id: String,
    /// When the measurement applies (RFC 3339, UTC or with offset).
    pub ts: DateTime<Utc>,
    /// Per-source sequence number, strictly increasing; the centre drops a reading whose
    /// sequence is not above the last one it stored for the same source and epoch.
    pub seq: u64,
    /// Identifies the sequence space: a new epoch (e.g. a re-installed edge) restarts `seq`.
    #[serde(default)]
    pub epoch: u64,
    /// Estimated people in the observed area.
    pub count: f64,
    /// Observed area in square metres.
    pub area_m2: f64,
    /// People per square metre (`count / area_m2`).
    pub density: f64,
    /// How much to trust this estimate, 0..=1.
    pub confidence: f64,
    /// Per-class counts when the source is a detector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassCounts>,
    /// People entering per minute (gate sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflow_per_min: Option<f64>,
    /// People leaving per minute (gate sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outflow_per_min: Option<f64>,
    /// People–vehicle conflict (camera and drone sources): people standing in a vehicle lane, or
    /// `min(person, vehicle)` when both share a zone at the same moment; smoothed like `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<f64>,
    /// What a tracking camera adds (`[sources.tracking]` of an edge camera).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<Tracked>,
}

/// What a tracking camera adds to a zone's reading: its count is the tracked objects', so the detector's own
/// per-frame count travels beside it for comparison, with how long people have been in the zone and the
/// vehicles through its counting line (the reading's `inflow_per_min` / `outflow_per_min` are the people).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tracked {
    /// People the detector saw per frame, smoothed like `count` (which counts tracked people).
    pub raw_count: f64,
    /// How long the tracked people now in the zone have been in it, seconds: median (0 when nobody is).
    pub dwell_p50_s: f64,
    /// The same, 90th percentile.
    pub dwell_p90_s: f64,
    /// Vehicles through the zone's counting line per minute, `in` (absent: the zone has no line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_inflow_per_min: Option<f64>,
    /// The same, `out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_outflow_per_min: Option<f64>,
}

/// The edge a source id belongs to: edges name their sources `{edge}/{source}` (`None` for a source id without an
/// edge part, e.g. a hand publisher's).
pub fn edge_of_source(source_id: &str) -> Option<&str> {
    source_id.split_once('/').map(|(e, _)| e).filter(|e| !e.is_empty())
}

/// Largest `seq` accepted: integers above 2^53 are not exact in every JSON reader.
pub const MAX_SEQ: u64 = 1 << 53;

/// Limits a reading is checked against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest plausible density (people/m²); crowd turbulence was measured near 10.
    pub max_density: f64,
    /// How far in the future a timestamp may be (clock skew).
    pub max_future: Duration,
    /// How old a timestamp may be (edge queues replay after outages).
    pub max_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_density: 12.0, max_future: Duration::minutes(5), max_age: Duration::days(7) }
    }
}

/// Why a reading was rejected. [`ReadingError::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReadingError {
    #[error("field {field} is not a finite number")]
    NotFinite { field: &'static str },
    #[error("field {field} is negative ({value})")]
    Negative { field: &'static str, value: f64 },
    #[error("area_m2 must be positive, got {0}")]
    BadArea(f64),
    #[error("confidence {0} is outside 0..=1")]
    BadConfidence(f64),
    #[error("density {density} is implausible (limit {limit} people/m²)")]
    Implausible { density: f64, limit: f64 },
    #[error("density {density} disagrees with count/area = {expected}")]
    Inconsistent { density: f64, expected: f64 },
    #[error("timestamp {ts} is {ahead_s} s in the future")]
    Future { ts: DateTime<Utc>, ahead_s: i64 },
    #[error("timestamp {ts} is {age_s} s old")]
    TooOld { ts: DateTime<Utc>, age_s: i64 },
    #[error("empty or over-long id in field {0}")]
    BadId(&'static str),
    #[error("{field} {value} is out of range (at most {max})")]
    BadSequence { field: &'static str, value: u64, max: u64 },
}

impl ReadingError {
    /// Short, stable label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            ReadingError::NotFinite { .. } => "not_finite",
            ReadingError::Negative { .. } => "negative",
            ReadingError::BadArea(_) => "bad_area",
            ReadingError::BadConfidence(_) => "bad_confidence",
            ReadingError::Implausible { .. } => "implausible",
            ReadingError::Inconsistent { .. } => "inconsistent",
            ReadingError::Future { .. } => "future",
            ReadingError::TooOld { .. } => "too_old",
            ReadingError::BadId(_) => "bad_id",
            ReadingError::BadSequence { .. } => "bad_sequence",
        }
    }
}

impl Reading {
    /// Builds a reading, deriving the density from count and area.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        site: &str,
        zone: &str,
        source: SourceKind,
        source_id: &str,
        ts: DateTime<Utc>,
        count: f64,
        area_m2: f64,
        confidence: f64,
    ) -> Self {
        let density = if area_m2 > 0.0 { count / area_m2 } else { 0.0 };
        Self {
            site: site.to_string(),
            zone: zone.to_string(),
            source,
            source_id: source_id.to_string(),
            ts,
            seq: 0,
            epoch: 0,
            count,
            area_m2,
            density,
            confidence,
            classes: None,
            inflow_per_min: None,
            outflow_per_min: None,
            conflict: None,
            tracked: None,
        }
    }

    /// Checks the values against `limits` at time `now`.
    pub fn check(&self, now: DateTime<Utc>, limits: &Limits) -> Result<(), ReadingError> {
        for (field, id) in [("site", &self.site), ("zone", &self.zone), ("source_id", &self.source_id)] {
            if id.is_empty() || id.len() > 128 {
                return Err(ReadingError::BadId(field));
            }
        }
        let mut nums = vec![
            ("count", self.count),
            ("area_m2", self.area_m2),
            ("density", self.density),
            ("confidence", self.confidence),
        ];
        if let Some(c) = &self.classes {
            nums.push(("classes.person", c.person));
            nums.push(("classes.vehicle", c.vehicle));
        }
        if let Some(v) = self.inflow_per_min {
            nums.push(("inflow_per_min", v));
        }
        if let Some(v) = self.outflow_per_min {
            nums.push(("outflow_per_min", v));
        }
        if let Some(v) = self.conflict {
            nums.push(("conflict", v));
        }
        if let Some(t) = &self.tracked {
            nums.push(("tracked.raw_count", t.raw_count));
            nums.push(("tracked.dwell_p50_s", t.dwell_p50_s));
            nums.push(("tracked.dwell_p90_s", t.dwell_p90_s));
            if let Some(v) = t.vehicle_inflow_per_min {
                nums.push(("tracked.vehicle_inflow_per_min", v));
            }
            if let Some(v) = t.vehicle_outflow_per_min {
                nums.push(("tracked.vehicle_outflow_per_min", v));
            }
        }
        for (field, value) in nums {
            if !value.is_finite() {
                return Err(ReadingError::NotFinite { field });
            }
            if value < 0.0 {
                return Err(ReadingError::Negative { field, value });
            }
        }
        if self.area_m2 <= 0.0 {
            return Err(ReadingError::BadArea(self.area_m2));
        }
        if self.confidence > 1.0 {
            return Err(ReadingError::BadConfidence(self.confidence));
        }
        if self.density > limits.max_density {
            return Err(ReadingError::Implausible { density: self.density, limit: limits.max_density });
        }
        let expected = self.count / self.area_m2;
        if (self.density - expected).abs() > 0.01 + 0.01 * expected {
            return Err(ReadingError::Inconsistent { density: self.density, expected });
        }
        // Sequence spaces: an epoch is a queue file's creation time in ms (0 for hand publishers), so one from
        // the future is forged or broken and would make every later honest reading look stale; a seq must stay
        // exact in a JSON number (2^53).
        let max_epoch =
            now.checked_add_signed(limits.max_future).map_or(i64::MAX, |t| t.timestamp_millis()).max(0) as u64;
        if self.epoch > max_epoch {
            return Err(ReadingError::BadSequence { field: "epoch", value: self.epoch, max: max_epoch });
        }
        if self.seq > MAX_SEQ {
            return Err(ReadingError::BadSequence { field: "seq", value: self.seq, max: MAX_SEQ });
        }
        let ahead = self.ts.signed_duration_since(now);
        if ahead > limits.max_future {
            return Err(ReadingError::Future { ts: self.ts, ahead_s: ahead.num_seconds() });
        }
        let age = now - self.ts;
        if age > limits.max_age {
            return Err(ReadingError::TooOld { ts: self.ts, age_s: age.num_seconds() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: DateTime<Utc>) -> Reading {
        Reading::new("west-taihu", "beach", SourceKind::Gate, "e1/g", now, 100.0, 50.0, 0.9)
    }

    #[test]
    fn good_reading_passes_and_roundtrips() {
        let now = Utc::now();
        let r = sample(now);
        assert_eq!(r.density, 2.0);
        r.check(now, &Limits::default()).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("classes"), "absent options are omitted: {json}");
        let back: Reading = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn hand_written_payload_parses() {
        let json = r#"{"site":"boai-school","zone":"gate-plaza","source":"camera","source_id":"cam-1",
            "ts":"2026-11-27T07:30:00+08:00","seq":1,"count":30,"area_m2":60,"density":0.5,
            "confidence":0.8,"classes":{"person":30,"vehicle":2}}"#;
        let r: Reading = serde_json::from_str(json).unwrap();
        assert_eq!(r.ts.to_rfc3339(), "2026-11-26T23:30:00+00:00");
        assert_eq!(r.epoch, 0);
        assert_eq!(r.classes.unwrap().vehicle, 2.0);
        assert_eq!(r.conflict, None);
        let with: Reading = serde_json::from_str(&json.replace("\"seq\":1", "\"seq\":1,\"conflict\":1.5")).unwrap();
        assert_eq!(with.conflict, Some(1.5));
    }

    #[test]
    fn bad_values_are_named() {
        let now = Utc::now();
        let lim = Limits::default();
        let mut r = sample(now);
        r.count = -1.0;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "negative");
        let mut r = sample(now);
        r.density = f64::NAN;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "not_finite");
        let mut r = sample(now);
        r.count = 5000.0;
        r.density = 100.0;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "implausible");
        let mut r = sample(now);
        r.density = 3.0;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "inconsistent");
        let r = sample(now + Duration::hours(1));
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "future");
        let r = sample(now - Duration::days(30));
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "too_old");
        let mut r = sample(now);
        r.confidence = 1.5;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "bad_confidence");
        let mut r = sample(now);
        r.conflict = Some(-1.0);
        assert_eq!(r.check(now, &lim).unwrap_err(), ReadingError::Negative { field: "conflict", value: -1.0 });
        r.conflict = Some(f64::INFINITY);
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "not_finite");
        let mut r = sample(now);
        r.area_m2 = 0.0;
        r.density = 0.0;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "bad_area");
        // An epoch from the future (a forged "huge epoch") and a seq beyond 2^53 are refused; an edge's real
        // epoch (its queue file's creation time, ms) passes.
        let mut r = sample(now);
        r.epoch = u64::MAX / 2;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "bad_sequence");
        r.epoch = (now - Duration::days(3)).timestamp_millis() as u64;
        r.check(now, &lim).unwrap();
        r.seq = MAX_SEQ + 1;
        assert_eq!(r.check(now, &lim).unwrap_err().reason(), "bad_sequence");
    }

    #[test]
    fn source_kinds_parse() {
        assert_eq!(SourceKind::parse("base_station"), Some(SourceKind::BaseStation));
        assert_eq!(SourceKind::parse("nope"), None);
    }
}
