//! Turning raw model outputs into [`Detection`]s (in model-input pixels, before NMS). One function per
//! output layout; all pure, so they are tested on hand-made tensors.

use super::detect::{ClassMap, Detection};

/// NanoDet's GFL head: `reg_max + 1` bins per box side.
pub const NANODET_BINS: usize = 11;

/// One NanoDet stride level: class scores `[N, classes]` (already sigmoided) and box bins
/// `[N, 4 × 11]`, cells in row-major order over a `side × side` grid.
#[derive(Debug, Clone, Copy)]
pub struct GflLevel<'a> {
    /// Stride in input pixels (8, 16, 32).
    pub stride: usize,
    /// Class scores, `N × classes`.
    pub scores: &'a [f32],
    /// Box distribution logits, `N × 44`.
    pub boxes: &'a [f32],
    /// Number of classes (80 for COCO).
    pub classes: usize,
}

/// Decodes NanoDet GFL outputs: cell centre `((col + 0.5)·s, (row + 0.5)·s)`; for each side a softmax
/// over 11 bins whose expectation × s is the distance left/top/right/bottom from the centre.
pub fn nanodet(levels: &[GflLevel<'_>], input_w: usize, map: &ClassMap) -> Vec<Detection> {
    let mut out = Vec::new();
    let min = map.min_threshold();
    for l in levels {
        // Cells run row by row; a row has ⌈input width / stride⌉ of them.
        let side = input_w.div_ceil(l.stride.max(1));
        let n = l.scores.len() / l.classes.max(1);
        for cell in 0..n.min(l.boxes.len() / (4 * NANODET_BINS)) {
            let scores = &l.scores[cell * l.classes..(cell + 1) * l.classes];
            let mut decoded: Option<[f32; 4]> = None;
            for (raw_class, &score) in scores.iter().enumerate() {
                if score < min {
                    continue;
                }
                let Some((class, thr)) = map.lookup(raw_class) else { continue };
                if score < thr {
                    continue;
                }
                let b = *decoded.get_or_insert_with(|| {
                    let (row, col) = (cell / side.max(1), cell % side.max(1));
                    let s = l.stride as f32;
                    let (cx, cy) = ((col as f32 + 0.5) * s, (row as f32 + 0.5) * s);
                    let bins = &l.boxes[cell * 4 * NANODET_BINS..(cell + 1) * 4 * NANODET_BINS];
                    let d: Vec<f32> = bins.chunks_exact(NANODET_BINS).map(|c| expectation(c) * s).collect();
                    [cx - d[0], cy - d[1], cx + d[2], cy + d[3]]
                });
                out.push(Detection { class, raw_class, score, x1: b[0], y1: b[1], x2: b[2], y2: b[3] });
            }
        }
    }
    out
}

/// Softmax expectation over bin indices 0..n.
fn expectation(logits: &[f32]) -> f32 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut num, mut den) = (0.0f32, 0.0f32);
    for (i, &v) in logits.iter().enumerate() {
        let e = (v - m).exp();
        num += e * i as f32;
        den += e;
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Decodes the common YOLOv8 head `[1, 4 + C, N]`: rows `cx, cy, w, h`, then `C` class scores
/// (already sigmoided), one column per candidate.
pub fn yolov8(out: &[f32], classes: usize, map: &ClassMap) -> Vec<Detection> {
    let rows = 4 + classes;
    if !out.len().is_multiple_of(rows) {
        return Vec::new();
    }
    let n = out.len() / rows;
    let at = |r: usize, j: usize| out[r * n + j];
    let mut dets = Vec::new();
    for j in 0..n {
        for raw_class in 0..classes {
            let score = at(4 + raw_class, j);
            let Some((class, thr)) = map.lookup(raw_class) else { continue };
            if score < thr {
                continue;
            }
            let (cx, cy, w, h) = (at(0, j), at(1, j), at(2, j), at(3, j));
            dets.push(Detection {
                class,
                raw_class,
                score,
                x1: cx - w / 2.0,
                y1: cy - h / 2.0,
                x2: cx + w / 2.0,
                y2: cy + h / 2.0,
            });
        }
    }
    dets
}

/// Decodes a TensorFlow object-detection SSD (NMS inside the graph): `boxes` `[1, K, 4]` as normalised
/// `ymin, xmin, ymax, xmax`, `scores` and `classes` `[1, K]`, `num` valid rows. Boxes come back in
/// pixels of a `w × h` frame (the input was stretched, not letterboxed). TF class ids are 1-based.
pub fn tf_ssd(
    boxes: &[f32],
    scores: &[f32],
    classes: &[f32],
    num: usize,
    w: f32,
    h: f32,
    map: &ClassMap,
) -> Vec<Detection> {
    let k = num.min(scores.len()).min(classes.len()).min(boxes.len() / 4);
    let mut dets = Vec::new();
    for i in 0..k {
        let raw_class = classes[i].max(0.0) as usize;
        let Some((class, thr)) = map.lookup(raw_class) else { continue };
        if scores[i] < thr {
            continue;
        }
        let b = &boxes[i * 4..i * 4 + 4];
        dets.push(Detection {
            class,
            raw_class,
            score: scores[i],
            x1: b[1] * w,
            y1: b[0] * h,
            x2: b[3] * w,
            y2: b[2] * h,
        });
    }
    dets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::detect::Class;

    #[test]
    fn gfl_cell_decodes_to_the_expected_box() {
        // One 32-px level over a 64-px input: 2×2 cells, 3 classes (0 person, 2 car → vehicle).
        let map = ClassMap { person: vec![0], vehicle: vec![2], person_threshold: 0.5, vehicle_threshold: 0.3 };
        let mut scores = vec![0.0f32; 4 * 3];
        scores[3 * 3] = 0.9; // cell 3 (row 1, col 1): person
        scores[3 * 3 + 1] = 0.99; // class 1 is not counted
        scores[3 + 2] = 0.2; // cell 1 (index 1 × 3 + class 2): car below its threshold
                             // Bins peaked hard at index 1 on every side → distance 1 × 32 = 32 px.
        let mut boxes = vec![0.0f32; 4 * 44];
        for cell in 0..4 {
            for side in 0..4 {
                boxes[cell * 44 + side * 11 + 1] = 50.0;
            }
        }
        let l = GflLevel { stride: 32, scores: &scores, boxes: &boxes, classes: 3 };
        let d = nanodet(&[l], 64, &map);
        assert_eq!(d.len(), 1, "{d:?}");
        // Centre (48, 48) ± 32.
        assert_eq!((d[0].class, d[0].raw_class), (Class::Person, 0));
        for (got, want) in [d[0].x1, d[0].y1, d[0].x2, d[0].y2].iter().zip([16.0, 16.0, 80.0, 80.0]) {
            assert!((got - want).abs() < 1e-3, "{d:?}");
        }
        // The same level over a 96×64 input: 3 cells a row, so cell 4 is row 1, col 1 → centre (48, 48).
        let mut wide = vec![0.0f32; 6 * 3];
        wide[4 * 3] = 0.9;
        let wide_boxes = vec![boxes[..44].to_vec(); 6].concat();
        let l = GflLevel { stride: 32, scores: &wide, boxes: &wide_boxes, classes: 3 };
        let d = nanodet(&[l], 96, &map);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!((d[0].x1 - 16.0).abs() < 1e-3 && (d[0].y2 - 80.0).abs() < 1e-3, "{d:?}");
        // A flat distribution over 11 bins has expectation 5.
        assert!((expectation(&[0.0; 11]) - 5.0).abs() < 1e-6);
    }

    #[test]
    fn yolov8_columns_decode() {
        let map = ClassMap::coco(0.5, 0.5);
        // 2 candidates, 3 classes: column 0 a person at (50,60) 20×40, column 1 a car at 0.4 (dropped).
        let (n, c) = (2, 3);
        let mut out = vec![0.0f32; (4 + c) * n];
        let set = |o: &mut Vec<f32>, r: usize, j: usize, v: f32| o[r * n + j] = v;
        for (r, v) in [50.0, 60.0, 20.0, 40.0].iter().enumerate() {
            set(&mut out, r, 0, *v);
        }
        set(&mut out, 4, 0, 0.8);
        set(&mut out, 4 + 2, 1, 0.4);
        let d = yolov8(&out, c, &map);
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].x1, d[0].y1, d[0].x2, d[0].y2), (40.0, 40.0, 60.0, 80.0));
        assert!(yolov8(&out[1..], c, &map).is_empty(), "a ragged tensor gives nothing, not a panic");
    }

    #[test]
    fn tf_ssd_boxes_scale_to_the_frame() {
        let map = ClassMap { person: vec![1], vehicle: vec![], person_threshold: 0.3, vehicle_threshold: 1.0 };
        let boxes = [0.1, 0.2, 0.5, 0.4, 0.0, 0.0, 1.0, 1.0];
        let d = tf_ssd(&boxes, &[0.6, 0.9], &[1.0, 1.0], 1, 100.0, 200.0, &map);
        assert_eq!(d.len(), 1, "only `num` rows are valid");
        assert_eq!((d[0].x1, d[0].y1, d[0].x2, d[0].y2), (20.0, 20.0, 40.0, 100.0));
    }
}
