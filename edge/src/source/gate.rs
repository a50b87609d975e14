//! Gate source: turnstile entry/exit events turned into the occupancy of one zone.
//!
//! Occupancy = entries − exits, never below zero and never above `max_occupancy` (each clamp is
//! counted as `drift_clamped`: it means events were lost). A `census` event (staff headcount) sets
//! the occupancy outright; `daily_reset` empties the zone at a local time of day. Until the first
//! event or reset the occupancy is unknown and nothing is published.

use std::collections::VecDeque;

use chrono::{DateTime, FixedOffset, NaiveTime, Offset, TimeZone, Utc};
use crowdgrid_proto::{Reading, SourceKind};
use serde::{Deserialize, Serialize};

use super::{
    check_ts, check_value, start_records, zone_area, Estimator, Ids, Rejection, SourceContext, SourceError, Started,
};
use crate::config::{parse_hhmm, GateConfig};
use crate::input::Timestamped;

/// Which way people went through a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Entries.
    #[serde(alias = "entry")]
    In,
    /// Exits.
    #[serde(alias = "exit")]
    Out,
    /// A staff headcount: the occupancy is `count`.
    Census,
}

/// One gate event: CSV header `ts,gate,direction,count`, or a JSON object with those fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// When it happened (RFC 3339).
    pub ts: DateTime<Utc>,
    /// Gate id (for logs).
    pub gate: String,
    /// In, out or census.
    pub direction: Direction,
    /// People (default 1).
    #[serde(default)]
    pub count: Option<f64>,
}

impl GateRecord {
    /// The people count, 1 when absent.
    pub fn count(&self) -> f64 {
        self.count.unwrap_or(1.0)
    }
}

impl Timestamped for GateRecord {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn set_ts(&mut self, ts: DateTime<Utc>) {
        self.ts = ts;
    }
}

/// The flow window: events within this long before "now" count towards the per-minute flows.
const FLOW_WINDOW: chrono::Duration = chrono::Duration::seconds(60);

/// Zone occupancy from gate events; pure and synchronous.
#[derive(Debug, Clone)]
pub struct Occupancy {
    occupancy: f64,
    known: bool,
    max: Option<f64>,
    reset_at: Option<NaiveTime>,
    offset: FixedOffset,
    next_reset: Option<DateTime<Utc>>,
    flows: VecDeque<(DateTime<Utc>, f64, f64)>,
}

/// The first instant after `t` whose local time (at `offset`) is `at`.
pub fn next_local_time(t: DateTime<Utc>, at: NaiveTime, offset: FixedOffset) -> DateTime<Utc> {
    let local = t.with_timezone(&offset);
    let mut date = local.date_naive();
    loop {
        if let Some(candidate) = offset.from_local_datetime(&date.and_time(at)).single() {
            let candidate = candidate.with_timezone(&Utc);
            if candidate > t {
                return candidate;
            }
        }
        match date.succ_opt() {
            Some(d) => date = d,
            None => return t + chrono::Duration::days(1),
        }
    }
}

impl Occupancy {
    /// Empty and unknown, capped at `max`, reset daily at local `reset_at` (UTC offset in minutes).
    pub fn new(max: Option<u64>, reset_at: Option<NaiveTime>, utc_offset_minutes: i32) -> Self {
        let offset = FixedOffset::east_opt(utc_offset_minutes.saturating_mul(60)).unwrap_or_else(|| Utc.fix());
        Self {
            occupancy: 0.0,
            known: false,
            max: max.map(|m| m as f64),
            reset_at,
            offset,
            next_reset: None,
            flows: VecDeque::new(),
        }
    }

    /// Current occupancy, or `None` before the first event or reset.
    pub fn occupancy(&self) -> Option<f64> {
        self.known.then_some(self.occupancy)
    }

    /// Applies the daily reset if `t` has passed it; returns true when it did.
    pub fn maybe_reset(&mut self, t: DateTime<Utc>) -> bool {
        let Some(at) = self.reset_at else {
            return false;
        };
        match self.next_reset {
            None => {
                self.next_reset = Some(next_local_time(t, at, self.offset));
                false
            }
            Some(next) if t >= next => {
                self.occupancy = 0.0;
                self.known = true;
                self.next_reset = Some(next_local_time(t, at, self.offset));
                true
            }
            Some(_) => false,
        }
    }

