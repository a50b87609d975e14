//! The shared frame pipeline of camera and drone sources: a capture thread feeding a drop-oldest slot, a
//! [`DetectorPool`] of `model.workers` inference threads, and one dedicated blocking thread that hands the
//! newest frame to an idle worker, counts the results in frame order, and publishes readings every report
//! interval. Never on the async runtime; never a panic on bad input —
//! a missing model, wrong sha256 or missing ONNX Runtime is logged and counted (`input_error`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crowdgrid_proto::Reading;

use super::{send, Ids, SourceContext, SourceError, Started};
use crate::evidence::EvidenceAsk;
use crate::tuning::{ModelChange, Retune};
use crate::vision::capture::{self, CaptureSettings, Frame, FrameSlot, VideoInput};
use crate::vision::detect::{Class, Detection};
use crate::vision::evidence::blurred_jpeg;
use crate::vision::manifest::ModelSpec;
use crate::vision::model::{Detector, ModelConfig};
use crate::vision::pool::DetectorPool;

/// What a source does with each frame's detections (pure; tested without a model).
pub trait FrameCounter: Send + 'static {
    /// Takes one frame's detections (boxes in frame pixels).
    fn frame(&mut self, frame: &Frame, dets: &[Detection]);
    /// The readings to publish at `now` (smoothed over the recent frames).
    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading>;
}

/// Pipeline settings shared by camera and drone.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Video input.
    pub video: VideoInput,
    /// Detector.
    pub model: ModelConfig,
    /// Frame-rate cap.
    pub max_fps: f64,
    /// Slot capacity (1–2).
    pub frame_queue: usize,
    /// Report interval.
    pub report: Duration,
    /// Largest reconnect backoff.
    pub max_backoff: Duration,
    /// Evidence snapshots of these zones, at most this many bytes (camera `evidence`); `None`: never.
    pub evidence: Option<(Vec<String>, usize)>,
}

impl PipelineSettings {
    /// The settings written the same way in camera and drone configs (rates in ms and s; zero means the
    /// smallest allowed); no evidence.
    pub fn new(
        video: &VideoInput,
        model: &ModelConfig,
        (max_fps, frame_queue): (f64, usize),
        (report_interval_ms, max_backoff_s): (u64, u64),
    ) -> Self {
        Self {
            video: video.clone(),
            model: model.clone(),
            max_fps,
            frame_queue,
            report: Duration::from_millis(report_interval_ms.max(1)),
            max_backoff: Duration::from_secs(max_backoff_s.max(1)),
            evidence: None,
        }
    }
}

/// Starts the pipeline; the returned task ends after shutdown (or when a non-looping input ends), having
/// joined the capture thread.
pub fn start<C: FrameCounter>(
    counter: C,
    ids: Ids,
    set: PipelineSettings,
    cx: SourceContext,
) -> Result<Started, SourceError> {
    cx.health.register(&ids.source_id, ids.kind.as_str());
    tracing::info!(source = %ids.source_id, kind = ids.kind.as_str(), model = %set.model.name, max_fps = set.max_fps, "vision source starting");
    // Registered before the agent looks at the hub (the model loads later, on the blocking thread).
    let asks = set.evidence.as_ref().map(|(zones, _)| {
        let (tx, rx) = std::sync::mpsc::channel::<EvidenceAsk>();
        cx.evidence.register(&ids.source_id, zones.clone(), tx);
        rx
    });
    // Camera settings from the centre, by the camera's id in the edge file.
    let retunes = {
        let (tx, rx) = std::sync::mpsc::channel::<Retune>();
        let id = ids.source_id.strip_prefix(&format!("{}/", cx.edge_id)).unwrap_or(&ids.source_id).to_string();
        cx.tuning.register(&id, &ids.source_id, tx);
        rx
    };
    let handle = tokio::task::spawn_blocking(move || run(counter, ids, set, cx, asks, retunes));
    Ok(Started { handle, bound_addr: None })
}

