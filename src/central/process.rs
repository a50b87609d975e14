//! The processor: de-duplicates, updates the live picture, evaluates the rules, hands batches to the
//! store (and InfluxDB), rule events to the dispatcher, and changes to the live stream.

use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use super::dedup::{Dedup, Verdict};
use super::edge_watch;
use super::edges::Edges;
use super::events::{Events, LiveEvent};
use super::ingest::{Committed, Incoming};
use super::judge::judge;
use super::live::Live;
use crate::metrics::Metrics;
use crate::rules::{Engine, RuleEvent};
use crate::store::influx::InfluxSink;
use crate::store::writer::{Ack, Batch, MarkRow, StoreWriter};

/// The processor's inputs and outputs.
pub struct Processor {
    /// Sequence marks, shared with the API (per-source gaps).
    pub dedup: Arc<Mutex<Dedup>>,
    /// Live zone state, shared with the API.
    pub live: Arc<RwLock<Live>>,
    /// Rule engine, shared with the API and the tick task.
    pub engine: Arc<Mutex<Engine>>,
    /// Edge registry, shared with the API.
    pub edges: Edges,
    /// Store writer.
    pub writer: StoreWriter,
    /// Optional InfluxDB sink.
    pub influx: Option<InfluxSink>,
    /// Rule events out.
    pub actions: mpsc::Sender<RuleEvent>,
    /// Live stream.
    pub events: Events,
    /// Broker receipts, acknowledged once their batch is committed ([`super::ingest::release`]).
    pub receipts: mpsc::Sender<Committed>,
    /// The sites whose events this instance raises.
    pub ownership: super::cluster::Ownership,
    /// Largest batch taken at once.
    pub batch_max: usize,
    /// Metrics.
    pub metrics: Metrics,
}

/// The marks of the sources in `good` after the batch, and which of its readings are stored above their
/// source's mark (early arrivals the store keeps so a restart still knows them).
fn marks_after(dedup: &Dedup, good: &[crowdgrid_proto::Reading]) -> (Vec<MarkRow>, Vec<(String, u64, u64)>) {
    let mut marks: Vec<MarkRow> = Vec::new();
    let mut early = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in good {
        let Some(m) = dedup.mark(&r.source_id) else { continue };
        if m.epoch == r.epoch && r.seq > m.low && m.early.contains(&r.seq) {
            early.push((r.source_id.clone(), r.epoch, r.seq));
        }
        if seen.insert(r.source_id.as_str()) {
            marks.push(MarkRow {
                source_id: r.source_id.clone(),
                site: r.site.clone(),
                epoch: m.epoch,
                low: m.low,
                high: m.high,
            });
        }
    }
    (marks, early)
}

impl Processor {
    /// Runs until `rx` closes, then flushes the store and the sink.
    pub async fn run(self, mut rx: mpsc::Receiver<Incoming>) {
        let mut buf = Vec::with_capacity(self.batch_max);
        loop {
            if rx.recv_many(&mut buf, self.batch_max).await == 0 {
                break;
            }
            self.metrics.ingest_queue_depth.set(rx.len() as i64);
            let mut good = Vec::with_capacity(buf.len());
            let mut acks = Vec::new();
            let mut fired = Vec::new();
            let mut map_rows = Vec::new();
            let mut flushed = Vec::new();
            let mut receipts = Vec::new();
            let (marks, early) = {
                let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
                let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
                let mut dedup = self.dedup.lock().unwrap_or_else(|e| e.into_inner());
                for item in buf.drain(..) {
                    match item {
                        Incoming::Reading(r, ack_to, receipt) => {
                            receipts.extend(receipt);
                            if let Some(to) = ack_to {
                                // Duplicates and stale ones too: they are stored already, or never will be.
                                acks.push(Ack {
                                    site: r.site.clone(),
                                    edge: to.edge,
                                    kid: to.kid,
                                    source_id: r.source_id.clone(),
                                    epoch: r.epoch,
                                    seq: r.seq,
                                });
                            }
                            match dedup.accept(&r.source_id, r.epoch, r.seq) {
                                Verdict::New { reordered } => {
                                    if reordered {
                                        self.metrics.readings_reordered.inc();
                                    }
                                }
                                Verdict::Duplicate => {
                                    self.metrics.readings_duplicate.inc();
                                    continue;
                                }
                                Verdict::Stale => {
                                    self.metrics.readings_stale.inc();
                                    continue;
                                }
                            }
                            if let Some((changed, events)) = judge(&mut live, &r, &mut [&mut *engine]) {
                                fired.extend(events.into_iter().flatten());
                                self.events.send(LiveEvent::Zone(changed));
                                map_rows.extend(live.series_row(&r.site, &r.zone));
                            }
                            good.push(r);
                        }
                        Incoming::Status(s) => {
                            let prev = self.edges.get(&s.site, &s.edge_id);
                            let before = prev.as_ref().map(|v| v.status.state);
                            let (site, edge, state, at) = (s.site.clone(), s.edge_id.clone(), s.state, s.ts);
                            fired.extend(edge_watch::event(&live, &site, &edge, before, state, at));
                            let degraded = edge_watch::degraded(prev.as_ref().map(|v| &v.status), &s);
                            let was = prev.as_ref().and_then(|v| v.degraded.as_deref());
                            fired.extend(edge_watch::degraded_event(&live, &s, was, degraded.as_deref()));
                            let (online, view) = self.edges.update(s, degraded);
                            self.metrics.edges_online.set(online as i64);
                            self.events.send(LiveEvent::Edge(Box::new(view)));
                        }
                        Incoming::Receipt(r) => receipts.push(r),
                        Incoming::Flush(barrier) => flushed.push(barrier),
                    }
                }
                marks_after(&dedup, &good)
            };
            // Receipts are acknowledged once the batch is committed, and a handover's barrier only after them, so
            // the next owner of a site is not delivered again what this one stored.
            if !receipts.is_empty() || !flushed.is_empty() {
                let (done, committed) = tokio::sync::oneshot::channel();
                let then = std::mem::replace(&mut flushed, vec![done]);
                if self.receipts.send(Committed { committed, receipts, then }).await.is_err() {
                    tracing::error!("receipt releaser gone; the broker delivers these readings again");
                }
            }
            if !good.is_empty() || !acks.is_empty() || !map_rows.is_empty() || !flushed.is_empty() {
                self.metrics.store_pending.add(good.len() as i64);
                if let Some(sink) = &self.influx {
                    if !good.is_empty() {
                        sink.offer(good.clone());
                    }
                }
                let batch = Batch { readings: good, marks, early, acks, map: map_rows, flushed };
                if let Err(e) = self.writer.write(batch).await {
                    tracing::error!(error = %e, "store writer gone");
                    break;
                }
            }
            // A site whose lease was lost meanwhile is judged by its new owner: its events are that one's to raise.
            for ev in fired.into_iter().filter(|ev| self.ownership.owns(&ev.site)) {
                if self.actions.send(ev).await.is_err() {
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
