//! `[sources.tracking]` of a camera: track people and vehicles across frames (steadier counts: someone the
//! detector misses for a frame or two stays counted) and count them through lines drawn on the image.
//!
//! ```toml
//! [sources.tracking]
//! max_missed = 2                 # frames a tracked object stays counted after the detector last saw it
//! conflict_after_s = 2.0         # a person in a vehicle lane this long is a people–vehicle conflict
//! [[sources.tracking.lines]]
//! id = "school-gate"
//! zone = "gate-plaza"            # one of this camera's zones: its readings carry the line's flows
//! from = [300, 576]              # image pixels; `in` is crossing to the right-hand side of from → to
//! to = [300, 125]
//! ```

use serde::{Deserialize, Serialize};

use super::vision::CameraZone;
use crowdgrid_proto::config::Problems;

/// Tracking on a camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// Frames a tracked object stays counted after its last detection (0..=30).
    #[serde(default = "default_max_missed")]
    pub max_missed: u32,
    /// Counting lines.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Seconds a tracked person must stay in a vehicle lane before they count as a people–vehicle conflict
    /// (someone crossing the lane in a second is not one; someone waiting in it is).
    #[serde(default = "default_conflict_after_s")]
    pub conflict_after_s: f64,
}

fn default_max_missed() -> u32 {
    2
}

fn default_conflict_after_s() -> f64 {
    2.0
}

pub use crowdgrid_proto::geometry::LineConfig;

/// Every problem of a camera's tracking section but its lines ([`validate_lines`]), at `path`.
pub fn validate(t: &TrackingConfig, path: &str, p: &mut Problems) {
    if t.max_missed > 30 {
        p.push(format!("{path}.max_missed"), "must be at most 30 frames");
    }
    if !(0.0..=60.0).contains(&t.conflict_after_s) {
        p.push(format!("{path}.conflict_after_s"), "must be 0 to 60 seconds");
    }
}

/// Every problem of a camera's counting lines against its image zones, at `path` (`….tracking`).
pub fn validate_lines(lines: &[LineConfig], zones: &[CameraZone], path: &str, p: &mut Problems) {
    let mut ids = std::collections::HashSet::new();
    let mut zones_with_lines = std::collections::HashSet::new();
    for (i, l) in lines.iter().enumerate() {
        let lp = format!("{path}.lines[{i}]");
        if l.id.is_empty() || !ids.insert(&l.id) {
            p.push(format!("{lp}.id"), format!("{:?} is empty or used twice", l.id));
        }
        if !zones.iter().any(|z| z.zone == l.zone) {
            p.push(format!("{lp}.zone"), format!("{:?} is not one of this camera's zones", l.zone));
        } else if !zones_with_lines.insert(&l.zone) {
            p.push(
                format!("{lp}.zone"),
                format!("zone {:?} already has a line (a reading carries one inflow)", l.zone),
            );
        }
        let pts = [l.from, l.to];
        if pts.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            p.push(lp.clone(), "from and to need non-negative pixel coordinates");
        } else if (l.from[0] - l.to[0]).hypot(l.from[1] - l.to[1]) < 10.0 {
            p.push(lp.clone(), "from and to must be at least 10 px apart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_tracking_section_is_reported() {
        let zones: Vec<CameraZone> = toml::from_str::<std::collections::HashMap<String, Vec<CameraZone>>>(
            "z = [{ zone = \"plaza\", polygon = [[0,0],[10,0],[10,10]] }]",
        )
        .unwrap()
        .remove("z")
        .unwrap();
        let t: TrackingConfig = toml::from_str(
            r#"
            max_missed = 99
            [[lines]]
            id = "a"
            zone = "plaza"
            from = [0, 0]
            to = [3, 3]
            [[lines]]
            id = "a"
            zone = "nowhere"
            from = [-1, 0]
            to = [100, 100]
            "#,
        )
        .unwrap();
        let mut p = Problems::default();
        validate(&t, "sources[0].tracking", &mut p);
        validate_lines(&t.lines, &zones, "sources[0].tracking", &mut p);
        let text = format!("{p:?}");
        for want in ["max_missed", "lines[0]", "lines[1].id", "lines[1].zone", "non-negative"] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
        assert!(toml::from_str::<TrackingConfig>("speed = 1").is_err(), "unknown keys are refused");
    }
}
