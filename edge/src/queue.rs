//! The on-disk store-and-forward queue: readings wait here (SQLite, WAL) until the broker acknowledges them.
//!
//! - Sequence numbers are assigned when a reading enters the queue, per `source_id`, strictly increasing and
//!   persisted in the same transaction as the rows, so they continue across restarts.
//! - The `epoch` is the file's creation time in ms; a new file (a re-installed edge) starts a new, higher
//!   sequence space the centre can tell apart.
//! - Rows are deleted only when acknowledged ([`Queue::ack`]) or dropped by the overflow policy when the disk
//!   budget is full; every dropped reading is counted in [`Queue::dropped_total`].
//!
//! [`QueueHandle`] is the async, cloneable face of the queue: SQLite work runs on `spawn_blocking`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crowdgrid_proto::{topic, Reading};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tokio::sync::Notify;

use crate::config::{Overflow, QueueConfig};

/// Approximate per-row cost in bytes on top of topic and payload (rowid, record header, b-tree cell).
pub const ROW_OVERHEAD: u64 = 40;

/// The write-ahead log counts against the disk budget: rows may use the budget less this reserve (at most a
/// quarter of it), and the WAL is checkpointed and truncated to stay within the reserve.
const WAL_LIMIT_BYTES: u64 = 8 * 1024 * 1024;

/// The part of `max_bytes` kept for the WAL.
fn wal_reserve(max_bytes: u64) -> u64 {
    WAL_LIMIT_BYTES.min(max_bytes / 4)
}

/// Rows examined at a time when making room under [`Overflow::DropOldest`].
const DROP_BATCH: i64 = 256;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS msgs(id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seqs(source_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// Why the queue could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The directory for the queue file could not be created.
    #[error("cannot create queue directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The queue file could not be opened or initialised.
    #[error("cannot open queue {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A statement on the open queue failed.
    #[error("queue database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A reading could not be serialised.
    #[error("cannot encode reading: {0}")]
    Encode(#[from] serde_json::Error),
    /// The blocking task running the SQLite work panicked or was cancelled.
    #[error("queue worker task failed: {0}")]
    Task(String),
}

/// What [`Queue::push`] did with a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Readings of the batch written to the queue.
    pub accepted: usize,
    /// Readings dropped by the overflow policy during this push: refused new ones (`drop_newest`) or deleted
    /// old ones (`drop_oldest`, which may include readings of this very batch if it alone exceeds the budget).
    pub dropped: usize,
}

/// One queued message, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Queue row id: strictly increasing, never reused (publish order).
    pub id: i64,
    /// MQTT topic.
    pub topic: String,
    /// JSON-encoded [`Reading`] with its `seq` and `epoch` set.
    pub payload: Vec<u8>,
}

/// The SQLite store-and-forward queue (synchronous; see [`QueueHandle`] for async use).
#[derive(Debug)]
pub struct Queue {
    /// The database connection (WAL, `synchronous=NORMAL`).
    conn: Connection,
    /// Topic prefix for reading topics.
    prefix: String,
    /// Disk budget (approximate bytes of stored rows).
    max_bytes: u64,
    /// What to do when the budget is full.
    overflow: Overflow,
    /// Sequence space of this file.
    epoch: u64,
    /// Approximate bytes held: topic + payload + [`ROW_OVERHEAD`] per row.
    bytes: u64,
    /// Rows held.
    depth: u64,
    /// Readings dropped by the overflow policy since open.
    dropped: u64,
    /// True while in an overflow episode (logged once when it starts and once when it ends).
    overflowing: bool,
    /// Readings dropped in the current episode.
    episode_dropped: u64,
}

fn row_cost(topic_and_payload_len: u64) -> u64 {
    topic_and_payload_len + ROW_OVERHEAD
}

