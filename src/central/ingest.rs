//! The centre's MQTT client: subscribes to readings and edge status, validates each publish and hands
//! good ones to the processor over a bounded channel (awaiting when full, so the broker holds the rest).

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use crowdgrid_proto::{topic, EdgeStatus, Reading};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::validate::Validator;
use crate::metrics::Metrics;
use crate::store::evidence::{self as store_evidence, Evidence, EvidenceStore};

/// What the MQTT task hands to the processor.
#[derive(Debug)]
pub enum Incoming {
    /// A validated reading.
    Reading(Reading),
    /// An edge's status (retained, or its Last Will).
    Status(EdgeStatus),
}

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Client id (fixed, with a persistent session).
    pub client_id: String,
    /// Credentials.
    pub credentials: Option<(String, String)>,
    /// Topic prefix.
    pub prefix: String,
    /// Largest incoming packet the client accepts (bigger ones are refused by the broker first).
    pub max_packet: usize,
}

/// Creates the subscriber client and its event loop.
pub fn connect(s: &MqttSettings) -> (AsyncClient, EventLoop) {
    connect_as(s, &s.client_id, false)
}

/// Creates a client with `client_id`; `clean` = false keeps a persistent session at the broker.
pub fn connect_as(s: &MqttSettings, client_id: &str, clean: bool) -> (AsyncClient, EventLoop) {
    let mut opts = MqttOptions::new(client_id, &s.host, s.port);
    opts.set_keep_alive(Duration::from_secs(10));
    // The subscriber uses a persistent session: the broker keeps our subscriptions and queues QoS 1
    // readings while we restart.
    opts.set_clean_session(clean);
    opts.set_max_packet_size(s.max_packet, s.max_packet);
    opts.set_inflight(200);
    if let Some((u, p)) = &s.credentials {
        opts.set_credentials(u, p);
    }
    AsyncClient::new(opts, 1000)
}

/// Logs the first rejection of each reason at warn level; the rest are only counted.
#[derive(Default)]
struct RejectLog(HashSet<&'static str>);

impl RejectLog {
    fn note(&mut self, reason: &'static str, detail: &str) {
        if self.0.insert(reason) {
            tracing::warn!(reason, detail, "reading rejected (first of its kind; later ones only counted in /metrics)");
        } else {
            tracing::debug!(reason, detail, "reading rejected");
        }
    }
}

/// Everything the ingest task owns.
pub struct Ingest {
    /// Broker settings.
    pub settings: MqttSettings,
    /// The subscriber client.
    pub client: AsyncClient,
    /// Its event loop.
    pub eventloop: EventLoop,
    /// Payload checks.
    pub validator: Validator,
    /// Good readings and statuses out.
    pub tx: mpsc::Sender<Incoming>,
    /// Metrics.
    pub metrics: Metrics,
    /// Set once every subscription is acknowledged.
    pub ready: tokio::sync::watch::Sender<bool>,
    /// Evidence snapshots from edges.
    pub evidence: EvidenceStore,
}

/// Polls the event loop until `shutdown`, re-subscribing on every connection.
pub async fn run(ingest: Ingest, shutdown: CancellationToken) {
    let Ingest { settings, client, mut eventloop, validator, tx, metrics, ready, evidence } = ingest;
    let readings = topic::readings_filter(&settings.prefix);
    let statuses = topic::edge_status_filter(&settings.prefix);
    let snapshots = topic::evidence_filter(&settings.prefix);
    // Snapshots are written by their own task: a slow insert (up to 1 MiB, the store's busy timeout) must
    // not stop this loop from taking readings in. A full queue drops the snapshot, counted.
    let (save_tx, mut save_rx) = mpsc::channel::<Evidence>(16);
    let saver = tokio::spawn(async move {
        while let Some(e) = save_rx.recv().await {
            let (ticket, bytes) = (e.ticket, e.jpeg.len());
            match evidence.save(e).await {
                Ok(()) => tracing::info!(ticket, bytes, "evidence snapshot stored"),
                Err(err) => tracing::error!(error = %err, ticket, "evidence snapshot not stored"),
            }
        }
    });
    let mut rejects = RejectLog::default();
    let mut outage_logged = false;
    let mut subacks = 0;
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                metrics.mqtt_connected.set(1);
                outage_logged = false;
                subacks = 0;
                tracing::info!(host = %settings.host, port = settings.port, "centre connected to broker");
                for filter in [&readings, &statuses, &snapshots] {
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, filter, "cannot subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subacks += 1;
                if subacks == 3 {
                    ready.send_replace(true);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some((site, zone, ticket)) = topic::parse_evidence(&settings.prefix, &p.topic) {
                    match store_evidence::check(&p.payload) {
                        Ok(()) => {
                            let e = Evidence { ticket, site, zone, received: Utc::now(), jpeg: p.payload.to_vec() };
                            if save_tx.try_send(e).is_err() {
                                metrics.reject("evidence_backlog");
                                rejects.note("evidence_backlog", &p.topic);
                            }
                        }
                        Err(reason) => {
                            metrics.reject(reason);
                            rejects.note(reason, &format!("{} ({} bytes)", p.topic, p.payload.len()));
                        }
                    }
                    continue;
                }
                let item = if topic::parse_edge_status(&settings.prefix, &p.topic).is_some() {
                    match serde_json::from_slice::<EdgeStatus>(&p.payload) {
                        Ok(s) => Some(Incoming::Status(s)),
                        Err(e) => {
                            metrics.status_rejected.inc();
                            rejects.note("status_malformed", &format!("{}: {e}", p.topic));
                            None
                        }
                    }
                } else {
                    metrics.readings_received.inc();
                    match validator.reading(&p.topic, &p.payload, Utc::now()) {
                        Ok(r) => Some(Incoming::Reading(r)),
                        Err(rej) => {
                            metrics.reject(rej.reason);
                            rejects.note(rej.reason, &rej.detail);
                            None
                        }
                    }
                };
                if let Some(item) = item {
                    if tx.send(item).await.is_err() {
                        break;
                    }
                    metrics.ingest_queue_depth.set((tx.max_capacity() - tx.capacity()) as i64);
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.mqtt_connected.set(0);
                if !outage_logged {
                    tracing::warn!(error = %e, host = %settings.host, port = settings.port, "broker connection lost; retrying");
                    outage_logged = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    metrics.mqtt_connected.set(0);
    drop(save_tx);
    if saver.await.is_err() {
        tracing::error!("evidence saver panicked");
    }
    // Say goodbye so the broker keeps our persistent session cleanly; bounded so shutdown cannot hang.
    disconnect(&client, &mut eventloop, Duration::from_millis(500)).await;
    tracing::debug!("mqtt ingest stopped");
}

/// Queues a DISCONNECT behind whatever is in the request channel and polls until it is written
/// (so earlier publishes went out too), for at most `grace`.
pub async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop, grace: Duration) {
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(grace, async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
}

/// Polls the notifier's event loop (publishes only) until `stop`, then flushes and disconnects.
pub async fn run_notifier(client: AsyncClient, mut eventloop: EventLoop, stop: CancellationToken) {
    let mut outage_logged = false;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => outage_logged = false,
            Ok(_) => {}
            Err(e) => {
                if !outage_logged {
                    tracing::warn!(error = %e, "notifier lost the broker; retrying");
                    outage_logged = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    disconnect(&client, &mut eventloop, Duration::from_secs(2)).await;
    tracing::debug!("notifier stopped");
}