    /// Applies `count` people going `direction` at `ts`. Returns the unclamped occupancy when it had
    /// to be clamped to 0 or to the maximum.
    pub fn apply(&mut self, direction: Direction, count: f64, ts: DateTime<Utc>) -> Option<f64> {
        self.maybe_reset(ts);
        self.known = true;
        let raw = match direction {
            Direction::In => {
                self.flows.push_back((ts, count, 0.0));
                self.occupancy + count
            }
            Direction::Out => {
                self.flows.push_back((ts, 0.0, count));
                self.occupancy - count
            }
            Direction::Census => count,
        };
        let upper = self.max.unwrap_or(f64::INFINITY);
        self.occupancy = raw.clamp(0.0, upper);
        (self.occupancy != raw).then_some(raw)
    }

    /// People in and out per minute over the last 60 s before `now` (by event time).
    pub fn flows(&mut self, now: DateTime<Utc>) -> (f64, f64) {
        let from = now - FLOW_WINDOW;
        self.flows.retain(|(ts, _, _)| *ts > from);
        self.flows.iter().filter(|(ts, _, _)| *ts <= now).fold((0.0, 0.0), |(i, o), (_, a, b)| (i + a, o + b))
    }
}

/// A gate source's state: occupancy plus the reading it publishes.
#[derive(Debug, Clone)]
pub struct GateState {
    ids: Ids,
    zone: String,
    area_m2: f64,
    confidence: f64,
    stale_after: chrono::Duration,
    /// The occupancy model as configured, to start over from.
    fresh: Occupancy,
    /// Data time per event time: a replay at 60× re-stamps a recorded minute into one second, so the events of
    /// the last minute are 60 data-minutes' worth; flows are divided by this to stay per data-minute.
    time_scale: f64,
    /// The occupancy model.
    pub occupancy: Occupancy,
}

impl GateState {
    /// Builds the state for `cfg` against `site`.
    pub fn new(cfg: &GateConfig, site: &crowdgrid_proto::site::Site, edge_id: &str) -> Result<Self, SourceError> {
        let ids = Ids::new(site, edge_id, &cfg.id, SourceKind::Gate);
        let area_m2 = zone_area(site, &cfg.zone, &ids.source_id)?;
        let reset_at = match &cfg.daily_reset {
            Some(s) => Some(parse_hhmm(s).ok_or_else(|| SourceError::Config {
                source_id: ids.source_id.clone(),
                message: format!("daily_reset {s:?} is not HH:MM"),
            })?),
            None => None,
        };
        Ok(Self {
            zone: cfg.zone.clone(),
            area_m2,
            confidence: cfg.confidence,
            stale_after: chrono::Duration::seconds(cfg.stale_after_s.min(i64::MAX as u64 / 1000) as i64),
            time_scale: match &cfg.input {
                crate::config::InputConfig::Replay { speed, .. } if speed.is_finite() && *speed > 0.0 => *speed,
                _ => 1.0,
            },
            fresh: Occupancy::new(cfg.max_occupancy, reset_at, site.config.utc_offset_minutes),
            occupancy: Occupancy::new(cfg.max_occupancy, reset_at, site.config.utc_offset_minutes),
            ids,
        })
    }
}

impl Estimator for GateState {
    type Record = GateRecord;

    fn apply(&mut self, rec: GateRecord, now: DateTime<Utc>) -> Result<Option<Rejection>, Rejection> {
        let count = rec.count();
        check_value("count", count)?;
        check_ts(rec.ts, now, self.stale_after)?;
        Ok(self.occupancy.apply(rec.direction, count, rec.ts).map(|raw| {
            Rejection::new(
                "drift_clamped",
                format!("gate {} {:?} {count}: occupancy {raw} clamped", rec.gate, rec.direction),
            )
        }))
    }

    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading> {
        if self.occupancy.maybe_reset(now) {
            tracing::info!(source = %self.ids.source_id, zone = %self.zone, "daily occupancy reset");
        }
        let Some(people) = self.occupancy.occupancy() else {
            return Vec::new();
        };
        let (inflow, outflow) = self.occupancy.flows(now);
        let mut r = self.ids.reading(&self.zone, now, people, self.area_m2, self.confidence);
        r.inflow_per_min = Some(inflow / self.time_scale);
        r.outflow_per_min = Some(outflow / self.time_scale);
        vec![r]
    }

