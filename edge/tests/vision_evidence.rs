//! Evidence snapshots on a real frame: every person the model finds is unrecognisable in the JPEG, the rest
//! of the picture is kept, and the size limit holds (quality steps down, then the image shrinks).
// Runs the detector or OpenCV: only in the `vision` build.
#![cfg(feature = "vision")]

use std::path::{Path, PathBuf};

use crowdgrid_edge::vision::detect::{Class, Detection};
use crowdgrid_edge::vision::evidence::{blurred_jpeg, EvidenceError};
use crowdgrid_edge::vision::model::{Detector, ModelConfig};
use opencv::core::{self, Mat, Rect, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Variance of the Laplacian of a grey region: how much fine detail (edges, faces, clothing) it holds.
fn detail(img: &Mat, r: Rect) -> f64 {
    let roi = Mat::roi(img, r).unwrap();
    let mut grey = Mat::default();
    imgproc::cvt_color_def(&roi, &mut grey, imgproc::COLOR_BGR2GRAY).unwrap();
    let mut lap = Mat::default();
    imgproc::laplacian_def(&grey, &mut lap, core::CV_64F).unwrap();
    let (mut mean, mut dev) = (core::Scalar::default(), core::Scalar::default());
    core::mean_std_dev_def(&lap, &mut mean, &mut dev).unwrap();
    dev[0] * dev[0]
}

fn rect(d: &Detection) -> Rect {
    Rect::new(d.x1 as i32, d.y1 as i32, (d.x2 - d.x1) as i32, (d.y2 - d.y1) as i32)
}

#[test]
fn every_person_is_blurred_the_scene_is_kept_and_the_size_limit_holds() {
    let frame =
        imgcodecs::imread(root().join("tests/data/vision/vtest_300.jpg").to_str().unwrap(), imgcodecs::IMREAD_COLOR)
            .unwrap();
    let cfg = ModelConfig { manifest: root().join("models/manifest.toml"), ..ModelConfig::default() };
    let dets = Detector::load(&cfg).unwrap().detect(&frame).unwrap();
    let people: Vec<&Detection> = dets.iter().filter(|d| d.class == Class::Person).collect();
    assert!(people.len() >= 4, "vtest_300 shows 6 people: {dets:?}");

    let jpeg = blurred_jpeg(&frame, &dets, 64 * 1024).unwrap();
    assert!(jpeg.len() <= 64 * 1024 && jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "{} bytes", jpeg.len());
    let out = imgcodecs::imdecode(&Vector::<u8>::from_slice(&jpeg), imgcodecs::IMREAD_COLOR).unwrap();
    assert_eq!((out.cols(), out.rows()), (frame.cols(), frame.rows()), "64 KiB fits at full size");
    for p in &people {
        let (before, after) = (detail(&frame, rect(p)), detail(&out, rect(p)));
        assert!(after < before * 0.15, "person {p:?}: detail {before:.0} → {after:.0}, not blurred enough");
    }
    // The grass and path in the bottom-left quarter hold nobody: kept (JPEG loses a little).
    let empty = Rect::new(0, 400, 300, 170);
    assert!(people.iter().all(|p| (rect(p) & empty).area() == 0), "the control region is empty");
    let (before, after) = (detail(&frame, empty), detail(&out, empty));
    assert!(after > before * 0.5, "the scene keeps its detail: {before:.0} → {after:.0}");

    // A tight limit: lower quality, then half size, still a valid JPEG under the limit.
    let small = blurred_jpeg(&frame, &dets, 8 * 1024).unwrap();
    assert!(small.len() <= 8 * 1024, "{} bytes", small.len());
    let out = imgcodecs::imdecode(&Vector::<u8>::from_slice(&small), imgcodecs::IMREAD_COLOR).unwrap();
    assert!(out.cols() <= frame.cols() && !out.empty());
    // An impossible one is an error, not a panic or an oversized file.
    assert!(matches!(blurred_jpeg(&frame, &dets, 200), Err(EvidenceError::TooLarge(200))));
}

#[test]
fn the_privacy_threshold_blurs_people_the_counting_threshold_misses() {
    // vtest_100: a man half hidden behind the sign post scores under the counting threshold (0.45). A camera
    // with `evidence` detects down to `privacy_threshold` (0.2) so its snapshot blurs him too.
    let frame =
        imgcodecs::imread(root().join("tests/data/vision/vtest_100.jpg").to_str().unwrap(), imgcodecs::IMREAD_COLOR)
            .unwrap();
    let base = ModelConfig { manifest: root().join("models/manifest.toml"), ..ModelConfig::default() };
    let privacy = ModelConfig { person_threshold: base.privacy_threshold, ..base.clone() };
    let counted = Detector::load(&base).unwrap().detect(&frame).unwrap();
    let all = Detector::load(&privacy).unwrap().detect(&frame).unwrap();
    let faint: Vec<&Detection> = all
        .iter()
        .filter(|d| d.class == Class::Person && d.score < base.person_threshold)
        // Not already covered by a counted box (those are blurred either way).
        .filter(|d| counted.iter().all(|c| c.class != Class::Person || (rect(c) & rect(d)).area() == 0))
        .collect();
    assert!(!faint.is_empty(), "some people are only found under 0.45: {all:?}");
    let decode = |dets: &[Detection]| {
        let jpeg = blurred_jpeg(&frame, dets, 64 * 1024).unwrap();
        imgcodecs::imdecode(&Vector::<u8>::from_slice(&jpeg), imgcodecs::IMREAD_COLOR).unwrap()
    };
    let (strict, kind) = (decode(&counted), decode(&all));
    for d in faint {
        let (orig, kept, blurred) = (detail(&frame, rect(d)), detail(&strict, rect(d)), detail(&kind, rect(d)));
        assert!(kept > orig * 0.5, "{d:?}: the counting threshold leaves it visible ({orig:.0} → {kept:.0})");
        assert!(blurred < orig * 0.15, "{d:?}: the privacy threshold blurs it ({orig:.0} → {blurred:.0})");
    }
}
