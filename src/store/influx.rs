//! The InfluxDB v2 sink (`influxdb2` crate): readings are buffered, written in batches, and retried
//! with backoff while the server is down. Works with InfluxDB 2.x/3.x and with servers that accept
//! its write API (VictoriaMetrics, which `.ci/run` starts for the integration test).

use std::collections::VecDeque;
use std::time::Duration;

use crowdgrid_proto::Reading;
use futures::stream;
use influxdb2::api::write::TimestampPrecision;
use influxdb2::models::DataPoint;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::central::config::InfluxConfig;
use crate::metrics::Metrics;

/// Handle to the sink task.
pub struct InfluxSink {
    tx: mpsc::Sender<Vec<Reading>>,
    join: JoinHandle<()>,
    metrics: Metrics,
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
#[error("influx client: {0}")]
pub struct InfluxError(String);

impl InfluxSink {
    /// Starts the sink task.
    pub fn spawn(cfg: InfluxConfig, metrics: Metrics) -> Result<InfluxSink, InfluxError> {
        let client = influxdb2::ClientBuilder::new(cfg.url.clone(), cfg.org.clone(), cfg.token.clone())
            .build()
            .map_err(|e| InfluxError(e.to_string()))?;
        let (tx, rx) = mpsc::channel(1024);
        let join = tokio::spawn(run(client, cfg, rx, metrics.clone()));
        Ok(InfluxSink { tx, join, metrics })
    }

    /// Queues readings without waiting; if the sink is saturated they are counted as dropped.
    pub fn offer(&self, batch: Vec<Reading>) {
        let n = batch.len() as u64;
        if self.tx.try_send(batch).is_err() {
            self.metrics.influx_dropped.inc_by(n);
        }
    }

    /// Stops accepting, tries to flush for up to `grace`, and returns.
    pub async fn close(self, grace: Duration) {
        drop(self.tx);
        if tokio::time::timeout(grace, self.join).await.is_err() {
            tracing::warn!(?grace, "influx sink did not flush within the grace period");
        }
    }
}

/// One reading as a line-protocol point: tags site, zone, source, source_id; numeric fields.
pub fn to_point(measurement: &str, r: &Reading) -> Option<DataPoint> {
    let mut b = DataPoint::builder(measurement)
        .tag("site", r.site.as_str())
        .tag("zone", r.zone.as_str())
        .tag("source", r.source.as_str())
        .tag("source_id", r.source_id.as_str())
        .field("count", r.count)
        .field("density", r.density)
        .field("confidence", r.confidence)
        .timestamp(r.ts.timestamp_millis());
    if let Some(c) = r.classes {
        b = b.field("person", c.person).field("vehicle", c.vehicle);
    }
    if let Some(v) = r.conflict {
        b = b.field("conflict", v);
    }
    if let Some(t) = r.tracked {
        b = b.field("raw_count", t.raw_count).field("dwell_p50_s", t.dwell_p50_s).field("dwell_p90_s", t.dwell_p90_s);
        if let Some(v) = t.vehicle_inflow_per_min {
            b = b.field("vehicle_inflow_per_min", v);
        }
        if let Some(v) = t.vehicle_outflow_per_min {
            b = b.field("vehicle_outflow_per_min", v);
        }
    }
    if let Some(v) = r.inflow_per_min {
        b = b.field("inflow_per_min", v);
    }
    if let Some(v) = r.outflow_per_min {
        b = b.field("outflow_per_min", v);
    }
    b.build().ok()
}

async fn run(client: influxdb2::Client, cfg: InfluxConfig, mut rx: mpsc::Receiver<Vec<Reading>>, metrics: Metrics) {
    let mut buf: VecDeque<Reading> = VecDeque::new();
    let mut backoff = Duration::from_millis(500);
    let mut open = true;
    let mut failing_since_close = 0u32;
    let flush_every = Duration::from_millis(cfg.flush_interval_ms);
    loop {
        // Gather until a full batch, the flush interval, or the channel closes.
        if open && buf.len() < cfg.batch_size {
            match tokio::time::timeout(flush_every, rx.recv()).await {
                Ok(Some(batch)) => {
                    buf.extend(batch);
                    let over = buf.len().saturating_sub(cfg.max_buffered_points);
                    if over > 0 {
                        buf.drain(..over);
                        metrics.influx_dropped.inc_by(over as u64);
                        tracing::warn!(dropped = over, "influx buffer full; oldest points dropped");
                    }
                    metrics.influx_buffered.set(buf.len() as i64);
                    if buf.len() < cfg.batch_size {
                        continue;
                    }
                }
                Ok(None) => open = false,
                Err(_) => {}
            }
        }
        if buf.is_empty() {
            if open {
                continue;
            }
            return;
        }
        let n = buf.len().min(cfg.batch_size);
        let points: Vec<DataPoint> = buf.iter().take(n).filter_map(|r| to_point(&cfg.measurement, r)).collect();
        // The crate's HTTP client has no timeout of its own: bound each write here.
        let write = client.write_with_precision(&cfg.bucket, stream::iter(points), TimestampPrecision::Milliseconds);
        let result = match tokio::time::timeout(Duration::from_secs(10), write).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("timed out after 10 s".to_string()),
        };
        match result {
            Ok(()) => {
                buf.drain(..n);
                metrics.influx_written.inc_by(n as u64);
                metrics.influx_buffered.set(buf.len() as i64);
                backoff = Duration::from_millis(500);
            }
            Err(e) => {
                metrics.influx_errors.inc();
                tracing::warn!(error = e, buffered = buf.len(), retry_in = ?backoff, "influx write failed; keeping points");
                if !open {
                    failing_since_close += 1;
                    if failing_since_close >= 3 {
                        tracing::error!(lost = buf.len(), "influx still failing at shutdown; giving up");
                        return;
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
