//! Privacy of evidence snapshots checked independently of the detector: on real frames whose people were
//! marked by hand (edge/tests/data/privacy_boxes.json), a camera with `evidence` on (the demo's model settings
//! and 64 KiB limit) is asked for a snapshot exactly as a ticket asks it, and every marked person must have
//! lost nearly all of their detail in the JPEG it sends, while the empty scene keeps most of its own.
//! Like vision_evidence.rs, needs the model in models/ and the ONNX Runtime that scripts/setup.sh installs.
// Runs the detector or OpenCV: only in the `vision` build.
#![cfg(feature = "vision")]

use std::time::{Duration, Instant};

use crowdgrid_edge::config::SourceConfig;
use crowdgrid_edge::evidence::EvidenceAsk;
use crowdgrid_edge::vision::evidence::blurred_jpeg;
use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;

mod common;
mod privacy;
use common::root;
use privacy::{Marked, MAX_KEPT};

/// The demo camera's limit (config/boai-school/edge-camera.toml: `evidence = { max_bytes = 65536 }`).
const MAX_BYTES: usize = 65536;

/// Runs a camera source with `evidence` on over a folder holding only `m`'s frame, asks it for a snapshot as
/// the edge's ticket listener does, and returns the JPEG it answers.
async fn snapshot(m: &Marked) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("tests/data/vision").join(&m.file), dir.path().join(&m.file)).unwrap();
    let (w, h) = (m.image.cols(), m.image.rows());
    // The demo camera's model line (2 workers × 1 thread, counting at 0.45: the camera lowers persons to
    // `privacy_threshold`, 0.2, by itself because evidence is on) and its evidence limit; one zone over the
    // whole frame.
    let cfg: SourceConfig = toml::from_str(&format!(
        r#"type = "camera"
id = "privacy-cam"
video = {{ kind = "folder", dir = "{dir}", loop = true }}
model = {{ manifest = "{manifest}", name = "nanodet-g-coco", threads = 2, workers = 2, person_threshold = 0.45, vehicle_threshold = 0.4 }}
max_fps = 5.0
frame_queue = 1
report_interval_ms = 1000
evidence = {{ max_bytes = {MAX_BYTES} }}
calibration = {{ image = [[0, 0], [{w}, 0], [{w}, {h}], [0, {h}]], ground = [[0, 20], [30, 20], [30, 0], [0, 0]] }}
zones = [ {{ zone = "gate-plaza", polygon = [[0, 0], [{w}, 0], [{w}, {h}], [0, {h}]] }} ]"#,
        dir = dir.path().display(),
        manifest = root().join("models/manifest.toml").display()
    ))
    .unwrap();
    let (cx, mut readings, health, shutdown) = common::context("boai-school", "boai-school-edge-1");
    let hub = cx.evidence.clone();
    let started = cfg.start(cx).await.unwrap();
    tokio::spawn(async move { while readings.recv().await.is_some() {} });
    let deadline = Instant::now() + Duration::from_secs(60);
    let jpeg = loop {
        let cameras = hub.cameras_for("gate-plaza");
        assert_eq!(cameras.len(), 1, "the camera offers snapshots of its zone");
        let (reply, answer) = tokio::sync::oneshot::channel();
        cameras[0].1.send(EvidenceAsk { ticket: 1, zone: "gate-plaza".into(), reply }).unwrap();
        match tokio::time::timeout(Duration::from_secs(20), answer).await {
            Ok(Ok(Ok(jpeg))) => break jpeg,
            Ok(Ok(Err(why))) if why.contains("no frame analysed yet") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("{}: no snapshot: {other:?}; health {:?}", m.file, health.snapshot()),
        }
    };
    shutdown.cancel();
    started.handle.await.unwrap();
    jpeg
}

/// `m`'s frame with every marked person (box grown by 10 %, as the pipeline grows its boxes) under a light
/// 5×5 box blur: softened, yet posture, clothes and hair stay plain to see.
fn lightly_blurred(m: &Marked) -> Mat {
    let mut img = m.image.try_clone().unwrap();
    let frame = Rect::new(0, 0, img.cols(), img.rows());
    for p in &m.people {
        let (gx, gy) = ((p.width + 9) / 10, (p.height + 9) / 10);
        let r = Rect::new(p.x - gx, p.y - gy, p.width + 2 * gx, p.height + 2 * gy) & frame;
        let src = Mat::roi(&img, r).unwrap().try_clone().unwrap();
        let mut soft = Mat::default();
        imgproc::blur_def(&src, &mut soft, Size::new(5, 5)).unwrap();
        soft.copy_to(&mut Mat::roi_mut(&mut img, r).unwrap()).unwrap();
    }
    img
}

fn range(v: &[f64]) -> (f64, f64) {
    (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hand_marked_person_is_blurred_in_the_snapshot_a_camera_sends() {
    let frames = privacy::marked(&root());
    assert!(frames.len() >= 5 && frames.iter().map(|m| m.people.len()).sum::<usize>() >= 26, "the marked set");
    let mut failures = Vec::new();
    for m in &frames {
        let jpeg = snapshot(m).await;
        assert!(jpeg.len() <= MAX_BYTES, "{}: {} bytes", m.file, jpeg.len());
        let out = privacy::decode(&jpeg);
        assert_eq!((out.cols(), out.rows()), (m.image.cols(), m.image.rows()), "{}: 64 KiB fits at full size", m.file);
        let (people, control) = privacy::kept(m, &out);
        // The criterion tells a blurred person from a visible one at this size: through the same encoder and
        // limit, the frame with nothing blurred, and with the marked people only lightly blurred, keep far more
        // than MAX_KEPT of every one of them.
        let (plain, _) = privacy::kept(m, &privacy::decode(&blurred_jpeg(&m.image, &[], MAX_BYTES).unwrap()));
        let (light, _) =
            privacy::kept(m, &privacy::decode(&blurred_jpeg(&lightly_blurred(m), &[], MAX_BYTES).unwrap()));
        let ((lo, hi), (plo, phi), (llo, lhi)) = (range(&people), range(&plain), range(&light));
        eprintln!(
            "{}: {} people keep {lo:.3}..{hi:.3} of their detail (unblurred {plo:.3}..{phi:.3}, 5x5 box blur \
             {llo:.3}..{lhi:.3}); the empty control keeps {control:.3}; {} bytes",
            m.file,
            people.len(),
            jpeg.len()
        );
        assert!(plo > 2.0 * MAX_KEPT, "{}: unblurred people keep {plo:.3}..{phi:.3}", m.file);
        assert!(llo > MAX_KEPT, "{}: lightly blurred people keep {llo:.3}..{lhi:.3}", m.file);
        for (i, (k, r)) in people.iter().zip(&m.people).enumerate() {
            if *k >= MAX_KEPT {
                let b = [r.x, r.y, r.x + r.width, r.y + r.height];
                failures.push(format!("{} person {i} {b:?} keeps {k:.3} (unblurred {:.3})", m.file, plain[i]));
            }
        }
        // The scene around them is kept (the JPEG loses a little): a snapshot is evidence, not a grey square.
        assert!(control > 0.5, "{}: the empty control region keeps {control:.3} of its detail", m.file);
    }
    assert!(
        failures.is_empty(),
        "people marked by hand left visible (each must keep < {MAX_KEPT}):\n{}",
        failures.join("\n")
    );
}
