//! Camera and drone vision: frames → person/vehicle detections → per-zone counts and density.
//!
//! Layout (pure, synchronous modules first; OpenCV and ONNX Runtime only where named, and only with the `vision`
//! feature: without it the edge still reads, checks and geo-references camera configs, tracks and counts lines,
//! but cannot capture or detect):
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
//! - [`source_config`]: what `video = {...}` and `model = {...}` say (no OpenCV, no ONNX Runtime).

pub mod decode;
pub mod detect;
pub mod drone;
pub mod eval;
pub mod geometry;
pub mod georef;
pub mod manifest;
pub mod preprocess;
pub mod source_config;
pub mod tiles;
pub mod track;
pub mod zones;

#[cfg(feature = "vision")]
pub mod capture;
#[cfg(feature = "vision")]
pub mod evidence;
#[cfg(feature = "vision")]
pub mod model;
#[cfg(feature = "vision")]
pub mod pool;
#[cfg(feature = "vision")]
pub mod runtime;
#[cfg(feature = "vision")]
pub mod self_check;
