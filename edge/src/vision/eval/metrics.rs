//! The numbers of an evaluation, pure and synchronous: count errors (what crowdgrid publishes is a count, so
//! that is the error that matters to an operator), and where boxes were labelled, precision, recall, F1 and AP50
//! (what detector papers report, and what says *why* a count is off: missed people or false ones).

use serde::{Deserialize, Serialize};

use crate::vision::detect::{Class, Detection};

/// Count error over a set of (predicted, expected) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CountError {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean square error.
    pub rmse: f64,
    /// Mean signed error (predicted − expected): negative when the detector undercounts.
    pub bias: f64,
    /// Pairs measured.
    pub n: usize,
}

impl CountError {
    /// From `(predicted, expected)` pairs; all zeros for none.
    pub fn of(pairs: impl IntoIterator<Item = (f64, f64)>) -> CountError {
        let (mut abs, mut sq, mut signed, mut n) = (0.0, 0.0, 0.0, 0usize);
        for (p, e) in pairs {
            let d = p - e;
            abs += d.abs();
            sq += d * d;
            signed += d;
            n += 1;
        }
        if n == 0 {
            return CountError::default();
        }
        let k = n as f64;
        CountError { mae: abs / k, rmse: (sq / k).sqrt(), bias: signed / k, n }
    }
}

/// Box matches of one class at one threshold, summed over images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Matches {
    /// Detections matched to a labelled box (IoU ≥ 0.5).
    pub tp: usize,
    /// Detections matched to nothing.
    pub fp: usize,
    /// Labelled boxes no detection matched.
    pub fn_: usize,
}