impl Queue {
    /// Opens (or creates) the queue file at `cfg.path`, creating its directory; reading topics are built under
    /// `topic_prefix`. A new file gets a fresh epoch: its creation time in milliseconds, so a re-created
    /// queue always has a higher epoch than the one it replaces (the centre drops lower epochs).
    pub fn open(cfg: &QueueConfig, topic_prefix: &str) -> Result<Queue, QueueError> {
        let path = cfg.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| QueueError::Dir { path: dir.to_path_buf(), source })?;
        }
        let open_err = |source| QueueError::Open { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(open_err)?;
        Self::init(&conn, wal_reserve(cfg.max_bytes)).map_err(open_err)?;
        let fresh_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64)
            .max(1);
        conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', ?1)", [fresh_epoch as i64])
            .map_err(open_err)?;
        let epoch: i64 =
            conn.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| r.get(0)).map_err(open_err)?;
        let (depth, sum): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(CAST(topic AS BLOB)) + length(payload)), 0) FROM msgs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(open_err)?;
        let depth = depth.max(0) as u64;
        let bytes = sum.max(0) as u64 + depth * ROW_OVERHEAD;
        tracing::info!(
            path = %path.display(),
            epoch,
            depth,
            bytes,
            max_bytes = cfg.max_bytes,
            overflow = ?cfg.overflow,
            "queue opened"
        );
        Ok(Queue {
            conn,
            prefix: topic_prefix.to_string(),
            max_bytes: cfg.max_bytes - wal_reserve(cfg.max_bytes),
            overflow: cfg.overflow,
            epoch: epoch as u64,
            bytes,
            depth,
            dropped: 0,
            overflowing: false,
            episode_dropped: 0,
        })
    }

    fn init(conn: &Connection, wal_reserve: u64) -> rusqlite::Result<()> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let _mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let _limit: i64 = conn.pragma_update_and_check(None, "journal_size_limit", wal_reserve as i64, |r| r.get(0))?;
        // Checkpoint when the WAL holds half the reserve (4 KiB pages), so it stays inside it between checkpoints.
        let _pages: i64 =
            conn.pragma_update_and_check(None, "wal_autocheckpoint", (wal_reserve / 2 / 4096).max(16) as i64, |r| {
                r.get(0)
            })?;
        conn.execute_batch(SCHEMA)
    }

    /// Stores a batch in one transaction: assigns each reading the next `seq` of its `source_id` and this
    /// queue's `epoch`, encodes it as JSON and files it under its reading topic. When the disk budget would be
    /// exceeded, the overflow policy drops readings (counted, and logged once per overflow episode).
    pub fn push(&mut self, readings: Vec<Reading>) -> Result<PushOutcome, QueueError> {
        let mut out = PushOutcome::default();
        if readings.is_empty() {
            return Ok(out);
        }
        let (mut bytes, mut depth) = (self.bytes, self.depth);
        let tx = self.conn.transaction()?;
        {
            let mut next: HashMap<String, u64> = HashMap::new();
            let mut get_seq = tx.prepare_cached("SELECT next_seq FROM seqs WHERE source_id = ?1")?;
            let mut insert = tx.prepare_cached("INSERT INTO msgs(topic, payload) VALUES (?1, ?2)")?;
            for mut r in readings {
                let seq = match next.get(&r.source_id) {
                    Some(s) => *s,
                    None => get_seq
                        .query_row([&r.source_id], |row| row.get::<_, i64>(0))
                        .optional()?
                        .map_or(1, |s| s.max(1) as u64),
                };
                r.seq = seq;
                r.epoch = self.epoch;
                let payload = serde_json::to_vec(&r)?;
                let topic = topic::reading(&self.prefix, &r.site, &r.zone);
                let cost = row_cost((topic.len() + payload.len()) as u64);
                if bytes + cost > self.max_bytes {
                    if self.overflow == Overflow::DropOldest {
                        let (rows, freed) = drop_oldest(&tx, bytes + cost - self.max_bytes)?;
                        bytes = bytes.saturating_sub(freed);
                        depth = depth.saturating_sub(rows);
                        out.dropped += rows as usize;
                    }
                    if bytes + cost > self.max_bytes {
                        // drop_newest, or a single reading larger than the whole budget.
                        out.dropped += 1;
                        continue;
                    }
                }
                insert.execute(params![topic, payload])?;
                bytes += cost;
                depth += 1;
                out.accepted += 1;
                next.insert(std::mem::take(&mut r.source_id), seq + 1);
            }
            let mut upsert = tx.prepare_cached(
                "INSERT INTO seqs(source_id, next_seq) VALUES (?1, ?2)
                 ON CONFLICT(source_id) DO UPDATE SET next_seq = excluded.next_seq",
            )?;
            for (source_id, n) in &next {
                upsert.execute(params![source_id, *n as i64])?;
            }
        }
        tx.commit()?;
        self.bytes = bytes;
        self.depth = depth;
        self.note_drops(out.dropped as u64);
        Ok(out)
    }

    /// Counts drops and logs the start and end of an overflow episode (not every row).
    fn note_drops(&mut self, dropped: u64) {
        if dropped > 0 {
            self.dropped += dropped;
            self.episode_dropped += dropped;
            if !self.overflowing {
                self.overflowing = true;
                tracing::warn!(
                    policy = ?self.overflow,
                    max_bytes = self.max_bytes,
                    bytes = self.bytes,
                    depth = self.depth,
                    dropped,
                    "queue disk budget full: dropping readings (all counted; logged once per episode)"
                );
            }
        } else if self.overflowing && self.bytes <= self.max_bytes / 10 * 9 {
            tracing::info!(
                bytes = self.bytes,
                max_bytes = self.max_bytes,
                episode_dropped = self.episode_dropped,
                dropped_total = self.dropped,
                "queue back under its disk budget"
            );
            self.overflowing = false;
            self.episode_dropped = 0;
        }
    }

    /// Up to `limit` messages with `id > after_id`, in id order (pass 0 to start at the oldest).
    pub fn peek(&self, after_id: i64, limit: usize) -> Result<Vec<Queued>, QueueError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, topic, payload FROM msgs WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after_id, limit], |r| {
            Ok(Queued { id: r.get(0)?, topic: r.get(1)?, payload: r.get(2)? })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes acknowledged messages in one transaction. Unknown ids (already acked or dropped) are ignored.
    pub fn ack(&mut self, ids: &[i64]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (mut removed, mut freed) = (0u64, 0u64);
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached(
                "DELETE FROM msgs WHERE id = ?1 RETURNING length(CAST(topic AS BLOB)) + length(payload)",
            )?;
            for id in ids {
                let mut rows = del.query([id])?;
                if let Some(row) = rows.next()? {
                    let len: i64 = row.get(0)?;
                    removed += 1;
                    freed += row_cost(len.max(0) as u64);
                }
            }
        }
        tx.commit()?;
        self.depth = self.depth.saturating_sub(removed);
        self.bytes = self.bytes.saturating_sub(freed);
        self.note_drops(0);
        Ok(())
    }

    /// Messages waiting.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Approximate bytes held (topic + payload + [`ROW_OVERHEAD`] per row), as checked against the budget.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Readings dropped by the overflow policy since this queue was opened.
    pub fn dropped_total(&self) -> u64 {
        self.dropped
    }

    /// The sequence space of this queue file.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Deletes the oldest rows until at least `need` bytes are freed (or the table is empty).
