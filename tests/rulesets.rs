//! Rule sets as versioned data, end to end on a running centre: an engineer's change through the API is applied
//! without a restart (the next reading is judged by the new level), shown in the rules view, audited (who, why,
//! diff); a rollback restores exactly the previous behaviour; an invalid change is refused with every problem
//! and changes nothing; operators may read, grid workers may not; a backtest of a candidate through the API; and
//! with two instances on PostgreSQL a change made on one is in force on the other.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{central_embedded, eventually, get_json, post_json, token, token_in, unique};
use crowdgrid::auth::Role;
use crowdgrid::central::config::{BrokerConfig, LoadedCentral};
use crowdgrid_proto::{Reading, SourceKind};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};

fn rules(warning: f64) -> String {
    format!(
        "site = \"west-taihu\"\n\n[[rule]]\nid = \"jetty-crowd\"\nmetric = \"density\"\nzones = [\"jetty\"]\n\
         levels = {{ notice = 1.0, warning = {warning}, critical = 3.5 }}\nclear_for_s = 60\n"
    )
}

fn jetty_warning(rules: &Value) -> f64 {
    let r = rules.as_array().unwrap().iter().find(|r| r["rule"] == "jetty-crowd" && r["zone"] == "jetty").unwrap();
    r["levels"]["warning"].as_f64().unwrap()
}

async fn publish(client: &AsyncClient, seq: u64, density: f64) {
    let mut r =
        Reading::new("west-taihu", "jetty", SourceKind::Camera, "rs/cam", Utc::now(), density * 1499.0, 1499.0, 0.9);
    r.density = density;
    r.seq = seq;
    let body = serde_json::to_vec(&r).unwrap();
    client.publish("crowdgrid/v1/west-taihu/jetty/reading", QoS::AtLeastOnce, false, body).await.unwrap();
}

