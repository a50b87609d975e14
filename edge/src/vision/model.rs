//! The detector: an ONNX Runtime session for one manifest model, run on whole frames or on tiles.
//! Synchronous and blocking: callers run it on a dedicated thread, never on the async runtime.

use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;
use ort::value::{Tensor, TensorRef};

use super::decode::{self, GflLevel};
use super::detect::{nms, ClassMap, Detection, Letterbox};
use super::manifest::{read_verified, Layout, Manifest, ManifestError, ModelSpec};
use super::runtime::{self, RuntimeError};
use super::tiles;

pub use super::source_config::{ModelConfig, SlicingConfig};

/// Why a detector could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Manifest or model file problem (missing, wrong sha256).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// ONNX Runtime missing or unloadable.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// ONNX Runtime refused the model or a run.
    #[error("onnxruntime ({model}): {message}")]
    Ort {
        /// Model name.
        model: String,
        /// Runtime message.
        message: String,
    },
    /// OpenCV failed on a frame.
    #[error("opencv: {0}")]
    OpenCv(#[from] opencv::Error),
    /// The detector panicked on a frame (caught by its worker thread).
    #[error("detector panicked: {0}")]
    Panicked(String),
    /// The outputs do not have the layout the manifest claims.
    #[error("model {model}: unexpected outputs: {message}")]
    Outputs {
        /// Model name.
        model: String,
        /// What was wrong.
        message: String,
    },
}

/// One raw model output: name, shape, values.
pub type RawOutput = (String, Vec<i64>, Vec<f32>);

/// A loaded model, ready to detect.
pub struct Detector {
    session: Session,
    spec: ModelSpec,
    map: ClassMap,
    nms_iou: f32,
    fit_input: bool,
    slicing: Option<SlicingConfig>,
    resized: Mat,
    buf_f32: Vec<f32>,
    buf_u8: Vec<u8>,
    model_time: std::time::Duration,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("model", &self.spec.name).field("layout", &self.spec.layout).finish()
    }
}

impl Detector {
    /// Finds the model in the manifest, checks its sha256, loads ONNX Runtime and builds one session with
    /// all of `cfg.threads` (whatever `cfg.workers` says).
    pub fn load(cfg: &ModelConfig) -> Result<Detector, ModelError> {
        let mut one = Self::load_sessions(cfg, 1, cfg.threads.max(1))?;
        one.pop().ok_or_else(|| ModelError::Ort { model: cfg.name.clone(), message: "no session".into() })
    }

    /// `cfg.workers` detectors for a [`DetectorPool`](super::pool::DetectorPool), each with
    /// `threads / workers` intra-op threads (at least 1), sharing their pre-packed weights.
    pub fn load_workers(cfg: &ModelConfig) -> Result<Vec<Detector>, ModelError> {
        let n = cfg.workers.max(1);
        Self::load_sessions(cfg, n, (cfg.threads / n).max(1))
    }

    /// Like [`load_workers`](Self::load_workers), for a model given by its manifest entry (`spec.file` the
    /// model file itself, e.g. one fetched from the centre's pool) instead of `cfg.manifest`/`cfg.name`; the
    /// file's sha256 is checked against `spec.sha256` all the same.
    pub fn load_workers_from(cfg: &ModelConfig, spec: ModelSpec) -> Result<Vec<Detector>, ModelError> {
        let n = cfg.workers.max(1);
        Self::sessions_of(cfg, spec, n, (cfg.threads / n).max(1))
    }

    fn load_sessions(cfg: &ModelConfig, n: usize, threads: usize) -> Result<Vec<Detector>, ModelError> {
        let spec = Manifest::find(&cfg.manifest, &cfg.name)?;
        Self::sessions_of(cfg, spec, n, threads)
    }

