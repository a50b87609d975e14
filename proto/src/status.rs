//! The edge status message: retained on `{prefix}/{site}/edge/{edge}/status`, refreshed periodically,
//! and replaced by the broker with an `offline` Last Will when the edge drops.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether an edge is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeState {
    /// Connected and publishing.
    Online,
    /// Disconnected (Last Will or clean shutdown).
    Offline,
}

/// Health of one source on an edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceHealth {
    /// Source id as configured.
    pub id: String,
    /// Source kind (`base_station`, `gate`, ...).
    pub kind: String,
    /// When it last produced a good estimate.
    #[serde(default)]
    pub last_ok: Option<DateTime<Utc>>,
    /// Records accepted since start.
    #[serde(default)]
    pub accepted: u64,
    /// Records rejected since start, by reason.
    #[serde(default)]
    pub rejected: BTreeMap<String, u64>,
    /// The last error, if any.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// A model deployed on an edge, as loaded (its sha256 was checked against the manifest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name in the manifest.
    pub name: String,
    /// Model version.
    pub version: String,
    /// sha256 of the model file.
    pub sha256: String,
    /// Source id using it.
    pub source: String,
    /// The centre's settings version this camera runs ([`crate::tuning::CameraSettings::version`]); none: the
    /// edge file's own settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_version: Option<i64>,
    /// Person threshold in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_threshold: Option<f32>,
    /// Vehicle threshold in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vehicle_threshold: Option<f32>,
    /// NMS IoU in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nms_iou: Option<f32>,
    /// The last settings version refused and why (the camera keeps what it ran before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The retained status of one edge agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeStatus {
    /// Edge id.
    pub edge_id: String,
    /// Site it serves.
    pub site: String,
    /// Online or offline.
    pub state: EdgeState,
    /// When this status was produced.
    pub ts: DateTime<Utc>,
    /// Agent version.
    #[serde(default)]
    pub version: String,
    /// Readings waiting in the store-and-forward queue.
    #[serde(default)]
    pub queue_depth: u64,
    /// Readings dropped by the queue's overflow policy since start.
    #[serde(default)]
    pub queue_dropped: u64,
    /// Per-source health.
    #[serde(default)]
    pub sources: Vec<SourceHealth>,
    /// Models loaded by the edge's vision sources.
    #[serde(default)]
    pub models: Vec<ModelInfo>,
    /// Readings sent again because the centre did not acknowledge them in time, since start.
    #[serde(default)]
    pub resent: u64,
    /// Commit acknowledgements refused (unsigned, wrong signer or key, malformed), since start.
    #[serde(default)]
    pub acks_refused: u64,
}

impl EdgeStatus {
    /// The Last Will: the broker publishes it when the edge vanishes.
    pub fn offline(edge_id: &str, site: &str) -> Self {
        Self {
            edge_id: edge_id.to_string(),
            site: site.to_string(),
            state: EdgeState::Offline,
            ts: Utc::now(),
            version: String::new(),
            queue_depth: 0,
            queue_dropped: 0,
            sources: Vec::new(),
            models: Vec::new(),
            resent: 0,
            acks_refused: 0,
        }
    }
}
