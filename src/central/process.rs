//! The processor: de-duplicates, updates the live picture and rule state, hands batches to the
//! store (and InfluxDB), and rule actions to the dispatcher.

use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::dedup::Dedup;
use super::dispatch::ZoneAction;
use super::edges::Edges;
use super::ingest::Incoming;
use super::live::Live;
use crate::metrics::Metrics;
use crate::store::influx::InfluxSink;
use crate::store::writer::StoreWriter;

/// The processor's inputs and outputs.
pub struct Processor {
    /// Sequence marks.
    pub dedup: Dedup,
    /// Live zone state, shared with the API.
    pub live: Arc<RwLock<Live>>,
    /// Edge registry, shared with the API.
    pub edges: Edges,
    /// Store writer.
    pub writer: StoreWriter,
    /// Optional InfluxDB sink.
    pub influx: Option<InfluxSink>,
    /// Rule actions out.
    pub actions: mpsc::Sender<ZoneAction>,
    /// Largest batch taken at once.
    pub batch_max: usize,
    /// Metrics.
    pub metrics: Metrics,
}

impl Processor {
    /// Runs until `rx` closes, then flushes the store and the sink.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Incoming>) {
        let mut buf = Vec::with_capacity(self.batch_max);
        loop {
            if rx.recv_many(&mut buf, self.batch_max).await == 0 {
                break;
            }
            self.metrics.ingest_queue_depth.set(rx.len() as i64);
            let mut good = Vec::with_capacity(buf.len());
            let mut actions = Vec::new();
            {
                let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
                for item in buf.drain(..) {
                    match item {
                        Incoming::Reading(r) => {
                            if !self.dedup.accept(&r.source_id, r.epoch, r.seq) {
                                self.metrics.readings_duplicate.inc();
                                continue;
                            }
                            if let Some(action) = live.apply(&r) {
                                actions.push(ZoneAction { site: r.site.clone(), zone: r.zone.clone(), action });
                            }
                            good.push(r);
                        }
                        Incoming::Status(s) => {
                            let online = self.edges.update(s);
                            self.metrics.edges_online.set(online as i64);
                        }
                    }
                }
            }
            if !good.is_empty() {
                self.metrics.store_pending.add(good.len() as i64);
                if let Some(sink) = &self.influx {
                    sink.offer(good.clone());
                }
                if let Err(e) = self.writer.write(good).await {
                    tracing::error!(error = %e, "store writer gone");
                    break;
                }
            }
            for a in actions {
                if self.actions.send(a).await.is_err() {
                    tracing::error!("dispatcher gone");
                }
            }
        }
        self.writer.close().await;
        if let Some(sink) = self.influx {
            sink.close(std::time::Duration::from_secs(5)).await;
        }
        tracing::debug!("processor drained");
    }
}