    fn sessions_of(cfg: &ModelConfig, spec: ModelSpec, n: usize, threads: usize) -> Result<Vec<Detector>, ModelError> {
        let bytes = read_verified(&spec)?;
        let env = runtime::environment(cfg.runtime_path.as_deref())?;
        let ort_err = |e: String| ModelError::Ort { model: spec.name.clone(), message: e };
        // One copy of the weights in ONNX Runtime's packed layout, whatever the number of sessions.
        let packed = PrepackedWeights::new();
        let map = ClassMap {
            person: spec.person_classes.clone(),
            vehicle: spec.vehicle_classes.clone(),
            person_threshold: cfg.person_threshold,
            vehicle_threshold: cfg.vehicle_threshold,
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let session = Session::builder(&env)
                .map_err(|e| ort_err(e.to_string()))?
                .with_optimization_level(GraphOptimizationLevel::Level3)
                .map_err(|e| ort_err(e.to_string()))?
                .with_intra_threads(threads)
                .map_err(|e| ort_err(e.to_string()))?
                .with_inter_threads(1)
                .map_err(|e| ort_err(e.to_string()))?
                .with_prepacked_weights(&packed)
                .map_err(|e| ort_err(e.to_string()))?
                // No memory-pattern pre-planning: it holds a second, per-shape copy of the activation
                // buffers; without it peak RSS of the 2-worker bench pass fell from 205 to 183 MiB at the
                // same speed (bench/vision.rs). See also `crate::memory`.
                .with_memory_pattern(false)
                .map_err(|e| ort_err(e.to_string()))?
                .commit_from_memory(&bytes)
                .map_err(|e| ort_err(e.to_string()))?;
            out.push(Detector {
                session,
                spec: spec.clone(),
                map: map.clone(),
                nms_iou: cfg.nms_iou,
                fit_input: cfg.fit_input && spec.dynamic_hw,
                slicing: cfg.slicing,
                resized: Mat::default(),
                buf_f32: Vec::new(),
                buf_u8: Vec::new(),
                model_time: std::time::Duration::ZERO,
            });
        }
        tracing::info!(model = %spec.name, layout = ?spec.layout, input = spec.input_size, sessions = n, threads_each = threads, "detector loaded");
        Ok(out)
    }

    /// The lowest person score the sessions keep (a threshold pushed at run time can be met by filtering above
    /// it; below it the detector must be reloaded).
    pub fn person_floor(&self) -> f32 {
        self.map.person_threshold
    }

    /// The same for vehicles.
    pub fn vehicle_floor(&self) -> f32 {
        self.map.vehicle_threshold
    }

    /// NMS IoU in use.
    pub fn nms_iou(&self) -> f32 {
        self.nms_iou
    }

    /// Time spent inside ONNX Runtime (session runs only) since load: the model-only figure of the benchmark.
    pub fn model_time(&self) -> std::time::Duration {
        self.model_time
    }

    /// The manifest entry.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Detects persons and vehicles in a BGR frame (whole, or tiled when slicing is configured);
    /// boxes in frame pixels after NMS.
    pub fn detect(&mut self, frame: &Mat) -> Result<Vec<Detection>, ModelError> {
        let (w, h) = (frame.cols(), frame.rows());
        let Some(sl) = self.slicing else {
            let d = self.run(frame)?;
            return Ok(nms(d, self.nms_iou));
        };
        let mut per_tile = Vec::new();
        if sl.full_frame {
            per_tile.push((tiles::Tile { x: 0, y: 0, w, h }, self.run(frame)?));
        }
        let grid = tiles::grid(w, h, sl.tile as i32, sl.overlap);
        if grid.len() > 1 || !sl.full_frame {
            for t in grid {
                let roi = Mat::roi(frame, Rect::new(t.x, t.y, t.w, t.h))?;
                let d = self.run(&roi)?;
                per_tile.push((t, d));
            }
        }
        Ok(tiles::merge(per_tile, self.nms_iou))
    }

    /// One model pass over `img` (a frame or a tile); boxes in `img` pixels, before NMS.
    pub fn run(
        &mut self,
        img: &(impl MatTraitConst + opencv::core::ToInputArray),
    ) -> Result<Vec<Detection>, ModelError> {
        let size = self.spec.input_size as i32;
        let (w, h) = (img.cols(), img.rows());
        match self.spec.layout {
            Layout::TfSsd => {
                imgproc::resize(img, &mut self.resized, Size::new(size, size), 0.0, 0.0, imgproc::INTER_LINEAR)?;
                super::preprocess::fill_hwc_u8(&mut self.buf_u8, self.resized.data_bytes()?, &self.spec);
                let s = size as usize;
                let input = TensorRef::from_array_view(([1usize, s, s, 3], self.buf_u8.as_slice()))
                    .map_err(|e| ModelError::Ort { model: self.spec.name.clone(), message: e.to_string() })?;
                let t0 = std::time::Instant::now();
                let outputs = self
                    .session
                    .run(ort::inputs![input])
                    .map_err(|e| ModelError::Ort { model: self.spec.name.clone(), message: e.to_string() })?;
                self.model_time += t0.elapsed();
                let get = |name: &str| -> Result<Vec<f32>, ModelError> {
                    let v = outputs.get(name).ok_or_else(|| ModelError::Outputs {
                        model: String::new(),
                        message: format!("no output {name}"),
                    })?;
                    let (_, data) = v
                        .try_extract_tensor::<f32>()
                        .map_err(|e| ModelError::Outputs { model: String::new(), message: e.to_string() })?;
                    Ok(data.to_vec())
                };
                let num = get("num_detections:0")?.first().copied().unwrap_or(0.0) as usize;
                let (b, s, c) = (get("detection_boxes:0")?, get("detection_scores:0")?, get("detection_classes:0")?);
                Ok(decode::tf_ssd(&b, &s, &c, num, w as f32, h as f32, &self.map))
            }
            Layout::NanodetGfl | Layout::Yolov8 => {
                let lb = if self.fit_input { Letterbox::fit(w, h, size, 32) } else { Letterbox::new(w, h, size) };
                imgproc::resize(
                    img,
                    &mut self.resized,
                    Size::new(lb.new_w, lb.new_h),
                    0.0,
                    0.0,
                    imgproc::INTER_LINEAR,
                )?;
                let (in_w, in_h) = (lb.in_w as usize, lb.in_h as usize);
                super::preprocess::fill_chw(
                    &mut self.buf_f32,
                    self.resized.data_bytes()?,
                    lb.new_w as usize,
                    lb.new_h as usize,
                    lb.pad_x as usize,
                    lb.pad_y as usize,
                    (in_w, in_h),
                    &self.spec,
                );
                let dets = self.infer_chw(in_w, in_h)?;
                Ok(dets.into_iter().map(|d| lb.unmap(d, w as f32, h as f32)).collect())
            }
        }
    }

