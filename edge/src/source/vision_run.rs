//! The shared frame pipeline of camera and drone sources: a capture thread feeding a drop-oldest slot, a
//! [`DetectorPool`] of `model.workers` inference threads, and one dedicated blocking thread that hands the
//! newest frame to an idle worker, counts the results in frame order, and publishes readings every report
//! interval. Never on the async runtime; never a panic on bad input —
//! a missing model, wrong sha256 or missing ONNX Runtime is logged and counted (`input_error`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crowdgrid_proto::geometry::{CameraGeometry, CameraView};
use crowdgrid_proto::Reading;

use super::retune::{Loading, Running};
use super::{send, Ids, SourceContext, SourceError, Started};
use crate::evidence::EvidenceAsk;
use crate::tuning::Retune;
use crate::vision::capture::{self, CaptureSettings, Frame, FrameSlot, VideoInput};
use crate::vision::detect::Detection;
use crate::vision::evidence::blurred_jpeg;
use crate::vision::model::{Detector, ModelConfig};
use crate::vision::pool::DetectorPool;

/// What a source does with each frame's detections (pure; tested without a model).
pub trait FrameCounter: Send + 'static {
    /// A geometry from the centre, checked and built off the counting path, ready to swap in.
    type Prepared: Send;
    /// Takes one frame's detections (boxes in frame pixels).
    fn frame(&mut self, frame: &Frame, dets: &[Detection]);
    /// The readings to publish at `now` (smoothed over the recent frames).
    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading>;
    /// Checks and builds `g` (`None`: the edge file's); why not, when it cannot count with it.
    fn prepare(&self, g: Option<&CameraGeometry>) -> Result<Self::Prepared, String>;
    /// Counts with a prepared geometry from the next frame on; whether anything changed.
    fn apply(&mut self, p: Self::Prepared) -> bool;
    /// The image geometry counted with now (none for a source without one, e.g. a drone).
    fn geometry(&self) -> Option<&CameraGeometry>;
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
    // A model or IoU change loading on a side thread while the current sessions keep counting, and the geometry
    // that goes with it.
    let mut loading: Option<Loading> = None;
    let mut pending: Option<C::Prepared> = None;
    let mut view = ViewTimer::new();
    loop {
        if cx.shutdown.is_cancelled() {
            break;
        }
        // Each retune is the whole of what the centre wants now: it supersedes a load still under way. Its
        // geometry is checked first and swapped in with the rest: at once, or when a new model has loaded.
        while let Ok(mut r) = retunes.try_recv() {
            let version = r.version;
            pending = None;
            let prepared = match counter.prepare(r.geometry.take().as_ref()) {
                Ok(p) => p,
                Err(why) => {
                    loading = None;
                    now.refuse(&ids, &cx, version, &format!("geometry: {why}"));
                    continue;
                }
            };
            loading = now.retune(r, &set, &ids, &cx);
            if loading.is_some() {
                pending = Some(prepared);
            } else if now.version == version {
                if counter.apply(prepared) {
                    regeometry(&counter, &ids, &cx, set.evidence.is_some());
                }
                view.due();
            }
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
                            if pending.take().is_some_and(|g| counter.apply(g)) {
                                regeometry(&counter, &ids, &cx, set.evidence.is_some());
                            }
                            view.due();
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
                    if let Some(max) = evidence_limit {
                        if view.is_due() {
                            send_view(&counter, &ids, &cx, (&frame.mat, &dets), now.version, max);
                            view.sent();
                        }
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

/// After a geometry change: the evidence hub learns the zones the camera now sees.
fn regeometry<C: FrameCounter>(counter: &C, ids: &Ids, cx: &SourceContext, evidence: bool) {
    if let (true, Some(g)) = (evidence, counter.geometry()) {
        cx.evidence.set_zones(&ids.source_id, g.zones.iter().map(|z| z.zone.clone()).collect());
    }
}

/// When a camera's view is sent: at its first analysed frame, after each geometry or settings change, and
/// every [`VIEW_EVERY`].
struct ViewTimer {
    last: Option<Instant>,
    due: bool,
}

/// How often a camera's view is refreshed without a change.
pub const VIEW_EVERY: Duration = Duration::from_secs(600);

/// Largest view JPEG (the view message stays under [`crowdgrid_proto::geometry::MAX_VIEW_BYTES`] in base64).
pub const VIEW_MAX_JPEG: usize = 512 << 10;

impl ViewTimer {
    fn new() -> Self {
        Self { last: None, due: true }
    }
    fn due(&mut self) {
        self.due = true;
    }
    fn is_due(&self) -> bool {
        self.due || self.last.is_some_and(|t| t.elapsed() >= VIEW_EVERY)
    }
    fn sent(&mut self) {
        self.due = false;
        self.last = Some(Instant::now());
    }
}

/// Sends the camera's view (a blurred JPEG of `frame` and the geometry counted with) to the evidence task,
/// which publishes it retained; a failure is counted on the source, never stops counting.
fn send_view<C: FrameCounter>(
    counter: &C,
    ids: &Ids,
    cx: &SourceContext,
    (mat, dets): (&opencv::core::Mat, &[Detection]),
    version: i64,
    max_bytes: usize,
) {
    use base64::Engine as _;
    use opencv::prelude::MatTraitConst;
    let Some(geometry) = counter.geometry() else { return };
    let jpeg = match blurred_jpeg(mat, dets, max_bytes.min(VIEW_MAX_JPEG)) {
        Ok(j) => j,
        Err(e) => {
            cx.health.rejected(&ids.source_id, ids.kind.as_str(), "view_failed", &format!("view: {e}"));
            return;
        }
    };
    let camera = ids.source_id.strip_prefix(&format!("{}/", cx.edge_id)).unwrap_or(&ids.source_id).to_string();
    let v = CameraView {
        camera,
        taken_at: Utc::now(),
        width: mat.cols().max(0) as u32,
        height: mat.rows().max(0) as u32,
        settings_version: (version > 0).then_some(version),
        geometry: geometry.clone(),
        jpeg: base64::engine::general_purpose::STANDARD.encode(jpeg),
    };
    if !cx.evidence.offer_view(v) {
        cx.health.rejected(&ids.source_id, ids.kind.as_str(), "view_failed", "view: the publisher is busy");
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
