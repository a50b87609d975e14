//! Measuring a detector against images counted by eye (`crowdgrid eval-model`): what a confidence threshold, an
//! NMS IoU, the input size and slicing do to the count error crowdgrid publishes, per class and per zone, with
//! precision, recall and AP50 where boxes were labelled. docs/EVAL.md says how to label a set and read a report.
//!
//! - [`labels`]: the `labels.toml` format and its checks.
//! - [`metrics`]: count errors, box matching, precision/recall/F1, AP50 (pure).
//! - [`report`]: the report's types (pure).
//! - [`sweep`]: runs the detector once per input × slicing × IoU and scores every threshold (blocking).

pub mod labels;
pub mod metrics;
pub mod report;
#[cfg(feature = "vision")]
pub mod sweep;
