//! The store writer: one thread owning a SQLite connection, committing readings and the sources'
//! sequence marks in one transaction per batch, and applying retention. Once a batch is durable it hands the
//! batch's commit acknowledgements on (the edges delete a reading from their queue only then). With `[cluster]`
//! the same batches go to PostgreSQL instead (`pg_series`, an async task: the pool is async), so every centre
//! instance sharing it serves every zone.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crowdgrid_proto::Reading;
use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::{ms, schema, StoreError};
use crate::metrics::Metrics;

/// A reading whose commit is to be acknowledged to the edge that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Site of the edge.
    pub site: String,
    /// The edge.
    pub edge: String,
    /// The credential it signed with (the acknowledgement is signed with the same one); `None`: unsigned.
    pub kid: Option<u32>,
    /// Source id.
    pub source_id: String,
    /// Sequence space.
    pub epoch: u64,
    /// Sequence number.
    pub seq: u64,
}

/// One source's sequence mark after a batch (see `central::dedup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRow {
    /// Source id.
    pub source_id: String,
    /// Its site (PostgreSQL keeps it: a site's new owner loads its sources' marks).
    pub site: String,
    /// Sequence space.
    pub epoch: u64,
    /// Every seq up to this is stored.
    pub low: u64,
    /// Highest stored.
    pub high: u64,
}

/// What one transaction commits.
#[derive(Debug, Default)]
pub struct Batch {
    /// New readings.
    pub readings: Vec<Reading>,
    /// Marks of the sources the batch touched, after it.
    pub marks: Vec<MarkRow>,
    /// `(source_id, epoch, seq)` stored above their source's mark (early arrivals), kept across restarts.
    pub early: Vec<(String, u64, u64)>,
    /// Acknowledged once the transaction is durable (duplicates too: they are stored already).
    pub acks: Vec<Ack>,
    /// The map's own values (the centre's fusion, [`crate::store::series::MAP_SERIES`]) the batch produced:
    /// kept in `map_series`, not among the sources' readings.
    pub map: Vec<Reading>,
    /// Barriers released once everything handed over before them is committed (a site's handover waits on one).
    pub flushed: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Batch {
    fn extend(&mut self, more: Batch) {
        self.readings.extend(more.readings);
        self.marks.extend(more.marks);
        self.early.extend(more.early);
        self.acks.extend(more.acks);
        self.map.extend(more.map);
        self.flushed.extend(more.flushed);
    }

    fn len(&self) -> usize {
        self.readings.len()
    }
}

/// Handle to the writer (a thread for SQLite, a task for PostgreSQL).
pub struct StoreWriter {
    tx: mpsc::Sender<Batch>,
    join: Join,
}

enum Join {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

/// Settings for the writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Largest batch per transaction.
    pub batch_max: usize,
    /// Readings older than this many days are deleted.
    pub retention_days: u32,
}

impl StoreWriter {
    /// Opens the database and starts the writer thread; committed batches' acknowledgements go to `acks`.
    pub fn spawn(
        path: &Path,
        settings: WriterSettings,
        metrics: Metrics,
        acks: Option<mpsc::Sender<Vec<Ack>>>,
    ) -> Result<StoreWriter, StoreError> {
        let conn = schema::open(path)?;
        let (tx, rx) = mpsc::channel(64);
        let join = std::thread::Builder::new()
            .name("store-writer".to_string())
            .spawn(move || writer_loop(conn, rx, settings, metrics, acks))
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok(StoreWriter { tx, join: Join::Thread(join) })
    }

    /// Starts the writer task committing to PostgreSQL ([`super::pg_series`]).
    pub fn spawn_pg(
        pool: deadpool_postgres::Pool,
        settings: WriterSettings,
        metrics: Metrics,
        acks: Option<mpsc::Sender<Vec<Ack>>>,
    ) -> StoreWriter {
        let (tx, rx) = mpsc::channel(64);
        let join = tokio::spawn(pg_loop(pool, rx, settings, metrics, acks));
        StoreWriter { tx, join: Join::Task(join) }
    }

