//! The labelled-set file (`labels.toml`) that `crowdgrid eval-model` measures a detector against: per image the
//! persons and vehicles a person counted by eye and, optionally, their boxes; per camera, optional image-zone
//! polygons so counts can be compared per zone. Format and an example: `docs/EVAL.md`.
//!
//! Every problem in the file is reported at once (a labeller fixing a file of 40 images should not meet its
//! errors one run at a time), with the key path of each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crowdgrid_proto::config::{self, ConfigError, Problems};
use serde::{Deserialize, Serialize};

use crate::vision::detect::{Class, Detection};
use crate::vision::geometry::Point;
use crate::vision::zones::{self, ImageZone};

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelFile {
    /// Name of the set (reports and the console key results by it).
    pub name: String,
    /// What the set is.
    #[serde(default)]
    pub description: String,
    /// Cameras whose images share image zones.
    #[serde(default)]
    pub cameras: BTreeMap<String, LabelCamera>,
    /// The labelled images.
    pub images: Vec<LabelImage>,
}

/// Image zones of one camera.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelCamera {
    /// Zone polygons in image pixels; a box belongs to the zone holding its bottom-centre point (as at the edge).
    #[serde(default)]
    pub zones: Vec<LabelZone>,
}

/// One image zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelZone {
    /// Zone name.
    pub zone: String,
    /// Polygon `[[x, y], ...]`, 3 or more points.
    pub polygon: Vec<Point>,
}

/// One labelled image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelImage {
    /// Image file, relative to the labels file.
    pub file: PathBuf,
    /// Camera (key of `[cameras]`) whose zones apply.
    #[serde(default)]
    pub camera: Option<String>,
    /// Persons counted by eye.
    pub persons: u32,
    /// Vehicles counted by eye.
    pub vehicles: u32,
    /// The counted objects' boxes (all of them, or none).
    #[serde(default)]
    pub boxes: Vec<LabelBox>,
}

/// One labelled box.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelBox {
    /// Person or vehicle.
    pub class: Class,
    /// `[x1, y1, x2, y2]` in image pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl LabelBox {
    /// As a detection of score 1 (for IoU and the foot point).
    pub fn detection(&self) -> Detection {
        let [x1, y1, x2, y2] = self.bbox;
        Detection { class: self.class, raw_class: 0, score: 1.0, x1, y1, x2, y2 }
    }
}

/// A loaded, checked set.
#[derive(Debug, Clone)]
pub struct LabelSet {
    /// The file as read.
    pub file: LabelFile,
    /// Its path.
    pub path: PathBuf,
}

/// Largest image count accepted (a bound on memory: detections of every image are kept for the sweep).
pub const MAX_IMAGES: usize = 10_000;

impl LabelSet {
    /// Reads and checks a labels file; every problem is listed in one error.
    pub fn load(path: &Path) -> Result<LabelSet, ConfigError> {
        let file: LabelFile = config::load_toml(path)?;
        let mut problems = Problems::new();
        file.check(path, &mut problems);
        problems.into_result(path)?;
        Ok(LabelSet { file, path: path.to_path_buf() })
    }

    /// The image's path on disk.
    pub fn image_path(&self, image: &LabelImage) -> PathBuf {
        config::resolve(&self.path, &image.file)
    }

    /// The zones that apply to `image` (none without a camera).
    pub fn zones_of(&self, image: &LabelImage) -> &[LabelZone] {
        image.camera.as_ref().and_then(|c| self.file.cameras.get(c)).map(|c| c.zones.as_slice()).unwrap_or(&[])
    }
}

