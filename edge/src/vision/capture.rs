//! Frame capture with OpenCV on its own thread: video files, RTSP, HTTP MJPEG and folders of snapshot
//! images. A dropped stream reconnects with exponential backoff; frames are paced by a frame-rate cap and
//! handed over through a [`FrameSlot`] that keeps only the newest 1–2 frames (a slow model never builds a
//! backlog). Bad input is counted in [`Health`] and logged with its path, never a panic.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};
use tokio_util::sync::CancellationToken;

use crate::health::Health;

pub use super::source_config::VideoInput;

/// One captured frame.
#[derive(Debug)]
pub struct Frame {
    /// BGR pixels.
    pub mat: Mat,
    /// Index from the start of the input (frames of a file; images of a folder), counting across loops
    /// and reconnects.
    pub index: u64,
    /// Index within the current file or stream connection (what a drone telemetry sidecar refers to).
    pub local_index: u64,
}

/// A drop-oldest queue of 1–2 frames between capture and inference.
#[derive(Debug)]
pub struct FrameSlot {
    cap: usize,
    inner: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    frames: VecDeque<Frame>,
    dropped: u64,
    closed: bool,
}

impl FrameSlot {
    /// A slot holding at most `cap` frames (clamped to 1..=2).
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.clamp(1, 2), inner: Mutex::new(SlotState::default()), ready: Condvar::new() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a frame, dropping the oldest when full; returns true if one was dropped.
    pub fn put(&self, f: Frame) -> bool {
        let mut s = self.state();
        let dropped = if s.frames.len() >= self.cap {
            s.frames.pop_front();
            s.dropped += 1;
            true
        } else {
            false
        };
        s.frames.push_back(f);
        self.ready.notify_one();
        dropped
    }

    /// Takes the oldest frame, waiting up to `timeout`; `None` on timeout or when closed and empty.
    pub fn take(&self, timeout: Duration) -> Option<Frame> {
        let s = self.state();
        let (mut s, _) = self
            .ready
            .wait_timeout_while(s, timeout, |s| s.frames.is_empty() && !s.closed)
            .unwrap_or_else(|e| e.into_inner());
        s.frames.pop_front()
    }

    /// No more frames will come (the input ended).
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_all();
    }

    /// True once closed and drained.
    pub fn is_finished(&self) -> bool {
        let s = self.state();
        s.closed && s.frames.is_empty()
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }
}

/// Capture settings.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    /// Full source id (health counters, logs).
    pub source_id: String,
    /// Source kind label (`camera`, `drone`).
    pub kind: &'static str,
    /// Highest frame rate handed to inference.
    pub max_fps: f64,
    /// Largest reconnect backoff.
    pub max_backoff: Duration,
}

