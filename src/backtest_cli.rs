//! `crowdgrid backtest`: the current rule set and candidate rule files over the stored readings, through the
//! centre's own engine on a simulated clock; a table (or `--json`) of the tickets each would have raised and how
//! each candidate differs. Read-only: nothing is stored, nobody is notified.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::config::{load_toml, site_key, ConfigError};
use crowdgrid_proto::site::Site;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backtest::source::{self, Range};
use crate::backtest::{Backtest, Candidate, Settings};
use crate::central::config::CentralConfig;
use crate::rules::{self, RuleSet};

/// Options of `crowdgrid backtest`.
#[derive(clap::Args, Debug, Clone)]
pub struct BacktestArgs {
    /// Path of central.toml (the store, the sites and the current rule files).
    #[arg(long, default_value = "config/central.toml")]
    pub config: PathBuf,
    /// A candidate rules file (one site's, as in `rule_files`); the other sites keep their current rules.
    /// Repeat for several candidates.
    #[arg(long = "candidate")]
    pub candidates: Vec<PathBuf>,
    /// Only this site's readings.
    #[arg(long)]
    pub site: Option<String>,
    /// Start (RFC 3339); default: the oldest stored reading.
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// End (RFC 3339); default: the newest stored reading.
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// Seconds of data time between the engine's ticks (silent sources, schedules, clear timers); live: 1.
    #[arg(long, default_value_t = 1)]
    pub tick_s: i64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Replay this CSV of timestamped counts (`ts,site,zone,count[,inflow_per_min]`) instead of the store.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Draw this zone (`site/zone`, or `zone` of the only site) as an SVG chart into `--svg`.
    #[arg(long, requires = "svg")]
    pub chart: Option<String>,
    /// Where `--chart` writes the SVG.
    #[arg(long, requires = "chart")]
    pub svg: Option<PathBuf>,
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// A configuration or rules file is invalid (every problem listed).
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The store could not be read.
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// Nothing to replay, or no such zone to chart.
    #[error("{0}")]
    Empty(String),
    /// The counts CSV is unreadable or has bad rows.
    #[error("{0}")]
    Csv(#[from] source::CsvError),
    /// The chart could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The current rule files with each candidate file in place of the current one of its site.
fn candidate_files(current: &[PathBuf], candidate: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let site_of = |p: &Path| -> Result<String, ConfigError> {
        site_key(&load_toml(p)?).ok_or_else(|| ConfigError::Parse {
            path: p.to_path_buf(),
            message: "a rules file names its site (site = \"…\")".into(),
        })
    };
    let site = site_of(candidate)?;
    let mut files = Vec::new();
    for f in current {
        if site_of(f)? != site {
            files.push(f.clone());
        }
    }
    files.push(candidate.to_path_buf());
    Ok(files)
}

/// Runs the backtest described by `args` (with a progress bar on a terminal when `progress`).
pub fn run_backtest(args: &BacktestArgs, progress: bool) -> Result<crate::backtest::report::Report, BacktestError> {
    let loaded = CentralConfig::load(&args.config)?;
    let sites: Vec<Arc<Site>> = loaded.sites.clone();
    let current = &loaded.config.rule_files;
    let compile = |files: &[PathBuf]| -> Result<RuleSet, ConfigError> {
        if files.is_empty() {
            Ok(RuleSet::defaults(&sites))
        } else {
            rules::load(files, &sites)
        }
    };
    let mut sets = vec![Candidate { name: "current".into(), rules: compile(current)? }];
    for c in &args.candidates {
        let name = c.file_stem().map_or_else(|| c.display().to_string(), |s| s.to_string_lossy().into_owned());
        sets.push(Candidate { name, rules: compile(&candidate_files(current, c)?)? });
    }
    let settings = Settings {
        fused_fresh: Duration::seconds(loaded.config.rules.fused_fresh_s),
        reopen_window: Duration::seconds(loaded.config.escalation.reopen_window_s),
        tick: Duration::seconds(args.tick_s.max(1)),
    };
    if let Some(csv) = &args.csv {
        let readings = source::from_csv(csv, &sites)?;
        let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
            return Err(BacktestError::Empty(format!("no rows in {}", csv.display())));
        };
        let end = args.to.unwrap_or(last.ts);
        let mut bt = Backtest::new(&sites, sets, settings);
        let start = args.from.unwrap_or(first.ts);
        readings.iter().filter(|r| r.ts >= start && r.ts <= end).for_each(|r| bt.feed(r));
        return Ok(bt.finish(end));
    }
    let db = &loaded.config.store.path;
    let (first, last) = source::span(db, args.site.as_deref())?
        .ok_or_else(|| BacktestError::Empty(format!("no readings in {}", db.display())))?;
    let range = Range { from: args.from.unwrap_or(first), to: args.to.unwrap_or(last), site: args.site.clone() };
    let bar = if progress { ProgressBar::new(source::count(db, &range)?) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {human_pos}/{human_len} readings, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut bt = Backtest::new(&sites, sets, settings);
    source::each(db, &range, |r| {
        bt.feed(&r);
        if bt.readings() % 4096 == 0 {
            bar.set_position(bt.readings());
        }
    })?;
    bar.finish_and_clear();
    let report = bt.finish(range.to);
    if let (Some(chart), Some(svg)) = (&args.chart, &args.svg) {
        let (site, zone) = match chart.split_once('/') {
            Some((s, z)) => (s.to_string(), z.to_string()),
            None => (sites.first().map(|s| s.config.id.clone()).unwrap_or_default(), chart.clone()),
        };
        let z = sites
            .iter()
            .find(|s| s.config.id == site)
            .and_then(|s| s.zone(&zone))
            .ok_or_else(|| BacktestError::Empty(format!("no zone {site}/{zone} to chart")))?;
        let series = source::map_series(db, &site, &zone, report.from.unwrap_or(report.to), report.to)?;
        std::fs::write(svg, crate::backtest::svg::chart(&report, &site, z, &series))?;
    }
    Ok(report)
}

/// Runs `crowdgrid backtest`.
pub fn run(args: BacktestArgs) -> ExitCode {
    match run_backtest(&args, !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr())) {
        Ok(report) if args.json => match serde_json::to_string_pretty(&report) {
            Ok(s) => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crowdgrid backtest: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(report) => {
            print!("{}", report.text());
            ExitCode::SUCCESS
        }
        Err(BacktestError::Config(e)) => {
            eprintln!("Invalid configuration: {e}");
            ExitCode::from(crate::cli::EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("crowdgrid backtest: {e}");
            ExitCode::FAILURE
        }
    }
}
