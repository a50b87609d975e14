//! `crowdgrid demo`: the centre on the embedded defaults plus the edge agents of both scenarios
//! (simulated curves and replayed base-station and gate files), with live progress in the terminal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crowdgrid_edge::agent::Agent;
use crowdgrid_edge::config::EdgeConfig;
use serde::Deserialize;

use crate::central::broker::free_loopback_addr;
use crate::central::config::{BrokerConfig, CentralConfig};

/// Options of `crowdgrid demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Directory holding central.toml and one folder per scenario with site.toml and edge.toml.
    #[arg(long, default_value = "config")]
    pub config_dir: PathBuf,
    /// Where the demo keeps its SQLite files (wiped at start unless --keep-data).
    #[arg(long, default_value = "data/demo")]
    pub data_dir: PathBuf,
    /// Keep the data of an earlier run.
    #[arg(long)]
    pub keep_data: bool,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Exit with status 1 unless every scenario raised at least one ticket (for tests).
    #[arg(long)]
    pub expect_tickets: bool,
    /// Exit with status 1 if a camera or drone edge cannot run here (for tests: without it a machine missing
    /// ONNX Runtime or the video would run a demo without detection and still pass).
    #[arg(long)]
    pub expect_video: bool,
    /// API listen address (a free port is used if it is taken).
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub api_listen: SocketAddr,
    /// Seconds between progress tables.
    #[arg(long, default_value_t = 3)]
    pub every: u64,
}

