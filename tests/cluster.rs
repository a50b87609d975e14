//! Three centre instances (processes of the real binary) share six sites through leases in PostgreSQL, behind one
//! Mosquitto; one edge per site publishes with store-and-forward. Checked: every site is held by exactly one
//! instance; any instance's API answers the series of any site and its event stream carries zone changes of sites
//! it does not hold; `kill -9` of the busiest instance under load → its sites are taken over (the takeover time is
//! printed), the ticket each site had stays one ticket; the killed instance restarts and gets sites back; once the
//! edges' queues drain, every reading of every source is stored exactly once (sequence numbers 1..=n, no gap).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use common::*;
use crowdgrid::central::broker::free_loopback_addr;
use crowdgrid::store::pg_schema::TestSchema;
use crowdgrid_edge::agent::Agent;

const SITES: usize = 6;
const PREFIX: &str = "crowdgrid/v1";

fn site_id(i: usize) -> String {
    format!("isle-{i}")
}

/// West Taihu's site file under another id.
fn write_sites(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root().join("config/west-taihu/site.toml")).unwrap();
    assert!(text.contains("id = \"west-taihu\""));
    (0..SITES)
        .map(|i| {
            let path = dir.join(format!("{}.toml", site_id(i)));
            std::fs::write(&path, text.replace("id = \"west-taihu\"", &format!("id = \"{}\"", site_id(i)))).unwrap();
            path
        })
        .collect()
}