/// Returns `(rows, bytes)` removed.
fn drop_oldest(tx: &Transaction<'_>, need: u64) -> rusqlite::Result<(u64, u64)> {
    let mut select = tx.prepare_cached(
        "SELECT id, length(CAST(topic AS BLOB)) + length(payload) FROM msgs WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let (mut rows, mut freed, mut last_id) = (0u64, 0u64, 0i64);
    'outer: loop {
        let batch = select
            .query_map(params![last_id, DROP_BATCH], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            break;
        }
        for (id, len) in batch {
            last_id = id;
            rows += 1;
            freed += row_cost(len.max(0) as u64);
            if freed >= need {
                break 'outer;
            }
        }
    }
    if rows > 0 {
        tx.execute("DELETE FROM msgs WHERE id <= ?1", [last_id])?;
    }
    Ok((rows, freed))
}

/// Cloneable async handle on a [`Queue`]: SQLite work runs on `spawn_blocking`; `depth` and `dropped` are
/// cheap atomics refreshed after every operation; pushes wake a task waiting in [`QueueHandle::notified`].
#[derive(Debug, Clone)]
pub struct QueueHandle {
    /// The queue; locked only inside blocking tasks.
    queue: Arc<Mutex<Queue>>,
    /// Signalled after a push that stored something.
    notify: Arc<Notify>,
    /// Mirror of [`Queue::depth`].
    depth: Arc<AtomicU64>,
    /// Mirror of [`Queue::dropped_total`].
    dropped: Arc<AtomicU64>,
    /// The queue's epoch (fixed for the file's life).
    epoch: u64,
}

impl QueueHandle {
    /// Opens the queue (synchronously: it runs once at start-up).
    pub fn open(cfg: &QueueConfig, topic_prefix: &str) -> Result<Self, QueueError> {
        Ok(Self::new(Queue::open(cfg, topic_prefix)?))
    }

    /// Wraps an open queue.
    pub fn new(queue: Queue) -> Self {
        Self {
            depth: Arc::new(AtomicU64::new(queue.depth())),
            dropped: Arc::new(AtomicU64::new(queue.dropped_total())),
            epoch: queue.epoch(),
            queue: Arc::new(Mutex::new(queue)),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Runs `f` on the queue on a blocking thread, then refreshes the atomics.
    async fn with<R, F>(&self, f: F) -> Result<R, QueueError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Queue) -> Result<R, QueueError> + Send + 'static,
    {
        let (queue, depth, dropped) = (self.queue.clone(), self.depth.clone(), self.dropped.clone());
        tokio::task::spawn_blocking(move || {
            // A poisoned lock means a panic elsewhere mid-call; SQLite rolled back any open transaction and the
            // counters are only updated after commit, so the queue is still consistent.
            let mut q = queue.lock().unwrap_or_else(PoisonError::into_inner);
            let result = f(&mut q);
            depth.store(q.depth(), Ordering::Relaxed);
            dropped.store(q.dropped_total(), Ordering::Relaxed);
            result
        })
        .await
        .map_err(|e| QueueError::Task(e.to_string()))?
    }

    /// [`Queue::push`]; wakes the publisher when something was stored.
    pub async fn push(&self, readings: Vec<Reading>) -> Result<PushOutcome, QueueError> {
        let out = self.with(move |q| q.push(readings)).await?;
        if out.accepted > 0 {
            self.notify.notify_one();
        }
        Ok(out)
    }

    /// [`Queue::peek`].
    pub async fn peek(&self, after_id: i64, limit: usize) -> Result<Vec<Queued>, QueueError> {
        self.with(move |q| q.peek(after_id, limit)).await
    }

    /// [`Queue::ack`].
    pub async fn ack(&self, ids: Vec<i64>) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with(move |q| q.ack(&ids)).await
    }

    /// Messages waiting (as of the last operation; no lock).
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Readings dropped by the overflow policy since open (no lock).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The queue's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Completes after the next push that stored something. Meant for one waiter (the publisher): a push
    /// while nobody waits leaves a permit, so the next call returns at once and no wake-up is lost.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
