//! Tests of [`super`] (publisher.rs).
//! Against the real Mosquitto on 127.0.0.1:1883, each test under its own random topic prefix.

use super::*;
use crate::config::{Overflow, QueueConfig};
use crowdgrid_proto::{Reading, SourceKind};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const HOST: &str = "127.0.0.1";
const PORT: u16 = 1883;
const WAIT: Duration = Duration::from_secs(30);

fn reading(i: usize) -> Reading {
    Reading {
        site: "site-a".into(),
        zone: ["north", "south"][i % 2].into(),
        source: SourceKind::Simulated,
        source_id: "edge-1/sim".into(),
        ts: Utc::now(),
        seq: 0,
        epoch: 0,
        count: i as f64,
        area_m2: 1000.0,
        density: i as f64 / 1000.0,
        confidence: 0.5,
        classes: None,
        inflow_per_min: None,
        outflow_per_min: None,
        conflict: None,
        tracked: None,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    prefix: String,
    queue: QueueHandle,
    settings: PublisherSettings,
    status_topic: String,
}

fn fixture(port: u16, inflight: u16) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("crowdgrid-test/{}", rand::random::<u64>());
    let cfg = QueueConfig {
        path: dir.path().join("queue.db"),
        max_bytes: 64 << 20,
        overflow: Overflow::DropOldest,
        inflight,
    };
    let queue = QueueHandle::open(&cfg, &prefix).unwrap();
    let mqtt = MqttConfig {
        host: HOST.into(),
        port,
        client_id: Some(format!("edge-test-{}", rand::random::<u64>())),
        topic_prefix: prefix.clone(),
        keep_alive_s: 5,
        max_backoff_s: 1,
        // A bare broker, no centre: the PUBACK is the end of the road (one test below plays the centre).
        delete_on: DeleteOn::Puback,
        ..MqttConfig::default()
    };
    let settings = PublisherSettings {
        mqtt,
        edge_id: "edge-1".into(),
        site_id: "site-a".into(),
        inflight,
        drain_grace: Duration::from_secs(3),
    };
    let status_topic = topic::edge_status(&prefix, "site-a", "edge-1");
    Fixture { _dir: dir, prefix, queue, settings, status_topic }
}

/// A client subscribed (SUBACK received) to `{prefix}/#`, forwarding `(topic, payload)` of every publish.
async fn subscribe(
    prefix: &str,
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>, tokio::task::JoinHandle<()>) {
    let mut o = MqttOptions::new(format!("sub-{}", rand::random::<u64>()), HOST, PORT);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    client.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subacked_tx, subacked_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut subacked = Some(subacked_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = subacked.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => sleep(Duration::from_millis(100)).await,
            }
        }
    });
    timeout(Duration::from_secs(5), subacked_rx).await.expect("SUBACK in time").unwrap();
    (client, rx, task)
}

/// Receives until a status in `state` arrives; `clean` requires the publisher's own (versioned) message
/// rather than the Last Will. Readings received meanwhile are appended to `seqs`.
async fn next_status(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    status_topic: &str,
    state: EdgeState,
    seqs: &mut Vec<u64>,
) -> EdgeStatus {
    loop {
        let (t, payload) = rx.recv().await.expect("subscriber alive");
        if t == status_topic {
            if payload.is_empty() {
                continue;
            }
            let s: EdgeStatus = serde_json::from_slice(&payload).unwrap();
            if s.state == state && !s.version.is_empty() {
                return s;
            }
        } else {
            let r: Reading = serde_json::from_slice(&payload).unwrap();
            seqs.push(r.seq);
        }
    }
}

/// Receives readings until every seq up to `n` has been seen; returns how many online statuses came too.
async fn readings_until(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    prefix: &str,
    n: u64,
    seqs: &mut Vec<u64>,
) -> usize {
    let mut onlines = 0;
    while seqs.iter().copied().max().unwrap_or(0) < n {
        let (t, payload) = rx.recv().await.expect("subscriber alive");
        if topic::parse_reading(prefix, &t).is_some() {
            let r: Reading = serde_json::from_slice(&payload).unwrap();
            seqs.push(r.seq);
        } else if topic::parse_edge_status(prefix, &t).is_some() && !payload.is_empty() {
            let s: EdgeStatus = serde_json::from_slice(&payload).unwrap();
            onlines += usize::from(s.state == EdgeState::Online);
        }
    }
    onlines
}

