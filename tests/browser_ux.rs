//! The pages as operators, grid workers and engineers use them (`tests/browser/ux.mjs` in headless Chromium):
//! a centre with both scenarios and a generated city of 2,000+ zones; the city view's render time and
//! responsiveness, labels that do not overlap (checked geometrically), units, an edge going offline, page
//! weight, axe on every page and dialog, and "disconnected"/"live" as this harness stops the centre and starts
//! it again on the same addresses. Screenshots go to `target/browser-screenshots-ux/`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use crowdgrid::auth::{Role, Tokens};
use crowdgrid::central::config::{BrokerConfig, LoadedCentral};
use crowdgrid::simcity::gen::{generate, CitySize};
use crowdgrid_proto::site::Site;

/// The generated part: 6 sub-districts, 760 grids, 2,100 zones.
const CITY: CitySize = CitySize { subdistricts: 6, grids: 760, zones: 2100, seed: 3 };

fn config(dir: &Path, api: std::net::SocketAddr, mqtt: std::net::SocketAddr) -> LoadedCentral {
    let mut c = central_embedded(dir);
    c.config.api.listen = api;
    if let BrokerConfig::Embedded { listen, .. } = &mut c.config.broker {
        *listen = mqtt;
    }
    for s in generate(CITY) {
        c.sites.push(Arc::new(Site::from_config(s, &dir.join("generated.toml")).expect("a generated site validates")));
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_as_people_use_them() {
    let browser_dir = browser::browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let api = crowdgrid::central::broker::free_loopback_addr().unwrap();
    let mqtt = crowdgrid::central::broker::free_loopback_addr().unwrap();
    let cfg = config(dir.path(), api, mqtt);
    let db = cfg.config.store.path.clone();
    let zones: usize = cfg.sites.iter().map(|s| s.zones.len()).sum();
    assert!(zones >= 2000);
    let mut central = Some(crowdgrid::central::start(cfg).await.expect("centre starts"));

    let tokens = Tokens::open(&db).expect("token table");
    let operator = tokens.create("ux-operator", Role::Operator, None).await.unwrap();
    let engineer = tokens.create("ux-engineer", Role::Engineer, None).await.unwrap();
    let worker = tokens.create("xu-jing", Role::GridWorker, Some("xu-jing")).await.unwrap();
    let mut workers = serde_json::Map::new();
    for w in ["sun-hao", "zhou-lin", "huang-wei"] {
        workers.insert(w.into(), tokens.create(w, Role::GridWorker, Some(w)).await.unwrap().into());
    }
    workers.insert("xu-jing".into(), worker.clone().into());
    let shots = root().join("target/browser-screenshots-ux");
    let _ = std::fs::remove_dir_all(&shots);

    let mut child = Command::new("node")
        .arg(browser_dir.join("ux.mjs"))
        .current_dir(&browser_dir)
        .env("BASE_URL", format!("http://{api}"))
        .env("OPERATOR_TOKEN", &operator)
        .env("ENGINEER_TOKEN", &engineer)
        .env("WORKER_TOKEN", &worker)
        .env("WORKER_TOKENS", serde_json::Value::Object(workers).to_string())
        .env("MQTT_HOST", mqtt.ip().to_string())
        .env("MQTT_PORT", mqtt.port().to_string())
        .env("SCREENSHOT_DIR", &shots)
        .env("CITY_ZONES", zones.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}: {}", browser::SETUP_HINT));
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let mut transcript = String::new();
    let run = async {
        while let Some(line) = rx.recv().await {
            println!("{line}");
            transcript.push_str(&line);
            transcript.push('\n');
            let answer = match line.as_str() {
                "@@stop-centre" => {
                    if let Some(c) = central.take() {
                        c.stop().await;
                    }
                    "ok stopped"
                }
                "@@start-centre" => {
                    // Same API address, so the pages reconnect to it; a new broker port, because the embedded
                    // broker (rumqttd) keeps its listener until the process exits (a real restart is a new
                    // process), and the pages do not speak MQTT.
                    let mqtt = crowdgrid::central::broker::free_loopback_addr().unwrap();
                    let c = crowdgrid::central::start(config(dir.path(), api, mqtt)).await.expect("centre restarts");
                    central = Some(c);
                    "ok started"
                }
                _ => continue,
            };
            writeln!(stdin, "{answer}").unwrap();
            stdin.flush().unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(420), run).await.expect("the browser test finishes within 7 minutes");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    if let Some(c) = central.take() {
        c.stop().await;
    }
    assert!(
        out.status.success(),
        "tests/browser/ux.mjs failed ({}); screenshots in {}\n--- stdout\n{transcript}\n--- stderr\n{}",
        out.status,
        shots.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(transcript.contains("all steps passed"), "{transcript}");
}
