//! Vision pipeline benchmark on OpenCV's `vtest.avi` with NanoDet-g: model-only and end-to-end ms/frame,
//! the pipeline's overhead over the model, the same frames through a straightforward Python pipeline
//! (`bench/vision_python.py`: opencv-python + onnxruntime + numpy, same model and thread count) in the
//! same run, this process's peak RSS, and the statically quantised INT8 model (`nanodet-g-coco-int8`,
//! models/quantize.py) through the as-deployed pipeline on the same frames.
//!
//! A plain program that prints figures; it never asserts on timing. Needs `scripts/setup.sh --test`
//! (vtest.avi in `.cache/data/`, the Python venv in `.cache/venv/`).
//!
//! ```sh
//! cargo bench --bench vision -- --frames 300 --threads 2
//! ```
//!
//! End to end = decode (FFmpeg via OpenCV) + letterbox/resize + normalise + inference + box decoding + NMS +
//! zone membership + smoothing + building and serialising each zone's reading onto a bounded channel.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use crowdgrid_edge::vision::detect::{Class, Detection};
use crowdgrid_edge::vision::model::{Detector, ModelConfig};
use crowdgrid_edge::vision::pool::DetectorPool;
use crowdgrid_edge::vision::track::lines::LineCounter;
use crowdgrid_edge::vision::track::{Tracker, TrackerConfig};
use crowdgrid_edge::vision::zones::{self, ImageZone, Smoother};
use crowdgrid_proto::{ClassCounts, Reading, SourceKind};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

const FP32: &str = "nanodet-g-coco";
const INT8: &str = "nanodet-g-coco-int8";

/// NanoDet-g on vtest.avi: model-only and end-to-end ms/frame, overhead, peak RSS, and the Python pipeline.
#[derive(clap::Parser)]
struct Args {
    /// Frames to process.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// CPU threads for inference (both pipelines: Python's one session gets them all).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Frames in flight in the deployed Rust pass (`model.workers`: sessions sharing the threads).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Internal: run one Rust pass in this process and print it as JSON (`like-for-like` or `deployed`).
    #[arg(long, hide = true)]
    pass: Option<String>,
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// What one Rust pass measured (printed as JSON by the child process that ran it).
#[derive(serde::Serialize, serde::Deserialize)]
struct Pass {
    frames: usize,
    wall_s: f64,
    model_s: f64,
    persons: usize,
    published: usize,
    /// Peak RSS of the process that ran the pass (VmHWM), MiB.
    rss_mib: Option<f64>,
    /// Time in the tracker and the counting line (on the collecting thread, after each frame's NMS).
    track_s: f64,
    /// Line crossings counted (a line across the frame at y = 400).
    crossings: usize,
}

impl Pass {
    fn ms(&self, secs: f64) -> f64 {
        secs * 1000.0 / self.frames.max(1) as f64
    }
    fn fps(&self) -> f64 {
        self.frames as f64 / self.wall_s
    }
}

fn bench_zones() -> Vec<ImageZone> {
    vec![
        ImageZone {
            zone: "gate-plaza".into(),
            polygon: vec![[0.0, 120.0], [768.0, 120.0], [768.0, 576.0], [0.0, 576.0]],
            vehicle_lane: false,
            area_m2: 475.0,
        },
        ImageZone {
            zone: "pickup-lane".into(),
            polygon: vec![[600.0, 30.0], [768.0, 30.0], [768.0, 110.0], [600.0, 110.0]],
            vehicle_lane: true,
            area_m2: 40.0,
        },
    ]
}

/// The edge's camera path on `frames` frames of `video` with `workers` sessions sharing `threads`: this
/// thread decodes and submits, the pool's workers infer, results come back in frame order and go through
/// zones, smoothing and reading serialisation onto a bounded channel.
fn rust_pass(
    video: &Path,
    manifest: &Path,
    frames: usize,
    threads: usize,
    workers: usize,
    fit_input: bool,
    model: &str,
) -> Result<Pass, Box<dyn std::error::Error>> {
    let cfg = ModelConfig {
        manifest: manifest.to_path_buf(),
        name: model.to_string(),
        threads,
        workers,
        fit_input,
        ..ModelConfig::default()
    };
    let mut dets = Detector::load_workers(&cfg)?;
    let zones = bench_zones();
    let mut smoother = Smoother::new(5);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);

