//! `crowdgrid import-counts`: a recorded counts file into a site's series in the centre's store (idempotent: a
//! reading already stored is not stored twice), with a report of everything it skipped and why.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::import::hourly::{self, Report};
use crate::import::mapping::Mapping;
use crate::metrics::Metrics;
use crate::store::writer::{Batch, StoreWriter, WriterSettings};

/// Options of `crowdgrid import-counts`.
#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    /// Path of central.toml (the sites and the store).
    #[arg(long, default_value = "config/central.toml")]
    pub config: PathBuf,
    /// The counts file (wide hourly CSV: `date`, `hour`, one column per sensor).
    #[arg(long)]
    pub csv: PathBuf,
    /// The mapping (site, time zone, sensors → zones, dwell time).
    #[arg(long)]
    pub map: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn print(r: &Report) {
    let span = r.span.map_or("-".to_string(), |(a, b)| format!("{a} → {b}"));
    println!("{} rows, {} readings ({span})", r.rows, r.readings);
    for (sensor, n) in r.missing.iter().filter(|(_, n)| **n > 0) {
        println!("  missing  {sensor}: {n} empty hours");
    }
    if r.gaps_total > 0 {
        println!(
            "  gaps     {} stretches of more than an hour without a row (e.g. {} → {})",
            r.gaps_total, r.gaps[0].0, r.gaps[0].1
        );
    }
    if !r.unmapped.is_empty() {
        println!("  unmapped columns (skipped): {}", r.unmapped.join(", "));
    }
    let list = |what: &str, items: &[(u64, String)]| {
        for (line, why) in items.iter().take(20) {
            println!("  {what:<9} line {line}: {why}");
        }
        if items.len() > 20 {
            println!("  {what:<9} … {} more", items.len() - 20);
        }
    };
    list("no-hour", &r.nonexistent);
    list("twice", &r.ambiguous);
    list("duplicate", &r.duplicates);
    list("bad", &r.bad);
}

/// Runs `crowdgrid import-counts`.
pub async fn run(args: ImportArgs) -> ExitCode {
    let loaded = match crate::cli::load_central(&args.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let site_id = std::fs::read_to_string(&args.map)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| crowdgrid_proto::config::site_key(&t))
        .unwrap_or_default();
    let Some(site) = loaded.sites.iter().find(|s| s.config.id == site_id) else {
        eprintln!(
            "Invalid configuration: {}: site {site_id:?} is not in {}",
            args.map.display(),
            args.config.display()
        );
        return ExitCode::from(crate::cli::EXIT_CONFIG);
    };
    let (mapping, tz) = match Mapping::load(&args.map, site) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Invalid configuration: {e}");
            return ExitCode::from(crate::cli::EXIT_CONFIG);
        }
    };
    let text = match std::fs::read_to_string(&args.csv) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("crowdgrid import-counts: {}: {e}", args.csv.display());
            return ExitCode::FAILURE;
        }
    };
    let (readings, report) = hourly::read(&text, &mapping, tz, site);
    let store = &loaded.config.store;
    let settings = WriterSettings { batch_max: store.batch_max, retention_days: store.retention_days };
    let writer = match StoreWriter::spawn(&store.path, settings, Metrics::new(), None) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("crowdgrid import-counts: {e}");
            return ExitCode::FAILURE;
        }
    };
    for chunk in readings.chunks(10_000) {
        let batch = Batch { readings: chunk.to_vec(), ..Batch::default() };
        if let Err(e) = writer.write(batch).await {
            eprintln!("crowdgrid import-counts: {e}");
            return ExitCode::FAILURE;
        }
    }
    writer.close().await;
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("crowdgrid import-counts: {e}"),
        }
    } else {
        print(&report);
    }
    if report.readings == 0 {
        eprintln!("crowdgrid import-counts: nothing to import");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
