//! Bearer tokens with roles. Tokens are random, shown once, stored as SHA-256 hashes in the centre's
//! dispatch database (the SQLite file, or PostgreSQL with `[store] dispatch_url`); `crowdgrid token
//! create` or `POST /api/v1/tokens` (admin) makes them.

pub mod edge_credentials;
pub mod mosquitto;
mod principal;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use principal::Principal;

use crate::store::{schema, StoreError};

/// What a token holder may do (see docs/API.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Command centre: reads everything, acts on any ticket.
    Operator,
    /// A grid worker: their own grids' zones and tickets, acts on their own tickets.
    GridWorker,
    /// Rules, models, replay; reads everything; no ticket actions.
    Engineer,
    /// Everything, including tokens.
    Admin,
}

impl Role {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::GridWorker => "grid_worker",
            Role::Engineer => "engineer",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "grid_worker" => Some(Role::GridWorker),
            "engineer" => Some(Role::Engineer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A stored token (without its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    /// Holder's name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// For grid workers: the worker id in the site rosters.
    pub worker: Option<String>,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Store problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A grid worker token needs a worker id, others must not have one.
    #[error("a grid_worker token needs --worker (and only grid_worker tokens take one)")]
    Worker,
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        TokenError::Store(StoreError::Sqlite(e))
    }
}

impl From<tokio_postgres::Error> for TokenError {
    fn from(e: tokio_postgres::Error) -> Self {
        TokenError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for TokenError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TokenError::Store(e.into())
    }
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(Pool),
}

type Row = (String, String, Option<String>);

fn record((name, role, worker): Row) -> Option<TokenRecord> {
    Role::parse(&role).map(|role| TokenRecord { name, role, worker })
}

pub(crate) async fn blocking<R: Send + 'static, E: From<StoreError> + Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
) -> Result<R, E> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || f(&conn.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .map_err(|e| E::from(StoreError::Join(e.to_string())))?
}

/// The token table, with an in-memory cache of hashes already seen.
#[derive(Clone)]
pub struct Tokens {
    backend: Backend,
    cache: Arc<Mutex<HashMap<String, TokenRecord>>>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Opens the token table in the centre's database file.
    pub fn open(path: &Path) -> Result<Tokens, StoreError> {
        let conn = schema::open(path)?;
        Ok(Tokens { backend: Backend::Sqlite(Arc::new(Mutex::new(conn))), cache: Arc::default() })
    }

    /// The token table in PostgreSQL, on a pool from [`crate::store::pg_schema::connect`].
    pub fn from_pool(pool: Pool) -> Tokens {
        Tokens { backend: Backend::Postgres(pool), cache: Arc::default() }
    }

    /// Creates a token and returns its secret (shown once; only the hash is stored).
    pub async fn create(&self, name: &str, role: Role, worker: Option<&str>) -> Result<String, TokenError> {
        if (role == Role::GridWorker) != worker.is_some() {
            return Err(TokenError::Worker);
        }
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!("cg_{}", hex::encode(bytes));
        let (h, now) = (hash(&secret), chrono::Utc::now().timestamp_millis());
        match &self.backend {
            Backend::Sqlite(conn) => {
                let (name, worker) = (name.to_string(), worker.map(str::to_string));
                blocking(conn, move |c| -> Result<(), TokenError> {
                    c.execute(
                        "INSERT INTO tokens (hash, name, role, worker, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![h, name, role.as_str(), worker, now],
                    )?;
                    Ok(())
                })
                .await?;
            }
            Backend::Postgres(pool) => {
                pool.get()
                    .await?
                    .execute(
                        "INSERT INTO tokens (hash, name, role, worker, created_at) VALUES ($1, $2, $3, $4, $5)",
                        &[&h, &name, &role.as_str(), &worker, &now],
                    )
                    .await?;
            }
        }
        Ok(secret)
    }

    /// The record of a presented token, if it is known.
    pub async fn lookup(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let h = hash(token);
        if let Some(r) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&h) {
            return Ok(Some(r.clone()));
        }
        let row: Option<Row> = match &self.backend {
            Backend::Sqlite(conn) => {
                let h = h.clone();
                blocking(conn, move |c| -> Result<_, StoreError> {
                    Ok(c.query_row("SELECT name, role, worker FROM tokens WHERE hash = ?1", params![h], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()?)
                })
                .await?
            }
            Backend::Postgres(pool) => {
                let c = pool.get().await?;
                match c.query_opt("SELECT name, role, worker FROM tokens WHERE hash = $1", &[&h]).await? {
                    Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
                    None => None,
                }
            }
        };
        let Some(rec) = row.and_then(record) else { return Ok(None) };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(h, rec.clone());
        Ok(Some(rec))
    }

    /// Every token's holder and role (never the secrets).
    pub async fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        const SQL: &str = "SELECT name, role, worker FROM tokens ORDER BY created_at";
        let rows: Vec<Row> = match &self.backend {
            Backend::Sqlite(conn) => {
                blocking(conn, |c| -> Result<_, StoreError> {
                    let mut stmt = c.prepare(SQL)?;
                    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await?
            }
            Backend::Postgres(pool) => {
                let c = pool.get().await?;
                let rows = c.query(SQL, &[]).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
                }
                out
            }
        };
        Ok(rows.into_iter().filter_map(record).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let t = Tokens::open(&db).unwrap();
        let secret = t.create("wang", Role::GridWorker, Some("wang-lei")).await.unwrap();
        assert!(secret.starts_with("cg_") && secret.len() == 51);
        let rec = t.lookup(&secret).await.unwrap().unwrap();
        assert_eq!(rec.role, Role::GridWorker);
        assert_eq!(rec.worker.as_deref(), Some("wang-lei"));
        assert!(t.lookup("cg_wrong").await.unwrap().is_none());
        assert!(matches!(t.create("x", Role::GridWorker, None).await, Err(TokenError::Worker)));
        assert!(matches!(t.create("x", Role::Operator, Some("w")).await, Err(TokenError::Worker)));
        let raw = std::fs::read(&db).unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is not stored");
        // A second handle (another process) finds it too.
        assert!(Tokens::open(&db).unwrap().lookup(&secret).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tokens_in_postgres_are_hashed_and_shared_between_instances() {
        let schema = crate::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
        let connect = || async { crate::store::pg_schema::connect(&schema.url()).await.unwrap() };
        let a = Tokens::from_pool(connect().await);
        let secret = a.create("ops", Role::Operator, None).await.unwrap();
        let b = Tokens::from_pool(connect().await);
        assert_eq!(b.lookup(&secret).await.unwrap().unwrap().role, Role::Operator);
        assert!(b.lookup("cg_wrong").await.unwrap().is_none());
        assert_eq!(b.list().await.unwrap().len(), 1);
        let pool = connect().await;
        let stored: String = pool.get().await.unwrap().query_one("SELECT hash FROM tokens", &[]).await.unwrap().get(0);
        assert_eq!(stored, hash(&secret));
        schema.drop().await.unwrap();
    }
}
