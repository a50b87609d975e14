//! Config of the camera and drone sources (types and validation), kept apart from [`super`].

use std::path::PathBuf;

use crowdgrid_proto::config::Problems;
use crowdgrid_proto::site::Site;
use serde::{Deserialize, Serialize};

use super::geometry::{ground_frame, zone_fit};
use crate::vision::geometry::Homography;
use crate::vision::georef::FitVerdict;
use crate::vision::manifest::Manifest;
use crate::vision::source_config::ModelConfig;
use crate::vision::source_config::VideoInput;

pub use crowdgrid_proto::geometry::{Calibration, CameraZone};

/// A fixed camera running the person/vehicle detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Source id.
    pub id: String,
    /// Where frames come from.
    pub video: VideoInput,
    /// The detector.
    #[serde(default)]
    pub model: ModelConfig,
    /// Highest frame rate run through the model (files play at this rate).
    #[serde(default = "default_max_fps")]
    pub max_fps: f64,
    /// Frames held between capture and inference (1 or 2; the oldest is dropped).
    #[serde(default = "default_frame_queue")]
    pub frame_queue: usize,
    /// Counts are averaged over this many frames.
    #[serde(default = "default_smoothing")]
    pub smoothing_frames: usize,
    /// How often readings are published.
    #[serde(default = "default_report_ms")]
    pub report_interval_ms: u64,
    /// Confidence attached to its readings.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Largest reconnect backoff for a dropped stream.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: u64,
    /// Image → ground homography points.
    pub calibration: Calibration,
    /// Image zones.
    pub zones: Vec<CameraZone>,
    /// Evidence snapshots for tickets on this camera's zones (absent: frames never leave the edge).
    #[serde(default)]
    pub evidence: Option<EvidenceConfig>,
    /// Tracking and counting lines (absent: counts per frame, smoothed).
    #[serde(default)]
    pub tracking: Option<super::tracking::TrackingConfig>,
}

impl CameraConfig {
    /// The calibration, zones and lines of the edge file, as the centre would push them.
    pub fn geometry(&self) -> crowdgrid_proto::geometry::CameraGeometry {
        crowdgrid_proto::geometry::CameraGeometry {
            calibration: self.calibration.clone(),
            zones: self.zones.clone(),
            lines: self.tracking.as_ref().map(|t| t.lines.clone()).unwrap_or_default(),
        }
    }
}

/// `evidence = { ... }` of a camera: when the centre raises a ticket on one of its zones, the latest analysed
/// frame goes to the centre as a JPEG with every person blurred.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    /// Largest JPEG sent (quality, then size, step down to fit); 4 KiB .. 1 MiB.
    #[serde(default = "default_evidence_bytes")]
    pub max_bytes: usize,
}

fn default_evidence_bytes() -> usize {
    64 * 1024
}

/// A drone patrol feed with per-frame telemetry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroneConfig {
    /// Source id.
    pub id: String,
    /// Where frames come from.
    pub video: VideoInput,
    /// Telemetry sidecar (CSV with header or JSON array): frame, lat, lon, alt_m, heading_deg, hfov_deg,
    /// vfov_deg; relative to the edge file.
    pub telemetry: PathBuf,
    /// The detector (set `slicing` for altitude shots).
    #[serde(default)]
    pub model: ModelConfig,
    /// Highest frame rate run through the model.
    #[serde(default = "default_max_fps")]
    pub max_fps: f64,
    /// Frames held between capture and inference (1 or 2).
    #[serde(default = "default_frame_queue")]
    pub frame_queue: usize,
    /// Counts are averaged over this many frames.
    #[serde(default = "default_smoothing")]
    pub smoothing_frames: usize,
    /// How often readings are published.
    #[serde(default = "default_report_ms")]
    pub report_interval_ms: u64,
    /// Confidence attached to its readings.
    #[serde(default = "default_drone_confidence")]
    pub confidence: f64,
    /// Largest reconnect backoff for a dropped stream.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: u64,
    /// Zones with less than this area in view are not reported.
    #[serde(default = "default_min_seen")]
    pub min_seen_m2: f64,
    /// Site zones to report (default: all).
    #[serde(default)]
    pub zones: Option<Vec<String>>,
}

