//! A camera's tracking: the tracker over each frame's detections, the tracked objects as the boxes its zones
//! count (a person the detector misses for up to `max_missed` frames stays counted), and its lines' crossings as
//! flows per minute on the line's zone, like a gate's (`inflow_per_min` = `in`, `outflow_per_min` = `out`), so the
//! same rules and charts work; vehicles through the line, the detector's own count and how long people have
//! been in each zone (dwell) ride in the reading's `tracked`. In a vehicle lane the people–vehicle conflict comes from tracks: the people who
//! have stood in the lane for `conflict_after_s` or longer, not everyone whose feet were in it for one frame.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::config::TrackingConfig;
use crate::vision::detect::{Class, Detection};
use crate::vision::geometry::contains;
use crate::vision::track::lines::{Direction, LineCounter};
use crate::vision::track::{Tracker, TrackerConfig};
use crate::vision::zones::{standing_point, ImageZone};

/// The window of the per-minute flows.
const FLOW_WINDOW_S: i64 = 60;

/// One camera's tracking state.
#[derive(Debug)]
pub struct CameraTracking {
    tracker: Tracker,
    max_missed: u32,
    /// (index of the camera zone the line reports on, its counter).
    lines: Vec<(usize, String, LineCounter)>,
    /// Crossings within the flow window: (when, zone index, direction, class).
    recent: VecDeque<(DateTime<Utc>, usize, Direction, Class)>,
    /// The camera's zones, and since when each tracked person has been in each (dwell; conflict in lanes).
    zones: Vec<ImageZone>,
    in_zone: HashMap<(u64, usize), DateTime<Utc>>,
    conflict_after: Duration,
}

impl CameraTracking {
    /// Lines name zones of `zones` (checked when the config was loaded; a line on another zone is skipped).
    pub fn new(cfg: &TrackingConfig, zones: &[ImageZone]) -> Self {
        let lines = cfg
            .lines
            .iter()
            .filter_map(|l| {
                let i = zones.iter().position(|z| z.zone == l.zone)?;
                let pt = |p: [f64; 2]| (p[0] as f32, p[1] as f32);
                Some((i, l.id.clone(), LineCounter::new(pt(l.from), pt(l.to), 2)))
            })
            .collect();
        CameraTracking {
            tracker: Tracker::new(TrackerConfig::default()),
            max_missed: cfg.max_missed,
            lines,
            recent: VecDeque::new(),
            zones: zones.to_vec(),
            in_zone: HashMap::new(),
            conflict_after: Duration::milliseconds((cfg.conflict_after_s * 1000.0) as i64),
        }
    }

    /// Tracks one frame's detections at `now`; returns the tracked objects as detections for the zones to count.
    pub fn frame(&mut self, dets: &[Detection], now: DateTime<Utc>, source: &str) -> Vec<Detection> {
        self.tracker.update(dets);
        for (zone, id, line) in &mut self.lines {
            for c in line.update(self.tracker.tracked(self.max_missed)) {
                tracing::debug!(source, line = %id, track = c.track, class = ?c.class, direction = ?c.direction, "line crossing");
                self.recent.push_back((now, *zone, c.direction, c.class));
            }
        }
        self.forget(now);
        let tracked: Vec<(u64, Detection)> = self
            .tracker
            .tracked(self.max_missed)
            .map(|t| {
                let b = t.bbox();
                (
                    t.id,
                    Detection { class: t.class, raw_class: 0, score: t.score, x1: b[0], y1: b[1], x2: b[2], y2: b[3] },
                )
            })
            .collect();
        // Who is in which zone, since when; anyone gone from a zone (or from the tracks) is dropped.
        let mut still = HashMap::new();
        for (id, d) in tracked.iter().filter(|(_, d)| d.class == Class::Person) {
            let p = standing_point(&self.zones, d);
            for (i, z) in self.zones.iter().enumerate() {
                if contains(&z.polygon, p) {
                    still.insert((*id, i), self.in_zone.get(&(*id, i)).copied().unwrap_or(now));
                }
            }
        }
        self.in_zone = still;
        tracked.into_iter().map(|(_, d)| d).collect()
    }

    /// People who have stood in vehicle lane `zone` for `conflict_after_s` or longer as of `now`.
    pub fn lane_conflict(&self, zone: usize, now: DateTime<Utc>) -> f64 {
        self.in_zone.iter().filter(|((_, z), since)| *z == zone && now - **since >= self.conflict_after).count() as f64
    }

    /// How long the tracked people now in camera zone `zone` have been in it: (median, 90th percentile), seconds;
    /// (0, 0) when nobody is.
    pub fn dwell(&self, zone: usize, now: DateTime<Utc>) -> (f64, f64) {
        let mut s: Vec<f64> = self
            .in_zone
            .iter()
            .filter(|((_, z), _)| *z == zone)
            .map(|(_, since)| (now - *since).num_milliseconds() as f64 / 1000.0)
            .collect();
        if s.is_empty() {
            return (0.0, 0.0);
        }
        s.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least q of the values at or below it.
        let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        (rank(0.5), rank(0.9))
    }

