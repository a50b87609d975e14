//! Rule evaluation throughput: 10,000 synthetic zones, each with a density, an occupancy or predictive rule,
//! a silent-source rule and a disagreement rule, fed one observation at a time (two sources per zone).
//!
//! A plain program that prints figures; it never asserts on timing. Goal: ≥ 100,000 observations/s.
//!
//! ```sh
//! cargo bench --bench rules -- --zones 10000 --observations 1000000
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use crowdgrid::rules::compile::compile_file;
use crowdgrid::rules::config::RuleFile;
use crowdgrid::rules::{Engine, Observation, RuleSet, SourceValue, Transition};
use crowdgrid_proto::config::Problems;
use crowdgrid_proto::site::{Site, SiteConfig};
use crowdgrid_proto::SourceKind;

const SQUARE: &str = r#"{ type = "Polygon", coordinates = [[[0.0, 0.0], [0.000898315, 0.0], [0.000898315, 0.000904369], [0.0, 0.000904369], [0.0, 0.0]]] }"#;

const RULES: &str = r#"
site = "bench"
holidays = ["2026-10-01"]
[[rule]]
id = "density"
metric = "density"
for_s = 10
clear_for_s = 60
[[rule]]
id = "occupancy"
metric = "occupancy"
zone_kinds = ["campsite"]
levels = { notice = 0.8, warning = 0.9, critical = 1.0 }
for_s = 30
clear_for_s = 120
cooldown_s = 300
[[rule]]
id = "early-warning"
metric = "predictive"
zone_kinds = ["beach"]
horizon_s = 900
window_s = 600
[[rule]]
id = "school-run"
metric = "density"
zone_kinds = ["beach"]
levels = { warning = 3.0, critical = 4.5 }
schedule = { days = ["mon", "tue", "wed", "thu", "fri"], from = "15:30", to = "16:30", school_days = true }
[[rule]]
id = "silent"
metric = "silent"
expected_every_s = 900
[[rule]]
id = "disagree"
metric = "disagree"
factor = 3.0
for_s = 300
"#;

/// Rule evaluation throughput over synthetic zones.
#[derive(clap::Parser)]
struct Args {
    /// Zones to build.
    #[arg(long, default_value_t = 10_000)]
    zones: usize,
    /// Observations to evaluate.
    #[arg(long, default_value_t = 1_000_000)]
    observations: usize,
}

fn site(zones: usize) -> Result<Arc<Site>, String> {
    let mut text = String::from(
        "id = \"bench\"\nname = \"Bench\"\n[[subdistricts]]\nid = \"sd\"\nname = \"SD\"\n[[communities]]\nid = \"c\"\n\
         name = \"C\"\nsubdistrict = \"sd\"\n[[grids]]\nid = \"g\"\nname = \"G\"\ncommunity = \"c\"\nkind = \"comprehensive\"\n\
         [[workers]]\nid = \"w\"\nname = \"W\"\ngrids = [\"g\"]\n",
    );
    for i in 0..zones {
        let kind = if i % 2 == 0 { "campsite" } else { "beach" };
        text.push_str(&format!(
            "[[zones]]\nid = \"z{i}\"\nname = \"Z{i}\"\ngrid = \"g\"\nkind = \"{kind}\"\ncapacity = 30000\ngeometry = {SQUARE}\n"
        ));
    }
    let cfg: SiteConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    Site::from_config(cfg, Path::new("bench.toml")).map(Arc::new).map_err(|e| e.to_string())
}

fn main() -> Result<(), String> {
    // `cargo bench` passes `--bench` to every bench binary.
    let args = <Args as clap::Parser>::parse_from(std::env::args().filter(|a| a != "--bench"));
    let (zones, total) = (args.zones, args.observations);
    let t_build = Instant::now();
    let site = site(zones)?;
    let file: RuleFile = toml::from_str(RULES).map_err(|e| e.to_string())?;
    let mut p = Problems::new();
    let compiled = compile_file(&file, site.clone(), &mut p);
    if !p.is_empty() {
        return Err(format!("{:?}", p.items()));
    }
    let targets = compiled.targets.len();
    let mut engine = Engine::new(RuleSet { sites: vec![compiled] });
    let ids: Vec<String> = site.zones.iter().map(|z| z.config.id.clone()).collect();
    // Densities precomputed: a slow wave per zone through every level, with jitter in the hysteresis band.
    let rounds = total.div_ceil(zones.max(1));
    let wave: Vec<f64> =
        (0..rounds * 7).map(|k| 3.0 + 2.6 * ((k as f64) * 0.05).sin() + 0.2 * ((k as f64) * 1.7).sin()).collect();
    let mut sources: Vec<[SourceValue; 2]> = (0..zones)
        .map(|i| {
            let s =
                |id: String, kind| SourceValue { source_id: id, kind, density: 0.0, ts: DateTime::<Utc>::UNIX_EPOCH };
            [s(format!("cells-{i}"), SourceKind::BaseStation), s(format!("cam-{i}"), SourceKind::Camera)]
        })
        .collect();
    println!("built {zones} zones, {targets} (zone, rule) pairs in {:.2} s", t_build.elapsed().as_secs_f64());

    // 2026-03-10 15:00 local (a school day; the school-run window opens during the run).
    let t0 = DateTime::parse_from_rfc3339("2026-03-10T15:00:00+08:00").map_err(|e| e.to_string())?.with_timezone(&Utc);
    let (mut fires, mut upgrades, mut clears) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for k in 0..total {
        let (zi, round) = (k % zones, k / zones);
        let ts = t0 + Duration::seconds(round as i64 * 10);
        let density = wave[round + zi % (rounds * 6)].max(0.0);
        let src = &mut sources[zi];
        src[0].density = density;
        src[0].ts = ts;
        src[1].density = density * if zi % 97 == 0 { 4.0 } else { 1.1 };
        src[1].ts = ts;
        let obs = Observation {
            site: "bench",
            zone: &ids[zi],
            ts,
            density,
            count: density * 10_000.0,
            inflow_per_min: None,
            conflict: None,
            sources: &src[..],
        };
        for ev in engine.observe(&obs) {
            match ev.transition {
                Transition::Fire { .. } => fires += 1,
                Transition::Upgrade { .. } => upgrades += 1,
                Transition::Clear { .. } => clears += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{total} observations in {secs:.3} s: {:.0} observations/s ({:.2} µs each); events: {fires} fire, \
         {upgrades} upgrade, {clears} clear",
        total as f64 / secs,
        secs * 1e6 / total as f64
    );
    let t_tick = Instant::now();
    let ticked = engine.tick(t0 + Duration::seconds(rounds as i64 * 10 + 3600)).len();
    println!("tick over {zones} zones: {:.2} ms ({ticked} events)", t_tick.elapsed().as_secs_f64() * 1e3);
    let t_snap = Instant::now();
    let json = serde_json::to_vec(&engine.snapshot()).map_err(|e| e.to_string())?;
    println!("snapshot: {} KiB as JSON in {:.2} ms", json.len() / 1024, t_snap.elapsed().as_secs_f64() * 1e3);
    Ok(())
}
