//! Three centre instances (processes of the real binary) share six sites through leases in PostgreSQL, behind one
//! Mosquitto; one edge per site publishes with store-and-forward. Checked: every site is held by exactly one
//! instance; any instance's API answers the series of any site and its event stream carries zone changes of sites
//! it does not hold; `kill -9` of the busiest instance under load → its sites are taken over (the takeover time is
//! printed), the ticket each site had stays one ticket; the killed instance restarts and gets sites back; once the
//! edges' queues drain, every reading of every source is stored exactly once (sequence numbers 1..=n, no gap).
//! The same on a clustered broker (three NATS servers with JetStream speaking MQTT).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use crowdgrid::store::pg_schema::TestSchema;
use crowdgrid_edge::agent::Agent;

const SITES: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_sites_and_survive_a_kill_9() {
    let schema = TestSchema::create().await.expect("PostgreSQL for tests (scripts/test-postgres.sh)");
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let sites = write_sites(dir.path(), SITES);
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
    // Its edge list has the edges of the sites it does not hold, as their owners last heard them.
    eventually(Duration::from_secs(10), "instance a to list every site's edge", || async {
        let listed = get_json(&format!("{}/api/v1/edges", a.api), &token).await;
        let sites: Vec<&str> = listed.as_array()?.iter().filter_map(|e| e["site"].as_str()).collect();
        foreign.iter().all(|s| sites.contains(&s.as_str())).then_some(())
    })
    .await;
    // An engineer's backtest on instance a replays a site a does not hold (the readings are in the shared store).
    let engineer = {
        let (path, url) = (dir.path().join("x.db"), schema.url());
        let store = crowdgrid::store::dispatch_db::DispatchDb::open(&path, Some(&url)).await.unwrap();
        token_in(&store.tokens().unwrap(), crowdgrid::auth::Role::Engineer, None).await
    };
    let (status, report) =
        post_json(&format!("{}/api/v1/backtest", a.api), &engineer, serde_json::json!({ "site": foreign[0] })).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report["readings"].as_u64().is_some_and(|n| n > 0),
        "the backtest replays {}'s readings: {report}",
        foreign[0]
    );
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
    jetty_tickets(&db, SITES).await;
    // … and instance a's ticket list has them all, whoever raised them.
    let listed = get_json(&format!("{}/api/v1/tickets", instances[0].api), &token).await;
    for site in &foreign {
        let has =
            listed.as_array().is_some_and(|t| t.iter().any(|t| t["site"] == site.as_str() && t["zone"] == "jetty"));
        assert!(has, "instance a lists {site}'s jetty ticket: {listed}");
    }

    // kill -9 under load.
    kill_9_and_time(&mut instances[1], &db, 2).await;

    // The killed instance comes back and gets its share again.
    instances[1].start().await;
    eventually(Duration::from_secs(40), "the restarted instance to hold sites again", || async {
        let o = owners(&db).await;
        (o.len() == SITES && o.values().filter(|w| *w == "b").count() == 2).then_some(())
    })
    .await;

    drain_and_check(edges, &mut instances, &db, dir.path(), SITES).await;
    drop(db);
    schema.drop().await.unwrap();
}

/// Every site's jetty (3.2/m² over its 2.5 warning) has its ticket.
async fn jetty_tickets(db: &tokio_postgres::Client, sites: usize) {
    eventually(Duration::from_secs(30), "a ticket for every site's jetty", || async {
        (tickets(db).await.iter().filter(|((_, z), _)| z == "jetty").count() == sites).then_some(())
    })
    .await;
}

/// Tickets per (site, zone), whatever their state.
async fn tickets(db: &tokio_postgres::Client) -> Vec<((String, String), i64)> {
    let rows = db.query("SELECT site, zone, rule, COUNT(*) FROM tickets GROUP BY 1, 2, 3", &[]).await.unwrap();
    rows.iter().map(|r| ((r.get::<_, String>(0), r.get::<_, String>(1)), r.get::<_, i64>(3))).collect()
}

