//! Backtest throughput: readings per second through the centre's fusion and rule engine (`backtest::Backtest`,
//! the code `crowdgrid backtest` and `POST /api/v1/backtest` run), with the current rule set and candidates.
//!
//! A plain program that prints figures; it never asserts on timing.
//!
//! ```sh
//! cargo bench --bench backtest -- --zones 1000 --days 2 --candidates 2
//! ```
//!
//! Synthetic 1-minute readings (one base-station-like source per zone, a daily crowd curve with noise that crosses
//! warning every afternoon) over `--zones` zones (default 1000) for `--days` days (default 2), replayed with the
//! current rules (a density rule, a predictive rule and an occupancy rule per zone) and `--candidates` candidates
//! (default 2, warning levels 10 % and 20 % lower). Sites are independent (fusion and rules are per zone), so the
//! zones are split into one site per thread (`--threads`, default: the cores) and each thread replays its own
//! site; the figure printed is readings/s over all threads, and the time a year of 1-minute readings for 1,000
//! zones (525.6 M readings) would take at that rate. The engine ticks every 60 s of data time (`--tick-s`).

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use crowdgrid::backtest::{Backtest, Candidate, Settings};
use crowdgrid::rules::{compile, RuleText};
use crowdgrid_proto::site::{Site, SiteConfig};
use crowdgrid_proto::{Reading, SourceKind};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A site `s{n}` with `zones` zones of ~10,000 m² each.
fn site(n: usize, zones: usize) -> Arc<Site> {
    let mut text = crowdgrid_proto::testing::site_head(&format!("s{n}"));
    text.push_str("[[workers]]\nid = \"w\"\nname = \"W\"\ngrids = [\"g\"]\n");
    for z in 0..zones {
        let (x, y) = ((z % 100) as f64 * 0.001, (z / 100) as f64 * 0.001);
        text.push_str(&format!(
            "[[zones]]\nid = \"z{z}\"\nname = \"Z\"\ngrid = \"g\"\nkind = \"plaza\"\ncapacity = 20000\n\
             geometry = {{ type = \"Polygon\", coordinates = [[[{x}, {y}], [{x1}, {y}], [{x1}, {y1}], [{x}, {y1}], [{x}, {y}]]] }}\n",
            x1 = x + 0.000898315,
            y1 = y + 0.000904369
        ));
    }
    let cfg: SiteConfig = toml::from_str(&text).expect("bench site parses");
    Arc::new(Site::from_config(cfg, std::path::Path::new("bench.toml")).expect("bench site is valid"))
}

fn rules(site: &str, warning: f64) -> String {
    format!(
        "site = \"{site}\"\n[[rule]]\nid = \"crowd\"\nmetric = \"density\"\n\
         levels = {{ notice = {n}, warning = {warning}, critical = 5.0 }}\nfor_s = 120\nclear_for_s = 600\n\
         [[rule]]\nid = \"early\"\nmetric = \"predictive\"\nlevels = {{ warning = {warning} }}\nhorizon_s = 900\nwindow_s = 600\n\
         [[rule]]\nid = \"full\"\nmetric = \"occupancy\"\nlevels = {{ notice = 0.8, warning = 0.9, critical = 1.0 }}\n",
        n = warning * 0.55
    )
}

/// Replays `days` of 1-minute readings for every zone of `site`; returns readings fed and tickets per set.
fn replay(site: Arc<Site>, candidates: usize, days: i64, tick_s: i64) -> (u64, Vec<usize>) {
    let id = site.config.id.clone();
    let mut sets = Vec::new();
    for c in 0..=candidates {
        let warning = 3.6 * (1.0 - 0.1 * c as f64);
        let doc = RuleText { name: format!("{id}-{c}").into(), text: rules(&id, warning) };
        let name = if c == 0 { "current".to_string() } else { format!("candidate-{c}") };
        sets.push(Candidate {
            name,
            rules: compile(&[doc], std::slice::from_ref(&site)).expect("bench rules compile"),
        });
    }
    let settings = Settings {
        fused_fresh: Duration::seconds(120),
        reopen_window: Duration::seconds(600),
        tick: Duration::seconds(tick_s),
    };
    let mut bt = Backtest::new(std::slice::from_ref(&site), sets, settings);
    let t0: DateTime<Utc> = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").expect("date").with_timezone(&Utc);
    let mut templates: Vec<Reading> = site
        .zones
        .iter()
        .map(|z| {
            Reading::new(
                &id,
                &z.config.id,
                SourceKind::BaseStation,
                &format!("e/{}", z.config.id),
                t0,
                0.0,
                z.area_m2,
                0.6,
            )
        })
        .collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for minute in 0..days * 1440 {
        let ts = t0 + Duration::minutes(minute);
        let hour = (minute % 1440) as f64 / 60.0;
        // A daily curve: quiet at night, a peak of ~4/m² at 15:00 (over warning), plus noise.
        let curve = 0.3 + 3.9 * (-(hour - 15.0).powi(2) / 8.0).exp();
        for (i, r) in templates.iter_mut().enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed % 1000) as f64 / 1000.0 * 0.4 - 0.2;
            let d = (curve * (0.8 + 0.4 * (i % 5) as f64 / 5.0) + noise).max(0.0);
            r.ts = ts;
            r.seq = minute as u64 + 1;
            r.density = d;
            r.count = d * r.area_m2;
            bt.feed(r);
        }
    }
    let report = bt.finish(t0 + Duration::days(days));
    (report.readings, report.sets.iter().map(|s| s.tickets.len()).collect())
}

fn main() {
    let zones = arg("--zones", 1000) as usize;
    let days = arg("--days", 2) as i64;
    let candidates = arg("--candidates", 2) as usize;
    let tick_s = arg("--tick-s", 60) as i64;
    let threads = arg("--threads", std::thread::available_parallelism().map_or(2, |n| n.get() as u64)) as usize;
    println!(
        "backtest: {zones} zones × {days} days of 1-minute readings, current + {candidates} candidate(s) \
         (3 rules each), tick {tick_s} s, {threads} thread(s)"
    );
    let per = zones.div_ceil(threads);
    let sites: Vec<Arc<Site>> = (0..threads).map(|n| site(n, per.min(zones - n * per))).collect();
    let started = Instant::now();
    let results: Vec<(u64, Vec<usize>)> = std::thread::scope(|s| {
        let handles: Vec<_> =
            sites.iter().cloned().map(|site| s.spawn(move || replay(site, candidates, days, tick_s))).collect();
        handles.into_iter().map(|h| h.join().expect("replay thread")).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let readings: u64 = results.iter().map(|r| r.0).sum();
    let rate = readings as f64 / secs;
    let tickets: Vec<usize> = (0..=candidates).map(|c| results.iter().map(|r| r.1[c]).sum()).collect();
    println!("  {readings} readings in {secs:.2} s: {:.2} M readings/s", rate / 1e6);
    println!("  tickets per rule set (current first): {tickets:?}");
    let year = 525_600_000.0 / rate;
    println!(
        "  a year of 1-minute readings for 1,000 zones (525.6 M) would take {:.1} min at this rate (goal: 5 min)",
        year / 60.0
    );
}
