//! What an evaluation is asked and what it found (`crowdgrid eval-model`'s JSON report, docs/EVAL.md): the
//! sweep's settings, per-run and per-threshold scores, and the best threshold per class. Pure data, apart from
//! the detector that produces it ([`super::sweep`]), so the centre reads reports without OpenCV or ONNX Runtime.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::metrics::{CountError, Matches};
use crate::vision::detect::Class;
use crate::vision::source_config::{ModelConfig, SlicingConfig};

/// Which model input size a run letterboxes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// The smallest multiple-of-32 rectangle holding the frame (`model.fit_input`, when the model allows it).
    Fitted,
    /// The square the model was trained at.
    Square,
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// Manifest, model name, threads and runtime (thresholds, IoU, input and slicing are the sweep's).
    pub model: ModelConfig,
    /// Confidence thresholds, ascending.
    pub thresholds: Vec<f32>,
    /// NMS IoU values.
    pub ious: Vec<f32>,
    /// Inputs.
    pub inputs: Vec<InputMode>,
    /// Slicing off (`None`) and/or on (`Some`).
    pub slicing: Vec<Option<SlicingConfig>>,
}

/// One class's figures at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Count error per image.
    pub count: CountError,
    /// Count error per image and zone (images of cameras with zones and labelled boxes).
    pub zones: Option<CountError>,
    /// Box matches summed over the images with labelled boxes.
    pub matches: Option<Matches>,
    /// Precision.
    pub precision: Option<f64>,
    /// Recall.
    pub recall: Option<f64>,
    /// F1.
    pub f1: Option<f64>,
    /// Mean detected count per image.
    pub mean_count: f64,
}

/// Both classes at one threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdPoint {
    /// Confidence threshold.
    pub threshold: f32,
    /// Persons.
    pub person: ClassScore,
    /// Vehicles.
    pub vehicle: ClassScore,
}

/// Detected counts of one image at every threshold of the sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageCounts {
    /// Image file as listed.
    pub file: String,
    /// Persons labelled.
    pub persons_expected: u32,
    /// Vehicles labelled.
    pub vehicles_expected: u32,
    /// Persons detected, one per threshold.
    pub persons: Vec<u32>,
    /// Vehicles detected, one per threshold.
    pub vehicles: Vec<u32>,
}

/// One combination of input, slicing and IoU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Input size mode.
    pub input: InputMode,
    /// Slicing, if on.
    pub slicing: Option<SlicingConfig>,
    /// NMS IoU.
    pub nms_iou: f32,
    /// Time inside ONNX Runtime per image, ms.
    pub model_ms_per_frame: f64,
    /// Whole detector call per image (resize, model, decode, NMS), ms.
    pub detect_ms_per_frame: f64,
    /// AP at IoU 0.5 for persons (over scores ≥ the lowest threshold), when boxes were labelled.
    pub person_ap50: Option<f64>,
    /// The same for vehicles.
    pub vehicle_ap50: Option<f64>,
    /// Every threshold.
    pub points: Vec<ThresholdPoint>,
    /// Counts per image per threshold.
    pub images: Vec<ImageCounts>,
}

/// The best setting for one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    /// Input mode.
    pub input: InputMode,
    /// Slicing on.
    pub slicing: bool,
    /// NMS IoU.
    pub nms_iou: f32,
    /// Threshold.
    pub threshold: f32,
    /// Its count MAE.
    pub mae: f64,
    /// Its count RMSE.
    pub rmse: f64,
}

/// A whole evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// Model name.
    pub model: String,
    /// Model version (manifest).
    pub model_version: String,
    /// sha256 of the model file.
    pub sha256: String,
    /// Labelled set name.
    pub set: String,
    /// Images.
    pub images: usize,
    /// Persons labelled in all.
    pub persons_labelled: u32,
    /// Vehicles labelled in all.
    pub vehicles_labelled: u32,
    /// Thresholds swept.
    pub thresholds: Vec<f32>,
    /// When it ran.
    pub finished_at: DateTime<Utc>,
    /// Every combination.
    pub runs: Vec<Run>,
    /// Lowest person count MAE over every run and threshold.
    pub best_person: Option<Pick>,
    /// Lowest vehicle count MAE over every run and threshold.
    pub best_vehicle: Option<Pick>,
}

/// The lowest count MAE of `class` over every run and threshold (ties: lower RMSE, then the earlier run and
/// threshold); `None` when the class was never labelled.
pub fn best(runs: &[Run], class: Class) -> Option<Pick> {
    let mut out: Option<Pick> = None;
    for r in runs {
        for p in &r.points {
            let c = if class == Class::Person { &p.person } else { &p.vehicle };
            let better = match &out {
                None => true,
                Some(b) => (c.count.mae, c.count.rmse) < (b.mae, b.rmse),
            };
            if better {
                out = Some(Pick {
                    input: r.input,
                    slicing: r.slicing.is_some(),
                    nms_iou: r.nms_iou,
                    threshold: p.threshold,
                    mae: c.count.mae,
                    rmse: c.count.rmse,
                });
            }
        }
    }
    out
}

/// The threshold with the lowest count MAE of `class` within one run (ties: lower RMSE, then lower threshold).
pub fn best_in(run: &Run, class: Class) -> Option<&ThresholdPoint> {
    run.points.iter().min_by(|a, b| {
        let (x, y) = if class == Class::Person { (&a.person, &b.person) } else { (&a.vehicle, &b.vehicle) };
        (x.count.mae, x.count.rmse).partial_cmp(&(y.count.mae, y.count.rmse)).unwrap_or(std::cmp::Ordering::Equal)
    })
}
