//! `crowdgrid sim-load`: the edges of a whole city, as load on a centre. For a `central.toml` (a generated city's,
//! or any), one edge per site — `loadgen-{site}`, logged in and signing with its own credential like a real edge —
//! publishes QoS 1 readings over MQTT:
//!
//! - a base-station estimate of every zone every `--base-station-every-s` (10 s: a cell-count feed's pace),
//!   spread evenly over the period;
//! - `--gates` zones with a gate reading (occupancy, inflow and outflow per minute) every 2 s;
//! - `--cameras` zones with a camera reading every second (the city's cameras, one zone each).
//!
//! Densities follow the scenic daily curve of the edge's simulated source, per zone between its own base and
//! peak. Every 10 s and at the end it prints what it sent and what the broker acknowledged (PUBACK), so a
//! benchmark compares it with what the centre stored (`crowdgrid_readings_stored_total`). Credentials are created
//! in the centre's database on first use (as `crowdgrid edge-credential create` does) and kept in
//! `<store dir>/loadgen/` for the next run; with `[edges] authentication = "off"` nothing is signed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use crowdgrid_proto::signed::{self, Credential};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{topic, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::auth::edge_credentials::{Authentication, EdgeCredentials};
use crate::central::config::{BrokerConfig, CentralConfig};
use crate::store::dispatch_db::DispatchDb;

/// Options of `crowdgrid sim-load`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimLoadArgs {
    /// The centre's config (its sites are the city; its store holds the edges' credentials).
    #[arg(long)]
    pub config: PathBuf,
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port (default: the embedded broker's in the config).
    #[arg(long)]
    pub port: Option<u16>,
    /// Seconds between two base-station estimates of one zone.
    #[arg(long, default_value_t = 10.0)]
    pub base_station_every_s: f64,
    /// Zones with a turnstile gate (a reading every 2 s).
    #[arg(long, default_value_t = 0)]
    pub gates: usize,
    /// Zones with a camera (a reading every second).
    #[arg(long, default_value_t = 0)]
    pub cameras: usize,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    /// Threshold crossings to time, one a second, on zones left out of the load (see `simcity::probe`).
    #[arg(long, default_value_t = 0)]
    pub probes: usize,
}

/// What every site's edge counts (shared, printed by the reporter).
#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
}

/// One zone's place in the load: which kind of source reports it and how often.
#[derive(Debug, Clone)]
struct Feed {
    zone: String,
    area_m2: f64,
    kind: SourceKind,
    every: Duration,
    /// Peak density of this zone's curve (people/m²), between 1 and 4.
    peak: f64,
    /// The site's offset from UTC (the curve follows local time).
    utc_offset: chrono::Duration,
}

/// Every site's feeds: base stations on every zone; gates and cameras on the first zones, round robin over sites.
fn feeds(sites: &[Arc<Site>], args: &SimLoadArgs) -> BTreeMap<String, Vec<Feed>> {
    let mut out: BTreeMap<String, Vec<Feed>> = BTreeMap::new();
    let bs = Duration::from_secs_f64(args.base_station_every_s.max(0.1));
    let mut extra: Vec<(SourceKind, Duration)> = Vec::new();
    extra.extend(std::iter::repeat_n((SourceKind::Camera, Duration::from_secs(1)), args.cameras));
    extra.extend(std::iter::repeat_n((SourceKind::Gate, Duration::from_secs(2)), args.gates));
    let max_zones = sites.iter().map(|s| s.zones.len()).max().unwrap_or(0);
    let mut next_extra = extra.into_iter();
    for (i, site) in sites.iter().enumerate() {
        let feeds = out.entry(site.config.id.clone()).or_default();
        for (j, z) in site.zones.iter().enumerate() {
            let peak = 1.0 + 3.0 * (((i * 7919 + j * 104_729) % 1000) as f64 / 1000.0);
            feeds.push(Feed {
                zone: z.config.id.clone(),
                area_m2: z.area_m2,
                kind: SourceKind::BaseStation,
                every: bs,
                peak,
                utc_offset: utc_offset(site),
            });
        }
    }
    // Round robin: zone 0 of every site, then zone 1, … so extras spread over the city.
    'spread: for j in 0..max_zones {
        for site in sites {
            let Some(z) = site.zones.get(j) else { continue };
            let Some((kind, every)) = next_extra.next() else { break 'spread };
            out.entry(site.config.id.clone()).or_default().push(Feed {
                zone: z.config.id.clone(),
                area_m2: z.area_m2,
                kind,
                every,
                peak: 2.0,
                utc_offset: utc_offset(site),
            });
        }
    }
    out
}

