//! Capture and the camera source against real inputs: an HTTP MJPEG stream and an RTSP camera (GStreamer's
//! RTSP server) that die mid-way and come back, a corrupt and a truncated video file, a file played at its
//! own frame rate, and a camera source publishing zone readings end to end.
// Runs the detector or OpenCV: only in the `vision` build.
#![cfg(feature = "vision")]

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crowdgrid_edge::config::SourceConfig;
use crowdgrid_edge::health::Health;
use crowdgrid_edge::vision::capture::{self, CaptureSettings, FrameSlot, VideoInput};
use crowdgrid_proto::SourceKind;
use tokio_util::sync::CancellationToken;

mod common;
use common::root;

fn settings() -> CaptureSettings {
    CaptureSettings {
        source_id: "e/cam".into(),
        kind: "camera",
        max_fps: 100.0,
        max_backoff: Duration::from_millis(400),
    }
}

/// Runs capture on `input` in a thread, collecting frame indices until `until` holds or 20 s pass.
fn capture_until(input: VideoInput, health: &Health, until: impl Fn(&[u64], &Health) -> bool) -> Vec<u64> {
    let slot = Arc::new(FrameSlot::new(2));
    let stop = CancellationToken::new();
    let t = {
        let (slot, health, stop) = (slot.clone(), health.clone(), stop.clone());
        std::thread::spawn(move || capture::run(&input, &settings(), &slot, &health, &stop))
    };
    let mut got = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) && !until(&got, health) && !slot.is_finished() {
        if let Some(f) = slot.take(Duration::from_millis(50)) {
            got.push(f.local_index);
        }
    }
    stop.cancel();
    t.join().unwrap();
    got
}

#[test]
fn mjpeg_stream_that_dies_reconnects_and_continues() {
    let jpeg = std::fs::read(root().join("tests/data/vision/vtest_100.jpg")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Each connection serves 5 frames and then drops; the first connection is refused outright after it.
    let server = std::thread::spawn(move || {
        for conn in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut req);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n");
            for _ in 0..5 {
                let head = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len());
                if s.write_all(head.as_bytes())
                    .and_then(|_| s.write_all(&jpeg))
                    .and_then(|_| s.write_all(b"\r\n"))
                    .is_err()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            drop(s);
            if conn == 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });
    let health = Health::new();
    let url = format!("http://{addr}/video.mjpg");
    let got = capture_until(VideoInput::Http { url }, &health, |got, _| {
        got.iter().filter(|i| **i == 0).count() >= 2 && got.len() >= 6
    });
    server.join().unwrap();
    assert!(got.iter().filter(|i| **i == 0).count() >= 2, "frames from two connections: {got:?}");
    let h = &health.snapshot()[0];
    assert!(h.rejected.get("input_error").copied().unwrap_or(0) >= 1, "the drop is counted: {h:?}");
    assert!(h.last_error.as_deref().unwrap_or("").contains(&addr.to_string()), "{h:?}");
}

#[test]
fn corrupt_video_file_is_an_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.avi");
    std::fs::write(&bad, b"RIFF\x10\x00\x00\x00AVI LIST garbage garbage garbage").unwrap();
    let health = Health::new();
    let got = capture_until(VideoInput::File { path: bad.clone(), r#loop: false, realtime: false }, &health, |_, h| {
        h.rejected_count("e/cam", "input_error") >= 2
    });
    assert!(got.is_empty());
    let h = &health.snapshot()[0];
    assert!(h.rejected["input_error"] >= 2, "retried with backoff and counted: {h:?}");
    assert!(h.last_error.as_deref().unwrap_or("").contains("broken.avi"), "{h:?}");
}

