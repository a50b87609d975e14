//! Sources: each turns raw records (or a built-in curve) into per-zone [`Reading`]s and sends them on a
//! bounded channel, awaiting when it is full (backpressure; a reading is never dropped here).
//!
//! - [`base_station`]: operator per-cell device counts → people per zone via coverage weights.
//! - [`gate`]: turnstile events → zone occupancy and in/out flow.
//! - [`simulated`]: daily curves for demos (labelled `simulated` in the data).
//! - [`camera`]: video → detector → per-zone people/vehicles, density via the camera's homography.
//! - [`drone`]: video + telemetry → detector → ground footprint → density per site zone.
//! - [`vision_run`]: the capture thread and blocking inference thread both of those share.
//!
//! Every reading has `seq = 0` (the queue numbers them), `site` = the site id and
//! `source_id = "{edge_id}/{source id}"`; the same full id keys the [`Health`] counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Reading, SourceKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::{InputConfig, MqttConfig, SourceConfig};
use crate::health::Health;
use crate::input::{self, Ack, Batch, InputContext, InputError, Record};

pub mod base_station;
#[cfg(feature = "vision")]
pub mod camera;
pub mod camera_tracking;
#[cfg(feature = "vision")]
pub mod drone;
pub mod gate;
#[cfg(feature = "vision")]
mod retune;
pub mod simulated;
#[cfg(feature = "vision")]
pub mod vision_run;

/// How far in the future a record's timestamp may be (clock skew) before it is rejected.
pub const MAX_FUTURE: chrono::Duration = chrono::Duration::minutes(5);

/// Everything a source needs from the agent.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Edge id (prefix of every `source_id`).
    pub edge_id: String,
    /// The validated site (zone areas).
    pub site: Arc<Site>,
    /// The edge's broker settings: defaults for MQTT inputs (host/port).
    pub mqtt: MqttConfig,
    /// Where readings go; bounded, always awaited.
    pub out: mpsc::Sender<Reading>,
    /// Per-source health counters.
    pub health: Health,
    /// Cancelled to stop every task.
    pub shutdown: CancellationToken,
    /// Where evidence-enabled cameras offer their snapshots.
    pub evidence: crate::evidence::EvidenceHub,
    /// Where cameras take settings pushed from the centre.
    pub tuning: crate::tuning::TuningHub,
}

/// Why a source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A zone named by the source is not in the site.
    #[error("source {source_id}: zone {zone:?} is not in the site")]
    UnknownZone {
        /// Full source id.
        source_id: String,
        /// The missing zone.
        zone: String,
    },
    /// A configuration value cannot be used.
    #[error("source {source_id}: {message}")]
    Config {
        /// Full source id.
        source_id: String,
        /// What is wrong.
        message: String,
    },
    /// The input could not start (e.g. the webhook address is taken).
    #[error("source {source_id}: input: {error}")]
    Input {
        /// Full source id.
        source_id: String,
        /// The input's error.
        #[source]
        error: InputError,
    },
}

/// A started source.
#[derive(Debug)]
pub struct Started {
    /// The source's task; it ends after `shutdown` is cancelled (having joined its input task).
    pub handle: JoinHandle<()>,
    /// The address a webhook input actually listens on (useful when configured with port 0).
    pub bound_addr: Option<SocketAddr>,
}

impl SourceConfig {
    /// Starts the source's task(s); returns when they are spawned. Tasks end when `shutdown` is cancelled.
    pub async fn spawn(&self, cx: SourceContext) -> Result<JoinHandle<()>, SourceError> {
        Ok(self.start(cx).await?.handle)
    }

    /// Like [`SourceConfig::spawn`], also returning the webhook's bound address, if any.
    pub async fn start(&self, cx: SourceContext) -> Result<Started, SourceError> {
        match self {
            SourceConfig::BaseStation(c) => base_station::start(c, cx).await,
            SourceConfig::Gate(c) => gate::start(c, cx).await,
            SourceConfig::Simulated(c) => simulated::start(c, cx),
            #[cfg(feature = "vision")]
            SourceConfig::Camera(c) => camera::start(c, cx),
            #[cfg(feature = "vision")]
            SourceConfig::Drone(c) => drone::start(c, cx),
            #[cfg(not(feature = "vision"))]
            SourceConfig::Camera(crate::config::CameraConfig { id, .. })
            | SourceConfig::Drone(crate::config::DroneConfig { id, .. }) => Err(SourceError::Config {
                source_id: format!("{}/{id}", cx.edge_id),
                message: "this crowdgrid-edge is built without the `vision` feature: it cannot run cameras or \
                          drones (install the camera build, crowdgrid-edge-vision)"
                    .into(),
            }),
        }
    }
}

