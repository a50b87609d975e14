//! Engineers' tickets as a closed loop: an edge that goes offline raises an engineers' ticket (with their own
//! SLA deadlines), operators see it labelled as engineering (`kind = data_quality`), a grid worker may not act on
//! it (403), an engineer acknowledges and resolves it (200), and the edge coming back online resolves a ticket
//! still open.

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
