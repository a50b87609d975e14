//! Runs a detector over a labelled set for every combination of input (fitted rectangle or the trained square),
//! slicing (off/on) and NMS IoU, and scores every confidence threshold of the sweep from the same detections.
//!
//! Why one model pass per combination and not per threshold: detections are decoded once at the sweep's lowest
//! threshold; a higher threshold only drops boxes. Class-wise greedy NMS keeps a box unless a higher-scored box of
//! its class overlaps it, so dropping the lowest-scored boxes never changes which of the others survive, and the
//! counts at any threshold are the boxes at or above it. The sweep costs `inputs × slicing × IoUs` model passes
//! per image whatever the number of thresholds.
//!
//! Blocking: ONNX Runtime and OpenCV on the calling thread. The CLI runs it from `main`, never on a runtime.

use std::time::{Duration, Instant};

use chrono::Utc;
use opencv::imgcodecs;
use opencv::prelude::*;

use super::labels::{zone_counts, LabelImage, LabelSet};
use super::metrics::{ap50, match_image, matches_at, CountError, Matches};
use crate::vision::detect::{Class, Detection};
use crate::vision::model::{Detector, ModelConfig, ModelError, SlicingConfig};

pub use super::report::*;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The sweep is empty or out of range.
    #[error("sweep: {0}")]
    Sweep(String),
    /// The detector could not load or failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An image could not be read.
    #[error("{0}: cannot be read as an image")]
    Image(String),
}

/// Detections of every image in one run, with timings.
struct Pass {
    dets: Vec<Vec<Detection>>,
    model: Duration,
    detect: Duration,
}

impl Sweep {
    fn check(&self) -> Result<(), EvalError> {
        let bad = |m: &str| Err(EvalError::Sweep(m.into()));
        if self.thresholds.is_empty() || self.ious.is_empty() || self.inputs.is_empty() || self.slicing.is_empty() {
            return bad("thresholds, IoUs, inputs and slicing each need at least one value");
        }
        if self.thresholds.iter().chain(&self.ious).any(|v| !(0.0..=1.0).contains(v) || v.is_nan()) {
            return bad("thresholds and IoUs are between 0 and 1");
        }
        if self.thresholds.windows(2).any(|w| w[1] <= w[0]) {
            return bad("thresholds must be ascending");
        }
        Ok(())
    }

    /// Runs the whole sweep; `progress` is called after each image of each run (total:
    /// [`passes`](Self::passes) × images).
    pub fn run(&self, set: &LabelSet, progress: &mut dyn FnMut()) -> Result<EvalReport, EvalError> {
        self.check()?;
        let lowest = self.thresholds[0];
        let frames = load_images(set)?;
        let mut runs = Vec::new();
        let mut spec = None;
        for &input in &self.inputs {
            for &slicing in &self.slicing {
                for &iou in &self.ious {
                    let cfg = ModelConfig {
                        person_threshold: lowest,
                        vehicle_threshold: lowest,
                        nms_iou: iou,
                        fit_input: input == InputMode::Fitted,
                        slicing,
                        workers: 1,
                        ..self.model.clone()
                    };
                    let mut det = Detector::load(&cfg)?;
                    spec.get_or_insert_with(|| det.spec().clone());
                    let pass = detect_all(&mut det, &frames, progress)?;
                    runs.push(score(set, &self.thresholds, input, slicing, iou, pass));
                }
            }
        }
        let spec = spec.ok_or_else(|| EvalError::Sweep("nothing ran".into()))?;
        let imgs = &set.file.images;
        Ok(EvalReport {
            model: spec.name.clone(),
            model_version: spec.version.clone(),
            sha256: spec.sha256.clone(),
            set: set.file.name.clone(),
            images: imgs.len(),
            persons_labelled: imgs.iter().map(|i| i.persons).sum(),
            vehicles_labelled: imgs.iter().map(|i| i.vehicles).sum(),
            thresholds: self.thresholds.clone(),
            finished_at: Utc::now(),
            best_person: best(&runs, Class::Person),
            best_vehicle: best(&runs, Class::Vehicle),
            runs,
        })
    }

    /// Model passes per image over the whole sweep.
    pub fn passes(&self) -> usize {
        self.inputs.len() * self.slicing.len() * self.ious.len()
    }
}

fn load_images(set: &LabelSet) -> Result<Vec<Mat>, EvalError> {
    set.file
        .images
        .iter()
        .map(|img| {
            let path = set.image_path(img);
            let mat = imgcodecs::imread(path.as_path(), imgcodecs::IMREAD_COLOR)
                .map_err(|_| EvalError::Image(path.display().to_string()))?;
            if mat.empty() {
                return Err(EvalError::Image(path.display().to_string()));
            }
            Ok(mat)
        })
        .collect()
}