impl Matches {
    /// tp / (tp + fp), or `None` with no detections.
    pub fn precision(&self) -> Option<f64> {
        let d = self.tp + self.fp;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    /// tp / (tp + fn), or `None` with no labelled boxes.
    pub fn recall(&self) -> Option<f64> {
        let d = self.tp + self.fn_;
        (d > 0).then(|| self.tp as f64 / d as f64)
    }

    /// Harmonic mean of precision and recall (0 when either is 0 or missing).
    pub fn f1(&self) -> f64 {
        match (self.precision(), self.recall()) {
            (Some(p), Some(r)) if p + r > 0.0 => 2.0 * p * r / (p + r),
            _ => 0.0,
        }
    }

    /// Adds another image's matches.
    pub fn add(&mut self, o: Matches) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

/// IoU at which a detection matches a labelled box (PASCAL VOC / COCO AP50).
pub const MATCH_IOU: f32 = 0.5;

/// Greedy matching of one image's detections of `class` (highest score first) to its labelled boxes: each
/// labelled box is taken by the first detection that overlaps it with IoU ≥ [`MATCH_IOU`] (the best-overlapping
/// free one). Returns, per detection in score order, its score and whether it matched; and the labelled count.
pub fn match_image(dets: &[Detection], truth: &[Detection], class: Class) -> (Vec<(f32, bool)>, usize) {
    let mut ds: Vec<&Detection> = dets.iter().filter(|d| d.class == class).collect();
    ds.sort_by(|a, b| b.score.total_cmp(&a.score));
    let gt: Vec<&Detection> = truth.iter().filter(|t| t.class == class).collect();
    let mut taken = vec![false; gt.len()];
    let mut out = Vec::with_capacity(ds.len());
    for d in ds {
        let best = gt
            .iter()
            .enumerate()
            .filter(|(i, _)| !taken[*i])
            .map(|(i, g)| (i, d.iou(g)))
            .filter(|(_, iou)| *iou >= MATCH_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, _)) = best {
            taken[i] = true;
        }
        out.push((d.score, best.is_some()));
    }
    (out, gt.len())
}

/// Matches of one image at a threshold (detections below it dropped). Greedy matching in score order means
/// dropping the lowest-scored detections never changes what the others matched, so one matching at the lowest
/// threshold of a sweep serves every threshold.
pub fn matches_at(scored: &[(f32, bool)], labelled: usize, threshold: f32) -> Matches {
    let kept = scored.iter().filter(|(s, _)| *s >= threshold);
    let tp = kept.clone().filter(|(_, m)| *m).count();
    let fp = kept.count() - tp;
    Matches { tp, fp, fn_: labelled - tp }
}

/// Average precision at IoU 0.5 over all images (COCO's 101-point interpolation) from every image's scored
/// matches and the total labelled count; `None` with no labelled boxes. Detections under the sweep's lowest
/// threshold were never kept, so this is AP over scores ≥ that threshold (a slight underestimate of full AP).
pub fn ap50(scored: &[(f32, bool)], labelled: usize) -> Option<f64> {
    if labelled == 0 {
        return None;
    }
    let mut all = scored.to_vec();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = Vec::with_capacity(all.len()); // (recall, precision)
    for (_, m) in all {
        if m {
            tp += 1
        } else {
            fp += 1
        }
        curve.push((tp as f64 / labelled as f64, tp as f64 / (tp + fp) as f64));
    }
    // Precision envelope: the best precision at this recall or any higher one.
    for i in (0..curve.len().saturating_sub(1)).rev() {
        curve[i].1 = curve[i].1.max(curve[i + 1].1);
    }
    let mut sum = 0.0;
    for k in 0..=100 {
        let r = k as f64 / 100.0;
        sum += curve.iter().find(|(rc, _)| *rc >= r - 1e-12).map(|(_, p)| *p).unwrap_or(0.0);
    }
    Some(sum / 101.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(class: Class, score: f32, x: f32) -> Detection {
        Detection { class, raw_class: 0, score, x1: x, y1: 0.0, x2: x + 10.0, y2: 20.0 }
    }

    #[test]
    fn count_error_worked_example() {
        // Errors −2, 0, +1: MAE 1, RMSE √(5/3), bias −1/3.
        let e = CountError::of([(3.0, 5.0), (4.0, 4.0), (2.0, 1.0)]);
        assert!((e.mae - 1.0).abs() < 1e-12);
        assert!((e.rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((e.bias + 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.n, 3);
    }

    #[test]
    fn matching_is_one_to_one_and_by_class() {
        let truth = [b(Class::Person, 1.0, 0.0), b(Class::Person, 1.0, 100.0), b(Class::Vehicle, 1.0, 200.0)];
        // Two detections on the first person (a duplicate), one false, one vehicle box on a person.
        let dets = [
            b(Class::Person, 0.9, 0.0),
            b(Class::Person, 0.8, 1.0),
            b(Class::Person, 0.5, 300.0),
            b(Class::Vehicle, 0.7, 100.0),
        ];
        let (scored, n) = match_image(&dets, &truth, Class::Person);
        assert_eq!(n, 2);
        assert_eq!(scored, vec![(0.9, true), (0.8, false), (0.5, false)]);
        assert_eq!(matches_at(&scored, n, 0.0), Matches { tp: 1, fp: 2, fn_: 1 });
        assert_eq!(matches_at(&scored, n, 0.85), Matches { tp: 1, fp: 0, fn_: 1 });
        let m = matches_at(&scored, n, 0.85);
        assert_eq!(m.precision(), Some(1.0));
        assert_eq!(m.recall(), Some(0.5));
        assert!((m.f1() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn ap50_worked_examples() {
        // Perfect ranking of 2 true boxes: AP 1.
        assert!((ap50(&[(0.9, true), (0.8, true)], 2).unwrap() - 1.0).abs() < 1e-12);
        // One of two found, at precision 1: recall points 0..=0.5 have precision 1 → 51/101.
        assert!((ap50(&[(0.9, true)], 2).unwrap() - 51.0 / 101.0).abs() < 1e-12);
        // A false positive ranked first: precision at recall 1 is 1/2 → every point 0.5.
        assert!((ap50(&[(0.9, false), (0.8, true)], 1).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(ap50(&[(0.9, false)], 0), None);
    }
}