    /// Hands a batch to the writer, waiting while its queue is full (backpressure).
    pub async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.tx.send(batch).await.map_err(|_| StoreError::Join("store writer stopped".to_string()))
    }

    /// Closes the queue and waits until everything handed over is committed.
    pub async fn close(self) {
        drop(self.tx);
        let failed = match self.join {
            Join::Thread(join) => !matches!(tokio::task::spawn_blocking(move || join.join()).await, Ok(Ok(()))),
            Join::Task(join) => join.await.is_err(),
        };
        if failed {
            tracing::error!("store writer panicked");
        }
    }
}

/// The sequence state of every source: marks and early arrivals.
pub fn load_marks(conn: &Connection) -> Result<Vec<(MarkRow, Vec<u64>)>, StoreError> {
    let mut stmt = conn.prepare("SELECT source_id, epoch, seq, high FROM source_marks")?;
    let rows = stmt.query_map([], |r| {
        Ok(MarkRow {
            source_id: r.get(0)?,
            site: String::new(),
            epoch: r.get::<_, i64>(1)? as u64,
            low: r.get::<_, i64>(2)? as u64,
            high: r.get::<_, i64>(3)? as u64,
        })
    })?;
    let marks: Vec<MarkRow> = rows.collect::<Result<_, _>>()?;
    let mut early = conn.prepare("SELECT seq FROM source_early WHERE source_id = ?1 AND epoch = ?2 AND seq > ?3")?;
    let mut out = Vec::with_capacity(marks.len());
    for m in marks {
        let seqs = if m.high > m.low {
            early
                .query_map(params![m.source_id, m.epoch as i64, m.low as i64], |r| Ok(r.get::<_, i64>(0)? as u64))?
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        out.push((m, seqs));
    }
    Ok(out)
}

/// Takes what queued up behind `batch`, up to `batch_max` readings: fewer, larger transactions under load.
fn merge(batch: &mut Batch, rx: &mut mpsc::Receiver<Batch>, batch_max: usize) {
    while batch.len() < batch_max {
        match rx.try_recv() {
            Ok(more) => batch.extend(more),
            Err(_) => break,
        }
    }
}

/// Counts a committed batch and releases its barriers; returns its acknowledgements to hand on.
fn committed(batch: &mut Batch, metrics: &Metrics, started: Instant) -> Vec<Ack> {
    metrics.store_batch_seconds.observe(started.elapsed().as_secs_f64());
    metrics.readings_stored.inc_by(batch.len() as u64);
    metrics.store_pending.sub(batch.len() as i64);
    for barrier in batch.flushed.drain(..) {
        let _ = barrier.send(());
    }
    std::mem::take(&mut batch.acks)
}

/// After a failed commit: how long to wait before retrying, or `None` to give the batch up (only at shutdown,
/// after five attempts). Upstream waits meanwhile (backpressure) instead of losing readings.
fn retry(batch: &Batch, metrics: &Metrics, attempt: u32, closed: bool, error: &StoreError) -> Option<Duration> {
    metrics.store_errors.inc();
    tracing::error!(%error, attempt, rows = batch.len(), "store write failed; retrying");
    if closed && attempt >= 5 {
        tracing::error!(rows = batch.len(), "store write keeps failing at shutdown; batch lost");
        metrics.store_pending.sub(batch.len() as i64);
        return None;
    }
    Some(Duration::from_millis(100 * 2u64.pow(attempt.min(6))))
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Batch>,
    settings: WriterSettings,
    metrics: Metrics,
    acks: Option<mpsc::Sender<Vec<Ack>>>,
) {
    let mut last_retention = Instant::now() - Duration::from_secs(3600);
    while let Some(mut batch) = rx.blocking_recv() {
        merge(&mut batch, &mut rx, settings.batch_max);
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            match write_batch(&mut conn, &batch) {
                Ok(()) => {
                    let done = committed(&mut batch, &metrics, started);
                    if let Some(tx) = &acks {
                        if !done.is_empty() && tx.blocking_send(done).is_err() {
                            tracing::debug!("acknowledger gone; edges will resend and the duplicates are dropped");
                        }
                    }
                    break;
                }
                Err(e) => {
                    attempt += 1;
                    match retry(&batch, &metrics, attempt, rx.is_closed(), &e) {
                        Some(wait) => std::thread::sleep(wait),
                        None => break,
                    }
                }
            }
        }
        if last_retention.elapsed() >= Duration::from_secs(3600) {
            last_retention = Instant::now();
            apply_retention(&conn, settings.retention_days);
        }
    }
    tracing::debug!("store writer drained");
}