#[derive(Deserialize)]
struct ZoneRow {
    site: String,
    zone: String,
    level: String,
    density: Option<f64>,
    count: Option<f64>,
    area_m2: f64,
    coverage: Option<f64>,
    sources: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct TicketRow {
    id: i64,
    site: String,
    zone: String,
    rule: String,
    level: String,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    unit: String,
    state: String,
    tier: String,
    assignee: Option<String>,
}

fn usable(addr: SocketAddr) -> SocketAddr {
    if std::net::TcpListener::bind(addr).is_ok() {
        addr
    } else {
        SocketAddr::new(addr.ip(), 0)
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> ExitCode {
    match run_inner(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("crowdgrid demo: {e}");
            ExitCode::from(crate::cli::EXIT_CONFIG)
        }
    }
}

/// `edge-*.toml` files of a scenario folder, in name order.
fn vision_edges(dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("edge-") && n.ends_with(".toml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Why an edge's camera or drone cannot run on this machine (its video is a live stream or a missing file,
/// or ONNX Runtime is not installed); `None` when it can.
fn not_runnable_here(cfg: &EdgeConfig) -> Option<String> {
    use crowdgrid_edge::config::SourceConfig;
    use crowdgrid_edge::vision::source_config::VideoInput;
    for s in &cfg.sources {
        let (video, model) = match s {
            SourceConfig::Camera(c) => (&c.video, &c.model),
            SourceConfig::Drone(d) => (&d.video, &d.model),
            _ => continue,
        };
        match video {
            VideoInput::File { path, .. } if !path.is_file() => {
                return Some(format!("{} is missing (scripts/setup.sh fetches it)", path.display()))
            }
            VideoInput::Folder { dir, .. } if !dir.is_dir() => return Some(format!("{} is missing", dir.display())),
            VideoInput::Rtsp { url } | VideoInput::Http { url } => {
                return Some(format!("its video is a live stream ({url}), not part of the demo"))
            }
            _ => {}
        }
        #[cfg(feature = "vision")]
        if let Err(e) = crowdgrid_edge::vision::runtime::find(model.runtime_path.as_deref()) {
            return Some(format!("ONNX Runtime not installed (scripts/setup.sh installs it): {e}"));
        }
        #[cfg(not(feature = "vision"))]
        {
            let _ = model;
            return Some("this crowdgrid is built without the `vision` feature".into());
        }
    }
    None
}

async fn run_inner(args: DemoArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if !args.keep_data && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)?;
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    let mut central_cfg = CentralConfig::load(&args.config_dir.join("central.toml"))?;
    central_cfg.config.store.path = data_dir.join("central.db");
    central_cfg.config.api.listen = usable(args.api_listen);
    if let BrokerConfig::Embedded { listen, .. } = &mut central_cfg.config.broker {
        if std::net::TcpListener::bind(*listen).is_err() {
            *listen = free_loopback_addr()?;
        }
    }
    let db = central_cfg.config.store.path.clone();
    let dispatch_url = central_cfg.config.store.dispatch_url.clone();
    let sites = central_cfg.sites.clone();

    // The scenarios' edges: each scenario's edge.toml, and its vision edges (edge-camera.toml, edge-drone.toml)
    // when what they read is here.
    let mut edges = Vec::new();
    let mut scenarios = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&args.config_dir)?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let edge_file = dir.join("edge.toml");
        if !edge_file.is_file() {
            continue;
        }
        let loaded = EdgeConfig::load(&edge_file)?;
        scenarios.push(loaded.site.config.id.clone());
        edges.push((None, loaded));
        for file in vision_edges(&dir)? {
            let name = file.strip_prefix(&args.config_dir).unwrap_or(&file).display().to_string();
            let runnable = EdgeConfig::load(&file)
                .map_err(|e| e.to_string())
                .and_then(|l| not_runnable_here(&l.config).map_or(Ok(l), Err));
            match runnable {
                Ok(loaded) => edges.push((Some(name), loaded)),
                Err(why) if args.expect_video => return Err(format!("{name} cannot run here: {why}").into()),
                Err(why) => println!("  skipped  {name}: {why}"),
            }
        }
    }
    // Every edge gets its own credential before the centre starts (so the centre has them in force at once).
    let creds = crate::store::dispatch_db::DispatchDb::open(&db, dispatch_url.as_deref())
        .await?
        .edge_credentials(&central_cfg.config.edges.key_path(&db))?;
    for (_, loaded) in &mut edges {
        let cred = creds.create(&loaded.site.config.id, &loaded.config.edge.id).await?;
        loaded.config.mqtt.credential = Some(cred);
    }

    let central = crate::central::start(central_cfg).await?;
    let api = format!("http://{}", central.api_addr);
    let tokens = crate::store::dispatch_db::DispatchDb::open(&db, dispatch_url.as_deref()).await?.tokens()?;
    let admin = tokens.create("demo-admin", crate::auth::Role::Admin, None).await?;
    let operator = tokens.create("demo-operator", crate::auth::Role::Operator, None).await?;
    let engineer = tokens.create("demo-engineer", crate::auth::Role::Engineer, None).await?;
    let mut worker_links = Vec::new();
    let mut issued = vec![(admin.clone(), "admin"), (operator.clone(), "operator"), (engineer.clone(), "engineer")];
    // One worker per grid (the first on the roster who covers it), so every ticket the demo raises is on some
    // printed worker's phone: one link per site left Boai's road-grid tickets on nobody's.
    for site in &sites {
        let mut covered = std::collections::BTreeSet::new();
        for grid in &site.config.grids {
            if covered.contains(&grid.id) {
                continue;
            }
            let Some(w) = site.config.workers.iter().find(|w| w.grids.contains(&grid.id)) else { continue };
            covered.extend(w.grids.iter().cloned());
            let t = tokens.create(&w.id, crate::auth::Role::GridWorker, Some(&w.id)).await?;
            issued.push((t.clone(), "grid_worker"));
            worker_links.push(format!(
                "  worker   {api}/ui/worker.html#token={t}   ({} — {}, grids {})",
                w.name,
                site.config.id,
                w.grids.join(", ")
            ));
        }
    }

    let mut agents = Vec::new();
    for (vision, mut loaded) in edges {
        loaded.config.mqtt.host = central.mqtt.0.clone();
        loaded.config.mqtt.port = central.mqtt.1;
        loaded.config.queue.path = data_dir.join(format!("{}.queue.db", loaded.config.edge.id));
        // Camera settings and models from the console reach the demo's cameras through this centre.
        loaded.config.tuning.centre_api = Some(api.clone());
        let id = loaded.config.edge.id.clone();
        match (vision, Agent::start(loaded).await) {
            (None, started) => agents.push(started?),
            (Some(name), Ok(a)) => {
                println!("  edge     {name} ({id}): real detection on video");
                agents.push(a);
            }
            (Some(name), Err(e)) if args.expect_video => return Err(format!("{name} did not start: {e}").into()),
            (Some(name), Err(e)) => println!("  skipped  {name}: {e}"),
        }
    }

    println!("crowdgrid demo — {} scenario(s): {}", scenarios.len(), scenarios.join(", "));
    println!("  map      {api}/ui/#token={operator}   (operator)");
    println!("  city     {api}/ui/city.html#token={operator}   (operator: every site at a glance)");
    for l in &worker_links {
        println!("{l}");
    }
    println!("  console  {api}/ui/engineer.html#token={engineer}   (engineer)");
    println!("  API      {api}/api/v1/zones  (Authorization: Bearer {admin})   {api}/metrics");
    println!(
        "  MQTT     {}:{}   (each edge logs in with its own credential: crowdgrid edge-credential --help)",
        central.mqtt.0, central.mqtt.1
    );
    println!("  data     {}", data_dir.display());
    println!("  stop     Ctrl-C{}", args.duration.map(|d| format!(" (or after {d} s)")).unwrap_or_default());

    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    check_links(&http, &api, &issued).await?;
    let started = tokio::time::Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs(d));
    let mut tick = tokio::time::interval(Duration::from_secs(args.every.max(1)));
    tick.tick().await;
    let signal = crate::shutdown::signal();
    tokio::pin!(signal);
    let mut raised: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut signal => break,
            _ = until_deadline => break,
            _ = tick.tick() => {
                match progress(&http, &api, &admin, started.elapsed()).await {
                    Ok(counts) => raised = counts,
                    Err(e) => eprintln!("  (progress unavailable: {e})"),
                }
            }
        }
    }
    if let Ok(counts) = progress(&http, &api, &admin, started.elapsed()).await {
        raised = counts;
    }
    println!("stopping: edges drain their queues, the centre flushes its store");
    for a in agents {
        a.stop().await;
    }
    central.stop().await;
    let missing: Vec<_> = scenarios.iter().filter(|s| raised.get(*s).copied().unwrap_or(0) == 0).collect();
    for s in &scenarios {
        println!("tickets raised in {s}: {}", raised.get(s).copied().unwrap_or(0));
    }
    if args.expect_tickets && !missing.is_empty() {
        eprintln!("no ticket was raised in: {missing:?}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The web app's pages the demo's links lead to.
const PAGES: [&str; 5] = ["/ui/", "/ui/city.html", "/ui/worker.html", "/ui/engineer.html", "/ui/login.html"];

/// Checks that the printed links work: the pages are served and every token is accepted with its role.
async fn check_links(
    http: &reqwest::Client,
    api: &str,
    issued: &[(String, &str)],
) -> Result<(), Box<dyn std::error::Error>> {
    for page in PAGES {
        let status = http.get(format!("{api}{page}")).send().await?.status();
        if !status.is_success() {
            return Err(format!("{page} answered {status}").into());
        }
    }
    for (token, role) in issued {
        let me: serde_json::Value =
            http.get(format!("{api}/api/v1/me")).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        if me["role"] != *role {
            return Err(format!("a {role} token came back as {}", me["role"]).into());
        }
    }
    println!("  links    checked: {} pages served, {} tokens accepted with their roles", PAGES.len(), issued.len());
    Ok(())
}

/// Prints what each counting line saw in the last minute, per class (a camera's `inflow_per_min` are the people
/// through its line; its `tracked` adds the vehicles and how long people have stood in the zone).
fn throughput(zones: &[ZoneRow]) {
    let per_min =
        |v: Option<&serde_json::Value>| v.and_then(|x| x.as_f64()).map_or("-".to_string(), |x| format!("{x:.0}"));
    for z in zones {
        for (source, v) in &z.sources {
            if v.get("kind").and_then(|k| k.as_str()) != Some("camera") || v.get("inflow_per_min").is_none() {
                continue;
            }
            let t = v.get("tracked");
            println!(
                "  through  {:<12} {:<18} people in {}/min out {}/min · vehicles in {}/min out {}/min · dwell p90 {} s  ({source})",
                z.site,
                z.zone,
                per_min(v.get("inflow_per_min")),
                per_min(v.get("outflow_per_min")),
                per_min(t.and_then(|t| t.get("vehicle_inflow_per_min"))),
                per_min(t.and_then(|t| t.get("vehicle_outflow_per_min"))),
                per_min(t.and_then(|t| t.get("dwell_p90_s"))),
            );
        }
    }
}

/// Prints one progress table; returns the number of tickets per site.
async fn progress(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    elapsed: Duration,
) -> Result<BTreeMap<String, usize>, reqwest::Error> {
    let zones: Vec<ZoneRow> =
        http.get(format!("{api}/api/v1/zones")).bearer_auth(token).send().await?.error_for_status()?.json().await?;
    let tickets: Vec<TicketRow> = http
        .get(format!("{api}/api/v1/tickets?state=all"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("\n── t+{:>3} s ───────────────────────────────────────────────────────────────", elapsed.as_secs());
    println!(
        "  {:<12} {:<18} {:>9} {:>8} {:>9} {:>5}  {:<8} sources",
        "site", "zone", "people", "/m²", "area m²", "seen", "level"
    );
    for z in &zones {
        let marker = match z.level.as_str() {
            "critical" => "!!",
            "warning" => "! ",
            _ => "  ",
        };
        // What the map's number is made of: the kinds of source fused into it (not the edges' own `fused`).
        let kinds: std::collections::BTreeSet<&str> = z
            .sources
            .values()
            .filter_map(|v| v.get("kind").and_then(|k| k.as_str()))
            .filter(|k| *k != "fused")
            .collect();
        println!(
            "{marker}{:<12} {:<18} {:>9} {:>8} {:>9.0} {:>5}  {:<8} {}",
            z.site,
            z.zone,
            z.count.map_or("-".to_string(), |c| format!("{c:.0}")),
            z.density.map_or("-".to_string(), |d| format!("{d:.2}")),
            z.area_m2,
            z.coverage.map_or("-".to_string(), |c| format!("{:.0}%", c * 100.0)),
            z.level,
            kinds.into_iter().collect::<Vec<_>>().join(" ")
        );
    }
    throughput(&zones);
    let mut per_site = BTreeMap::new();
    for t in &tickets {
        *per_site.entry(t.site.clone()).or_insert(0) += 1;
    }
    let open: Vec<_> = tickets.iter().filter(|t| t.state != "resolved").collect();
    println!("  tickets: {} raised, {} open", tickets.len(), open.len());
    for t in open.iter().take(8) {
        println!(
            "    #{:<4} {:<12} {:<18} {:<22} {:<8} {:>22} {:<12} {:<11} -> {}",
            t.id,
            t.site,
            t.zone,
            t.rule,
            t.level,
            format!("{:.2} {}", t.value, t.unit),
            t.state,
            t.tier,
            t.assignee.as_deref().unwrap_or("(engineers)")
        );
    }
    Ok(per_site)
}
