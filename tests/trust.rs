//! The trusted data path, tried as an attacker and as an operator pulling the plug would: the centre as
//! shipped (`[edges] authentication = "required"`), real brokers, real edges.
//!
//! - Nobody without a credential can connect to the embedded broker; with one, an edge can say only what is its
//!   own: forged, foreign, spoofed, replayed-elsewhere and revoked messages are refused and counted by reason,
//!   and the good readings around them are stored.
//! - `kill -9` of the centre in the middle of a stream (embedded broker and Mosquitto), and SIGTERM under a
//!   flood: every reading the edge produced is stored exactly once, because the edge deletes a reading only on the centre's commit
//!   acknowledgement.
//! - Reordered and gapped sequences are all stored; the gaps are reported per source.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use common::*;
use crowdgrid::auth::edge_credentials::{Authentication, EdgeCredentials};
use crowdgrid::metrics::Metrics;
use crowdgrid_proto::signed::{self, Credential};
use crowdgrid_proto::{topic, EdgeState, EdgeStatus, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// A client logged in as `user`/`pass` (or anonymous); `Err` if the broker refuses the login.
async fn connect(port: u16, client_id: &str, login: Option<(&str, &str)>) -> Result<AsyncClient, String> {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(2 << 20, 2 << 20);
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (client, mut el) = AsyncClient::new(o, 100);
    let first = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => return Ok(a),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no CONNACK".to_string())?;
    first?;
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    Ok(client)
}

fn reading(zone: &str, source_id: &str, seq: u64, epoch: u64) -> Reading {
    let mut r = Reading::new("west-taihu", zone, SourceKind::Gate, source_id, Utc::now(), 100.0, 1000.0, 0.9);
    r.seq = seq;
    r.epoch = epoch;
    r
}

fn rejected(m: &Metrics, reason: &str) -> u64 {
    m.readings_rejected.with_label_values(&[reason]).get()
}

/// Waits until the counter of `reason` reaches `n`.
async fn refused(m: &Metrics, reason: &str, n: u64) {
    eventually(Duration::from_secs(10), &format!("{n} × {reason}"), || async {
        (rejected(m, reason) >= n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_known_edges_can_speak_and_only_for_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.edges.authentication = Authentication::Required;
    loaded.config.edges.refresh_s = 1;
    let db = loaded.config.store.path.clone();
    let creds = EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db)).unwrap();
    let edge1 = creds.create("west-taihu", "edge-1").await.unwrap();
    let boai = creds.create("boai-school", "cam-edge").await.unwrap();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let port = central.mqtt.1;
    let m = central.metrics.clone();
    let prefix = "crowdgrid/v1";
    let beach = topic::reading(prefix, "west-taihu", "beach");
    let seal = |c: &Credential, who: &str, t: &str, body: &[u8]| signed::seal(c, who, t, body);
    let json = |r: &Reading| serde_json::to_vec(r).unwrap();

    // Nobody gets in anonymously, with a made-up password, or with a real one under another edge's name.
    assert!(connect(port, "anon", None).await.is_err(), "anonymous login refused");
    assert!(connect(port, "edge-1", Some(("west-taihu/edge-1", "1.00"))).await.is_err(), "wrong password");
    assert!(connect(port, "edge-2", Some(("west-taihu/edge-2", &edge1.secret))).await.is_err(), "another edge's name");
    assert!(
        connect(port, "crowdgrid-central", Some(("west-taihu/edge-1", &edge1.secret))).await.is_err(),
        "the centre's id"
    );
    let c = connect(port, "edge-1-attack", Some(("west-taihu/edge-1", &edge1.secret))).await.expect("edge-1 logs in");

    // Good readings from edge-1 around every attack: all of them must be stored.
    let good = |seq| json(&reading("beach", "edge-1/gate", seq, 0));
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &good(1))).await.unwrap();
    // Unsigned (what one mosquitto_pub did on main): refused.
    c.publish(&beach, QoS::AtLeastOnce, false, json(&reading("beach", "edge-1/gate", 50, 0))).await.unwrap();
    // Signed, but for another edge's source.
    let foreign = json(&reading("beach", "edge-9/cells", 1, 0));
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &foreign)).await.unwrap();
    // Signed, with a huge epoch (would make every later honest reading a "duplicate").
    let huge = json(&reading("beach", "edge-1/gate", 1, u64::MAX / 2));
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &huge)).await.unwrap();
    // Signed for the beach, replayed onto the jetty's topic.
    let jetty = topic::reading(prefix, "west-taihu", "jetty");
    c.publish(&jetty, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &good(2))).await.unwrap();
    // Claiming to be edge-2 with edge-1's key.
    let as2 = json(&reading("beach", "edge-2/gate", 1, 0));
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-2", &beach, &as2)).await.unwrap();
    // A status for edge-2, signed by edge-1: spoofed.
    let st2 = topic::edge_status(prefix, "west-taihu", "edge-2");
    let spoof = serde_json::to_vec(&EdgeStatus::offline("edge-2", "west-taihu")).unwrap();
    c.publish(&st2, QoS::AtLeastOnce, true, seal(&edge1, "edge-1", &st2, &spoof)).await.unwrap();
    // Planted evidence: a "JPEG" for a ticket that does not exist.
    let ev = topic::evidence(prefix, "west-taihu", "beach", 999);
    c.publish(&ev, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &ev, &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]))
        .await
        .unwrap();
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &good(2))).await.unwrap();
    // Boai's camera edge logs in fine, but its credential says nothing for West Taihu.
    let b = connect(port, "cam-edge", Some(("boai-school/cam-edge", &boai.secret))).await.expect("boai edge logs in");
    let cross = json(&reading("beach", "cam-edge/cam", 1, 0));
    b.publish(&beach, QoS::AtLeastOnce, false, seal(&boai, "cam-edge", &beach, &cross)).await.unwrap();
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &good(3))).await.unwrap();

    for (reason, n) in [
        ("unauthenticated", 1),
        ("foreign_source", 1),
        ("bad_sequence", 1),
        ("bad_signature", 1),
        ("unknown_credential", 2),
        ("foreign_status", 1),
        ("evidence_no_ticket", 1),
    ] {
        refused(&m, reason, n).await;
    }
    eventually(Duration::from_secs(10), "the three good readings stored", || async {
        (m.readings_stored.get() == 3).then_some(())
    })
    .await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seqs: Vec<i64> = conn
        .prepare("SELECT seq FROM readings ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seqs, vec![1, 2, 3], "only edge-1's own signed readings");
    let evidence: i64 = conn.query_row("SELECT COUNT(*) FROM evidence", [], |r| r.get(0)).unwrap();
    assert_eq!(evidence, 0, "nothing planted");
    let tok = admin(&db).await;
    let api = format!("http://{}", central.api_addr);
    let edges = get_json(&format!("{api}/api/v1/edges"), &tok).await;
    assert!(edges.as_array().unwrap().iter().all(|e| e["edge_id"] != "edge-2"), "no spoofed edge: {edges}");

    // Eavesdropping: an anonymous subscriber never gets a connection to subscribe on (see above); a worker
    // topic is only reachable with a credential.
    // Revocation takes effect without a restart: the open connection's next message, and the next login.
    creds.revoke("west-taihu", "edge-1", None).await.unwrap();
    let before = rejected(&m, "unknown_credential");
    eventually(Duration::from_secs(10), "the revoked credential refused", || async {
        c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &good(4))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        (rejected(&m, "unknown_credential") > before).then_some(())
    })
    .await;
    assert!(connect(port, "edge-1", Some(("west-taihu/edge-1", &edge1.secret))).await.is_err(), "login refused");
    // From then on nothing it sends is stored (the loop above may have got one in before the reload).
    let stored_then = m.readings_stored.get();
    let refused_then = rejected(&m, "unknown_credential");
    c.publish(&beach, QoS::AtLeastOnce, false, seal(&edge1, "edge-1", &beach, &good(5))).await.unwrap();
    refused(&m, "unknown_credential", refused_then + 1).await;
    assert_eq!(m.readings_stored.get(), stored_then);
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_and_gapped_sequences_are_stored_and_gaps_reported() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = central_embedded(dir.path());
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let c = connect(central.mqtt.1, "reorder", None).await.unwrap();
    let beach = topic::reading("crowdgrid/v1", "west-taihu", "beach");
    // A publisher that reconnected and resent out of order, with 4 and 8 never arriving.
    for seq in [1u64, 2, 6, 7, 3, 5, 9, 3, 1] {
        let r = reading("beach", "pub-1/gate", seq, 0);
        c.publish(&beach, QoS::AtLeastOnce, false, serde_json::to_vec(&r).unwrap()).await.unwrap();
    }
    let m = central.metrics.clone();
    eventually(Duration::from_secs(10), "7 stored, 2 duplicates", || async {
        (m.readings_stored.get() == 7 && m.readings_duplicate.get() == 2).then_some(())
    })
    .await;
    assert_eq!(m.readings_reordered.get(), 2, "3 and 5 came after 7");
    let tok = admin(&db).await;
    let seq = get_json(&format!("http://{}/api/v1/sequences", central.api_addr), &tok).await;
    let s = seq.as_array().unwrap().iter().find(|s| s["source_id"] == "pub-1/gate").unwrap().clone();
    assert_eq!((s["contiguous"].as_u64(), s["highest"].as_u64(), s["missing"].as_u64()), (Some(3), Some(9), Some(2)));
    // A grid worker may not read it.
    let w = token(&db, crowdgrid::auth::Role::GridWorker, Some("liu-fang")).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{}/api/v1/sequences", central.api_addr))
        .bearer_auth(&w)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    central.stop().await;
    // The gap survives a restart: 4 arriving later is stored and closes part of it.
    let mut loaded = central_embedded(dir.path());
    loaded.config.store.path = db.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let c = connect(central.mqtt.1, "reorder-2", None).await.unwrap();
    for seq in [4u64, 6] {
        let r = reading("beach", "pub-1/gate", seq, 0);
        c.publish(&beach, QoS::AtLeastOnce, false, serde_json::to_vec(&r).unwrap()).await.unwrap();
    }
    let m = central.metrics.clone();
    eventually(Duration::from_secs(10), "4 stored, 6 a duplicate after the restart", || async {
        (m.readings_stored.get() == 1 && m.readings_duplicate.get() == 1).then_some(())
    })
    .await;
    let seq = get_json(&format!("http://{}/api/v1/sequences", central.api_addr), &tok).await;
    let s = seq.as_array().unwrap().iter().find(|s| s["source_id"] == "pub-1/gate").unwrap().clone();
    assert_eq!((s["contiguous"].as_u64(), s["missing"].as_u64()), (Some(7), Some(1)), "only 8 is missing: {s}");
    central.stop().await;
}

