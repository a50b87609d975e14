//! The trend behind the predictive early warning: a least-squares slope of density over the recent window,
//! and the estimated time until the warning level is reached.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// At most this many points are kept per window (closer points replace the newest one), so a fit is O(64).
const MAX_POINTS: i32 = 64;

/// Recent (time, density) points of one zone, times in Unix milliseconds (a fit runs for every reading of a zone
/// with a predictive rule: plain integers keep it cheap).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    points: VecDeque<(i64, f64)>,
}

impl Trend {
    /// Adds a point and forgets those older than `window`. Out-of-order points are ignored.
    pub fn push(&mut self, ts: DateTime<Utc>, value: f64, window: Duration) {
        let ts = ts.timestamp_millis();
        if !value.is_finite() || self.points.back().is_some_and(|(t, _)| ts < *t) {
            return;
        }
        let (window, gap) = (window.num_milliseconds(), (window / MAX_POINTS).num_milliseconds());
        let n = self.points.len();
        match self.points.get(n.wrapping_sub(2)) {
            Some((prev, _)) if n >= 2 && ts - *prev < gap => {
                if let Some(last) = self.points.back_mut() {
                    *last = (ts, value);
                }
            }
            _ => self.points.push_back((ts, value)),
        }
        while self.points.front().is_some_and(|(t, _)| ts - *t > window) {
            self.points.pop_front();
        }
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no point is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Least-squares slope in units per second, once `min_points` points span some time (one pass; times relative
    /// to the first point, in seconds).
    pub fn slope_per_s(&self, min_points: usize) -> Option<f64> {
        let (t0, _) = *self.points.front()?;
        if self.points.len() < min_points.max(2) {
            return None;
        }
        let n = self.points.len() as f64;
        let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
        for &(t, y) in &self.points {
            let x = (t - t0) as f64 / 1000.0;
            sx += x;
            sy += y;
            sxy += x * y;
            sxx += x * x;
        }
        let den = n * sxx - sx * sx;
        (den > 1e-9 * n * n).then(|| (n * sxy - sx * sy) / den)
    }
}

/// Seconds until `value` reaches `target` at `slope` per second; `None` when not rising or already there.
pub fn eta_s(value: f64, target: f64, slope: f64) -> Option<f64> {
    (slope > 0.0 && value < target).then(|| (target - value) / slope)
}

/// `warning in ~N min` (at least 1).
pub fn describe_eta(eta_s: f64) -> String {
    format!("warning in ~{} min", ((eta_s / 60.0).round() as i64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
    }

    #[test]
    fn slope_of_a_straight_line_and_its_eta() {
        let mut tr = Trend::default();
        let w = Duration::seconds(600);
        // 1.0, 1.3, 1.6, 1.9, 2.2 people/m² one minute apart: 0.3 per minute = 0.005 per second.
        for i in 0..5 {
            tr.push(t(i * 60), 1.0 + 0.3 * i as f64, w);
        }
        let s = tr.slope_per_s(5).unwrap();
        assert!((s - 0.005).abs() < 1e-12, "{s}");
        // (3.6 − 2.2) / 0.005 = 280 s ≈ 5 min.
        let eta = eta_s(2.2, 3.6, s).unwrap();
        assert!((eta - 280.0).abs() < 1e-6, "{eta}");
        assert_eq!(describe_eta(eta), "warning in ~5 min");
        assert_eq!(eta_s(3.7, 3.6, s), None, "already there");
        assert_eq!(eta_s(2.0, 3.6, -0.1), None, "falling");
    }

    #[test]
    fn window_forgets_old_points_and_caps_their_number() {
        let mut tr = Trend::default();
        let w = Duration::seconds(600);
        for i in 0..10_000 {
            tr.push(t(i), 1.0, w);
        }
        assert!(tr.len() <= 70, "{}", tr.len());
        let flat = |tr: &Trend| tr.slope_per_s(5).is_some_and(|s| s.abs() < 1e-12);
        assert!(flat(&tr));
        tr.push(t(5), 9.0, w);
        assert!(flat(&tr), "out-of-order points are ignored");
        let mut few = Trend::default();
        few.push(t(0), 1.0, w);
        few.push(t(60), 2.0, w);
        assert_eq!(few.slope_per_s(5), None, "too few points");
    }
}
