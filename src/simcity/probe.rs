//! `crowdgrid sim-load --probes N`: while the city's load runs, how long a threshold crossing takes to reach the
//! grid worker. `N` zones (spread over up to [`PROBE_SITES`] sites, so in a cluster they fall to different
//! instances) are left out of the base-station load; one at a time, every second, a probe publishes a reading far
//! above the zone's critical level (signed by its site's load edge, source `loadgen-{site}/probe`), and a watcher
//! subscribed to `{prefix}/+/workers/+/tickets` notes when the zone's ticket notification arrives. Each probed zone
//! is quiet before its probe (no reading ever), so the crossing raises a new ticket. Prints p50/p90/p99/max and
//! how many never arrived within [`WAIT`]; asserts nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use crowdgrid_proto::signed::{self, Credential};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{topic, Reading, SourceKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// Sites the probed zones are spread over.
pub const PROBE_SITES: usize = 6;

/// How long a probe waits for its notification.
pub const WAIT: Duration = Duration::from_secs(10);

/// A zone to probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    area_m2: f64,
    density: f64,
}

/// `n` zones, round robin over the first [`PROBE_SITES`] sites, from each site's last zones (the load's cameras
/// and gates take the first ones).
pub fn choose(sites: &[std::sync::Arc<Site>], n: usize) -> Vec<Probe> {
    let sites: Vec<_> = sites.iter().take(PROBE_SITES).collect();
    let mut out = Vec::with_capacity(n);
    let mut depth = 0;
    while out.len() < n && sites.iter().any(|s| s.zones.len() > depth) {
        for s in &sites {
            if out.len() == n {
                break;
            }
            let Some(z) = s.zones.len().checked_sub(depth + 1).and_then(|i| s.zones.get(i)) else { continue };
            // Over the critical level, well under the centre's plausibility limit (`[ingest] max_density`, 12/m²).
            let critical = z.thresholds.critical.max(z.thresholds.warning);
            out.push(Probe {
                site: s.config.id.clone(),
                zone: z.config.id.clone(),
                area_m2: z.area_m2,
                density: critical * 1.2 + 0.1,
            });
        }
        depth += 1;
    }
    out
}

/// The broker, and how the probes and the watcher log in.
pub struct Login {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Topic prefix.
    pub prefix: String,
    /// Each probed site's load edge credential (`None`: unsigned).
    pub creds: BTreeMap<String, Credential>,
    /// The watcher's login (the centre's, on a broker with an ACL), if any.
    pub watcher: Option<(String, String)>,
}

fn options(id: String, login: &Login) -> MqttOptions {
    let mut o = MqttOptions::new(id, login.host.clone(), login.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
    o
}

/// Runs the probes one per second until `until` or until every zone was probed; prints the figures.
pub async fn run(probes: Vec<Probe>, login: Login, until: Instant) {
    if probes.is_empty() {
        return;
    }
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<(Instant, String, String)>();
    let mut w = options(format!("loadgen-probe-watch-{}", std::process::id()), &login);
    if let Some((u, p)) = &login.watcher {
        w.set_credentials(u, p);
    }
    let (watcher, mut wl) = AsyncClient::new(w, 100);
    let (subscribed_tx, mut subscribed) = tokio::sync::watch::channel(false);
    let watching = tokio::spawn(async move {
        loop {
            match wl.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    subscribed_tx.send_replace(true);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = Instant::now();
                    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
                    if !matches!(v["event"].as_str(), Some("raised" | "reopened" | "upgraded")) {
                        continue;
                    }
                    let s = |k: &str| v["ticket"][k].as_str().unwrap_or_default().to_string();
                    if notes_tx.send((at, s("site"), s("zone"))).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    let _ = watcher.subscribe(format!("{}/+/workers/+/tickets", login.prefix), QoS::AtLeastOnce).await;
    if tokio::time::timeout(Duration::from_secs(10), subscribed.wait_for(|s| *s)).await.is_err() {
        eprintln!("sim-load: the probe watcher could not subscribe; no crossing figures");
        watching.abort();
        return;
    }
    // One publisher per probed site, logged in as that site's load edge.
    let mut publishers: BTreeMap<String, (AsyncClient, tokio::task::JoinHandle<()>)> = BTreeMap::new();
    for p in &probes {
        if publishers.contains_key(&p.site) {
            continue;
        }
        let edge = format!("loadgen-{}", p.site);
        let mut o = options(format!("{edge}-probe"), &login);
        if let Some(c) = login.creds.get(&p.site) {
            o.set_credentials(format!("{}/{edge}", p.site), c.secret.clone());
        }
        let (client, mut el) = AsyncClient::new(o, 100);
        let poll = tokio::spawn(async move {
            loop {
                if el.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        publishers.insert(p.site.clone(), (client, poll));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let epoch = Utc::now().timestamp_millis() as u64;
    let mut took = Vec::new();
    let mut missed = 0usize;
    for (seq, p) in probes.iter().enumerate() {
        if Instant::now() > until {
            break;
        }
        let Some((client, _)) = publishers.get(&p.site) else { continue };
        let edge = format!("loadgen-{}", p.site);
        let mut r = Reading::new(
            &p.site,
            &p.zone,
            SourceKind::Report,
            &format!("{edge}/probe"),
            Utc::now(),
            (p.density * p.area_m2).round(),
            p.area_m2,
            0.95,
        );
        r.seq = seq as u64 + 1;
        r.epoch = epoch;
        let t = topic::reading(&login.prefix, &p.site, &p.zone);
        let Ok(body) = serde_json::to_vec(&r) else { continue };
        let payload = match login.creds.get(&p.site) {
            Some(c) => signed::seal(c, &edge, &t, &body),
            None => body,
        };
        let sent = Instant::now();
        if client.publish(t, QoS::AtLeastOnce, false, payload).await.is_err() {
            missed += 1;
            continue;
        }
        let arrived = tokio::time::timeout(WAIT, async {
            while let Some((at, site, zone)) = notes.recv().await {
                if site == p.site && zone == p.zone {
                    return Some(at);
                }
            }
            None
        })
        .await;
        match arrived {
            Ok(Some(at)) => took.push(at.duration_since(sent).as_secs_f64() * 1000.0),
            _ => missed += 1,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    watching.abort();
    for (_, (_, poll)) in publishers {
        poll.abort();
    }
    took.sort_by(f64::total_cmp);
    let pct = |q: f64| took.get(((took.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0);
    println!(
        "sim-load: crossing → notification over {} probes: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         {missed} not notified within {} s",
        took.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        took.last().copied().unwrap_or(0.0),
        WAIT.as_secs()
    );
}
