//! `crowdgrid kpis`: the governance KPIs from the dispatch store, as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{Duration, Utc};

use crate::central::kpi::{self, Kpis, Stat};
use crate::store::dispatch_db::DispatchDb;

/// Options of `crowdgrid kpis`.
#[derive(clap::Args, Debug, Clone)]
pub struct KpiArgs {
    /// Path of central.toml (for the store).
    #[arg(long, default_value = "config/central.toml")]
    pub config: PathBuf,
    /// Only this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Tickets raised in the last this many days.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Print JSON (as `GET /api/v1/kpis`) instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{:.0} %", v * 100.0))
}

fn secs(s: &Stat) -> String {
    match (s.p50, s.p90) {
        (Some(a), Some(b)) => format!("p50 {a:.0} s, p90 {b:.0} s (n={})", s.count),
        _ => "-".to_string(),
    }
}

/// Prints the report.
pub fn print(k: &Kpis) {
    println!("tickets {} (resolved {}), data-quality tickets {}", k.tickets, k.resolved, k.data_quality);
    println!("resolved within   grid {:>6}  (target 70 %)", pct(k.tiers.grid));
    println!("                  community {:>6}  (target 80 %)", pct(k.tiers.community));
    println!("                  sub-district {:>6}  (target 95 %)", pct(k.tiers.subdistrict));
    println!("time to acknowledge  {}", secs(&k.time_to_ack_s));
    println!("time to be on site   {}", secs(&k.time_on_site_s));
    println!("time to relief       {}", secs(&k.time_to_relief_s));
    println!(
        "{:<16} {:>8} {:>6} {:>8} {:>9} {:>9} {:>10}",
        "worker", "assigned", "acked", "resolved", "whistles", "with note", "mean ack"
    );
    for w in &k.workers {
        println!(
            "{:<16} {:>8} {:>6} {:>8} {:>9} {:>9} {:>10}",
            w.worker,
            w.assigned,
            w.acknowledged,
            w.resolved,
            w.escalated,
            w.with_note,
            w.mean_ack_s.map_or("-".into(), |s| format!("{s:.0} s"))
        );
    }
    for d in &k.departments {
        println!(
            "department {:<24} whistles {:>3}, resolved {:>3}, mean {}",
            d.department,
            d.whistles,
            d.resolved,
            d.mean_resolve_s.map_or("-".into(), |s| format!("{s:.0} s"))
        );
    }
}

/// Runs `crowdgrid kpis`.
pub async fn run(args: KpiArgs) -> ExitCode {
    let loaded = match crate::cli::load_central(&args.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let store = &loaded.config.store;
    let tickets = match DispatchDb::open(&store.path, store.dispatch_url.as_deref()).await.and_then(|db| db.tickets()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("crowdgrid kpis: {e}");
            return ExitCode::FAILURE;
        }
    };
    let to = Utc::now();
    match tickets.history(to - Duration::days(args.days), to, args.site).await {
        Ok(history) => {
            let k = kpi::compute(&history);
            if args.json {
                match serde_json::to_string_pretty(&k) {
                    Ok(j) => println!("{j}"),
                    Err(e) => eprintln!("crowdgrid kpis: {e}"),
                }
            } else {
                print(&k);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crowdgrid kpis: {e}");
            ExitCode::FAILURE
        }
    }
}
