//! Camera and drone vision: frames → person/vehicle detections → per-zone counts and density.
//!
//! Layout (pure, synchronous modules first; OpenCV and ONNX Runtime only where named):
//! - [`geometry`]: point in polygon, shoelace area, image → ground homography.
//! - [`detect`]: detections, class map, class-wise NMS, letterbox transform.
//! - [`decode`]: model outputs → detections (NanoDet GFL, YOLOv8 `[1, 4+C, N]`, TF SSD).
//! - [`tiles`]: sliced inference grid and merge.
//! - [`zones`]: per-zone counts by the bottom-centre point, smoothing, people–vehicle conflict.
//! - [`georef`]: a camera's ground frame on the map; each image zone measured against its site zone.
//! - [`drone`]: telemetry sidecar, ground footprint, zone intersection.
//! - [`preprocess`]: resized pixels → model input tensors.
//! - [`manifest`]: `models/manifest.toml` and the sha256 check.
//! - [`runtime`]: finding and loading `libonnxruntime.so` (ONNX Runtime).
//! - [`model`]: the [`model::Detector`] (ONNX Runtime session + OpenCV resize), blocking.
//! - [`self_check`]: the known image a model pushed from the centre must pass before a camera uses it.
//! - [`pool`]: several frames in flight (one session per worker thread, weights shared), results in order.
//! - [`capture`]: OpenCV capture thread (files, RTSP, HTTP MJPEG, snapshot folders) with reconnect,
//!   frame-rate cap and a drop-oldest frame slot.
//! - [`eval`]: a detector measured against a labelled set (count error per threshold, P/R, AP50).
//! - [`evidence`]: privacy-preserving evidence snapshots (every person blurred, size-limited).

pub mod capture;
pub mod decode;
pub mod detect;
pub mod drone;
pub mod eval;
pub mod evidence;
pub mod geometry;
pub mod georef;
pub mod manifest;
pub mod model;
pub mod pool;
pub mod preprocess;
pub mod runtime;
pub mod self_check;
pub mod tiles;
pub mod track;
pub mod zones;