fn run<C: FrameCounter>(
    mut counter: C,
    ids: Ids,
    set: PipelineSettings,
    cx: SourceContext,
    asks: Option<std::sync::mpsc::Receiver<EvidenceAsk>>,
    retunes: std::sync::mpsc::Receiver<Retune>,
) {
    let kind = ids.kind.as_str();
    // With evidence on, the model also reports the faint person boxes (down to `privacy_threshold`) so the
    // snapshot blurs them too; only those at the counting thresholds and above are counted.
    let mut now = Running::configured(&set);
    let detectors = match Detector::load_workers(&now.load_config(&set)) {
        Ok(d) => d,
        Err(e) => {
            cx.health.error(&ids.source_id, kind, &format!("detector: {e}"));
            tracing::error!(source = %ids.source_id, error = %e, "detector could not be loaded; source stopped");
            return;
        }
    };
    if let Some(d) = detectors.first() {
        now.loaded(d);
    }
    cx.health.model(now.info(&ids.source_id, None));
    let mut pool = match DetectorPool::<Frame>::start(&ids.source_id, detectors) {
        Ok(p) => p,
        Err(e) => {
            cx.health.error(&ids.source_id, kind, &format!("cannot start inference threads: {e}"));
            return;
        }
    };
    let slot = Arc::new(FrameSlot::new(set.frame_queue));
    let stop = cx.shutdown.child_token();
    let cap_set =
        CaptureSettings { source_id: ids.source_id.clone(), kind, max_fps: set.max_fps, max_backoff: set.max_backoff };
    let capture = {
        let (slot, health, stop, video) = (slot.clone(), cx.health.clone(), stop.clone(), set.video.clone());
        std::thread::Builder::new()
            .name(format!("capture-{}", ids.source_id))
            .spawn(move || capture::run(&video, &cap_set, &slot, &health, &stop))
    };
    let capture = match capture {
        Ok(h) => h,
        Err(e) => {
            cx.health.error(&ids.source_id, kind, &format!("cannot start capture thread: {e}"));
            return;
        }
    };
    // Evidence: the latest analysed frame and its boxes are kept to answer a ticket's snapshot request.
    let evidence_limit = set.evidence.as_ref().map(|(_, max)| *max);
    let mut latest: Option<(opencv::core::Mat, Vec<Detection>, Instant)> = None;
    let evidence_max_age = evidence_max_age(set.report);
    let mut last_report = Instant::now();
    let mut reported_drops = 0;
    let mut frames = 0u64;
    let publish = |counter: &mut C| -> bool {
        for r in counter.readings(Utc::now()) {
            if !futures::executor::block_on(send(&cx, r)) {
                return false;
            }
        }
        true
    };
    // A model or IoU change loading on a side thread while the current sessions keep counting.
    let mut loading: Option<Loading> = None;
    loop {
        if cx.shutdown.is_cancelled() {
            break;
        }
        while let Ok(r) = retunes.try_recv() {
            loading = now.retune(r, &set, &ids, &cx).or(loading);
        }
        if let Some(l) = &loading {
            match l.done.try_recv() {
                Ok(Ok(detectors)) => {
                    let Some(l) = loading.take() else { break };
                    match DetectorPool::<Frame>::start(&ids.source_id, detectors) {
                        // The old pool is dropped here: it finishes the frames it holds (at most one per worker,
                        // not counted) and its sessions are freed. Readings go on from the smoothed counts.
                        Ok(p) => {
                            pool = p;
                            now = l.next;
                            cx.health.model(now.info(&ids.source_id, None));
                            tracing::info!(source = %ids.source_id, version = now.version, model = %now.spec_name, "camera switched to new settings");
                        }
                        Err(e) => {
                            now.refuse(&ids, &cx, l.next.version, &format!("cannot start inference threads: {e}"))
                        }
                    }
                }
                Ok(Err(why)) => {
                    let version = l.next.version;
                    loading = None;
                    now.refuse(&ids, &cx, version, &why);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let version = l.next.version;
                    loading = None;
                    now.refuse(&ids, &cx, version, "the model loader stopped");
                }
            }
        }
        // Frames wait in the drop-oldest slot, not in the pool: a worker only gets a frame when it is idle,
        // so the newest frame is always the next one analysed.
        let busy = pool.in_flight() as usize >= pool.workers();
        if !busy {
            let wait = if pool.in_flight() == 0 { Duration::from_millis(100) } else { Duration::from_millis(5) };
            match slot.take(wait) {
                Some(frame) => {
                    let accepted = pool.submit(frame);
                    if !accepted {
                        cx.health.error(&ids.source_id, kind, "inference threads stopped");
                        break;
                    }
                }
                None if slot.is_finished() && pool.in_flight() == 0 => {
                    // The input ended: publish what the last frames saw, then stop.
                    publish(&mut counter);
                    break;
                }
                None => {}
            }
        }
        let wait = if busy { Duration::from_millis(100) } else { Duration::ZERO };
        if let Some((frame, res)) = pool.next(wait) {
            match res {
                Ok(dets) => {
                    let counted: Vec<Detection> = dets.iter().filter(|d| now.counts(d)).copied().collect();
                    counter.frame(&frame, &counted);
                    frames += 1;
                    cx.health.accepted(&ids.source_id, kind, 1);
                    tracing::trace!(source = %ids.source_id, frame = frame.index, detections = dets.len(), "frame");
                    if evidence_limit.is_some() {
                        latest = Some((frame.mat, dets, Instant::now()));
                    }
                }
                Err(e) => cx.health.rejected(&ids.source_id, kind, "bad_frame", &format!("frame {}: {e}", frame.index)),
            }
        }
        if let (Some(max), Some(asks)) = (evidence_limit, &asks) {
            while let Ok(ask) = asks.try_recv() {
                let jpeg =
                    evidence_frame_ok(latest.as_ref().map(|l| l.2), Instant::now(), evidence_max_age).and_then(|()| {
                        match &latest {
                            Some((mat, dets, _)) => blurred_jpeg(mat, dets, max).map_err(|e| e.to_string()),
                            None => Err("no frame analysed yet".to_string()),
                        }
                    });
                tracing::debug!(source = %ids.source_id, ticket = ask.ticket, zone = %ask.zone, ok = jpeg.is_ok(), "evidence asked");
                let _ = ask.reply.send(jpeg);
            }
        }
        let dropped = slot.dropped();
        if dropped > reported_drops {
            for _ in reported_drops..dropped {
                cx.health.rejected(
                    &ids.source_id,
                    kind,
                    "frame_dropped",
                    "inference slower than capture; oldest frame dropped",
                );
            }
            reported_drops = dropped;
        }
        if frames > 0 && last_report.elapsed() >= set.report {
            last_report = Instant::now();
            if !publish(&mut counter) {
                break;
            }
        }
    }
    stop.cancel();
    drop(pool);
    if capture.join().is_err() {
        tracing::error!(source = %ids.source_id, "capture thread panicked");
    }
    tracing::info!(source = %ids.source_id, frames, dropped = slot.dropped(), "vision source stopped");
}

