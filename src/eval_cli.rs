//! `crowdgrid eval-model`: a detector over a labelled set for a sweep of confidence thresholds, NMS IoUs, input
//! sizes and slicing; prints a table of count errors (per class and zone), precision/recall/F1, AP50 and ms per
//! frame, recommends a threshold, and writes the report as JSON (what the console shows) and an SVG plot of the
//! count error against the threshold. The sweep itself is `crowdgrid_edge::vision::eval`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crowdgrid_edge::vision::detect::Class;
use crowdgrid_edge::vision::eval::labels::LabelSet;
use crowdgrid_edge::vision::eval::sweep::{best_in, EvalReport, InputMode, Run, Sweep};
use crowdgrid_edge::vision::model::{ModelConfig, SlicingConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::EXIT_CONFIG;

/// Options of `crowdgrid eval-model`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// The labelled set (`labels.toml`, format in docs/EVAL.md).
    #[arg(long, default_value = "tests/data/vision/labelled/labels.toml")]
    pub labels: PathBuf,
    /// The model manifest.
    #[arg(long, default_value = "models/manifest.toml")]
    pub manifest: PathBuf,
    /// Model name in the manifest.
    #[arg(long, default_value = "nanodet-g-coco")]
    pub model: String,
    /// Confidence thresholds: `FROM:TO:STEP` or a comma list.
    #[arg(long, default_value = "0.2:0.7:0.05")]
    pub thresholds: String,
    /// NMS IoU values, comma separated.
    #[arg(long, default_value = "0.5,0.6,0.7")]
    pub iou: String,
    /// Inputs: `fitted`, `square` or both, comma separated.
    #[arg(long, default_value = "fitted,square")]
    pub inputs: String,
    /// Slicing: `off`, `on` or both, comma separated (`on`: tiles of `--tile` px, 20 % overlap, plus the whole frame).
    #[arg(long, default_value = "off,on")]
    pub slicing: String,
    /// Tile side in pixels when slicing.
    #[arg(long, default_value_t = 384)]
    pub tile: u32,
    /// CPU threads for inference.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Write the report as JSON here (a centre's `[models] dir`/evals/ is what the console shows).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of person count MAE against the threshold here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_list<T>(text: &str, what: &str, one: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| one(s).ok_or_else(|| format!("--{what}: cannot read {s:?}")))
        .collect()
}

/// `FROM:TO:STEP` (inclusive, rounded to 1e-4) or a comma list.
pub fn parse_thresholds(text: &str) -> Result<Vec<f32>, String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() == 3 {
        let nums: Vec<f64> = parts.iter().filter_map(|p| p.trim().parse().ok()).collect();
        let [from, to, step] = nums[..] else { return Err(format!("--thresholds: cannot read {text:?}")) };
        if step.is_nan() || step <= 0.0 || to < from || (to - from) / step > 1000.0 {
            return Err("--thresholds FROM:TO:STEP wants FROM ≤ TO and a positive STEP (at most 1000 values)".into());
        }
        let n = ((to - from) / step + 1e-6).floor() as usize;
        return Ok((0..=n).map(|i| ((from + step * i as f64) * 1e4).round() as f32 / 1e4).collect());
    }
    parse_list(text, "thresholds", |s| s.parse::<f32>().ok())
}

fn sweep(args: &EvalArgs) -> Result<Sweep, String> {
    let inputs = parse_list(&args.inputs, "inputs", |s| match s {
        "fitted" => Some(InputMode::Fitted),
        "square" => Some(InputMode::Square),
        _ => None,
    })?;
    let tile = SlicingConfig { tile: args.tile.max(32), overlap: 0.2, full_frame: true };
    let slicing = parse_list(&args.slicing, "slicing", |s| match s {
        "off" => Some(None),
        "on" => Some(Some(tile)),
        _ => None,
    })?;
    Ok(Sweep {
        model: ModelConfig {
            manifest: args.manifest.clone(),
            name: args.model.clone(),
            threads: args.threads.max(1),
            ..ModelConfig::default()
        },
        thresholds: parse_thresholds(&args.thresholds)?,
        ious: parse_list(&args.iou, "iou", |s| s.parse::<f32>().ok())?,
        inputs,
        slicing,
    })
}

