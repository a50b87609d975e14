//! The dispatch state in PostgreSQL, for deployments with more than one centre instance: the pool and
//! the schema (mirroring SQLite's), created idempotently at connect in the `search_path`'s schema.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tickets (
    id BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL,
    zone TEXT NOT NULL,
    grid TEXT NOT NULL,
    community TEXT NOT NULL,
    subdistrict TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    audience TEXT NOT NULL,
    level TEXT NOT NULL,
    state TEXT NOT NULL,
    tier TEXT NOT NULL,
    assignee TEXT,
    opened_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    on_site_at BIGINT,
    closed_at BIGINT,
    relief_at BIGINT,
    ack_due BIGINT,
    resolve_due BIGINT,
    density DOUBLE PRECISION NOT NULL,
    peak_density DOUBLE PRECISION NOT NULL,
    resolution TEXT,
    resolved_by TEXT,
    reopened BIGINT NOT NULL DEFAULT 0,
    metric TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    value DOUBLE PRECISION NOT NULL DEFAULT 0,
    peak_value DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_open ON tickets (site, zone, rule) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS tickets_state ON tickets (state, opened_at);
CREATE TABLE IF NOT EXISTS ticket_events (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL REFERENCES tickets(id),
    ts BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_events_ticket ON ticket_events (ticket_id, id);
CREATE TABLE IF NOT EXISTS outbox (
    id BIGSERIAL PRIMARY KEY,
    ticket_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, next_at);
CREATE TABLE IF NOT EXISTS rule_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    saved_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS edge_master_check (id INT PRIMARY KEY CHECK (id = 1), check_value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edge_credentials (
    site TEXT NOT NULL,
    edge TEXT NOT NULL,
    kid INTEGER NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (site, edge, kid)
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    worker TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rule_versions (
    version BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL,
    toml TEXT NOT NULL,
    author TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    diff TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_versions_site ON rule_versions (site, version);
CREATE TABLE IF NOT EXISTS camera_settings (
    version BIGSERIAL PRIMARY KEY,
    site TEXT NOT NULL,
    edge TEXT NOT NULL,
    camera TEXT NOT NULL,
    person_threshold DOUBLE PRECISION,
    vehicle_threshold DOUBLE PRECISION,
    nms_iou DOUBLE PRECISION,
    model TEXT,
    model_sha256 TEXT,
    author TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    geometry TEXT
);
CREATE INDEX IF NOT EXISTS camera_settings_camera ON camera_settings (site, edge, camera, version);
-- A settings version may carry the geometry an engineer drew (JSON); tables from before it get the column.
ALTER TABLE camera_settings ADD COLUMN IF NOT EXISTS geometry TEXT;
-- Tables from before v5 kept the rule's value in `density` whatever it measured: add `metric`, `unit`, `value`
-- and `peak_value` once, moving what was stored to `value` (its metric was not kept).
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                 AND table_name = 'tickets' AND column_name = 'peak_value') THEN
    ALTER TABLE tickets ADD COLUMN metric TEXT NOT NULL DEFAULT '', ADD COLUMN unit TEXT NOT NULL DEFAULT '',
      ADD COLUMN value DOUBLE PRECISION NOT NULL DEFAULT 0, ADD COLUMN peak_value DOUBLE PRECISION NOT NULL DEFAULT 0;
    UPDATE tickets SET value = density, peak_value = peak_density;
  END IF;
END $$;
";

/// Advisory lock key serialising schema creation between instances starting together.
const SCHEMA_LOCK: i64 = 0x6372_6f77_6467_7264; // "crowdgrd"

/// SQLSTATE of a unique violation.
pub const UNIQUE_VIOLATION: &str = "23505";

/// Whether `e` is a unique-constraint violation.
pub fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| d.code().code() == UNIQUE_VIOLATION)
}

/// Connects a pool to `url` (`postgres://user@host:port/db`, `?options=-csearch_path%3Dschema` to pick a
/// schema) and creates the tables if needed. Fails if the server cannot be reached.
pub async fn connect(url: &str) -> Result<Pool, StoreError> {
    let cfg: tokio_postgres::Config =
        url.parse().map_err(|e| StoreError::Postgres(format!("invalid dispatch_url: {e}")))?;
    let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(mgr)
        .max_size(8)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| StoreError::Postgres(format!("pool: {e}")))?;
    let schema = apply(&pool, SCHEMA).await?;
    tracing::info!(%schema, "dispatch state in PostgreSQL");
    Ok(pool)
}

/// Runs idempotent DDL under the schema lock (instances starting together must not race on `CREATE ... IF NOT
/// EXISTS`); returns the schema it ran in.
pub async fn apply(pool: &Pool, ddl: &str) -> Result<String, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
    let schema: Option<String> = tx.query_one("SELECT current_schema()", &[]).await?.get(0);
    let Some(schema) = schema else {
        return Err(StoreError::Postgres("search_path names no existing schema: create it first".into()));
    };
    tx.batch_execute(ddl).await?;
    tx.commit().await?;
    Ok(schema)
}

/// `url` with `search_path` set to `schema` on every connection (tokio-postgres passes `options` to the
/// server as `-c search_path=…`).
pub fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// A private schema for one test run: created on [`TestSchema::create`], dropped by [`TestSchema::drop`].
pub struct TestSchema {
    /// The server, as given (`CROWDGRID_TEST_PG`).
    pub base_url: String,
    /// `cg_test_<random>`.
    pub name: String,
}

impl TestSchema {
    /// The server tests use: `$CROWDGRID_TEST_PG`, default `postgres://root@127.0.0.1:5432/test`.
    pub fn server_url() -> String {
        std::env::var("CROWDGRID_TEST_PG").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into())
    }

    /// Creates a fresh schema `cg_test_<random>` on [`TestSchema::server_url`].
    pub async fn create() -> Result<TestSchema, StoreError> {
        let base_url = Self::server_url();
        let name = format!("cg_test_{:016x}", rand::random::<u64>());
        Self::exec(&base_url, &format!("CREATE SCHEMA {name}")).await?;
        Ok(TestSchema { base_url, name })
    }

    /// The URL whose connections use this schema.
    pub fn url(&self) -> String {
        url_with_schema(&self.base_url, &self.name)
    }

    /// Drops the schema and everything in it.
    pub async fn drop(self) -> Result<(), StoreError> {
        Self::exec(&self.base_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)).await
    }

    async fn exec(url: &str, sql: &str) -> Result<(), StoreError> {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
        let driver = tokio::spawn(conn);
        let done = client.batch_execute(sql).await;
        drop(client);
        let _ = driver.await;
        Ok(done?)
    }
}