/// Identity stamped on every reading of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Ids {
    /// Site id.
    pub site: String,
    /// Full source id, `{edge}/{source}`.
    pub source_id: String,
    /// Source kind.
    pub kind: SourceKind,
}

impl Ids {
    /// Ids for source `id` of edge `edge_id` at `site`.
    pub fn new(site: &Site, edge_id: &str, id: &str, kind: SourceKind) -> Self {
        Self { site: site.config.id.clone(), source_id: format!("{edge_id}/{id}"), kind }
    }

    /// A reading for `zone` (seq 0; density derived from count and area).
    pub fn reading(&self, zone: &str, ts: DateTime<Utc>, count: f64, area_m2: f64, confidence: f64) -> Reading {
        Reading::new(&self.site, zone, self.kind, &self.source_id, ts, count, area_m2, confidence)
    }
}

/// The geodesic area of `zone`, or an error naming the source.
pub fn zone_area(site: &Site, zone: &str, source_id: &str) -> Result<f64, SourceError> {
    site.zone(zone)
        .map(|z| z.area_m2)
        .ok_or_else(|| SourceError::UnknownZone { source_id: source_id.to_string(), zone: zone.to_string() })
}

/// Why one record was not (fully) used: `reason` is the health counter label.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Counter label (`malformed`, `negative`, `stale`, `drift_clamped`...).
    pub reason: &'static str,
    /// Human-readable detail for the log.
    pub detail: String,
}

impl Rejection {
    /// A rejection with `reason` and `detail`.
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// Rejects timestamps older than `stale_after` (`stale`) or more than [`MAX_FUTURE`] ahead (`future`).
pub fn check_ts(ts: DateTime<Utc>, now: DateTime<Utc>, stale_after: chrono::Duration) -> Result<(), Rejection> {
    if ts - now > MAX_FUTURE {
        return Err(Rejection::new("future", format!("ts {ts} is {} s ahead", (ts - now).num_seconds())));
    }
    if now - ts > stale_after {
        return Err(Rejection::new("stale", format!("ts {ts} is {} s old", (now - ts).num_seconds())));
    }
    Ok(())
}

/// Rejects a non-finite (`not_finite`) or negative (`negative`) value.
pub fn check_value(field: &str, v: f64) -> Result<(), Rejection> {
    if !v.is_finite() {
        return Err(Rejection::new("not_finite", format!("{field} = {v}")));
    }
    if v < 0.0 {
        return Err(Rejection::new("negative", format!("{field} = {v}")));
    }
    Ok(())
}

/// Sends `r`, waiting for room (backpressure). Returns false when the channel is closed, or when
/// shutdown is requested while waiting (the consumer then drains only what is already queued).
pub async fn send(cx: &SourceContext, r: Reading) -> bool {
    tokio::select! {
        biased;
        res = cx.out.send(r) => res.is_ok(),
        _ = cx.shutdown.cancelled() => false,
    }
}

/// The per-kind state of a record-driven source; pure and synchronous.
pub trait Estimator: Send + 'static {
    /// The raw record type.
    type Record: Record;
    /// Checks and applies one record. `Ok(Some(note))` means accepted but also counted under
    /// `note.reason` (e.g. `drift_clamped`).
    fn apply(&mut self, rec: Self::Record, now: DateTime<Utc>) -> Result<Option<Rejection>, Rejection>;
    /// The readings to publish at `now`.
    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading>;
    /// The input started over from the beginning of its data (a looped replay): forget what it built up.
    fn restart(&mut self) {}
}

