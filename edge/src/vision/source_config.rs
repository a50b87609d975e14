//! What a camera or drone source's `video = { ... }` and `model = { ... }` say, apart from the code that runs
//! them (OpenCV capture, ONNX Runtime sessions), so an edge built without the `vision` feature still reads and
//! checks every edge file and says clearly that it cannot run a camera.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where frames come from (`video = { kind = ..., ... }` on a camera or drone source).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VideoInput {
    /// A video file (any container/codec FFmpeg reads), relative to the edge file.
    File {
        /// The file.
        path: PathBuf,
        /// Start again at the end (demos, soak tests).
        #[serde(default)]
        r#loop: bool,
        /// Play at the file's own frame rate, as the camera it stands in for would deliver it (frames beyond
        /// `max_fps` are skipped, as on a live stream); `false` reads as fast as `max_fps` allows.
        #[serde(default = "yes")]
        realtime: bool,
    },
    /// An RTSP stream, e.g. `rtsp://10.0.0.7:554/stream1`.
    Rtsp {
        /// Stream URL.
        url: String,
    },
    /// An HTTP MJPEG stream, e.g. `http://10.0.0.8/mjpg/video.mjpg`.
    Http {
        /// Stream URL.
        url: String,
    },
    /// A folder of snapshot images (`.jpg`, `.jpeg`, `.png`, `.bmp`), read in name order.
    Folder {
        /// The folder, relative to the edge file.
        dir: PathBuf,
        /// Start again after the last image (otherwise wait for new ones).
        #[serde(default)]
        r#loop: bool,
    },
}

fn yes() -> bool {
    true
}

/// `model = { ... }` of a camera or drone source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The manifest, relative to the edge file.
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
    /// Model name in the manifest.
    #[serde(default = "default_model")]
    pub name: String,
    /// CPU threads for inference in total (split evenly across `workers`).
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Frames in flight: one ONNX Runtime session per worker thread, each with `threads / workers`
    /// intra-op threads, sharing their pre-packed weights (each keeps its own activation buffers, ~35 MB).
    /// 2 workers × 1 thread beats 1 × 2 on a 2-core edge box (see `bench/vision.rs`); 1 keeps memory lowest.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Minimum confidence for a person.
    #[serde(default = "default_person_threshold")]
    pub person_threshold: f32,
    /// Evidence snapshots blur every person box scoring at least this (well under `person_threshold`: better
    /// to blur a traffic cone than to leave a half-hidden face). Only used by cameras with `evidence`.
    #[serde(default = "default_privacy_threshold")]
    pub privacy_threshold: f32,
    /// Minimum confidence for a vehicle.
    #[serde(default = "default_vehicle_threshold")]
    pub vehicle_threshold: f32,
    /// IoU above which boxes of the same class are merged.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Explicit `libonnxruntime.so` (else searched; see `vision::runtime`).
    #[serde(default)]
    pub runtime_path: Option<PathBuf>,
    /// Letterbox to the smallest multiple-of-32 rectangle holding the frame (416×320 for a 4:3 camera)
    /// instead of the full square, when the manifest says the model takes any height and width
    /// (`dynamic_hw`). Same weights and scale, a quarter less work for a 4:3 frame.
    #[serde(default = "default_true")]
    pub fit_input: bool,
    /// Sliced inference for wide or drone frames.
    #[serde(default)]
    pub slicing: Option<SlicingConfig>,
}

/// `model.slicing`: run the model on overlapping tiles and merge.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlicingConfig {
    /// Tile side in frame pixels.
    #[serde(default = "default_tile")]
    pub tile: u32,
    /// Overlap between neighbouring tiles, as a fraction of the tile (0..0.9).
    #[serde(default = "default_overlap")]
    pub overlap: f32,
    /// Also run once on the whole frame (finds the large, near objects a tile cuts in two).
    #[serde(default = "default_true")]
    pub full_frame: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            manifest: default_manifest(),
            name: default_model(),
            threads: default_threads(),
            workers: default_workers(),
            person_threshold: default_person_threshold(),
            privacy_threshold: default_privacy_threshold(),
            vehicle_threshold: default_vehicle_threshold(),
            nms_iou: default_nms_iou(),
            runtime_path: None,
            fit_input: true,
            slicing: None,
        }
    }
}

fn default_manifest() -> PathBuf {
    "../../models/manifest.toml".into()
}
fn default_model() -> String {
    "nanodet-g-coco".into()
}
fn default_threads() -> usize {
    2
}
fn default_workers() -> usize {
    1
}
fn default_person_threshold() -> f32 {
    0.45
}
fn default_privacy_threshold() -> f32 {
    0.2
}
fn default_vehicle_threshold() -> f32 {
    0.4
}
fn default_nms_iou() -> f32 {
    0.6
}
fn default_tile() -> u32 {
    640
}
fn default_overlap() -> f32 {
    0.2
}
fn default_true() -> bool {
    true
}