fn default_max_fps() -> f64 {
    5.0
}
fn default_frame_queue() -> usize {
    1
}
fn default_smoothing() -> usize {
    5
}
fn default_report_ms() -> u64 {
    1000
}
fn default_confidence() -> f64 {
    0.8
}
fn default_drone_confidence() -> f64 {
    0.7
}
fn default_max_backoff() -> u64 {
    30
}
fn default_min_seen() -> f64 {
    20.0
}

fn check_unit(p: &mut Problems, path: String, v: f64) {
    if !(v.is_finite() && v > 0.0 && v <= 1.0) {
        p.push(path, format!("{v} must be in (0, 1]"));
    }
}

fn validate_common(
    path: &str,
    video: &VideoInput,
    model: &ModelConfig,
    (max_fps, frame_queue, smoothing, report_ms, confidence): (f64, usize, usize, u64, f64),
    p: &mut Problems,
) {
    match video {
        VideoInput::Rtsp { url } if !url.starts_with("rtsp://") && !url.starts_with("rtsps://") => {
            p.push(format!("{path}.video.url"), format!("{url:?} is not an rtsp:// URL"))
        }
        VideoInput::Http { url } if !url.starts_with("http://") && !url.starts_with("https://") => {
            p.push(format!("{path}.video.url"), format!("{url:?} is not an http(s) URL"))
        }
        _ => {}
    }
    if !(max_fps.is_finite() && max_fps > 0.0 && max_fps <= 120.0) {
        p.push(format!("{path}.max_fps"), "must be in (0, 120]");
    }
    if !(1..=2).contains(&frame_queue) {
        p.push(format!("{path}.frame_queue"), "must be 1 or 2 (older frames are dropped, never queued)");
    }
    if smoothing == 0 {
        p.push(format!("{path}.smoothing_frames"), "must be at least 1");
    }
    if report_ms == 0 {
        p.push(format!("{path}.report_interval_ms"), "must be positive");
    }
    check_unit(p, format!("{path}.confidence"), confidence);
    check_unit(p, format!("{path}.model.person_threshold"), model.person_threshold as f64);
    check_unit(p, format!("{path}.model.vehicle_threshold"), model.vehicle_threshold as f64);
    check_unit(p, format!("{path}.model.privacy_threshold"), model.privacy_threshold as f64);
    check_unit(p, format!("{path}.model.nms_iou"), model.nms_iou as f64);
    if !(1..=64).contains(&model.threads) {
        p.push(format!("{path}.model.threads"), "must be in 1..=64");
    }
    if !(1..=8).contains(&model.workers) || model.workers > model.threads.max(1) {
        p.push(format!("{path}.model.workers"), "must be in 1..=8 and at most model.threads");
    }
    if let Some(s) = &model.slicing {
        if s.tile < 32 {
            p.push(format!("{path}.model.slicing.tile"), "must be at least 32 px");
        }
        if !(0.0..0.9).contains(&s.overlap) {
            p.push(format!("{path}.model.slicing.overlap"), "must be in [0, 0.9)");
        }
    }
    if let Err(e) = Manifest::find(&model.manifest, &model.name) {
        p.push(format!("{path}.model"), e.to_string());
    }
}

pub(super) fn validate_camera(c: &CameraConfig, site: &Site, path: &str, p: &mut Problems) {
    validate_common(
        path,
        &c.video,
        &c.model,
        (c.max_fps, c.frame_queue, c.smoothing_frames, c.report_interval_ms, c.confidence),
        p,
    );
    if let Some(e) = c.evidence {
        if !(4096..=1024 * 1024).contains(&e.max_bytes) {
            p.push(format!("{path}.evidence.max_bytes"), "must be in 4096..=1048576 (the centre takes up to 1 MiB)");
        }
    }
    if let Some(t) = &c.tracking {
        super::tracking::validate(t, &format!("{path}.tracking"), p);
    }
    let lines = c.tracking.as_ref().map(|t| t.lines.as_slice()).unwrap_or_default();
    super::geometry::validate(&c.calibration, &c.zones, lines, site, path, p);
}

