//! Detections, the person/vehicle class map, class-wise NMS and the letterbox transform.
//! Pure and synchronous: the decoders in [`super::decode`] produce [`Detection`]s in model-input pixels,
//! [`Letterbox::unmap`] brings them back to frame pixels.

use serde::{Deserialize, Serialize};

/// The two classes crowdgrid counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A person.
    Person,
    /// Bicycle, car, motorcycle, bus or truck.
    Vehicle,
}

/// One box in frame pixels (`x1,y1` top-left, `x2,y2` bottom-right).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Mapped class.
    pub class: Class,
    /// Model's class index (e.g. COCO 2 = car), kept for logs and tests.
    pub raw_class: usize,
    /// Confidence 0..1.
    pub score: f32,
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
}

impl Detection {
    /// The bottom-centre point (where the person stands), which decides zone membership.
    pub fn foot(&self) -> [f64; 2] {
        [((self.x1 + self.x2) / 2.0) as f64, self.y2 as f64]
    }

    /// The box as `[x1, y1, x2, y2]`.
    pub fn bbox(&self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }

    /// Intersection over union.
    pub fn iou(&self, o: &Detection) -> f32 {
        box_iou(self.bbox(), o.bbox())
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes (the tracker's predictions are boxes, not detections).
pub fn box_iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Maps model class indices to [`Class`] with a confidence threshold per class.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMap {
    /// Model class indices counted as persons.
    pub person: Vec<usize>,
    /// Model class indices counted as vehicles.
    pub vehicle: Vec<usize>,
    /// Minimum score for a person.
    pub person_threshold: f32,
    /// Minimum score for a vehicle.
    pub vehicle_threshold: f32,
}

impl ClassMap {
    /// COCO-80: 0 person; 1 bicycle, 2 car, 3 motorcycle, 5 bus, 7 truck.
    pub fn coco(person_threshold: f32, vehicle_threshold: f32) -> Self {
        Self { person: vec![0], vehicle: vec![1, 2, 3, 5, 7], person_threshold, vehicle_threshold }
    }

    /// The class and threshold of model index `i`, or `None` if not counted.
    pub fn lookup(&self, i: usize) -> Option<(Class, f32)> {
        if self.person.contains(&i) {
            Some((Class::Person, self.person_threshold))
        } else if self.vehicle.contains(&i) {
            Some((Class::Vehicle, self.vehicle_threshold))
        } else {
            None
        }
    }

    /// The lowest threshold (a cheap first filter for decoders).
    pub fn min_threshold(&self) -> f32 {
        self.person_threshold.min(self.vehicle_threshold)
    }
}

/// Class-wise non-maximum suppression: keeps the best box of each overlapping group of the same
/// mapped class (a car and a truck on one vehicle suppress each other). Output sorted by score.
pub fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        if keep.iter().all(|k| k.class != d.class || k.iou(&d) <= iou) {
            keep.push(d);
        }
    }
    keep
}

/// Letterbox: scale a `w×h` frame by `scale` to fit an `in_w×in_h` model input, centred with padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Frame → model scale.
    pub scale: f32,
    /// Left padding in model pixels.
    pub pad_x: f32,
    /// Top padding in model pixels.
    pub pad_y: f32,
    /// Scaled width in model pixels.
    pub new_w: i32,
    /// Scaled height in model pixels.
    pub new_h: i32,
    /// Model input width.
    pub in_w: i32,
    /// Model input height.
    pub in_h: i32,
}

impl Letterbox {
    /// The transform for a `w×h` frame into a square model input of `size`.
    pub fn new(w: i32, h: i32, size: i32) -> Self {
        let scale = (size as f32 / w as f32).min(size as f32 / h as f32);
        let new_w = ((w as f32 * scale).round() as i32).clamp(1, size);
        let new_h = ((h as f32 * scale).round() as i32).clamp(1, size);
        Self {
            scale,
            pad_x: ((size - new_w) / 2) as f32,
            pad_y: ((size - new_h) / 2) as f32,
            new_w,
            new_h,
            in_w: size,
            in_h: size,
        }
    }

