//! The `crowdgrid` binary: every shipped config validates, a bad one exits 64 listing every problem (the
//! README's demo is tests/demo.rs).

mod common;

use std::process::Command;

use common::root;

fn crowdgrid() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
}

fn config_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            config_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_file_in_config_validates() {
    let mut files = Vec::new();
    config_files(&root().join("config"), &mut files);
    assert!(files.len() >= 6, "found {files:?}");
    for f in &files {
        crowdgrid::cli::check_one(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    let out = crowdgrid().arg("check-config").args(&files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_config_exits_64_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let site = root().join("config/west-taihu/site.toml");
    let bad = dir.path().join("central.toml");
    std::fs::write(
        &bad,
        format!(
            "sites = [\"{}\"]\n[broker]\nmode = \"embedded\"\ntopic_prefix = \"a/#\"\n[ingest]\nmax_payload_bytes = 10\nmax_density = -1.0\n\
             [store]\npath = \"x.db\"\nretention_days = 0\ndispatch_url = \"mysql://db/x\"\n",
            site.display()
        ),
    )
    .unwrap();
    let out = crowdgrid().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "broker.topic_prefix",
        "ingest.max_payload_bytes",
        "ingest.max_density",
        "store.retention_days",
        "store.dispatch_url",
        "5 problem(s)",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    let unknown = dir.path().join("typo.toml");
    std::fs::write(
        &unknown,
        std::fs::read_to_string(root().join("config/central.toml"))
            .unwrap()
            .replace("[rules]", "[rules]\nclear_fr_s = 3"),
    )
    .unwrap();
    let out = crowdgrid().arg("check-config").arg(&unknown).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clear_fr_s"));

    let out = crowdgrid().args(["central", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "the service refuses to start on bad config too");
}

#[tokio::test]
async fn token_cli_writes_to_postgres_when_the_dispatch_state_is_there() {
    let schema = crowdgrid::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("central.toml");
    let text = std::fs::read_to_string(root().join("config/central.toml")).unwrap();
    let sites = root().join("config");
    let text = text
        .replace("\"west-taihu/", &format!("\"{}/west-taihu/", sites.display()))
        .replace("\"boai-school/", &format!("\"{}/boai-school/", sites.display()))
        .replace(
            "path = \"../data/central.db\"",
            &format!("path = \"central.db\"\ndispatch_url = \"{}\"", schema.url()),
        );
    std::fs::write(&config, text).unwrap();
    let out = crowdgrid()
        .args(["token", "create", "--name", "pg-ops", "--role", "operator", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = crowdgrid().args(["token", "list", "--config"]).arg(&config).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("pg-ops"));
    let pool = crowdgrid::store::pg_schema::connect(&schema.url()).await.unwrap();
    let rec = crowdgrid::auth::Tokens::from_pool(pool).lookup(&secret).await.unwrap().unwrap();
    assert_eq!(rec.name, "pg-ops");
    schema.drop().await.unwrap();
}

#[test]
fn eval_model_lists_every_labels_problem_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("labels.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\n[[images]]\nfile = \"nope.jpg\"\npersons = 1\nvehicles = 0\nboxes = [{ class = \"person\", box = [5, 5, 1, 1] }]\n",
    )
    .unwrap();
    let out = crowdgrid().args(["eval-model", "--quiet", "--labels"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["file not found", "boxes[0]: want [x1, y1, x2, y2]", "2 problem(s)"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let out = crowdgrid().args(["eval-model", "--quiet", "--thresholds", "0.5:0.4:0.1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));

    // Two images, one pass: the table, the JSON report and the SVG plot.
    let set = dir.path().join("two.toml");
    let data = root().join("tests/data/vision");
    std::fs::write(
        &set,
        format!(
            "name = \"two\"\n[[images]]\nfile = \"{}\"\npersons = 6\nvehicles = 2\n[[images]]\nfile = \"{}\"\npersons = 7\nvehicles = 2\n",
            data.join("vtest_300.jpg").display(),
            data.join("vtest_100.jpg").display()
        ),
    )
    .unwrap();
    let (json, svg) = (dir.path().join("r.json"), dir.path().join("r.svg"));
    let out = crowdgrid()
        .args(["eval-model", "--quiet", "--iou", "0.6", "--inputs", "fitted", "--slicing", "off", "--thresholds"])
        .arg("0.4,0.45,0.5")
        .arg("--labels")
        .arg(&set)
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("recommended person threshold: 0.45"), "{table}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["set"], "two");
    assert_eq!(report["runs"][0]["images"][0]["persons"], serde_json::json!([6, 6, 6]), "{report:#}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("recommended 0.45"), "{}", &plot[..plot.len().min(300)]);
}
