//! The web app end to end in headless Chromium: a centre on the embedded broker, tokens for an operator and
//! the West Taihu grid workers, then `node tests/browser/e2e.mjs` (playwright-core driving Debian's
//! `/usr/bin/chromium`): the map draws every zone, a reading over MQTT recolours a zone live and raises a
//! ticket, the grid worker acknowledges and resolves it on the phone view, the operator sees it resolved; an
//! engineer tightens the jetty's warning level in the console, backtests it (the candidate's extra ticket on the
//! chart), applies it, and the next jetty reading raises a ticket under the new level.
//! Screenshots of each step are kept in `target/browser-screenshots/`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use crowdgrid::auth::{Role, Tokens};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_end_to_end_in_chromium() {
    let browser_dir = browser::browser_dir();

    let dir = tempfile::tempdir().unwrap();
    let cfg = central_embedded(dir.path());
    let db = cfg.config.store.path.clone();
    let central = crowdgrid::central::start(cfg).await.expect("centre starts");
    let base = format!("http://{}", central.api_addr);
    let (mqtt_host, mqtt_port) = central.mqtt.clone();

    // An operator, and every worker of the West Taihu roster (the ticket goes to the least-loaded one).
    let tokens = Tokens::open(&db).expect("token table");
    let operator = tokens.create("e2e-operator", Role::Operator, None).await.unwrap();
    let engineer = tokens.create("e2e-engineer", Role::Engineer, None).await.unwrap();
    let workers = ["wang-lei", "zhang-min", "chen-jie", "liu-fang", "zhao-qiang"];
    let mut worker_tokens = serde_json::Map::new();
    for w in workers {
        let t = tokens.create(w, Role::GridWorker, Some(w)).await.unwrap();
        worker_tokens.insert(w.to_string(), serde_json::Value::String(t));
    }
    let wang_lei = worker_tokens["wang-lei"].as_str().unwrap().to_string();

    let shots = root().join("target/browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    let script = browser_dir.join("e2e.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .current_dir(&browser_dir)
        .env("BASE_URL", &base)
        .env("OPERATOR_TOKEN", &operator)
        .env("ENGINEER_TOKEN", &engineer)
        .env("WORKER_TOKEN", &wang_lei)
        .env("WORKER_TOKENS", serde_json::Value::Object(worker_tokens).to_string())
        .env("MQTT_HOST", &mqtt_host)
        .env("MQTT_PORT", mqtt_port.to_string())
        .env("SCREENSHOT_DIR", &shots)
        .env("SITE", "west-taihu")
        // A camera's readings: the worker's "Camera snapshot" appears only for zones a camera sees.
        .env("SOURCE", "camera")
        .env("ZONE", "beach");
    let out = tokio::time::timeout(Duration::from_secs(300), tokio::task::spawn_blocking(move || cmd.output()))
        .await
        .expect("the browser test finishes within 5 minutes")
        .unwrap()
        .unwrap_or_else(|e| panic!("node: {e}: {}", browser::SETUP_HINT));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    central.stop().await;
    assert!(
        out.status.success(),
        "tests/browser/e2e.mjs failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        shots.display()
    );
    println!("{stdout}");
    let pngs = std::fs::read_dir(&shots)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"));
    assert!(pngs.count() >= 6, "expected a screenshot per step in {}", shots.display());
}
