//! The `crowdgrid` binary: every shipped config validates, a bad one exits 64 listing every problem,
//! and the README's demo raises a ticket in each scenario.

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

#[test]
fn demo_raises_a_ticket_in_each_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = crowdgrid()
        .args(["demo", "--duration", "45", "--expect-tickets", "--every", "15", "--api-listen", "127.0.0.1:0"])
        .arg("--config-dir")
        .arg(root().join("config"))
        .arg("--data-dir")
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for site in ["west-taihu", "boai-school"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("tickets raised in {site}: "))).unwrap();
        let n: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 1, "{line}");
    }
    assert!(stdout.contains("/api/v1/zones"), "the demo prints where the API is");
    assert!(
        stdout.contains("links    checked: 4 pages served, 5 tokens accepted"),
        "the printed links work:\n{stdout}"
    );
    assert!(stdout.contains("/ui/#token=cg_") && stdout.contains("/ui/worker.html#token=cg_"), "{stdout}");

    // The KPIs of what the demo did, from the command line.
    let cfg = dir.path().join("central.toml");
    std::fs::write(
        &cfg,
        format!(
            "sites = [\"{}\", \"{}\"]\n[store]\npath = \"{}\"\n",
            root().join("config/west-taihu/site.toml").display(),
            root().join("config/boai-school/site.toml").display(),
            dir.path().join("demo/central.db").display()
        ),
    )
    .unwrap();
    let out = crowdgrid().args(["kpis", "--json", "--config"]).arg(&cfg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let k: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(k["tickets"].as_u64().unwrap() >= 2, "{k}");
    assert_eq!(k["targets"]["grid"], 0.7);
    let table = crowdgrid().args(["kpis", "--site", "west-taihu", "--config"]).arg(&cfg).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("resolved within   grid"));
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
