//! Camera settings pushed from the centre to a running edge, as shipped (`[edges] authentication = "required"`):
//! a threshold changes the counts, a model of the pool is fetched (signed request), checked and switched to
//! without losing a reading, the status says which settings version each camera runs, a model that fails to
//! load or whose bytes do not match is refused while the camera keeps counting with the one it had, a rollback
//! is a new version, and nobody but engineers and admins may change anything.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use crowdgrid::auth::Role;
use crowdgrid_edge::agent::Agent;
use sha2::{Digest, Sha256};

const EDGE: &str = "tune-cam";

/// A pool manifest with the two vendored models, one whose bytes are not a model (loads fail) and one whose file
/// the test replaces after the centre checked it (the edge's sha256 check fails).
fn pool(dir: &Path) -> (PathBuf, PathBuf) {
    let models = root().join("models");
    let spec = |name: &str, file: &Path, sha: &str, extra: &str| {
        format!(
            r#"
[[models]]
name = "{name}"
file = "{file}"
version = "{name} test"
sha256 = "{sha}"
{extra}
licence = "test"
source = "test"
"#,
            file = file.display()
        )
    };
    let nanodet = r#"layout = "nanodet_gfl"
input_size = 416
dynamic_hw = true
channel_order = "bgr"
mean = [103.53, 116.28, 123.675]
std = [57.375, 57.12, 58.395]
classes = 80
person_classes = [0]
vehicle_classes = [1, 2, 3, 5, 7]"#;
    let manifest = std::fs::read_to_string(models.join("manifest.toml")).unwrap();
    let entry = |name: &str| -> (String, String) {
        let m: toml::Table = toml::from_str(&manifest).unwrap();
        let e = m["models"].as_array().unwrap().iter().find(|e| e["name"].as_str() == Some(name)).unwrap().clone();
        (e["file"].as_str().unwrap().to_string(), e["sha256"].as_str().unwrap().to_string())
    };
    let (nano_file, nano_sha) = entry("nanodet-g-coco");
    let (ssd_file, ssd_sha) = entry("ssdlite-mnv2-person");
    let ssd = r#"layout = "tf_ssd"
input_size = 300
channel_order = "rgb"
classes = 1
person_classes = [1]
vehicle_classes = []"#;
    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let junk_sha = hex::encode(Sha256::digest(std::fs::read(&junk).unwrap()));
    let swapped = dir.join("swapped.onnx");
    std::fs::write(&swapped, vec![9u8; 4096]).unwrap();
    let swapped_sha = hex::encode(Sha256::digest(std::fs::read(&swapped).unwrap()));
    let text = [
        spec("nanodet-g-coco", &models.join(&nano_file), &nano_sha, nanodet),
        spec("ssdlite-mnv2-person", &models.join(&ssd_file), &ssd_sha, ssd),
        spec("junk", &junk, &junk_sha, nanodet),
        spec("swapped", &swapped, &swapped_sha, ssd),
    ]
    .concat();
    let path = dir.join("pool.toml");
    std::fs::write(&path, text).unwrap();
    (path, swapped)
}

/// The newest stored person count of the camera.
fn latest_persons(db: &Path) -> Option<f64> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT person FROM readings WHERE source_id = ?1 AND zone = 'gate-plaza' ORDER BY ts DESC, seq DESC LIMIT 1",
        [format!("{EDGE}/gate-cam")],
        |r| r.get(0),
    )
    .ok()
}

fn stored(db: &Path) -> usize {
    stored_seqs(db, &format!("{EDGE}/%")).len()
}

