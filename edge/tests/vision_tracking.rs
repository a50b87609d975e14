//! Tracking on real footage: NanoDet-g on vtest.avi as the Boai camera sees it (every other frame: 5 frames/s),
//! the tracker over its boxes. The crossings of the Boai camera's gate line match the ones counted by eye
//! (tests/data/vision/vtest_gate_crossings.toml, with how they were counted) within its stated tolerance;
//! tracked occupancy varies less from frame to frame than the raw per-frame count (a person the detector
//! drops for a frame stays counted), measured and asserted loosely. Needs the ONNX Runtime and vtest.avi that scripts/setup.sh installs.
// Runs the detector or OpenCV: only in the `vision` build.
#![cfg(feature = "vision")]

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

/// The by-eye crossings: (in, out, tolerance, frames).
fn golden() -> (u64, u64, u64, usize) {
    let text = std::fs::read_to_string(root().join("tests/data/vision/vtest_gate_crossings.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    let crossings = v["crossing"].as_array().unwrap();
    let count = |d: &str| crossings.iter().filter(|c| c["direction"].as_str() == Some(d)).count() as u64;
    let line = &v["line"];
    assert_eq!(line["from"].as_array().unwrap()[0].as_integer(), Some(300), "the test's line is the file's");
    (count("in"), count("out"), v["tolerance"].as_integer().unwrap() as u64, v["frames"].as_integer().unwrap() as usize)
}

#[test]
fn gate_crossings_match_the_eye_and_tracked_occupancy_is_steadier() {
    let (want_in, want_out, tolerance, frames) = golden();
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
    for i in 0..frames {
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
        "{} frames at 5 frames/s: raw persons mean {:.2}, frame-to-frame change {jr:.3}; tracked mean {:.2}, change {jt:.3}; \
         {ids} track ids in all; gate line: {} in, {} out",
        raw.len(),
        mean(&raw),
        mean(&tracked),
        gate.total(Class::Person, Direction::In),
        gate.total(Class::Person, Direction::Out)
    );
    let (got_in, got_out) = (gate.total(Class::Person, Direction::In), gate.total(Class::Person, Direction::Out));
    assert!(
        got_in.abs_diff(want_in) <= tolerance && got_out.abs_diff(want_out) <= tolerance,
        "gate line: {got_in} in, {got_out} out; by eye {want_in} in, {want_out} out (± {tolerance})"
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
    // Beside the tracked count: the detector's own count, dwell, and the line's vehicles (none crossed).
    let t = plaza.tracked.expect("a tracking camera's reading carries `tracked`");
    assert_eq!((t.vehicle_inflow_per_min, t.vehicle_outflow_per_min), (Some(0.0), Some(0.0)));
    assert!(t.raw_count > 0.0 && t.dwell_p90_s >= t.dwell_p50_s, "{t:?}");
    assert_eq!(lane.tracked.and_then(|t| t.vehicle_inflow_per_min), None);
}

#[test]
fn a_geometry_from_the_centre_is_refused_when_it_cannot_count_and_swapped_in_when_it_can() {
    use chrono::Utc;
    use crowdgrid_edge::config::{EdgeConfig, SourceConfig};
    use crowdgrid_edge::source::camera::CameraCounter;
    use crowdgrid_edge::source::vision_run::FrameCounter;
    use crowdgrid_edge::source::Ids;
    use crowdgrid_edge::vision::capture::Frame;
    use crowdgrid_edge::vision::detect::Detection;

    let loaded = EdgeConfig::load(&root().join("config/boai-school/edge-camera.toml")).unwrap();
    let SourceConfig::Camera(cam) = &loaded.config.sources[0] else { panic!("a camera") };
    let ids = Ids::new(&loaded.site, "boai-school-cam-1", &cam.id, crowdgrid_proto::SourceKind::Camera);
    let mut counter = CameraCounter::new(cam, ids, &loaded.site).unwrap();
    assert_eq!(counter.geometry(), Some(&cam.geometry()), "the edge file's geometry to begin with");
    let frame = Frame { mat: Mat::default(), index: 0, local_index: 0 };
    let person =
        Detection { class: Class::Person, raw_class: 0, score: 0.9, x1: 100.0, y1: 300.0, x2: 130.0, y2: 390.0 };

    // A zone the site does not have, and a line on a zone the camera does not draw: refused, nothing changes.
    let mut bad = cam.geometry();
    bad.zones[0].zone = "car-park".into();
    let why = counter.prepare(Some(&bad)).unwrap_err();
    assert!(why.contains("car-park"), "{why}");
    let mut bad = cam.geometry();
    bad.zones.truncate(1);
    bad.lines[0].zone = "pickup-lane".into();
    assert!(counter.prepare(Some(&bad)).unwrap_err().contains("lines[0].zone"));
    assert_eq!(counter.geometry(), Some(&cam.geometry()));

    // Only the plaza, drawn elsewhere: the lane is no longer reported and the plaza's area is the new polygon's.
    counter.frame(&frame, &[person]);
    let before = counter.readings(Utc::now());
    let mut g = cam.geometry();
    g.zones.retain(|z| z.zone == "gate-plaza");
    g.zones[0].polygon = vec![[0.0, 250.0], [400.0, 250.0], [400.0, 576.0], [0.0, 576.0]];
    let built = counter.prepare(Some(&g)).unwrap();
    assert!(counter.apply(built), "a different geometry is swapped in");
    assert!(!counter.apply(counter.prepare(Some(&g)).unwrap()), "the same one again changes nothing");
    counter.frame(&frame, &[person]);
    let after = counter.readings(Utc::now());
    assert_eq!(after.iter().map(|r| r.zone.as_str()).collect::<Vec<_>>(), ["gate-plaza"]);
    let area = |rs: &[crowdgrid_proto::Reading]| rs.iter().find(|r| r.zone == "gate-plaza").unwrap().area_m2;
    assert!(area(&after) < area(&before), "{} < {}", area(&after), area(&before));
    assert_eq!(after[0].count, 1.0, "the person stands in the new polygon");

    // `None` is the edge file's geometry again.
    assert!(counter.apply(counter.prepare(None).unwrap()));
    assert_eq!(counter.geometry(), Some(&cam.geometry()));
}