    /// Runs the session on the prepared `in_h × in_w` CHW tensor in `buf_f32` and decodes (model-input
    /// pixels).
    fn infer_chw(&mut self, in_w: usize, in_h: usize) -> Result<Vec<Detection>, ModelError> {
        let name = self.spec.name.clone();
        // A view of the reused input buffer: no per-frame allocation of the 2 MB tensor.
        let input = TensorRef::from_array_view(([1usize, 3, in_h, in_w], self.buf_f32.as_slice()))
            .map_err(|e| ModelError::Ort { model: name.clone(), message: e.to_string() })?;
        let t0 = std::time::Instant::now();
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| ModelError::Ort { model: name.clone(), message: e.to_string() })?;
        self.model_time += t0.elapsed();
        let bad = |message: String| ModelError::Outputs { model: name.clone(), message };
        let mut views: Vec<(Vec<i64>, &[f32])> = Vec::new();
        for i in 0..outputs.len() {
            let (shape, data) = outputs[i].try_extract_tensor::<f32>().map_err(|e| bad(e.to_string()))?;
            views.push((shape.iter().copied().collect(), data));
        }
        match self.spec.layout {
            Layout::Yolov8 => {
                let (shape, data) = views.first().ok_or_else(|| bad("no output".into()))?;
                let c = shape.get(1).copied().unwrap_or(0) as usize;
                if shape.len() != 3 || c <= 4 {
                    return Err(bad(format!("want [1, 4+C, N], got {shape:?}")));
                }
                Ok(decode::yolov8(data, c - 4, &self.map))
            }
            _ => {
                // Pair score and box tensors by their cell count N; the stride is the one whose grid
                // (⌈in_w / s⌉ × ⌈in_h / s⌉) has N cells.
                let mut levels = Vec::new();
                for (shape, scores) in views.iter().filter(|(sh, _)| sh.last() != Some(&44)) {
                    let n = shape.get(1).copied().unwrap_or(0);
                    let boxes = views
                        .iter()
                        .find(|(sh, _)| sh.last() == Some(&44) && sh.get(1) == Some(&n))
                        .ok_or_else(|| bad(format!("no box tensor for {n} cells")))?;
                    let stride = [8usize, 16, 32, 64, 128]
                        .into_iter()
                        .find(|s| in_w.div_ceil(*s) * in_h.div_ceil(*s) == n as usize)
                        .ok_or_else(|| bad(format!("{n} cells fits no stride of a {in_w}×{in_h} input")))?;
                    levels.push(GflLevel { stride, scores, boxes: boxes.1, classes: self.spec.classes });
                }
                if levels.is_empty() {
                    return Err(bad("no score tensors".into()));
                }
                Ok(decode::nanodet(&levels, in_w, &self.map))
            }
        }
    }

    /// Runs the session on a ready `[1, 3, size, size]` float tensor and returns every output as
    /// (name, shape, values): for comparing with a reference implementation.
    pub fn raw_outputs(&mut self, chw: Vec<f32>) -> Result<Vec<RawOutput>, ModelError> {
        let s = self.spec.input_size as usize;
        let input = Tensor::from_array(([1usize, 3, s, s], chw)).map_err(|e| self.ort(e))?;
        let name = self.spec.name.clone();
        let outputs = self
            .session
            .run(ort::inputs![input])
            .map_err(|e| ModelError::Ort { model: name.clone(), message: e.to_string() })?;
        let mut out = Vec::new();
        for (k, v) in outputs.iter() {
            let (shape, data) = v
                .try_extract_tensor::<f32>()
                .map_err(|e| ModelError::Outputs { model: name.clone(), message: e.to_string() })?;
            out.push((k.to_string(), shape.iter().copied().collect(), data.to_vec()));
        }
        Ok(out)
    }

    fn ort(&self, e: ort::Error) -> ModelError {
        ModelError::Ort { model: self.spec.name.clone(), message: e.to_string() }
    }
}