fn utc_offset(site: &Site) -> chrono::Duration {
    chrono::Duration::minutes(i64::from(site.config.utc_offset_minutes))
}

/// The reading of `feed` now: the scenic curve of the site's local hour, between 0.2 and the zone's peak.
fn reading(site: &str, edge: &str, feed: &Feed, seq: u64, epoch: u64) -> Reading {
    let now = Utc::now();
    let local = now + feed.utc_offset;
    let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
    let density = 0.2 + (feed.peak - 0.2) * crowdgrid_edge::source::simulated::scenic_shape(hour);
    let source = match feed.kind {
        SourceKind::Camera => format!("{edge}/cam-{}", feed.zone),
        SourceKind::Gate => format!("{edge}/gate-{}", feed.zone),
        _ => format!("{edge}/cells"),
    };
    let confidence = if feed.kind == SourceKind::BaseStation { 0.6 } else { 0.85 };
    let mut r =
        Reading::new(site, &feed.zone, feed.kind, &source, now, density * feed.area_m2, feed.area_m2, confidence);
    r.seq = seq;
    r.epoch = epoch;
    if feed.kind == SourceKind::Gate {
        r.inflow_per_min = Some((density * 10.0).round());
        r.outflow_per_min = Some((density * 8.0).round());
    }
    r
}

/// The edge `edge`'s credential: from `dir` if written there before, else created in the centre's database.
async fn credential(creds: &EdgeCredentials, dir: &Path, site: &str, edge: &str) -> Result<Credential, String> {
    let file = dir.join(format!("{edge}.cred"));
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(c) = Credential::parse(&text) {
            return Ok(c);
        }
    }
    let c = creds.create(site, edge).await.map_err(|e| format!("{edge}: {e}"))?;
    std::fs::write(&file, format!("{}\n", c.secret)).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(c)
}