/// Applies a batch, counting every outcome in health; returns the counts.
pub fn apply_batch<E: Estimator>(
    est: &mut E,
    batch: Batch<E::Record>,
    ids: &Ids,
    health: &Health,
    now: DateTime<Utc>,
) -> Ack {
    let kind = ids.kind.as_str();
    let mut ack = Ack::default();
    if batch.restart {
        tracing::info!(source = %ids.source_id, "input started over (looped replay): state reset");
        est.restart();
    }
    for e in &batch.errors {
        health.rejected(&ids.source_id, kind, "malformed", e);
        ack.rejected += 1;
    }
    for rec in batch.records {
        match est.apply(rec, now) {
            Ok(note) => {
                ack.accepted += 1;
                if let Some(n) = note {
                    health.rejected(&ids.source_id, kind, n.reason, &n.detail);
                }
            }
            Err(r) => {
                health.rejected(&ids.source_id, kind, r.reason, &r.detail);
                ack.rejected += 1;
            }
        }
    }
    if ack.accepted > 0 {
        health.accepted(&ids.source_id, kind, ack.accepted as u64);
    }
    if let Some(tx) = batch.ack {
        let _ = tx.send(ack);
    }
    ack
}

/// Starts a record-driven source: its input plus a task applying batches and publishing
/// `est.readings` every `report_ms`.
pub async fn start_records<E: Estimator>(
    est: E,
    ids: Ids,
    input_cfg: &InputConfig,
    report_ms: u64,
    cx: SourceContext,
) -> Result<Started, SourceError> {
    cx.health.register(&ids.source_id, ids.kind.as_str());
    let (tx, rx) = mpsc::channel(16);
    let icx = InputContext {
        site: ids.site.clone(),
        source_id: ids.source_id.clone(),
        kind: ids.kind.as_str(),
        health: cx.health.clone(),
        mqtt: cx.mqtt.clone(),
        shutdown: cx.shutdown.clone(),
    };
    let input = input::spawn(input_cfg, icx, tx)
        .await
        .map_err(|error| SourceError::Input { source_id: ids.source_id.clone(), error })?;
    let bound_addr = input.bound_addr;
    tracing::info!(source = %ids.source_id, kind = ids.kind.as_str(), report_ms, "source started");
    let handle = tokio::spawn(drive(est, ids, rx, input.handle, Duration::from_millis(report_ms.max(1)), cx));
    Ok(Started { handle, bound_addr })
}