    // Warm-up on the first frame (session initialisation, allocations), every session.
    let mut cap = videoio::VideoCapture::from_file(video, videoio::CAP_FFMPEG)?;
    let mut frame = Mat::default();
    cap.read(&mut frame)?;
    for det in &mut dets {
        for _ in 0..5 {
            det.detect(&frame)?;
        }
    }
    let mut pool = DetectorPool::<Mat>::start("bench", dets)?;
    let mut cap = videoio::VideoCapture::from_file(video, videoio::CAP_FFMPEG)?;
    let (mut n, mut persons, mut published) = (0usize, 0usize, 0usize);
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut line = LineCounter::new((0.0, 400.0), (768.0, 400.0), 2);
    let (mut track_time, mut crossings) = (Duration::ZERO, 0usize);
    let mut handle = |dets: &[Detection]| -> Result<(), Box<dyn std::error::Error>> {
        let t = Instant::now();
        tracker.update(dets);
        crossings += line.update(tracker.tracked(1)).len();
        track_time += t.elapsed();
        smoother.push(zones::count(&zones, dets));
        persons += dets.iter().filter(|d| d.class == Class::Person).count();
        if let Some(mean) = smoother.mean() {
            for (z, c) in zones.iter().zip(mean) {
                let mut r = Reading::new(
                    "boai-school",
                    &z.zone,
                    SourceKind::Camera,
                    "bench/cam",
                    Utc::now(),
                    c.person,
                    z.area_m2,
                    0.8,
                );
                r.classes = Some(ClassCounts { person: c.person, vehicle: c.vehicle });
                r.conflict = Some(c.conflict);
                tx.try_send(serde_json::to_vec(&r)?)?;
                published += 1;
            }
        }
        while rx.try_recv().is_ok() {}
        Ok(())
    };
    let t0 = Instant::now();
    let mut submitted = 0usize;
    let mut input_done = false;
    while !(input_done && pool.in_flight() == 0) {
        if !input_done {
            let mut frame = Mat::default();
            if submitted < frames && cap.read(&mut frame)? && !frame.empty() {
                if !pool.submit(frame) {
                    return Err("detector workers stopped".into());
                }
                submitted += 1;
            } else {
                input_done = true;
            }
        }
        // Collect what is ready; wait only when the queue is full or the input has ended.
        let wait = if input_done || !pool.has_room() { Duration::from_secs(10) } else { Duration::ZERO };
        if let Some((_, res)) = pool.next(wait) {
            handle(&res?)?;
            n += 1;
        }
    }
    let wall = t0.elapsed();
    let model = pool.model_time();
    drop(pool);
    let rss_mib = vm_hwm_kib().map(|k| k as f64 / 1024.0);
    let track_s = track_time.as_secs_f64();
    Ok(Pass {
        frames: n,
        wall_s: wall.as_secs_f64(),
        model_s: model.as_secs_f64(),
        persons,
        published,
        rss_mib,
        track_s,
        crossings,
    })
}

