//! The centre's MQTT client: subscribes to readings and edge status, validates each publish and hands
//! good ones to the processor over a bounded channel (awaiting when full, so the broker holds the rest).

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use crowdgrid_proto::{topic, EdgeStatus, Reading};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::authn::{self, Authenticator};
use super::camera_views::{self, CameraViews, StoredView};
use super::evidence_in::Offered;
use super::validate::{Rejection, Validator};
use crate::metrics::Metrics;
use crate::store::camera_settings::CameraKey;
use crate::store::evidence::{self as store_evidence, Evidence};

/// What the MQTT task hands to the processor.
#[derive(Debug)]
pub enum Incoming {
    /// A validated reading, with the edge its commit is acknowledged to (the signer, or with authentication
    /// off the `{edge}/` of its `source_id`), and its receipt from the broker (QoS 1).
    Reading(Reading, Option<AckTo>, Option<Receipt>),
    /// An edge's status (retained, or its Last Will).
    Status(EdgeStatus),
    /// The receipt of a publish that is not a reading (a status, a view, evidence, a refused one), acknowledged in
    /// turn with the readings' (see [`Receipt`]).
    Receipt(Receipt),
    /// A barrier: released once everything before it is committed (a site's handover waits on it).
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where a reading's commit is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckTo {
    /// The edge.
    pub edge: String,
    /// The credential to sign the acknowledgement with (`None`: it sent unsigned).
    pub kid: Option<u32>,
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
    /// TLS towards the broker.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Acknowledge readings to the broker only once committed ([`Receipt`]). Worth it when the broker outlives the
    /// centre (an external one keeps the session); the embedded broker dies with the centre, its sessions with it,
    /// and rumqttd keeps at most 100 messages in flight per subscriber, so there it would only cost throughput.
    pub ack_after_commit: bool,
}

/// A received QoS 1 publish not yet acknowledged to the broker. A reading's is acknowledged only once the reading
/// is committed ([`release`]): until then the broker keeps it in the session and delivers it again after a crash
/// or a handover, so a publisher without a queue of its own (a third-party feed, `sim-load`) loses nothing either.
/// Everything else is acknowledged with them, in the order received.
#[derive(Debug)]
pub struct Receipt {
    client: AsyncClient,
    publish: Publish,
}

impl Receipt {
    /// `p`'s receipt (`None` for QoS 0: nothing to acknowledge). Only what the acknowledgement needs is kept.
    fn of(client: &AsyncClient, p: &Publish) -> Option<Receipt> {
        if p.qos == QoS::AtMostOnce {
            return None;
        }
        let mut publish = Publish::new("", p.qos, Vec::new());
        publish.pkid = p.pkid;
        Some(Receipt { client: client.clone(), publish })
    }

    fn ack(self) {
        // The request channel holds SUBSCRIBER_REQUESTS, more than any broker lets be in flight to one client
        // (Mosquitto `max_inflight_messages`, EMQX `max_inflight`, NATS `max_ack_pending`): it is never full of
        // acknowledgements. A closed connection is fine: the broker delivers the publish again on the next one.
        if let Err(e) = self.client.try_ack(&self.publish) {
            // Only if the broker lets more than SUBSCRIBER_REQUESTS be in flight: that slot stays taken until the
            // next connection.
            tracing::warn!(error = %e, "receipt not acknowledged; the broker delivers it again on reconnection");
        }
    }
}

