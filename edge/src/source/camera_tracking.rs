//! A camera's tracking: the tracker over each frame's detections, the tracked objects as the boxes its zones
//! count (a person the detector misses for up to `max_missed` frames stays counted), and its lines' crossings as
//! flows per minute on the line's zone, like a gate's (`inflow_per_min` = `in`, `outflow_per_min` = `out`), so the
//! same rules and charts work. Flows are people: the reading's flow fields have no class; vehicle crossings are
//! kept in the totals and logged.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use crate::config::TrackingConfig;
use crate::vision::detect::{Class, Detection};
use crate::vision::track::lines::{Direction, LineCounter};
use crate::vision::track::{Tracker, TrackerConfig};
use crate::vision::zones::ImageZone;

/// The window of the per-minute flows.
const FLOW_WINDOW_S: i64 = 60;

/// One camera's tracking state.
#[derive(Debug)]
pub struct CameraTracking {
    tracker: Tracker,
    max_missed: u32,
    /// (index of the camera zone the line reports on, its counter).
    lines: Vec<(usize, String, LineCounter)>,
    /// People's crossings within the flow window: (when, zone index, direction).
    recent: VecDeque<(DateTime<Utc>, usize, Direction)>,
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
        }
    }

    /// Tracks one frame's detections at `now`; returns the tracked objects as detections for the zones to count.
    pub fn frame(&mut self, dets: &[Detection], now: DateTime<Utc>, source: &str) -> Vec<Detection> {
        self.tracker.update(dets);
        for (zone, id, line) in &mut self.lines {
            for c in line.update(self.tracker.tracked(self.max_missed)) {
                tracing::debug!(source, line = %id, track = c.track, class = ?c.class, direction = ?c.direction, "line crossing");
                if c.class == Class::Person {
                    self.recent.push_back((now, *zone, c.direction));
                }
            }
        }
        self.forget(now);
        self.tracker
            .tracked(self.max_missed)
            .map(|t| {
                let b = t.bbox();
                Detection { class: t.class, raw_class: 0, score: t.score, x1: b[0], y1: b[1], x2: b[2], y2: b[3] }
            })
            .collect()
    }

    fn forget(&mut self, now: DateTime<Utc>) {
        let since = now - Duration::seconds(FLOW_WINDOW_S);
        while self.recent.front().is_some_and(|(t, _, _)| *t < since) {
            self.recent.pop_front();
        }
    }

    /// People in and out per minute through the line on camera zone `zone` over the last minute (`None`: no line).
    pub fn flows(&mut self, zone: usize, now: DateTime<Utc>) -> Option<(f64, f64)> {
        if !self.lines.iter().any(|(z, _, _)| *z == zone) {
            return None;
        }
        self.forget(now);
        let count = |d: Direction| self.recent.iter().filter(|(_, z, x)| *z == zone && *x == d).count() as f64;
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
