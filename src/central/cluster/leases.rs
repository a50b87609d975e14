//! Site leases in PostgreSQL. A site belongs to the instance holding its unexpired lease; every lease carries an
//! `epoch`, raised at each new owner, that fences the owner's writes of the site's rule state (an instance that
//! lost its lease while paused cannot overwrite its successor's snapshot). Time is the database's clock, so the
//! instances' clocks may disagree. Instances announce themselves in `cluster_members` on each renewal; those
//! heard from within a lease time share the sites evenly.

use std::collections::HashMap;

use deadpool_postgres::Pool;

use crate::rules::Snapshot;
use crate::store::{rule_state, StoreError};

/// Tables, created idempotently when an instance joins.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS partition_leases (
    site TEXT PRIMARY KEY, owner TEXT, expires_at BIGINT NOT NULL DEFAULT 0, epoch BIGINT NOT NULL DEFAULT 0,
    owner_since BIGINT
);
CREATE TABLE IF NOT EXISTS cluster_members (instance TEXT PRIMARY KEY, seen_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS rule_state_sites (site TEXT PRIMARY KEY, snapshot TEXT NOT NULL, saved_at BIGINT NOT NULL);
";

/// The database's clock in milliseconds.
const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// One instance's view of the leases.
#[derive(Clone)]
pub struct Leases {
    pool: Pool,
    instance: String,
    ttl_ms: i64,
}

/// A site as the leases have it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Owner {
    /// Site id.
    pub site: String,
    /// The instance holding an unexpired lease, if any.
    pub owner: Option<String>,
    /// Raised at every new owner.
    pub epoch: i64,
}

impl Leases {
    /// `instance`'s leases, each good for `ttl_ms` after its renewal.
    pub fn new(pool: Pool, instance: &str, ttl_ms: i64) -> Self {
        Self { pool, instance: instance.to_string(), ttl_ms }
    }

    /// Makes sure every site has a lease row (unowned when new), and frees the leases a previous run of this
    /// instance still holds (it restarted within a lease time: nothing of that run is serving them).
    pub async fn register(&self, sites: &[String]) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO partition_leases (site) SELECT UNNEST($1::text[]) ON CONFLICT (site) DO NOTHING",
            &[&sites],
        )
        .await?;
        c.execute("UPDATE partition_leases SET owner = NULL, expires_at = 0 WHERE owner = $1", &[&self.instance])
            .await?;
        Ok(())
    }

    /// Says this instance is alive; returns how many instances are (heard from within a lease time).
    pub async fn heartbeat(&self) -> Result<usize, StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            &format!(
                "INSERT INTO cluster_members (instance, seen_at) VALUES ($1, {NOW})
                 ON CONFLICT (instance) DO UPDATE SET seen_at = excluded.seen_at"
            ),
            &[&self.instance],
        )
        .await?;
        let alive: i64 = c
            .query_one(&format!("SELECT COUNT(*) FROM cluster_members WHERE seen_at > {NOW} - $1"), &[&self.ttl_ms])
            .await?
            .try_get(0)?;
        Ok(alive.max(1) as usize)
    }

    /// Renews the unexpired leases of `sites` this instance holds; returns them, site → epoch. A lease that expired
    /// is not renewed (another instance may hold it by now): the caller stops serving it.
    pub async fn renew(&self, sites: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "UPDATE partition_leases SET expires_at = {NOW} + $2
                     WHERE owner = $1 AND site = ANY($3) AND expires_at >= {NOW} RETURNING site, epoch"
                ),
                &[&self.instance, &self.ttl_ms, &sites],
            )
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Takes up to `n` of `sites` whose lease is free or expired; returns them with their new epochs.
    pub async fn acquire(&self, sites: &[String], n: usize) -> Result<Vec<(String, i64)>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "UPDATE partition_leases SET owner = $1, expires_at = {NOW} + $2, epoch = epoch + 1,
                     owner_since = {NOW}
                     WHERE site IN (SELECT site FROM partition_leases
                        WHERE (owner IS NULL OR expires_at < {NOW}) AND site = ANY($3)
                        ORDER BY site LIMIT $4 FOR UPDATE SKIP LOCKED)
                     RETURNING site, epoch"
                ),
                &[&self.instance, &self.ttl_ms, &sites, &(n as i64)],
            )
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Gives `site` up (only if this instance still holds it at `epoch`): the next instance need not wait.
    pub async fn release(&self, site: &str, epoch: i64) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE partition_leases SET owner = NULL, expires_at = 0 WHERE site = $1 AND owner = $2 AND epoch = $3",
            &[&site, &self.instance, &epoch],
        )
        .await?;
        Ok(())
    }

    /// Leaves the cluster (a graceful stop, after releasing every site): the others rebalance at once.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let c = self.pool.get().await?;
        c.execute("DELETE FROM cluster_members WHERE instance = $1", &[&self.instance]).await?;
        Ok(())
    }

    /// Every site with its current owner.
    pub async fn owners(&self) -> Result<Vec<Owner>, StoreError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT site, CASE WHEN expires_at >= {NOW} THEN owner END, epoch FROM partition_leases ORDER BY site"
                ),
                &[],
            )
            .await?;
        rows.iter().map(|r| Ok(Owner { site: r.try_get(0)?, owner: r.try_get(1)?, epoch: r.try_get(2)? })).collect()
    }

    /// Saves `site`'s rule state, if this instance still holds the site at `epoch`; returns whether it did.
    pub async fn save_state(&self, site: &str, epoch: i64, snapshot: &Snapshot) -> Result<bool, StoreError> {
        let json = rule_state::encode(snapshot)?;
        let c = self.pool.get().await?;
        let n = c
            .execute(
                &format!(
                    "INSERT INTO rule_state_sites (site, snapshot, saved_at)
                     SELECT $1, $2, {NOW} WHERE EXISTS (SELECT 1 FROM partition_leases
                        WHERE site = $1 AND owner = $3 AND epoch = $4 FOR SHARE)
                     ON CONFLICT (site) DO UPDATE SET snapshot = excluded.snapshot, saved_at = excluded.saved_at"
                ),
                &[&site, &json, &self.instance, &epoch],
            )
            .await?;
        Ok(n == 1)
    }

    /// `site`'s last saved rule state (an unreadable one is logged and ignored).
    pub async fn load_state(&self, site: &str) -> Result<Option<Snapshot>, StoreError> {
        let c = self.pool.get().await?;
        let row = c.query_opt("SELECT snapshot FROM rule_state_sites WHERE site = $1", &[&site]).await?;
        Ok(rule_state::decode(row.map(|r| r.try_get(0)).transpose()?))
    }
}
