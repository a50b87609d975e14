//! One SQLite connection shared by async callers: each call runs on the blocking pool, never on the runtime's
//! workers.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{schema, StoreError};

/// A connection to the store file (opened with the schema and pragmas), cheap to clone.
#[derive(Clone)]
pub struct BlockingConn {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for BlockingConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConn").finish()
    }
}

impl BlockingConn {
    /// Opens its own connection to `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self { conn: Arc::new(Mutex::new(schema::open(path)?)) })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Join(e.to_string()))?
    }
}

/// Runs `f` (which opens what it needs) on the blocking pool: the version tables' one-off queries.
pub async fn run<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Join(e.to_string()))?
}
