//! Camera settings from the centre: detector thresholds, NMS IoU, a model of the centre's pool and the image
//! geometry (calibration, zones, counting lines), changed from the engineer's console while the edge runs.
//!
//! The centre keeps each edge's settings retained on `{prefix}/{site}/edge/{edge}/settings`, signed with the
//! edge's credential ([`crowdgrid_proto::tuning`]). [`listen`] takes them only when the signature is the
//! centre's, fetches an assigned model over HTTP from the centre ([`fetch`]: sha256 checked while it streams in,
//! kept in a cache beside the queue), and hands each camera a [`Retune`]. The camera's pipeline
//! (`source::vision_run`) applies a threshold at once; a new model or IoU is loaded in fresh sessions on a side
//! thread while the old ones keep counting, must pass [`crate::vision::self_check`], and only then replaces
//! them. Either way the camera's entry in the retained status says which settings version it now runs, or why it
//! refused one.

pub mod config;
pub mod fetch;
pub mod listen;

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use crate::vision::manifest::ModelSpec;

/// What a camera is told to change to. A `None` threshold or IoU: the edge file's own.
#[derive(Debug, Clone)]
pub struct Retune {
    /// The centre's settings version (0: back to the edge file's settings).
    pub version: i64,
    /// Person threshold.
    pub person_threshold: Option<f32>,
    /// Vehicle threshold.
    pub vehicle_threshold: Option<f32>,
    /// NMS IoU.
    pub nms_iou: Option<f32>,
    /// The model.
    pub model: ModelChange,
    /// Calibration, image zones and lines (`None`: the edge file's).
    pub geometry: Option<crowdgrid_proto::geometry::CameraGeometry>,
}

/// Which model a [`Retune`] asks for.
#[derive(Debug, Clone)]
pub enum ModelChange {
    /// The one the edge file names.
    Configured,
    /// A model of the centre's pool, fetched and sha256-checked (`spec.file` is the cached file).
    Pool(Box<ModelSpec>),
    /// The settings could not be taken before reaching the camera (a download failed, a bad value): why.
    Refused(String),
}

/// Camera id → (source id, where its pipeline takes retunes).
type Cameras = BTreeMap<String, (String, Sender<Retune>)>;

/// Where cameras register for settings, by camera id (the `id` in the edge file); cloned into every source
/// context.
#[derive(Debug, Clone, Default)]
pub struct TuningHub {
    cameras: Arc<Mutex<Cameras>>,
}

impl TuningHub {
    /// Camera `id` (source id `source_id`) takes settings through `tx`.
    pub fn register(&self, id: &str, source_id: &str, tx: Sender<Retune>) {
        self.lock().insert(id.to_string(), (source_id.to_string(), tx));
    }

    /// True when no camera takes settings.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Camera ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// The cameras' source ids (`{edge}/{id}`), in id order.
    pub fn source_ids(&self) -> Vec<String> {
        self.lock().values().map(|(s, _)| s.clone()).collect()
    }

    /// Sends `r` to camera `id`; its source id, or `None` if no running camera has that id.
    pub fn send(&self, id: &str, r: Retune) -> Option<String> {
        let map = self.lock();
        let (source_id, tx) = map.get(id)?;
        tx.send(r).ok().map(|()| source_id.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cameras> {
        self.cameras.lock().unwrap_or_else(|e| e.into_inner())
    }
}
