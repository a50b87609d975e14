//! How raw records reach a source: HTTP poll, file drop, CSV tail, webhook, MQTT subscription or replay.
//!
//! Every input parses documents with [`records`] and hands each document's records to its source as
//! one [`Batch`] on a bounded channel (awaiting when the source is busy). Input failures (connection
//! refused, unreadable file) are counted with [`Health::error`] and the input keeps going; records
//! that do not parse travel in [`Batch::errors`] so the source counts them as `malformed`.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{InputConfig, MqttConfig};
use crate::health::Health;

pub mod csv_tail;
pub mod file_drop;
pub mod http;
pub mod mqtt;
pub mod records;
pub mod replay;
pub mod webhook;

/// A record with a timestamp that can be read and replaced (replay re-stamps records).
pub trait Timestamped {
    /// When the record applies.
    fn ts(&self) -> DateTime<Utc>;
    /// Replaces the timestamp.
    fn set_ts(&mut self, ts: DateTime<Utc>);
}

/// What an input can deliver: a deserializable, timestamped record that can move between tasks
/// (and be copied, for replay loops).
pub trait Record: DeserializeOwned + Timestamped + Clone + Send + Sync + 'static {}
impl<T: DeserializeOwned + Timestamped + Clone + Send + Sync + 'static> Record for T {}

/// How many of a batch's records the source kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ack {
    /// Records accepted.
    pub accepted: usize,
    /// Records rejected (malformed or failing the source's checks).
    pub rejected: usize,
}

/// The records of one document.
#[derive(Debug)]
pub struct Batch<T> {
    /// Records that parsed.
    pub records: Vec<T>,
    /// One message per record that did not parse.
    pub errors: Vec<String>,
    /// If set, the source answers with its counts once the batch is processed (webhook replies).
    pub ack: Option<oneshot::Sender<Ack>>,
    /// The input started over (a looped replay): the data restarts, so does the source's state.
    pub restart: bool,
}

impl<T> Batch<T> {
    /// A batch without an acknowledgement.
    pub fn new(records: Vec<T>, errors: Vec<String>) -> Self {
        Self { records, errors, ack: None, restart: false }
    }
}

/// What an input needs besides its configuration.
#[derive(Debug, Clone)]
pub struct InputContext {
    /// Site id.
    pub site: String,
    /// Full source id (`{edge}/{source}`), used for health counters and logs.
    pub source_id: String,
    /// Source kind label for health (`base_station`, `gate`).
    pub kind: &'static str,
    /// Health registry.
    pub health: Health,
    /// The edge's broker settings (defaults for MQTT inputs).
    pub mqtt: MqttConfig,
    /// Stops the input.
    pub shutdown: CancellationToken,
}

/// The edge part of a source id `{edge}/{source}` (the whole id if it has none).
pub fn edge_of(source_id: &str) -> &str {
    crowdgrid_proto::reading::edge_of_source(source_id).unwrap_or(source_id)
}

impl InputContext {
    /// Counts an input error and logs it.
    pub fn error(&self, detail: &str) {
        self.health.error(&self.source_id, self.kind, detail);
    }
}

/// A running input.
#[derive(Debug)]
pub struct Spawned {
    /// The input's task; it ends when `shutdown` is cancelled or its source stops listening.
    pub handle: JoinHandle<()>,
    /// The address a webhook input actually listens on (useful with port 0).
    pub bound_addr: Option<SocketAddr>,
}

/// Why an input could not start.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The webhook listen address is not `host:port`.
    #[error("listen address {listen:?} is not host:port")]
    BadListen {
        /// The configured address.
        listen: String,
    },
    /// The webhook could not bind its address.
    #[error("cannot listen on {listen}: {error}")]
    Bind {
        /// The configured address.
        listen: String,
        /// The bind error.
        #[source]
        error: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Starts the input described by `cfg`, delivering batches on `tx`. Returns once the input's task is
/// spawned (and, for a webhook, once its socket is bound).
pub async fn spawn<T: Record>(
    cfg: &InputConfig,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> Result<Spawned, InputError> {
    let task = |handle| Spawned { handle, bound_addr: None };
    Ok(match cfg.clone() {
        InputConfig::Http { url, interval_s, timeout_s } => task(http::spawn(url, interval_s, timeout_s, cx, tx)?),
        InputConfig::FileDrop { dir, interval_ms } => task(file_drop::spawn(dir, interval_ms, cx, tx)),
        InputConfig::CsvTail { path, interval_ms } => task(csv_tail::spawn(path, interval_ms, cx, tx)),
        InputConfig::Webhook { listen, path } => webhook::spawn(&listen, &path, cx, tx).await?,
        InputConfig::Mqtt { host, port, topic } => task(mqtt::spawn(host, port, topic, cx, tx)),
        InputConfig::Replay { path, speed, r#loop } => task(replay::spawn(path, speed, r#loop, cx, tx)),
    })
}

/// Sleeps for `d` unless `shutdown` is cancelled first; returns false on shutdown.
pub async fn sleep_or_cancel(d: std::time::Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Sends a parsed document to the source unless it is empty; returns false once the source is gone.
pub async fn deliver<T>(tx: &mpsc::Sender<Batch<T>>, records: Vec<T>, errors: Vec<String>) -> bool {
    if records.is_empty() && errors.is_empty() {
        return true;
    }
    tx.send(Batch::new(records, errors)).await.is_ok()
}