/// Runs one pass in a child process (this binary with `--pass`), so each configuration's peak RSS is its own.
fn child_pass(args: &Args, pass: &str) -> Result<Pass, Box<dyn std::error::Error>> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--pass", pass, "--frames", &args.frames.to_string()])
        .args(["--threads", &args.threads.to_string(), "--workers", &args.workers.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(format!("{pass} pass failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // `cargo bench` passes `--bench` to every bench binary.
    let args = <Args as clap::Parser>::parse_from(std::env::args().filter(|a| a != "--bench"));
    let (frames, threads) = (args.frames, args.threads.max(1));
    let workers = args.workers.clamp(1, threads);
    let video = root.join(".cache/data/vtest.avi");
    if !video.is_file() {
        return Err(format!("{} missing: run scripts/setup.sh --test", video.display()).into());
    }
    let manifest = root.join("models/manifest.toml");
    match args.pass.as_deref() {
        Some("like-for-like") => {
            println!("{}", serde_json::to_string(&rust_pass(&video, &manifest, frames, threads, 1, false, FP32)?)?);
            return Ok(());
        }
        Some("deployed") => {
            // As `crowdgrid edge` runs it.
            crowdgrid_edge::memory::tune_allocator();
            println!(
                "{}",
                serde_json::to_string(&rust_pass(&video, &manifest, frames, threads, workers, true, FP32)?)?
            );
            return Ok(());
        }
        Some("deployed-int8") => {
            crowdgrid_edge::memory::tune_allocator();
            println!(
                "{}",
                serde_json::to_string(&rust_pass(&video, &manifest, frames, threads, workers, true, INT8)?)?
            );
            return Ok(());
        }
        Some(other) => return Err(format!("unknown pass {other}").into()),
        None => {}
    }
    let same = child_pass(&args, "like-for-like")?;
    let dep = child_pass(&args, "deployed")?;
    let int8 = child_pass(&args, "deployed-int8");
    let rss = |p: &Pass| p.rss_mib.map_or("unavailable".to_string(), |r| format!("{r:.1} MiB"));

    let (model_ms, e2e_ms) = (same.ms(same.model_s), same.ms(same.wall_s));
    println!("vision benchmark: vtest.avi (768×576), NanoDet-g, {threads} inference thread(s), {} frames", same.frames);
    println!(
        "  rust  like for like: 1 session × {threads} threads, 416×416 letterbox (the Python pipeline's structure)"
    );
    println!("        model only         {model_ms:8.2} ms/frame");
    println!(
        "        end to end         {e2e_ms:8.2} ms/frame   ({:.1} frames/s; {} person boxes, {} readings)",
        same.fps(),
        same.persons,
        same.published
    );
    println!("        pipeline overhead  {:8.1} % of model time (goal ≤ 10 %)", (e2e_ms - model_ms) / model_ms * 100.0);
    println!("        peak RSS           {}", rss(&same));
    let track_ms = same.ms(same.track_s);
    println!(
        "        tracker + line     {track_ms:8.3} ms/frame = {:.2} % of model time (goal ≤ 2 %); {} crossings of y = 400",
        track_ms / model_ms * 100.0,
        same.crossings
    );
    println!(
        "        frames/s           {:.1} with tracking, {:.1} without (the same run's wall time minus the tracker's)",
        same.fps(),
        same.frames as f64 / (same.wall_s - same.track_s)
    );
    println!(
        "  rust  as deployed: model.workers = {workers} ({workers} sessions × {} thread(s)), 416×320 letterbox (fit_input)",
        (threads / workers).max(1)
    );
    println!(
        "        end to end         {:8.2} ms/frame   ({:.1} frames/s; model {:.2} ms per frame per session; {} person boxes)",
        dep.ms(dep.wall_s),
        dep.fps(),
        dep.ms(dep.model_s),
        dep.persons
    );
    // Each worker's time outside the model: wall time × workers against the model time of a session.
    let dep_overhead = (dep.wall_s * workers as f64 - dep.model_s) / dep.model_s * 100.0;
    println!("        pipeline overhead  {dep_overhead:8.1} % of model time (a worker's time outside the model)");
    println!("        peak RSS           {} (goal ≤ 200 MB)", rss(&dep));
    match &int8 {
        Ok(q) => {
            println!("  rust  INT8 as deployed ({INT8}, models/quantize.py), same structure and frames");
            println!(
                "        end to end         {:8.2} ms/frame   ({:.1} frames/s; model {:.2} ms per frame per session; {} person boxes)",
                q.ms(q.wall_s),
                q.fps(),
                q.ms(q.model_s),
                q.persons
            );
            println!("        peak RSS           {} (goal ≤ 150 MB)", rss(q));
            println!(
                "  INT8 / fp32 as deployed: {:.2} × the frames/s, model time {:.2} × (goal ≥ 1.8 ×); count error: \
                 crowdgrid eval-model --model {INT8}",
                q.fps() / dep.fps(),
                dep.model_s / q.model_s.max(1e-9)
            );
        }
        Err(e) => println!("  INT8 pass failed: {e}"),
    }

    let python = root.join(".cache/venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(root.join("bench/vision_python.py"))
        .arg(&video)
        .args(["--model", &root.join("models/nanodet_g_coco_hw.onnx").to_string_lossy()])
        .args(["--frames", &same.frames.to_string(), "--threads", &threads.to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            let py_fps = v["fps"].as_f64().unwrap_or(0.0);
            let py_model_ms = v["model_s"].as_f64().unwrap_or(0.0) * 1000.0 / v["frames"].as_f64().unwrap_or(1.0);
            println!("  python 1 session × {threads} threads, 416×416 letterbox (opencv-python + onnxruntime + numpy)");
            println!(
                "        end to end         {:8.2} ms/frame   ({py_fps:.1} frames/s; model only {py_model_ms:.2} ms/frame; {} person boxes)",
                1000.0 / py_fps,
                v["persons"]
            );
            println!(
                "  speed rust/python: like for like {:.2} ×, as deployed {:.2} × (goal ≥ 1.5 ×)",
                same.fps() / py_fps,
                dep.fps() / py_fps
            );
        }
        Ok(o) => println!("  python pipeline failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("  python pipeline not run ({}): {e}; run scripts/setup.sh --test", Path::new(&python).display())
        }
    }
    Ok(())
}
