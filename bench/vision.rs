//! Vision pipeline benchmark on OpenCV's `vtest.avi` with NanoDet-g: model-only and end-to-end ms/frame,
//! the pipeline's overhead over the model, the same frames through a straightforward Python pipeline
//! (`bench/vision_python.py`: opencv-python + onnxruntime + numpy, same model and thread count) in the
//! same run, and this process's peak RSS.
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
use crowdgrid_edge::vision::model::{Detector, ModelConfig};
use crowdgrid_edge::vision::zones::{self, ImageZone, Smoother};
use crowdgrid_proto::{ClassCounts, Reading, SourceKind};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

/// NanoDet-g on vtest.avi: model-only and end-to-end ms/frame, overhead, peak RSS, and the Python pipeline.
#[derive(clap::Parser)]
struct Args {
    /// Frames to process.
    #[arg(long, default_value_t = 300)]
    frames: usize,
    /// ONNX Runtime intra-op threads (both pipelines).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // `cargo bench` passes `--bench` to every bench binary.
    let args = <Args as clap::Parser>::parse_from(std::env::args().filter(|a| a != "--bench"));
    let (frames, threads) = (args.frames, args.threads);
    let video = root.join(".cache/data/vtest.avi");
    if !video.is_file() {
        return Err(format!("{} missing: run scripts/setup.sh --test", video.display()).into());
    }
    let cfg = ModelConfig { manifest: root.join("models/manifest.toml"), threads, ..ModelConfig::default() };
    let mut det = Detector::load(&cfg)?;
    let zones = vec![
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
    ];
    let mut smoother = Smoother::new(5);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);

    // Warm-up on the first frame (session initialisation, allocations).
    let mut cap = videoio::VideoCapture::from_file(video.as_path(), videoio::CAP_FFMPEG)?;
    let mut frame = Mat::default();
    cap.read(&mut frame)?;
    for _ in 0..5 {
        det.detect(&frame)?;
    }
    let mut cap = videoio::VideoCapture::from_file(video.as_path(), videoio::CAP_FFMPEG)?;
    let model_before = det.model_time();
    let (mut n, mut persons, mut published) = (0usize, 0usize, 0usize);
    let t0 = Instant::now();
    while n < frames && cap.read(&mut frame)? && !frame.empty() {
        let dets = det.detect(&frame)?;
        smoother.push(zones::count(&zones, &dets));
        persons += dets.iter().filter(|d| d.class == crowdgrid_edge::vision::detect::Class::Person).count();
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
        n += 1;
    }
    let total = t0.elapsed();
    let model = det.model_time() - model_before;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n.max(1) as f64;
    let (model_ms, e2e_ms) = (ms(model), ms(total));
    let rust_fps = n as f64 / total.as_secs_f64();
    let rss_mib = vm_hwm_kib().map(|k| k as f64 / 1024.0);

    println!("vision benchmark: vtest.avi, NanoDet-g 416, {threads} ORT thread(s), {n} frames");
    println!("  rust  model only         {model_ms:8.2} ms/frame");
    println!("  rust  end to end         {e2e_ms:8.2} ms/frame   ({rust_fps:.1} frames/s; {persons} person boxes, {published} readings)");
    println!("  rust  pipeline overhead  {:8.1} % of model time (goal ≤ 10 %)", (e2e_ms - model_ms) / model_ms * 100.0);
    match rss_mib {
        Some(r) => println!("  rust  peak RSS (VmHWM)   {r:8.1} MiB (goal ≤ 200 MiB)"),
        None => println!("  rust  peak RSS           unavailable"),
    }

    let python = root.join(".cache/venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(root.join("bench/vision_python.py"))
        .arg(&video)
        .args(["--model", &root.join("models/nanodet_g_coco.onnx").to_string_lossy()])
        .args(["--frames", &n.to_string(), "--threads", &threads.to_string()])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            let py_fps = v["fps"].as_f64().unwrap_or(0.0);
            let py_model_ms = v["model_s"].as_f64().unwrap_or(0.0) * 1000.0 / v["frames"].as_f64().unwrap_or(1.0);
            println!("  python end to end        {:8.2} ms/frame   ({py_fps:.1} frames/s; model only {py_model_ms:.2} ms/frame; {} person boxes)", 1000.0 / py_fps, v["persons"]);
            println!("  speed ratio rust/python  {:8.2} × (goal ≥ 1.5 ×)", rust_fps / py_fps);
        }
        Ok(o) => println!("  python pipeline failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("  python pipeline not run ({}): {e}; run scripts/setup.sh --test", Path::new(&python).display())
        }
    }
    Ok(())
}
