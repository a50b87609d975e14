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
//! - A PUBACK only says the broker has the reading. With `delete_on = "commit"` (the default) a reading is
//!   deleted when the centre's signed [`CommitAck`] on `{prefix}/{site}/edge/{edge}/ack` says it is stored;
//!   a broker that loses it, or a centre killed between taking it and committing it, cannot lose it: readings
//!   PUBACKed but not acknowledged within `commit_timeout_s` are sent again (the centre stores each
//!   `(source, epoch, seq)` once). At most [`MAX_AWAITING`] readings wait for their acknowledgement at once.
//! - Everything published is signed with the edge's credential when it has one ([`Identity`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;
use crowdgrid_proto::ack::CommitAck;
use crowdgrid_proto::{topic, EdgeState, EdgeStatus};
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::config::{DeleteOn, MqttConfig};
use crate::health::Health;
use crate::identity::Identity;
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
/// Readings sent and not yet acknowledged by the centre, at most (the window beyond the broker's PUBACKs).
pub const MAX_AWAITING: usize = 20_000;
/// How often unacknowledged readings are checked against `commit_timeout_s`.
const COMMIT_CHECK: Duration = Duration::from_millis(500);

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
    let identity = Identity::new(&settings.site_id, &settings.edge_id, &settings.mqtt);
    let options = mqtt_options(&settings, &identity, &status_topic)?;
    let ack_topic = topic::edge_ack(prefix, &settings.site_id, &settings.edge_id);
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
        signed = identity.credential.is_some(),
        delete_on = ?settings.mqtt.delete_on,
        "publisher starting"
    );
    loop {
        // Fresh client + event loop per connection: no in-memory retransmission state survives.
        let (client, eventloop) = AsyncClient::new(options.clone(), 2 * window + 8);
        let topics = Topics { status: &status_topic, ack: &ack_topic };
        let mut session = Session::new(&settings, &queue, &health, &identity, topics, client, window);
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
fn mqtt_options(s: &PublisherSettings, identity: &Identity, status_topic: &str) -> Result<MqttOptions, PublishError> {
    let client_id = s.mqtt.client_id.clone().unwrap_or_else(|| s.edge_id.clone());
    let mut o = MqttOptions::new(client_id, s.mqtt.host.clone(), s.mqtt.port);
    // Zero disables keep-alive; anything else is whole seconds (>= 1 s, as rumqttc requires).
    o.set_keep_alive(Duration::from_secs(s.mqtt.keep_alive_s));
    o.set_clean_session(true);
    o.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    // Room for the reading window plus the status messages.
    o.set_inflight(s.inflight.max(1).saturating_add(2));
    identity.login(&mut o, &s.mqtt);
    let will = identity.seal(status_topic, serde_json::to_vec(&EdgeStatus::offline(&s.edge_id, &s.site_id))?);
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
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    /// A queued reading, by queue id; `awaited`: its deletion waits for the centre's acknowledgement.
    Reading { id: i64, awaited: bool },
    /// A status message.
    Status { offline: bool },
}

/// The topics of one edge.
#[derive(Clone, Copy)]
struct Topics<'a> {
    status: &'a str,
    ack: &'a str,
}

/// A reading handed to the broker and not yet acknowledged by the centre.
#[derive(Debug, Clone)]
struct Awaiting {
    /// What the acknowledgements name it by.
    source_id: String,
    /// Its sequence number.
    seq: u64,
    /// When the broker's PUBACK came (`None`: not yet).
    pubacked: Option<Instant>,
}

/// The part of a queued reading the acknowledgements name.
#[derive(serde::Deserialize)]
struct Key {
    source_id: String,
    seq: u64,
}