/// Removes the retained status so the broker does not keep test data.
async fn clear_retained(client: &AsyncClient, rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>, status_topic: &str) {
    client.publish(status_topic, QoS::AtLeastOnce, true, Vec::new()).await.unwrap();
    let cleared = timeout(Duration::from_secs(5), async {
        while let Some((t, payload)) = rx.recv().await {
            if t == status_topic && payload.is_empty() {
                return;
            }
        }
    });
    cleared.await.expect("retained status cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_every_reading_once_in_order() {
    let f = fixture(PORT, 16);
    let (sub, mut rx, sub_task) = subscribe(&f.prefix).await;
    f.queue.push((0..250).map(reading).collect()).await.unwrap();
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), Health::new(), shutdown.clone()));
    // The second half arrives while the publisher runs (the notify path).
    for chunk in 0..5 {
        let start = 250 + chunk * 50;
        f.queue.push((start..start + 50).map(reading).collect()).await.unwrap();
    }

    let mut seqs = Vec::new();
    let online = timeout(WAIT, next_status(&mut rx, &f.status_topic, EdgeState::Online, &mut seqs))
        .await
        .expect("online status in time");
    assert_eq!(online.edge_id, "edge-1");
    assert_eq!(online.version, env!("CARGO_PKG_VERSION"));
    timeout(WAIT, readings_until(&mut rx, &f.prefix, 500, &mut seqs)).await.expect("all readings in time");
    assert_eq!(seqs, (1..=500).collect::<Vec<u64>>(), "every reading exactly once, in seq order");

    timeout(Duration::from_secs(5), async {
        while f.queue.depth() > 0 {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("queue empties once acknowledged");

    shutdown.cancel();
    timeout(Duration::from_secs(10), publisher).await.expect("publisher stops").unwrap().unwrap();
    let offline = timeout(Duration::from_secs(5), next_status(&mut rx, &f.status_topic, EdgeState::Offline, &mut seqs))
        .await
        .expect("offline status on shutdown");
    assert_eq!(offline.queue_depth, 0);
    assert_eq!(seqs.len(), 500, "no reading published twice");
    assert_eq!(f.queue.depth(), 0);

    clear_retained(&sub, &mut rx, &f.status_topic).await;
    sub_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_from_the_oldest_unacked_after_a_takeover() {
    let f = fixture(PORT, 4);
    let (sub, mut rx, sub_task) = subscribe(&f.prefix).await;
    f.queue.push((0..2000).map(reading).collect()).await.unwrap();
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), Health::new(), shutdown.clone()));
    let mut seqs = Vec::new();
    let mut onlines = timeout(WAIT, readings_until(&mut rx, &f.prefix, 100, &mut seqs)).await.expect("first readings");

    // Another client with the same id takes the session over: the publisher is cut off mid-stream.
    let mut o = MqttOptions::new(f.settings.mqtt.client_id.clone().unwrap(), HOST, PORT);
    o.set_keep_alive(Duration::from_secs(5));
    let (_intruder, mut eventloop) = AsyncClient::new(o, 10);
    timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Event::Incoming(Packet::ConnAck(_))) = eventloop.poll().await {
                return;
            }
        }
    })
    .await
    .expect("intruder connects");
    drop(eventloop);

    onlines +=
        timeout(WAIT, readings_until(&mut rx, &f.prefix, 2000, &mut seqs)).await.expect("all readings after reconnect");
    assert!(onlines >= 2, "the publisher reconnected and said online again ({onlines})");
    // What the centre keeps: each reading whose seq is above the last one stored.
    let mut last = 0;
    let kept: Vec<u64> = seqs
        .iter()
        .copied()
        .filter(|&s| {
            let keep = s > last;
            last = last.max(s);
            keep
        })
        .collect();
    assert_eq!(kept, (1..=2000).collect::<Vec<u64>>(), "nothing lost, order kept after dedup");

    shutdown.cancel();
    timeout(Duration::from_secs(10), publisher).await.expect("publisher stops").unwrap().unwrap();
    assert_eq!(f.queue.depth(), 0);
    clear_retained(&sub, &mut rx, &f.status_topic).await;
    sub_task.abort();
}

#[tokio::test]
async fn stops_promptly_without_a_broker_and_keeps_the_queue() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind((HOST, 0)).unwrap().local_addr().unwrap().port();
    let f = fixture(port, 8);
    f.queue.push((0..10).map(reading).collect()).await.unwrap();
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), Health::new(), shutdown.clone()));
    sleep(Duration::from_millis(700)).await;
    shutdown.cancel();
    timeout(Duration::from_secs(2), publisher).await.expect("stops within 2 s").unwrap().unwrap();
    assert_eq!(f.queue.depth(), 10);
}