async fn pg_loop(
    pool: deadpool_postgres::Pool,
    mut rx: mpsc::Receiver<Batch>,
    settings: WriterSettings,
    metrics: Metrics,
    acks: Option<mpsc::Sender<Vec<Ack>>>,
) {
    let mut partitions = HashSet::new();
    let mut last_retention = Instant::now() - Duration::from_secs(3600);
    while let Some(mut batch) = rx.recv().await {
        merge(&mut batch, &mut rx, settings.batch_max);
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            match super::pg_series::write_batch(&pool, &mut partitions, &batch).await {
                Ok(()) => {
                    let done = committed(&mut batch, &metrics, started);
                    if let Some(tx) = &acks {
                        if !done.is_empty() && tx.send(done).await.is_err() {
                            tracing::debug!("acknowledger gone; edges will resend and the duplicates are dropped");
                        }
                    }
                    break;
                }
                Err(e) => {
                    attempt += 1;
                    // A partition another instance dropped, or one created meanwhile: look them up again.
                    partitions.clear();
                    match retry(&batch, &metrics, attempt, rx.is_closed(), &e) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => break,
                    }
                }
            }
        }
        if last_retention.elapsed() >= Duration::from_secs(3600) {
            last_retention = Instant::now();
            match super::pg_series::apply_retention(&pool, settings.retention_days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(partitions = n, days = settings.retention_days, "retention applied"),
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
        }
    }
    tracing::debug!("store writer drained");
}

