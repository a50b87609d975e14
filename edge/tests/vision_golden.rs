//! Golden tests with the real NanoDet-g model on real frames (tests/data/vision/): hand-checked counts
//! within a stated tolerance, and agreement with the Python onnxruntime reference
//! (tests/data/vision/reference.py → reference.json). Needs the ONNX Runtime that scripts/setup.sh installs.
// Runs the detector or OpenCV: only in the `vision` build.
#![cfg(feature = "vision")]

use std::path::{Path, PathBuf};

use crowdgrid_edge::vision::detect::{Class, Detection};
use crowdgrid_edge::vision::model::{Detector, ModelConfig, SlicingConfig};
use crowdgrid_edge::vision::pool::DetectorPool;
use opencv::core::Mat;
use opencv::imgcodecs;
use opencv::prelude::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn config() -> ModelConfig {
    ModelConfig { manifest: root().join("models/manifest.toml"), threads: 2, ..ModelConfig::default() }
}

fn image(name: &str) -> Mat {
    let m = imgcodecs::imread(root().join("tests/data/vision").join(name).to_str().unwrap(), imgcodecs::IMREAD_COLOR)
        .unwrap();
    assert!(!m.empty(), "{name} decodes");
    m
}

fn counts(d: &[Detection]) -> (usize, usize) {
    (d.iter().filter(|d| d.class == Class::Person).count(), d.iter().filter(|d| d.class == Class::Vehicle).count())
}

/// Hand-counted from the images (people fully or mostly visible; vtest: the parked van and car).
/// Tolerance: persons within ±1 (a detector misses a person hidden behind another or the sign post),
/// vehicles exact.
const TRUTH: [(&str, usize, usize); 4] =
    [("vtest_100.jpg", 7, 2), ("vtest_300.jpg", 6, 2), ("vtest_500.jpg", 4, 2), ("vtest_700.jpg", 8, 2)];

#[test]
fn golden_counts_on_vtest_frames() {
    let mut det = Detector::load(&config()).unwrap();
    for (name, persons, vehicles) in TRUTH {
        let d = det.detect(&image(name)).unwrap();
        let (p, v) = counts(&d);
        assert!(p.abs_diff(persons) <= 1, "{name}: {p} persons detected, {persons} in the frame: {d:?}");
        assert_eq!(v, vehicles, "{name}: vehicles {d:?}");
    }
}

#[test]
fn still_images_people_and_vehicles() {
    let mut det = Detector::load(&config()).unwrap();
    // dog.jpg: a bicycle and a pickup truck (and a dog, not counted). Tolerance ±1 vehicle: the bicycle
    // is sometimes boxed twice (frame and wheels) at IoU below the NMS threshold.
    let (p, v) = counts(&det.detect(&image("dog.jpg")).unwrap());
    assert_eq!(p, 0);
    assert!((2..=3).contains(&v), "dog.jpg vehicles {v}");
    // kite_half.jpg: a beach with 3 people large enough to see plus many distant specks. Whole-frame
    // detection finds the near ones.
    let (p, _) = counts(&det.detect(&image("kite_half.jpg")).unwrap());
    assert!((2..=4).contains(&p), "kite_half.jpg persons {p}");
}

#[test]
fn sliced_inference_finds_small_distant_people() {
    let whole = Detector::load(&config()).unwrap().detect(&image("kite_half.jpg")).unwrap();
    let mut cfg = config();
    cfg.slicing = Some(SlicingConfig { tile: 256, overlap: 0.25, full_frame: true });
    let sliced = Detector::load(&cfg).unwrap().detect(&image("kite_half.jpg")).unwrap();
    let (pw, ps) = (counts(&whole).0, counts(&sliced).0);
    assert!(ps > pw, "tiles upsample small people: whole frame {pw}, sliced {ps}");
}

