//! Persisting the rule engine's state (pending timers, active alerts, cooldowns) so a restart resumes it.

use std::path::Path;

use deadpool_postgres::Pool;
use rusqlite::{params, OptionalExtension};

use super::{ms, schema, StoreError};
use crate::rules::Snapshot;

/// The snapshot as stored (JSON).
pub(crate) fn encode(snapshot: &Snapshot) -> Result<String, StoreError> {
    serde_json::to_string(snapshot).map_err(|e| StoreError::Join(format!("encode rule state: {e}")))
}

/// A stored snapshot (`None`, logged, if unreadable).
pub(crate) fn decode(json: Option<String>) -> Option<Snapshot> {
    json.and_then(|j| match serde_json::from_str(&j) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "saved rule state unreadable; starting from open tickets only");
            None
        }
    })
}

/// Saves `snapshot` (replacing the previous one).
pub fn save(path: &Path, snapshot: &Snapshot) -> Result<(), StoreError> {
    let json = encode(snapshot)?;
    let conn = schema::open(path)?;
    conn.execute(
        "INSERT INTO rule_state (id, snapshot, saved_at) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET snapshot = excluded.snapshot, saved_at = excluded.saved_at",
        params![json, ms(chrono::Utc::now())],
    )?;
    Ok(())
}

/// The last saved snapshot, if any (an unreadable one is logged and ignored).
pub fn load(path: &Path) -> Result<Option<Snapshot>, StoreError> {
    let conn = schema::open(path)?;
    let json: Option<String> =
        conn.query_row("SELECT snapshot FROM rule_state WHERE id = 1", [], |r| r.get(0)).optional()?;
    Ok(decode(json))
}

/// [`save`] in PostgreSQL.
pub async fn save_pg(pool: &Pool, snapshot: &Snapshot) -> Result<(), StoreError> {
    let json = encode(snapshot)?;
    let c = pool.get().await?;
    c.execute(
        "INSERT INTO rule_state (id, snapshot, saved_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, saved_at = excluded.saved_at",
        &[&json, &ms(chrono::Utc::now())],
    )
    .await?;
    Ok(())
}

/// [`load`] from PostgreSQL.
pub async fn load_pg(pool: &Pool) -> Result<Option<Snapshot>, StoreError> {
    let c = pool.get().await?;
    let row = c.query_opt("SELECT snapshot FROM rule_state WHERE id = 1", &[]).await?;
    Ok(decode(row.map(|r| r.try_get(0)).transpose()?))
}
