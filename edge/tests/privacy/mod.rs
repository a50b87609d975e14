//! People marked by hand on real frames (edge/tests/data/privacy_boxes.json) and the measure of how much of
//! each one an evidence snapshot still shows. Shared by edge/tests/vision_privacy.rs and the end-to-end
//! tests/evidence.rs (`#[path]`), independent of the detector whose boxes the pipeline blurs.
#![allow(dead_code)]

use std::path::Path;

use opencv::core::{self, Mat, Rect, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

/// A marked person keeps less than this fraction of its [`detail`] in a snapshot (the largest over the whole
/// box and its thirds, see [`kept`]). Measured on the 26 people of privacy_boxes.json (vision_privacy.rs
/// prints it per frame): the camera's snapshot at 64 KiB keeps 0.005–0.097 (worst: the person in black on the
/// road in vtest_700, 0.097, then the head of the man behind the sign in vtest_100, 0.085); at the 32 KiB of
/// tests/evidence.rs, 0.045–0.060 on vtest_300. The same frames through the same encoder and limit keep
/// 0.974–1.010 unblurred, and 0.339–0.481 with a light 5×5 box blur on each person (softened, still plain to
/// see). So 0.2: twice the worst real blur, and the lightly blurred people keep at least 1.7 times it.
pub const MAX_KEPT: f64 = 0.2;

/// One hand-marked frame.
#[derive(Debug)]
pub struct Marked {
    /// File name, e.g. "vtest_300.jpg".
    pub file: String,
    /// The image, decoded as the camera decodes it (BGR).
    pub image: Mat,
    /// Every clearly visible person, `[x0, y0, x1, y1)` in frame pixels.
    pub people: Vec<Rect>,
    /// A region holding nobody.
    pub control: Rect,
}

fn rect(v: &serde_json::Value) -> Rect {
    let c: Vec<i32> = v.as_array().unwrap().iter().map(|n| n.as_i64().unwrap() as i32).collect();
    assert_eq!(c.len(), 4, "{v}");
    Rect::new(c[0], c[1], c[2] - c[0], c[3] - c[1])
}

/// Every frame of privacy_boxes.json (`root`: the repository).
pub fn marked(root: &Path) -> Vec<Marked> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("edge/tests/data/privacy_boxes.json")).unwrap()).unwrap();
    json["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = root.join(f["path"].as_str().unwrap());
            let image = imgcodecs::imread(path.to_str().unwrap(), imgcodecs::IMREAD_COLOR).unwrap();
            let (w, h) = (f["width"].as_i64().unwrap() as i32, f["height"].as_i64().unwrap() as i32);
            assert_eq!((image.cols(), image.rows()), (w, h), "{} decodes at the marked size", path.display());
            let people: Vec<Rect> = f["people"].as_array().unwrap().iter().map(|p| rect(&p["box"])).collect();
            let control = rect(&f["control"]);
            let frame = Rect::new(0, 0, w, h);
            for r in people.iter().chain([&control]) {
                assert!(r.width > 0 && r.height > 0 && (*r & frame) == *r, "{path:?}: {r:?} inside the frame");
            }
            assert!(people.iter().all(|p| (*p & control).area() == 0), "{path:?}: the control holds nobody");
            Marked { file: f["file"].as_str().unwrap().to_string(), image, people, control }
        })
        .collect()
}

/// The marked frame named `file`.
pub fn marked_frame(root: &Path, file: &str) -> Marked {
    marked(root).into_iter().find(|m| m.file == file).unwrap_or_else(|| panic!("{file} is not marked"))
}