struct Instance {
    name: String,
    config: PathBuf,
    api: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    fn new(dir: &Path, name: &str, sites: &[PathBuf], broker: u16, pg: &str) -> Instance {
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
lease_s = 3
"#,
                sites = sites.join(", ")
            ),
        )
        .unwrap();
        Instance { name: name.into(), config, api: format!("http://{api}"), log: own.join("centre.log"), child: None }
    }

    async fn start(&mut self) {
        self.child = Some(start_centre_process(&self.config, &self.api, &self.log).await);
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn terminate(&mut self) {
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

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// site → owner, for unexpired leases.
async fn owners(db: &tokio_postgres::Client) -> BTreeMap<String, String> {
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

fn edge_config(dir: &Path, site_file: &Path, edge: &str, broker: u16) -> PathBuf {
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
async fn latest(db: &tokio_postgres::Client) -> HashMap<String, i64> {
    let rows = db.query("SELECT site, MAX(ts) FROM readings GROUP BY site", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_sites_and_survive_a_kill_9() {
    let schema = TestSchema::create().await.expect("PostgreSQL for tests (scripts/test-postgres.sh)");
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sites = write_sites(dir.path());
    let db = pg(&schema.url()).await;
    let mut instances: Vec<Instance> =
        ["a", "b", "c"].iter().map(|n| Instance::new(dir.path(), n, &sites, broker.port, &schema.url())).collect();
    for i in &mut instances {
        i.start().await;
    }
    // Two sites each once all three are in.
    let balanced = eventually(Duration::from_secs(30), "the sites to be shared two by two", || async {
        let o = owners(&db).await;
        let mut per: HashMap<String, usize> = HashMap::new();
        for owner in o.values() {
            *per.entry(owner.clone()).or_default() += 1;
        }
        (o.len() == SITES && per.len() == 3 && per.values().all(|n| *n == 2)).then_some(o)
    })
    .await;
    println!("leases: {balanced:?}");

    let mut edges = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let path = edge_config(dir.path(), site, &format!("edge-{i}"), broker.port);
        edges.push(Agent::start(load_edge(&path)).await.unwrap());
    }
    // Readings of every site stored, whoever holds it.
    eventually(Duration::from_secs(30), "readings of every site", || async {
        (latest(&db).await.len() == SITES).then_some(())
    })
    .await;

    // Any instance answers any site's series, and its stream carries zones of sites it does not hold.
    let token = {
        let (path, url) = (dir.path().join("x.db"), schema.url());
        let store = crowdgrid::store::dispatch_db::DispatchDb::open(&path, Some(&url)).await.unwrap();
        token_in(&store.tokens().unwrap(), crowdgrid::auth::Role::Operator, None).await
    };
    let a = &instances[0];
    let foreign: Vec<&String> = balanced.iter().filter(|(_, o)| o.as_str() != "a").map(|(s, _)| s).collect();
    for site in &foreign {
        let url = format!("{}/api/v1/zones/{site}/jetty/series", a.api);
        let points = get_json(&url, &token).await;
        assert!(points.as_array().is_some_and(|p| !p.is_empty()), "instance a serves {site}'s series: {points}");
    }
    let client = reqwest::Client::new();
    let mut stream = client.get(format!("{}/api/v1/events", a.api)).bearer_auth(&token).send().await.unwrap();
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    drop(stream);
    for site in &foreign {
        assert!(
            text.contains(&format!("\"site\":\"{site}\"")),
            "instance a's stream carries zone changes of {site}, held by another instance"
        );
    }
    // Each site's jetty (3.2/m² over its 2.5 warning) has its ticket.
    let tickets = || async {
        let rows = db.query("SELECT site, zone, rule, COUNT(*) FROM tickets GROUP BY 1, 2, 3", &[]).await.unwrap();
        rows.iter().map(|r| ((r.get::<_, String>(0), r.get::<_, String>(1)), r.get::<_, i64>(3))).collect::<Vec<_>>()
    };
    eventually(Duration::from_secs(30), "a ticket for every site's jetty", || async {
        let t = tickets().await;
        (t.iter().filter(|((_, z), _)| z == "jetty").count() == SITES).then_some(())
    })
    .await;

    // kill -9 under load.
    let victim = 1;
    let victim_sites: Vec<String> =
        owners(&db).await.into_iter().filter(|(_, o)| *o == instances[victim].name).map(|(s, _)| s).collect();
    assert_eq!(victim_sites.len(), 2);
    let killed_at = Instant::now();
    let killed_ms = chrono::Utc::now().timestamp_millis();
    instances[victim].kill_9();
    let leased = eventually(Duration::from_secs(30), "the killed instance's sites to be taken over", || async {
        let o = owners(&db).await;
        victim_sites.iter().all(|s| o.get(s).is_some_and(|w| *w != "b")).then(|| killed_at.elapsed())
    })
    .await;
    let flowing = eventually(Duration::from_secs(30), "readings of its sites stored again", || async {
        let l = latest(&db).await;
        victim_sites.iter().all(|s| l.get(s).is_some_and(|t| *t > killed_ms + 500)).then(|| killed_at.elapsed())
    })
    .await;
    println!(
        "takeover after kill -9: leases taken in {:.1} s, readings stored again after {:.1} s",
        leased.as_secs_f64(),
        flowing.as_secs_f64()
    );

    // The killed instance comes back and gets its share again.
    instances[victim].start().await;
    eventually(Duration::from_secs(40), "the restarted instance to hold sites again", || async {
        let o = owners(&db).await;
        (o.len() == SITES && o.values().filter(|w| *w == "b").count() == 2).then_some(())
    })
    .await;

    // Drain: every edge's queue empty means every reading was committed and acknowledged.
    for e in &edges {
        let q = e.queue.clone();
        eventually(Duration::from_secs(60), "the edge queues to drain", || async { (q.depth() == 0).then_some(()) })
            .await;
    }
    for e in edges {
        e.stop().await;
    }
    for i in &mut instances {
        i.terminate();
    }
    let mut stored: Vec<(String, i64)> = Vec::new();
    for r in db.query("SELECT source_id, seq FROM readings ORDER BY source_id, ts, seq", &[]).await.unwrap() {
        stored.push((r.get(0), r.get(1)));
    }
    for i in 0..SITES {
        let assigned = assigned_seqs(&dir.path().join(format!("edge-{i}.queue.db")));
        let mine: Vec<(String, i64)> =
            stored.iter().filter(|(s, _)| s.starts_with(&format!("edge-{i}/"))).cloned().collect();
        assert_complete(&mine, &assigned);
    }
    // One ticket per site's jetty, through the kill and the rebalancing.
    for ((site, zone), n) in tickets().await {
        assert_eq!(n, 1, "{site}/{zone} has {n} tickets");
    }
    drop(db);
    schema.drop().await.unwrap();
}
