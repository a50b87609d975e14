//! Per-zone counting for one camera: a detection belongs to the image zone containing its bottom-centre
//! point; counts are smoothed over a short window; the people–vehicle conflict is computed per frame.

use std::collections::VecDeque;

use super::detect::{Class, Detection};
use super::geometry::{contains, Point};

/// One image zone of a camera, mapped to a site zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageZone {
    /// Site zone id.
    pub zone: String,
    /// Polygon in image pixels.
    pub polygon: Vec<Point>,
    /// Vehicles belong here and people do not (a pick-up lane): every person in it is a conflict.
    pub vehicle_lane: bool,
    /// Ground area in m² (from the camera's homography).
    pub area_m2: f64,
}

/// One frame's counts in one zone.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ZoneCounts {
    /// People whose feet are in the zone.
    pub person: f64,
    /// Vehicles whose bottom-centre is in the zone.
    pub vehicle: f64,
    /// People–vehicle conflict: people in a vehicle lane, or `min(person, vehicle)` elsewhere (both
    /// present in the same zone at the same moment).
    pub conflict: f64,
}

/// How far up a foot that falls in no zone is looked at again, px: a person cut off by the bottom of the frame
/// has the box's bottom (their "feet") exactly on the frame's edge, which is also the bottom edge of a zone drawn
/// down to it, and a point on a polygon's lower edge is outside it.
const EDGE_NUDGE_PX: f64 = 0.5;

/// Where a detection stands for zone membership: its bottom-centre, or half a pixel above when that is in no
/// zone (so a foot on the frame's bottom edge counts in the zone just above it, and nothing counts twice).
pub fn standing_point(zones: &[ImageZone], d: &Detection) -> Point {
    let foot = d.foot();
    if zones.iter().any(|z| contains(&z.polygon, foot)) {
        foot
    } else {
        [foot[0], foot[1] - EDGE_NUDGE_PX]
    }
}

/// Counts one frame's detections in each zone (same order as `zones`).
pub fn count(zones: &[ImageZone], dets: &[Detection]) -> Vec<ZoneCounts> {
    let standing: Vec<(Class, Point)> = dets.iter().map(|d| (d.class, standing_point(zones, d))).collect();
    zones
        .iter()
        .map(|z| {
            let mut c = ZoneCounts::default();
            for (class, _) in standing.iter().filter(|(_, p)| contains(&z.polygon, *p)) {
                match class {
                    Class::Person => c.person += 1.0,
                    Class::Vehicle => c.vehicle += 1.0,
                }
            }
            c.conflict = if z.vehicle_lane { c.person } else { c.person.min(c.vehicle) };
            c
        })
        .collect()
}

/// Moving average of the last `window` frames' counts per zone.
#[derive(Debug, Clone)]
pub struct Smoother {
    window: usize,
    history: VecDeque<Vec<ZoneCounts>>,
}

impl Smoother {
    /// A smoother over `window` frames (at least 1).
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1), history: VecDeque::new() }
    }

    /// Adds one frame's counts.
    pub fn push(&mut self, frame: Vec<ZoneCounts>) {
        if self.history.len() == self.window {
            self.history.pop_front();
        }
        self.history.push_back(frame);
    }

    /// The mean per zone over the window, `None` before the first frame.
    pub fn mean(&self) -> Option<Vec<ZoneCounts>> {
        let first = self.history.front()?;
        let n = self.history.len() as f64;
        let mut sum = vec![ZoneCounts::default(); first.len()];
        for frame in &self.history {
            for (s, c) in sum.iter_mut().zip(frame) {
                s.person += c.person;
                s.vehicle += c.vehicle;
                s.conflict += c.conflict;
            }
        }
        Some(
            sum.into_iter()
                .map(|s| ZoneCounts { person: s.person / n, vehicle: s.vehicle / n, conflict: s.conflict / n })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: Class, x: f32, foot_y: f32) -> Detection {
        Detection { class, raw_class: 0, score: 0.9, x1: x - 5.0, y1: foot_y - 30.0, x2: x + 5.0, y2: foot_y }
    }

    fn zones() -> Vec<ImageZone> {
        vec![
            ImageZone {
                zone: "plaza".into(),
                polygon: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]],
                vehicle_lane: false,
                area_m2: 50.0,
            },
            ImageZone {
                zone: "lane".into(),
                polygon: vec![[0.0, 100.0], [100.0, 100.0], [100.0, 140.0], [0.0, 140.0]],
                vehicle_lane: true,
                area_m2: 20.0,
            },
        ]
    }

    #[test]
    fn membership_is_by_the_feet() {
        // A tall person whose head is in the plaza but whose feet are in the lane counts in the lane.
        let dets = [
            det(Class::Person, 50.0, 90.0),
            det(Class::Person, 20.0, 120.0),
            det(Class::Vehicle, 70.0, 95.0),
            det(Class::Person, 50.0, 200.0),
        ];
        let c = count(&zones(), &dets);
        assert_eq!(c[0], ZoneCounts { person: 1.0, vehicle: 1.0, conflict: 1.0 });
        assert_eq!(c[1], ZoneCounts { person: 1.0, vehicle: 0.0, conflict: 1.0 }, "a person in the lane is a conflict");
        let c = count(
            &zones(),
            &[det(Class::Vehicle, 50.0, 120.0), det(Class::Person, 10.0, 50.0), det(Class::Person, 30.0, 50.0)],
        );
        assert_eq!(c[0].conflict, 0.0, "people without a vehicle are no conflict");
        assert_eq!(c[1], ZoneCounts { person: 0.0, vehicle: 1.0, conflict: 0.0 });
    }

    #[test]
    fn a_foot_on_the_frame_edge_counts_in_the_zone_above_and_once_on_a_shared_edge() {
        // The lane is drawn down to the bottom of a 140 px frame; a person cut off there has y2 = 140.
        let c = count(&zones(), &[det(Class::Person, 50.0, 140.0)]);
        assert_eq!((c[0].person, c[1].person), (0.0, 1.0), "on main it fell in no zone");
        // A foot exactly on the plaza/lane boundary (y = 100) counts once, in the lane.
        let c = count(&zones(), &[det(Class::Person, 50.0, 100.0)]);
        assert_eq!((c[0].person, c[1].person), (0.0, 1.0));
        // Below the frame's zones by more than the nudge: nowhere.
        let c = count(&zones(), &[det(Class::Person, 50.0, 141.0)]);
        assert_eq!((c[0].person, c[1].person), (0.0, 0.0));
    }

    #[test]
    fn smoothing_window_averages_and_forgets() {
        let mut s = Smoother::new(3);
        assert!(s.mean().is_none());
        for p in [3.0, 6.0, 9.0, 12.0] {
            s.push(vec![ZoneCounts { person: p, vehicle: 1.0, conflict: 0.0 }]);
        }
        let m = s.mean().unwrap();
        assert_eq!(m[0].person, 9.0, "mean of 6, 9, 12: the first frame left the window");
        assert_eq!(m[0].vehicle, 1.0);
    }
}
