//! Two centre instances sharing PostgreSQL, each on its own broker: a ticket raised by A (from a reading only A
//! receives) reaches the live stream of an operator connected to B, once, with the ticket as stored, and A's own
//! stream carries it once too (its own announcement is not forwarded back to it); camera settings and geometry
//! stored through A are what B wants of the camera too (and what B republishes to the edge when it starts).

mod common;

use std::time::Duration;

use common::*;
use crowdgrid::auth::Role;

/// Reads an event stream for `for_`; its ticket events as (event, ticket id, zone).
async fn ticket_events(mut resp: reqwest::Response, for_: Duration) -> Vec<(String, i64, String)> {
    let mut text = String::new();
    let _ = tokio::time::timeout(for_, async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    text.split("\n\n")
        .filter(|e| e.lines().any(|l| l == "event: ticket"))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .map(|v| {
            (
                v["event"].as_str().unwrap().to_string(),
                v["ticket"]["id"].as_i64().unwrap(),
                v["ticket"]["zone"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Two instances, A and B, each with its own directory and embedded broker, sharing the schema's PostgreSQL;
/// and a token of `role` in the shared store.
struct Pair {
    a: crowdgrid::central::Central,
    b: crowdgrid::central::Central,
    token: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn pair(schema: &crowdgrid::store::pg_schema::TestSchema, role: Role) -> Pair {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let start = |dir: &std::path::Path| {
        let mut c = central_embedded(dir);
        c.config.store.dispatch_url = Some(schema.url());
        crowdgrid::central::start(c)
    };
    let a = start(dirs.0.path()).await.unwrap();
    let b = start(dirs.1.path()).await.unwrap();
    let db = crowdgrid::store::dispatch_db::DispatchDb::open(&dirs.0.path().join("x.db"), Some(&schema.url())).await;
    let token = token_in(&db.unwrap().tokens().unwrap(), role, None).await;
    Pair { a, b, token, _dirs: dirs }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_raised_on_one_instance_reaches_the_stream_of_the_other() {
    trace();
    let schema = crowdgrid::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
    let beach = {
        let dir = tempfile::tempdir().unwrap();
        let c = central_embedded(dir.path());
        let site = c.sites.iter().find(|s| s.config.id == "west-taihu").unwrap().clone();
        let z = site.zone("beach").unwrap();
        (z.area_m2, z.thresholds.warning)
    };
    let Pair { a, b, token: operator, _dirs } = pair(&schema, Role::Operator).await;

    let c = reqwest::Client::new();
    let open = |api: String| c.get(format!("{api}/api/v1/events")).bearer_auth(&operator).send();
    let on_b = open(format!("http://{}", b.api_addr)).await.unwrap();
    let on_a = open(format!("http://{}", a.api_addr)).await.unwrap();
    assert_eq!((on_a.status().as_u16(), on_b.status().as_u16()), (200, 200));
    let readers = tokio::spawn(async move {
        let w = Duration::from_secs(6);
        tokio::join!(ticket_events(on_a, w), ticket_events(on_b, w))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Only A's broker hears the beach over its warning level: only A can raise the ticket.
    let (host, port) = a.mqtt.clone();
    publish_reading(&host, port, "west-taihu", "beach", beach.0, beach.1 * 1.3, 1).await;
    let (seen_a, seen_b) = readers.await.unwrap();
    let raised = |seen: &[(String, i64, String)]| -> Vec<i64> {
        seen.iter().filter(|(e, _, z)| e == "raised" && z == "beach").map(|(_, id, _)| *id).collect()
    };
    assert_eq!(raised(&seen_a).len(), 1, "A's own stream: once ({seen_a:?})");
    assert_eq!(raised(&seen_b), raised(&seen_a), "B's stream carries the same ticket, once ({seen_b:?})");
    a.stop().await;
    b.stop().await;
    schema.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_settings_changed_on_one_instance_are_what_the_other_wants_too() {
    let schema = crowdgrid::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
    let Pair { a, b, token: engineer, _dirs } = pair(&schema, Role::Engineer).await;
    let camera = "/api/v1/cameras/boai-school/gate-edge/gate-cam/settings";
    let body = serde_json::json!({
        "person_threshold": 0.5,
        "geometry": serde_json::to_value(crowdgrid_proto::testing::camera_geometry()).unwrap(),
        "note": "drawn on A",
    });
    let (code, out) = post_json(&format!("http://{}{camera}", a.api_addr), &engineer, body).await;
    assert!(code == 201 || code == 202, "{code} {out}");
    let v = out["version"].as_i64().unwrap();
    let on_b = get_json(&format!("http://{}/api/v1/cameras", b.api_addr), &engineer).await;
    let cam = on_b.as_array().unwrap().iter().find(|c| c["camera"] == "gate-cam").cloned().unwrap_or_default();
    assert_eq!(cam["desired"]["version"], v, "B wants what A stored: {cam}");
    assert_eq!(cam["desired"]["geometry"]["zones"][0]["zone"], "gate-plaza", "{cam}");
    let history = get_json(&format!("http://{}{camera}", b.api_addr), &engineer).await;
    assert_eq!(history[0]["note"], "drawn on A");
    a.stop().await;
    b.stop().await;
    schema.drop().await.unwrap();
}
