//! What an operator does by hand: the `mosquitto_pub` example of docs/PROTOCOL.md (signed with `openssl`, logged
//! in with a credential) is accepted as written by a centre that requires signatures, and an edge that vanishes
//! (SIGKILL) is reported offline through its Last Will.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The shell lines of the worked example, taken from the document itself.
fn documented_example() -> String {
    let doc = std::fs::read_to_string(root().join("docs/PROTOCOL.md")).unwrap();
    let start = doc.find("TS=$(date -u").expect("the example sets TS");
    let end = start + doc[start..].find("```").expect("the example ends");
    doc[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_mosquitto_pub_example_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    loaded.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Required;
    let db = loaded.config.store.path.clone();
    // What `crowdgrid edge-credential create --site west-taihu --edge manual` prints.
    let cred = crowdgrid::auth::edge_credentials::EdgeCredentials::open(&db, &loaded.config.edges.key_path(&db))
        .unwrap()
        .create("west-taihu", "manual")
        .await
        .unwrap();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (_, port) = central.mqtt.clone();
    let script = documented_example().replace("-p 1884", &format!("-p {port}"));
    let run = || Command::new("bash").arg("-c").arg(&script).env("CRED", &cred.secret).output();
    let out = run().expect("bash runs (mosquitto-clients and openssl are installed by scripts/setup.sh --test)");
    assert!(out.status.success(), "{script}\n{}", String::from_utf8_lossy(&out.stderr));
    let m = central.metrics.clone();
    eventually(Duration::from_secs(10), "the hand-made reading stored", || async {
        (m.readings_stored.get() == 1).then_some(())
    })
    .await;
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    // 30,000 people on the 8,001 m² beach is 3.75/m², above its 3.6 warning: a ticket, as the document says.
    let t = eventually(Duration::from_secs(10), "a beach ticket", || async {
        get_json(&format!("{api}/api/v1/tickets"), &tok).await.as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(t["zone"], "beach");
    // Sending it again is dropped as a duplicate, as documented.
    assert!(run().unwrap().status.success());
    eventually(Duration::from_secs(10), "the duplicate counted", || async {
        (m.readings_duplicate.get() == 1).then_some(())
    })
    .await;
    assert_eq!(m.readings_stored.get(), 1);
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_is_reported_offline_by_its_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = central_embedded(dir.path());
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (_, port) = central.mqtt.clone();
    let api = format!("http://{}", central.api_addr);
    let tok = admin(&db).await;
    let edge_id = format!("lwt-{}", unique());
    let cfg = edge_file(dir.path(), &edge_id, port, "crowdgrid/v1", &simulated_source(500));
    let mut edge = Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["edge", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = |want: &'static str| {
        let (api, tok, edge_id) = (api.clone(), tok.clone(), edge_id.clone());
        move || {
            let (api, tok, edge_id) = (api.clone(), tok.clone(), edge_id.clone());
            async move {
                let edges = get_json(&format!("{api}/api/v1/edges"), &tok).await;
                edges
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["edge_id"] == edge_id.as_str() && e["state"] == want)
                    .then_some(())
            }
        }
    };
    eventually(Duration::from_secs(15), "the edge online", state("online")).await;
    edge.kill().unwrap();
    edge.wait().unwrap();
    // keep_alive_s = 5 in the test edge file: the broker publishes the will after ~1.5 × 5 s.
    eventually(Duration::from_secs(20), "the Last Will marking the edge offline", state("offline")).await;
    central.stop().await;
}
