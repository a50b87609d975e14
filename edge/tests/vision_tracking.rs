//! Tracking on real footage: NanoDet-g on vtest.avi as the Boai camera sees it (every other frame: 5 frames/s),
//! the tracker over its boxes. Tracked occupancy varies less from frame to frame than the raw per-frame count
//! (a person the detector drops for a frame stays counted), measured and asserted loosely; the crossings of the
//! Boai camera's gate line are printed. Needs the ONNX Runtime and vtest.avi that scripts/setup.sh installs.

use std::path::{Path, PathBuf};

use crowdgrid_edge::vision::detect::Class;
use crowdgrid_edge::vision::model::{Detector, ModelConfig};
use crowdgrid_edge::vision::track::lines::{Direction, LineCounter};
use crowdgrid_edge::vision::track::{Tracker, TrackerConfig};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Mean absolute change of a count from one frame to the next.
fn jitter(counts: &[usize]) -> f64 {
    counts.windows(2).map(|w| w[0].abs_diff(w[1]) as f64).sum::<f64>() / (counts.len() - 1) as f64
}

#[test]
fn tracked_occupancy_is_steadier_than_raw_counts() {
    let cfg = ModelConfig {
        manifest: root().join("models/manifest.toml"),
        threads: 2,
        fit_input: true,
        person_threshold: 0.45,
        ..ModelConfig::default()
    };
    let mut det = Detector::load(&cfg).unwrap();
    let mut cap =
        videoio::VideoCapture::from_file(root().join(".cache/data/vtest.avi").to_str().unwrap(), videoio::CAP_FFMPEG)
            .unwrap();
    let mut tracker = Tracker::new(TrackerConfig::default());
    // The Boai camera's gate line (config/boai-school/edge-camera.toml): x = 300, `in` = walking right.
    let mut gate = LineCounter::new((300.0, 576.0), (300.0, 125.0), 2);
    let (mut raw, mut tracked) = (Vec::new(), Vec::new());
    for i in 0..300 {
        let mut frame = Mat::default();
        assert!(cap.read(&mut frame).unwrap() && !frame.empty(), "frame {i}");
        if i % 2 == 1 {
            continue;
        }
        let d = det.detect(&frame).unwrap();
        raw.push(d.iter().filter(|d| d.class == Class::Person).count());
        tracker.update(&d);
        tracked.push(tracker.tracked(2).filter(|t| t.class == Class::Person).count());
        gate.update(tracker.tracked(2));
    }
    let (jr, jt) = (jitter(&raw), jitter(&tracked));
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let ids = tracker.tracks().iter().map(|t| t.id).max().unwrap_or(0);
    println!(
        "150 frames at 5 frames/s: raw persons mean {:.2}, frame-to-frame change {jr:.3}; tracked mean {:.2}, change {jt:.3}; \
         {ids} track ids in all; gate line: {} in, {} out",
        mean(&raw),
        mean(&tracked),
        gate.total(Class::Person, Direction::In),
        gate.total(Class::Person, Direction::Out)
    );
    assert!(jt < jr, "tracked counts should change less from frame to frame: {jt} vs {jr}");
    // Steadier, not inflated: the tracked mean stays within one person of the raw one.
    assert!((mean(&tracked) - mean(&raw)).abs() < 1.0);
}

#[test]
fn the_boai_camera_reports_people_through_its_gate_line_as_inflow() {
    use chrono::Utc;
    use crowdgrid_edge::config::{EdgeConfig, SourceConfig};
    use crowdgrid_edge::source::camera::CameraCounter;
    use crowdgrid_edge::source::vision_run::FrameCounter;
    use crowdgrid_edge::source::Ids;
    use crowdgrid_edge::vision::capture::Frame;
    use crowdgrid_edge::vision::detect::Detection;

    let loaded = EdgeConfig::load(&root().join("config/boai-school/edge-camera.toml")).unwrap();
    let SourceConfig::Camera(cam) = &loaded.config.sources[0] else {
        panic!("the Boai edge's first source is its camera")
    };
    assert!(cam.tracking.is_some(), "the Boai camera tracks");
    let ids = Ids::new(&loaded.site, "boai-school-cam-1", &cam.id, crowdgrid_proto::SourceKind::Camera);
    let mut counter = CameraCounter::new(cam, ids, &loaded.site).unwrap();
    let frame = Frame { mat: Mat::default(), index: 0, local_index: 0 };
    // Two people walk right across x = 300 in the plaza (12 px a frame); one walks left.
    for k in 0..30 {
        let x = 200.0 + 12.0 * k as f32;
        let back = 420.0 - 12.0 * k as f32;
        let p = |x: f32, y: f32| Detection {
            class: Class::Person,
            raw_class: 0,
            score: 0.9,
            x1: x,
            y1: y,
            x2: x + 30.0,
            y2: y + 90.0,
        };
        counter.frame(&frame, &[p(x, 300.0), p(x + 5.0, 420.0), p(back, 200.0)]);
    }
    let readings = counter.readings(Utc::now());
    let plaza = readings.iter().find(|r| r.zone == "gate-plaza").unwrap();
    assert_eq!((plaza.inflow_per_min, plaza.outflow_per_min), (Some(2.0), Some(1.0)), "{plaza:?}");
    let lane = readings.iter().find(|r| r.zone == "pickup-lane").unwrap();
    assert_eq!(lane.inflow_per_min, None, "no line on the lane");
}
