//! The notification outbox: webhook deliveries are written in the dispatch database (SQLite or
//! PostgreSQL) first and retried until they succeed or run out of attempts, so a notification is never
//! silently dropped. In PostgreSQL, [`Outbox::due`] claims the rows it returns (a lease of
//! [`CLAIM_LEASE_S`]) so two centre instances do not deliver the same one at once.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use rusqlite::{params, Connection};
use serde::Serialize;

use super::{from_ms, ms, schema, StoreError};

/// How long a delivery claimed by one instance is hidden from the others (PostgreSQL).
pub const CLAIM_LEASE_S: i64 = 60;

const SELECT: &str = "SELECT id, ticket_id, channel, target, payload, attempts, delivered_at, last_error FROM outbox";

/// One pending or finished delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Delivery id (sent as `X-Crowdgrid-Delivery`, so receivers can de-duplicate).
    pub id: i64,
    /// Ticket it is about.
    pub ticket_id: i64,
    /// `webhook`.
    pub channel: String,
    /// Webhook name.
    pub target: String,
    /// JSON body.
    pub payload: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// The outbox table.
#[derive(Clone)]
pub struct Outbox {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(Pool),
}

impl Outbox {
    /// Opens the outbox in the centre's database file.
    pub fn open(path: &Path) -> Result<Outbox, StoreError> {
        Ok(Outbox { backend: Backend::Sqlite(Arc::new(Mutex::new(schema::open(path)?))) })
    }

    /// The outbox in PostgreSQL, on a pool from [`super::pg_schema::connect`].
    pub fn from_pool(pool: Pool) -> Outbox {
        Outbox { backend: Backend::Postgres(pool) }
    }

