//! The OpenAPI document against the live server, by a property-based API tester: schemathesis (PyPI, in the test
//! venv `scripts/setup.sh --test` makes) generates requests for every operation — ones the schema allows and
//! ones it does not (no `Content-Type`, wrong types, missing fields), a bounded number per operation, deterministic
//! — and checks that none gets a server error and that every answer's status, content type and body are the ones
//! the document declares for it. (Not checked: that every schema-valid request is accepted — a rules file for the
//! wrong site is valid JSON and rightly answered 422, which the document declares.)
//!
//! The event stream (`GET /api/v1/events`) is left out: it never ends, so a response cannot be checked whole.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_the_schema_allows_gets_a_documented_answer() {
    let st = root().join(".cache/venv/bin/st");
    assert!(st.is_file(), "{} missing: run scripts/setup.sh --test", st.display());
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = central_embedded(dir.path());
    // Hundreds of requests a second from one token: the per-token rate limit would answer 429 to most.
    loaded.config.api.rate_per_token = 1_000_000.0;
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let admin = admin(&db).await;
    let base = format!("http://{}", central.api_addr);
    // schemathesis keeps its example database in its working directory: the test's own.
    let cwd = dir.path().to_path_buf();
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::task::spawn_blocking(move || {
            Command::new(&st)
                .current_dir(&cwd)
                .args(["run", &format!("{base}/api/v1/openapi.json")])
                .args(["--url", &base])
                .args(["-H", &format!("Authorization: Bearer {admin}")])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                ])
                .args(["--mode", "all", "--phases", "examples,coverage,fuzzing"])
                .args(["--max-examples", "15", "--generation-deterministic"])
                .args(["--exclude-path", "/api/v1/events"])
                .args(["--request-timeout", "20", "--no-color"])
                .env("SCHEMATHESIS_HOOKS", "")
                .output()
        }),
    )
    .await
    .expect("schemathesis finishes within 10 minutes")
    .unwrap()
    .unwrap_or_else(|e| panic!("schemathesis: {e}"));
    central.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found requests the server answers against its own document:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
