//! `GET /api/v1/city` on a generated city: aggregates per sub-district, community and grid are the worst of
//! their zones with a fresh reading, the worst zones come first by density against their warning level, the
//! oldest open ticket names its worker from the roster; grid workers may not read it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crowdgrid::auth::Role;
use crowdgrid::simcity::gen::{generate, CitySize};
use crowdgrid_proto::site::Site;
use serde_json::Value;

fn area<'a>(list: &'a Value, site: &str, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["site"] == site && a["id"] == id)
        .unwrap_or_else(|| panic!("no {site}/{id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_city_is_the_worst_of_its_zones() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = central_embedded(dir.path());
    let generated = generate(CitySize { subdistricts: 2, grids: 20, zones: 50, seed: 5 });
    for s in &generated {
        cfg.sites.push(Arc::new(Site::from_config(s.clone(), &dir.path().join("g.toml")).unwrap()));
    }
    let total: usize = cfg.sites.iter().map(|s| s.zones.len()).sum();
    let db = cfg.config.store.path.clone();
    let central = crowdgrid::central::start(cfg).await.unwrap();
    let (host, port) = central.mqtt.clone();
    let base = format!("http://{}/api/v1", central.api_addr);
    let operator = token(&db, Role::Operator, None).await;

    // In sd01: one zone critical, one notice in another grid of the same community; sd02 hears nothing.
    let sd1 = &generated[0];
    let (hot, warm) = (&sd1.zones[0], &sd1.zones[5]);
    assert_ne!(hot.grid, warm.grid);
    let site = Site::from_config(sd1.clone(), &dir.path().join("g.toml")).unwrap();
    let area_of = |id: &str| site.zone(id).unwrap().area_m2;
    publish_reading(&host, port, &sd1.id, &hot.id, area_of(&hot.id), 5.5, 1).await;
    publish_reading(&host, port, &sd1.id, &warm.id, area_of(&warm.id), 2.2, 2).await;

    let city = eventually(Duration::from_secs(15), "the critical zone's ticket", || {
        let (base, operator) = (base.clone(), operator.clone());
        async move {
            let c = get_json(&format!("{base}/city?top=3"), &operator).await;
            (c["open_tickets"] == 1 && c["levels"]["notice"] == 1).then_some(c)
        }
    })
    .await;
    assert_eq!(city["zones"], total);
    assert_eq!(city["levels"]["critical"], 1);
    assert_eq!(city["levels"]["stale"], total - 2, "every zone without a reading is stale, not normal");

    let sd = area(&city["subdistricts"], &sd1.id, "sd01");
    assert_eq!(sd["level"], "critical");
    assert_eq!(sd["zones"], sd1.zones.len());
    assert_eq!(sd["open_tickets"], 1);
    assert!((sd["max_ratio"].as_f64().unwrap() - 5.5 / 3.6).abs() < 0.01, "{sd}");
    let hot_grid = area(&city["grids"], &sd1.id, &hot.grid);
    let warm_grid = area(&city["grids"], &sd1.id, &warm.grid);
    assert_eq!((hot_grid["level"].as_str(), warm_grid["level"].as_str()), (Some("critical"), Some("notice")));
    let community = sd1.grids.iter().find(|g| g.id == hot.grid).unwrap().community.clone();
    assert_eq!(hot_grid["parent"], community);
    assert_eq!(area(&city["communities"], &sd1.id, &community)["levels"]["critical"], 1);
    let quiet = area(&city["subdistricts"], &generated[1].id, "sd02");
    assert!(quiet["max_ratio"].is_null() && quiet["levels"]["stale"] == generated[1].zones.len(), "{quiet}");

    let worst = city["worst"].as_array().unwrap();
    assert_eq!(worst.len(), 2, "only zones with a fresh reading are ranked: {worst:?}");
    assert_eq!((worst[0]["zone"].as_str(), worst[1]["zone"].as_str()), (Some(hot.id.as_str()), Some(warm.id.as_str())));
    let t = &city["oldest_tickets"][0];
    assert_eq!(t["zone"], hot.id.as_str());
    assert_eq!(t["unit"], "people/m²");
    let worker = sd1.workers.iter().find(|w| w.grids.contains(&hot.grid)).unwrap();
    assert_eq!(t["assignee_name"], worker.name.as_str());

    let http = reqwest::Client::new();
    let worker_token = token(&db, Role::GridWorker, Some(&worker.id)).await;
    let as_worker = http.get(format!("{base}/city")).bearer_auth(&worker_token).send().await.unwrap();
    assert_eq!(as_worker.status(), 403);
    assert_eq!(http.get(format!("{base}/city")).send().await.unwrap().status(), 401);
    central.stop().await;
}
