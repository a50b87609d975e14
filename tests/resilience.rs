//! Broker outages and edge restarts lose nothing: every reading is stored exactly once, in order.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use crowdgrid_edge::agent::Agent;

/// Mosquitto goes away for 30 s while the edge keeps producing; afterwards every reading of every
/// source is stored once (sequence numbers 1..=n with no gap, which also proves the order: the
/// centre drops anything at or below the last stored sequence).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_for_30_s_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(dir.path());
    let prefix = "crowdgrid/v1";
    let loaded = central_external(dir.path(), "127.0.0.1", broker.port, prefix, &format!("central-{}", unique()));
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let edge_id = format!("outage-{}", unique());
    let edge_path = edge_file(dir.path(), &edge_id, broker.port, prefix, &simulated_source(100));
    let edge = Agent::start(load_edge(&edge_path)).await.unwrap();
    let queue = edge.queue.clone();

    let m = central.metrics.clone();
    eventually(Duration::from_secs(20), "readings flowing before the outage", || async {
        (m.readings_stored.get() > 20).then_some(())
    })
    .await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let backlog = queue.depth();
    assert!(backlog > 200, "the edge kept producing into its queue during the outage (depth {backlog})");
    broker.restart();

    eventually(Duration::from_secs(60), "the edge queue to drain", || async { (queue.depth() == 0).then_some(()) })
        .await;
    edge.stop().await;
    assert_eq!(queue.depth(), 0, "everything was acknowledged before the edge stopped");
    let assigned = assigned_seqs(&dir.path().join(format!("{edge_id}.queue.db")));
    let total: i64 = assigned.iter().map(|(_, n)| n).sum();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(30), "the centre to store every reading", || async {
        (m.readings_stored.get() as i64 >= total).then_some(())
    })
    .await;
    central.stop().await;
    assert_complete(&stored_seqs(&db, &format!("{edge_id}/%")), &assigned);
    assert_eq!(m.readings_stored.get() as i64, total, "nothing stored twice");
}

fn spawn_edge(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["edge", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("crowdgrid edge starts")
}

fn queued(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM msgs", [], |r| r.get(0)).unwrap_or(0)
}

/// The edge process is SIGKILLed with a non-empty queue (no broker to send to), restarted once the
/// centre is up, and every reading it ever queued is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_killed_with_a_full_queue_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    let broker_addr = free_loopback_addr_for_test();
    if let crowdgrid::central::config::BrokerConfig::Embedded { listen, .. } = &mut loaded.config.broker {
        *listen = broker_addr;
    }
    let db = loaded.config.store.path.clone();
    let edge_id = format!("restart-{}", unique());
    let edge_path = edge_file(dir.path(), &edge_id, broker_addr.port(), "crowdgrid/v1", &simulated_source(100));
    let queue_db = dir.path().join(format!("{edge_id}.queue.db"));

    // No broker yet: the edge can only queue.
    let mut first = spawn_edge(&edge_path, &dir.path().join("edge-1.log"));
    eventually(Duration::from_secs(20), "the queue to fill", || async { (queued(&queue_db) >= 50).then_some(()) })
        .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let left = queued(&queue_db);
    assert!(left >= 50, "queue survived SIGKILL with {left} readings");

    let central = crowdgrid::central::start(loaded).await.unwrap();
    let mut second = spawn_edge(&edge_path, &dir.path().join("edge-2.log"));
    let m = central.metrics.clone();
    eventually(Duration::from_secs(30), "the backlog to arrive", || async {
        (m.readings_stored.get() as i64 >= left).then_some(())
    })
    .await;
    let status = Command::new("kill").arg("-TERM").arg(second.id().to_string()).status().unwrap();
    assert!(status.success());
    let exit = second.wait().unwrap();
    assert!(exit.success(), "edge exits cleanly on SIGTERM: {exit:?}");
    assert_eq!(queued(&queue_db), 0, "the graceful stop drained the queue");

    let assigned = assigned_seqs(&queue_db);
    let total: i64 = assigned.iter().map(|(_, n)| n).sum();
    eventually(Duration::from_secs(20), "the centre to store every reading", || async {
        (m.readings_stored.get() as i64 >= total).then_some(())
    })
    .await;
    central.stop().await;
    assert_complete(&stored_seqs(&db, &format!("{edge_id}/%")), &assigned);
    assert_eq!(m.readings_stored.get() as i64, total, "nothing stored twice");
}

fn free_loopback_addr_for_test() -> std::net::SocketAddr {
    crowdgrid::central::broker::free_loopback_addr().unwrap()
}
