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