/// One batch's receipts, waiting for its commit.
pub struct Committed {
    /// Fires once the batch is committed.
    pub committed: tokio::sync::oneshot::Receiver<()>,
    /// Acknowledged then, in order.
    pub receipts: Vec<Receipt>,
    /// Barriers released after the acknowledgements are queued (a site's handover waits on one).
    pub then: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// Acknowledges receipts to the broker once their batch is committed, in order, until `rx` closes. A batch never
/// committed (the store gave up at shutdown) is not acknowledged: the broker delivers it again.
pub async fn release(mut rx: mpsc::Receiver<Committed>) {
    while let Some(batch) = rx.recv().await {
        if batch.committed.await.is_ok() {
            batch.receipts.into_iter().for_each(Receipt::ack);
            for barrier in batch.then {
                let _ = barrier.send(());
            }
        }
    }
}

/// Requests a subscriber's client queues: acknowledgements, (re)subscriptions.
const SUBSCRIBER_REQUESTS: usize = 8192;

/// Creates a subscriber client (persistent session, acknowledgements by hand) and its event loop.
pub fn connect(s: &MqttSettings) -> (AsyncClient, EventLoop) {
    let mut opts = options(s, &s.client_id, false);
    opts.set_manual_acks(s.ack_after_commit);
    AsyncClient::new(opts, SUBSCRIBER_REQUESTS)
}

/// Creates a client with `client_id`; `clean` = false keeps a persistent session at the broker.
pub fn connect_as(s: &MqttSettings, client_id: &str, clean: bool) -> (AsyncClient, EventLoop) {
    AsyncClient::new(options(s, client_id, clean), 1000)
}

fn options(s: &MqttSettings, client_id: &str, clean: bool) -> MqttOptions {
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
    if let Some(tls) = &s.tls {
        crowdgrid_edge::tls::use_tls(&mut opts, tls.clone());
    }
    opts
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

/// Where every broker connection of the centre hands what it receives (one connection for the whole centre; in a
/// cluster one per site the instance owns).
#[derive(Clone)]
pub struct Handoff {
    /// Payload checks.
    pub validator: Validator,
    /// Good readings and statuses out.
    pub tx: mpsc::Sender<Incoming>,
    /// Metrics.
    pub metrics: Metrics,
    /// Who sent each message.
    pub authn: Authenticator,
    /// Evidence snapshots to the intake task ([`evidence_in::run`]).
    pub evidence: mpsc::Sender<Offered>,
    /// Cameras' views.
    pub views: CameraViews,
}

/// One subscriber connection.
pub struct Ingest {
    /// Broker settings (the client id is the connection's, with a persistent session).
    pub settings: MqttSettings,
    /// The subscriber client.
    pub client: AsyncClient,
    /// Its event loop.
    pub eventloop: EventLoop,
    /// What it subscribes to ([`topic::centre_filters`]).
    pub filters: Vec<String>,
    /// Set once every subscription is acknowledged.
    pub ready: tokio::sync::watch::Sender<bool>,
    /// Where it hands publishes.
    pub handoff: Handoff,
    /// Once cancelled, publishes are neither handed over nor acknowledged (the broker delivers them again to
    /// whoever holds the session next) while the event loop keeps running, so what was handed over before can
    /// still be acknowledged: a site's handover pauses, waits for its barrier, then stops.
    pub pause: CancellationToken,
}

/// Polls the event loop until `shutdown`, re-subscribing on every connection.
pub async fn run(ingest: Ingest, shutdown: CancellationToken) {
    let Ingest { settings, client, mut eventloop, filters, ready, handoff, pause } = ingest;
    let Handoff { validator, tx, metrics, authn, evidence: save_tx, views } = handoff;
    let mut rejects = RejectLog::default();
    let mut outage_logged = false;
    let mut subacks = 0;
    // The gauge counts connected subscribers (a cluster instance has one per site it holds).
    let mut connected = false;
    let mut set_connected = |now: bool| {
        if now != connected {
            connected = now;
            if now {
                metrics.mqtt_connected.inc();
            } else {
                metrics.mqtt_connected.dec();
            }
        }
    };
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                set_connected(true);
                outage_logged = false;
                subacks = 0;
                tracing::info!(host = %settings.host, port = settings.port, client = %settings.client_id, "centre connected to broker");
                for filter in &filters {
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(error = %e, filter, "cannot subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subacks += 1;
                if subacks == filters.len() {
                    ready.send_replace(true);
                }
            }
            Ok(Event::Incoming(Packet::Publish(_))) if pause.is_cancelled() => {}
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let is_reading = topic::parse_reading(&settings.prefix, &p.topic).is_some();
                if is_reading {
                    metrics.readings_received.inc();
                }
                // A reading's receipt rides with it; any other publish's follows it on its own, so the broker
                // gets every acknowledgement in the order it delivered (MQTT asks for that; a broker may drop a
                // client that acknowledges out of order).
                let mut receipt = if settings.ack_after_commit { Receipt::of(&client, &p) } else { None };
                let item = match classify(&settings.prefix, &authn, &validator, &p.topic, &p.payload) {
                    Ok(Classified::Item(Incoming::Reading(r, to, _))) => Some(Incoming::Reading(r, to, receipt.take())),
                    Ok(Classified::Item(item)) => Some(item),
                    Ok(Classified::View(key, v)) => {
                        tracing::debug!(site = %key.site, edge = %key.edge, camera = %key.camera, "camera view");
                        views.put(key, v);
                        None
                    }
                    Ok(Classified::Evidence(o)) => {
                        if save_tx.try_send(o).is_err() {
                            metrics.reject("evidence_backlog");
                            rejects.note("evidence_backlog", &p.topic);
                        }
                        None
                    }
                    Err(rej) => {
                        if rej.reason == "status_malformed" {
                            metrics.status_rejected.inc();
                        }
                        metrics.reject(rej.reason);
                        rejects.note(rej.reason, &rej.detail);
                        None
                    }
                };
                let mut gone = false;
                for item in item.into_iter().chain(receipt.map(Incoming::Receipt)) {
                    gone |= tx.send(item).await.is_err();
                }
                if gone {
                    break;
                }
                metrics.ingest_queue_depth.set((tx.max_capacity() - tx.capacity()) as i64);
            }
            Ok(_) => {}
            Err(e) => {
                set_connected(false);
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
    set_connected(false);
    // Say goodbye so the broker keeps our persistent session cleanly; bounded so shutdown cannot hang.
    disconnect(&client, &mut eventloop, Duration::from_millis(500)).await;
    tracing::debug!(client = %settings.client_id, "mqtt ingest stopped");
}

/// What one publish turned out to be.
enum Classified {
    /// A reading or a status for the processor.
    Item(Incoming),
    /// An evidence snapshot for the intake task.
    Evidence(Offered),
    /// A camera's view.
    View(CameraKey, StoredView),
}

/// Authenticates a publish, parses it by topic and checks that its sender may say it: a reading only for the
/// signer's own `{edge}/…` sources, a status only for the signer's own edge, evidence (checked further by the
/// intake) only signed by an edge of that site, a camera's view only signed by its own edge.
fn classify(
    prefix: &str,
    authn: &Authenticator,
    validator: &Validator,
    topic_name: &str,
    payload: &[u8],
) -> Result<Classified, Rejection> {
    if payload.len() > store_evidence::MAX_BYTES + 1024 {
        return Err(Rejection::new("oversized", format!("{} bytes on {topic_name}", payload.len())));
    }
    let who = authn.check(topic_name, payload)?;
    if let Some((site, zone, ticket)) = topic::parse_evidence(prefix, topic_name) {
        store_evidence::check(who.body)
            .map_err(|reason| Rejection::new(reason, format!("{topic_name} ({} bytes)", who.body.len())))?;
        let evidence = Evidence { ticket, site, zone, received: Utc::now(), jpeg: who.body.to_vec() };
        return Ok(Classified::Evidence(Offered { evidence, edge: who.edge }));
    }
    if let Some((site, edge, camera)) = topic::parse_edge_view(prefix, topic_name) {
        if who.edge.as_deref().is_some_and(|signer| signer != edge) {
            return Err(Rejection::new("foreign_view", format!("{topic_name} signed by {:?}", who.edge)));
        }
        let v = camera_views::admit(who.body, &camera)?;
        return Ok(Classified::View(CameraKey { site, edge, camera }, v));
    }
    if let Some((site, edge)) = topic::parse_edge_status(prefix, topic_name) {
        let status: EdgeStatus = serde_json::from_slice(who.body)
            .map_err(|e| Rejection::new("status_malformed", format!("{topic_name}: {e}")))?;
        if status.site != site || status.edge_id != edge {
            return Err(Rejection::new(
                "status_mismatch",
                format!("{topic_name} carries the status of {}/{}", status.site, status.edge_id),
            ));
        }
        if who.edge.as_deref().is_some_and(|signer| signer != edge) {
            return Err(Rejection::new("foreign_status", format!("{topic_name} signed by {:?}", who.edge)));
        }
        return Ok(Classified::Item(Incoming::Status(status)));
    }
    let reading = validator.reading(topic_name, who.body, Utc::now())?;
    let owner = authn::edge_of_source(&reading.source_id);
    let ack_to = match who.edge {
        Some(signer) if owner != Some(signer.as_str()) => {
            return Err(Rejection::new(
                "foreign_source",
                format!("{topic_name}: edge {signer:?} sent a reading of source {:?}", reading.source_id),
            ));
        }
        Some(signer) => Some(AckTo { edge: signer, kid: who.kid }),
        None => owner.map(|e| AckTo { edge: e.to_string(), kid: None }),
    };
    Ok(Classified::Item(Incoming::Reading(reading, ack_to, None)))
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
