//! Alert latency: from publishing the reading that crosses a zone's warning threshold (`for` = 0) to the
//! ticket notification arriving on the grid worker's MQTT topic, through a real broker.
//!
//! A plain program that prints figures; it never asserts on timing.
//!
//! ```sh
//! cargo bench --bench alert_latency -- --samples 200
//! ```
//!
//! Options: `--samples N` (default 200, or env `CROWDGRID_BENCH_SAMPLES`), `--host H` / `--port P` (the
//! external broker, default 127.0.0.1:1883: a system Mosquitto), `--timeout S` (wait per notification,
//! default 10), `--embedded-tls` (instead: the centre's embedded broker with TLS and edge authentication on, as
//! deployed beyond one machine; the readings are signed by an edge credential over TLS, the watcher logs in as
//! the centre).
//!
//! The centre runs in-process on `config/central.toml` with `[broker] mode = "external"`, a unique topic
//! prefix and client id, its store in a temporary directory, and a rule file per site written for the run:
//! one density rule per zone at the zone's own thresholds with `for_s`, `clear_for_s` and `cooldown_s` all 0
//! (the shipped rules wait 120 s before a ticket auto-resolves), and `escalation.reopen_window_s = 0`, so each
//! sample raises a fresh ticket. A separate client subscribes (SUBACK awaited) to
//! `{prefix}/+/workers/+/tickets`. Each sample, one zone at a time (zones whose grid has a roster, in turn):
//!
//! 1. publish (QoS 1) a reading above the zone's warning threshold, `ts` = now, the next `seq` of the zone's
//!    source; note the instant just before handing it to the client;
//! 2. wait for the notification for that zone with event `raised` or `reopened`: that delay is the sample;
//! 3. publish a reading at 0.1 people/m² and wait for the `resolved` notification (printed separately as
//!    clear → resolved), so the next sample starts from a quiet zone.
//!
//! On the way out the centre's persistent session is removed from the broker (clean-session reconnect).
//! Logs go to stderr at `warn` (`RUST_LOG` overrides).

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use crowdgrid::central::config::{BrokerConfig, CentralConfig};
use crowdgrid::metrics::Metrics;
use crowdgrid_proto::{topic, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

/// Latency from a threshold-crossing reading to the notification on the worker's MQTT topic.
#[derive(clap::Parser)]
struct Args {
    /// Samples (crossings) to measure.
    #[arg(long, env = "CROWDGRID_BENCH_SAMPLES", default_value_t = 200)]
    samples: usize,
    /// The real broker's host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The real broker's port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Seconds to wait for each notification.
    #[arg(long = "timeout", default_value_t = 10)]
    timeout_s: u64,
    /// Use the embedded broker with TLS and authentication instead of the external one.
    #[arg(long)]
    embedded_tls: bool,
}

/// The secure setup: TLS trust, the edge's credentials per site, the centre's login for the watcher.
#[derive(Clone)]
struct Secure {
    tls: std::sync::Arc<rustls::ClientConfig>,
    creds: std::collections::HashMap<String, crowdgrid_proto::signed::Credential>,
    centre_password: String,
    first_site: String,
}

impl Secure {
    /// The payload as the edge `alert-bench` signs it.
    fn seal(&self, site: &str, topic: &str, body: Vec<u8>) -> Vec<u8> {
        crowdgrid_proto::signed::seal(&self.creds[site], "alert-bench", topic, &body)
    }
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
    if args.samples == 0 || args.timeout_s == 0 {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, "--samples and --timeout must be positive")
            .exit();
    }
    args
}

/// One zone the samples cycle through, with its reading source.
struct ZoneInfo {
    site: String,
    zone: String,
    area_m2: f64,
    warning: f64,
    critical: f64,
    source_id: String,
    seq: u64,
}

impl ZoneInfo {
    /// The next reading of this zone's source at `density`, stamped now.
    fn reading(&mut self, density: f64) -> Vec<u8> {
        self.seq += 1;
        let count = (density * self.area_m2).round();
        let mut r = Reading::new(
            &self.site,
            &self.zone,
            SourceKind::Report,
            &self.source_id,
            Utc::now(),
            count,
            self.area_m2,
            0.9,
        );
        r.seq = self.seq;
        r.epoch = 1;
        serde_json::to_vec(&r).expect("serialise a reading")
    }

    /// Above warning, below critical (a single level, so no `upgraded` in between).
    fn high(&self) -> f64 {
        (self.warning * 1.15).min((self.warning + self.critical) / 2.0)
    }
}

/// A ticket notification as it arrived.
struct Note {
    at: Instant,
    event: String,
    site: String,
    zone: String,
    id: i64,
}