/// One site's edge: connects, publishes its feeds on schedule until `until`, then waits up to 10 s for the
/// broker's acknowledgements.
async fn run_edge(
    site: String,
    feeds: Vec<Feed>,
    (host, port, prefix): (String, u16, String),
    cred: Option<Credential>,
    counts: Arc<Counts>,
    until: Instant,
) {
    let edge = format!("loadgen-{site}");
    let mut o = MqttOptions::new(format!("{edge}-load"), host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    o.set_clean_session(true);
    if let Some(c) = &cred {
        o.set_credentials(format!("{site}/{edge}"), c.secret.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let acks = counts.clone();
    let (up_tx, mut up) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    up_tx.send_replace(true);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(_) => {
                    acks.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    // Publish only once logged in (a refused login retries every 0.5 s).
    if tokio::time::timeout(Duration::from_secs(15), up.wait_for(|up| *up)).await.is_err() {
        eprintln!("sim-load: {edge} could not log in to the broker within 15 s");
        counts.errors.fetch_add(1, Ordering::Relaxed);
        poller.abort();
        return;
    }
    let epoch = Utc::now().timestamp_millis() as u64;
    let mut seqs: BTreeMap<String, u64> = BTreeMap::new();
    // Each feed's next due time, spread over its period so the load is even.
    let start = Instant::now();
    let n = feeds.len().max(1) as f64;
    let mut due: Vec<Instant> = feeds.iter().enumerate().map(|(i, f)| start + f.every.mul_f64(i as f64 / n)).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while Instant::now() < until {
        tick.tick().await;
        let now = Instant::now();
        for (f, at) in feeds.iter().zip(due.iter_mut()) {
            if *at > now {
                continue;
            }
            *at += f.every;
            let r0 = reading(&site, &edge, f, 0, epoch);
            let seq = seqs.entry(r0.source_id.clone()).or_insert(0);
            *seq += 1;
            let r = Reading { seq: *seq, ..r0 };
            let t = topic::reading(&prefix, &site, &f.zone);
            let Ok(body) = serde_json::to_vec(&r) else { continue };
            let payload = match &cred {
                Some(c) => signed::seal(c, &edge, &t, &body),
                None => body,
            };
            if client.publish(t, QoS::AtLeastOnce, false, payload).await.is_ok() {
                counts.sent.fetch_add(1, Ordering::Relaxed);
            } else {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // Let the acknowledgements of what was sent arrive.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while counts.acked.load(Ordering::Relaxed) < counts.sent.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    poller.abort();
}

/// Runs `crowdgrid sim-load`.
pub async fn run(args: SimLoadArgs) -> ExitCode {
    let loaded = match CentralConfig::load(&args.config) {
        Ok(l) => l,
        Err(e) => return crate::cli::config_error(&e),
    };
    let cfg = &loaded.config;
    let port = match (args.port, &cfg.broker) {
        (Some(p), _) => p,
        (None, BrokerConfig::Embedded { listen, .. }) => listen.port(),
        (None, BrokerConfig::External { port, .. }) => *port,
    };
    let prefix = cfg.broker.topic_prefix().to_string();
    let signed = cfg.edges.authentication != Authentication::Off;
    let dir = cfg.store.path.parent().map(|d| d.join("loadgen")).unwrap_or_else(|| PathBuf::from("loadgen"));
    let creds = if signed {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("sim-load: {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        // The centre's credentials where it keeps them: its SQLite file, or the PostgreSQL it shares.
        let db = match DispatchDb::open(&cfg.store.path, cfg.store.dispatch_url.as_deref()).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("sim-load: the centre's store: {e}");
                return ExitCode::FAILURE;
            }
        };
        match db.edge_credentials(&cfg.edges.key_path(&cfg.store.path)) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("sim-load: the centre's credentials: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let probes = super::probe::choose(&loaded.sites, args.probes);
    let mut all = feeds(&loaded.sites, &args);
    for p in &probes {
        if let Some(f) = all.get_mut(&p.site) {
            f.retain(|f| f.zone != p.zone);
        }
    }
    let per_s: f64 = all.values().flatten().map(|f| 1.0 / f.every.as_secs_f64()).sum();
    println!(
        "sim-load: {} sites, {} feeds, {per_s:.0} readings/s for {} s to {}:{port} ({})",
        all.len(),
        all.values().map(Vec::len).sum::<usize>(),
        args.duration_s,
        args.host,
        if signed { "signed" } else { "unsigned" }
    );
    let counts = Arc::new(Counts::default());
    let watcher = creds.as_ref().map(|c| (crate::auth::edge_credentials::CENTRE_ID.to_string(), c.centre_password()));
    let mut with_creds = Vec::new();
    let before = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    for (site, feeds) in all {
        let cred = match &creds {
            Some(c) => match credential(c, &dir, &site, &format!("loadgen-{site}")).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("sim-load: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        with_creds.push((site, feeds, cred));
    }
    if std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) > before {
        // New credentials are in force at the centre's next reload of them.
        tokio::time::sleep(Duration::from_secs(cfg.edges.refresh_s + 1)).await;
    }
    let until = Instant::now() + Duration::from_secs(args.duration_s);
    let mut tasks = Vec::new();
    let login = super::probe::Login {
        host: args.host.clone(),
        port,
        prefix: prefix.clone(),
        creds: with_creds
            .iter()
            .filter_map(|(s, _, c): &(String, _, Option<Credential>)| Some((s.clone(), c.clone()?)))
            .collect(),
        watcher,
    };
    let probing = tokio::spawn(super::probe::run(probes, login, until));
    for (site, feeds, cred) in with_creds {
        let broker = (args.host.clone(), port, prefix.clone());
        tasks.push(tokio::spawn(run_edge(site, feeds, broker, cred, counts.clone(), until)));
    }
    let started = Instant::now();
    let reporter = {
        let counts = counts.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            every.tick().await;
            loop {
                every.tick().await;
                report(&counts, started.elapsed());
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    reporter.abort();
    report(&counts, started.elapsed());
    let _ = probing.await;
    if counts.acked.load(Ordering::Relaxed) < counts.sent.load(Ordering::Relaxed) {
        eprintln!("sim-load: the broker did not acknowledge every reading");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn report(c: &Counts, elapsed: Duration) {
    let sent = c.sent.load(Ordering::Relaxed);
    println!(
        "sim-load: t+{:>4.0} s  sent {sent}  acknowledged {}  errors {}  ({:.0} readings/s)",
        elapsed.as_secs_f64(),
        c.acked.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
        sent as f64 / elapsed.as_secs_f64().max(0.001)
    );
}