impl LabelFile {
    fn check(&self, path: &Path, problems: &mut Problems) {
        if self.name.trim().is_empty() {
            problems.push("name", "must not be empty");
        }
        if self.images.is_empty() {
            problems.push("images", "no images");
        }
        if self.images.len() > MAX_IMAGES {
            problems.push("images", format!("{} images, at most {MAX_IMAGES}", self.images.len()));
        }
        for (name, cam) in &self.cameras {
            for (i, z) in cam.zones.iter().enumerate() {
                let at = format!("cameras.{name}.zones[{i}]");
                if z.polygon.len() < 3 {
                    problems.push(&at, "a polygon needs 3 or more points");
                }
                if z.polygon.iter().flatten().any(|v| !v.is_finite()) {
                    problems.push(&at, "polygon points must be finite numbers");
                }
                if cam.zones[..i].iter().any(|o| o.zone == z.zone) {
                    problems.push(&at, format!("zone {:?} listed twice", z.zone));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, img) in self.images.iter().enumerate() {
            let at = format!("images[{i}] ({})", img.file.display());
            if !seen.insert(&img.file) {
                problems.push(&at, "image listed twice");
            }
            if !config::resolve(path, &img.file).is_file() {
                problems.push(&at, "file not found");
            }
            if let Some(c) = &img.camera {
                if !self.cameras.contains_key(c) {
                    problems.push(&at, format!("camera {c:?} is not in [cameras]"));
                }
            }
            for (j, b) in img.boxes.iter().enumerate() {
                let [x1, y1, x2, y2] = b.bbox;
                if b.bbox.iter().any(|v| !v.is_finite() || *v < 0.0) || x2 <= x1 || y2 <= y1 {
                    problems.push(format!("{at}.boxes[{j}]"), "want [x1, y1, x2, y2] with x2 > x1 ≥ 0, y2 > y1 ≥ 0");
                }
            }
            if !img.boxes.is_empty() {
                let (p, v) = count_boxes(&img.boxes);
                if p != img.persons {
                    problems.push(&at, format!("persons = {} but {p} person boxes", img.persons));
                }
                if v != img.vehicles {
                    problems.push(&at, format!("vehicles = {} but {v} vehicle boxes", img.vehicles));
                }
            }
        }
    }
}

fn count_boxes(boxes: &[LabelBox]) -> (u32, u32) {
    let p = boxes.iter().filter(|b| b.class == Class::Person).count() as u32;
    (p, boxes.len() as u32 - p)
}

/// Per-zone counts of a class: how many `dets` of `class` stand in each zone, in zone order — by the edge's own
/// rule ([`zones::count`]: the bottom-centre point, a foot on the frame's bottom edge counting in the zone above).
pub fn zone_counts(zones: &[LabelZone], dets: &[Detection], class: Class) -> Vec<u32> {
    let image: Vec<ImageZone> = zones
        .iter()
        .map(|z| ImageZone { zone: z.zone.clone(), polygon: z.polygon.clone(), vehicle_lane: false, area_m2: 1.0 })
        .collect();
    zones::count(&image, dets)
        .into_iter()
        .map(|c| if class == Class::Person { c.person } else { c.vehicle } as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::write(dir.join("a.jpg"), b"x").unwrap();
        let p = dir.join("labels.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            r#"
name = "t"
[cameras.c]
zones = [{ zone = "z", polygon = [[0, 0], [1, 0]] }]
[[images]]
file = "a.jpg"
camera = "nope"
persons = 2
vehicles = 0
boxes = [{ class = "person", box = [10, 10, 5, 20] }]
[[images]]
file = "missing.jpg"
persons = 0
vehicles = 0
"#,
        );
        let err = LabelSet::load(&p).unwrap_err().to_string();
        for want in [
            "cameras.c.zones[0]: a polygon needs 3",
            "camera \"nope\" is not in [cameras]",
            "boxes[0]: want [x1, y1, x2, y2]",
            "persons = 2 but 1 person boxes",
            "images[1] (missing.jpg): file not found",
        ] {
            assert!(err.contains(want), "{want:?} missing from:\n{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            write(dir.path(), "name = \"t\"\n[[images]]\nfile = \"a.jpg\"\npersons = 1\nvehicles = 0\npeople = 3\n");
        let err = LabelSet::load(&p).unwrap_err().to_string();
        assert!(err.contains("people"), "{err}");
    }

    #[test]
    fn zone_counts_use_the_bottom_centre() {
        let zones = vec![
            LabelZone { zone: "top".into(), polygon: vec![[0.0, 0.0], [100.0, 0.0], [100.0, 50.0], [0.0, 50.0]] },
            LabelZone {
                zone: "bottom".into(),
                polygon: vec![[0.0, 50.0], [100.0, 50.0], [100.0, 100.0], [0.0, 100.0]],
            },
        ];
        // Head in the top zone, feet in the bottom one: it counts in the bottom zone.
        let tall = LabelBox { class: Class::Person, bbox: [10.0, 20.0, 20.0, 80.0] }.detection();
        let small = LabelBox { class: Class::Person, bbox: [50.0, 10.0, 60.0, 30.0] }.detection();
        let car = LabelBox { class: Class::Vehicle, bbox: [50.0, 60.0, 90.0, 90.0] }.detection();
        assert_eq!(zone_counts(&zones, &[tall, small, car], Class::Person), vec![1, 1]);
        assert_eq!(zone_counts(&zones, &[tall, small, car], Class::Vehicle), vec![0, 1]);
    }
}