async fn drive<E: Estimator>(
    mut est: E,
    ids: Ids,
    mut rx: mpsc::Receiver<Batch<E::Record>>,
    input: JoinHandle<()>,
    report: Duration,
    cx: SourceContext,
) {
    let mut tick = tokio::time::interval(report);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut input_open = true;
    'run: loop {
        tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => break,
            _ = tick.tick() => {
                for r in est.readings(Utc::now()) {
                    if !send(&cx, r).await {
                        tracing::debug!(source = %ids.source_id, "reading channel closed or shutting down");
                        break 'run;
                    }
                }
            }
            b = rx.recv(), if input_open => match b {
                Some(batch) => {
                    let ack = apply_batch(&mut est, batch, &ids, &cx.health, Utc::now());
                    tracing::trace!(source = %ids.source_id, accepted = ack.accepted, rejected = ack.rejected, "batch applied");
                }
                None => {
                    tracing::info!(source = %ids.source_id, "input ended");
                    input_open = false;
                }
            },
        }
    }
    drop(rx);
    if !cx.shutdown.is_cancelled() {
        input.abort();
    }
    if let Err(e) = input.await {
        if e.is_panic() {
            tracing::error!(source = %ids.source_id, error = %e, "input task panicked");
        }
    }
    tracing::info!(source = %ids.source_id, "source stopped");
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small site for tests: zones `plaza` and `beach` with areas forced to round numbers.
    use super::*;

    fn site_text() -> String {
        let body = r#"
[[workers]]
id = "w"
name = "W"
grids = ["g"]
[[zones]]
id = "plaza"
name = "Plaza"
grid = "g"
kind = "square"
geometry = { type = "Polygon", coordinates = [[[0.0, 0.0], [0.001, 0.0], [0.001, 0.001], [0.0, 0.001], [0.0, 0.0]]] }
[[zones]]
id = "beach"
name = "Beach"
grid = "g"
kind = "beach"
geometry = { type = "Polygon", coordinates = [[[0.0, 0.0], [0.001, 0.0], [0.001, 0.001], [0.0, 0.001], [0.0, 0.0]]] }
"#;
        format!("{}{body}", crowdgrid_proto::testing::site_head("west-lake"))
    }

    /// `plaza` = 1000 m², `beach` = 500 m², UTC+8.
    pub fn site() -> Arc<Site> {
        let cfg = toml::from_str(&site_text()).expect("test site parses");
        let mut site = Site::from_config(cfg, std::path::Path::new("site.toml")).expect("test site is valid");
        site.zones[0].area_m2 = 1000.0;
        site.zones[1].area_m2 = 500.0;
        Arc::new(site)
    }

    /// A context with a fresh health registry, token and an output channel of `cap`.
    pub fn context(cap: usize) -> (SourceContext, mpsc::Receiver<Reading>) {
        let (out, rx) = mpsc::channel(cap);
        let cx = SourceContext {
            tuning: Default::default(),
            edge_id: "edge-1".into(),
            site: site(),
            mqtt: MqttConfig::default(),
            out,
            health: Health::new(),
            shutdown: CancellationToken::new(),
            evidence: Default::default(),
        };
        (cx, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_checks_name_their_reason() {
        let now = Utc::now();
        let stale = chrono::Duration::seconds(900);
        assert!(check_ts(now, now, stale).is_ok());
        assert_eq!(check_ts(now - chrono::Duration::seconds(901), now, stale).unwrap_err().reason, "stale");
        assert_eq!(check_ts(now + chrono::Duration::seconds(301), now, stale).unwrap_err().reason, "future");
        assert_eq!(check_value("x", -1.0).unwrap_err().reason, "negative");
        assert_eq!(check_value("x", f64::NAN).unwrap_err().reason, "not_finite");
    }

    #[tokio::test]
    async fn webhook_gate_end_to_end() {
        let (cx, mut rx) = testing::context(64);
        let (health, shutdown) = (cx.health.clone(), cx.shutdown.clone());
        let cfg: SourceConfig = toml::from_str(
            r#"type = "gate"
id = "north-gates"
zone = "plaza"
report_interval_ms = 50
input = { kind = "webhook", listen = "127.0.0.1:0", path = "/gate" }"#,
        )
        .unwrap();
        let started = cfg.start(cx).await.unwrap();
        let addr = started.bound_addr.expect("webhook reports its address");
        assert_ne!(addr.port(), 0);
        let url = format!("http://{addr}/gate");
        let now = Utc::now().to_rfc3339();
        let body = format!(
            "[{{\"ts\":\"{now}\",\"gate\":\"n1\",\"direction\":\"in\",\"count\":30}},\
             {{\"ts\":\"{now}\",\"gate\":\"n1\",\"direction\":\"sideways\"}},\
             {{\"ts\":\"{now}\",\"gate\":\"n2\",\"direction\":\"out\",\"count\":-5}},\
             {{\"ts\":\"{now}\",\"gate\":\"n2\",\"direction\":\"out\"}}]"
        );
        let client = reqwest::Client::new();
        let resp = client.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v, serde_json::json!({"accepted": 2, "rejected": 2}));
        let csv = format!("ts,gate,direction,count\n{now},s1,in,\n");
        let resp = client.post(&url).header("content-type", "text/csv").body(csv).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        let resp = client.post(&url).body("garbage").send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let resp = client.post(&url).body(vec![b'{'; 2 * 1024 * 1024]).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 413);

        let r = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let r = rx.recv().await.unwrap();
                if r.count == 30.0 {
                    return r;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(
            (r.zone.as_str(), r.source_id.as_str(), r.source),
            ("plaza", "edge-1/north-gates", SourceKind::Gate)
        );
        assert_eq!(r.density, 0.03);
        assert_eq!((r.inflow_per_min, r.outflow_per_min), (Some(31.0), Some(1.0)));
        assert_eq!(health.rejected_count("edge-1/north-gates", "malformed"), 1);
        assert_eq!(health.rejected_count("edge-1/north-gates", "negative"), 1);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), started.handle).await.unwrap().unwrap();
    }
}
