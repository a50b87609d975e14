//! The MQTT publisher: drains the on-disk queue in order with QoS 1 and deletes a reading only on its PUBACK.
//!
//! - Every (re)connection gets a new `AsyncClient` + `EventLoop`, so rumqttc keeps no retransmission state of
//!   its own: the disk queue is the single source of truth. After each CONNACK the publisher replays from the
//!   oldest unacknowledged reading; the centre drops the duplicates by `(epoch, seq)`.
//! - At most `inflight` readings are unacknowledged at once. The event loop is polled in the same task as the
//!   sending logic (`tokio::select!`); publishes go through the non-blocking `try_publish`, and the request
//!   channel holds more than the window, so the task never waits on itself.
//! - The poll future owns the event loop and is never dropped half-way (it is kept across `select!` rounds),
//!   so no packet is lost between rumqttc's bookkeeping and the socket.
//! - A retained [`EdgeStatus`] says `online` after each CONNACK and every `status_interval_s`; the Last Will
//!   (and a clean shutdown) say `offline`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;
use crowdgrid_proto::{topic, EdgeState, EdgeStatus};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::config::MqttConfig;
use crate::health::Health;
use crate::queue::{QueueError, QueueHandle, Queued};

/// Largest MQTT packet sent or accepted; a queued message that cannot fit (or whose topic has a wildcard)
/// is deleted with an error log, as it could never be published and would block the queue forever.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;
/// Acknowledged ids are deleted from the queue at least this often...
const ACK_FLUSH_EVERY: Duration = Duration::from_millis(50);
/// ...or as soon as this many are waiting.
const ACK_BATCH: usize = 500;
/// Safety-net re-check of the queue when idle, in case a wake-up was missed.
const IDLE_RECHECK: Duration = Duration::from_millis(100);
/// First reconnect delay; doubles up to `max_backoff_s`.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Bound on the final offline status + DISCONNECT at shutdown.
const FINAL_BOUND: Duration = Duration::from_secs(1);

/// What the publisher needs to run.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// Broker connection, topic prefix, keep-alive, status interval and backoff.
    pub mqtt: MqttConfig,
    /// Edge id (client id unless `mqtt.client_id` is set; a status topic level).
    pub edge_id: String,
    /// Site id (a status topic level).
    pub site_id: String,
    /// Readings awaiting PUBACK at once (0 is treated as 1).
    pub inflight: u16,
    /// At shutdown, how long to keep publishing before leaving the rest on disk.
    pub drain_grace: Duration,
}

