//! One engine, two clocks: readings published live to a running centre raise tickets; a backtest of the same
//! stored readings with the same rules gives the same tickets (raised at the same data time, same level, same
//! reopenings; resolved within a second — live, the clear timer may also run on the wall clock between
//! readings). A candidate rule set is compared against the current one, and the CLI prints both.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{eventually, root, unique};
use crowdgrid::backtest_cli::{run_backtest, BacktestArgs};
use crowdgrid::central::config::{BrokerConfig, CentralConfig};
use crowdgrid_proto::{Level, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const RULES: &str = r#"site = "west-taihu"
[[rule]]
id = "jetty-crowd"
metric = "density"
zones = ["jetty"]
levels = { notice = 1.0, warning = WARNING, critical = 3.0 }
for_s = 1
clear_for_s = 2
"#;

/// Density at data second `t` of the 26 s script: up to warning (raised after 1 s), critical, back down
/// (resolved after 2 s), up again within the reopen window (reopened), down, and a 1.8/m² bump that only a
/// warning level of 1.5 sees.
fn density(t: f64) -> f64 {
    match t {
        t if t < 2.0 => 0.5,
        t if t < 6.0 => 2.5,
        t if t < 8.0 => 3.5,
        t if t < 12.0 => 0.5,
        t if t < 15.0 => 2.5,
        t if t < 19.0 => 0.5,
        t if t < 22.0 => 1.8,
        _ => 0.5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_of_what_the_centre_saw_raises_the_tickets_it_raised() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), RULES.replace("WARNING", "2.0")).unwrap();
    std::fs::write(dir.path().join("candidate.toml"), RULES.replace("WARNING", "1.5")).unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "sites = [\"{}\"]\nrule_files = [\"rules.toml\"]\n[store]\npath = \"central.db\"\n",
            root().join("config/west-taihu/site.toml").display()
        ),
    )
    .unwrap();
    let mut loaded = CentralConfig::load(&config).unwrap();
    loaded.config.api.listen = "127.0.0.1:0".parse().unwrap();
    loaded.config.edges.authentication = crowdgrid::auth::edge_credentials::Authentication::Off;
    loaded.config.broker = BrokerConfig::Embedded {
        listen: crowdgrid::central::broker::free_loopback_addr().unwrap(),
        max_payload_bytes: 1024 * 1024,
        topic_prefix: "crowdgrid/v1".into(),
    };
    let central = crowdgrid::central::start(loaded).await.unwrap();
    let (host, port) = central.mqtt.clone();

    // Live: ten readings a second, stamped as they are sent (as an edge does).
    let n = 260u64;
    let (client, mut el) = AsyncClient::new(MqttOptions::new(format!("bt-{}", unique()), host, port), 300);
    let poller = tokio::spawn(async move {
        let mut acks = 0;
        while acks < n {
            if let Ok(Event::Incoming(Packet::PubAck(_))) = el.poll().await {
                acks += 1;
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for i in 0..n {
        tick.tick().await;
        let d = density(i as f64 / 10.0);
        let mut r =
            Reading::new("west-taihu", "jetty", SourceKind::Camera, "bt/cam", Utc::now(), d * 1499.0, 1499.0, 0.9);
        r.density = d;
        r.seq = i + 1;
        let body = serde_json::to_vec(&r).unwrap();
        client.publish("crowdgrid/v1/west-taihu/jetty/reading", QoS::AtLeastOnce, false, body).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), poller).await.unwrap().unwrap();
    let m = central.metrics.clone();
    eventually(Duration::from_secs(15), "every reading stored", || async {
        (m.readings_stored.get() == n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    central.stop().await;

    let db = rusqlite::Connection::open(dir.path().join("central.db")).unwrap();
    let mut stmt = db.prepare("SELECT rule, level, opened_at, closed_at, reopened FROM tickets ORDER BY id").unwrap();
    let live: Vec<(String, String, i64, Option<i64>, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(live.len(), 1, "one ticket, raised, upgraded, resolved, reopened, resolved: {live:?}");
    // Reopened at warning (a reopened ticket takes the level it is reopened at).
    assert_eq!((live[0].1.as_str(), live[0].4), ("warning", 1), "{live:?}");

    let args = BacktestArgs {
        config: config.clone(),
        candidates: vec![dir.path().join("candidate.toml")],
        site: None,
        from: None,
        to: None,
        tick_s: 1,
        json: false,
        csv: None,
        chart: None,
        svg: None,
    };
    let report = run_backtest(&args, false).unwrap();
    assert_eq!(report.readings, n);
    let current = &report.sets[0];
    assert_eq!(current.tickets.len(), live.len(), "{:#?}", current.tickets);
    for (sim, (rule, level, opened, closed, reopened)) in current.tickets.iter().zip(&live) {
        let t = &sim.ticket;
        assert_eq!((t.rule.as_str(), t.level.as_str(), t.reopened as i64), (rule.as_str(), level.as_str(), *reopened));
        assert_eq!(t.opened.timestamp_millis(), *opened, "raised at the same reading");
        let (a, b) = (t.closed.map(|c| c.timestamp_millis()), *closed);
        assert!(
            matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= 1500),
            "resolved within a second or so: backtest {a:?}, live {b:?}"
        );
    }
    assert_eq!(current.tickets[0].ticket.level, Level::Warning);

    // The candidate (warning at 1.5) also catches the 1.8/m² bump: the same ticket, reopened once more and open
    // longer.
    let cand = &report.sets[1];
    assert_eq!(cand.name, "candidate");
    assert_eq!(cand.tickets.len(), 1);
    assert_eq!(cand.tickets[0].ticket.reopened, 2, "{:#?}", cand.tickets);
    let d = &report.diffs[0].zones["west-taihu/jetty"];
    assert!(d.open_s > 1.0 && d.tickets == 0, "{d:?}");
    assert!(report.levels["west-taihu/jetty"].critical_s > 1.0);

    // The same from the command line, as a table and as JSON.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["backtest", "--config"])
        .arg(&config)
        .arg("--candidate")
        .arg(dir.path().join("candidate.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("rule set current: 1 tickets") && text.contains("candidate against current:"), "{text}");
    assert!(text.contains("west-taihu/jetty") && text.contains("jetty-crowd"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["backtest", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["readings"], n);
    assert_eq!(json["sets"][0]["tickets"][0]["rule"], "jetty-crowd");
    assert_eq!(json["sets"][0]["tickets"][0]["unit"], "people/m²");

    // The chart of the jetty as SVG: the map's series, both rule sets' tickets, the candidate's longer one.
    let svg = dir.path().join("jetty.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["backtest", "--chart", "west-taihu/jetty", "--svg"])
        .arg(&svg)
        .arg("--config")
        .arg(&config)
        .arg("--candidate")
        .arg(dir.path().join("candidate.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("<path d=\"M"), "{drawn}");
    assert_eq!(drawn.matches("<rect x=").count(), 2, "one ticket per rule set: {drawn}");

    // A CSV of timestamped counts instead of the store: the same script, one row a second.
    let csv = dir.path().join("counts.csv");
    let t0 = Utc::now() - chrono::Duration::hours(1);
    let mut rows = String::from("ts,site,zone,count\n");
    for i in 0..260 {
        let ts = t0 + chrono::Duration::milliseconds(100 * i);
        rows.push_str(&format!("{},west-taihu,jetty,{}\n", ts.to_rfc3339(), density(i as f64 / 10.0) * 1499.0));
    }
    std::fs::write(&csv, rows).unwrap();
    let args = BacktestArgs { csv: Some(csv.clone()), ..args.clone() };
    let from_csv = run_backtest(&args, false).unwrap();
    assert_eq!(from_csv.readings, 260);
    assert_eq!(from_csv.sets[0].tickets.len(), 1);
    assert_eq!(from_csv.sets[1].tickets[0].ticket.reopened, 2, "the candidate catches the bump here too");
    std::fs::write(&csv, "ts,site,zone,count\nyesterday,west-taihu,jetty,3\n2026-01-01T00:00:00Z,west-taihu,moon,3\n")
        .unwrap();
    let err = run_backtest(&args, false).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("line 3") && err.contains("moon"), "every bad row: {err}");

    // A broken candidate is refused with its problems, nothing run.
    std::fs::write(dir.path().join("bad.toml"), RULES.replace("WARNING", "-1").replace("for_s = 1", "for_s = -5"))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
        .args(["backtest", "--config"])
        .arg(&config)
        .arg("--candidate")
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", String::from_utf8_lossy(&out.stderr));
}