fn detect_all(det: &mut Detector, frames: &[Mat], progress: &mut dyn FnMut()) -> Result<Pass, EvalError> {
    let model0 = det.model_time();
    let t0 = Instant::now();
    let mut dets = Vec::with_capacity(frames.len());
    for f in frames {
        dets.push(det.detect(f)?);
        progress();
    }
    Ok(Pass { dets, model: det.model_time() - model0, detect: t0.elapsed() })
}

fn is_boxed(img: &LabelImage) -> bool {
    !img.boxes.is_empty() || (img.persons == 0 && img.vehicles == 0)
}

fn score(
    set: &LabelSet,
    thresholds: &[f32],
    input: InputMode,
    slicing: Option<SlicingConfig>,
    nms_iou: f32,
    pass: Pass,
) -> Run {
    let imgs = &set.file.images;
    let truth: Vec<Vec<Detection>> = imgs.iter().map(|i| i.boxes.iter().map(|b| b.detection()).collect()).collect();
    let per_class = |class: Class| -> (Vec<Vec<(f32, bool)>>, usize) {
        let mut all = Vec::new();
        let mut labelled = 0;
        for (i, img) in imgs.iter().enumerate() {
            if is_boxed(img) {
                let (m, n) = match_image(&pass.dets[i], &truth[i], class);
                labelled += n;
                all.push(m);
            } else {
                all.push(Vec::new());
            }
        }
        (all, labelled)
    };
    let matched = [per_class(Class::Person), per_class(Class::Vehicle)];
    let any_boxed = imgs.iter().any(is_boxed);
    let class_score = |class: Class, t: f32| -> ClassScore {
        let k = usize::from(class == Class::Vehicle);
        let expected = |img: &LabelImage| f64::from(if k == 0 { img.persons } else { img.vehicles });
        let counted = |d: &[Detection]| d.iter().filter(|x| x.class == class && x.score >= t).count() as f64;
        let count = CountError::of(imgs.iter().zip(&pass.dets).map(|(img, d)| (counted(d), expected(img))));
        let mean_count = imgs.iter().zip(&pass.dets).map(|(_, d)| counted(d)).sum::<f64>() / imgs.len().max(1) as f64;
        let mut zone_pairs = Vec::new();
        for (i, img) in imgs.iter().enumerate() {
            let zones = set.zones_of(img);
            if zones.is_empty() || img.boxes.is_empty() && img.persons + img.vehicles > 0 {
                continue;
            }
            let kept: Vec<Detection> = pass.dets[i].iter().filter(|d| d.score >= t).copied().collect();
            let got = zone_counts(zones, &kept, class);
            let want = zone_counts(zones, &truth[i], class);
            zone_pairs.extend(got.into_iter().zip(want).map(|(g, w)| (f64::from(g), f64::from(w))));
        }
        let zones = (!zone_pairs.is_empty()).then(|| CountError::of(zone_pairs));
        let matches = any_boxed.then(|| {
            let mut m = Matches::default();
            for (i, img) in imgs.iter().enumerate() {
                if is_boxed(img) {
                    let (_, n) = match_image(&[], &truth[i], class);
                    m.add(matches_at(&matched[k].0[i], n, t));
                }
            }
            m
        });
        ClassScore {
            count,
            zones,
            precision: matches.and_then(|m| m.precision()),
            recall: matches.and_then(|m| m.recall()),
            f1: matches.map(|m| m.f1()),
            matches,
            mean_count,
        }
    };
    let points = thresholds
        .iter()
        .map(|&t| ThresholdPoint {
            threshold: t,
            person: class_score(Class::Person, t),
            vehicle: class_score(Class::Vehicle, t),
        })
        .collect();
    let ap = |k: usize| {
        let flat: Vec<(f32, bool)> = matched[k].0.iter().flatten().copied().collect();
        if any_boxed {
            ap50(&flat, matched[k].1)
        } else {
            None
        }
    };
    let images = imgs
        .iter()
        .zip(&pass.dets)
        .map(|(img, d)| {
            let at = |class: Class| -> Vec<u32> {
                thresholds
                    .iter()
                    .map(|&t| d.iter().filter(|x| x.class == class && x.score >= t).count() as u32)
                    .collect()
            };
            ImageCounts {
                file: img.file.display().to_string(),
                persons_expected: img.persons,
                vehicles_expected: img.vehicles,
                persons: at(Class::Person),
                vehicles: at(Class::Vehicle),
            }
        })
        .collect();
    let n = imgs.len().max(1) as f64;
    Run {
        input,
        slicing,
        nms_iou,
        model_ms_per_frame: pass.model.as_secs_f64() * 1e3 / n,
        detect_ms_per_frame: pass.detect.as_secs_f64() * 1e3 / n,
        person_ap50: ap(0),
        vehicle_ap50: ap(1),
        points,
        images,
    }
}