fn write_central(dir: &Path, broker: &str, api: u16) -> std::path::PathBuf {
    let path = dir.join("central.toml");
    std::fs::write(
        &path,
        format!(
            "sites = [\"{}\"]\n{broker}\n[store]\npath = \"{}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n[edges]\nrefresh_s = 1\n",
            root().join("config/west-taihu/site.toml").display(),
            dir.join("central.db").display(),
        ),
    )
    .unwrap();
    path
}

/// Every `(source_id, seq)` stored, and whether each source's seqs are exactly 1..=n.
fn stored(db: &Path) -> Vec<(String, i64, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT source_id, COUNT(*), MAX(seq) FROM readings GROUP BY source_id ORDER BY source_id")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

async fn kill_nine_loses_nothing(external: Option<(&str, u16)>, signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let api_port = crowdgrid::central::broker::free_loopback_addr().unwrap().port();
    let api = format!("http://127.0.0.1:{api_port}");
    let prefix = format!("crowdgrid-kill/{}", unique());
    let (broker, port) = match external {
        Some((host, port)) => (
            format!(
                "[broker]\nmode = \"external\"\nhost = \"{host}\"\nport = {port}\nclient_id = \"kill-{}\"\ntopic_prefix = \"{prefix}\"",
                unique()
            ),
            port,
        ),
        None => {
            let port = crowdgrid::central::broker::free_loopback_addr().unwrap().port();
            (format!("[broker]\nmode = \"embedded\"\nlisten = \"127.0.0.1:{port}\"\ntopic_prefix = \"{prefix}\""), port)
        }
    };
    let config = write_central(dir.path(), &broker, api_port);
    let db = dir.path().join("central.db");
    // The edge's credential, issued before the centre starts (same database and master key).
    let cred = EdgeCredentials::open(&db, &dir.path().join("edge-master.key"))
        .unwrap()
        .create("west-taihu", "kill-edge")
        .await
        .unwrap();
    let mut centre = start_centre_process(&config, &api, &dir.path().join("c1.log")).await;

    // A fast stream (2 zones every 2 ms, plus the fused series): thousands of readings a second, so some are
    // always between the broker and the centre's commit when the centre is killed.
    let edge_path = edge_file(dir.path(), "kill-edge", port, &prefix, &simulated_source(2));
    let mut edge = load_edge(&edge_path);
    let queue_file = edge.config.queue.path.clone();
    edge.config.mqtt.credential = Some(cred);
    edge.config.mqtt.commit_timeout_s = 2;
    let agent = crowdgrid_edge::agent::Agent::start(edge).await.unwrap();
    // Let the stream run, then kill -9 the centre in the middle of it, twice.
    for round in 0..2 {
        eventually(Duration::from_secs(30), "readings stored", || async {
            let n: i64 = stored(&db).iter().map(|s| s.1).sum();
            (n > 2000 * (round + 1)).then_some(())
        })
        .await;
        let _ = Command::new("kill").args(["-s", signal]).arg(centre.id().to_string()).status();
        centre.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        centre = start_centre_process(&config, &api, &dir.path().join(format!("c{}.log", round + 2))).await;
    }
    let q = agent.queue.clone();
    eventually(Duration::from_secs(60), "the edge caught up after the restarts", || async {
        (q.depth() < 50).then_some(())
    })
    .await;
    // Stop producing: the edge drains what is left (within its 5 s grace) once the centre acknowledges it.
    agent.stop().await;
    assert_eq!(q.depth(), 0, "every reading acknowledged by the centre");
    let _ = Command::new("kill").arg("-TERM").arg(centre.id().to_string()).status();
    assert!(centre.wait().unwrap().success());
    // What the edge produced: the next seq its queue would assign, per source.
    let produced: Vec<(String, i64)> = rusqlite::Connection::open(&queue_file)
        .unwrap()
        .prepare("SELECT source_id, next_seq - 1 FROM seqs ORDER BY source_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rows = stored(&db);
    assert!(produced.len() >= 2, "{produced:?}");
    for (source, n) in &produced {
        let (_, count, max) = rows.iter().find(|r| &r.0 == source).unwrap_or_else(|| panic!("{source} stored"));
        assert_eq!((*count, *max), (*n, *n), "{source}: all {n} produced readings stored exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_of_the_centre_loses_no_reading_with_the_embedded_broker() {
    kill_nine_loses_nothing(None, "KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_the_centre_under_a_flood_loses_no_reading() {
    kill_nine_loses_nothing(None, "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_of_the_centre_loses_no_reading_with_mosquitto() {
    kill_nine_loses_nothing(Some(("127.0.0.1", 1883)), "KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_edge_runs_end_to_end_and_its_status_is_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.edges.authentication = Authentication::Required;
    let db = loaded.config.store.path.clone();
    let creds = EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db)).unwrap();
    let cred = creds.create("west-taihu", "edge-s").await.unwrap();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let path = edge_file(dir.path(), "edge-s", central.mqtt.1, "crowdgrid/v1", &simulated_source(100));
    std::fs::write(dir.path().join("edge-s.cred"), format!("{}\n", cred.secret)).unwrap();
    let text =
        std::fs::read_to_string(&path).unwrap().replace("[mqtt]\n", "[mqtt]\ncredential_file = \"edge-s.cred\"\n");
    std::fs::write(&path, text).unwrap();
    let agent = crowdgrid_edge::agent::Agent::start(load_edge(&path)).await.unwrap();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(20), "signed readings stored and acknowledged", || async {
        (m.readings_stored.get() > 20 && m.acks_sent.get() > 0 && agent.queue.depth() < 10).then_some(())
    })
    .await;
    let tok = admin(&db).await;
    let edges = get_json(&format!("http://{}/api/v1/edges", central.api_addr), &tok).await;
    let e = edges.as_array().unwrap().iter().find(|e| e["edge_id"] == "edge-s").cloned().expect("listed");
    assert_eq!(e["state"], serde_json::to_value(EdgeState::Online).unwrap(), "{e}");
    assert_eq!(e["acks_refused"], 0, "{e}");
    let total_rejected: u64 = ["unauthenticated", "bad_signature", "unknown_credential", "foreign_source"]
        .iter()
        .map(|r| rejected(&m, r))
        .sum();
    assert_eq!(total_rejected, 0, "nothing the real edge sends is refused");
    agent.stop().await;
    central.stop().await;
}
