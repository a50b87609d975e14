//! Engineers' tickets as a closed loop: an edge that goes offline raises an engineers' ticket (with their own
//! SLA deadlines), operators see it labelled as engineering (`kind = data_quality`), a grid worker may not act on
//! it (403), an engineer acknowledges and resolves it (200), and the edge coming back online resolves a ticket
//! still open. An edge that stays online but loses data (most camera frames dropped) raises a degraded ticket and
//! is marked degraded in `/edges` until a status shows no new loss.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{central_embedded, eventually, get_json, token, unique};
use crowdgrid::auth::Role;
use crowdgrid_proto::{topic, EdgeState, EdgeStatus, Reading, SourceKind};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};

async fn act(api: &str, token: &str, id: i64, action: &str, note: &str) -> u16 {
    let url = format!("{api}/api/v1/tickets/{id}/{action}");
    let resp = reqwest::Client::new().post(url).bearer_auth(token).json(&json!({ "note": note })).send().await.unwrap();
    resp.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_edge_raises_an_engineers_ticket_that_engineers_close() {
    let dir = tempfile::tempdir().unwrap();
    let central = crowdgrid::central::start(central_embedded(dir.path())).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let db = dir.path().join("central.db");
    let (engineer, operator) = (token(&db, Role::Engineer, None).await, token(&db, Role::Operator, None).await);
    let worker = token(&db, Role::GridWorker, Some("liu-fang")).await;
    let (host, port) = central.mqtt.clone();
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("eng-{}", unique()), host, port), 50);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });

    // The edge reports for the jetty (a quiet 0.2/m²), then its Last Will says it is gone.
    let mut r = Reading::new("west-taihu", "jetty", SourceKind::Camera, "e9/cam", Utc::now(), 300.0, 1499.0, 0.9);
    r.seq = 1;
    let reading_topic = topic::reading("crowdgrid/v1", "west-taihu", "jetty");
    client.publish(&reading_topic, QoS::AtLeastOnce, false, serde_json::to_vec(&r).unwrap()).await.unwrap();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(10), "the reading stored", || async {
        (m.readings_stored.get() == 1).then_some(())
    })
    .await;
    let status_topic = topic::edge_status("crowdgrid/v1", "west-taihu", "e9");
    let offline = serde_json::to_vec(&EdgeStatus::offline("e9", "west-taihu")).unwrap();
    client.publish(&status_topic, QoS::AtLeastOnce, true, offline.clone()).await.unwrap();

    let t: Value = eventually(Duration::from_secs(10), "an engineers' ticket", || async {
        get_json(&format!("{api}/api/v1/tickets"), &operator).await.as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(
        (t["rule"].as_str(), t["audience"].as_str(), t["kind"].as_str()),
        (Some("edge-offline:e9"), Some("engineer"), Some("data_quality"))
    );
    assert_eq!((t["zone"].as_str(), t["assignee"].as_str()), (Some("jetty"), None));
    assert!(t["ack_due"].is_string() && t["resolve_due"].is_string(), "their own SLA: {t}");
    let id = t["id"].as_i64().unwrap();

    // The edge comes back: the ticket resolves itself.
    let mut online = EdgeStatus::offline("e9", "west-taihu");
    online.state = EdgeState::Online;
    client.publish(&status_topic, QoS::AtLeastOnce, true, serde_json::to_vec(&online).unwrap()).await.unwrap();
    eventually(Duration::from_secs(10), "resolved when back online", || async {
        let t = get_json(&format!("{api}/api/v1/tickets/{id}"), &operator).await;
        (t["ticket"]["state"] == "resolved" || t["state"] == "resolved").then_some(())
    })
    .await;

    // Offline again within the reopen window: the same ticket reopens; the engineers close it by hand.
    client.publish(&status_topic, QoS::AtLeastOnce, true, offline).await.unwrap();
    eventually(Duration::from_secs(10), "reopened", || async {
        let t = get_json(&format!("{api}/api/v1/tickets/{id}"), &operator).await;
        let t = if t["ticket"].is_object() { t["ticket"].clone() } else { t };
        (t["state"] != "resolved" && t["reopened"] == 1).then_some(())
    })
    .await;
    assert_eq!(act(&api, &worker, id, "acknowledge", "").await, 403, "a grid worker may not act on it");
    assert_eq!(act(&api, &engineer, id, "acknowledge", "looking at the camera's PoE switch").await, 200);
    assert_eq!(act(&api, &engineer, id, "resolve", "switch port replaced").await, 200);
    let detail = get_json(&format!("{api}/api/v1/tickets/{id}"), &operator).await;
    let events: Vec<&str> = detail["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(events.ends_with(&["reopened", "acknowledged", "resolved"]), "{events:?}");
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_losing_data_raises_a_degraded_ticket_shown_on_its_edge_until_the_loss_stops() {
    let dir = tempfile::tempdir().unwrap();
    let central = crowdgrid::central::start(central_embedded(dir.path())).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let db = dir.path().join("central.db");
    let operator = token(&db, Role::Operator, None).await;
    let (host, port) = central.mqtt.clone();
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("deg-{}", unique()), host, port), 50);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let mut r =
        Reading::new("boai-school", "gate-plaza", SourceKind::Camera, "cam7/gate-cam", Utc::now(), 3.0, 600.0, 0.9);
    r.seq = 1;
    client
        .publish(
            topic::reading("crowdgrid/v1", "boai-school", "gate-plaza"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&r).unwrap(),
        )
        .await
        .unwrap();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(10), "the reading stored", || async {
        (m.readings_stored.get() == 1).then_some(())
    })
    .await;
    let status_topic = topic::edge_status("crowdgrid/v1", "boai-school", "cam7");
    let status = |accepted: u64, frames_dropped: u64| {
        let mut s = EdgeStatus::offline("cam7", "boai-school");
        s.state = EdgeState::Online;
        s.sources = vec![crowdgrid_proto::SourceHealth {
            id: "cam7/gate-cam".into(),
            kind: "camera".into(),
            last_ok: Some(Utc::now()),
            accepted,
            rejected: [("frame_dropped".to_string(), frames_dropped)].into_iter().collect(),
            last_error: None,
        }];
        serde_json::to_vec(&s).unwrap()
    };
    // Healthy, then inference falls behind: 80 of the next 100 frames dropped.
    client.publish(&status_topic, QoS::AtLeastOnce, true, status(100, 2)).await.unwrap();
    client.publish(&status_topic, QoS::AtLeastOnce, true, status(120, 82)).await.unwrap();
    let t: Value = eventually(Duration::from_secs(10), "a degraded ticket", || async {
        let all = get_json(&format!("{api}/api/v1/tickets"), &operator).await;
        all.as_array().unwrap().iter().find(|t| t["rule"] == "edge-degraded:cam7").cloned()
    })
    .await;
    assert_eq!((t["audience"].as_str(), t["zone"].as_str()), (Some("engineer"), Some("gate-plaza")), "{t}");
    let edges = get_json(&format!("{api}/api/v1/edges"), &operator).await;
    let e = edges.as_array().unwrap().iter().find(|e| e["edge_id"] == "cam7").cloned().unwrap();
    assert!(e["degraded"].as_str().unwrap().contains("cam7/gate-cam dropping frames: 80 of 100"), "{e}");
    // It catches up (no new drops): the ticket resolves and the edge is no longer marked.
    client.publish(&status_topic, QoS::AtLeastOnce, true, status(220, 82)).await.unwrap();
    let id = t["id"].as_i64().unwrap();
    eventually(Duration::from_secs(10), "resolved when the loss stops", || async {
        let t = get_json(&format!("{api}/api/v1/tickets/{id}"), &operator).await;
        (t["state"] == "resolved").then_some(())
    })
    .await;
    let edges = get_json(&format!("{api}/api/v1/edges"), &operator).await;
    let e = edges.as_array().unwrap().iter().find(|e| e["edge_id"] == "cam7").cloned().unwrap();
    assert!(e.get("degraded").is_none(), "{e}");
    central.stop().await;
}