    fn restart(&mut self) {
        // A looped recording replays the same day again: its entries are not more people on the island.
        self.occupancy = self.fresh.clone();
    }
}

/// Starts a gate source.
pub async fn start(cfg: &GateConfig, cx: SourceContext) -> Result<Started, SourceError> {
    let state = GateState::new(cfg, &cx.site, &cx.edge_id)?;
    let ids = state.ids.clone();
    start_records(state, ids, &cfg.input, cfg.report_interval_ms, cx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn never_negative_and_capped() {
        let mut o = Occupancy::new(Some(100), None, 480);
        assert_eq!(o.occupancy(), None);
        let ts = t("2026-05-01T02:00:00Z");
        assert_eq!(o.apply(Direction::In, 10.0, ts), None);
        assert_eq!(o.apply(Direction::Out, 4.0, ts), None);
        assert_eq!(o.occupancy(), Some(6.0));
        assert_eq!(o.apply(Direction::Out, 10.0, ts), Some(-4.0), "lost entries: clamped");
        assert_eq!(o.occupancy(), Some(0.0));
        assert_eq!(o.apply(Direction::In, 150.0, ts), Some(150.0));
        assert_eq!(o.occupancy(), Some(100.0));
    }

    #[test]
    fn census_sets_occupancy() {
        let mut o = Occupancy::new(None, None, 480);
        let ts = t("2026-05-01T02:00:00Z");
        o.apply(Direction::In, 40.0, ts);
        assert_eq!(o.apply(Direction::Census, 25.0, ts), None);
        assert_eq!(o.occupancy(), Some(25.0));
        o.apply(Direction::In, 1.0, ts);
        assert_eq!(o.occupancy(), Some(26.0));
    }

    #[test]
    fn daily_reset_at_local_time() {
        // 22:00 at UTC+8 is 14:00 UTC.
        let mut o = Occupancy::new(None, parse_hhmm("22:00"), 480);
        o.apply(Direction::In, 50.0, t("2026-05-01T13:00:00Z"));
        assert!(!o.maybe_reset(t("2026-05-01T13:59:59Z")));
        assert_eq!(o.occupancy(), Some(50.0));
        assert!(o.maybe_reset(t("2026-05-01T14:00:00Z")));
        assert_eq!(o.occupancy(), Some(0.0));
        o.apply(Direction::In, 3.0, t("2026-05-01T15:00:00Z"));
        assert!(!o.maybe_reset(t("2026-05-02T13:00:00Z")));
        assert!(o.maybe_reset(t("2026-05-02T14:00:01Z")), "again the next day");
        assert_eq!(
            next_local_time(
                t("2026-05-01T15:00:00Z"),
                parse_hhmm("06:30").unwrap(),
                FixedOffset::east_opt(480 * 60).unwrap()
            ),
            t("2026-05-01T22:30:00Z")
        );
    }

    #[test]
    fn inflow_per_minute_over_last_60s() {
        let mut o = Occupancy::new(None, None, 480);
        let now = t("2026-05-01T02:00:00Z");
        o.apply(Direction::In, 5.0, now - chrono::Duration::seconds(90));
        o.apply(Direction::In, 7.0, now - chrono::Duration::seconds(50));
        o.apply(Direction::In, 3.0, now - chrono::Duration::seconds(10));
        o.apply(Direction::Out, 2.0, now - chrono::Duration::seconds(5));
        o.apply(Direction::Census, 100.0, now);
        assert_eq!(o.flows(now), (10.0, 2.0));
        assert_eq!(o.flows(now + chrono::Duration::seconds(30)), (3.0, 2.0));
        assert_eq!(o.flows(now + chrono::Duration::seconds(120)), (0.0, 0.0));
    }

    #[test]
    fn a_replay_reports_flows_per_data_minute_whatever_its_speed() {
        // One recorded minute: 47 in and 12 out, spread over the minute (the data holds 47–648 per minute; on main
        // a 60× replay reported 60 data-minutes as one: tens of thousands per "minute").
        let recorded: Vec<(i64, Direction, f64)> =
            (0..59).map(|i| (i, if i % 5 == 0 { Direction::Out } else { Direction::In }, 1.0)).collect();
        let ins: f64 = recorded.iter().filter(|r| r.1 == Direction::In).map(|r| r.2).sum();
        let outs: f64 = recorded.iter().filter(|r| r.1 == Direction::Out).map(|r| r.2).sum();
        let site = crate::source::testing::site();
        let flows_at = |speed: f64, minutes: i64| {
            let cfg: GateConfig = toml::from_str(&format!(
                "id = \"g\"\nzone = \"plaza\"\ninput = {{ kind = \"replay\", path = \"x.csv\", speed = {speed} }}"
            ))
            .unwrap();
            let mut g = GateState::new(&cfg, &site, "e").unwrap();
            let first = t("2026-05-01T02:00:00Z");
            let start = t("2026-05-01T09:00:00Z");
            // `minutes` recorded minutes, each the same, re-stamped as the replay input does.
            let mut last = start;
            for m in 0..minutes {
                for (s, d, c) in &recorded {
                    let rec_ts = first + chrono::Duration::seconds(m * 60 + s);
                    let ts =
                        start + chrono::Duration::from_std(crate::input::replay::offset(first, rec_ts, speed)).unwrap();
                    g.occupancy.apply(*d, *c, ts);
                    last = ts;
                }
            }
            let r = g.readings(last).pop().unwrap();
            (r.inflow_per_min.unwrap(), r.outflow_per_min.unwrap())
        };
        assert_eq!(flows_at(1.0, 1), (ins, outs));
        assert_eq!(flows_at(60.0, 60), (ins, outs), "60 data-minutes in one wall minute: still per data-minute");
        // One data-minute is one second at 60×: the window then spans 60 data-minutes of which one had events.
        assert_eq!(flows_at(60.0, 1), (ins / 60.0, outs / 60.0));
    }

    #[test]
    fn a_looped_replay_starts_the_occupancy_over() {
        let site = crate::source::testing::site();
        let cfg: GateConfig = toml::from_str(
            "id = \"g\"\nzone = \"plaza\"\ninput = { kind = \"replay\", path = \"x.csv\", speed = 60.0, loop = true }",
        )
        .unwrap();
        let mut g = GateState::new(&cfg, &site, "e").unwrap();
        let ids = g.ids.clone();
        let health = crate::health::Health::new();
        let now = Utc::now();
        let rec = |n: f64| GateRecord { ts: now, gate: "g1".into(), direction: Direction::In, count: Some(n) };
        crate::source::apply_batch(&mut g, crate::input::Batch::new(vec![rec(300.0)], vec![]), &ids, &health, now);
        assert_eq!(g.occupancy.occupancy(), Some(300.0));
        // The same recording again, as its second pass: 300, not 600 (on main it climbed pass after pass).
        let mut again = crate::input::Batch::new(vec![rec(300.0)], vec![]);
        again.restart = true;
        crate::source::apply_batch(&mut g, again, &ids, &health, now);
        assert_eq!(g.occupancy.occupancy(), Some(300.0));
    }

    #[test]
    fn records_parse_with_default_count() {
        let (r, e) = crate::input::records::parse_auto::<GateRecord>(
            None,
            b"ts,gate,direction,count\n2026-05-01T08:00:00+08:00,n1,in,\n2026-05-01T08:00:01+08:00,n1,exit,3\n2026-05-01T08:00:02+08:00,n1,up,1\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((r[0].direction, r[0].count()), (Direction::In, 1.0));
        assert_eq!((r[1].direction, r[1].count()), (Direction::Out, 3.0));
        let (r, _) = crate::input::records::parse_auto::<GateRecord>(
            None,
            br#"{"ts":"2026-05-01T00:00:00Z","gate":"g","direction":"census","count":12}"#,
        );
        assert_eq!(r[0].count(), 12.0);
    }
}
