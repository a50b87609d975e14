//! Pipeline throughput: simulated edges → embedded rumqttd (QoS 1) → ingest/validation → de-duplication →
//! SQLite store + threshold rule.
//!
//! A plain program that prints figures; it never asserts on timing.
//!
//! ```sh
//! cargo bench --bench pipeline -- --readings 200000 --publishers 4
//! cargo bench --bench pipeline -- --readings 200000 --compare   # plain, then secure, each in its own process
//! ```
//!
//! Options: `--readings N` (default 200000, or env `CROWDGRID_BENCH_READINGS`), `--publishers P` (default 4),
//! `--inflight K` (QoS 1 window per publisher, default 200), `--timeout S` (default 300), `--secure` (the centre as
//! deployed beyond one machine: edge authentication required, every reading signed with its edge's credential and
//! checked, MQTT over TLS, commit acknowledgements published back to each edge), `--compare` (runs the plain and
//! the secure configuration one after the other in child processes and prints the ratio and each peak RSS).
//!
//! Logs go to stderr at `warn` (`RUST_LOG` overrides); rumqttd is silenced by default because it logs every
//! client disconnect as an error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use crowdgrid::central::broker::free_loopback_addr;
use crowdgrid::central::config::{BrokerConfig, CentralConfig};
use crowdgrid::metrics::Metrics;
use crowdgrid_proto::{topic, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{oneshot, Barrier};

/// Every reason the centre can reject a reading with (`docs/PROTOCOL.md`).
const REASONS: [&str; 20] = [
    "oversized",
    "area_mismatch",
    "bad_sequence",
    "unauthenticated",
    "bad_frame",
    "unknown_credential",
    "bad_signature",
    "foreign_source",
    "malformed",
    "topic_mismatch",
    "unknown_zone",
    "bad_id",
    "not_finite",
    "negative",
    "bad_area",
    "bad_confidence",
    "implausible",
    "inconsistent",
    "future",
    "too_old",
];

/// Every `SPIKE_EVERY`-th reading is above its zone's warning threshold, so the rule raises tickets.
const SPIKE_EVERY: u64 = 1000;

/// Readings/s from simulated edges through the embedded broker into the store and the rules (QoS 1).
#[derive(clap::Parser)]
struct Args {
    /// Readings to publish in all.
    #[arg(long, env = "CROWDGRID_BENCH_READINGS", default_value_t = 200_000)]
    readings: u64,
    /// Publisher connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// QoS 1 publishes in flight per publisher.
    #[arg(long, default_value_t = 200)]
    inflight: u16,
    /// Give up after this many seconds.
    #[arg(long = "timeout", default_value_t = 300)]
    timeout_s: u64,
    /// Authentication, signed readings, TLS and commit acknowledgements on.
    #[arg(long)]
    secure: bool,
    /// Run plain and secure in child processes and compare.
    #[arg(long)]
    compare: bool,
}

/// What a secure run needs at the publishers: TLS trust and, per publisher, its credential for each site.
#[derive(Clone)]
struct Secure {
    tls: Arc<rustls::ClientConfig>,
    creds: HashMap<(usize, String), crowdgrid_proto::signed::Credential>,
    first_site: String,
}

impl Args {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

fn parse_args() -> Args {
    use clap::{CommandFactory, Parser};
    // `cargo bench` passes `--bench` to every bench binary.
    let args = Args::parse_from(std::env::args().filter(|a| a != "--bench"));
    if args.readings == 0 || args.publishers == 0 || args.inflight == 0 {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, "--readings, --publishers and --inflight must be positive")
            .exit();
    }
    args
}

/// One zone the publishers cycle through.
struct ZoneInfo {
    site: String,
    zone: String,
    area_m2: f64,
    warning: f64,
}

/// Pre-serialised `(topic, payload)` pairs of one publisher.
fn build_payloads(
    publisher: usize,
    n: u64,
    zones: &[ZoneInfo],
    prefix: &str,
    start: chrono::DateTime<Utc>,
    secure: Option<&Secure>,
) -> Vec<(String, Vec<u8>)> {
    let source_id = format!("bench-edge-{publisher}/sim");
    // Timestamps increase with seq like a real edge's, 1 ms apart (closer above 100,000 readings per
    // publisher), and end at `start`. They span at most 100 s: inside the age limit whatever N is, and
    // shorter than the rule's clear_for (120 s in config/central.toml), so a raised ticket stays open and
    // each zone raises one ticket.
    let step_us: i64 = (100_000_000 / n.max(1) as i64).clamp(1, 1000);
    let first = start - chrono::Duration::microseconds(step_us * n as i64);
    (0..n)
        .map(|i| {
            let z = &zones[((i as usize) + publisher) % zones.len()];
            let seq = i + 1;
            let density = if seq % SPIKE_EVERY == 0 {
                z.warning * 1.1
            } else {
                // 20..70 % of warning: below the warning clear level, so an open ticket stays as it is.
                z.warning * (0.2 + 0.5 * ((i % 97) as f64 / 97.0))
            };
            let count = (density * z.area_m2).round();
            let ts = first + chrono::Duration::microseconds(i as i64 * step_us);
            let mut r = Reading::new(&z.site, &z.zone, SourceKind::Simulated, &source_id, ts, count, z.area_m2, 0.8);
            r.seq = seq;
            r.epoch = 1;
            let payload = serde_json::to_vec(&r).expect("serialise a reading");
            let t = topic::reading(prefix, &z.site, &z.zone);
            let payload = match secure {
                // Signed as the edge signs it (the edge pays for this, not the centre: done before the clock).
                Some(s) => {
                    let cred = &s.creds[&(publisher, z.site.clone())];
                    crowdgrid_proto::signed::seal(cred, &format!("bench-edge-{publisher}"), &t, &payload)
                }
                None => payload,
            };
            (t, payload)
        })
        .collect()
}

/// A client `id`; with `secure`, over TLS and logged in as edge `id` of the first site with its credential.
fn client(
    id: &str,
    host: &str,
    port: u16,
    inflight: u16,
    secure: Option<(&Secure, usize)>,
) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(inflight);
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    if let Some((s, publisher)) = secure {
        opts.set_credentials(
            format!("{}/{id}", s.first_site),
            s.creds[&(publisher, s.first_site.clone())].secret.clone(),
        );
        crowdgrid_edge::tls::use_tls(&mut opts, s.tls.clone());
    }
    AsyncClient::new(opts, 1000)
}

