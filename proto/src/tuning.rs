//! Camera settings pushed from the centre: per camera, the detector's confidence thresholds and NMS IoU, the
//! model version from the centre's model pool and the image geometry drawn on the camera's view
//! ([`crate::geometry`]), retained on `{prefix}/{site}/edge/{edge}/settings` and signed by the centre with that
//! edge's credential (as commit acknowledgements are), so only the centre can retune an edge. The edge applies
//! what it can and says in its retained status ([`crate::ModelInfo`]) which settings version each camera now
//! runs, or why it refused one.
//!
//! A field left out means "as the edge's own config says", so clearing a setting hands it back to the file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::geometry::CameraGeometry;

/// Everything the centre wants of one edge's cameras.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSettings {
    /// Per camera (the camera's `id` in the edge file).
    pub cameras: BTreeMap<String, CameraSettings>,
}

/// One camera's settings version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSettings {
    /// Settings version (increasing; the audit record at the centre).
    pub version: i64,
    /// Minimum confidence for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_threshold: Option<f32>,
    /// Minimum confidence for a vehicle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_threshold: Option<f32>,
    /// NMS IoU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nms_iou: Option<f32>,
    /// A model of the centre's pool instead of the configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelAssignment>,
    /// Calibration, image zones and counting lines drawn at the centre, instead of the edge file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<CameraGeometry>,
}

/// A model the edge is to fetch from the centre, check and load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelAssignment {
    /// Name in the pool's manifest.
    pub name: String,
    /// Version tag.
    pub version: String,
    /// Lower-case hex sha256 of the file: the edge loads nothing else.
    pub sha256: String,
    /// Size of the file in bytes (the edge refuses a download that grows past it).
    pub bytes: u64,
    /// The manifest entry (layout, input, normalisation, classes), as in `models/manifest.toml`.
    pub spec: serde_json::Value,
}

/// Problems with a threshold or IoU setting (each 0.01..0.99 when set), by name: the centre checks what an
/// engineer submits with it and the edge what it receives.
pub fn value_problems(
    person_threshold: Option<f32>,
    vehicle_threshold: Option<f32>,
    nms_iou: Option<f32>,
) -> Vec<String> {
    [("person_threshold", person_threshold), ("vehicle_threshold", vehicle_threshold), ("nms_iou", nms_iou)]
        .into_iter()
        .filter_map(|(name, v)| {
            v.filter(|v| !(0.01..=0.99).contains(v)).map(|v| format!("{name} {v} is outside 0.01..0.99"))
        })
        .collect()
}

impl CameraSettings {
    /// Checks the values a centre or a forged message could get wrong; every problem listed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = value_problems(self.person_threshold, self.vehicle_threshold, self.nms_iou);
        if let Some(m) = &self.model {
            if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                out.push("model.sha256 is not 64 lower-case hex digits".into());
            }
        }
        if let Some(g) = &self.geometry {
            out.extend(g.problems().into_iter().map(|p| format!("geometry.{p}")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_named() {
        let s = CameraSettings {
            version: 1,
            person_threshold: Some(1.5),
            nms_iou: Some(f32::NAN),
            model: Some(ModelAssignment {
                name: "m".into(),
                version: "1".into(),
                sha256: "XYZ".into(),
                bytes: 1,
                spec: serde_json::json!({}),
            }),
            ..CameraSettings::default()
        };
        let p = s.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("person_threshold 1.5"));
        assert!(p[1].starts_with("nms_iou NaN"));
        assert!(CameraSettings { version: 2, person_threshold: Some(0.4), ..Default::default() }.problems().is_empty());
    }

    #[test]
    fn a_left_out_field_stays_out_on_the_wire() {
        let s = CameraSettings { version: 3, person_threshold: Some(0.4), ..Default::default() };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"version":3,"person_threshold":0.4}"#);
    }
}
