//! Shared setup of the cluster tests: site files, centre instances as processes of the real binary, edges, the
//! leases as PostgreSQL has them, and a three-node NATS cluster speaking MQTT.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;
use crowdgrid::central::broker::free_loopback_addr;

pub const PREFIX: &str = "crowdgrid/v1";

pub fn site_id(i: usize) -> String {
    format!("isle-{i}")
}

/// West Taihu's site file under `n` other ids.
pub fn write_sites(dir: &Path, n: usize) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root().join("config/west-taihu/site.toml")).unwrap();
    assert!(text.contains("id = \"west-taihu\""));
    (0..n)
        .map(|i| {
            let path = dir.join(format!("{}.toml", site_id(i)));
            std::fs::write(&path, text.replace("id = \"west-taihu\"", &format!("id = \"{}\"", site_id(i)))).unwrap();
            path
        })
        .collect()
}

pub struct Instance {
    pub name: String,
    config: PathBuf,
    pub api: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    pub fn new(dir: &Path, name: &str, sites: &[PathBuf], broker: u16, pg: &str) -> Instance {
        let own = dir.join(name);
        std::fs::create_dir_all(&own).unwrap();
        let api = free_loopback_addr().unwrap();
        let sites: Vec<String> = sites.iter().map(|p| format!("{:?}", p.display().to_string())).collect();
        let config = own.join("central.toml");
        std::fs::write(
            &config,
            format!(
                r#"sites = [{sites}]

[broker]
mode = "external"
host = "127.0.0.1"
port = {broker}
client_id = "centre"
topic_prefix = "{PREFIX}"

[edges]
authentication = "off"

[store]
path = "central.db"
dispatch_url = "{pg}"

[api]
listen = "{api}"

[cluster]
instance = "{name}"
lease_s = 4
"#,
                sites = sites.join(", ")
            ),
        )
        .unwrap();
        Instance { name: name.into(), config, api: format!("http://{api}"), log: own.join("centre.log"), child: None }
    }

    pub async fn start(&mut self) {
        self.child = Some(start_centre_process(&self.config, &self.api, &self.log).await);
    }

    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill_9();
    }
}

pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// site → owner, for unexpired leases.
pub async fn owners(db: &tokio_postgres::Client) -> BTreeMap<String, String> {
    let rows = db
        .query(
            "SELECT site, owner FROM partition_leases
             WHERE owner IS NOT NULL AND expires_at >= (extract(epoch from clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .await
        .unwrap_or_default();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

pub fn edge_config(dir: &Path, site_file: &Path, edge: &str, broker: u16) -> PathBuf {
    let text = format!(
        r#"
[edge]
id = "{edge}"
site = "{site}"

[mqtt]
host = "127.0.0.1"
port = {broker}
topic_prefix = "{PREFIX}"
keep_alive_s = 5
status_interval_s = 2
max_backoff_s = 1

[queue]
path = "{edge}.queue.db"

[fusion]
interval_ms = 500

[[sources]]
type = "simulated"
id = "sim"
interval_ms = 100
seed = 1
zones = [
  {{ zone = "beach", profile = "flat", base = 1.0, peak = 1.0 }},
  {{ zone = "jetty", profile = "flat", base = 3.2, peak = 3.2 }},
]
"#,
        site = site_file.display()
    );
    let path = dir.join(format!("{edge}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The last reading time stored per site.
pub async fn latest(db: &tokio_postgres::Client) -> HashMap<String, i64> {
    let rows = db.query("SELECT site, MAX(ts) FROM readings GROUP BY site", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Three `nats-server`s (Debian's package) clustered on loopback, JetStream on, each speaking MQTT on its own port:
/// a clustered broker whose sessions (kept in JetStream, three replicas) follow a client to any node.
pub struct NatsCluster {
    /// Each node's MQTT port.
    pub mqtt: Vec<u16>,
    children: Vec<Child>,
}

impl NatsCluster {
    pub async fn start(dir: &Path) -> NatsCluster {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nats-server is not installed: run scripts/test.sh (it installs the Debian package)");
        let port = || free_loopback_addr().unwrap().port();
        let nodes: Vec<(u16, u16, u16, u16)> = (0..3).map(|_| (port(), port(), port(), port())).collect();
        let routes: Vec<String> = nodes.iter().map(|n| format!("nats-route://127.0.0.1:{}", n.2)).collect();
        let mut children = Vec::new();
        for (i, (client, http, cluster, mqtt)) in nodes.iter().enumerate() {
            let conf = dir.join(format!("nats-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{http}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: cg, listen: 127.0.0.1:{cluster}, routes: [{}] }}\n\
                     mqtt {{ listen: 127.0.0.1:{mqtt} }}\n",
                    dir.join(format!("nats-js-{i}")).display(),
                    routes.join(", ")
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.join(format!("nats-{i}.log"))).unwrap();
            children.push(Command::new(bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log).spawn().unwrap());
        }
        let http = nodes[0].1;
        eventually(Duration::from_secs(30), "the NATS cluster to elect a JetStream leader", || async move {
            let jsz: serde_json::Value =
                reqwest::get(format!("http://127.0.0.1:{http}/jsz")).await.ok()?.json().await.ok()?;
            jsz["meta_cluster"]["leader"].as_str().filter(|l| !l.is_empty()).map(|_| ())
        })
        .await;
        NatsCluster { mqtt: nodes.iter().map(|n| n.3).collect(), children }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