/// Why the publisher stopped with an error. Broker trouble is not an error: it reconnects.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The on-disk queue failed.
    #[error("publisher queue: {0}")]
    Queue(#[from] QueueError),
    /// The status message could not be encoded.
    #[error("cannot encode edge status: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publishes the queue until `shutdown`, then drains for up to `drain_grace`, publishes the retained offline
/// status, disconnects and returns. Whatever is not acknowledged stays on disk for the next run.
pub async fn run(
    settings: PublisherSettings,
    queue: QueueHandle,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), PublishError> {
    let prefix = settings.mqtt.topic_prefix.as_str();
    let status_topic = topic::edge_status(prefix, &settings.site_id, &settings.edge_id);
    let options = mqtt_options(&settings, &status_topic)?;
    let window = usize::from(settings.inflight.max(1));
    let max_backoff = Duration::from_secs(settings.mqtt.max_backoff_s).max(BACKOFF_START);
    let mut backoff = BACKOFF_START;
    let mut outage = false;
    tracing::info!(
        broker = %format!("{}:{}", settings.mqtt.host, settings.mqtt.port),
        client_id = %options.client_id(),
        edge = %settings.edge_id,
        site = %settings.site_id,
        inflight = window,
        queue_depth = queue.depth(),
        "publisher starting"
    );
    loop {
        // Fresh client + event loop per connection: no in-memory retransmission state survives.
        let (client, eventloop) = AsyncClient::new(options.clone(), 2 * window + 8);
        let mut session = Session::new(&settings, &queue, &health, &status_topic, client, window);
        match session.run(eventloop, &shutdown, &mut outage).await? {
            End::Done => return Ok(()),
            End::Lost { connected, error } => {
                if connected {
                    backoff = BACKOFF_START;
                }
                if !outage {
                    outage = true;
                    let what = if connected { "connection to broker lost" } else { "cannot connect to broker" };
                    tracing::warn!(
                        error = %error,
                        queue_depth = queue.depth(),
                        "{what}; retrying with backoff (readings stay queued; logged once per outage)"
                    );
                } else {
                    tracing::debug!(error = %error, backoff_ms = backoff.as_millis() as u64, "still no broker");
                }
                if shutdown.is_cancelled() {
                    tracing::info!(
                        queue_depth = queue.depth(),
                        "publisher stopped while disconnected; readings stay on disk"
                    );
                    return Ok(());
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        tracing::info!(queue_depth = queue.depth(), "publisher stopped while disconnected; readings stay on disk");
                        return Ok(());
                    }
                    _ = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Client options: identity, keep-alive, credentials, clean session, packet size, and the offline Last Will.
fn mqtt_options(s: &PublisherSettings, status_topic: &str) -> Result<MqttOptions, PublishError> {
    let client_id = s.mqtt.client_id.clone().unwrap_or_else(|| s.edge_id.clone());
    let mut o = MqttOptions::new(client_id, s.mqtt.host.clone(), s.mqtt.port);
    // Zero disables keep-alive; anything else is whole seconds (>= 1 s, as rumqttc requires).
    o.set_keep_alive(Duration::from_secs(s.mqtt.keep_alive_s));
    o.set_clean_session(true);
    o.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    // Room for the reading window plus the status messages.
    o.set_inflight(s.inflight.max(1).saturating_add(2));
    if let Some(user) = &s.mqtt.username {
        o.set_credentials(user.clone(), s.mqtt.password.clone().unwrap_or_default());
    }
    let will = serde_json::to_vec(&EdgeStatus::offline(&s.edge_id, &s.site_id))?;
    o.set_last_will(LastWill::new(status_topic, will, QoS::AtLeastOnce, true));
    Ok(o)
}

/// One poll of an event loop that owns it and hands it back with the result.
type PollFuture = Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

/// Polls the event loop once. The future lives across `select!` rounds, so it is never cancelled half-way
/// through writing a packet.
fn poll_once(mut eventloop: EventLoop) -> PollFuture {
    Box::pin(async move {
        let result = eventloop.poll().await;
        (eventloop, result)
    })
}

/// How one connection ended.
enum End {
    /// Shut down cleanly (drained or grace expired, offline status sent when possible).
    Done,
    /// The connection failed or could not be made.
    Lost { connected: bool, error: String },
}

/// What a publish handed to rumqttc was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// A queued reading, by queue id.
    Reading(i64),
    /// A status message.
    Status { offline: bool },
}

/// The state of one connection.
struct Session<'a> {
    settings: &'a PublisherSettings,
    queue: &'a QueueHandle,
    health: &'a Health,
    status_topic: &'a str,
    client: AsyncClient,
    /// Readings allowed awaiting PUBACK.
    window: usize,
    /// CONNACK received.
    connected: bool,
    /// Handed to the client, `Outgoing::Publish` not seen yet (FIFO: rumqttc sends in request order).
    requested: VecDeque<Sent>,
    /// Packet id → what is awaiting its PUBACK.
    inflight: HashMap<u16, Sent>,
    /// Readings handed over and not yet acknowledged.
    outstanding: usize,
    /// A status message awaits its PUBACK (no second one is queued behind it).
    status_outstanding: bool,
    /// The offline status was acknowledged.
    offline_acked: bool,
    /// Prefetched messages, in id order.
    buffer: VecDeque<Queued>,
    /// Highest queue id handed to the client on this connection.
    last_sent_id: i64,
    /// The last look found nothing new; wait for a push (or the safety re-check).
    queue_idle: bool,
    /// Acknowledged ids not yet deleted from the queue.
    acks: Vec<i64>,
    /// When `acks` must be flushed.
    ack_due: Instant,
    /// When the next periodic status is due.
    next_status: Instant,
    /// Readings acknowledged on this connection (for logs).
    acked_total: u64,
}

impl<'a> Session<'a> {
    fn new(
        settings: &'a PublisherSettings,
        queue: &'a QueueHandle,
        health: &'a Health,
        status_topic: &'a str,
        client: AsyncClient,
        window: usize,
    ) -> Self {
        let now = Instant::now();
        Self {
            settings,
            queue,
            health,
            status_topic,
            client,
            window,
            connected: false,
            requested: VecDeque::new(),
            inflight: HashMap::new(),
            outstanding: 0,
            status_outstanding: false,
            offline_acked: false,
            buffer: VecDeque::new(),
            last_sent_id: 0,
            queue_idle: false,
            acks: Vec::new(),
            ack_due: now,
            next_status: now,
            acked_total: 0,
        }
    }

    /// Drives one connection until it fails or shutdown completes.
    async fn run(
        &mut self,
        eventloop: EventLoop,
        shutdown: &CancellationToken,
        outage: &mut bool,
    ) -> Result<End, PublishError> {
        let mut poll = poll_once(eventloop);
        let mut drain_until: Option<Instant> = None;
        loop {
            if self.connected && !self.fill().await? {
                self.flush_acks().await?;
                return Ok(End::Lost { connected: true, error: "client request channel refused a publish".into() });
            }
            if let Some(deadline) = drain_until {
                // Everything still in the queue is acknowledged (awaiting the batched delete) or nothing is left.
                let drained =
                    self.outstanding == 0 && self.buffer.is_empty() && self.queue.depth() <= self.acks.len() as u64;
                if drained || Instant::now() >= deadline {
                    self.flush_acks().await?;
                    if drained {
                        tracing::info!(acked = self.acked_total, "queue drained");
                    } else {
                        tracing::warn!(
                            queue_depth = self.queue.depth(),
                            in_flight = self.outstanding,
                            "drain grace expired; the rest stays on disk"
                        );
                    }
                    return self.finish(poll).await;
                }
            }
            let status_every = Duration::from_secs(self.settings.mqtt.status_interval_s.max(1));
            tokio::select! {
                (eventloop, result) = &mut poll => {
                    match result {
                        Ok(event) => self.on_event(event, outage)?,
                        Err(e) => {
                            self.flush_acks().await?;
                            return Ok(End::Lost { connected: self.connected, error: e.to_string() });
                        }
                    }
                    if self.acks.len() >= ACK_BATCH {
                        self.flush_acks().await?;
                    }
                    poll = poll_once(eventloop);
                }
                _ = shutdown.cancelled(), if drain_until.is_none() => {
                    if !self.connected {
                        tracing::info!(queue_depth = self.queue.depth(), "publisher stopped before connecting; readings stay on disk");
                        return Ok(End::Done);
                    }
                    tracing::info!(
                        queue_depth = self.queue.depth(),
                        grace_ms = self.settings.drain_grace.as_millis() as u64,
                        "shutdown: draining the queue"
                    );
                    drain_until = Some(Instant::now() + self.settings.drain_grace);
                }
                _ = self.queue.notified(), if self.connected && self.queue_idle => self.queue_idle = false,
                _ = sleep(IDLE_RECHECK), if self.connected && self.queue_idle => self.queue_idle = false,
                _ = sleep_until(self.ack_due), if !self.acks.is_empty() => self.flush_acks().await?,
                _ = sleep_until(self.next_status), if self.connected && drain_until.is_none() => {
                    self.next_status = Instant::now() + status_every;
                    if self.status_outstanding {
                        tracing::debug!("previous status not acknowledged yet; skipping this refresh");
                    } else if !self.publish_status(EdgeState::Online)? {
                        return Ok(End::Lost { connected: true, error: "client request channel refused the status".into() });
                    }
                }
                _ = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {}
            }
        }
    }

    /// Hands queued readings to the client until the window is full or the queue has nothing new.
    /// Returns false if the client refused a request (the session must end).
    async fn fill(&mut self) -> Result<bool, PublishError> {
        while self.outstanding < self.window {
            if self.buffer.is_empty() {
                if self.queue_idle {
                    break;
                }
                let batch = self.queue.peek(self.last_sent_id, self.window).await?;
                self.queue_idle = batch.len() < self.window;
                self.buffer.extend(batch);
                if self.buffer.is_empty() {
                    break;
                }
            }
            let Some(msg) = self.buffer.pop_front() else {
                break;
            };
            self.last_sent_id = msg.id;
            // A message the client would always refuse would block the queue forever: delete it, loudly.
            let too_large = msg.topic.len() + msg.payload.len() + 16 > MAX_PACKET_BYTES;
            if too_large || !rumqttc::valid_topic(&msg.topic) {
                tracing::error!(
                    id = msg.id,
                    topic = %msg.topic,
                    bytes = msg.payload.len(),
                    max = MAX_PACKET_BYTES,
                    too_large,
                    "queued message cannot be published; deleting it"
                );
                self.push_ack(msg.id);
                continue;
            }
            if let Err(e) = self.client.try_publish(msg.topic, QoS::AtLeastOnce, false, msg.payload) {
                tracing::debug!(error = %e, id = msg.id, "try_publish refused");
                return Ok(false);
            }
            self.requested.push_back(Sent::Reading(msg.id));
            self.outstanding += 1;
        }
        Ok(true)
    }

    /// Tracks CONNACK, packet ids and PUBACKs.
    fn on_event(&mut self, event: Event, outage: &mut bool) -> Result<(), PublishError> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connected = true;
                self.last_sent_id = 0; // replay from the oldest unacknowledged reading
                self.queue_idle = false;
                let (depth, dropped) = (self.queue.depth(), self.queue.dropped());
                if std::mem::take(outage) {
                    tracing::info!(
                        queue_depth = depth,
                        queue_dropped = dropped,
                        "connected to broker again; replaying the queue"
                    );
                } else {
                    tracing::info!(
                        queue_depth = depth,
                        queue_dropped = dropped,
                        session_present = ack.session_present,
                        "connected to broker"
                    );
                }
                let every = Duration::from_secs(self.settings.mqtt.status_interval_s.max(1));
                self.next_status = Instant::now() + every;
                // The request channel is empty right after connecting, so this cannot be refused.
                if !self.publish_status(EdgeState::Online)? {
                    tracing::warn!("could not queue the online status");
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => match self.requested.pop_front() {
                Some(sent) => {
                    self.inflight.insert(pkid, sent);
                }
                None => tracing::debug!(pkid, "publish not requested by this session"),
            },
            Event::Incoming(Packet::PubAck(ack)) => match self.inflight.remove(&ack.pkid) {
                Some(Sent::Reading(id)) => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    self.acked_total += 1;
                    self.push_ack(id);
                }
                Some(Sent::Status { offline }) => {
                    self.status_outstanding = false;
                    self.offline_acked |= offline;
                }
                None => tracing::debug!(pkid = ack.pkid, "PUBACK for an unknown packet id"),
            },
            _ => {}
        }
        Ok(())
    }

    /// Records an acknowledged queue id for the next batched delete.
    fn push_ack(&mut self, id: i64) {
        if self.acks.is_empty() {
            self.ack_due = Instant::now() + ACK_FLUSH_EVERY;
        }
        self.acks.push(id);
    }

    /// Deletes the acknowledged ids from the queue.
    async fn flush_acks(&mut self) -> Result<(), PublishError> {
        if !self.acks.is_empty() {
            let ids = std::mem::take(&mut self.acks);
            tracing::trace!(n = ids.len(), "deleting acknowledged readings");
            self.queue.ack(ids).await?;
        }
        Ok(())
    }

    /// Queues a retained status publish. Returns false if the client refused it.
    fn publish_status(&mut self, state: EdgeState) -> Result<bool, PublishError> {
        let status = EdgeStatus {
            edge_id: self.settings.edge_id.clone(),
            site: self.settings.site_id.clone(),
            state,
            ts: Utc::now(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            queue_depth: self.queue.depth(),
            queue_dropped: self.queue.dropped(),
            sources: self.health.snapshot(),
        };
        let payload = serde_json::to_vec(&status)?;
        if let Err(e) = self.client.try_publish(self.status_topic, QoS::AtLeastOnce, true, payload) {
            tracing::debug!(error = %e, ?state, "status publish refused");
            return Ok(false);
        }
        let offline = state == EdgeState::Offline;
        self.requested.push_back(Sent::Status { offline });
        self.status_outstanding = true;
        tracing::debug!(?state, queue_depth = status.queue_depth, "status published");
        Ok(true)
    }

    /// Publishes the retained offline status, waits for its PUBACK, sends DISCONNECT; all bounded by
    /// [`FINAL_BOUND`]. PUBACKs for readings still in flight are honoured meanwhile.
    async fn finish(&mut self, mut poll: PollFuture) -> Result<End, PublishError> {
        let bound = Instant::now() + FINAL_BOUND;
        let offline_queued = self.publish_status(EdgeState::Offline)?;
        let mut disconnect_requested = false;
        let mut unused_outage = false;
        let clean = loop {
            if !disconnect_requested && (self.offline_acked || !offline_queued) {
                if let Err(e) = self.client.try_disconnect() {
                    tracing::debug!(error = %e, "disconnect refused");
                    break false;
                }
                disconnect_requested = true;
            }
            tokio::select! {
                (eventloop, result) = &mut poll => match result {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break true,
                    Ok(event) => {
                        self.on_event(event, &mut unused_outage)?;
                        poll = poll_once(eventloop);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "connection ended during shutdown");
                        break false;
                    }
                },
                _ = sleep_until(bound) => break false,
            }
        };
        self.flush_acks().await?;
        if clean {
            tracing::info!(queue_depth = self.queue.depth(), "publisher stopped: offline status sent, disconnected");
        } else {
            tracing::warn!(
                queue_depth = self.queue.depth(),
                offline_acked = self.offline_acked,
                "publisher stopped without a clean disconnect; the broker's Last Will reports offline"
            );
        }
        Ok(End::Done)
    }
}

#[cfg(test)]
mod tests {
    //! Against the real Mosquitto on 127.0.0.1:1883, each test under its own random topic prefix.

    use super::*;
    use crate::config::{Overflow, QueueConfig};
    use crowdgrid_proto::{Reading, SourceKind};
    use tokio::sync::{mpsc, oneshot};
    use tokio::time::timeout;

    const HOST: &str = "127.0.0.1";
    const PORT: u16 = 1883;
    const WAIT: Duration = Duration::from_secs(30);

    fn reading(i: usize) -> Reading {
        Reading {
            site: "site-a".into(),
            zone: ["north", "south"][i % 2].into(),
            source: SourceKind::Simulated,
            source_id: "edge-1/sim".into(),
            ts: Utc::now(),
            seq: 0,
            epoch: 0,
            count: i as f64,
            area_m2: 1000.0,
            density: i as f64 / 1000.0,
            confidence: 0.5,
            classes: None,
            inflow_per_min: None,
            outflow_per_min: None,
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        prefix: String,
        queue: QueueHandle,
        settings: PublisherSettings,
        status_topic: String,
    }

    fn fixture(port: u16, inflight: u16) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let prefix = format!("crowdgrid-test/{}", rand::random::<u64>());
        let cfg = QueueConfig {
            path: dir.path().join("queue.db"),
            max_bytes: 64 << 20,
            overflow: Overflow::DropOldest,
            inflight,
        };
        let queue = QueueHandle::open(&cfg, &prefix).unwrap();
        let mqtt = MqttConfig {
            host: HOST.into(),
            port,
            client_id: Some(format!("edge-test-{}", rand::random::<u64>())),
            topic_prefix: prefix.clone(),
            keep_alive_s: 5,
            max_backoff_s: 1,
            ..MqttConfig::default()
        };
        let settings = PublisherSettings {
            mqtt,
            edge_id: "edge-1".into(),
            site_id: "site-a".into(),
            inflight,
            drain_grace: Duration::from_secs(3),
        };
        let status_topic = topic::edge_status(&prefix, "site-a", "edge-1");
        Fixture { _dir: dir, prefix, queue, settings, status_topic }
    }

    /// A client subscribed (SUBACK received) to `{prefix}/#`, forwarding `(topic, payload)` of every publish.
    async fn subscribe(
        prefix: &str,
    ) -> (AsyncClient, mpsc::UnboundedReceiver<(String, Vec<u8>)>, tokio::task::JoinHandle<()>) {
        let mut o = MqttOptions::new(format!("sub-{}", rand::random::<u64>()), HOST, PORT);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        client.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let (subacked_tx, subacked_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut subacked = Some(subacked_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = subacked.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => sleep(Duration::from_millis(100)).await,
                }
            }
        });
        timeout(Duration::from_secs(5), subacked_rx).await.expect("SUBACK in time").unwrap();
        (client, rx, task)
    }

    /// Receives until a status in `state` arrives; `clean` requires the publisher's own (versioned) message
    /// rather than the Last Will. Readings received meanwhile are appended to `seqs`.
    async fn next_status(
        rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
        status_topic: &str,
        state: EdgeState,
        seqs: &mut Vec<u64>,
    ) -> EdgeStatus {
        loop {
            let (t, payload) = rx.recv().await.expect("subscriber alive");
            if t == status_topic {
                if payload.is_empty() {
                    continue;
                }
                let s: EdgeStatus = serde_json::from_slice(&payload).unwrap();
                if s.state == state && !s.version.is_empty() {
                    return s;
                }
            } else {
                let r: Reading = serde_json::from_slice(&payload).unwrap();
                seqs.push(r.seq);
            }
        }
    }

    /// Receives readings until every seq up to `n` has been seen; returns how many online statuses came too.
    async fn readings_until(
        rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
        prefix: &str,
        n: u64,
        seqs: &mut Vec<u64>,
    ) -> usize {
        let mut onlines = 0;
        while seqs.iter().copied().max().unwrap_or(0) < n {
            let (t, payload) = rx.recv().await.expect("subscriber alive");
            if topic::parse_reading(prefix, &t).is_some() {
                let r: Reading = serde_json::from_slice(&payload).unwrap();
                seqs.push(r.seq);
            } else if topic::parse_edge_status(prefix, &t).is_some() && !payload.is_empty() {
                let s: EdgeStatus = serde_json::from_slice(&payload).unwrap();
                onlines += usize::from(s.state == EdgeState::Online);
            }
        }
        onlines
    }

    /// Removes the retained status so the broker does not keep test data.
    async fn clear_retained(
        client: &AsyncClient,
        rx: &mut mpsc::UnboundedReceiver<(String, Vec<u8>)>,
        status_topic: &str,
    ) {
        client.publish(status_topic, QoS::AtLeastOnce, true, Vec::new()).await.unwrap();
        let cleared = timeout(Duration::from_secs(5), async {
            while let Some((t, payload)) = rx.recv().await {
                if t == status_topic && payload.is_empty() {
                    return;
                }
            }
        });
        cleared.await.expect("retained status cleared");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivers_every_reading_once_in_order() {
        let f = fixture(PORT, 16);
        let (sub, mut rx, sub_task) = subscribe(&f.prefix).await;
        f.queue.push((0..250).map(reading).collect()).await.unwrap();
        let shutdown = CancellationToken::new();
        let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), Health::new(), shutdown.clone()));
        // The second half arrives while the publisher runs (the notify path).
        for chunk in 0..5 {
            let start = 250 + chunk * 50;
            f.queue.push((start..start + 50).map(reading).collect()).await.unwrap();
        }

        let mut seqs = Vec::new();
        let online = timeout(WAIT, next_status(&mut rx, &f.status_topic, EdgeState::Online, &mut seqs))
            .await
            .expect("online status in time");
        assert_eq!(online.edge_id, "edge-1");
        assert_eq!(online.version, env!("CARGO_PKG_VERSION"));
        timeout(WAIT, readings_until(&mut rx, &f.prefix, 500, &mut seqs)).await.expect("all readings in time");
        assert_eq!(seqs, (1..=500).collect::<Vec<u64>>(), "every reading exactly once, in seq order");

        timeout(Duration::from_secs(5), async {
            while f.queue.depth() > 0 {
                sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("queue empties once acknowledged");

        shutdown.cancel();
        timeout(Duration::from_secs(10), publisher).await.expect("publisher stops").unwrap().unwrap();
        let offline =
            timeout(Duration::from_secs(5), next_status(&mut rx, &f.status_topic, EdgeState::Offline, &mut seqs))
                .await
                .expect("offline status on shutdown");
        assert_eq!(offline.queue_depth, 0);
        assert_eq!(seqs.len(), 500, "no reading published twice");
        assert_eq!(f.queue.depth(), 0);

        clear_retained(&sub, &mut rx, &f.status_topic).await;
        sub_task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replays_from_the_oldest_unacked_after_a_takeover() {
        let f = fixture(PORT, 4);
        let (sub, mut rx, sub_task) = subscribe(&f.prefix).await;
        f.queue.push((0..2000).map(reading).collect()).await.unwrap();
        let shutdown = CancellationToken::new();
        let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), Health::new(), shutdown.clone()));
        let mut seqs = Vec::new();
        let mut onlines =
            timeout(WAIT, readings_until(&mut rx, &f.prefix, 100, &mut seqs)).await.expect("first readings");

        // Another client with the same id takes the session over: the publisher is cut off mid-stream.
        let mut o = MqttOptions::new(f.settings.mqtt.client_id.clone().unwrap(), HOST, PORT);
        o.set_keep_alive(Duration::from_secs(5));
        let (_intruder, mut eventloop) = AsyncClient::new(o, 10);
        timeout(Duration::from_secs(5), async {
            loop {
                if let Ok(Event::Incoming(Packet::ConnAck(_))) = eventloop.poll().await {
                    return;
                }
            }
        })
        .await
        .expect("intruder connects");
        drop(eventloop);

        onlines += timeout(WAIT, readings_until(&mut rx, &f.prefix, 2000, &mut seqs))
            .await
            .expect("all readings after reconnect");
        assert!(onlines >= 2, "the publisher reconnected and said online again ({onlines})");
        // What the centre keeps: each reading whose seq is above the last one stored.
        let mut last = 0;
        let kept: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|&s| {
                let keep = s > last;
                last = last.max(s);
                keep
            })
            .collect();
        assert_eq!(kept, (1..=2000).collect::<Vec<u64>>(), "nothing lost, order kept after dedup");

        shutdown.cancel();
        timeout(Duration::from_secs(10), publisher).await.expect("publisher stops").unwrap().unwrap();
        assert_eq!(f.queue.depth(), 0);
        clear_retained(&sub, &mut rx, &f.status_topic).await;
        sub_task.abort();
    }

    #[tokio::test]
    async fn stops_promptly_without_a_broker_and_keeps_the_queue() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind((HOST, 0)).unwrap().local_addr().unwrap().port();
        let f = fixture(port, 8);
        f.queue.push((0..10).map(reading).collect()).await.unwrap();
        let shutdown = CancellationToken::new();
        let publisher = tokio::spawn(run(f.settings.clone(), f.queue.clone(), Health::new(), shutdown.clone()));
        sleep(Duration::from_millis(700)).await;
        shutdown.cancel();
        timeout(Duration::from_secs(2), publisher).await.expect("stops within 2 s").unwrap().unwrap();
        assert_eq!(f.queue.depth(), 10);
    }
}