/// Runs `crowdgrid eval-model` (blocking: call it off the async runtime).
pub fn run(args: EvalArgs) -> ExitCode {
    let set = match LabelSet::load(&args.labels) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crowdgrid eval-model: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let sw = match sweep(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crowdgrid eval-model: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let total = (sw.passes() * set.file.images.len()) as u64;
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} model passes  {elapsed} (eta {eta})") {
        bar.set_style(style);
    }
    let report = sw.run(&set, &mut || bar.inc(1));
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crowdgrid eval-model: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", table(&report));
    if let Some(p) = &args.json {
        let text = match serde_json::to_string_pretty(&report) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("crowdgrid eval-model: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(p, text) {
            eprintln!("crowdgrid eval-model: {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
        eprintln!("report: {}", p.display());
    }
    if let Some(p) = &args.svg {
        if let Err(e) = crate::eval_plot::write_svg(&report, p) {
            eprintln!("crowdgrid eval-model: {}: {e}", p.display());
            return ExitCode::FAILURE;
        }
        eprintln!("plot: {}", p.display());
    }
    ExitCode::SUCCESS
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

/// A run's label, e.g. `fitted, sliced 384, IoU 0.6`.
pub fn run_label(r: &Run) -> String {
    let input = match r.input {
        InputMode::Fitted => "fitted",
        InputMode::Square => "square",
    };
    let sl = r.slicing.map(|s| format!("sliced {}", s.tile)).unwrap_or_else(|| "whole".into());
    format!("{input}, {sl}, IoU {}", r.nms_iou)
}

/// The report as text: one line per run, then every threshold of the run holding the best person threshold.
pub fn table(r: &EvalReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}) on {}: {} images, {} persons and {} vehicles labelled",
        r.model,
        r.sha256.get(..12).unwrap_or(""),
        r.set,
        r.images,
        r.persons_labelled,
        r.vehicles_labelled
    );
    let _ = writeln!(
        out,
        "\n{:<32} {:>9} {:>10} {:>8} {:>9} {:>10} {:>9} {:>9}",
        "run", "person t", "count MAE", "AP50", "vehicle t", "count MAE", "model ms", "total ms"
    );
    for run in &r.runs {
        let p = best_in(run, Class::Person);
        let v = best_in(run, Class::Vehicle);
        let _ = writeln!(
            out,
            "{:<32} {:>9} {:>10} {:>8} {:>9} {:>10} {:>9.1} {:>9.1}",
            run_label(run),
            p.map(|x| format!("{:.2}", x.threshold)).unwrap_or_default(),
            p.map(|x| format!("{:.2}", x.person.count.mae)).unwrap_or_default(),
            opt(run.person_ap50),
            v.map(|x| format!("{:.2}", x.threshold)).unwrap_or_default(),
            v.map(|x| format!("{:.2}", x.vehicle.count.mae)).unwrap_or_default(),
            run.model_ms_per_frame,
            run.detect_ms_per_frame,
        );
    }
    if let Some(b) = &r.best_person {
        let run =
            r.runs.iter().find(|x| x.input == b.input && x.slicing.is_some() == b.slicing && x.nms_iou == b.nms_iou);
        if let Some(run) = run {
            let _ = writeln!(out, "\nevery threshold of {}:", run_label(run));
            let _ = writeln!(
                out,
                "{:>9} {:>8} {:>8} {:>8} {:>10} {:>6} {:>6} {:>6} {:>12}",
                "threshold", "MAE", "RMSE", "bias", "zone MAE", "P", "R", "F1", "vehicle MAE"
            );
            for p in &run.points {
                let c = &p.person;
                let _ = writeln!(
                    out,
                    "{:>9.2} {:>8.2} {:>8.2} {:>+8.2} {:>10} {:>6} {:>6} {:>6} {:>12.2}",
                    p.threshold,
                    c.count.mae,
                    c.count.rmse,
                    c.count.bias,
                    opt(c.zones.map(|z| z.mae)),
                    opt(c.precision),
                    opt(c.recall),
                    opt(c.f1),
                    p.vehicle.count.mae
                );
            }
        }
        let _ = writeln!(
            out,
            "\nrecommended person threshold: {:.2} ({}{}, IoU {}) — count MAE {:.2}, RMSE {:.2}",
            b.threshold,
            if b.input == InputMode::Fitted { "fitted" } else { "square" },
            if b.slicing { ", sliced" } else { "" },
            b.nms_iou,
            b.mae,
            b.rmse
        );
    }
    if let Some(b) = &r.best_vehicle {
        let _ = writeln!(out, "recommended vehicle threshold: {:.2} — count MAE {:.2}", b.threshold, b.mae);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_from_a_range_or_a_list() {
        assert_eq!(parse_thresholds("0.4:0.5:0.05").unwrap(), vec![0.4, 0.45, 0.5]);
        assert_eq!(parse_thresholds("0.3,0.45").unwrap(), vec![0.3, 0.45]);
        assert!(parse_thresholds("0.5:0.4:0.05").is_err());
        assert!(parse_thresholds("0.1:0.9:0").is_err());
        assert!(parse_thresholds("a,b").is_err());
    }
}
