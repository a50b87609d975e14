//! Evidence end to end: a Boai gate camera (real NanoDet on real frames) sees people in the pick-up lane, the
//! centre raises the `people-vehicle` ticket from config/boai-school/rules.toml, the camera answers the
//! ticket notification with a blurred, size-limited JPEG, and the ticket's evidence is served to those who
//! may see the ticket. A camera without `evidence` never sends a frame.

mod common;
#[path = "../edge/tests/privacy/mod.rs"]
mod privacy;

use std::time::Duration;

use common::*;
use crowdgrid::auth::Role;
use crowdgrid_edge::agent::Agent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_ticket_gets_a_blurred_snapshot_from_the_camera_that_saw_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.rule_files = vec![root().join("config/boai-school/rules.toml")];
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let port = central.mqtt.1;
    let api = format!("http://{}", central.api_addr);
    let admin_tok = admin(&db).await;

    let edge = Agent::start(load_edge(&common::camera::camera_edge(
        dir.path(),
        "boai-cam-ev",
        port,
        None,
        "evidence = { max_bytes = 32768 }",
    )))
    .await
    .unwrap();
    let ticket = eventually(Duration::from_secs(60), "the people-vehicle ticket", || async {
        let list = get_json(&format!("{api}/api/v1/tickets"), &admin_tok).await;
        list.as_array().unwrap().iter().find(|t| t["rule"] == "people-vehicle" && t["zone"] == "pickup-lane").cloned()
    })
    .await;
    let id = ticket["id"].as_i64().unwrap();
    let http = reqwest::Client::new();
    let url = format!("{api}/api/v1/tickets/{id}/evidence");
    let jpeg = eventually(Duration::from_secs(20), "the evidence snapshot", || async {
        let r = http.get(&url).bearer_auth(&admin_tok).send().await.unwrap();
        if r.status() != 200 {
            return None;
        }
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        Some(r.bytes().await.unwrap())
    })
    .await;
    assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "a JPEG");
    assert!(jpeg.len() <= 32768 && jpeg.len() > 2000, "{} bytes: under the camera's limit", jpeg.len());
    // Every person marked by hand on the frame (edge/tests/data/privacy_boxes.json), found by the model or
    // not, has lost nearly all of their detail in the JPEG the API serves.
    privacy::assert_people_blurred(&privacy::marked_frame(&root(), "vtest_300.jpg"), &jpeg);

    // The lane belongs to the Boai Road grid: its worker sees the snapshot, the school's worker does not.
    let road = token(&db, Role::GridWorker, Some("huang-wei")).await;
    let school = token(&db, Role::GridWorker, Some("xu-jing")).await;
    assert_eq!(http.get(&url).bearer_auth(&road).send().await.unwrap().status(), 200);
    assert_eq!(http.get(&url).bearer_auth(&school).send().await.unwrap().status(), 403);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let none = http.get(format!("{api}/api/v1/tickets/999999/evidence")).bearer_auth(&admin_tok).send().await.unwrap();
    assert_eq!(none.status(), 404);
    edge.stop().await;
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_evidence_config_no_frame_leaves_the_edge() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.rule_files = vec![root().join("config/boai-school/rules.toml")];
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let api = format!("http://{}", central.api_addr);
    let admin_tok = admin(&db).await;
    // Everything under the evidence topics, from anyone.
    let (watcher, mut el) =
        rumqttc::AsyncClient::new(rumqttc::MqttOptions::new(format!("ev-watch-{}", unique()), host, port), 10);
    watcher.subscribe("crowdgrid/v1/+/evidence/#", rumqttc::QoS::AtLeastOnce).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) = ev {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });

    let edge = Agent::start(load_edge(&common::camera::camera_edge(dir.path(), "boai-cam-priv", port, None, "")))
        .await
        .unwrap();
    let ticket = eventually(Duration::from_secs(60), "the people-vehicle ticket", || async {
        let list = get_json(&format!("{api}/api/v1/tickets"), &admin_tok).await;
        list.as_array().unwrap().iter().find(|t| t["rule"] == "people-vehicle").cloned()
    })
    .await;
    // Give a (wrongly) answering camera the time the other test needs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0, "no snapshot was published");
    let r = reqwest::Client::new()
        .get(format!("{api}/api/v1/tickets/{}/evidence", ticket["id"]))
        .bearer_auth(&admin_tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    edge.stop().await;
    central.stop().await;
}