    async fn with<R: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || f(&conn.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Queues a delivery to `target`.
    pub async fn push(&self, ticket_id: i64, target: &str, payload: String) -> Result<(), StoreError> {
        let now = ms(Utc::now());
        let conn = match &self.backend {
            Backend::Sqlite(c) => c,
            Backend::Postgres(p) => {
                p.get()
                    .await?
                    .execute(
                        "INSERT INTO outbox (ticket_id, channel, target, payload, created_at, next_at)
                         VALUES ($1, 'webhook', $2, $3, $4, $4)",
                        &[&ticket_id, &target, &payload, &now],
                    )
                    .await?;
                return Ok(());
            }
        };
        let target = target.to_string();
        Self::with(conn, move |c| {
            let now = ms(Utc::now());
            c.execute(
                "INSERT INTO outbox (ticket_id, channel, target, payload, created_at, next_at) VALUES (?1, 'webhook', ?2, ?3, ?4, ?4)",
                params![ticket_id, target, payload, now],
            )?;
            Ok(())
        })
        .await
    }

    /// Deliveries due now with fewer than `max_attempts` attempts, oldest first.
    pub async fn due(&self, now: DateTime<Utc>, max_attempts: u32, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite(c) => c,
            Backend::Postgres(p) => {
                // Claim: rows another instance is claiming right now are skipped, claimed ones are
                // hidden for the lease (a failed attempt sets its own next_at, a success delivered_at).
                let rows = p
                    .get()
                    .await?
                    .query(
                        "UPDATE outbox SET next_at = $4 WHERE id IN (
                           SELECT id FROM outbox WHERE delivered_at IS NULL AND next_at <= $1 AND attempts < $2
                           ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                         RETURNING id, ticket_id, channel, target, payload, attempts, delivered_at, last_error",
                        &[&ms(now), &i64::from(max_attempts), &(limit as i64), &(ms(now) + CLAIM_LEASE_S * 1000)],
                    )
                    .await?;
                let mut out = rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()?;
                out.sort_by_key(|d| d.id);
                return Ok(out);
            }
        };
        Self::with(conn, move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "{SELECT} WHERE delivered_at IS NULL AND next_at <= ?1 AND attempts < ?2 ORDER BY id LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![ms(now), max_attempts, limit as i64], row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Marks a delivery done.
    pub async fn delivered(&self, id: i64) -> Result<(), StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite(c) => c,
            Backend::Postgres(p) => {
                p.get()
                    .await?
                    .execute(
                        "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL WHERE id = $1",
                        &[&id, &ms(Utc::now())],
                    )
                    .await?;
                return Ok(());
            }
        };
        Self::with(conn, move |c| {
            c.execute(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, ms(Utc::now())],
            )?;
            Ok(())
        })
        .await
    }

    /// Records a failed attempt and when to try again.
    pub async fn failed(&self, id: i64, error: &str, next: DateTime<Utc>) -> Result<(), StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite(c) => c,
            Backend::Postgres(p) => {
                p.get()
                    .await?
                    .execute(
                        "UPDATE outbox SET attempts = attempts + 1, next_at = $2, last_error = $3 WHERE id = $1",
                        &[&id, &ms(next), &error],
                    )
                    .await?;
                return Ok(());
            }
        };
        let error = error.to_string();
        Self::with(conn, move |c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, ms(next), error],
            )?;
            Ok(())
        })
        .await
    }

    /// Every delivery not yet made (pending or given up), for the API and metrics.
    pub async fn undelivered(&self) -> Result<Vec<Delivery>, StoreError> {
        let conn = match &self.backend {
            Backend::Sqlite(c) => c,
            Backend::Postgres(p) => {
                let sql = format!("{SELECT} WHERE delivered_at IS NULL ORDER BY id LIMIT 1000");
                let rows = p.get().await?.query(&sql, &[]).await?;
                return Ok(rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()?);
            }
        };
        Self::with(conn, |c| {
            let mut stmt = c.prepare(&format!("{SELECT} WHERE delivered_at IS NULL ORDER BY id LIMIT 1000"))?;
            let rows = stmt.query_map([], row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        ticket_id: r.get(1)?,
        channel: r.get(2)?,
        target: r.get(3)?,
        payload: r.get(4)?,
        attempts: r.get(5)?,
        delivered_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
        last_error: r.get(7)?,
    })
}

fn pg_row(r: &tokio_postgres::Row) -> Result<Delivery, tokio_postgres::Error> {
    Ok(Delivery {
        id: r.try_get(0)?,
        ticket_id: r.try_get(1)?,
        channel: r.try_get(2)?,
        target: r.try_get(3)?,
        payload: r.try_get(4)?,
        attempts: r.try_get(5)?,
        delivered_at: r.try_get::<_, Option<i64>>(6)?.map(from_ms),
        last_error: r.try_get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pg_schema::{connect, TestSchema};

    async fn exercise(o: Outbox, claims: bool) {
        o.push(7, "city", "{\"a\":1}".into()).await.unwrap();
        o.push(8, "city", "{\"b\":2}".into()).await.unwrap();
        let now = Utc::now();
        let due = o.due(now, 5, 10).await.unwrap();
        assert_eq!(due.iter().map(|d| d.ticket_id).collect::<Vec<_>>(), [7, 8]);
        // PostgreSQL: another instance asking now gets nothing (claimed); SQLite has one instance.
        assert_eq!(o.due(now, 5, 10).await.unwrap().is_empty(), claims);
        o.failed(due[0].id, "503", now).await.unwrap();
        o.delivered(due[1].id).await.unwrap();
        let left = o.undelivered().await.unwrap();
        assert_eq!((left.len(), left[0].attempts, left[0].last_error.as_deref()), (1, 1, Some("503")));
        assert_eq!(o.due(now, 1, 10).await.unwrap().len(), 0, "out of attempts");
        assert_eq!(o.due(now, 5, 10).await.unwrap().len(), 1, "retried after a failure");
    }

    #[tokio::test]
    async fn deliveries_are_queued_retried_and_claimed_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        exercise(Outbox::open(&dir.path().join("o.db")).unwrap(), false).await;
        let schema = TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
        exercise(Outbox::from_pool(connect(&schema.url()).await.unwrap()), true).await;
        schema.drop().await.unwrap();
    }
}
