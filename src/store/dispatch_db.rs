//! Where the dispatch state lives: the centre's SQLite file (default) or PostgreSQL (`[store]
//! dispatch_url`, for several centre instances sharing tickets, outbox, rule snapshot and tokens).

use std::path::{Path, PathBuf};

use deadpool_postgres::Pool;

use super::outbox::Outbox;
use super::tickets::TicketStore;
use super::{pg_schema, rule_state, StoreError};
use crate::auth::edge_credentials::{CredentialError, EdgeCredentials};
use crate::auth::Tokens;
use crate::rules::Snapshot;

/// A handle on the dispatch database.
#[derive(Clone)]
pub enum DispatchDb {
    /// The SQLite file (shared with the series).
    Sqlite(PathBuf),
    /// A PostgreSQL pool.
    Postgres(Pool),
}

impl DispatchDb {
    /// PostgreSQL at `url` when given (tables created if needed), else the SQLite file at `sqlite`.
    pub async fn open(sqlite: &Path, url: Option<&str>) -> Result<DispatchDb, StoreError> {
        match url {
            Some(url) => Ok(DispatchDb::Postgres(pg_schema::connect(url).await?)),
            None => Ok(DispatchDb::Sqlite(sqlite.to_path_buf())),
        }
    }

    /// `postgres` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self {
            DispatchDb::Sqlite(_) => "sqlite",
            DispatchDb::Postgres(_) => "postgres",
        }
    }

    /// The ticket store.
    pub fn tickets(&self) -> Result<TicketStore, StoreError> {
        match self {
            DispatchDb::Sqlite(p) => TicketStore::open(p),
            DispatchDb::Postgres(pool) => Ok(TicketStore::from_pool(pool.clone())),
        }
    }

    /// The webhook outbox.
    pub fn outbox(&self) -> Result<Outbox, StoreError> {
        match self {
            DispatchDb::Sqlite(p) => Outbox::open(p),
            DispatchDb::Postgres(pool) => Ok(Outbox::from_pool(pool.clone())),
        }
    }

    /// The API tokens.
    pub fn tokens(&self) -> Result<Tokens, StoreError> {
        match self {
            DispatchDb::Sqlite(p) => Tokens::open(p),
            DispatchDb::Postgres(pool) => Ok(Tokens::from_pool(pool.clone())),
        }
    }

    /// The edge credentials, derived from the master key at `master_key`.
    pub fn edge_credentials(&self, master_key: &Path) -> Result<EdgeCredentials, CredentialError> {
        match self {
            DispatchDb::Sqlite(p) => EdgeCredentials::open(p, master_key),
            DispatchDb::Postgres(pool) => EdgeCredentials::from_pool(pool.clone(), master_key),
        }
    }

    /// Saves the rule engine's snapshot (replacing the previous one).
    pub async fn save_rule_state(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || rule_state::save(&p, &snapshot))
                    .await
                    .map_err(|e| StoreError::Join(e.to_string()))?
            }
            DispatchDb::Postgres(pool) => rule_state::save_pg(pool, &snapshot).await,
        }
    }

    /// The last saved snapshot, if any.
    pub async fn load_rule_state(&self) -> Result<Option<Snapshot>, StoreError> {
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || rule_state::load(&p))
                    .await
                    .map_err(|e| StoreError::Join(e.to_string()))?
            }
            DispatchDb::Postgres(pool) => rule_state::load_pg(pool).await,
        }
    }
}