fn client(id: &str, host: &str, port: u16, login: Option<(String, String, &Secure)>) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    if let Some((user, password, secure)) = login {
        opts.set_credentials(user, password);
        crowdgrid_edge::tls::use_tls(&mut opts, secure.tls.clone());
    }
    AsyncClient::new(opts, 100)
}

/// Polls the watcher's event loop: reports the SubAck, then forwards every ticket notification with the
/// instant it was read off the socket.
async fn watch(mut el: EventLoop, subscribed: oneshot::Sender<()>, tx: mpsc::UnboundedSender<Note>) {
    let mut subscribed = Some(subscribed);
    let mut errors = 0u64;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(s) = subscribed.take() {
                    let _ = s.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let at = Instant::now();
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
                let s = |k: &str| v["ticket"][k].as_str().unwrap_or_default().to_string();
                let note = Note {
                    at,
                    event: v["event"].as_str().unwrap_or_default().to_string(),
                    site: s("site"),
                    zone: s("zone"),
                    id: v["ticket"]["id"].as_i64().unwrap_or(-1),
                };
                if tx.send(note).is_err() {
                    break;
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                if errors == 1 || errors % 100 == 0 {
                    eprintln!("watcher connection error ({errors}): {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Polls the publisher's event loop, reporting the ConnAck.
async fn drive(mut el: EventLoop, connected: oneshot::Sender<()>) {
    let mut connected = Some(connected);
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Some(c) = connected.take() {
                    let _ = c.send(());
                }
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("publisher connection error: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits for a notification for `zone` whose event is one of `events`; other notifications are skipped.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Note>,
    z: &ZoneInfo,
    events: &[&str],
    timeout: Duration,
) -> Option<Note> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = tokio::time::timeout_at(deadline, rx.recv()).await.ok()??;
        if n.site == z.site && n.zone == z.zone && events.contains(&n.event.as_str()) {
            return Some(n);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(label: &str, mut v: Vec<f64>) {
    if v.is_empty() {
        println!("  {label:<24}: no samples");
        return;
    }
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "  {label:<24}: n={:<4} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (min {:.2}, mean {:.2})",
        v.len(),
        pct(&v, 50.0),
        pct(&v, 90.0),
        pct(&v, 99.0),
        v[v.len() - 1],
        v[0],
        mean
    );
}

/// Writes one rule file per site (density at each zone's thresholds, no `for`, no clear delay, no cooldown).
fn write_rules(dir: &Path, sites: &[String]) -> Vec<std::path::PathBuf> {
    sites
        .iter()
        .map(|site| {
            let path = dir.join(format!("{site}.rules.toml"));
            let text = format!(
                "site = \"{site}\"\n\n[[rule]]\nid = \"density\"\nmetric = \"density\"\nfor_s = 0\nclear_for_s = 0\ncooldown_s = 0\n"
            );
            std::fs::write(&path, text).expect("write a rule file");
            path
        })
        .collect()
}

/// What the broker says it is (`$SYS/broker/version`, retained by Mosquitto), if it says.
async fn broker_version(host: &str, port: u16, client_id: &str) -> Option<String> {
    let (c, mut el) = client(client_id, host, port, None);
    c.subscribe("$SYS/broker/version", QoS::AtMostOnce).await.ok()?;
    let version = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    return Some(String::from_utf8_lossy(&p.payload).into_owned())
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    let _ = c.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), async { while el.poll().await.is_ok() {} }).await;
    version
}

/// Removes the centre's persistent session from the broker (a clean-session connect replaces it).
async fn drop_session(host: &str, port: u16, client_id: &str) {
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_clean_session(true);
    let (c, mut el) = AsyncClient::new(opts, 10);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = c.try_disconnect();
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

async fn run(args: Args) -> i32 {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let config_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/central.toml");
    let mut loaded = CentralConfig::load(&config_path).expect("load config/central.toml");
    let run_id = {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
    };
    let prefix = format!("crowdgrid-bench/{run_id}/v1");
    let client_id = format!("crowdgrid-alert-bench-{run_id}");
    loaded.config.store.path = dir.path().join("central.db");
    loaded.config.api.listen = "127.0.0.1:0".parse().expect("loopback address");
    let db = loaded.config.store.path.clone();
    let (host, port, secure) = if args.embedded_tls {
        let port = crowdgrid::central::broker::free_loopback_addr().expect("a free port").port();
        loaded.config.broker = BrokerConfig::Embedded {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            max_payload_bytes: 1024 * 1024,
            topic_prefix: prefix.clone(),
        };
        let tls = crowdgrid::central::tls::write_self_signed(&dir.path().join("tls"), &[]).expect("a certificate");
        let client_tls = tls.client_config().expect("a TLS client configuration");
        loaded.config.tls = Some(tls);
        loaded.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Required;
        let store = crowdgrid::auth::edge_credentials::EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db))
            .expect("the credential table");
        let mut creds = std::collections::HashMap::new();
        for s in &loaded.sites {
            creds.insert(s.config.id.clone(), store.create(&s.config.id, "alert-bench").await.expect("a credential"));
        }
        let secure = Secure {
            tls: client_tls,
            creds,
            centre_password: store.centre_password(),
            first_site: loaded.sites[0].config.id.clone(),
        };
        ("127.0.0.1".to_string(), port, Some(secure))
    } else {
        // The load generator publishes unsigned v1 readings.
        loaded.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Off;
        loaded.config.broker = BrokerConfig::External {
            host: args.host.clone(),
            port: args.port,
            client_id: client_id.clone(),
            username: None,
            password: None,
            tls_ca: None,
            topic_prefix: prefix.clone(),
        };
        (args.host.clone(), args.port, None)
    };
    let seal = |site: &str, topic: &str, body: Vec<u8>| match &secure {
        Some(s) => s.seal(site, topic, body),
        None => body,
    };
    let site_ids: Vec<String> = loaded.sites.iter().map(|s| s.config.id.clone()).collect();
    loaded.config.rule_files = write_rules(dir.path(), &site_ids);
    if let Err(e) = crowdgrid::rules::load(&loaded.config.rule_files, &loaded.sites) {
        eprintln!("alert_latency bench: the generated rule files do not load: {e}");
        return 2;
    }
    loaded.config.escalation.reopen_window_s = 0;

    // Zones whose grid has someone on the roster: only their tickets reach a worker's topic.
    let mut zones: Vec<ZoneInfo> = loaded
        .sites
        .iter()
        .flat_map(|s| {
            let site = s.config.id.clone();
            s.zones
                .iter()
                .filter(|z| s.workers_of_grid(&z.config.grid).next().is_some())
                .map(move |z| ZoneInfo {
                    site: site.clone(),
                    zone: z.config.id.clone(),
                    area_m2: z.area_m2,
                    warning: z.thresholds.warning,
                    critical: z.thresholds.critical,
                    source_id: format!("alert-bench/{}", z.config.id),
                    seq: 0,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if zones.is_empty() {
        eprintln!("alert_latency bench: no zone has a worker roster");
        return 2;
    }

    // Is the broker there at all?
    use std::net::ToSocketAddrs;
    let reachable = secure.is_some()
        || (args.host.as_str(), args.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        eprintln!("alert_latency bench: no MQTT broker on {}:{}", args.host, args.port);
        return 2;
    }

    let broker = if secure.is_some() {
        "the embedded rumqttd with TLS (self-signed) and edge authentication; readings signed".to_string()
    } else {
        broker_version(&args.host, args.port, &format!("{client_id}-sys"))
            .await
            .unwrap_or_else(|| "unknown broker (no $SYS/broker/version)".into())
    };

    let central = match crowdgrid::central::start(loaded).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alert_latency bench: the centre did not start: {e}");
            return 1;
        }
    };
    let metrics: Metrics = central.metrics.clone();

    // The watcher subscribes first, so no notification can be missed.
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let watch_login = secure.as_ref().map(|s| ("crowdgrid-central".to_string(), s.centre_password.clone(), s));
    let watch_id =
        if secure.is_some() { "crowdgrid-central-bench-watch".to_string() } else { format!("{client_id}-watch") };
    let (wc, wel) = client(&watch_id, &host, port, watch_login);
    let (sub_tx, sub_rx) = oneshot::channel();
    let watcher = tokio::spawn(watch(wel, sub_tx, notes_tx));
    let filter = format!("{prefix}/+/workers/+/tickets");
    wc.subscribe(&filter, QoS::AtLeastOnce).await.expect("queue the subscription");
    if tokio::time::timeout(Duration::from_secs(10), sub_rx).await.map_or(true, |r| r.is_err()) {
        eprintln!("alert_latency bench: no SUBACK for {filter} within 10 s");
        return 1;
    }

    let pub_login =
        secure.as_ref().map(|s| (format!("{}/alert-bench", s.first_site), s.creds[&s.first_site].secret.clone(), s));
    let pub_id = if secure.is_some() { "alert-bench-pub".to_string() } else { format!("{client_id}-pub") };
    let (pc, pel) = client(&pub_id, &host, port, pub_login);
    let (conn_tx, conn_rx) = oneshot::channel();
    let publisher = tokio::spawn(drive(pel, conn_tx));
    if tokio::time::timeout(Duration::from_secs(10), conn_rx).await.map_or(true, |r| r.is_err()) {
        eprintln!("alert_latency bench: the publisher did not connect within 10 s");
        return 1;
    }

    // Warm-up: quiet readings until the centre has received one (its subscription is in place).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut warmups = 0;
    while metrics.readings_received.get() == 0 {
        if Instant::now() > deadline {
            eprintln!("alert_latency bench: the centre received nothing within 20 s of warm-up");
            return 1;
        }
        let z = &mut zones[0];
        let t = topic::reading(&prefix, &z.site, &z.zone);
        let payload = {
            let body = z.reading(0.1);
            seal(&z.site, &t, body)
        };
        pc.publish(t, QoS::AtLeastOnce, false, payload).await.expect("warm-up publish");
        warmups += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every zone starts quiet (a zone never heard from has no level to clear from either way).
    for z in zones.iter_mut().skip(1) {
        let t = topic::reading(&prefix, &z.site, &z.zone);
        let payload = {
            let body = z.reading(0.1);
            seal(&z.site, &t, body)
        };
        pc.publish(t, QoS::AtLeastOnce, false, payload).await.expect("quiet publish");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while notes.try_recv().is_ok() {}

    println!(
        "crowdgrid alert latency bench: {} samples over {} zones; broker: {broker} at {host}:{port}, QoS 1",
        args.samples,
        zones.len(),
    );
    println!(
        "  prefix {prefix}; rule: density, for_s 0, clear_for_s 0, cooldown_s 0; reopen_window_s 0; {warmups} warm-up readings"
    );

    let mut raise = Vec::with_capacity(args.samples);
    let mut resolve = Vec::with_capacity(args.samples);
    let mut missed_raise = 0usize;
    let mut missed_resolve = 0usize;
    let mut reopened = 0usize;
    let mut ids = std::collections::HashSet::new();
    let t0 = Instant::now();
    for i in 0..args.samples {
        let zi = i % zones.len();
        let z = &mut zones[zi];
        let high = z.high();
        let t = topic::reading(&prefix, &z.site, &z.zone);
        // Signed before the clock starts, as an edge signs when it queues.
        let payload = {
            let body = z.reading(high);
            seal(&z.site, &t, body)
        };
        let sent = Instant::now();
        pc.publish(t.clone(), QoS::AtLeastOnce, false, payload).await.expect("queue a publish");
        match wait_for(&mut notes, z, &["raised", "reopened"], args.timeout()).await {
            Some(n) => {
                raise.push(ms(n.at - sent));
                reopened += usize::from(n.event == "reopened");
                ids.insert(n.id);
            }
            None => {
                missed_raise += 1;
                eprintln!(
                    "sample {i}: no raised/reopened notification for {}/{} within {:?}",
                    z.site,
                    z.zone,
                    args.timeout()
                );
            }
        }
        let payload = {
            let body = z.reading(0.1);
            seal(&z.site, &t, body)
        };
        let cleared = Instant::now();
        pc.publish(t, QoS::AtLeastOnce, false, payload).await.expect("queue a publish");
        match wait_for(&mut notes, z, &["resolved"], args.timeout()).await {
            Some(n) => resolve.push(ms(n.at - cleared)),
            None => {
                missed_resolve += 1;
                eprintln!("sample {i}: no resolved notification for {}/{} within {:?}", z.site, z.zone, args.timeout());
            }
        }
    }
    let wall = t0.elapsed();

    println!("  threshold crossing → worker notification (raised/reopened):");
    summary("reading → notification", raise);
    println!("  below the clear level → worker notification (resolved), for reference:");
    summary("reading → resolved", resolve);
    println!(
        "  {} distinct tickets ({reopened} reopened), missed: {missed_raise} raise / {missed_resolve} resolve, {:.1} s wall",
        ids.len(),
        wall.as_secs_f64()
    );
    let rejected: u64 = ["malformed", "topic_mismatch", "unknown_zone", "inconsistent", "future", "too_old"]
        .iter()
        .map(|r| metrics.rejected(r))
        .sum();
    println!(
        "  centre: {} readings received, {} stored, {} duplicates, {rejected} rejected, {} notify errors",
        metrics.readings_received.get(),
        metrics.readings_stored.get(),
        metrics.readings_duplicate.get(),
        metrics.notify_errors.get()
    );

    let _ = pc.try_disconnect();
    let _ = wc.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), publisher).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), watcher).await;
    if tokio::time::timeout(Duration::from_secs(30), central.stop()).await.is_err() {
        eprintln!("alert_latency bench: the centre did not stop within 30 s");
    }
    if secure.is_none() {
        drop_session(&args.host, args.port, &client_id).await;
    }
    i32::from(missed_raise > 0 || missed_resolve > 0)
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("build the tokio runtime");
    let code = rt.block_on(run(args));
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