/// What a camera runs now: the model, the counting thresholds, the NMS IoU and the lowest scores its sessions
/// keep, and the centre's settings version they come from (0: the edge file's).
#[derive(Debug, Clone)]
struct Running {
    version: i64,
    person: f32,
    vehicle: f32,
    nms_iou: f32,
    floor: (f32, f32),
    pool_spec: Option<ModelSpec>,
    spec_name: String,
    spec_version: String,
    sha256: String,
}

/// A model or IoU change being loaded and self-checked off the pipeline's thread.
struct Loading {
    next: Running,
    done: std::sync::mpsc::Receiver<Result<Vec<Detector>, String>>,
}

impl Running {
    fn configured(set: &PipelineSettings) -> Running {
        Running {
            version: 0,
            person: set.model.person_threshold,
            vehicle: set.model.vehicle_threshold,
            nms_iou: set.model.nms_iou,
            floor: (0.0, 0.0),
            pool_spec: None,
            spec_name: set.model.name.clone(),
            spec_version: String::new(),
            sha256: String::new(),
        }
    }

    /// The detector config for these thresholds. Sessions keep persons down to the self-check's score (so a new
    /// model can be checked and a threshold lowered to there without reloading) and to the privacy threshold when
    /// snapshots blur them; what is counted is filtered at the counting thresholds ([`Running::counts`]).
    fn load_config(&self, set: &PipelineSettings) -> ModelConfig {
        let mut m = set.model.clone();
        m.person_threshold = self.person.min(crate::vision::self_check::SCORE);
        m.vehicle_threshold = self.vehicle;
        m.nms_iou = self.nms_iou;
        if set.evidence.is_some() {
            m.person_threshold = m.person_threshold.min(m.privacy_threshold);
        }
        m
    }

    fn loaded(&mut self, d: &Detector) {
        let spec = d.spec();
        self.spec_name = spec.name.clone();
        self.spec_version = spec.version.clone();
        self.sha256 = spec.sha256.clone();
        self.floor = (d.person_floor(), d.vehicle_floor());
    }

    fn counts(&self, d: &Detection) -> bool {
        d.score >= if d.class == Class::Person { self.person } else { self.vehicle }
    }

    fn info(&self, source: &str, refused: Option<String>) -> crowdgrid_proto::ModelInfo {
        crowdgrid_proto::ModelInfo {
            name: self.spec_name.clone(),
            version: self.spec_version.clone(),
            sha256: self.sha256.clone(),
            source: source.to_string(),
            settings_version: (self.version > 0).then_some(self.version),
            person_threshold: Some(self.person),
            vehicle_threshold: Some(self.vehicle),
            nms_iou: Some(self.nms_iou),
            refused,
        }
    }

    fn refuse(&self, ids: &Ids, cx: &SourceContext, version: i64, why: &str) {
        tracing::warn!(source = %ids.source_id, version, why, "camera settings refused; the camera keeps what it runs");
        cx.health.rejected(&ids.source_id, ids.kind.as_str(), "settings_refused", &format!("version {version}: {why}"));
        cx.health.model(self.info(&ids.source_id, Some(format!("version {version}: {why}"))));
    }

