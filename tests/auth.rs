//! Every API endpoint needs a token (401 without one) and respects roles and grids (403).

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use crowdgrid::auth::Role;
use crowdgrid_proto::{Reading, SourceKind};
use reqwest::{Method, StatusCode};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};

async fn call(method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_grids_are_enforced_on_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = central_embedded(dir.path());
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let admin = admin(&db).await;
    let operator = token(&db, Role::Operator, None).await;
    let engineer = token(&db, Role::Engineer, None).await;
    let scenic = token(&db, Role::GridWorker, Some("wang-lei")).await; // island-scenic only
    let jetty = token(&db, Role::GridWorker, Some("liu-fang")).await; // jetty-carpark only
    let both = token(&db, Role::GridWorker, Some("zhao-qiang")).await; // both grids

    // A crowd on the jetty (grid jetty-carpark; its warning is 2.5/m²): a ticket for liu-fang.
    let (host, port) = central.mqtt.clone();
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("auth-{}", unique()), host, port), 10);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let mut r = Reading::new("west-taihu", "jetty", SourceKind::Camera, "auth/cam", Utc::now(), 4500.0, 1500.0, 0.9);
    r.seq = 1;
    client
        .publish("crowdgrid/v1/west-taihu/jetty/reading", QoS::AtLeastOnce, false, serde_json::to_vec(&r).unwrap())
        .await
        .unwrap();
    let ticket = eventually(Duration::from_secs(10), "the jetty ticket", || async {
        let t = get_json(&format!("{api}/api/v1/tickets"), &admin).await;
        t.as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(ticket["assignee"], "liu-fang");
    let id = ticket["id"].as_i64().unwrap();

    // 401 on every endpoint without a token or with an unknown one (the spec itself is public).
    for (method, path) in crowdgrid::api::ROUTES {
        let url = format!(
            "{api}{}",
            path.replace("{site}", "west-taihu")
                .replace("{zone}", "jetty")
                .replace("{id}", &id.to_string())
                .replace("{action}", "acknowledge")
        );
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (no, _) = call(m.clone(), &url, None, Some(json!({}))).await;
        let (bad, _) = call(m, &url, Some("cg_not_a_token"), Some(json!({}))).await;
        if *path == "/api/v1/openapi.json" {
            assert_eq!(no, StatusCode::OK);
        } else if path.starts_with("/api/v1/edges/{site}/{edge}/models/") {
            // Edges fetch models with their credential's signature, not a token; with `[edges] authentication =
            // "off"` (as here) edges have none and the pool is open to them (tests/camera_tuning.rs: signed).
            assert_eq!((no, bad), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND), "{method} {path}");
        } else {
            assert_eq!((no, bad), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED), "{method} {path}");
        }
    }

    // Grid workers see their own grids only.
    let me = get_json(&format!("{api}/api/v1/me"), &scenic).await;
    assert_eq!(me["role"], "grid_worker");
    assert_eq!(me["grids"], json!([["west-taihu", "island-scenic"]]));
    let zones = get_json(&format!("{api}/api/v1/zones"), &scenic).await;
    assert!(zones.as_array().unwrap().iter().all(|z| z["grid"] == "island-scenic"));
    assert_eq!(zones.as_array().unwrap().len(), 4);
    let (s, _) = call(Method::GET, &format!("{api}/api/v1/tickets/{id}"), Some(&scenic), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another grid's ticket");
    let tickets = get_json(&format!("{api}/api/v1/tickets"), &scenic).await;
    assert!(tickets.as_array().unwrap().is_empty(), "another grid's tickets are not listed");
    let (s, _) = call(Method::GET, &format!("{api}/api/v1/zones/west-taihu/jetty/series"), Some(&scenic), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(Method::GET, &format!("{api}/api/v1/zones/west-taihu/beach/series"), Some(&scenic), None).await;
    assert_eq!(s, StatusCode::OK);
    let geo = get_json(&format!("{api}/api/v1/zones.geojson"), &scenic).await;
    assert_eq!(geo["features"].as_array().unwrap().len(), 4);

    // Acting: only the assignee (or an operator); not a colleague, not an engineer.
    let ack = format!("{api}/api/v1/tickets/{id}/acknowledge");
    assert_eq!(call(Method::POST, &ack, Some(&scenic), Some(json!({}))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        call(Method::POST, &ack, Some(&both), Some(json!({}))).await.0,
        StatusCode::FORBIDDEN,
        "sees it, not theirs"
    );
    assert_eq!(call(Method::POST, &ack, Some(&engineer), Some(json!({}))).await.0, StatusCode::FORBIDDEN);
    let (s, body) = call(Method::POST, &ack, Some(&jetty), Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "acknowledged");
    assert_eq!(call(Method::POST, &ack, Some(&jetty), Some(json!({}))).await.0, StatusCode::CONFLICT, "twice");
    let resolve = format!("{api}/api/v1/tickets/{id}/resolve");
    assert_eq!(
        call(Method::POST, &resolve, Some(&jetty), Some(json!({}))).await.0,
        StatusCode::BAD_REQUEST,
        "a note is required"
    );
    let reassign = format!("{api}/api/v1/tickets/{id}/reassign");
    assert_eq!(
        call(Method::POST, &reassign, Some(&jetty), Some(json!({"to": "zhao-qiang"}))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(Method::POST, &reassign, Some(&operator), Some(json!({"to": "wang-lei"}))).await.0,
        StatusCode::BAD_REQUEST,
        "not on that grid"
    );
    let (s, body) =
        call(Method::POST, &reassign, Some(&operator), Some(json!({"to": "zhao-qiang", "note": "liu-fang off shift"})))
            .await;
    assert_eq!((s, body["assignee"].clone()), (StatusCode::OK, json!("zhao-qiang")));
    let (s, body) =
        call(Method::POST, &resolve, Some(&both), Some(json!({"note": "queue split into two lines"}))).await;
    assert_eq!((s, body["state"].clone()), (StatusCode::OK, json!("resolved")));
    let detail = get_json(&format!("{api}/api/v1/tickets/{id}"), &operator).await;
    let actors: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().to_string(), e["actor"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(actors[2], ("acknowledged".into(), "liu-fang".into()));
    assert_eq!(actors[3].0, "reassigned");
    assert!(actors[3].1.starts_with("operator:"));
    assert_eq!(actors[4], ("resolved".into(), "zhao-qiang".into()));

    // Role-scoped reads.
    for path in ["/api/v1/rules", "/api/v1/kpis", "/api/v1/outbox"] {
        assert_eq!(
            call(Method::GET, &format!("{api}{path}"), Some(&scenic), None).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(call(Method::GET, &format!("{api}{path}"), Some(&engineer), None).await.0, StatusCode::OK, "{path}");
    }
    let kpis = get_json(&format!("{api}/api/v1/kpis"), &operator).await;
    assert_eq!(kpis["resolved"], 1);
    assert_eq!(kpis["tiers"]["grid"], 1.0);

    // Tokens: admins only; the new token works at once.
    let body = json!({"name": "night-operator", "role": "operator"});
    assert_eq!(
        call(Method::POST, &format!("{api}/api/v1/tokens"), Some(&operator), Some(body.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, created) = call(Method::POST, &format!("{api}/api/v1/tokens"), Some(&admin), Some(body)).await;
    assert_eq!(s, StatusCode::OK);
    let fresh = created["token"].as_str().unwrap();
    assert_eq!(get_json(&format!("{api}/api/v1/me"), fresh).await["name"], "night-operator");
    central.stop().await;
}
