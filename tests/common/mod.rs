//! Shared helpers for the integration tests: real centres, real edges, real brokers, on free ports.
#![allow(dead_code)]

pub mod browser;
pub mod camera;
pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crowdgrid::central::broker::free_loopback_addr;
use crowdgrid::central::config::{BrokerConfig, CentralConfig, LoadedCentral};
use crowdgrid_edge::config::{EdgeConfig, LoadedEdge};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A unique suffix for topic prefixes and client ids on shared brokers.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// `config/central.toml` with the store in `dir`, the API on port 0 and the embedded broker on a free port.
pub fn central_embedded(dir: &Path) -> LoadedCentral {
    let mut c = CentralConfig::load(&root().join("config/central.toml")).expect("central.toml loads");
    c.config.store.path = dir.join("central.db");
    c.config.api.listen = "127.0.0.1:0".parse().unwrap();
    // The default rule set (one density rule per zone from its thresholds, no `for`): exact assertions.
    c.config.rule_files.clear();
    // These tests publish unsigned v1 payloads by hand; tests/trust.rs runs the centre as shipped (signed only).
    c.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Off;
    c.config.broker = BrokerConfig::Embedded {
        listen: free_loopback_addr().unwrap(),
        max_payload_bytes: 1024 * 1024,
        topic_prefix: "crowdgrid/v1".into(),
    };
    c
}

/// `config/central.toml` pointed at an external broker with its own prefix and client id.
pub fn central_external(dir: &Path, host: &str, port: u16, prefix: &str, client_id: &str) -> LoadedCentral {
    let mut c = central_embedded(dir);
    c.config.broker = BrokerConfig::External {
        host: host.into(),
        port,
        client_id: client_id.into(),
        username: None,
        password: None,
        tls_ca: None,
        topic_prefix: prefix.into(),
    };
    c
}

/// Writes an edge file for the West Taihu site into `dir` with the given `[[sources]]` TOML and loads it.
pub fn edge_file(dir: &Path, edge_id: &str, port: u16, prefix: &str, sources: &str) -> PathBuf {
    edge_file_for(dir, "west-taihu", edge_id, port, prefix, sources)
}

