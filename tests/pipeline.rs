//! Edge → broker → central → SQLite → API, on the embedded broker and on the real Mosquitto.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use crowdgrid_edge::agent::Agent;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

const GATE: &str = r#"
[[sources]]
type = "gate"
id = "gates"
zone = "campground-north"
report_interval_ms = 200
input = { kind = "webhook", listen = "127.0.0.1:0", path = "/gate" }
"#;

/// Subscribes to `filter` and forwards every publish payload as JSON.
async fn subscribe(host: &str, port: u16, filter: &str) -> tokio::sync::mpsc::Receiver<(String, Value)> {
    let mut opts = MqttOptions::new(format!("test-sub-{}", unique()), host, port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(opts, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1000);
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    tokio::spawn(async move {
        let _client = client;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed_tx.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice(&p.payload) {
                        if tx.send((p.topic.clone(), v)).await.is_err() {
                            break;
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed).await.expect("SUBACK in time").unwrap();
    rx
}

async fn post_events(addr: std::net::SocketAddr, events: Value) {
    let resp = reqwest::Client::new().post(format!("http://{addr}/gate")).json(&events).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap_or_default());
}

/// Runs the whole path against a started centre and returns when every assertion held.
async fn end_to_end(central: crowdgrid::central::Central, dir: &std::path::Path, prefix: &str) {
    let tok = admin(&dir.join("central.db")).await;
    let tok = tok.as_str();
    let (host, port) = central.mqtt.clone();
    let api = format!("http://{}", central.api_addr);
    let edge_id = format!("e2e-{}", unique());
    let edge = Agent::start(load_edge(&edge_file(dir, &edge_id, port, prefix, GATE))).await.unwrap();
    let hook = edge.webhooks[0].1;
    let mut notes = subscribe(&host, port, &format!("{prefix}/west-taihu/workers/+/tickets")).await;

    // 150 in, 30 out through two turnstiles: occupancy 120.
    let now = Utc::now().to_rfc3339();
    post_events(
        hook,
        json!([
            {"ts": now, "gate": "g1", "direction": "in", "count": 100},
            {"ts": now, "gate": "g2", "direction": "in", "count": 50},
            {"ts": now, "gate": "g1", "direction": "out", "count": 30},
        ]),
    )
    .await;

    let zones = get_json(&format!("{api}/api/v1/zones?site=west-taihu"), tok).await;
    let area = zones.as_array().unwrap().iter().find(|z| z["zone"] == "campground-north").unwrap()["area_m2"]
        .as_f64()
        .unwrap();
    let gate_id = format!("{edge_id}/gates");
    let url = format!("{api}/api/v1/zones/west-taihu/campground-north/series");
    let points = eventually(Duration::from_secs(20), "gate and fused readings in the API", || async {
        let pts = get_json(&url, tok).await;
        let pts = pts.as_array().unwrap().clone();
        let gate = pts.iter().any(|p| p["source_id"] == gate_id.as_str() && p["count"] == 120.0);
        let fused = pts.iter().any(|p| p["source"] == "fused" && (p["count"].as_f64().unwrap() - 120.0).abs() < 1e-6);
        (gate && fused).then_some(pts)
    })
    .await;
    let gate = points.iter().find(|p| p["source_id"] == gate_id.as_str() && p["count"] == 120.0).unwrap();
    assert!((gate["density"].as_f64().unwrap() - 120.0 / area).abs() < 1e-9, "density is count / geodesic area");
    assert_eq!(gate["source"], "gate");
    assert_eq!(gate["inflow_per_min"], 150.0);
    assert_eq!(gate["outflow_per_min"], 30.0);

    // The zone view shows the value fused at the centre (one gate over the whole zone: its count) and both series.
    let zone = eventually(Duration::from_secs(10), "zone with fused density", || async {
        let zones = get_json(&format!("{api}/api/v1/zones?site=west-taihu"), tok).await;
        zones
            .as_array()
            .unwrap()
            .iter()
            .find(|z| z["zone"] == "campground-north" && (z["count"].as_f64().unwrap_or(0.0) - 120.0).abs() < 1e-6)
            .cloned()
    })
    .await;
    assert_eq!(zone["level"], "normal");
    assert_eq!((zone["from"].as_str(), zone["coverage"].as_f64()), (Some("fused"), Some(1.0)));
    assert!(zone["sources"].as_object().unwrap().contains_key(&gate_id));

    // The edge is online with its retained status.
    eventually(Duration::from_secs(10), "edge online", || async {
        let edges = get_json(&format!("{api}/api/v1/edges"), tok).await;
        edges
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["edge_id"] == edge_id.as_str() && e["state"] == "online")
            .then_some(())
    })
    .await;

    // A staff headcount above the warning level (3.6/m²) raises one ticket, routed to the scenic grid's worker.
    let crowd = (4.0 * area).round();
    post_events(hook, json!([{"ts": Utc::now().to_rfc3339(), "gate": "g1", "direction": "census", "count": crowd}]))
        .await;
    let ticket = eventually(Duration::from_secs(20), "a ticket for campground-north", || async {
        let t = get_json(&format!("{api}/api/v1/tickets?site=west-taihu"), tok).await;
        t.as_array().unwrap().iter().find(|t| t["zone"] == "campground-north").cloned()
    })
    .await;
    assert_eq!(ticket["level"], "warning");
    assert_eq!(ticket["rule"], "density");
    assert_eq!(ticket["tier"], "grid");
    assert_eq!(ticket["grid"], "island-scenic");
    assert_eq!(ticket["state"], "dispatched");
    let assignee = ticket["assignee"].as_str().unwrap().to_string();
    let (topic, note) = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.unwrap().unwrap();
    assert_eq!(topic, format!("{prefix}/west-taihu/workers/{assignee}/tickets"));
    assert_eq!(note["event"], "raised");
    assert_eq!(note["ticket"]["id"], ticket["id"]);
    // More readings above the threshold do not open a second ticket: wait until more of them are stored (proof
    // that processing went on past the ticket), then count.
    let m = central.metrics.clone();
    let stored_then = m.readings_stored.get();
    eventually(Duration::from_secs(10), "more readings stored after the ticket", || async {
        (m.readings_stored.get() >= stored_then + 5).then_some(())
    })
    .await;
    let open = get_json(&format!("{api}/api/v1/tickets?site=west-taihu"), tok).await;
    assert_eq!(open.as_array().unwrap().iter().filter(|t| t["zone"] == "campground-north").count(), 1);

    // The worker resolves it with a note; the trail shows every step.
    let id = ticket["id"].as_i64().unwrap();
    let worker = token(&dir.join("central.db"), crowdgrid::auth::Role::GridWorker, Some(&assignee)).await;
    let resp = reqwest::Client::new()
        .post(format!("{api}/api/v1/tickets/{id}/resolve"))
        .bearer_auth(&worker)
        .json(&json!({"note": "opened the south gate, crowd guided out"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let detail = get_json(&format!("{api}/api/v1/tickets/{id}"), tok).await;
    let kinds: Vec<_> =
        detail["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["raised", "dispatched", "resolved"]);

    let health = get_json(&format!("{api}/healthz"), tok).await;
    assert_eq!(health["status"], "ok");
    let metrics = reqwest::get(format!("{api}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("crowdgrid_readings_stored_total"), "{metrics}");
    assert!(central.metrics.readings_stored.get() > 0);
    assert_eq!(central.metrics.readings_rejected.with_label_values(&["malformed"]).get(), 0);

    edge.stop().await;
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_to_api_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let central = crowdgrid::central::start(central_embedded(dir.path())).await.unwrap();
    end_to_end(central, dir.path(), "crowdgrid/v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_to_api_through_the_real_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("cgtest-{}/v1", unique());
    let loaded = central_external(dir.path(), "127.0.0.1", 1883, &prefix, &format!("central-{}", unique()));
    let central = crowdgrid::central::start(loaded).await.unwrap();
    end_to_end(central, dir.path(), &prefix).await;
}