    /// The transform into the smallest input whose sides are multiples of `multiple` and hold the frame
    /// scaled to `size` on its long side (for models with free input height and width): a 768×576 camera
    /// at 416 gets a 416×320 input instead of 416×416, a quarter less work for the same pixels.
    pub fn fit(w: i32, h: i32, size: i32, multiple: i32) -> Self {
        let sq = Self::new(w, h, size);
        let m = multiple.max(1);
        let round_up = |v: i32| ((v + m - 1) / m * m).min(size.max(m));
        let (in_w, in_h) = (round_up(sq.new_w), round_up(sq.new_h));
        Self { pad_x: ((in_w - sq.new_w) / 2) as f32, pad_y: ((in_h - sq.new_h) / 2) as f32, in_w, in_h, ..sq }
    }

    /// Maps a box from model pixels back to frame pixels, clipped to the `w×h` frame.
    pub fn unmap(&self, d: Detection, w: f32, h: f32) -> Detection {
        let fx = |x: f32| ((x - self.pad_x) / self.scale).clamp(0.0, w);
        let fy = |y: f32| ((y - self.pad_y) / self.scale).clamp(0.0, h);
        Detection { x1: fx(d.x1), y1: fy(d.y1), x2: fx(d.x2), y2: fy(d.y2), ..d }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: Class, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection { class, raw_class: 0, score, x1, y1, x2, y2 }
    }

    #[test]
    fn iou_and_classwise_nms() {
        let a = det(Class::Person, 0.9, 0.0, 0.0, 10.0, 10.0);
        let b = det(Class::Person, 0.8, 5.0, 0.0, 15.0, 10.0); // overlap 50 of union 150
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        let c = det(Class::Person, 0.7, 1.0, 1.0, 10.0, 10.0); // 81/100 with a
        let v = det(Class::Vehicle, 0.6, 0.0, 0.0, 10.0, 10.0); // same box, other class
        let kept = nms(vec![c, b, v, a], 0.5);
        assert_eq!(kept, vec![a, b, v], "c is suppressed by a; the vehicle survives on the same box");
        assert_eq!(a.foot(), [5.0, 10.0]);
    }

    #[test]
    fn letterbox_round_trip() {
        // 768×576 into 416: scale 416/768, 312 rows high, 52 rows of padding on top.
        let lb = Letterbox::new(768, 576, 416);
        assert_eq!((lb.new_w, lb.new_h, lb.pad_x, lb.pad_y), (416, 312, 0.0, 52.0));
        assert_eq!((lb.in_w, lb.in_h), (416, 416));
        let d = det(Class::Person, 1.0, 104.0, 104.0, 208.0, 364.0);
        let back = lb.unmap(d, 768.0, 576.0);
        assert!((back.x1 - 192.0).abs() < 1e-3 && (back.y1 - 96.0).abs() < 1e-3, "{back:?}");
        assert!((back.x2 - 384.0).abs() < 1e-3 && (back.y2 - 576.0).abs() < 1e-3, "{back:?}");
    }

    #[test]
    fn fitted_letterbox_keeps_the_scale_and_trims_the_padding() {
        // 768×576 at 416: 416×312 of picture, rounded up to 416×320; 4 rows of padding top and bottom.
        let lb = Letterbox::fit(768, 576, 416, 32);
        assert_eq!((lb.in_w, lb.in_h, lb.new_w, lb.new_h, lb.pad_x, lb.pad_y), (416, 320, 416, 312, 0.0, 4.0));
        assert_eq!(lb.scale, Letterbox::new(768, 576, 416).scale);
        let d = det(Class::Person, 1.0, 104.0, 56.0, 208.0, 316.0);
        let back = lb.unmap(d, 768.0, 576.0);
        assert!((back.x1 - 192.0).abs() < 1e-3 && (back.y1 - 96.0).abs() < 1e-3, "{back:?}");
        assert!((back.y2 - 576.0).abs() < 1e-3, "{back:?}");
        // Portrait 1080×1920 → 240×416 (234 rounded up); a square frame stays square.
        let p = Letterbox::fit(1080, 1920, 416, 32);
        assert_eq!((p.in_w, p.in_h, p.new_w, p.new_h), (256, 416, 234, 416));
        let s = Letterbox::fit(640, 640, 416, 32);
        assert_eq!((s.in_w, s.in_h, s.pad_x, s.pad_y), (416, 416, 0.0, 0.0));
    }

    #[test]
    fn coco_class_map() {
        let m = ClassMap::coco(0.45, 0.4);
        assert_eq!(m.lookup(0), Some((Class::Person, 0.45)));
        assert_eq!(m.lookup(7), Some((Class::Vehicle, 0.4)));
        assert_eq!(m.lookup(4), None, "aeroplane is not counted");
        assert_eq!(m.min_threshold(), 0.4);
    }
}