fn write_batch(conn: &mut Connection, batch: &Batch) -> Result<(), StoreError> {
    // IMMEDIATE: take the write lock up front so the busy timeout applies (a deferred
    // transaction that upgrades in WAL mode fails at once with SQLITE_BUSY).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO readings (site, zone, ts, source_id, seq, source, count, area_m2, density, confidence,
             person, vehicle, inflow, outflow, conflict, raw_count, dwell_p50_s, dwell_p90_s, vehicle_inflow,
             vehicle_outflow)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        )?;
        let mut mark = tx.prepare_cached(
            "INSERT INTO source_marks (source_id, epoch, seq, high) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(source_id) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, high = excluded.high",
        )?;
        let mut early_in =
            tx.prepare_cached("INSERT OR REPLACE INTO source_early (source_id, epoch, seq) VALUES (?1, ?2, ?3)")?;
        let mut early_out =
            tx.prepare_cached("DELETE FROM source_early WHERE source_id = ?1 AND (epoch <> ?2 OR seq <= ?3)")?;
        for r in &batch.readings {
            ins.execute(params![
                r.site,
                r.zone,
                ms(r.ts),
                r.source_id,
                r.seq as i64,
                r.source.as_str(),
                r.count,
                r.area_m2,
                r.density,
                r.confidence,
                r.classes.map(|c| c.person),
                r.classes.map(|c| c.vehicle),
                r.inflow_per_min,
                r.outflow_per_min,
                r.conflict,
                r.tracked.map(|t| t.raw_count),
                r.tracked.map(|t| t.dwell_p50_s),
                r.tracked.map(|t| t.dwell_p90_s),
                r.tracked.and_then(|t| t.vehicle_inflow_per_min),
                r.tracked.and_then(|t| t.vehicle_outflow_per_min),
            ])?;
        }
        let mut map = tx.prepare_cached(
            "INSERT OR REPLACE INTO map_series (site, zone, ts, count, density, area_m2, confidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for r in &batch.map {
            map.execute(params![r.site, r.zone, ms(r.ts), r.count, r.density, r.area_m2, r.confidence])?;
        }
        for (source, epoch, seq) in &batch.early {
            early_in.execute(params![source, *epoch as i64, *seq as i64])?;
        }
        // Marks in batch order: a later one of the same source supersedes an earlier (merged batches).
        for m in &batch.marks {
            mark.execute(params![m.source_id, m.epoch as i64, m.low as i64, m.high as i64])?;
            if !batch.early.is_empty() || m.high > m.low {
                early_out.execute(params![m.source_id, m.epoch as i64, m.low as i64])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn apply_retention(conn: &Connection, days: u32) {
    let cutoff = ms(chrono::Utc::now() - chrono::Duration::days(i64::from(days)));
    for (table, column) in [("readings", "ts"), ("map_series", "ts"), ("evidence", "received")] {
        match conn.execute(&format!("DELETE FROM {table} WHERE {column} < ?1"), params![cutoff]) {
            Ok(0) => {}
            Ok(n) => tracing::info!(table, deleted = n, days, "retention applied"),
            Err(e) => tracing::warn!(table, error = %e, "retention failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdgrid_proto::SourceKind;

    #[tokio::test]
    async fn commits_batches_and_marks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let metrics = Metrics::new();
        let (ack_tx, mut ack_rx) = mpsc::channel(8);
        let w = StoreWriter::spawn(
            &path,
            WriterSettings { batch_max: 100, retention_days: 30 },
            metrics.clone(),
            Some(ack_tx),
        )
        .unwrap();
        let now = chrono::Utc::now();
        let mut batch = Vec::new();
        for i in 0..250u64 {
            let mut r = Reading::new(
                "t",
                "z",
                SourceKind::Gate,
                "e/g",
                now + chrono::Duration::milliseconds(i as i64),
                10.0,
                100.0,
                0.9,
            );
            r.seq = i + 1;
            r.epoch = 3;
            batch.push(r);
        }
        metrics.store_pending.add(250);
        let acks: Vec<Ack> = batch
            .iter()
            .map(|r| Ack {
                site: "t".into(),
                edge: "e".into(),
                kid: None,
                source_id: r.source_id.clone(),
                epoch: 3,
                seq: r.seq,
            })
            .collect();
        // Seq 260 arrived early (259 and below missing): kept as an early arrival.
        let marks = vec![MarkRow { source_id: "e/g".into(), site: "t".into(), epoch: 3, low: 250, high: 260 }];
        // The map's value at that moment rides along, into its own table.
        let mut map = Reading::new("t", "z", SourceKind::Fused, "crowdgrid-central/fused", now, 12.0, 100.0, 0.9);
        map.density = 0.12;
        let early = vec![("e/g".into(), 3, 260)];
        let (barrier, flushed) = tokio::sync::oneshot::channel();
        let batch = Batch { readings: batch, marks, early, acks: acks.clone(), map: vec![map], flushed: vec![barrier] };
        w.write(batch).await.unwrap();
        flushed.await.expect("the barrier is released once the batch is committed");
        let got = ack_rx.recv().await.unwrap();
        assert_eq!(got, acks, "acknowledged once committed");
        w.close().await;
        assert_eq!(metrics.readings_stored.get(), 250);
        assert_eq!(metrics.store_pending.get(), 0);
        let conn = schema::open(&path).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 250, "the sources' readings only");
        let m: (f64, f64) =
            conn.query_row("SELECT count, density FROM map_series", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(m, (12.0, 0.12));
        assert_eq!(
            load_marks(&conn).unwrap(),
            vec![(MarkRow { source_id: "e/g".into(), site: String::new(), epoch: 3, low: 250, high: 260 }, vec![260])]
        );
    }
}
