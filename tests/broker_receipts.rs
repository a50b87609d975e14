//! A publisher without a queue of its own (a third-party feed, `sim-load`) loses nothing when the centre is killed
//! with SIGKILL: the centre acknowledges a reading to the broker only once it is committed, so what it had received
//! but not stored is delivered again from its persistent session when it comes back.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crowdgrid::central::broker::free_loopback_addr;
use crowdgrid_proto::{topic, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const N: u64 = 6000;

fn centre_file(dir: &Path, broker: u16, api: &str) -> std::path::PathBuf {
    let site = root().join("config/west-taihu/site.toml");
    let path = dir.join("central.toml");
    std::fs::write(
        &path,
        format!(
            r#"sites = ["{}"]

[broker]
mode = "external"
host = "127.0.0.1"
port = {broker}
client_id = "receipts-centre"

[edges]
authentication = "off"

[store]
path = "central.db"

[api]
listen = "{api}"
"#,
            site.display()
        ),
    )
    .unwrap();
    path
}

/// The centre process, killed when the test ends however it ends.
struct Centre(std::process::Child);

impl Drop for Centre {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_received_but_not_committed_are_delivered_again_after_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(dir.path());
    let api = free_loopback_addr().unwrap().to_string();
    let config = centre_file(dir.path(), broker.port, &api);
    let log = dir.path().join("centre.log");
    let mut centre = Centre(start_centre_process(&config, &format!("http://{api}"), &log).await);

    let mut o = MqttOptions::new("third-party-feed", "127.0.0.1", broker.port);
    o.set_inflight(100);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let count = acked.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let t = topic::reading("crowdgrid/v1", "west-taihu", "beach");
    let publish = |seqs: std::ops::RangeInclusive<u64>| {
        let (client, t) = (client.clone(), t.clone());
        async move {
            for seq in seqs {
                let now = chrono::Utc::now();
                let mut r =
                    Reading::new("west-taihu", "beach", SourceKind::BaseStation, "feed/cells", now, 800.0, 8000.0, 0.6);
                r.seq = seq;
                client.publish(t.clone(), QoS::AtLeastOnce, false, serde_json::to_vec(&r).unwrap()).await.unwrap();
            }
        }
    };
    // Half in one burst; the centre is killed as soon as it has stored some: the rest of the burst is received (and,
    // before, was acknowledged to the broker) but not committed. The other half is published while it is down.
    publish(1..=N / 2).await;
    let db = dir.path().join("central.db");
    eventually(Duration::from_secs(30), "the first readings stored", || async {
        (!stored_seqs(&db, "feed/%").is_empty()).then_some(())
    })
    .await;
    centre.0.kill().unwrap();
    centre.0.wait().unwrap();
    publish(N / 2 + 1..=N).await;
    eventually(Duration::from_secs(30), "the broker to take every reading", || async {
        (acked.load(Ordering::Relaxed) == N).then_some(())
    })
    .await;
    let at_kill = stored_seqs(&db, "feed/%").len() as u64;
    assert!(at_kill < N, "the centre was killed mid-stream ({at_kill} of {N} stored)");

    let centre = Centre(start_centre_process(&config, &format!("http://{api}"), &log).await);
    let stored = eventually(Duration::from_secs(60), "every reading stored", || async {
        let s = stored_seqs(&db, "feed/%");
        (s.len() as u64 >= N).then_some(s)
    })
    .await;
    let _ = std::process::Command::new("kill").arg("-TERM").arg(centre.0.id().to_string()).status();
    drop(centre);
    assert_complete(&stored, &[("feed/cells".to_string(), N as i64)]);
}