#[test]
fn a_file_plays_at_its_own_frame_rate_and_max_fps_skips_frames() {
    // vtest.avi is 10 frames/s; at max_fps = 5 the camera gets every other frame, in real time.
    let slot = Arc::new(FrameSlot::new(2));
    let (stop, health) = (CancellationToken::new(), Health::new());
    let input = VideoInput::File { path: root().join(".cache/data/vtest.avi"), r#loop: false, realtime: true };
    let set = CaptureSettings { max_fps: 5.0, ..settings() };
    let t = {
        let (slot, health, stop) = (slot.clone(), health.clone(), stop.clone());
        std::thread::spawn(move || capture::run(&input, &set, &slot, &health, &stop))
    };
    let mut got = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        if let Some(f) = slot.take(Duration::from_millis(50)) {
            got.push(f.local_index);
        }
    }
    stop.cancel();
    t.join().unwrap();
    assert!(got.len() >= 5, "frames keep coming: {got:?}");
    let step = (got[got.len() - 1] - got[0]) as f64 / (got.len() - 1) as f64;
    assert!((1.5..=2.6).contains(&step), "about every second frame of the file: {got:?}");
    assert!(got[got.len() - 1] < 60, "real time, not as fast as it decodes: {got:?}");
}

#[test]
fn truncated_video_file_yields_its_good_frames_then_ends() {
    let full = root().join(".cache/data/vtest.avi");
    let bytes = std::fs::read(&full).expect("scripts/setup.sh --test extracts vtest.avi into .cache/data");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.avi");
    std::fs::write(&cut, &bytes[..bytes.len() / 20]).unwrap();
    let health = Health::new();
    let got = capture_until(VideoInput::File { path: cut, r#loop: false, realtime: false }, &health, |_, _| false);
    assert!(got.len() > 5 && got.len() < 795, "some frames, not all 795: {}", got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_source_publishes_zone_readings_from_a_snapshot_folder() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["vtest_100.jpg", "vtest_300.jpg"] {
        std::fs::copy(root().join("tests/data/vision").join(f), dir.path().join(f)).unwrap();
    }
    // The whole walkway of vtest as "gate-plaza" and the car park strip at the top right as the
    // "pickup-lane"; a calibration of 768×576 px onto a 30 m × 20 m plane.
    let cfg: SourceConfig = toml::from_str(&format!(
        r#"type = "camera"
id = "gate-cam"
video = {{ kind = "folder", dir = "{dir}", loop = true }}
model = {{ manifest = "{manifest}", threads = 2, workers = 2 }}
max_fps = 20.0
smoothing_frames = 2
report_interval_ms = 200
calibration = {{ image = [[0, 0], [768, 0], [768, 576], [0, 576]], ground = [[0, 20], [30, 20], [30, 0], [0, 0]] }}
zones = [
  {{ zone = "gate-plaza", polygon = [[0, 120], [768, 120], [768, 576], [0, 576]] }},
  {{ zone = "pickup-lane", polygon = [[600, 30], [768, 30], [768, 110], [600, 110]] }},
]"#,
        dir = dir.path().display(),
        manifest = root().join("models/manifest.toml").display()
    ))
    .unwrap();
    let (cx, mut rx, health, shutdown) = common::context("boai-school", "boai-school-edge-1");
    let started = cfg.start(cx).await.unwrap();
    let mut plaza = None;
    let mut lane = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (plaza.is_none() || lane.is_none()) && Instant::now() < deadline {
        let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await else { break };
        assert_eq!(r.source, SourceKind::Camera);
        assert_eq!(r.source_id, "boai-school-edge-1/gate-cam");
        match r.zone.as_str() {
            "gate-plaza" => plaza = Some(r),
            "pickup-lane" => lane = Some(r),
            z => panic!("unexpected zone {z}"),
        }
    }
    shutdown.cancel();
    started.handle.await.unwrap();
    let plaza = plaza.expect("a gate-plaza reading");
    let lane = lane.expect("a pickup-lane reading");
    // Ground area: (576 − 120)/576 of 20 m × 30 m = 475 m².
    assert!((plaza.area_m2 - 475.0).abs() < 0.5, "{plaza:?}");
    let c = plaza.classes.unwrap();
    assert!((5.0..=8.0).contains(&c.person), "about 6–7 people on the walkway: {plaza:?}");
    assert_eq!(plaza.count, c.person);
    assert!((plaza.density - c.person / 475.0).abs() < 1e-9);
    assert!(plaza.conflict.is_some());
    // The lane holds the parked van and car, nobody on foot: vehicles but no conflict.
    let lc = lane.classes.unwrap();
    assert!(lc.vehicle >= 1.0 && lc.person == 0.0 && lane.conflict == Some(0.0), "{lane:?}");
    assert!(health.snapshot()[0].accepted >= 2);
    // The loaded model is reported (for the edge status and the engineers' console), sha256 as checked at load.
    let models = health.models();
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(models[0].name, "nanodet-g-coco");
    assert_eq!(models[0].sha256, "70562bc3b7a4a943c2481c782360ecde661fcc361daf8c2550bce72b49667759");
}

/// A GStreamer RTSP server (tests/data/rtsp_server.py, Debian's python3-gi + gir1.2-gst-rtsp-server-1.0)
/// serving the JPEGs of `frames` on rtsp://127.0.0.1:{port}/cam.
fn rtsp_server(port: u16, frames: &std::path::Path) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg(root().join("tests/data/rtsp_server.py"))
        .arg(port.to_string())
        .arg(frames)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs (scripts/setup.sh --test installs python3-gi and gst-rtsp-server)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the RTSP server started");
    child
}

#[test]
fn rtsp_stream_that_dies_reconnects_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    for (i, f) in ["vtest_100.jpg", "vtest_300.jpg", "vtest_500.jpg"].iter().enumerate() {
        std::fs::copy(root().join("tests/data/vision").join(f), dir.path().join(format!("{i:03}.jpg"))).unwrap();
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let first = rtsp_server(port, dir.path());
    // The camera goes away after 2 s and comes back 2 s later on the same address.
    let frames = dir.path().to_path_buf();
    let control = std::thread::spawn(move || {
        let mut first = first;
        std::thread::sleep(Duration::from_secs(2));
        first.kill().unwrap();
        first.wait().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        rtsp_server(port, &frames)
    });
    let health = Health::new();
    let url = format!("rtsp://127.0.0.1:{port}/cam");
    let got = capture_until(VideoInput::Rtsp { url: url.clone() }, &health, |got, _| {
        got.iter().filter(|i| **i == 0).count() >= 2 && got.len() >= 6
    });
    let mut second = control.join().unwrap();
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(got.iter().filter(|i| **i == 0).count() >= 2, "frames from two connections: {got:?}");
    let h = &health.snapshot()[0];
    assert!(h.rejected.get("input_error").copied().unwrap_or(0) >= 1, "the drop is counted: {h:?}");
    assert!(h.last_error.as_deref().unwrap_or("").contains(&url), "{h:?}");
}

/// A looping folder is a recorded patrol: its telemetry numbers frames from the first image, so every pass
/// starts again at 0 (it counted on across passes, and a drone's second pass took the last record's position).
#[test]
fn a_looping_folder_numbers_each_pass_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["0.jpg", "1.jpg", "2.jpg"] {
        std::fs::copy(root().join("tests/data/vision/vtest_100.jpg"), dir.path().join(name)).unwrap();
    }
    let health = Health::new();
    let input = VideoInput::Folder { dir: dir.path().to_path_buf(), r#loop: true };
    let got = capture_until(input, &health, |got, _| got.len() >= 10);
    assert!(got.len() >= 10, "{got:?}");
    assert!(got.iter().all(|i| *i < 3), "each pass is numbered 0, 1, 2: {got:?}");
    assert!(got.windows(2).any(|w| w[1] < w[0]), "the numbering restarts: {got:?}");
}
