//! A camera's geometry drawn at the centre and pushed to a running edge, as shipped (`[edges] authentication =
//! "required"`): the camera publishes its view (a blurred frame and the geometry it counts with); operators see
//! it and grid workers do not; an engineer's geometry is checked against the site (every problem listed, nothing
//! stored), stored as a settings version with who and why, pushed, applied between two frames and acknowledged
//! in the camera's status and its next view; the readings follow the new zones; going back to the edge file
//! brings the old zones back; and another edge cannot pass off a view as this camera's.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use crowdgrid::auth::Role;
use crowdgrid_edge::agent::Agent;
use crowdgrid_proto::geometry::CameraGeometry;
use serde_json::json;

const EDGE: &str = "geo-cam";

/// Readings of the camera stored for `zone`.
fn readings_of(db: &std::path::Path, zone: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(
        "SELECT COUNT(*) FROM readings WHERE source_id = ?1 AND zone = ?2",
        [format!("{EDGE}/gate-cam"), zone.to_string()],
        |r| r.get(0),
    )
    .unwrap()
}

async fn get(url: &str, tok: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).bearer_auth(tok).send().await.unwrap()
}

fn geometry(v: &serde_json::Value) -> CameraGeometry {
    serde_json::from_value(v.clone()).unwrap()
}

