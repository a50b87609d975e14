//! The `crowdgrid-edge` binary as an operator runs it, in both builds: it checks edge files (a broken one exits
//! 64 with every problem), says what it can run, and a gate edge runs and stops cleanly on SIGTERM. The build
//! without the `vision` feature (scripts/test.sh runs these tests in it too, and checks that the binary links
//! neither OpenCV nor ONNX Runtime) refuses a camera with that reason instead of failing to load.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn edge() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crowdgrid-edge"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn it_says_what_it_can_run_and_checks_edge_files() {
    let out = edge().arg("features").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let vision = cfg!(feature = "vision");
    assert_eq!(text.trim(), if vision { "vision: yes (cameras, drones)" } else { "vision: no" });

    let ok = edge().arg("check-config").arg(root().join("config/west-taihu/edge.toml")).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok: "), "{}", String::from_utf8_lossy(&ok.stdout));
    // A camera's file is read and checked in both builds.
    let cam = edge().arg("check-config").arg(root().join("config/boai-school/edge-camera.toml")).output().unwrap();
    assert!(cam.status.success(), "{}", String::from_utf8_lossy(&cam.stderr));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("edge.toml");
    std::fs::write(&bad, "[edge]\nid = \"Bad Id\"\nsite = \"nowhere.toml\"\n[mqtt]\nhost = \"h\"\nspeed = 1\n")
        .unwrap();
    let out = edge().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid configuration"));
}

#[cfg(not(feature = "vision"))]
#[test]
fn the_gate_build_refuses_a_camera_with_the_reason() {
    let out =
        edge().arg("run").arg("--config").arg(root().join("config/boai-school/edge-camera.toml")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("built without the `vision` feature"), "{err}");
}

#[test]
fn a_gate_edge_runs_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let site = root().join("config/west-taihu/site.toml");
    let cfg = dir.path().join("edge.toml");
    // No broker listens on the port: the edge queues and keeps running, as at a gate whose uplink is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &cfg,
        format!(
            r#"[edge]
id = "gate-edge-1"
site = "{site}"
[mqtt]
host = "127.0.0.1"
port = {port}
[queue]
path = "{queue}"
[[sources]]
type = "gate"
id = "north-gates"
zone = "campground-north"
report_interval_ms = 200
input = {{ kind = "webhook", listen = "127.0.0.1:0", path = "/gate-events" }}
"#,
            site = site.display(),
            queue = dir.path().join("q.db").display(),
        ),
    )
    .unwrap();
    let mut child = edge().arg("run").arg("--config").arg(&cfg).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "the edge keeps running without its broker");
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "the edge stops within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(dir.path().join("q.db").exists(), "the queue is in its state directory");
}
