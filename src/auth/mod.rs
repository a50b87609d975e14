//! Bearer tokens with roles. Tokens are random, shown once, stored as SHA-256 hashes in the centre's
//! SQLite file; `crowdgrid token create` or `POST /api/v1/tokens` (admin) makes them.

mod principal;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

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

/// The token table, with an in-memory cache of hashes already seen.
#[derive(Clone)]
pub struct Tokens {
    conn: Arc<Mutex<Connection>>,
    cache: Arc<Mutex<HashMap<String, TokenRecord>>>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Opens the token table in the centre's database file.
    pub fn open(path: &Path) -> Result<Tokens, StoreError> {
        let conn = schema::open(path)?;
        Ok(Tokens { conn: Arc::new(Mutex::new(conn)), cache: Arc::default() })
    }

    /// Creates a token and returns its secret (shown once; only the hash is stored).
    pub fn create(&self, name: &str, role: Role, worker: Option<&str>) -> Result<String, TokenError> {
        if (role == Role::GridWorker) != worker.is_some() {
            return Err(TokenError::Worker);
        }
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!("cg_{}", hex::encode(bytes));
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT INTO tokens (hash, name, role, worker, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash(&secret), name, role.as_str(), worker, chrono::Utc::now().timestamp_millis()],
        )?;
        Ok(secret)
    }

    /// The record of a presented token, if it is known.
    pub fn lookup(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let h = hash(token);
        if let Some(r) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&h) {
            return Ok(Some(r.clone()));
        }
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let row = conn
            .query_row("SELECT name, role, worker FROM tokens WHERE hash = ?1", params![h], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
            })
            .optional()?;
        let Some((name, role, worker)) = row else { return Ok(None) };
        let Some(role) = Role::parse(&role) else { return Ok(None) };
        let rec = TokenRecord { name, role, worker };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(h, rec.clone());
        Ok(Some(rec))
    }

    /// Every token's holder and role (never the secrets).
    pub fn list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare("SELECT name, role, worker FROM tokens ORDER BY created_at")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, worker) = row?;
            if let Some(role) = Role::parse(&role) {
                out.push(TokenRecord { name, role, worker });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let t = Tokens::open(&db).unwrap();
        let secret = t.create("wang", Role::GridWorker, Some("wang-lei")).unwrap();
        assert!(secret.starts_with("cg_") && secret.len() == 51);
        let rec = t.lookup(&secret).unwrap().unwrap();
        assert_eq!(rec.role, Role::GridWorker);
        assert_eq!(rec.worker.as_deref(), Some("wang-lei"));
        assert!(t.lookup("cg_wrong").unwrap().is_none());
        assert!(matches!(t.create("x", Role::GridWorker, None), Err(TokenError::Worker)));
        assert!(matches!(t.create("x", Role::Operator, Some("w")), Err(TokenError::Worker)));
        let raw = std::fs::read(&db).unwrap();
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()), "the secret is not stored");
        // A second handle (another process) finds it too.
        assert!(Tokens::open(&db).unwrap().lookup(&secret).unwrap().is_some());
    }
}