async fn camera(api: &str, tok: &str) -> serde_json::Value {
    let all = get_json(&format!("{api}/api/v1/cameras"), tok).await;
    all.as_array().unwrap().iter().find(|c| c["edge"] == EDGE && c["camera"] == "gate-cam").cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_and_models_reach_a_running_camera_and_bad_models_are_refused() {
    trace();
    let dir = tempfile::tempdir().unwrap();
    let (manifest, swapped) = pool(dir.path());
    let (central, db, creds, cred) =
        common::camera::signed_centre(dir.path(), EDGE, |c| c.config.models.manifest = Some(manifest)).await;
    let api = format!("http://{}", central.api_addr);
    let edge_path = common::camera::camera_edge(dir.path(), EDGE, central.mqtt.1, Some(&api), "");
    let agent = Agent::start(load_edge(&edge_path)).await.unwrap();
    let eng = token(&db, Role::Engineer, None).await;
    let op = token(&db, Role::Operator, None).await;
    let worker = token(&db, Role::GridWorker, Some("xu-jing")).await;

    // The edge's own settings first: the shipped model at 0.45 counts the six people.
    let first = eventually(Duration::from_secs(60), "the camera's first counts", || async {
        latest_persons(&db).filter(|p| *p >= 3.0)
    })
    .await;
    let c = eventually(Duration::from_secs(20), "the camera in the edge's status", || async {
        let c = camera(&api, &op).await;
        (!c["running"].is_null()).then_some(c)
    })
    .await;
    assert_eq!(c["running"]["name"], "nanodet-g-coco", "{c}");
    assert!(c["running"]["settings_version"].is_null(), "{c}");
    assert_eq!(c["in_step"], true, "no settings from the centre yet: the edge file's are the ones to run: {c}");

    let url = format!("{api}/api/v1/cameras/boai-school/{EDGE}/gate-cam/settings");
    // Who may not: a grid worker and an operator; an out-of-range value or a model outside the pool is 422.
    assert_eq!(post_json(&url, &worker, serde_json::json!({"person_threshold": 0.9})).await.0, 403);
    assert_eq!(post_json(&url, &op, serde_json::json!({"person_threshold": 0.9})).await.0, 403);
    let (code, body) = post_json(&url, &eng, serde_json::json!({"person_threshold": 1.5, "model": "yolo-nope"})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["problems"].as_array().unwrap().len(), 2, "both problems listed: {body}");

    // A threshold: applied without reloading, the counts drop.
    let (code, body) =
        post_json(&url, &eng, serde_json::json!({"person_threshold": 0.9, "note": "too many cones"})).await;
    assert_eq!(code, 201, "{body}");
    let v1 = body["version"].as_i64().unwrap();
    eventually(Duration::from_secs(30), "the edge runs version 1", || async {
        let c = camera(&api, &op).await;
        (c["running"]["settings_version"] == v1 && c["in_step"] == true).then_some(())
    })
    .await;
    let high = eventually(Duration::from_secs(20), "fewer people counted at 0.9", || async {
        latest_persons(&db).filter(|p| *p < first)
    })
    .await;
    assert!(high < first, "{high} < {first}");

    // A model of the pool, fetched over the signed HTTP path, self-checked and switched to while counting.
    let before = stored(&db);
    let (code, body) =
        post_json(&url, &eng, serde_json::json!({"model": "ssdlite-mnv2-person", "person_threshold": 0.3})).await;
    assert_eq!(code, 201, "{body}");
    let v2 = body["version"].as_i64().unwrap();
    eventually(Duration::from_secs(60), "the edge runs the SSD model", || async {
        let c = camera(&api, &op).await;
        (c["running"]["settings_version"] == v2 && c["running"]["name"] == "ssdlite-mnv2-person").then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "readings go on after the switch", || async {
        (stored(&db) > before + 5).then_some(())
    })
    .await;

    // A model that does not load: refused, and the camera keeps counting with the SSD model.
    let (code, body) = post_json(&url, &eng, serde_json::json!({"model": "junk"})).await;
    assert_eq!(code, 201, "{body}");
    let v3 = body["version"].as_i64().unwrap();
    let c = eventually(Duration::from_secs(60), "the junk model refused", || async {
        let c = camera(&api, &op).await;
        c["running"]["refused"].as_str().is_some_and(|r| r.contains(&format!("version {v3}"))).then_some(c)
    })
    .await;
    assert_eq!(c["running"]["name"], "ssdlite-mnv2-person", "{c}");
    assert_eq!(c["running"]["settings_version"], v2, "{c}");
    assert_eq!(c["in_step"], false, "{c}");

    // A file swapped after the centre checked it: the edge's sha256 check refuses it.
    std::fs::write(&swapped, vec![8u8; 4096]).unwrap();
    let (code, body) = post_json(&url, &eng, serde_json::json!({"model": "swapped"})).await;
    assert_eq!(code, 201, "{body}");
    let v4 = body["version"].as_i64().unwrap();
    let c = eventually(Duration::from_secs(60), "the swapped model refused", || async {
        let c = camera(&api, &op).await;
        c["running"]["refused"].as_str().is_some_and(|r| r.contains(&format!("version {v4}"))).then_some(c)
    })
    .await;
    assert!(c["running"]["refused"].as_str().unwrap().contains("sha256"), "{c}");
    assert_eq!(c["running"]["name"], "ssdlite-mnv2-person", "{c}");
    let during = stored(&db);
    eventually(Duration::from_secs(20), "still counting", || async { (stored(&db) > during + 3).then_some(()) }).await;

    // Rollback to version 1: a new version with its values (the edge file's model, 0.9).
    let (code, body) =
        post_json(&format!("{api}/api/v1/cameras/settings/{v1}/rollback"), &eng, serde_json::json!({})).await;
    assert_eq!(code, 201, "{body}");
    let v5 = body["version"].as_i64().unwrap();
    assert!(v5 > v4);
    assert_eq!(
        post_json(&format!("{api}/api/v1/cameras/settings/{v1}/rollback"), &op, serde_json::json!({})).await.0,
        403
    );
    eventually(Duration::from_secs(60), "back on NanoDet at 0.9", || async {
        let c = camera(&api, &op).await;
        (c["running"]["settings_version"] == v5 && c["running"]["name"] == "nanodet-g-coco").then_some(())
    })
    .await;
    let history = get_json(&url, &op).await;
    let versions: Vec<i64> = history.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, vec![v5, v4, v3, v2, v1], "every change kept, newest first");
    assert_eq!(history[0]["note"], format!("rollback to version {v1}"));
    assert!(history[4]["author"].as_str().is_some_and(|a| !a.is_empty()));

    // Another edge of the site (it may log in to the broker) forges settings for this camera: unsigned, then
    // signed with its own key. The camera refuses both, counts them, and keeps version 5.
    let other = creds.create("boai-school", "other-edge").await.unwrap();
    let mut o = rumqttc::MqttOptions::new("other-edge", "127.0.0.1", central.mqtt.1);
    o.set_credentials("boai-school/other-edge", other.secret.clone());
    let (forger, mut el) = rumqttc::AsyncClient::new(o, 10);
    let connected = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = connected.clone();
    // The new credential is in force at the centre's next reload (every 2 s): retry the login until then.
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst)
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    });
    eventually(Duration::from_secs(20), "the other edge logged in", || async {
        connected.load(std::sync::atomic::Ordering::SeqCst).then_some(())
    })
    .await;
    let t = crowdgrid_proto::topic::edge_settings("crowdgrid/v1", "boai-school", EDGE);
    let evil = br#"{"cameras":{"gate-cam":{"version":999,"person_threshold":0.99}}}"#.to_vec();
    forger.publish(&t, rumqttc::QoS::AtLeastOnce, false, evil.clone()).await.unwrap();
    let sealed = crowdgrid_proto::signed::seal(&other, crowdgrid_proto::signed::CENTRE, &t, &evil);
    forger.publish(&t, rumqttc::QoS::AtLeastOnce, false, sealed).await.unwrap();
    let health = eventually(Duration::from_secs(20), "both forgeries counted", || async {
        let edges = get_json(&format!("{api}/api/v1/edges"), &op).await;
        let e = edges.as_array().unwrap().iter().find(|e| e["edge_id"] == EDGE).cloned().unwrap();
        let src = e["sources"].as_array().unwrap().iter().find(|s| s["id"] == format!("{EDGE}/gate-cam")).cloned()?;
        (src["rejected"]["settings_unsigned"] == 1 && src["rejected"]["settings_bad_signature"] == 1).then_some(src)
    })
    .await;
    assert!(health["last_error"].as_str().unwrap().contains("not signed by the centre"), "{health}");
    let c = camera(&api, &op).await;
    assert_eq!(c["running"]["settings_version"], v5, "{c}");
    assert_eq!(c["running"]["person_threshold"].as_f64().map(|x| (x * 100.0).round()), Some(90.0), "{c}");

    // No reading was lost through four switches.
    agent.stop().await;
    let queue = dir.path().join(format!("{EDGE}.queue.db"));
    eventually(Duration::from_secs(20), "every reading stored", || async {
        let stored = stored_seqs(&db, &format!("{EDGE}/%"));
        let assigned = assigned_seqs(&queue);
        assigned.iter().all(|(s, max)| stored.iter().filter(|(x, _)| x == s).count() as i64 == *max).then_some(())
    })
    .await;
    assert_complete(&stored_seqs(&db, &format!("{EDGE}/%")), &assigned_seqs(&queue));

    // The model files are the edge's: unsigned or signed with another key, 401; signed by it, the bytes.
    let models = get_json(&format!("{api}/api/v1/models"), &op).await;
    let sha = models["models"].as_array().unwrap()[0]["spec"]["sha256"].as_str().unwrap().to_string();
    let path = format!("/api/v1/edges/boai-school/{EDGE}/models/{sha}");
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{api}{path}")).send().await.unwrap().status(), 401);
    let other = crowdgrid_proto::signed::Credential::parse(&format!("{}.{}", cred.kid, "ab".repeat(32))).unwrap();
    let id =
        |c| crowdgrid_edge::identity::Identity { site: "boai-school".into(), edge: EDGE.into(), credential: Some(c) };
    let mut req = http.get(format!("{api}{path}"));
    for (k, v) in id(other).sign_get(&path) {
        req = req.header(k, v);
    }
    assert_eq!(req.send().await.unwrap().status(), 401);
    let mut req = http.get(format!("{api}{path}"));
    for (k, v) in id(cred.clone()).sign_get(&path) {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hex::encode(Sha256::digest(r.bytes().await.unwrap())), sha);
    assert_eq!(
        reqwest::Client::new().get(format!("{api}/api/v1/models")).bearer_auth(&worker).send().await.unwrap().status(),
        403
    );
    central.stop().await;
}
