//! Zone and edge changes across cluster instances: each instance judges only the sites it owns, yet an operator
//! connected to any of them watches every zone and edge. The owner announces its zones' new values and its edges'
//! new statuses with `NOTIFY` on [`CHANNEL`] — the latest per zone and per edge, every [`EVERY`], packed below
//! NOTIFY's 8,000 bytes — and every other instance puts them on its live stream and into its live state
//! ([`Live::mirror`], [`Edges::mirror`]), so `/api/v1/zones`, `/api/v1/edges`, the city view and the event stream
//! of any instance carry every site. Coalescing bounds the traffic to one row per changing zone or edge per period
//! whatever the reading rate. Only the centre instances reach the database (see `fanout`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::Ownership;
use crate::central::edges::{EdgeView, Edges};
use crate::central::events::{Events, LiveEvent, ZoneEvent};
use crate::central::fanout::listen_channel;
use crate::central::live::{Live, FUSED};

/// The NOTIFY channel.
pub const CHANNEL: &str = "crowdgrid_live_events";

/// How often the latest value of each changed zone goes out.
pub const EVERY: Duration = Duration::from_millis(500);

/// Largest payload sent (PostgreSQL refuses 8,000 bytes and more).
const MAX_PAYLOAD: usize = 7_000;

/// One zone's value as announced.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Zone {
    site: String,
    zone: String,
    grid: String,
    level: Level,
    density: f64,
    count: f64,
    ts: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Announcement {
    origin: String,
    #[serde(default)]
    zones: Vec<Zone>,
    #[serde(default)]
    edges: Vec<EdgeView>,
}

/// Announces the changes of the zones and edges of the sites this instance owns until `stop` (read off its own
/// live stream).
pub async fn announce(
    pool: deadpool_postgres::Pool,
    origin: Arc<str>,
    events: Events,
    ownership: Ownership,
    stop: CancellationToken,
) {
    let mut rx = events.subscribe();
    let mut latest: HashMap<(String, String), Zone> = HashMap::new();
    let mut edges: HashMap<(String, String), EdgeView> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = rx.recv() => match ev {
                Ok(LiveEvent::Zone(z)) if ownership.owns(&z.site) => {
                    let z = Zone { site: z.site, zone: z.zone, grid: z.grid, level: z.level, density: z.density, count: z.count, ts: z.ts };
                    latest.insert((z.site.clone(), z.zone.clone()), z);
                }
                Ok(LiveEvent::Edge(e)) if ownership.owns(&e.status.site) => {
                    edges.insert((e.status.site.clone(), e.status.edge_id.clone()), *e);
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => tracing::debug!(missed = n, "zone fan-out lagged; later values follow"),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if latest.is_empty() && edges.is_empty() {
                    continue;
                }
                let zones = pack(&origin, latest.drain().map(|(_, z)| z).collect(), |zones| Announcement { zones, ..Default::default() });
                let views = pack(&origin, edges.drain().map(|(_, e)| e).collect(), |edges| Announcement { edges, ..Default::default() });
                for payload in zones.into_iter().chain(views) {
                    let sent = async {
                        let c = pool.get().await.map_err(|e| e.to_string())?;
                        c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await.map_err(|e| e.to_string())
                    };
                    if let Err(e) = sent.await {
                        tracing::warn!(error = %e, "zone changes not announced to the other instances");
                    }
                }
            }
        }
    }
}

/// Packs `items` into announcements (made by `wrap`) of at most [`MAX_PAYLOAD`] bytes each; an item too big on
/// its own (an edge status with very many cameras) is left out, logged.
fn pack<T: Serialize>(origin: &str, items: Vec<T>, wrap: impl Fn(Vec<T>) -> Announcement) -> Vec<String> {
    let mut out = Vec::new();
    let mut chunk: Vec<T> = Vec::new();
    let mut size = 0;
    let overhead = origin.len() + 64;
    for item in items {
        let len = serde_json::to_string(&item).map(|s| s.len() + 1).unwrap_or(usize::MAX);
        if len.saturating_add(overhead) > MAX_PAYLOAD {
            tracing::warn!(bytes = len, "a live change too big to announce to the other instances");
            continue;
        }
        if !chunk.is_empty() && size + len + overhead > MAX_PAYLOAD {
            out.extend(encode(origin, wrap(std::mem::take(&mut chunk))));
            size = 0;
        }
        size += len;
        chunk.push(item);
    }
    if !chunk.is_empty() {
        out.extend(encode(origin, wrap(chunk)));
    }
    out
}

fn encode(origin: &str, a: Announcement) -> Option<String> {
    serde_json::to_string(&Announcement { origin: origin.to_string(), ..a }).ok()
}

/// Where another instance's changes go on this one.
pub struct Mirror {
    /// The zones' live state.
    pub live: Arc<RwLock<Live>>,
    /// The edges.
    pub edges: Edges,
    /// The live stream.
    pub events: Events,
    /// The sites this instance owns (never mirrored: its own judgement is the truth there).
    pub ownership: Ownership,
}

/// Listens until `stop`: other instances' zone and edge changes onto this instance's stream and state.
pub async fn listen(url: String, origin: Arc<str>, m: Mirror, stop: CancellationToken) {
    let Mirror { live, edges, events, ownership } = m;
    listen_channel(url, CHANNEL, stop, move |payload| {
        let a: Option<Announcement> = serde_json::from_str(&payload)
            .map_err(|e| tracing::warn!(error = %e, "zone fan-out: not an announcement"))
            .ok();
        if let Some(a) = a.filter(|a| *a.origin != *origin) {
            let mut live = live.write().unwrap_or_else(|e| e.into_inner());
            for z in a.zones.into_iter().filter(|z| !ownership.owns(&z.site)) {
                let ev = ZoneEvent {
                    site: z.site,
                    zone: z.zone,
                    grid: z.grid,
                    level: z.level,
                    density: z.density,
                    count: z.count,
                    ts: z.ts,
                    from: FUSED,
                };
                if live.mirror(&ev) {
                    events.send(LiveEvent::Zone(ev));
                }
            }
            drop(live);
            for e in a.edges.into_iter().filter(|e| !ownership.owns(&e.status.site)) {
                if edges.mirror(e.clone()) {
                    events.send(LiveEvent::Edge(Box::new(e)));
                }
            }
        }
        std::future::ready(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_below_the_notify_limit_and_loses_no_zone() {
        let zones: Vec<Zone> = (0..500)
            .map(|i| Zone {
                site: "changzhou-tianning-0001".into(),
                zone: format!("zone-{i:05}"),
                grid: "grid-0001".into(),
                level: Level::Warning,
                density: 1.25,
                count: 1234.0,
                ts: Utc::now(),
            })
            .collect();
        let payloads = pack("centre-a-1234-deadbeef", zones, |zones| Announcement { zones, ..Default::default() });
        assert!(payloads.len() > 1, "500 zones do not fit one announcement");
        let mut seen = 0;
        for p in &payloads {
            assert!(p.len() < 8000, "{} bytes", p.len());
            let a: Announcement = serde_json::from_str(p).unwrap();
            assert_eq!(a.origin, "centre-a-1234-deadbeef");
            seen += a.zones.len();
        }
        assert_eq!(seen, 500);
    }
}