/// The signed readings of `prefix` in `rx` until `want` returns true, as `(seq, payload)`; ack messages skipped.
async fn signed_readings(
    rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    prefix: &str,
    key: &crowdgrid_proto::signed::Credential,
    seqs: &mut Vec<u64>,
    want: impl Fn(&[u64]) -> bool,
) {
    while !want(seqs) {
        let (t, payload) = rx.recv().await.expect("subscriber alive");
        if topic::parse_reading(prefix, &t).is_some() {
            let frame = crowdgrid_proto::signed::open(&payload).unwrap().expect("a signed frame");
            assert!(frame.verify(key.key(), &t), "signed with the edge's credential for its topic");
            let r: Reading = serde_json::from_slice(frame.body).unwrap();
            seqs.push(r.seq);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_only_what_the_centre_acknowledges_and_resends_the_rest() {
    use crowdgrid_proto::signed::{self, Credential};
    let mut f = fixture(PORT, 16);
    let cred = Credential::parse(&format!("1.{}", "ab".repeat(32))).unwrap();
    f.settings.mqtt.delete_on = DeleteOn::Commit;
    f.settings.mqtt.commit_timeout_s = 1;
    f.settings.mqtt.credential = Some(cred.clone());
    let (sub, mut rx, sub_task) = subscribe(&f.prefix).await;
    f.queue.push((0..20).map(reading).collect()).await.unwrap();
    let epoch = f.queue.epoch();
    let health = Health::new();
    let shutdown = CancellationToken::new();
    let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), health.clone(), shutdown.clone()));
    let mut seqs = Vec::new();
    timeout(WAIT, signed_readings(&mut rx, &f.prefix, &cred, &mut seqs, |s| s.len() >= 20)).await.expect("sent");
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());

    let ack_topic = topic::edge_ack(&f.prefix, "site-a", "edge-1");
    let ack = |range: std::ops::RangeInclusive<u64>| {
        let items: Vec<(&str, u64, u64)> = range.map(|q| ("edge-1/sim", epoch, q)).collect();
        serde_json::to_vec(&crowdgrid_proto::ack::CommitAck::from_triples(items)).unwrap()
    };
    // Forged acknowledgements first: unsigned, and signed by someone claiming to be the edge. Then the centre's
    // for 1..=10. Same connection, so once the real one has acted the forged ones were handled before it.
    sub.publish(&ack_topic, QoS::AtLeastOnce, false, ack(1..=20)).await.unwrap();
    sub.publish(&ack_topic, QoS::AtLeastOnce, false, signed::seal(&cred, "edge-1", &ack_topic, &ack(1..=20)))
        .await
        .unwrap();
    sub.publish(&ack_topic, QoS::AtLeastOnce, false, signed::seal(&cred, signed::CENTRE, &ack_topic, &ack(1..=10)))
        .await
        .unwrap();
    timeout(WAIT, async {
        while f.queue.depth() != 10 {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("exactly the acknowledged ten deleted");
    assert_eq!(health.delivery().1, 2, "both forged acknowledgements refused and counted");

    // The other ten were PUBACKed by the broker but never acknowledged: sent again after commit_timeout_s.
    let mut again = Vec::new();
    timeout(WAIT, signed_readings(&mut rx, &f.prefix, &cred, &mut again, |s| (11..=20).all(|q| s.contains(&q))))
        .await
        .expect("unacknowledged readings resent");
    assert!(!again.iter().any(|q| *q <= 10), "acknowledged ones are not resent: {again:?}");
    // Counted as they go out; the subscriber may see the last of them before the count is updated.
    timeout(WAIT, async {
        while health.delivery().0 < 10 {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("resends counted");
    sub.publish(&ack_topic, QoS::AtLeastOnce, false, signed::seal(&cred, signed::CENTRE, &ack_topic, &ack(11..=20)))
        .await
        .unwrap();
    timeout(WAIT, async {
        while f.queue.depth() != 0 {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("queue empties once everything is acknowledged");
    shutdown.cancel();
    timeout(Duration::from_secs(10), publisher).await.expect("publisher stops").unwrap().unwrap();
    clear_retained(&sub, &mut rx, &f.status_topic).await;
    sub_task.abort();
}