/// The state of one connection.
struct Session<'a> {
    settings: &'a PublisherSettings,
    queue: &'a QueueHandle,
    health: &'a Health,
    identity: &'a Identity,
    status_topic: &'a str,
    ack_topic: &'a str,
    /// Queue id → sent readings awaiting the centre's acknowledgement.
    awaiting: HashMap<i64, Awaiting>,
    /// When the next check for overdue acknowledgements is due.
    next_commit_check: Instant,
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
        identity: &'a Identity,
        topics: Topics<'a>,
        client: AsyncClient,
        window: usize,
    ) -> Self {
        let now = Instant::now();
        Self {
            settings,
            queue,
            health,
            identity,
            status_topic: topics.status,
            ack_topic: topics.ack,
            awaiting: HashMap::new(),
            next_commit_check: now + COMMIT_CHECK,
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
                _ = sleep_until(self.next_commit_check), if self.connected && self.by_commit() => {
                    self.next_commit_check = Instant::now() + COMMIT_CHECK;
                    self.resend_overdue();
                }
                _ = sleep_until(drain_until.unwrap_or_else(Instant::now)), if drain_until.is_some() => {}
            }
        }
    }

    /// Hands queued readings to the client until the window is full or the queue has nothing new.
    /// Returns false if the client refused a request (the session must end).
    async fn fill(&mut self) -> Result<bool, PublishError> {
        while self.outstanding < self.window && self.awaiting.len() < MAX_AWAITING {
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
            let key = if self.by_commit() { serde_json::from_slice::<Key>(&msg.payload).ok() } else { None };
            let payload = self.identity.seal(&msg.topic, msg.payload);
            if let Err(e) = self.client.try_publish(msg.topic, QoS::AtLeastOnce, false, payload) {
                tracing::debug!(error = %e, id = msg.id, "try_publish refused");
                return Ok(false);
            }
            let awaited = key.is_some();
            if let Some(k) = key {
                self.awaiting.insert(msg.id, Awaiting { source_id: k.source_id, seq: k.seq, pubacked: None });
            }
            self.requested.push_back(Sent::Reading { id: msg.id, awaited });
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
                if self.by_commit() {
                    if let Err(e) = self.client.try_subscribe(self.ack_topic, QoS::AtLeastOnce) {
                        tracing::warn!(error = %e, "cannot subscribe to commit acknowledgements; readings will be resent");
                    }
                }
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
            Event::Incoming(Packet::Publish(p)) if p.topic == self.ack_topic => {
                match self.identity.open_ack(&p.topic, &p.payload) {
                    Ok(ack) => self.on_commit(&ack),
                    Err(reason) => {
                        self.health.reject_ack(reason);
                        tracing::warn!(reason, topic = %p.topic, "commit acknowledgement refused");
                    }
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => match self.inflight.remove(&ack.pkid) {
                Some(Sent::Reading { id, awaited }) => {
                    self.outstanding = self.outstanding.saturating_sub(1);
                    if awaited {
                        // Wait for the centre; if its acknowledgement came first, the entry is gone already.
                        if let Some(a) = self.awaiting.get_mut(&id) {
                            a.pubacked = Some(Instant::now());
                        }
                    } else {
                        self.acked_total += 1;
                        self.push_ack(id);
                    }
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

    /// True if readings are deleted on the centre's acknowledgement.
    fn by_commit(&self) -> bool {
        self.settings.mqtt.delete_on == DeleteOn::Commit
    }

    /// Deletes the readings the centre says it stored. The work is bounded by what this edge awaits, whatever the
    /// acknowledgement claims (a range of a million seqs costs a lookup per awaited reading, not a million).
    fn on_commit(&mut self, ack: &CommitAck) {
        let epoch = self.queue.epoch();
        let mut ranges: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
        for c in ack.committed.iter().filter(|c| c.epoch == epoch) {
            ranges.entry(c.source_id.as_str()).or_default().extend(c.ranges.iter().copied().filter(|(a, b)| a <= b));
        }
        if ranges.is_empty() {
            return;
        }
        for r in ranges.values_mut() {
            // Sorted and merged, so the last range starting at or before a seq alone decides.
            r.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(r.len());
            for &(a, b) in r.iter() {
                match merged.last_mut() {
                    Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
                    _ => merged.push((a, b)),
                }
            }
            *r = merged;
        }
        let covered = |source: &str, seq: u64| {
            ranges.get(source).is_some_and(|rs| {
                let i = rs.partition_point(|(a, _)| *a <= seq);
                i > 0 && rs[i - 1].1 >= seq
            })
        };
        let mut done = Vec::new();
        self.awaiting.retain(|id, a| {
            let hit = covered(&a.source_id, a.seq);
            if hit {
                done.push(*id);
            }
            !hit
        });
        for id in done {
            self.acked_total += 1;
            self.push_ack(id);
        }
    }

    /// Sends everything unacknowledged again when the oldest PUBACKed reading has waited past the timeout: the
    /// centre lost it (killed before its commit) or its acknowledgement was lost; it drops what it has.
    fn resend_overdue(&mut self) {
        let timeout = Duration::from_secs(self.settings.mqtt.commit_timeout_s.max(1));
        let now = Instant::now();
        let overdue = self.awaiting.values().filter(|a| a.pubacked.is_some_and(|t| now - t >= timeout)).count();
        if overdue == 0 {
            return;
        }
        tracing::warn!(
            overdue,
            awaiting = self.awaiting.len(),
            timeout_s = timeout.as_secs(),
            "the centre has not acknowledged readings the broker took; sending them again"
        );
        self.health.note_resend(overdue as u64);
        self.awaiting.clear();
        self.buffer.clear();
        self.last_sent_id = 0;
        self.queue_idle = false;
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
            models: self.health.models(),
            resent: self.health.delivery().0,
            acks_refused: self.health.delivery().1,
        };
        let payload = self.identity.seal(self.status_topic, serde_json::to_vec(&status)?);
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
#[path = "publisher_tests.rs"]
mod tests;