/// Fine detail of a region (edges, faces, limbs, folds): the variance of the Laplacian of its grey image
/// smoothed at σ = 1.5 px (a Laplacian of Gaussian). The smoothing makes it measure structure a few pixels
/// across rather than pixel noise: the plain Laplacian falls to 0.09–0.28 under a 3×3 box blur that leaves
/// every person plain to see, as low as real blurring on some people, while this one stays at 0.66–0.75 there.
pub fn detail(img: &Mat, r: Rect) -> f64 {
    let roi = Mat::roi(img, r).unwrap();
    let mut grey = Mat::default();
    imgproc::cvt_color_def(&roi, &mut grey, imgproc::COLOR_BGR2GRAY).unwrap();
    let mut float = Mat::default();
    grey.convert_to_def(&mut float, core::CV_64F).unwrap();
    let mut smooth = Mat::default();
    imgproc::gaussian_blur_def(&float, &mut smooth, Size::new(0, 0), 1.5).unwrap();
    let mut lap = Mat::default();
    imgproc::laplacian_def(&smooth, &mut lap, core::CV_64F).unwrap();
    let (mut mean, mut dev) = (core::Scalar::default(), core::Scalar::default());
    core::mean_std_dev_def(&lap, &mut mean, &mut dev).unwrap();
    dev[0] * dev[0]
}

/// A JPEG decoded as BGR.
pub fn decode(jpeg: &[u8]) -> Mat {
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    let m = imgcodecs::imdecode(&Vector::<u8>::from_slice(jpeg), imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!m.empty(), "the JPEG decodes");
    m
}

/// Detail kept in `out` over detail in the original, for every marked person (in the order of the JSON; the
/// largest of the whole box and its thirds) and then the control region. A snapshot shrunk to fit its size limit is compared with the original
/// shrunk the same way (INTER_AREA), boxes scaled: a smaller picture is not by itself a blurred one.
pub fn kept(m: &Marked, out: &Mat) -> (Vec<f64>, f64) {
    let (w, h) = (m.image.cols(), m.image.rows());
    let (original, scale) = if (out.cols(), out.rows()) == (w, h) {
        (m.image.try_clone().unwrap(), 1.0)
    } else {
        let mut small = Mat::default();
        imgproc::resize(&m.image, &mut small, Size::new(out.cols(), out.rows()), 0.0, 0.0, imgproc::INTER_AREA)
            .unwrap();
        (small, f64::from(out.cols()) / f64::from(w))
    };
    let at = |r: Rect| {
        let s = |v: i32| (f64::from(v) * scale).round() as i32;
        let (x0, y0) = (s(r.x), s(r.y));
        let (x1, y1) = (s(r.x + r.width).max(x0 + 3), s(r.y + r.height).max(y0 + 3));
        Rect::new(x0, y0, (x1 - x0).min(out.cols() - x0), (y1 - y0).min(out.rows() - y0))
    };
    let ratio = |r: Rect| detail(out, at(r)) / detail(&original, at(r)).max(1e-9);
    // A person counts by their least blurred part: the whole box and its top (the head), middle and bottom
    // thirds, so a box blurred below the shoulders only does not pass on its average.
    let person = |p: Rect| {
        let third = p.height / 3;
        let bands = [0, 1, 2]
            .map(|i| Rect::new(p.x, p.y + i * third, p.width, if i == 2 { p.height - 2 * third } else { third }));
        bands.into_iter().map(ratio).fold(ratio(p), f64::max)
    };
    (m.people.iter().map(|&p| person(p)).collect(), ratio(m.control))
}

/// Asserts every person marked on `m` keeps less than [`MAX_KEPT`] of its detail in the snapshot `jpeg`
/// (all failures in one message, with the numbers); returns the kept fractions (people, control).
pub fn assert_people_blurred(m: &Marked, jpeg: &[u8]) -> (Vec<f64>, f64) {
    let (people, control) = kept(m, &decode(jpeg));
    let visible: Vec<String> = people
        .iter()
        .zip(&m.people)
        .enumerate()
        .filter(|(_, (k, _))| **k >= MAX_KEPT)
        .map(|(i, (k, r))| format!("person {i} [{}, {}, {}, {}] keeps {k:.3}", r.x, r.y, r.x + r.width, r.y + r.height))
        .collect();
    assert!(
        visible.is_empty(),
        "{}: hand-marked people not blurred (each must keep < {MAX_KEPT} of its detail): {}",
        m.file,
        visible.join("; ")
    );
    (people, control)
}