fn iou(a: &Detection, b: &[f64]) -> f64 {
    let w = (a.x2 as f64).min(b[2]) - (a.x1 as f64).max(b[0]);
    let h = (a.y2 as f64).min(b[3]) - (a.y1 as f64).max(b[1]);
    let inter = w.max(0.0) * h.max(0.0);
    let area_a = ((a.x2 - a.x1) * (a.y2 - a.y1)) as f64;
    inter / (area_a + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn detections_match_the_python_onnxruntime_reference() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/data/vision/reference.json")).unwrap())
            .unwrap();
    // The Python pipeline letterboxes to the 416×416 square.
    let mut det = Detector::load(&ModelConfig { fit_input: false, ..config() }).unwrap();
    for (name, want) in reference["images"].as_object().unwrap() {
        let got = det.detect(&image(name)).unwrap();
        let want = want.as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{name}: rust {got:?}\npython {want:?}");
        for w in want {
            let b: Vec<f64> = w["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            let score = w["score"].as_f64().unwrap();
            let class = if w["class"] == "person" { Class::Person } else { Class::Vehicle };
            let best = got
                .iter()
                .filter(|g| g.class == class)
                .map(|g| (iou(g, &b), (g.score as f64 - score).abs()))
                .fold((0.0, 1.0), |a, x| if x.0 > a.0 { x } else { a });
            assert!(
                best.0 > 0.95 && best.1 < 0.02,
                "{name}: python box {b:?} {score} best match IoU {} Δscore {}",
                best.0,
                best.1
            );
        }
    }
}

#[test]
fn the_fitted_input_finds_what_the_square_finds() {
    // 416×320 instead of 416×416 for a 768×576 frame: same weights and scale, less padding. Every box of
    // the square run has a partner of the same class (IoU > 0.8) in the fitted run and vice versa, except
    // for boxes near a threshold (score within 0.1 of it).
    let mut square = Detector::load(&ModelConfig { fit_input: false, ..config() }).unwrap();
    let mut fitted = Detector::load(&config()).unwrap();
    let mut matched = 0;
    for name in ["vtest_100.jpg", "vtest_300.jpg", "vtest_500.jpg", "vtest_700.jpg", "dog.jpg", "person.jpg"] {
        let img = image(name);
        let (a, b) = (square.detect(&img).unwrap(), fitted.detect(&img).unwrap());
        for (from, to, label) in [(&a, &b, "square→fitted"), (&b, &a, "fitted→square")] {
            for d in from.iter().filter(|d| d.score > 0.55) {
                let best = to
                    .iter()
                    .filter(|o| o.class == d.class)
                    .map(|o| iou(o, &[d.x1 as f64, d.y1 as f64, d.x2 as f64, d.y2 as f64]))
                    .fold(0.0, f64::max);
                assert!(best > 0.8, "{name} {label}: {d:?} has no partner (best IoU {best})\n{a:?}\n{b:?}");
                matched += 1;
            }
        }
    }
    assert!(matched >= 40, "only {matched} confident boxes compared");
}

#[test]
fn raw_outputs_match_the_python_reference_on_a_synthetic_tensor() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/data/vision/reference.json")).unwrap())
            .unwrap();
    let s = 416usize;
    let mut t = vec![0f32; 3 * s * s];
    for c in 0..3 {
        for y in 0..s {
            for x in 0..s {
                t[(c * s + y) * s + x] = ((((c * 7 + y * 3 + x) % 255) as f32) - 128.0) / 64.0;
            }
        }
    }
    let mut det = Detector::load(&config()).unwrap();
    let outs = det.raw_outputs(t).unwrap();
    assert_eq!(outs.len(), 6);
    for (name, shape, data) in outs {
        let r = &reference["synthetic"][&name];
        let want_shape: Vec<i64> = r["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(shape, want_shape, "{name}");
        for (i, w) in r["head"].as_array().unwrap().iter().enumerate() {
            assert!((data[i] as f64 - w.as_f64().unwrap()).abs() < 1e-4, "{name}[{i}]: {} vs {w}", data[i]);
        }
        let sum: f64 = data.iter().map(|v| *v as f64).sum();
        let want = r["sum"].as_f64().unwrap();
        assert!((sum - want).abs() <= 1e-3 * want.abs().max(1.0), "{name}: sum {sum} vs {want}");
    }
}

#[test]
fn a_wrong_checksum_or_missing_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(root().join("models/manifest.toml")).unwrap();
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    std::fs::write(dir.path().join("nanodet_g_coco_hw.onnx"), b"truncated").unwrap();
    let cfg = ModelConfig { manifest: dir.path().join("manifest.toml"), ..config() };
    let e = Detector::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("sha256") && e.contains("nanodet_g_coco_hw.onnx"), "{e}");
    let cfg = ModelConfig { name: "ssdlite-mnv2-person".into(), ..cfg };
    let e = Detector::load(&cfg).unwrap_err().to_string();
    assert!(e.contains("ssdlite_mnv2_person.onnx"), "{e}");
}

#[test]
fn ssd_person_model_runs_behind_the_same_interface() {
    let cfg = ModelConfig { name: "ssdlite-mnv2-person".into(), person_threshold: 0.3, ..config() };
    let mut det = Detector::load(&cfg).unwrap();
    let d = det.detect(&image("vtest_300.jpg")).unwrap();
    let (p, v) = counts(&d);
    assert_eq!(v, 0, "a person-only model reports no vehicles");
    assert!((3..=7).contains(&p), "vtest_300 (6 people): {d:?}");
}

#[test]
fn a_pool_of_two_workers_returns_every_frame_in_order_with_the_same_detections() {
    let names = ["vtest_100.jpg", "vtest_300.jpg", "vtest_500.jpg", "vtest_700.jpg", "dog.jpg", "person.jpg"];
    let mut single = Detector::load(&config()).unwrap();
    let want: Vec<Vec<Detection>> = names.iter().map(|n| single.detect(&image(n)).unwrap()).collect();
    let workers = Detector::load_workers(&ModelConfig { workers: 2, ..config() }).unwrap();
    assert_eq!(workers.len(), 2);
    let mut pool = DetectorPool::<(usize, Mat)>::start("test", workers).unwrap();
    // Three rounds through the images: submit runs ahead of collection, results still come back in order.
    let mut got = Vec::new();
    for round in 0..3 {
        for (i, n) in names.iter().enumerate() {
            assert!(pool.submit((round * names.len() + i, image(n))));
            while pool.in_flight() > 3 {
                got.push(pool.next(std::time::Duration::from_secs(30)).expect("a result"));
            }
        }
    }
    while pool.in_flight() > 0 {
        got.push(pool.next(std::time::Duration::from_secs(30)).expect("a result"));
    }
    assert_eq!(got.len(), 3 * names.len());
    for (k, ((seq, _), res)) in got.into_iter().enumerate() {
        assert_eq!(seq, k, "submission order");
        assert_eq!(res.unwrap(), want[k % names.len()], "{}: same boxes as one detector", names[k % names.len()]);
    }
    assert!(pool.model_time() > std::time::Duration::ZERO);
    assert_eq!(pool.next(std::time::Duration::from_millis(1)).map(|_| ()), None, "nothing in flight");
}