    fn forget(&mut self, now: DateTime<Utc>) {
        let since = now - Duration::seconds(FLOW_WINDOW_S);
        while self.recent.front().is_some_and(|(t, _, _, _)| *t < since) {
            self.recent.pop_front();
        }
    }

    /// `class` in and out per minute through the line on camera zone `zone` over the last minute (`None`: no line).
    pub fn flows(&mut self, zone: usize, class: Class, now: DateTime<Utc>) -> Option<(f64, f64)> {
        if !self.lines.iter().any(|(z, _, _)| *z == zone) {
            return None;
        }
        self.forget(now);
        let count = |d: Direction| {
            self.recent.iter().filter(|(_, z, x, c)| *z == zone && *x == d && *c == class).count() as f64
        };
        let per_min = 60.0 / FLOW_WINDOW_S as f64;
        Some((count(Direction::In) * per_min, count(Direction::Out) * per_min))
    }

    /// Crossings since start of the line `id`: (people in, people out, vehicles in, vehicles out).
    pub fn totals(&self, id: &str) -> Option<(u64, u64, u64, u64)> {
        let (_, _, l) = self.lines.iter().find(|(_, i, _)| i == id)?;
        Some((
            l.total(Class::Person, Direction::In),
            l.total(Class::Person, Direction::Out),
            l.total(Class::Vehicle, Direction::In),
            l.total(Class::Vehicle, Direction::Out),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_counts_as_a_lane_conflict_only_after_standing_in_it() {
        // A plaza (x 0–200) and a kerbside lane (x 200–260) on the image; 5 frames/s (200 ms a frame).
        // A walks through the lane at 12 px a frame: feet (box centre x + 10) in it on frames 4–8, under a second.
        // B steps into the lane at frame 5 and waits there.
        let zone = |id: &str, x0: f64, w: f64, lane: bool| ImageZone {
            zone: id.into(),
            polygon: vec![[x0, 0.0], [x0 + w, 0.0], [x0 + w, 300.0], [x0, 300.0]],
            vehicle_lane: lane,
            area_m2: 100.0,
        };
        let zones = vec![zone("plaza", 0.0, 200.0, false), zone("lane", 200.0, 60.0, true)];
        let cfg: TrackingConfig = toml::from_str("conflict_after_s = 2.0").unwrap();
        let mut t = CameraTracking::new(&cfg, &zones);
        let p = |x: f32, y: f32| Detection {
            class: Class::Person,
            raw_class: 0,
            score: 0.9,
            x1: x,
            y1: y,
            x2: x + 20.0,
            y2: y + 60.0,
        };
        let t0 = Utc::now();
        let mut worst = 0.0f64;
        for k in 0..20 {
            let now = t0 + Duration::milliseconds(200 * k);
            let a = p(150.0 + 12.0 * k as f32, 50.0);
            let b = if k < 5 { p(170.0, 200.0) } else { p(215.0, 200.0) };
            t.frame(&[a, b], now, "test");
            let c = t.lane_conflict(1, now);
            // B's track is confirmed in the lane by frame 6 at the latest (1.2 s): 2 s later is frame 16.
            if k < 15 {
                assert_eq!(c, 0.0, "frame {k}: nobody has stood 2 s in the lane yet");
            }
            if k >= 16 {
                assert_eq!(c, 1.0, "frame {k}: B has waited in the lane for 2 s");
            }
            worst = worst.max(c);
            assert_eq!(t.lane_conflict(0, now), 0.0, "the plaza is not a lane");
        }
        assert_eq!(worst, 1.0, "A only passed through");
    }

    #[test]
    fn dwell_is_how_long_the_people_now_in_a_zone_have_been_there() {
        // One frame a second. P1 is there from the first frame (confirmed at once); P2 appears at 1 s and is
        // confirmed at 2 s; P3 appears at 2 s, confirmed at 3 s. At 3 s they have been counted in the zone for
        // 3, 1 and 0 s: median 1 s, p90 (nearest rank, 3 of 3) 3 s.
        let zones = vec![ImageZone {
            zone: "plaza".into(),
            polygon: vec![[0.0, 0.0], [600.0, 0.0], [600.0, 400.0], [0.0, 400.0]],
            vehicle_lane: false,
            area_m2: 100.0,
        }];
        let mut t = CameraTracking::new(&toml::from_str("").unwrap(), &zones);
        let p = |x: f32| Detection {
            class: Class::Person,
            raw_class: 0,
            score: 0.9,
            x1: x,
            y1: 100.0,
            x2: x + 30.0,
            y2: 190.0,
        };
        let t0 = Utc::now();
        let at = |s: i64| t0 + Duration::seconds(s);
        t.frame(&[p(50.0)], at(0), "test");
        assert_eq!(t.dwell(0, at(0)), (0.0, 0.0));
        t.frame(&[p(50.0), p(200.0)], at(1), "test");
        t.frame(&[p(50.0), p(200.0), p(400.0)], at(2), "test");
        t.frame(&[p(50.0), p(200.0), p(400.0)], at(3), "test");
        assert_eq!(t.dwell(0, at(3)), (1.0, 3.0));
        // Everyone leaves: nobody dwells.
        for k in 4..40 {
            t.frame(&[], at(k), "test");
        }
        assert_eq!(t.dwell(0, at(40)), (0.0, 0.0));
    }
}