/// This process's peak resident set, KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Polls a publisher's event loop: reports the ConnAck, then the instant the `n`-th PubAck arrived.
/// Returns the number of connection errors seen.
async fn poll_acks(
    mut eventloop: EventLoop,
    n: u64,
    connected: oneshot::Sender<()>,
    done: oneshot::Sender<Instant>,
) -> u64 {
    let mut connected = Some(connected);
    let mut done = Some(done);
    let mut acks = 0u64;
    let mut errors = 0u64;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(tx) = connected.take() {
                    let _ = tx.send(());
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acks += 1;
                if acks == n {
                    if let Some(tx) = done.take() {
                        let _ = tx.send(Instant::now());
                    }
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                if errors == 1 || errors % 100 == 0 {
                    eprintln!("publisher connection error ({errors}): {e}");
                }
                if done.is_none() && connected.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    errors
}

/// CPU seconds (user + system) of every thread of this process, by thread id, with its name (Linux `/proc`;
/// empty elsewhere).
fn thread_cpu() -> HashMap<u64, (String, f64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        // `pid (comm) state ...`: the name may hold spaces, so split after the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 once pid and comm are gone.
        let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
        // USER_HZ is 100 on Linux.
        out.insert(tid, (name, ticks as f64 / 100.0));
    }
    out
}

/// CPU seconds spent between two snapshots, summed by thread name, busiest first.
fn cpu_by_name(before: &HashMap<u64, (String, f64)>, after: &HashMap<u64, (String, f64)>) -> Vec<(String, f64, usize)> {
    let mut by: HashMap<String, (f64, usize)> = HashMap::new();
    for (tid, (name, s)) in after {
        let s0 = before.get(tid).map_or(0.0, |(_, s0)| *s0);
        let e = by.entry(name.clone()).or_default();
        e.0 += s - s0;
        e.1 += 1;
    }
    let mut v: Vec<_> = by.into_iter().map(|(n, (s, k))| (n, s, k)).filter(|(_, s, _)| *s > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

fn rejected(m: &Metrics) -> u64 {
    REASONS.iter().map(|r| m.rejected(r)).sum()
}

fn tickets(m: &Metrics) -> u64 {
    ["notice", "warning", "critical"].iter().map(|l| m.tickets_opened.with_label_values(&[l]).get()).sum()
}

fn rate(n: u64, d: Duration) -> String {
    let r = n as f64 / d.as_secs_f64().max(1e-9);
    let whole = r.round() as u64;
    let s = whole.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Publishes one reading at a time until the centre has received one: its subscription is then in place.
async fn warm_up(
    host: &str,
    port: u16,
    prefix: &str,
    zone: &ZoneInfo,
    metrics: &Metrics,
    secure: Option<&Secure>,
) -> u64 {
    // The warm-up client is publisher "usize::MAX" (edge `bench-warmup`) in a secure run.
    let (c, mut el) = client("bench-warmup", host, port, 10, secure.map(|s| (s, usize::MAX)));
    let poller = tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let mut seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.readings_received.get() == 0 {
        if Instant::now() > deadline {
            eprintln!("pipeline bench: the centre received nothing within 20 s of warm-up");
            std::process::exit(1);
        }
        seq += 1;
        let d = zone.warning * 0.3;
        let count = (d * zone.area_m2).round();
        let mut r = Reading::new(
            &zone.site,
            &zone.zone,
            SourceKind::Simulated,
            "bench-warmup/sim",
            // Older than every bench reading, so it does not hold back the zone's live level.
            Utc::now() - chrono::Duration::hours(1),
            count,
            zone.area_m2,
            0.8,
        );
        r.seq = seq;
        let payload = serde_json::to_vec(&r).expect("serialise a reading");
        let t = topic::reading(prefix, &zone.site, &zone.zone);
        let payload = match secure {
            Some(s) => {
                crowdgrid_proto::signed::seal(&s.creds[&(usize::MAX, zone.site.clone())], "bench-warmup", &t, &payload)
            }
            None => payload,
        };
        c.publish(t, QoS::AtLeastOnce, false, payload).await.expect("warm-up publish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = c.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), poller).await;
    // Let the last warm-up readings (published before the first one was seen) land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    seq
}

async fn run(args: Args) -> i32 {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/central.toml");
    let mut loaded = CentralConfig::load(&config_path).expect("load config/central.toml");
    loaded.config.store.path = dir.path().join("central.db");
    let db = loaded.config.store.path.clone();
    let secure = if args.secure {
        let tls = crowdgrid::central::tls::write_self_signed(&dir.path().join("tls"), &[]).expect("a certificate");
        let client_tls = tls.client_config().expect("a TLS client configuration");
        loaded.config.tls = Some(tls);
        loaded.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Required;
        let store = crowdgrid::auth::edge_credentials::EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db))
            .expect("the credential table");
        let mut creds = HashMap::new();
        for site in &loaded.sites {
            let id = &site.config.id;
            for p in (0..args.publishers).chain([usize::MAX]) {
                let edge = if p == usize::MAX { "bench-warmup".to_string() } else { format!("bench-edge-{p}") };
                creds.insert((p, id.clone()), store.create(id, &edge).await.expect("a credential"));
            }
        }
        Some(Secure { tls: client_tls, creds, first_site: loaded.sites[0].config.id.clone() })
    } else {
        // The load generator publishes unsigned v1 readings.
        loaded.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Off;
        None
    };
    loaded.config.api.listen = "127.0.0.1:0".parse().expect("loopback address");
    if let BrokerConfig::Embedded { listen, .. } = &mut loaded.config.broker {
        *listen = free_loopback_addr().expect("a free loopback port");
    } else {
        eprintln!("pipeline bench: config/central.toml must use the embedded broker");
        return 2;
    }
    let prefix = loaded.config.broker.topic_prefix().to_string();
    let channel_capacity = loaded.config.ingest.channel_capacity;
    let batch_max = loaded.config.store.batch_max;
    let zones: Vec<ZoneInfo> = loaded
        .sites
        .iter()
        .flat_map(|s| {
            s.zones.iter().map(|z| ZoneInfo {
                site: s.config.id.clone(),
                zone: z.config.id.clone(),
                area_m2: z.area_m2,
                warning: z.thresholds.warning,
            })
        })
        .collect();
    let n_sites = loaded.sites.len();

    let central = crowdgrid::central::start(loaded).await.expect("start the central service");
    let metrics = central.metrics.clone();
    let (host, port) = central.mqtt.clone();

    let warmups = warm_up(&host, port, &prefix, &zones[0], &metrics, secure.as_ref()).await;
    let stored0 = metrics.readings_stored.get();
    let received0 = metrics.readings_received.get();
    let tickets0 = tickets(&metrics);

    // Payloads are built before the clock starts.
    let p = args.publishers;
    let start_ts = Utc::now();
    let mut shares = Vec::with_capacity(p);
    for i in 0..p {
        let n = args.readings / p as u64 + u64::from((i as u64) < args.readings % p as u64);
        shares.push(n);
    }
    let payloads: Vec<Vec<(String, Vec<u8>)>> = shares
        .iter()
        .enumerate()
        .map(|(i, &n)| build_payloads(i, n, &zones, &prefix, start_ts, secure.as_ref()))
        .collect();
    let avg_payload = payloads.iter().flatten().map(|(_, b)| b.len()).sum::<usize>() as f64 / args.readings as f64;

    println!(
        "crowdgrid pipeline bench: {} readings, {} publishers, QoS 1 (inflight {}), embedded rumqttd, SQLite store + rules{}",
        args.readings,
        p,
        args.inflight,
        if secure.is_some() { ", SECURE: signed readings + edge login + TLS + commit acknowledgements" } else { "" }
    );
    println!(
        "  {} zones in {} sites, ~{:.0} B payloads, ingest channel {}, store batch_max {}, {} warm-up readings",
        zones.len(),
        n_sites,
        avg_payload,
        channel_capacity,
        batch_max,
        warmups
    );

    let barrier = Arc::new(Barrier::new(p + 1));
    let mut pollers = Vec::new();
    let mut dones = Vec::new();
    let mut senders = Vec::new();
    let mut clients = Vec::new();
    for (i, (items, &n)) in payloads.into_iter().zip(&shares).enumerate() {
        let (c, el) = client(&format!("bench-edge-{i}"), &host, port, args.inflight, secure.as_ref().map(|s| (s, i)));
        let (conn_tx, conn_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        pollers.push(tokio::spawn(poll_acks(el, n, conn_tx, done_tx)));
        if tokio::time::timeout(Duration::from_secs(10), conn_rx).await.map_or(true, |r| r.is_err()) {
            eprintln!("pipeline bench: publisher {i} did not connect within 10 s");
            return 1;
        }
        dones.push(done_rx);
        let b = barrier.clone();
        let pc = c.clone();
        senders.push(tokio::spawn(async move {
            b.wait().await;
            for (t, payload) in items {
                pc.publish(t, QoS::AtLeastOnce, false, payload).await.expect("queue a publish");
            }
        }));
        clients.push(c);
    }

    let cpu0 = thread_cpu();
    barrier.wait().await;
    let t0 = Instant::now();
    let deadline = t0 + args.timeout();
    let total = args.readings;

    // Watch the counters while the publishers run.
    let mut acked_at: Option<Instant> = None;
    let mut received_at: Option<Instant> = None;
    let mut at_last_ack: Option<(u64, u64)> = None;
    let mut stored_at: Option<Instant> = None;
    let mut peak_queue = 0i64;
    let mut peak_pending = 0i64;
    let mut done_times: Vec<Option<Instant>> = vec![None; dones.len()];
    loop {
        for (slot, rx) in done_times.iter_mut().zip(dones.iter_mut()) {
            if slot.is_none() {
                if let Ok(t) = rx.try_recv() {
                    *slot = Some(t);
                }
            }
        }
        let received = metrics.readings_received.get() - received0;
        let stored = metrics.readings_stored.get() - stored0;
        peak_queue = peak_queue.max(metrics.ingest_queue_depth.get());
        peak_pending = peak_pending.max(metrics.store_pending.get());
        if acked_at.is_none() && done_times.iter().all(Option::is_some) {
            acked_at = done_times.iter().flatten().max().copied();
            at_last_ack = Some((received, stored));
        }
        if received_at.is_none() && received >= total {
            received_at = Some(Instant::now());
        }
        if stored >= total {
            stored_at = Some(Instant::now());
            if acked_at.is_some() {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu1 = thread_cpu();
    let wall = t0.elapsed();

    // Ticket raises run behind the store (dispatcher: ticket store + MQTT notify): let them settle.
    let mut opened_seen = tickets(&metrics);
    let mut stable_since = Instant::now();
    let settle_deadline = Instant::now() + Duration::from_secs(5);
    while stable_since.elapsed() < Duration::from_millis(300) && Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now_opened = tickets(&metrics);
        if now_opened != opened_seen {
            opened_seen = now_opened;
            stable_since = Instant::now();
        }
    }

    let received = metrics.readings_received.get() - received0;
    let stored = metrics.readings_stored.get() - stored0;
    let rej = rejected(&metrics);
    let dup = metrics.readings_duplicate.get();
    let opened = tickets(&metrics) - tickets0;
    let line = |label: &str, at: Option<Instant>| match at {
        Some(t) => {
            let d = t - t0;
            println!("  {label:<18}: {:>6.2} s  {:>9} readings/s", d.as_secs_f64(), rate(total, d));
        }
        None => println!("  {label:<18}: not reached within {} s", args.timeout_s),
    };
    line("publish+puback", acked_at);
    line("received by centre", received_at);
    line("stored end-to-end", stored_at);
    if let Some((r, s)) = at_last_ack {
        println!("  at the last PubAck: {r} received, {s} stored ({} still to store)", total.saturating_sub(s));
    }
    let batches = metrics.store_batch_seconds.get_sample_count();
    let commit_s = metrics.store_batch_seconds.get_sample_sum();
    if batches > 0 {
        println!(
            "  store: {batches} commits, mean {:.0} rows / {:.1} ms each, {:.2} s committing in total",
            stored as f64 / batches as f64,
            commit_s * 1000.0 / batches as f64,
            commit_s
        );
    }
    let by_name = cpu_by_name(&cpu0, &cpu1);
    if !by_name.is_empty() {
        let total_cpu: f64 = by_name.iter().map(|(_, s, _)| s).sum();
        let parts: Vec<String> = by_name
            .iter()
            .take(8)
            .map(|(n, s, k)| if *k > 1 { format!("{n}×{k} {s:.2}") } else { format!("{n} {s:.2}") })
            .collect();
        println!(
            "  cpu over {:.2} s wall: {total_cpu:.2} s ({:.2} cores); by thread (s): {}",
            wall.as_secs_f64(),
            total_cpu / wall.as_secs_f64(),
            parts.join(", ")
        );
    }
    println!("  peak ingest queue {peak_queue}, peak store pending {peak_pending}");
    println!("  commit acknowledgements sent {}", metrics.acks_sent.get());
    println!("  peak RSS of the process (centre + broker + load generator): {} KiB", peak_rss_kib());
    if let Some(t) = stored_at {
        println!("RESULT stored_per_s={:.0} peak_rss_kib={}", total as f64 / (t - t0).as_secs_f64(), peak_rss_kib());
    }
    println!(
        "  rejected {rej}, duplicates {dup}, store errors {}, tickets opened {opened}",
        metrics.store_errors.get()
    );

    for c in &clients {
        let _ = c.try_disconnect();
    }
    for s in senders {
        s.abort();
        let _ = s.await;
    }
    let mut conn_errors = 0;
    for h in pollers {
        if let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(2), h).await {
            conn_errors += e;
        }
    }
    if conn_errors > 0 {
        println!("  publisher connection errors: {conn_errors}");
    }
    let stop_started = Instant::now();
    if tokio::time::timeout(Duration::from_secs(30), central.stop()).await.is_err() {
        eprintln!("pipeline bench: the centre did not stop within 30 s");
        return 1;
    }
    println!("  centre stopped in {:.2} s", stop_started.elapsed().as_secs_f64());

    if stored_at.is_none() || acked_at.is_none() {
        eprintln!(
            "pipeline bench: timed out after {} s: {stored} of {total} stored, {received} received",
            args.timeout_s
        );
        return 1;
    }
    0
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args = parse_args();
    if args.compare {
        std::process::exit(compare());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("build the tokio runtime");
    let code = rt.block_on(run(args));
    // rumqttd has no stop: its thread lives until the process exits.
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

/// Runs this bench twice in child processes, plain then secure, with the same other options; prints the ratio.
fn compare() -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pipeline bench: {e}");
            return 1;
        }
    };
    let rest: Vec<String> = std::env::args().skip(1).filter(|a| a != "--compare" && a != "--bench").collect();
    let mut results = Vec::new();
    for secure in [false, true] {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(&rest);
        if secure {
            cmd.arg("--secure");
        }
        let out = match cmd.output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("pipeline bench: {e}");
                return 1;
            }
        };
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        print!("{text}");
        let result = text.lines().find_map(|l| l.strip_prefix("RESULT ")).map(|r| {
            let field = |k: &str| {
                r.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(k))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (field("stored_per_s="), field("peak_rss_kib="))
        });
        match result {
            Some(r) if out.status.success() => results.push(r),
            _ => {
                eprintln!("pipeline bench: the {} run failed", if secure { "secure" } else { "plain" });
                return 1;
            }
        }
    }
    let ((plain, plain_rss), (secure, secure_rss)) = (results[0], results[1]);
    println!(
        "COMPARE plain {plain:.0} readings/s (peak RSS {:.0} MiB), secure {secure:.0} readings/s (peak RSS {:.0} MiB): \
         secure = {:.0} % of plain",
        plain_rss / 1024.0,
        secure_rss / 1024.0,
        100.0 * secure / plain.max(1.0)
    );
    0
}
