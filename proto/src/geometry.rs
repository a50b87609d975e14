//! A camera's image geometry: the calibration (image points ↔ ground points, optionally placed on the map), the
//! image zones it counts in and the counting lines of its tracker. Written in the edge file, or drawn by an
//! engineer on the camera's latest snapshot ([`CameraView`]) and pushed by the centre inside the camera's
//! settings ([`crate::tuning::CameraSettings::geometry`]), so both sides read one definition.
//!
//! [`CameraGeometry::problems`] checks only what needs no site and no homography (sizes, numbers, names); the
//! edge crate's `validate_geometry` adds the rest (zones known to the site, a calibration that fits, image
//! zones that lie on their site zone) and is run by the centre before it stores a change and by the edge before
//! it applies one.

use serde::{Deserialize, Serialize};

use crate::config::{check_id, Problems};

/// A pixel or ground point `[x, y]`.
pub type Point = [f64; 2];

/// Image → ground calibration: 4 or more image points (pixels) and where they are on the ground (metres,
/// any local x/y frame, e.g. paced out or from a site plan), optionally placed on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Image points `[x, y]` in pixels.
    pub image: Vec<Point>,
    /// The same points on the ground `[x, y]` in metres.
    pub ground: Vec<Point>,
    /// Where the ground frame's `(0, 0)` is, `[longitude, latitude]` (WGS84). With `bearing_deg`, every image
    /// zone is mapped onto the site and checked against the zone it reports for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<[f64; 2]>,
    /// Bearing of the ground frame's x axis, degrees clockwise from north (y is 90° anticlockwise from x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearing_deg: Option<f64>,
}

/// One image zone of a camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraZone {
    /// Site zone id it reports as.
    pub zone: String,
    /// Polygon `[[x, y], ...]` in image pixels (3 or more points).
    pub polygon: Vec<Point>,
    /// People in it are a conflict (a vehicle lane). Default: the site zone's kind is `vehicle_lane`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_lane: Option<bool>,
}

/// A counting line in image pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Name (unique on the camera).
    pub id: String,
    /// The camera zone whose readings carry this line's `inflow_per_min` (`in`) and `outflow_per_min` (`out`).
    pub zone: String,
    /// One end, [x, y] pixels.
    pub from: [f64; 2],
    /// The other end; `in` is crossing into the right-hand side looking from `from` to `to` on the image.
    pub to: [f64; 2],
}

/// Everything drawn on one camera's image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraGeometry {
    /// Image → ground.
    pub calibration: Calibration,
    /// Image zones.
    pub zones: Vec<CameraZone>,
    /// Counting lines (counted only on a camera with `tracking`).
    #[serde(default)]
    pub lines: Vec<LineConfig>,
}

/// Most image zones on one camera.
pub const MAX_ZONES: usize = 32;
/// Most counting lines on one camera.
pub const MAX_LINES: usize = 16;
/// Most points in a polygon or a calibration.
pub const MAX_POINTS: usize = 64;
/// Largest pixel coordinate (a 16K frame).
pub const MAX_PIXEL: f64 = 16_384.0;

impl CameraGeometry {
    /// What is wrong without a site or a homography: counts, numbers, names. Every problem, by path.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Problems::new();
        let pixel = |q: &Point| q.iter().all(|v| v.is_finite() && (0.0..=MAX_PIXEL).contains(v));
        let c = &self.calibration;
        if c.image.len() != c.ground.len() || !(4..=MAX_POINTS).contains(&c.image.len()) {
            let (i, g) = (c.image.len(), c.ground.len());
            p.push("calibration", format!("{i} image and {g} ground points; need the same number, 4 to {MAX_POINTS}"));
        }
        if !c.image.iter().all(pixel) {
            p.push("calibration.image", format!("every point must be a pixel in 0..={MAX_PIXEL}"));
        }
        if !c.ground.iter().flatten().all(|v| v.is_finite() && v.abs() <= 100_000.0) {
            p.push("calibration.ground", "every point must be metres within ±100 km");
        }
        if !(1..=MAX_ZONES).contains(&self.zones.len()) {
            p.push("zones", format!("{} zones; need 1 to {MAX_ZONES}", self.zones.len()));
        }
        for (i, z) in self.zones.iter().enumerate() {
            check_id(&mut p, format!("zones[{i}].zone"), &z.zone);
            if !(3..=MAX_POINTS).contains(&z.polygon.len()) || !z.polygon.iter().all(pixel) {
                p.push(format!("zones[{i}].polygon"), format!("need 3 to {MAX_POINTS} pixels in 0..={MAX_PIXEL}"));
            }
        }
        if self.lines.len() > MAX_LINES {
            p.push("lines", format!("{} lines; at most {MAX_LINES}", self.lines.len()));
        }
        for (i, l) in self.lines.iter().enumerate() {
            check_id(&mut p, format!("lines[{i}].id"), &l.id);
            if !pixel(&l.from) || !pixel(&l.to) {
                p.push(format!("lines[{i}]"), format!("from and to must be pixels in 0..={MAX_PIXEL}"));
            }
        }
        p.items().to_vec()
    }
}

/// What a camera looks like now, for drawing its geometry: its latest analysed frame with every person blurred,
/// and the geometry it counts with. Published retained on `{prefix}/{site}/edge/{edge}/view/{camera}`, signed by
/// the edge, only by cameras that opted in to snapshots (`evidence`): at the first frame, after each geometry
/// change and every 10 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraView {
    /// The camera's id in the edge file.
    pub camera: String,
    /// When the frame was analysed.
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// Frame width in pixels (the geometry's coordinates are in this frame).
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// The centre's settings version the camera runs (none: the edge file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_version: Option<i64>,
    /// The geometry it counts with now.
    pub geometry: CameraGeometry,
    /// The JPEG, base64 (standard alphabet, padded).
    pub jpeg: String,
}

/// Largest view message (a 512 KiB JPEG in base64 and its geometry).
pub const MAX_VIEW_BYTES: usize = 768 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::camera_geometry as geometry;

    #[test]
    fn a_drawn_geometry_passes_and_every_structural_problem_is_named() {
        assert!(geometry().problems().is_empty(), "{:?}", geometry().problems());
        let mut g = geometry();
        g.calibration.ground.pop();
        g.zones[0].zone = "Gate Plaza".into();
        g.zones[0].polygon = vec![[0.0, 0.0], [f64::NAN, 1.0]];
        g.lines[0].to = [-1.0, 5.0];
        let line = g.lines[0].clone();
        g.lines.extend((0..MAX_LINES).map(|_| line.clone()));
        let p = g.problems();
        for want in ["calibration:", "zones[0].zone", "zones[0].polygon", "lines[0]:", "lines: 17"] {
            assert!(p.iter().any(|x| x.starts_with(want)), "{want} missing from {p:?}");
        }
        g.zones.clear();
        assert!(g.problems().iter().any(|x| x.starts_with("zones: 0")));
    }

    #[test]
    fn unknown_fields_are_refused_and_left_out_options_stay_out() {
        let text = serde_json::to_string(&geometry()).unwrap();
        assert!(!text.contains("origin") && !text.contains("vehicle_lane"), "{text}");
        assert_eq!(serde_json::from_str::<CameraGeometry>(&text).unwrap(), geometry());
        let evil = text.replacen("\"zones\"", "\"script\":1,\"zones\"", 1);
        assert!(serde_json::from_str::<CameraGeometry>(&evil).is_err());
    }
}
