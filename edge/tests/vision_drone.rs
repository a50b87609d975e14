//! The drone source end to end on real imagery: a folder of frames (darknet's kite.jpg, a crowded beach seen
//! from above and far away, standing in for drone footage) with a telemetry sidecar placing the drone 20 m
//! over West Taihu's beach → sliced NanoDet-g → ground footprint ∩ zone → a `drone` reading for the beach
//! with people, the area in view and the density over it.
// Runs the detector: only in the `vision` build.
#![cfg(feature = "vision")]

use std::time::{Duration, Instant};

use crowdgrid_edge::config::SourceConfig;
use crowdgrid_proto::SourceKind;

mod common;
use common::root;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drone_frames_with_telemetry_give_people_per_square_metre_over_the_beach() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for name in ["000.jpg", "001.jpg", "002.jpg"] {
        std::fs::copy(root().join("tests/data/vision/kite_half.jpg"), frames.join(name)).unwrap();
    }
    // Nadir gimbal, 20 m above the middle of the beach (a strip ~25 m wide running north–south), heading
    // east so the long side of the picture lies along the strip: an 84° × 53° view covers
    // 2·20·tan 42° × 2·20·tan 26.5° = 36.0 m × 19.9 m = 718 m², all of it on the beach.
    let telemetry = dir.path().join("telemetry.csv");
    let row = |f: u32| format!("{f},31.700492,119.851815,20,90,84,53\n");
    std::fs::write(
        &telemetry,
        format!("frame,lat,lon,alt_m,heading_deg,hfov_deg,vfov_deg\n{}{}{}", row(0), row(1), row(2)),
    )
    .unwrap();
    let cfg: SourceConfig = toml::from_str(&format!(
        r#"type = "drone"
id = "patrol-1"
video = {{ kind = "folder", dir = "{frames}", loop = true }}
telemetry = "{telemetry}"
model = {{ manifest = "{manifest}", threads = 2, person_threshold = 0.4, slicing = {{ tile = 256, overlap = 0.25 }} }}
max_fps = 10.0
smoothing_frames = 2
report_interval_ms = 300
confidence = 0.7
min_seen_m2 = 100.0
zones = ["beach", "jetty"]"#,
        frames = frames.display(),
        telemetry = telemetry.display(),
        manifest = root().join("models/manifest.toml").display()
    ))
    .unwrap();
    let (cx, mut rx, health, shutdown) = common::context("west-taihu", "west-taihu-drone-1");
    let started = cfg.start(cx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut beach = None;
    while beach.is_none() && Instant::now() < deadline {
        let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await else { break };
        assert_eq!((r.source, r.source_id.as_str()), (SourceKind::Drone, "west-taihu-drone-1/patrol-1"));
        assert_ne!(r.zone, "jetty", "the jetty, 300 m east, is out of view: {r:?}");
        if r.zone == "beach" {
            beach = Some(r);
        }
    }
    shutdown.cancel();
    started.handle.await.unwrap();
    let r = beach.expect("a beach reading");
    let people = r.classes.unwrap().person;
    assert!(people >= 5.0, "kite.jpg shows a crowded beach: {r:?}");
    // The whole footprint is on the beach: the area in view is the footprint's.
    let footprint = 4.0 * 20.0f64.powi(2) * 42f64.to_radians().tan() * 26.5f64.to_radians().tan();
    assert!((r.area_m2 - footprint).abs() < 0.02 * footprint, "{} m² in view, footprint {footprint:.0} m²", r.area_m2);
    assert!((r.density - people / r.area_m2).abs() < 1e-9, "density is over the area in view: {r:?}");
    assert_eq!(r.conflict, Some(0.0_f64.max(people.min(r.classes.unwrap().vehicle))));
    assert!(health.snapshot()[0].accepted >= 1, "frames were analysed");
}