    /// Applies `r`: thresholds at or above what the sessions keep at once; a new model, a new IoU or a lower
    /// threshold by loading new sessions on a side thread (returned), self-checked before they are used.
    fn retune(&mut self, r: Retune, set: &PipelineSettings, ids: &Ids, cx: &SourceContext) -> Option<Loading> {
        let pool_spec = match r.model {
            ModelChange::Refused(why) => {
                self.refuse(ids, cx, r.version, &why);
                return None;
            }
            ModelChange::Configured => None,
            ModelChange::Pool(spec) => Some(*spec),
        };
        let mut next = self.clone();
        next.version = r.version;
        next.person = r.person_threshold.unwrap_or(set.model.person_threshold);
        next.vehicle = r.vehicle_threshold.unwrap_or(set.model.vehicle_threshold);
        next.nms_iou = r.nms_iou.unwrap_or(set.model.nms_iou);
        let same_model = match (&pool_spec, &self.pool_spec) {
            (None, None) => true,
            (Some(a), Some(b)) => a.sha256 == b.sha256,
            _ => false,
        };
        let cfg = next.load_config(set);
        if same_model
            && next.nms_iou == self.nms_iou
            && cfg.person_threshold >= self.floor.0
            && next.vehicle >= self.floor.1
        {
            *self = next;
            cx.health.model(self.info(&ids.source_id, None));
            tracing::info!(source = %ids.source_id, version = self.version, person = self.person, vehicle = self.vehicle, "camera thresholds changed");
            return None;
        }
        next.pool_spec = pool_spec.clone();
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let source = ids.source_id.clone();
        next.floor = (cfg.person_threshold, cfg.vehicle_threshold);
        let spawned = std::thread::Builder::new().name(format!("load-{source}")).spawn(move || {
            let loaded = match pool_spec {
                Some(spec) => Detector::load_workers_from(&cfg, spec),
                None => Detector::load_workers(&cfg),
            };
            let res = loaded.map_err(|e| e.to_string()).and_then(|mut dets| {
                let first = dets.first_mut().ok_or_else(|| "no session".to_string())?;
                let found = crate::vision::self_check::run(first)?;
                tracing::info!(source = %source, persons = found, "new detector passed the self-check");
                Ok(dets)
            });
            let _ = tx.send(res);
        });
        match spawned {
            Ok(_) => {
                // The new sessions' model, as the loader will have it.
                if let Some(spec) = &next.pool_spec {
                    next.spec_name = spec.name.clone();
                    next.spec_version = spec.version.clone();
                    next.sha256 = spec.sha256.clone();
                } else if let Ok(spec) = crate::vision::manifest::Manifest::find(&set.model.manifest, &set.model.name) {
                    next.spec_name = spec.name;
                    next.spec_version = spec.version;
                    next.sha256 = spec.sha256;
                }
                Some(Loading { next, done })
            }
            Err(e) => {
                self.refuse(ids, cx, r.version, &format!("cannot start the loader thread: {e}"));
                None
            }
        }
    }
}

/// How old the latest analysed frame may be to answer a snapshot request: a snapshot must show the scene now,
/// not a frame from before a camera outage (three report intervals, at least 10 s).
pub fn evidence_max_age(report: Duration) -> Duration {
    (report * 3).max(Duration::from_secs(10))
}

/// Whether a frame analysed `at` may answer a snapshot request at `now`; why not otherwise (nothing is sent).
pub fn evidence_frame_ok(at: Option<Instant>, now: Instant, max_age: Duration) -> Result<(), String> {
    match at {
        None => Err("no frame analysed yet".to_string()),
        Some(at) if now.saturating_duration_since(at) <= max_age => Ok(()),
        Some(at) => Err(format!("no recent frame (the last is {} s old)", now.saturating_duration_since(at).as_secs())),
    }
}

#[cfg(test)]
mod evidence_age_tests {
    use super::*;

    #[test]
    fn a_frame_older_than_the_report_window_sends_nothing() {
        assert_eq!(evidence_max_age(Duration::from_secs(2)), Duration::from_secs(10), "at least 10 s");
        assert_eq!(evidence_max_age(Duration::from_secs(5)), Duration::from_secs(15), "three report intervals");
        let now = Instant::now() + Duration::from_secs(60);
        let max = Duration::from_secs(10);
        assert_eq!(evidence_frame_ok(Some(now - Duration::from_secs(9)), now, max), Ok(()));
        assert_eq!(
            evidence_frame_ok(Some(now - Duration::from_secs(10)), now, max),
            Ok(()),
            "the limit itself is fine"
        );
        assert_eq!(
            evidence_frame_ok(Some(now - Duration::from_secs(11)), now, max),
            Err("no recent frame (the last is 11 s old)".to_string())
        );
        assert_eq!(evidence_frame_ok(None, now, max), Err("no frame analysed yet".to_string()));
    }
}
