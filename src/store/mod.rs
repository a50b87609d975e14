//! Storage: the embedded SQLite time-series store (default), the ticket store, and the optional
//! InfluxDB sink. The dispatch state (tickets, outbox, rule snapshot, tokens) lives in the same SQLite
//! file or, for several centre instances, in PostgreSQL (see [`dispatch_db`]).

pub mod blocking;
pub mod camera_settings;
pub mod dispatch_db;
pub mod evidence;
pub mod influx;
pub mod outbox;
pub mod pg_schema;
pub mod pg_series;
pub mod rule_state;
pub mod rule_versions;
pub mod schema;
pub mod series;
pub mod tickets;
pub mod writer;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database file's directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A blocking task died.
    #[error("store task failed: {0}")]
    Join(String),
    /// The file was made by another version of crowdgrid.
    #[error("{path} has schema version {found}, this build needs {expected}: move the file away (or migrate it)")]
    Schema { path: String, found: i64, expected: i64 },
    /// A zero-length store file.
    #[error("{0} is empty (0 bytes): refusing to start with no data; restore it from backup, or remove it to start a new store")]
    Empty(String),
    /// A ticket id that does not exist.
    #[error("no ticket {0}")]
    NoTicket(i64),
    /// A transition the ticket's state does not allow.
    #[error("ticket {id} is {state}: cannot {action}")]
    Transition { id: i64, state: String, action: String },
    /// PostgreSQL (or its connection pool) said no.
    #[error("postgres: {0}")]
    Postgres(String),
    /// A value could not be encoded for storage.
    #[error("cannot encode {0}")]
    Encode(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's message (e.g. a constraint name) is more useful than "db error".
        match e.as_db_error() {
            Some(db) => StoreError::Postgres(format!("{}: {}", db.code().code(), db.message())),
            None => StoreError::Postgres(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Postgres(format!("pool: {e}"))
    }
}

/// Milliseconds since the Unix epoch.
pub fn ms(ts: chrono::DateTime<chrono::Utc>) -> i64 {
    ts.timestamp_millis()
}

/// The inverse of [`ms`].
pub fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