/// Runs until `stop` is cancelled or a non-looping file/folder ends; then closes the slot.
pub fn run(input: &VideoInput, set: &CaptureSettings, slot: &FrameSlot, health: &Health, stop: &CancellationToken) {
    let mut pacer = Pacer::new(set.max_fps);
    let mut index = 0u64;
    match input {
        VideoInput::Folder { dir, r#loop } => folder(dir, *r#loop, set, slot, health, stop, &mut pacer, &mut index),
        VideoInput::File { path, r#loop, realtime } => {
            let name = path.display().to_string();
            let file = FileMode { repeat: *r#loop, realtime: *realtime };
            stream(&name, Some(file), set, slot, health, stop, &mut pacer, &mut index)
        }
        VideoInput::Rtsp { url } | VideoInput::Http { url } => {
            stream(url, None, set, slot, health, stop, &mut pacer, &mut index)
        }
    }
    slot.close();
    tracing::info!(source = %set.source_id, frames = index, dropped = slot.dropped(), "capture ended");
}

/// Sleeps so that at most `max_fps` frames a second are handed over.
struct Pacer {
    period: Duration,
    next: Instant,
}

impl Pacer {
    fn new(max_fps: f64) -> Self {
        let period =
            if max_fps.is_finite() && max_fps > 0.0 { Duration::from_secs_f64(1.0 / max_fps) } else { Duration::ZERO };
        Self { period, next: Instant::now() }
    }

    /// True when a frame is due now (live streams: read every frame, hand over only due ones).
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.next {
            self.next = (self.next + self.period).max(now);
            true
        } else {
            false
        }
    }

    /// Waits until the next frame is due (files and folders: pace playback), or `stop`.
    fn wait(&mut self, stop: &CancellationToken) {
        while !stop.is_cancelled() {
            let now = Instant::now();
            if now >= self.next {
                break;
            }
            std::thread::sleep((self.next - now).min(Duration::from_millis(50)));
        }
        self.next = (self.next + self.period).max(Instant::now());
    }
}

/// Sleeps `d` in small steps; false if stopped meanwhile.
fn sleep_unless(stop: &CancellationToken, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.is_cancelled() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    !stop.is_cancelled()
}

/// How long connecting to a live stream (RTSP, HTTP) may take.
const LIVE_OPEN_TIMEOUT_MS: i32 = 10_000;
/// How long a live stream may go without a frame before it counts as dropped (and is reconnected).
const LIVE_READ_TIMEOUT_MS: i32 = 5_000;

/// How a video file is played.
#[derive(Debug, Clone, Copy)]
struct FileMode {
    repeat: bool,
    realtime: bool,
}

/// A live stream (`file: None`) or a video file.
#[allow(clippy::too_many_arguments)]
fn stream(
    name: &str,
    file: Option<FileMode>,
    set: &CaptureSettings,
    slot: &FrameSlot,
    health: &Health,
    stop: &CancellationToken,
    pacer: &mut Pacer,
    index: &mut u64,
) {
    let is_file = file.is_some();
    let mut backoff = Duration::from_millis(500);
    while !stop.is_cancelled() {
        let opened = if is_file {
            videoio::VideoCapture::from_file(name, videoio::CAP_FFMPEG)
        } else {
            // A dead camera must not hold the thread for OpenCV's default 30 s before the reconnect starts.
            let params = opencv::core::Vector::<i32>::from_slice(&[
                videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
                LIVE_OPEN_TIMEOUT_MS,
                videoio::CAP_PROP_READ_TIMEOUT_MSEC,
                LIVE_READ_TIMEOUT_MS,
            ]);
            videoio::VideoCapture::from_file_with_params(name, videoio::CAP_FFMPEG, &params)
        }
        .and_then(|c| c.is_opened().map(|o| (c, o)));
        let mut cap = match opened {
            Ok((c, true)) => c,
            Ok((_, false)) | Err(_) => {
                let what = if is_file { "cannot open or decode video file" } else { "cannot connect to stream" };
                health.error(&set.source_id, set.kind, &format!("{what} {name}"));
                tracing::warn!(source = %set.source_id, input = name, backoff_ms = backoff.as_millis() as u64, "{what}");
                if !sleep_unless(stop, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(set.max_backoff);
                continue;
            }
        };
        // A file played in real time is paced at its own frame rate; `pacer` (max_fps) then picks frames.
        let native_fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let mut playback = match file {
            Some(f) if f.realtime && native_fps.is_finite() && native_fps > 0.0 => Some(Pacer::new(native_fps)),
            _ => None,
        };
        tracing::info!(source = %set.source_id, input = name, fps = native_fps, realtime = playback.is_some(), "video opened");
        let mut local = 0u64;
        let mut mat = Mat::default();
        loop {
            if stop.is_cancelled() {
                return;
            }
            match cap.read(&mut mat) {
                Ok(true) if !mat.empty() => {}
                Ok(_) | Err(_) => break,
            }
            local += 1;
            if let Some(p) = playback.as_mut() {
                p.wait(stop);
                if !pacer.due() {
                    continue;
                }
            } else if is_file {
                pacer.wait(stop);
            } else if !pacer.due() {
                continue;
            }
            backoff = Duration::from_millis(500);
            slot.put(Frame { mat: std::mem::take(&mut mat), index: *index, local_index: local - 1 });
            *index += 1;
        }
        if is_file {
            if local == 0 {
                health.error(&set.source_id, set.kind, &format!("no decodable frame in video file {name}"));
                tracing::warn!(source = %set.source_id, input = name, "video file has no decodable frame (broken or truncated?)");
            } else if !file.is_some_and(|f| f.repeat) {
                return;
            }
            if local == 0 && !sleep_unless(stop, backoff) {
                return;
            }
            if local == 0 {
                backoff = (backoff * 2).min(set.max_backoff);
            }
        } else {
            health.error(&set.source_id, set.kind, &format!("stream {name} dropped after {local} frames"));
            tracing::warn!(source = %set.source_id, input = name, frames = local, backoff_ms = backoff.as_millis() as u64, "stream dropped; reconnecting");
            if !sleep_unless(stop, backoff) {
                return;
            }
            backoff = (backoff * 2).min(set.max_backoff);
        }
    }
}

fn images_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png", "bmp"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    v.sort();
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn folder(
    dir: &Path,
    repeat: bool,
    set: &CaptureSettings,
    slot: &FrameSlot,
    health: &Health,
    stop: &CancellationToken,
    pacer: &mut Pacer,
    index: &mut u64,
) {
    let mut seen: Option<PathBuf> = None;
    // Images since the folder (re)started: a looping folder is a recorded patrol, and its telemetry sidecar
    // numbers frames from the first image, on every pass.
    let mut local: u64 = 0;
    while !stop.is_cancelled() {
        let files = match images_in(dir) {
            Ok(f) => f,
            Err(e) => {
                health.error(&set.source_id, set.kind, &format!("cannot read folder {}: {e}", dir.display()));
                if !sleep_unless(stop, set.max_backoff) {
                    return;
                }
                continue;
            }
        };
        let fresh: Vec<&PathBuf> = files.iter().filter(|p| seen.as_ref().is_none_or(|s| *p > s)).collect();
        if fresh.is_empty() {
            if repeat && !files.is_empty() {
                seen = None;
                local = 0;
                continue;
            }
            if !sleep_unless(stop, Duration::from_millis(500)) {
                return;
            }
            continue;
        }
        for p in fresh {
            if stop.is_cancelled() {
                return;
            }
            seen = Some(p.clone());
            let mat = imgcodecs::imread(p.as_path(), imgcodecs::IMREAD_COLOR).unwrap_or_default();
            if mat.empty() {
                health.rejected(&set.source_id, set.kind, "bad_image", &format!("cannot decode image {}", p.display()));
                continue;
            }
            pacer.wait(stop);
            slot.put(Frame { mat, index: *index, local_index: local });
            *index += 1;
            local += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u64) -> Frame {
        Frame { mat: Mat::default(), index: i, local_index: i }
    }

    #[test]
    fn slot_keeps_the_newest_frames() {
        let slot = FrameSlot::new(2);
        assert!(!slot.put(frame(0)));
        assert!(!slot.put(frame(1)));
        assert!(slot.put(frame(2)), "a third frame drops the oldest");
        assert_eq!(slot.dropped(), 1);
        assert_eq!(slot.take(Duration::ZERO).unwrap().index, 1);
        assert_eq!(slot.take(Duration::ZERO).unwrap().index, 2);
        assert!(slot.take(Duration::from_millis(10)).is_none());
        slot.close();
        assert!(slot.is_finished());
    }
}