fn centre(dir: &std::path::Path) -> LoadedCentral {
    std::fs::write(dir.join("rules.toml"), rules(2.5)).unwrap();
    let mut c = central_embedded(dir);
    c.config.rule_files = vec![dir.join("rules.toml")];
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_is_applied_live_audited_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let central = crowdgrid::central::start(centre(dir.path())).await.unwrap();
    let api = format!("http://{}", central.api_addr);
    let db = dir.path().join("central.db");
    let (engineer, operator) = (token(&db, Role::Engineer, None).await, token(&db, Role::Operator, None).await);
    let worker = token(&db, Role::GridWorker, Some("liu-fang")).await;
    let (host, port) = central.mqtt.clone();
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("rs-{}", unique()), host, port), 50);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });

    let before = get_json(&format!("{api}/api/v1/rules"), &operator).await;
    assert_eq!(jetty_warning(&before), 2.5);
    // 2.2/m² is under the file's warning (2.5): no ticket.
    publish(&client, 1, 2.2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(get_json(&format!("{api}/api/v1/tickets"), &operator).await.as_array().unwrap().is_empty());

    // Who may change: not a grid worker, not an operator.
    let change = json!({ "site": "west-taihu", "toml": rules(2.0), "note": "ferry queue builds faster on holidays" });
    assert_eq!(post_json(&format!("{api}/api/v1/rulesets"), &worker, change.clone()).await.0, 403);
    assert_eq!(post_json(&format!("{api}/api/v1/rulesets"), &operator, change.clone()).await.0, 403);
    let resp = reqwest::Client::new().get(format!("{api}/api/v1/rulesets")).bearer_auth(&worker).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // An invalid change: every problem listed, nothing stored or applied.
    let bad =
        rules(-1.0).replace("clear_for_s = 60", "clear_for_s = -5").replace("[\"jetty\"]", "[\"jetty\", \"moon\"]");
    let (status, body) =
        post_json(&format!("{api}/api/v1/rulesets"), &engineer, json!({ "site": "west-taihu", "toml": bad })).await;
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in ["moon", "clear_for_s", "warning"] {
        assert!(problems.contains(needle), "{needle} missing from {problems}");
    }
    let sets = get_json(&format!("{api}/api/v1/rulesets"), &operator).await;
    assert!(sets["history"].as_array().unwrap().is_empty(), "{sets}");

    // The engineer's change: applied at once, the next reading judged by it.
    let (status, body) = post_json(&format!("{api}/api/v1/rulesets"), &engineer, change).await;
    assert_eq!(status, 201, "{body}");
    let version = body["version"].as_i64().unwrap();
    assert_eq!(jetty_warning(&get_json(&format!("{api}/api/v1/rules"), &operator).await), 2.0);
    publish(&client, 2, 2.2).await;
    let t = eventually(Duration::from_secs(10), "a ticket at the new level", || async {
        get_json(&format!("{api}/api/v1/tickets"), &operator).await.as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!((t["rule"].as_str(), t["level"].as_str()), (Some("jetty-crowd"), Some("warning")));

    // Audited: who, why, the diff; the file's rules kept as the version before it.
    let sets = get_json(&format!("{api}/api/v1/rulesets"), &operator).await;
    let history = sets["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{sets}");
    let (new, file) = (&history[0], &history[1]);
    assert_eq!((new["version"].as_i64(), new["author"].as_str()), (Some(version), Some("test-engineer")));
    assert_eq!(new["note"], "ferry queue builds faster on holidays");
    let diff = new["diff"].as_str().unwrap();
    assert!(
        diff.contains("-levels = { notice = 1.0, warning = 2.5")
            && diff.contains("+levels = { notice = 1.0, warning = 2"),
        "{diff}"
    );
    assert_eq!((file["author"].as_str(), file["toml"].as_str()), (Some("config"), Some(rules(2.5).as_str())));
    assert_eq!(
        sets["sites"].as_array().unwrap().iter().find(|s| s["site"] == "west-taihu").unwrap()["version"],
        version
    );

    // Rollback to the file's version: the rules view is exactly what it was.
    let url = format!("{api}/api/v1/rulesets/{}/rollback", file["version"]);
    let (status, body) = post_json(&url, &engineer, json!({ "note": "too many tickets" })).await;
    assert_eq!(status, 201, "{body}");
    let after = get_json(&format!("{api}/api/v1/rules"), &operator).await;
    let strip = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                json!([r["site"], r["zone"], r["rule"], r["levels"], r["for_s"], r["clear_for_s"], r["cooldown_s"]])
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before), "the rules in force are the ones before the change");
    let sets = get_json(&format!("{api}/api/v1/rulesets"), &operator).await;
    assert!(sets["history"][0]["note"].as_str().unwrap().starts_with("rollback to version"), "{sets}");

    // A backtest of a candidate over what was stored, through the API: engineers only.
    let req = json!({ "candidates": [{ "name": "stricter", "site": "west-taihu", "toml": rules(2.0) }] });
    assert_eq!(post_json(&format!("{api}/api/v1/backtest"), &operator, req.clone()).await.0, 403);
    let (status, report) = post_json(&format!("{api}/api/v1/backtest"), &engineer, req).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["readings"], 2);
    assert_eq!(report["sets"][1]["name"], "stricter");
    assert_eq!(report["sets"][1]["tickets"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["sets"][0]["tickets"].as_array().unwrap().len(), 0, "2.2 is under the current 2.5: {report}");
    central.stop().await;

    // `crowdgrid rules export`: the live set back as files (here the rolled-back text, as the newest version).
    let config = dir.path().join("central.toml");
    let site = common::root().join("config/west-taihu/site.toml");
    std::fs::write(
        &config,
        format!("sites = [\"{}\"]\nrule_files = [\"rules.toml\"]\n[store]\npath = \"central.db\"\n", site.display()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["rules", "export", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("export"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("west-taihu:") && text.contains("(version"), "{text}");
    let exported = std::fs::read_to_string(dir.path().join("export/west-taihu.rules.toml")).unwrap();
    assert_eq!(exported, rules(2.5));
}

/// Two centre instances sharing PostgreSQL: a change made through one is in force on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_instance_reaches_the_other() {
    let schema = crowdgrid::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let start = |dir: std::path::PathBuf| {
        let url = schema.url();
        async move {
            let mut c = centre(&dir);
            c.config.store.dispatch_url = Some(url);
            if let BrokerConfig::Embedded { listen, .. } = &mut c.config.broker {
                *listen = crowdgrid::central::broker::free_loopback_addr().unwrap();
            }
            crowdgrid::central::start(c).await.unwrap()
        }
    };
    let a = start(a_dir.path().to_path_buf()).await;
    let b = start(b_dir.path().to_path_buf()).await;
    let db = crowdgrid::store::dispatch_db::DispatchDb::open(&a_dir.path().join("x.db"), Some(&schema.url())).await;
    let tokens = db.unwrap().tokens().unwrap();
    let engineer = token_in(&tokens, Role::Engineer, None).await;
    let (a_api, b_api) = (format!("http://{}", a.api_addr), format!("http://{}", b.api_addr));
    assert_eq!(jetty_warning(&get_json(&format!("{b_api}/api/v1/rules"), &engineer).await), 2.5);
    let change = json!({ "site": "west-taihu", "toml": rules(1.8), "note": "from instance A" });
    assert_eq!(post_json(&format!("{a_api}/api/v1/rulesets"), &engineer, change).await.0, 201);
    eventually(Duration::from_secs(10), "instance B applying A's change", || async {
        (jetty_warning(&get_json(&format!("{b_api}/api/v1/rules"), &engineer).await) == 1.8).then_some(())
    })
    .await;
    a.stop().await;
    b.stop().await;
    schema.drop().await.unwrap();
}
