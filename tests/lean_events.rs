//! The grid worker's phone on mobile data: `GET /api/v1/events?zones=level` sends a zone only when its level
//! changes, where the default stream sends every fused reading; a value outside `all|level|none` is a JSON 400.

mod common;

use std::time::Duration;

use common::*;
use crowdgrid::auth::Role;

/// Reads a stream for `for_`, returning its zone events and the bytes it carried.
async fn zone_events(mut resp: reqwest::Response, for_: Duration) -> (Vec<serde_json::Value>, usize) {
    let mut text = String::new();
    let _ = tokio::time::timeout(for_, async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    let zones = text
        .split("\n\n")
        .filter(|e| e.lines().any(|l| l == "event: zone"))
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (zones, text.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_hears_level_changes_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = central_embedded(dir.path());
    let db = cfg.config.store.path.clone();
    let site = cfg.sites.iter().find(|s| s.config.id == "west-taihu").unwrap().clone();
    let beach = site.zone("beach").unwrap();
    let (area, th) = (beach.area_m2, beach.thresholds);
    let worker = site.config.workers.iter().find(|w| w.grids.contains(&beach.config.grid)).unwrap().id.clone();
    let central = crowdgrid::central::start(cfg).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let api = format!("http://{}/api/v1/events", central.api_addr);
    let tok = token(&db, Role::GridWorker, Some(&worker)).await;
    let c = reqwest::Client::new();
    let all = c.get(&api).bearer_auth(&tok).send().await.unwrap();
    let lean = c.get(format!("{api}?zones=level")).bearer_auth(&tok).send().await.unwrap();
    assert_eq!((all.status().as_u16(), lean.status().as_u16()), (200, 200));
    let readers = tokio::spawn(async move {
        let w = Duration::from_secs(8);
        tokio::join!(zone_events(all, w), zone_events(lean, w))
    });
    // Four readings under notice, then four over warning: eight fused changes, two levels.
    for (i, d) in [0.2, 0.25, 0.3, 0.2, 1.2, 1.25, 1.3, 1.2].iter().enumerate() {
        let density = if *d < 1.0 { th.notice * d } else { th.warning * d };
        publish_reading(&host, port, "west-taihu", "beach", area, density, i as u64 + 1).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ((every, every_bytes), (changes, change_bytes)) = readers.await.unwrap();
    println!(
        "8 readings: default stream {} zone events, {every_bytes} bytes; zones=level {} events, {change_bytes} bytes",
        every.len(),
        changes.len()
    );
    assert_eq!(every.len(), 8, "{every:?}");
    let levels: Vec<_> = changes.iter().map(|z| z["level"].as_str().unwrap().to_string()).collect();
    assert_eq!(levels.first().map(String::as_str), Some("normal"));
    assert!(levels.last().is_some_and(|l| l == "warning" || l == "critical"), "{levels:?}");
    assert!(levels.windows(2).all(|w| w[0] != w[1]), "each event is a change: {levels:?}");
    assert!(changes.len() <= 3, "{levels:?}");

    let bad = c.get(format!("{api}?zones=some")).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    central.stop().await;
}