/// Kills `victim` with SIGKILL, waits until each of its `held` sites is leased by another instance and stored
/// into again, and prints both times.
async fn kill_9_and_time(victim: &mut Instance, db: &tokio_postgres::Client, held: usize) {
    let name = victim.name.clone();
    let victim_sites: Vec<String> = owners(db).await.into_iter().filter(|(_, o)| *o == name).map(|(s, _)| s).collect();
    assert_eq!(victim_sites.len(), held, "{name} holds {victim_sites:?}");
    let killed_at = Instant::now();
    let killed_ms = chrono::Utc::now().timestamp_millis();
    victim.kill_9();
    let leased = eventually(Duration::from_secs(30), "the killed instance's sites to be taken over", || async {
        let o = owners(db).await;
        victim_sites.iter().all(|s| o.get(s).is_some_and(|w| *w != name)).then(|| killed_at.elapsed())
    })
    .await;
    let flowing = eventually(Duration::from_secs(30), "readings of its sites stored again", || async {
        let l = latest(db).await;
        victim_sites.iter().all(|s| l.get(s).is_some_and(|t| *t > killed_ms + 500)).then(|| killed_at.elapsed())
    })
    .await;
    println!(
        "takeover after kill -9 of {name}: leases taken in {:.1} s, readings stored again after {:.1} s",
        leased.as_secs_f64(),
        flowing.as_secs_f64()
    );
}

/// Waits for every edge's queue to drain (every reading committed and acknowledged), stops everything, then checks
/// that each source's readings are stored exactly once (1..=n, no gap) and that each (site, zone, rule) had one
/// ticket through the kill and the rebalancing.
async fn drain_and_check(
    edges: Vec<Agent>,
    instances: &mut [Instance],
    db: &tokio_postgres::Client,
    dir: &std::path::Path,
    sites: usize,
) {
    for e in &edges {
        let q = e.queue.clone();
        eventually(Duration::from_secs(60), "the edge queues to drain", || async { (q.depth() == 0).then_some(()) })
            .await;
    }
    for e in edges {
        e.stop().await;
    }
    for i in instances.iter_mut() {
        i.terminate();
    }
    let mut stored: Vec<(String, i64)> = Vec::new();
    for r in db.query("SELECT source_id, seq FROM readings ORDER BY source_id, ts, seq", &[]).await.unwrap() {
        stored.push((r.get(0), r.get(1)));
    }
    for i in 0..sites {
        let assigned = assigned_seqs(&dir.join(format!("edge-{i}.queue.db")));
        let mine: Vec<(String, i64)> =
            stored.iter().filter(|(s, _)| s.starts_with(&format!("edge-{i}/"))).cloned().collect();
        assert_complete(&mine, &assigned);
    }
    for ((site, zone), n) in tickets(db).await {
        assert_eq!(n, 1, "{site}/{zone} has {n} tickets");
    }
}

/// The same on a clustered broker: three NATS servers with JetStream speaking MQTT, instance a on node 0, b on
/// node 1, the edges on node 2. When a is killed, b takes its sites over on its own node: the sites' sessions (and
/// what was queued in them) follow through JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_nats_cluster_a_killed_instance_s_sites_move_to_another_node() {
    const NATS_SITES: usize = 4;
    let schema = TestSchema::create().await.expect("PostgreSQL for tests (scripts/test-postgres.sh)");
    let dir = tempfile::tempdir().unwrap();
    let nats = NatsCluster::start(dir.path()).await;
    let sites = write_sites(dir.path(), NATS_SITES);
    let db = pg(&schema.url()).await;
    let mut instances: Vec<Instance> = ["a", "b"]
        .iter()
        .zip(&nats.mqtt)
        .map(|(n, port)| Instance::new(dir.path(), n, &sites, *port, &schema.url()))
        .collect();
    for i in &mut instances {
        i.start().await;
    }
    eventually(Duration::from_secs(60), "the sites to be shared two by two", || async {
        let o = owners(&db).await;
        (o.len() == NATS_SITES && o.values().filter(|w| *w == "a").count() == 2).then_some(())
    })
    .await;
    let mut edges = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let path = edge_config(dir.path(), site, &format!("edge-{i}"), nats.mqtt[2]);
        edges.push(Agent::start(load_edge(&path)).await.unwrap());
    }
    eventually(Duration::from_secs(60), "readings of every site", || async {
        (latest(&db).await.len() == NATS_SITES).then_some(())
    })
    .await;
    jetty_tickets(&db, NATS_SITES).await;
    kill_9_and_time(&mut instances[0], &db, 2).await;
    let o = owners(&db).await;
    assert!(o.values().all(|w| w == "b"), "b holds every site: {o:?}");
    drain_and_check(edges, &mut instances, &db, dir.path(), NATS_SITES).await;
    drop(db);
    schema.drop().await.unwrap();
}
