//! Bad payloads published with a real MQTT client are rejected and counted; the good readings
//! around them are stored, and a duplicate is dropped exactly once.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use crowdgrid_proto::{Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

fn reading(seq: u64, count: f64) -> Reading {
    // The beach is ~8,000 m²: a plausible count.
    let mut r = Reading::new("west-taihu", "beach", SourceKind::Camera, "hand/cam-1", Utc::now(), count, 8000.0, 0.8);
    r.seq = seq;
    r.epoch = 1;
    r
}

fn json(r: &Reading) -> Vec<u8> {
    serde_json::to_vec(r).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_counted_and_good_ones_around_them_stored() {
    let dir = tempfile::tempdir().unwrap();
    let central = crowdgrid::central::start(central_embedded(dir.path())).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let topic = "crowdgrid/v1/west-taihu/beach/reading";

    let mut bad_negative = reading(90, 10.0);
    bad_negative.count = -5.0;
    let mut future = reading(91, 10.0);
    future.ts = Utc::now() + chrono::Duration::hours(2);
    let mut implausible = reading(92, 10.0);
    implausible.count = 8000.0 * 40.0;
    implausible.density = 40.0;
    let mut wrong_zone = reading(93, 10.0);
    wrong_zone.zone = "atlantis".into();
    let nan = String::from_utf8(json(&reading(94, 10.0))).unwrap().replace("\"count\":10.0", "\"count\":NaN");

    let publishes: Vec<(String, Vec<u8>)> = vec![
        (topic.into(), json(&reading(1, 100.0))),
        (topic.into(), b"{this is not json".to_vec()),
        (topic.into(), json(&reading(2, 200.0))),
        (topic.into(), vec![b'x'; 100 * 1024]),
        (topic.into(), nan.into_bytes()),
        (topic.into(), json(&bad_negative)),
        (topic.into(), json(&future)),
        (topic.into(), json(&implausible)),
        ("crowdgrid/v1/west-taihu/atlantis/reading".into(), json(&wrong_zone)),
        ("crowdgrid/v1/west-taihu/jetty/reading".into(), json(&reading(95, 10.0))),
        (topic.into(), json(&reading(2, 200.0))),
        (topic.into(), json(&reading(3, 300.0))),
    ];
    let n = publishes.len();
    let mut opts = MqttOptions::new(format!("bad-{}", unique()), host, port);
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut el) = AsyncClient::new(opts, 100);
    for (t, p) in publishes {
        client.publish(t, QoS::AtLeastOnce, false, p).await.unwrap();
    }
    let mut acks = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while acks < n {
            match el.poll().await.unwrap() {
                Event::Incoming(Packet::PubAck(_)) => acks += 1,
                Event::Outgoing(Outgoing::Publish(_)) | Event::Incoming(_) | Event::Outgoing(_) => {}
            }
        }
    })
    .await
    .expect("every publish acknowledged by the broker");

    let m = central.metrics.clone();
    eventually(Duration::from_secs(10), "three good readings stored", || async {
        (m.readings_stored.get() == 3).then_some(())
    })
    .await;
    for (reason, expected) in [
        ("malformed", 2),
        ("oversized", 1),
        ("negative", 1),
        ("future", 1),
        ("implausible", 1),
        ("unknown_zone", 1),
        ("topic_mismatch", 1),
    ] {
        assert_eq!(m.rejected(reason), expected, "rejections for {reason}");
    }
    assert_eq!(m.readings_duplicate.get(), 1, "the repeated seq 2 is dropped once");
    assert_eq!(m.readings_received.get(), n as u64);

    let api = format!("http://{}", central.api_addr);
    let tok = admin(&dir.path().join("central.db")).await;
    let pts = get_json(&format!("{api}/api/v1/zones/west-taihu/beach/series"), &tok).await;
    // The source's own series; the map's own one (crowdgrid-central/fused) is served beside it.
    let (map, own): (Vec<_>, Vec<_>) =
        pts.as_array().unwrap().iter().partition(|p| p["source_id"] == "crowdgrid-central/fused");
    let counts: Vec<f64> = own.iter().map(|p| p["count"].as_f64().unwrap()).collect();
    assert_eq!(counts, [100.0, 200.0, 300.0]);
    assert!(!map.is_empty(), "the map's value is stored and served too");
    let metrics = reqwest::get(format!("{api}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("crowdgrid_readings_rejected_total{reason=\"oversized\"} 1"), "{metrics}");
    central.stop().await;
}