/// What `check-config` and the edge at start say about a camera's zones beyond errors: each placed zone's fit
/// (`warning:` when partly outside or partly seen), or that the camera is not placed on the map.
pub fn camera_notes(c: &CameraConfig, site: &Site, path: &str) -> Vec<(FitVerdict, String)> {
    let Ok(h) = Homography::fit(&c.calibration.image, &c.calibration.ground) else { return Vec::new() };
    if ground_frame(&c.calibration).is_none() {
        return vec![(
            FitVerdict::Warn,
            format!(
                "{path}.calibration: no origin/bearing_deg, so camera {:?}'s zones cannot be checked against the \
                 site (each is assumed to be its whole site zone)",
                c.id
            ),
        )];
    }
    (0..c.zones.len())
        .filter_map(|j| zone_fit(&c.calibration, &c.zones, &h, j, site).map(|(f, zone)| (j, f, zone)))
        .map(|(j, f, zone)| (f.verdict(), format!("{path}.zones[{j}] ({:?} → {zone:?}): {f}", c.id)))
        .collect()
}

pub(super) fn validate_drone(c: &DroneConfig, site: &Site, path: &str, p: &mut Problems) {
    validate_common(
        path,
        &c.video,
        &c.model,
        (c.max_fps, c.frame_queue, c.smoothing_frames, c.report_interval_ms, c.confidence),
        p,
    );
    if let Err(e) = crate::vision::drone::load_telemetry(&c.telemetry) {
        p.push(format!("{path}.telemetry"), e.to_string());
    }
    if !(c.min_seen_m2.is_finite() && c.min_seen_m2 > 0.0) {
        p.push(format!("{path}.min_seen_m2"), "must be positive");
    }
    for (j, z) in c.zones.iter().flatten().enumerate() {
        if site.zone(z).is_none() {
            p.push(format!("{path}.zones[{j}]"), format!("unknown zone {z:?} in site {:?}", site.config.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    fn problems(src: &str) -> String {
        let cfg: SourceConfig = toml::from_str(src).unwrap();
        let site = crate::source::testing::site();
        let mut p = Problems::new();
        match &cfg {
            SourceConfig::Camera(c) => validate_camera(c, &site, "sources[0]", &mut p),
            SourceConfig::Drone(c) => validate_drone(c, &site, "sources[0]", &mut p),
            _ => unreachable!(),
        }
        p.into_result(std::path::Path::new("edge.toml")).map(|_| String::new()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_bad_camera_reports_every_problem_at_once() {
        let err = problems(
            r#"type = "camera"
id = "cam"
video = { kind = "rtsp", url = "http://not-rtsp" }
model = { manifest = "/nonexistent/manifest.toml", person_threshold = 1.5, threads = 0, workers = 9 }
max_fps = 0.0
frame_queue = 5
calibration = { image = [[0, 0], [1, 1], [2, 2]], ground = [[0, 0], [1, 1], [2, 2]] }
zones = [{ zone = "nowhere", polygon = [[0, 0], [1, 1]] }, { zone = "plaza", polygon = [[0, 0], [10, 0], [10, 10]] }]"#,
        );
        for needle in [
            "sources[0].video.url",
            "sources[0].max_fps",
            "sources[0].frame_queue",
            "sources[0].model.person_threshold",
            "sources[0].model.threads",
            "sources[0].model.workers",
            "/nonexistent/manifest.toml",
            "sources[0].calibration",
            "sources[0].zones[0].zone",
            "sources[0].zones[0].polygon",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        assert!(!err.contains("zones[1]"), "the plaza zone is fine: {err}");
    }

    #[test]
    fn a_good_camera_validates_and_a_bad_drone_sidecar_is_named() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/manifest.toml");
        let err = problems(&format!(
            r#"type = "camera"
id = "cam"
video = {{ kind = "file", path = "x.avi" }}
model = {{ manifest = "{}" }}
calibration = {{ image = [[0, 0], [100, 0], [100, 100], [0, 100]], ground = [[0, 0], [10, 0], [10, 10], [0, 10]] }}
zones = [{{ zone = "plaza", polygon = [[0, 0], [50, 0], [50, 50], [0, 50]] }}]"#,
            manifest.display()
        ));
        assert_eq!(err, "");
        let err = problems(&format!(
            r#"type = "drone"
id = "d"
video = {{ kind = "http", url = "http://10.0.0.2/video.mjpg" }}
telemetry = "/nonexistent/telemetry.csv"
model = {{ manifest = "{}" }}
zones = ["plaza", "lagoon"]"#,
            manifest.display()
        ));
        assert!(err.contains("/nonexistent/telemetry.csv") && err.contains("\"lagoon\""), "{err}");
        assert!(!err.contains("video"), "{err}");
    }

    fn repo(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    /// Issue 10: the Boai camera divided its counts by 1,456 and 399 m² of homography ground while the site
    /// spread them over 600 and 899 m², and nothing compared the two. The camera as it was, placed on the map,
    /// is now refused with the numbers; the shipped one is the site's ground to the square metre.
    #[test]
    fn a_camera_zone_on_other_ground_than_its_site_zone_is_refused() {
        let site = Site::load(&repo("config/boai-school/site.toml")).unwrap();
        let old: CameraConfig = toml::from_str(&format!(
            r#"id = "gate-cam"
video = {{ kind = "file", path = "x.avi" }}
model = {{ manifest = "{}" }}
calibration = {{ image = [[0, 576], [768, 576], [700, 180], [60, 180]], ground = [[0, 0], [22, 0], [30, 35], [-8, 35]], origin = [119.9606932, 31.7811312], bearing_deg = 82.0 }}
zones = [
  {{ zone = "gate-plaza", polygon = [[0, 140], [560, 110], [560, 260], [768, 300], [768, 576], [0, 576]] }},
  {{ zone = "pickup-lane", polygon = [[560, 110], [768, 100], [768, 300], [560, 260]] }},
]"#,
            repo("models/manifest.toml").display()
        ))
        .unwrap();
        let mut p = Problems::new();
        validate_camera(&old, &site, "sources[0]", &mut p);
        let err = p.items().join("\n");
        assert!(err.contains("sources[0].zones[0].polygon: is not the ground of site zone \"gate-plaza\""), "{err}");
        assert!(err.contains("covers 1455 m² against the site zone's 600 m² (+143 %)"), "{err}");
        assert!(err.contains("sources[0].zones[1].polygon: is not the ground of site zone \"pickup-lane\""), "{err}");

        // Not placed on the map: accepted, with a warning that says why nothing was checked.
        let mut unplaced = old.clone();
        unplaced.calibration.origin = None;
        unplaced.calibration.bearing_deg = None;
        let mut p = Problems::new();
        validate_camera(&unplaced, &site, "sources[0]", &mut p);
        assert!(p.is_empty(), "{:?}", p.items());
        let notes = camera_notes(&unplaced, &site, "sources[0]");
        assert!(notes.len() == 1 && notes[0].0 == FitVerdict::Warn && notes[0].1.contains("no origin"), "{notes:?}");

        // Half a placement is a mistake.
        let mut half = unplaced.clone();
        half.calibration.bearing_deg = Some(82.0);
        let mut p = Problems::new();
        validate_camera(&half, &site, "sources[0]", &mut p);
        assert!(p.items().iter().any(|e| e.contains("origin and bearing_deg go together")), "{:?}", p.items());

        let shipped = crate::config::EdgeConfig::load(&repo("config/boai-school/edge-camera.toml")).unwrap();
        let notes = shipped.config.notes(&shipped.site);
        assert_eq!(notes.len(), 2, "{notes:?}");
        for (verdict, note) in &notes {
            assert_eq!(*verdict, FitVerdict::Good, "{note}");
            assert!(note.contains("0.0 % of it lies outside") && note.contains("sees 100.0 %"), "{note}");
        }
    }
}
