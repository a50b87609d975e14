//! Test fixtures shared by the crates' unit tests (not part of the wire format or the config API).

/// The head of a test site file: `id = "{id}"`, UTC+8, and the one-of-each hierarchy sub-district `sd` →
/// community `c` → comprehensive grid `g`. Append `[[workers]]` (of grid `g`) and `[[zones]]` tables.
pub fn site_head(id: &str) -> String {
    format!(
        r#"
id = "{id}"
name = "Test"
utc_offset_minutes = 480
[[subdistricts]]
id = "sd"
name = "SD"
[[communities]]
id = "c"
name = "C"
subdistrict = "sd"
[[grids]]
id = "g"
name = "G"
community = "c"
kind = "comprehensive"
"#
    )
}

/// A ~100 m × 100 m square at the equator (10,000 m² within 0.2 %), as an inline GeoJSON polygon.
pub const SQUARE: &str = r#"{ type = "Polygon", coordinates = [[[0.0, 0.0], [0.000898315, 0.0], [0.000898315, 0.000904369], [0.0, 0.000904369], [0.0, 0.0]]] }"#;

/// A camera geometry on Boai's 768×576 gate camera: a four-point calibration, the gate plaza, and a gate line.
pub fn camera_geometry() -> crate::geometry::CameraGeometry {
    use crate::geometry::{Calibration, CameraGeometry, CameraZone, LineConfig};
    CameraGeometry {
        calibration: Calibration {
            image: vec![[0.0, 576.0], [768.0, 576.0], [700.0, 180.0], [60.0, 180.0]],
            ground: vec![[0.0, 0.0], [22.0, 0.0], [30.0, 35.0], [-8.0, 35.0]],
            origin: None,
            bearing_deg: None,
        },
        zones: vec![CameraZone {
            zone: "gate-plaza".into(),
            polygon: vec![[0.0, 140.0], [560.0, 110.0], [560.0, 576.0]],
            vehicle_lane: None,
        }],
        lines: vec![LineConfig {
            id: "gate".into(),
            zone: "gate-plaza".into(),
            from: [300.0, 500.0],
            to: [300.0, 120.0],
        }],
    }
}
