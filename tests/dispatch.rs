//! Tickets climb the escalation ladder on their SLA clock (with notifications on each tier's topic),
//! and a webhook that fails its first deliveries still receives every notification exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use common::*;
use crowdgrid::central::config::{Sla, WebhookConfig};
use crowdgrid_proto::{Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

async fn publisher(host: String, port: u16) -> AsyncClient {
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("disp-{}", unique()), host, port), 100);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    client
}

async fn publish(client: &AsyncClient, zone: &str, area: f64, density: f64, seq: u64) {
    let mut r = Reading::new(
        "west-taihu",
        zone,
        SourceKind::Camera,
        &format!("disp/{zone}"),
        Utc::now(),
        density * area,
        area,
        0.9,
    );
    r.seq = seq;
    client
        .publish(
            format!("crowdgrid/v1/west-taihu/{zone}/reading"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&r).unwrap(),
        )
        .await
        .unwrap();
}

/// Collects `(topic, event, tier)` of every notification under `filter`.
async fn watch(host: &str, port: u16, filter: &str) -> Arc<Mutex<Vec<(String, String, String)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("watch-{}", unique()), host, port), 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let out = seen.clone();
    tokio::spawn(async move {
        let _c = client;
        while let Ok(ev) = el.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap();
                    let tier = v["ticket"]["tier"].as_str().unwrap_or_default().to_string();
                    out.lock().unwrap().push((
                        p.topic.clone(),
                        v["event"].as_str().unwrap_or_default().to_string(),
                        tier,
                    ));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx).await.unwrap().unwrap();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_ticket_climbs_to_the_department() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    let fast = Sla { ack_s: 1, resolve_s: 3, subdistrict_s: 2 };
    loaded.config.escalation.warning = fast;
    loaded.config.escalation.critical = fast;
    loaded.config.escalation.check_interval_ms = 100;
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let seen = watch(&host, port, "crowdgrid/v1/west-taihu/#").await;
    let client = publisher(host, port).await;

    publish(&client, "beach", 8000.0, 4.0, 1).await;
    let ticket = eventually(Duration::from_secs(10), "the beach ticket", || async {
        get_json(&format!("{api}/api/v1/tickets"), &tok).await.as_array().unwrap().first().cloned()
    })
    .await;
    let id = ticket["id"].as_i64().unwrap();
    // Not acknowledged in 1 s → community; not resolved in 3 s → sub-district; 2 s more → department.
    let detail = eventually(Duration::from_secs(20), "the whistle", || async {
        let d = get_json(&format!("{api}/api/v1/tickets/{id}"), &tok).await;
        (d["tier"] == "department").then_some(d)
    })
    .await;
    let escalations: Vec<String> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "escalated")
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(escalations.len(), 3, "{escalations:?}");
    assert!(escalations[0].starts_with("grid -> community: not acknowledged within 1 s"), "{escalations:?}");
    assert!(escalations[1].starts_with("community -> subdistrict: not resolved within 3 s"), "{escalations:?}");
    assert!(escalations[2].starts_with("subdistrict -> department"), "{escalations:?}");
    let opened = chrono::DateTime::parse_from_rfc3339(detail["opened_at"].as_str().unwrap()).unwrap();
    let whistle = chrono::DateTime::parse_from_rfc3339(
        detail["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "escalated").unwrap()["ts"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let took = (whistle - opened).num_milliseconds();
    assert!((5_000..9_000).contains(&took), "whistle {took} ms after raising (3 s resolve + 2 s sub-district)");

    // Each tier heard about it on its own topic (the notification follows the stored change: wait for the last).
    let topics = eventually(Duration::from_secs(10), "the department's notification", || async {
        let topics = seen.lock().unwrap().clone();
        topics
            .iter()
            .any(|(t, e, _)| t.ends_with("/escalations/department/xitaihu/tickets") && e == "escalated")
            .then_some(topics)
    })
    .await;
    let on = |suffix: &str| topics.iter().any(|(t, e, _)| t.ends_with(suffix) && e == "escalated");
    assert!(on("/escalations/community/huxindao/tickets"), "{topics:?}");
    assert!(on("/escalations/subdistrict/xitaihu/tickets"), "{topics:?}");
    assert!(on("/escalations/department/xitaihu/tickets"), "{topics:?}");
    let worker = ticket["assignee"].as_str().unwrap();
    assert!(topics.iter().any(|(t, e, _)| t.ends_with(&format!("/workers/{worker}/tickets")) && e == "raised"));

    let kpis = get_json(&format!("{api}/api/v1/kpis"), &tok).await;
    assert_eq!(kpis["tickets"], 1);
    assert_eq!(kpis["resolved"], 0);
    central.stop().await;
}

#[derive(Default)]
struct Receiver {
    calls: usize,
    accepted: BTreeMap<String, Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_failing_first_deliveries_gets_each_notification_once() {
    // A receiver that answers 500 to its first 3 calls, checks the signature, and records deliveries.
    let secret = "a-shared-secret-of-some-length";
    let state = Arc::new(Mutex::new(Receiver::default()));
    let st = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let st = st.clone();
            async move {
                let mut s = st.lock().unwrap();
                s.calls += 1;
                if s.calls <= 3 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let sig = headers["x-crowdgrid-signature"].to_str().unwrap();
                assert_eq!(sig, crowdgrid::central::notify::signature(secret, &body), "signed with the shared secret");
                let id = headers["x-crowdgrid-delivery"].to_str().unwrap().to_string();
                assert!(!s.accepted.contains_key(&id), "delivery {id} accepted twice");
                s.accepted.insert(id, serde_json::from_slice(&body).unwrap());
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.notify.webhooks = vec![WebhookConfig {
        name: "city-hub".into(),
        url: format!("http://{hook_addr}/hook"),
        secret: secret.into(),
        max_attempts: 10,
    }];
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let client = publisher(host, port).await;

    // Three tickets, then the worker acknowledges one: four notifications.
    publish(&client, "beach", 8000.0, 4.0, 1).await;
    publish(&client, "campground-north", 14913.0, 4.0, 1).await;
    publish(&client, "jetty", 1500.0, 3.0, 1).await;
    let tickets = eventually(Duration::from_secs(10), "three tickets", || async {
        let t = get_json(&format!("{api}/api/v1/tickets"), &tok).await;
        (t.as_array().unwrap().len() == 3).then_some(t)
    })
    .await;
    let first = &tickets[0];
    let worker = token(&db, crowdgrid::auth::Role::GridWorker, Some(first["assignee"].as_str().unwrap())).await;
    let resp = reqwest::Client::new()
        .post(format!("{api}/api/v1/tickets/{}/acknowledge", first["id"]))
        .bearer_auth(&worker)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let s2 = state.clone();
    eventually(Duration::from_secs(30), "four deliveries", || async {
        (s2.lock().unwrap().accepted.len() == 4).then_some(())
    })
    .await;
    // Nothing is left to deliver (the outbox is empty): no later delivery can come, so the counts are final.
    eventually(Duration::from_secs(10), "the outbox drained", || async {
        get_json(&format!("{api}/api/v1/outbox"), &tok).await.as_array()?.is_empty().then_some(())
    })
    .await;
    let (accepted, calls, mut events) = {
        let s = state.lock().unwrap();
        let events: Vec<String> = s.accepted.values().map(|v| v["event"].as_str().unwrap().to_string()).collect();
        (s.accepted.len(), s.calls, events)
    };
    assert_eq!(accepted, 4, "no extra deliveries");
    assert_eq!(calls, 7, "3 failures + 4 successes");
    events.sort();
    assert_eq!(events, ["acknowledged", "raised", "raised", "raised"]);
    let pending = get_json(&format!("{api}/api/v1/outbox"), &tok).await;
    assert!(pending.as_array().unwrap().is_empty(), "nothing left undelivered: {pending}");
    let detail = get_json(&format!("{api}/api/v1/tickets/{}", first["id"]), &tok).await;
    assert!(
        detail["events"].as_array().unwrap().iter().any(|e| e["kind"] == "notified"),
        "the trail records deliveries"
    );
    assert!(central.metrics.webhook_failures.get() >= 3);
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_go_to_workers_on_duty() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    // liu-fang (first on the jetty-carpark roster, nothing assigned) is off duty for the next hours;
    // zhao-qiang has no shifts (always on duty).
    let site = loaded.sites.iter().position(|s| s.config.id == "west-taihu").unwrap();
    let mut cfg = loaded.sites[site].config.clone();
    let local = Utc::now().naive_utc() + chrono::Duration::minutes(i64::from(cfg.utc_offset_minutes));
    let later = |h: i64| (local + chrono::Duration::hours(h)).format("%H:%M").to_string();
    let liu = cfg.workers.iter_mut().find(|w| w.id == "liu-fang").unwrap();
    liu.shifts = vec![crowdgrid_proto::site::Shift { days: vec![], from: later(2), to: later(4) }];
    loaded.sites[site] =
        Arc::new(crowdgrid_proto::site::Site::from_config(cfg, std::path::Path::new("site.toml")).unwrap());
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let client = publisher(host, port).await;
    publish(&client, "jetty", 1500.0, 3.0, 1).await;
    let ticket = eventually(Duration::from_secs(10), "the jetty ticket", || async {
        get_json(&format!("{api}/api/v1/tickets"), &tok).await.as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(ticket["assignee"], "zhao-qiang", "the off-duty worker is skipped");
    central.stop().await;
}
