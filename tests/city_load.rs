//! `crowdgrid sim-load` against a centre running a generated city, as shipped (`[edges] authentication =
//! "required"`): one edge per site logs in with a credential it creates in the centre's database and signs its
//! readings; every zone gets its base-station estimates, the chosen zones their gate and camera readings, the
//! broker acknowledges every one, and the centre stores every one, none refused.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use crowdgrid::central::config::CentralConfig;

fn crowdgrid() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crowdgrid"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_plays_every_zone_and_the_centre_stores_every_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mqtt = crowdgrid::central::broker::free_loopback_addr().unwrap();
    let out = crowdgrid()
        .args(["sim-city", "--subdistricts", "3", "--grids", "12", "--zones", "36", "--api-listen", "127.0.0.1:0"])
        .arg("--mqtt-listen")
        .arg(mqtt.to_string())
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = dir.path().join("central.toml");
    let loaded = CentralConfig::load(&config).unwrap();
    let db = loaded.config.store.path.clone();
    let central = crowdgrid::central::start(loaded).await.unwrap();

    let load = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            crowdgrid()
                .args([
                    "sim-load",
                    "--duration-s",
                    "4",
                    "--base-station-every-s",
                    "1",
                    "--gates",
                    "2",
                    "--cameras",
                    "2",
                ])
                .arg("--config")
                .arg(&config)
                .output()
                .unwrap()
        })
    };
    let out = tokio::time::timeout(Duration::from_secs(60), load).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("3 sites, 40 feeds, 39 readings/s"),
        "36 zones at 1/s, 2 cameras at 1/s, 2 gates at 0.5/s: {stdout}"
    );
    assert!(stdout.contains("errors 0"), "{stdout}");
    let last = stdout.lines().rev().find(|l| l.contains(" sent ")).unwrap();
    let field = |name: &str| -> u64 {
        let rest = &last[last.find(name).unwrap() + name.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (sent, acked) = (field(" sent "), field(" acknowledged "));
    assert_eq!(sent, acked, "{last}");
    assert!(sent >= 120, "about 40 readings/s for 4 s: {last}");

    let stored = eventually(Duration::from_secs(20), "every reading stored", || async {
        let n = central.metrics.readings_stored.get();
        (n >= sent).then_some(n)
    })
    .await;
    assert_eq!(stored, sent, "each reading stored once, none refused");
    for reason in ["unauthenticated", "unknown_credential", "bad_signature", "foreign_source", "malformed"] {
        assert_eq!(central.metrics.rejected(reason), 0, "{reason}");
    }

    let c = rusqlite::Connection::open(&db).unwrap();
    let (zones, min_per_zone): (i64, i64) = c
        .query_row(
            "SELECT COUNT(*), MIN(n) FROM (SELECT zone, COUNT(*) AS n FROM readings WHERE source = 'base_station' GROUP BY site, zone)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(zones, 36, "every zone's base-station estimates");
    assert!(min_per_zone >= 3, "each zone about once a second for 4 s: {min_per_zone}");
    for (kind, n) in [("camera", 2), ("gate", 2)] {
        let zones: i64 =
            c.query_row("SELECT COUNT(DISTINCT zone) FROM readings WHERE source = ?1", [kind], |r| r.get(0)).unwrap();
        assert_eq!(zones, n, "{kind} zones");
    }
    let inflow: i64 =
        c.query_row("SELECT COUNT(inflow) FROM readings WHERE source = 'gate'", [], |r| r.get(0)).unwrap();
    assert!(inflow > 0, "gate readings carry their inflow");
    central.stop().await;
}
