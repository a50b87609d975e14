//! The store writer: one thread owning a SQLite connection, committing readings and the sources'
//! sequence marks in one transaction per batch, and applying retention.

use std::path::Path;
use std::time::{Duration, Instant};

use crowdgrid_proto::Reading;
use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::{ms, schema, StoreError};
use crate::metrics::Metrics;

/// Handle to the writer thread.
pub struct StoreWriter {
    tx: mpsc::Sender<Vec<Reading>>,
    join: std::thread::JoinHandle<()>,
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
    /// Opens the database and starts the writer thread.
    pub fn spawn(path: &Path, settings: WriterSettings, metrics: Metrics) -> Result<StoreWriter, StoreError> {
        let conn = schema::open(path)?;
        let (tx, rx) = mpsc::channel(64);
        let join = std::thread::Builder::new()
            .name("store-writer".to_string())
            .spawn(move || writer_loop(conn, rx, settings, metrics))
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok(StoreWriter { tx, join })
    }

    /// Hands a batch to the writer, waiting while its queue is full (backpressure).
    pub async fn write(&self, batch: Vec<Reading>) -> Result<(), StoreError> {
        self.tx.send(batch).await.map_err(|_| StoreError::Join("store writer stopped".to_string()))
    }

    /// Closes the queue and waits until everything handed over is committed.
    pub async fn close(self) {
        drop(self.tx);
        let join = self.join;
        if tokio::task::spawn_blocking(move || join.join()).await.is_err() {
            tracing::error!("store writer thread panicked");
        }
    }
}

/// The last stored `(epoch, seq)` of every source.
pub fn load_marks(conn: &Connection) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT source_id, epoch, seq FROM source_marks")?;
    let rows =
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Vec<Reading>>, settings: WriterSettings, metrics: Metrics) {
    let mut last_retention = Instant::now() - Duration::from_secs(3600);
    while let Some(mut batch) = rx.blocking_recv() {
        while batch.len() < settings.batch_max {
            match rx.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            match write_batch(&mut conn, &batch) {
                Ok(()) => {
                    metrics.store_batch_seconds.observe(started.elapsed().as_secs_f64());
                    metrics.readings_stored.inc_by(batch.len() as u64);
                    metrics.store_pending.sub(batch.len() as i64);
                    break;
                }
                Err(e) => {
                    metrics.store_errors.inc();
                    attempt += 1;
                    // Keep the batch and retry: upstream waits (backpressure) instead of losing readings.
                    let wait = Duration::from_millis(100 * 2u64.pow(attempt.min(6)));
                    tracing::error!(error = %e, attempt, rows = batch.len(), "store write failed; retrying");
                    if rx.is_closed() && attempt >= 5 {
                        tracing::error!(rows = batch.len(), "store write keeps failing at shutdown; batch lost");
                        metrics.store_pending.sub(batch.len() as i64);
                        break;
                    }
                    std::thread::sleep(wait);
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

fn write_batch(conn: &mut Connection, batch: &[Reading]) -> Result<(), StoreError> {
    // IMMEDIATE: take the write lock up front so the busy timeout applies (a deferred
    // transaction that upgrades in WAL mode fails at once with SQLITE_BUSY).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR IGNORE INTO readings (site, zone, ts, source_id, seq, source, count, area_m2, density, confidence,
             person, vehicle, inflow, outflow, conflict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        let mut mark = tx.prepare_cached(
            "INSERT INTO source_marks (source_id, epoch, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT(source_id) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
        )?;
        for r in batch {
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
            ])?;
        }
        // Only the last mark per source matters; batches are in arrival order.
        let mut last: std::collections::HashMap<&str, (u64, u64)> = std::collections::HashMap::new();
        for r in batch {
            last.insert(&r.source_id, (r.epoch, r.seq));
        }
        for (source, (epoch, seq)) in last {
            mark.execute(params![source, epoch as i64, seq as i64])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn apply_retention(conn: &Connection, days: u32) {
    let cutoff = ms(chrono::Utc::now() - chrono::Duration::days(i64::from(days)));
    for (table, column) in [("readings", "ts"), ("evidence", "received")] {
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
        let w =
            StoreWriter::spawn(&path, WriterSettings { batch_max: 100, retention_days: 30 }, metrics.clone()).unwrap();
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
        w.write(batch).await.unwrap();
        w.close().await;
        assert_eq!(metrics.readings_stored.get(), 250);
        assert_eq!(metrics.store_pending.get(), 0);
        let conn = schema::open(&path).unwrap();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM readings", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 250);
        assert_eq!(load_marks(&conn).unwrap(), vec![("e/g".to_string(), 3, 250)]);
    }
}