/// Only the gate plaza, drawn smaller, with the gate line moved; the pickup lane is no longer counted.
fn drawn() -> serde_json::Value {
    json!({
        "calibration": {
            "image": [[0, 576], [768, 576], [700, 180], [60, 180]],
            "ground": [[0, 0], [22, 0], [30, 35], [-8, 35]]
        },
        "zones": [{ "zone": "gate-plaza", "polygon": [[0, 200], [600, 180], [600, 576], [0, 576]] }],
        "lines": [{ "id": "school-gate", "zone": "gate-plaza", "from": [320, 576], "to": [320, 190] }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_geometry_drawn_on_the_view_is_checked_pushed_applied_and_acknowledged() {
    trace();
    let dir = tempfile::tempdir().unwrap();
    let (central, db, creds, _) = common::camera::signed_centre(dir.path(), EDGE, |_| {}).await;
    let api = format!("http://{}", central.api_addr);
    let tracking = r#"evidence = { max_bytes = 65536 }
[sources.tracking]
[[sources.tracking.lines]]
id = "school-gate"
zone = "gate-plaza"
from = [300, 576]
to = [300, 125]"#;
    let edge_path = common::camera::camera_edge(dir.path(), EDGE, central.mqtt.1, Some(&api), tracking);
    let agent = Agent::start(load_edge(&edge_path)).await.unwrap();
    let eng = token(&db, Role::Engineer, None).await;
    let op = token(&db, Role::Operator, None).await;
    let worker = token(&db, Role::GridWorker, Some("xu-jing")).await;
    let cam = format!("{api}/api/v1/cameras/boai-school/{EDGE}/gate-cam");

    // The camera's view arrives: the edge file's geometry, in the frame's pixels, and a JPEG.
    let view = eventually(Duration::from_secs(60), "the camera's view", || async {
        let r = get(&format!("{cam}/view"), &op).await;
        (r.status() == 200).then_some(())?;
        r.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert_eq!((view["width"].as_u64(), view["height"].as_u64()), (Some(768), Some(576)), "{view}");
    assert!(view["settings_version"].is_null(), "{view}");
    let zones: Vec<&str> =
        view["geometry"]["zones"].as_array().unwrap().iter().map(|z| z["zone"].as_str().unwrap()).collect();
    assert_eq!(zones, ["gate-plaza", "pickup-lane"]);
    assert_eq!(view["geometry"]["lines"][0]["id"], "school-gate");
    let jpeg = get(&format!("{cam}/view.jpg"), &op).await;
    assert_eq!(jpeg.headers()["content-type"], "image/jpeg");
    let bytes = jpeg.bytes().await.unwrap();
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && bytes.len() <= 65536, "{} bytes", bytes.len());

    // Who may not: grid workers see no camera, strangers nothing; only engineers and admins change geometry.
    assert_eq!(get(&format!("{cam}/view"), &worker).await.status(), 403);
    assert_eq!(get(&format!("{cam}/view.jpg"), &worker).await.status(), 403);
    assert_eq!(reqwest::get(format!("{cam}/view.jpg")).await.unwrap().status(), 401);
    assert_eq!(get(&format!("{api}/api/v1/cameras/boai-school/{EDGE}/no-such-cam/view"), &op).await.status(), 404);
    assert_eq!(post_json(&format!("{cam}/settings"), &op, json!({ "geometry": drawn() })).await.0, 403);

    // A geometry that cannot be counted with: every problem listed, nothing stored.
    let mut bad = drawn();
    bad["zones"][0]["zone"] = json!("car-park");
    bad["zones"].as_array_mut().unwrap().push(json!({ "zone": "crossing", "polygon": [[0, 0], [10, 0]] }));
    bad["lines"][0]["zone"] = json!("pickup-lane");
    bad["calibration"]["ground"] = json!([[0, 0], [1, 0], [2, 0], [3, 0]]);
    let (code, body) = post_json(&format!("{cam}/settings"), &eng, json!({ "geometry": bad })).await;
    assert_eq!(code, 422, "{body}");
    let problems = body["problems"].to_string();
    for want in ["calibration", "zones[0].zone", "car-park", "zones[1].polygon", "lines[0].zone"] {
        assert!(problems.contains(want), "{want} missing from {problems}");
    }
    assert_eq!(get_json(&format!("{cam}/settings"), &op).await, json!([]), "nothing stored");

    // The drawn geometry: stored with who and why, pushed, applied and acknowledged.
    let before_lane = eventually(Duration::from_secs(30), "pickup-lane readings", || async {
        Some(readings_of(&db, "pickup-lane")).filter(|n| *n > 0)
    })
    .await;
    assert!(before_lane > 0);
    let (code, body) =
        post_json(&format!("{cam}/settings"), &eng, json!({ "geometry": drawn(), "note": "lane moved" })).await;
    assert_eq!(code, 201, "{body}");
    let v = body["version"].as_i64().unwrap();
    eventually(Duration::from_secs(30), "the camera runs the drawn geometry", || async {
        let all = get_json(&format!("{api}/api/v1/cameras"), &op).await;
        let c = all.as_array()?.iter().find(|c| c["edge"] == EDGE)?.clone();
        (c["running"]["settings_version"] == v && c["in_step"] == true).then_some(())
    })
    .await;
    let view = eventually(Duration::from_secs(30), "a view of the new geometry", || async {
        let view = get_json(&format!("{cam}/view"), &op).await;
        (view["settings_version"] == v).then_some(view)
    })
    .await;
    assert_eq!(geometry(&view["geometry"]), geometry(&drawn()), "the camera counts with what was drawn");
    let history = get_json(&format!("{cam}/settings"), &op).await;
    assert_eq!(geometry(&history[0]["geometry"]), geometry(&drawn()));
    assert_eq!((history[0]["note"].as_str(), history[0]["author"].as_str().is_some()), (Some("lane moved"), true));

    // The readings follow: the pickup lane is no longer counted by this camera, the gate plaza still is.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (lane, plaza) = (readings_of(&db, "pickup-lane"), readings_of(&db, "gate-plaza"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(readings_of(&db, "pickup-lane"), lane, "no pickup-lane reading after the change");
    assert!(readings_of(&db, "gate-plaza") > plaza + 3, "the gate plaza goes on");

    // Back to the edge file's geometry (a version without one): the lane is counted again.
    let (code, body) = post_json(&format!("{cam}/settings"), &eng, json!({ "note": "back to the file" })).await;
    assert_eq!(code, 201, "{body}");
    eventually(Duration::from_secs(30), "pickup-lane counted again", || async {
        (readings_of(&db, "pickup-lane") > lane + 3).then_some(())
    })
    .await;

    // Another edge of the site signs a view of this camera with its own key: refused and counted.
    let other = creds.create("boai-school", "other-edge").await.unwrap();
    let t = crowdgrid_proto::topic::edge_view("crowdgrid/v1", "boai-school", EDGE, "gate-cam");
    let mut forged: serde_json::Value = view.clone();
    forged["camera"] = json!("gate-cam");
    forged["jpeg"] = json!(base64::engine::general_purpose::STANDARD.encode([0xFF, 0xD8, 0xFF, 0xE0]));
    forged.as_object_mut().unwrap().remove("received_at");
    let body = serde_json::to_vec(&forged).unwrap();
    let sealed = crowdgrid_proto::signed::seal(&other, "other-edge", &t, &body);
    let mut o = rumqttc::MqttOptions::new("other-edge", "127.0.0.1", central.mqtt.1);
    o.set_credentials("boai-school/other-edge", other.secret.clone());
    let (forger, mut el) = rumqttc::AsyncClient::new(o, 10);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    eventually(Duration::from_secs(20), "the forged view refused", || {
        let (forger, t, sealed) = (forger.clone(), t.clone(), sealed.clone());
        let metrics = central.metrics.clone();
        async move {
            let _ = forger.publish(&t, rumqttc::QoS::AtLeastOnce, false, sealed).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            (metrics.rejected("foreign_view") > 0).then_some(())
        }
    })
    .await;
    let jpeg = get(&format!("{cam}/view.jpg"), &op).await.bytes().await.unwrap();
    assert!(jpeg.len() > 4, "the camera's own view is kept");

    agent.stop().await;
    central.stop().await;
}