/// [`edge_file`] for the site in `config/{site}/site.toml`.
pub fn edge_file_for(dir: &Path, site: &str, edge_id: &str, port: u16, prefix: &str, sources: &str) -> PathBuf {
    let site = root().join(format!("config/{site}/site.toml"));
    let text = format!(
        r#"
[edge]
id = "{edge_id}"
site = "{site}"

[mqtt]
host = "127.0.0.1"
port = {port}
topic_prefix = "{prefix}"
keep_alive_s = 5
status_interval_s = 2
max_backoff_s = 1

[queue]
path = "{edge_id}.queue.db"

[fusion]
interval_ms = 200

{sources}
"#,
        site = site.display()
    );
    let path = dir.join(format!("{edge_id}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Loads an edge file written by [`edge_file`].
pub fn load_edge(path: &Path) -> LoadedEdge {
    EdgeConfig::load(path).unwrap_or_else(|e| panic!("edge config: {e}"))
}

/// A simulated source feeding two zones every `interval_ms`.
pub fn simulated_source(interval_ms: u64) -> String {
    format!(
        r#"
[[sources]]
type = "simulated"
id = "sim"
interval_ms = {interval_ms}
seed = 1
zones = [
  {{ zone = "beach", profile = "flat", base = 1.0, peak = 1.0 }},
  {{ zone = "jetty", profile = "flat", base = 0.5, peak = 0.5 }},
]
"#
    )
}

/// Starts the `crowdgrid central` binary on `config` (stderr to `log`) and waits until its API says ok.
pub async fn start_centre_process(config: &Path, api: &str, log: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["central", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), "the centre to answer", || async {
        let ok = reqwest::get(format!("{api}/healthz")).await.ok()?.json::<serde_json::Value>().await.ok()?;
        (ok["status"] == "ok").then_some(())
    })
    .await;
    child
}

/// Polls `f` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates an API token in the centre's database at `db`.
pub async fn token(db: &Path, role: crowdgrid::auth::Role, worker: Option<&str>) -> String {
    token_in(&crowdgrid::auth::Tokens::open(db).unwrap(), role, worker).await
}

/// Creates an API token in `tokens` (any backend).
pub async fn token_in(tokens: &crowdgrid::auth::Tokens, role: crowdgrid::auth::Role, worker: Option<&str>) -> String {
    let name = worker.map_or_else(|| format!("test-{}", role.as_str()), str::to_string);
    tokens.create(&name, role, worker).await.unwrap()
}

/// An admin token for the centre whose database is `db`.
pub async fn admin(db: &Path) -> String {
    token(db, crowdgrid::auth::Role::Admin, None).await
}

/// POSTs JSON to the centre's API with a bearer token: the status and the JSON answer (null if none).
pub async fn post_json(url: &str, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().post(url).bearer_auth(token).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Logs of the code under test in the test's output, as `RUST_LOG` says (once per test binary).
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// GETs JSON from the centre's API with a bearer token.
pub async fn get_json(url: &str, token: &str) -> serde_json::Value {
    let resp =
        reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.unwrap()
}

/// Every stored `(source_id, seq)` for the given sources, ordered by source then timestamp.
pub fn stored_seqs(db: &Path, source_like: &str) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT source_id, seq FROM readings WHERE source_id LIKE ?1 ORDER BY source_id, ts, seq")
        .unwrap();
    let rows = stmt.query_map([source_like], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// The highest sequence number the edge queue at `db` assigned to each source.
pub fn assigned_seqs(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT source_id, next_seq - 1 FROM seqs ORDER BY source_id").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Checks that each source's stored sequence numbers are exactly 1..=max, in timestamp order.
pub fn assert_complete(stored: &[(String, i64)], assigned: &[(String, i64)]) {
    assert!(!assigned.is_empty(), "the edge assigned no sequence numbers");
    for (source, max) in assigned {
        let seqs: Vec<i64> = stored.iter().filter(|(s, _)| s == source).map(|(_, q)| *q).collect();
        let expected: Vec<i64> = (1..=*max).collect();
        if seqs != expected {
            let missing: Vec<_> = expected.iter().filter(|q| !seqs.contains(q)).take(10).collect();
            panic!(
                "source {source}: stored {} of {max} readings (missing e.g. {missing:?}); first stored {:?}",
                seqs.len(),
                &seqs[..seqs.len().min(10)]
            );
        }
    }
}

/// A Mosquitto we own, on a free loopback port, with persistence (so sessions survive a restart).
pub struct Mosquitto {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Starts `mosquitto` (Debian package) with a config in `dir`.
    pub fn start(dir: &Path) -> Mosquitto {
        let port = free_loopback_addr().unwrap().port();
        let data = dir.join("mosquitto-data");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 autosave_interval 1\nmax_queued_messages 1000000\nmax_inflight_messages 100\n",
                data.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto { port, conf, child: None };
        m.restart();
        m
    }

    /// Starts the broker process again with the same config and data.
    pub fn restart(&mut self) {
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed: run scripts/test.sh (it installs the Debian package)");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not listen on {}", self.port);
    }

    /// Stops the broker with SIGTERM (it saves its persistence file) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Publishes one report reading of `density` people/m² for `site`/`zone` (QoS 1, waits for the broker's ack).
pub async fn publish_reading(host: &str, port: u16, site: &str, zone: &str, area: f64, density: f64, seq: u64) {
    use crowdgrid_proto::{Reading, SourceKind};
    let now = chrono::Utc::now();
    let mut r = Reading::new(site, zone, SourceKind::Report, "test/report", now, (density * area).round(), area, 0.9);
    r.seq = seq;
    publish(host, port, &r).await;
}

/// Publishes `r` on its topic under `crowdgrid/v1` (QoS 1) and waits for the broker's acknowledgement.
pub async fn publish(host: &str, port: u16, r: &crowdgrid_proto::Reading) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("pub-{}", unique()), host, port), 10);
    let topic = crowdgrid_proto::topic::reading("crowdgrid/v1", &r.site, &r.zone);
    client.publish(topic, QoS::AtLeastOnce, false, serde_json::to_vec(r).unwrap()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = el.poll().await.expect("broker connection") {
                break;
            }
        }
    })
    .await
    .expect("the reading is acknowledged");
}
