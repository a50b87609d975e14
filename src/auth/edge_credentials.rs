//! Edge identities: one credential per edge, issued by the centre, revocable without a restart.
//!
//! Like a ThingsBoard device credential or an AWS IoT certificate, a credential names one edge of one site, and
//! everything that edge sends is checked against it (see `crowdgrid_proto::signed`). Unlike them, the key is
//! symmetric (HMAC: one SHA-256 per reading keeps the centre above 100,000 readings/s on two cores, where an
//! Ed25519 verify per reading would not), so it is not stored: the database keeps only a SHA-256 of the secret
//! for listing and audit, and the centre re-derives the secret from its master key,
//! `secret = HMAC-SHA256(master, "crowdgrid edge\0{site}\0{edge}\0{kid}")`.
//! Whoever reads the database (or a backup of it) cannot impersonate an edge; whoever reads the master key file
//! can, so it is created owner-only and several centre instances share the same file.
//!
//! Revocation is a row update; the [`Registry`] every centre keeps in memory is reloaded every few seconds, so
//! a revoked edge is refused within that time on every instance.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crowdgrid_proto::signed::Credential;
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{blocking, Backend};
use crate::store::{schema, StoreError};

/// The id the centre signs its own messages (commit acknowledgements) with, and its broker username.
pub const CENTRE_ID: &str = crowdgrid_proto::signed::CENTRE;

/// `[edges]` in the central config: how edges prove who they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeAuthConfig {
    /// `required` (default): every reading, status and evidence snapshot must be signed with a credential of its
    /// site, and the embedded broker refuses connections without one. `off`: unsigned v1 payloads are accepted
    /// as before (signed ones are still checked); only for a broker that nobody else can reach.
    #[serde(default)]
    pub authentication: Authentication,
    /// The master key the credentials are derived from (created owner-only on first use). Default: beside the
    /// store file, `edge-master.key`. Several instances must share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// How often the credential table is re-read (revocations take effect within this), seconds.
    #[serde(default = "default_refresh")]
    pub refresh_s: u64,
}

fn default_refresh() -> u64 {
    2
}

impl Default for EdgeAuthConfig {
    fn default() -> Self {
        Self { authentication: Authentication::Required, key_file: None, refresh_s: default_refresh() }
    }
}

impl EdgeAuthConfig {
    /// The master key file, given the store file's path.
    pub fn key_path(&self, store: &Path) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| store.with_file_name("edge-master.key"))
    }
}

/// Whether unsigned payloads are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authentication {
    /// Signed frames only.
    #[default]
    Required,
    /// Unsigned payloads accepted (signed ones still verified).
    Off,
}

/// Why a credential operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Store problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The master key file could not be read or created.
    #[error("edge master key {path}: {reason}")]
    MasterKey { path: String, reason: String },
    /// Instances sharing PostgreSQL derive the same credentials only from the same master key.
    #[error(
        "this instance's edge master key is not the one the other instances sharing PostgreSQL use: give every \
         instance the same key file ([edges] key_file), or its edges' signatures and logins are refused here"
    )]
    KeyMismatch,
    /// A site or edge id that cannot be a topic level.
    #[error("{0:?} is not a valid id (1–64 of a-z 0-9 - _)")]
    BadId(String),
}

impl From<rusqlite::Error> for CredentialError {
    fn from(e: rusqlite::Error) -> Self {
        CredentialError::Store(StoreError::Sqlite(e))
    }
}

impl From<tokio_postgres::Error> for CredentialError {
    fn from(e: tokio_postgres::Error) -> Self {
        CredentialError::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for CredentialError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        CredentialError::Store(e.into())
    }
}

/// A credential as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialRecord {
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// Credential number of that edge.
    pub kid: u32,
    /// First 12 hex digits of the secret's SHA-256 (to tell credentials apart).
    pub fingerprint: String,
    /// When issued (ms since the Unix epoch).
    pub created_at: i64,
    /// When revoked, if it was.
    pub revoked_at: Option<i64>,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Reads the master key, creating it (32 random bytes, hex, mode 0600) if the file does not exist.
pub fn load_or_create_master(path: &Path) -> Result<[u8; 32], CredentialError> {
    let err = |reason: String| CredentialError::MasterKey { path: path.display().to_string(), reason };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_master(&text).ok_or_else(|| err("not 64 hex digits (a zero-length or corrupt key file is refused: restore it from backup, or remove it and issue every edge a new credential)".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            match opts.open(path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(format!("{}\n", hex::encode(key)).as_bytes()).map_err(|e| err(e.to_string()))?;
                    f.sync_all().map_err(|e| err(e.to_string()))?;
                    tracing::info!(path = %path.display(), "created the edge master key (owner-only; back it up)");
                    Ok(key)
                }
                // Another process created it between our read and our create: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_master(path),
                Err(e) => Err(err(e.to_string())),
            }
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn parse_master(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// The credential table plus the master key.
#[derive(Clone)]
pub struct EdgeCredentials {
    backend: Backend,
    master: Arc<[u8; 32]>,
}

type Row = (String, String, i64, String, i64, Option<i64>);

impl EdgeCredentials {
    /// The table in the centre's SQLite file.
    pub fn open(db: &Path, master_key: &Path) -> Result<EdgeCredentials, CredentialError> {
        let conn = schema::open(db)?;
        let master = Arc::new(load_or_create_master(master_key)?);
        Ok(EdgeCredentials { backend: Backend::Sqlite(Arc::new(Mutex::new(conn))), master })
    }

    /// The table in PostgreSQL.
    pub fn from_pool(pool: Pool, master_key: &Path) -> Result<EdgeCredentials, CredentialError> {
        Ok(EdgeCredentials { backend: Backend::Postgres(pool), master: Arc::new(load_or_create_master(master_key)?) })
    }

    /// With PostgreSQL: records the master key's check value on first use and refuses a different key after, so an
    /// instance started with its own key fails at start instead of refusing every edge. A no-op for SQLite.
    pub async fn check_shared_key(&self) -> Result<(), CredentialError> {
        let Backend::Postgres(pool) = &self.backend else { return Ok(()) };
        // Derived like a credential, so the value says nothing about any edge's secret.
        let check = self.derive("", "crowdgrid master key check", 0).secret;
        let c = pool.get().await?;
        c.execute(
            "INSERT INTO edge_master_check (id, check_value) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            &[&check],
        )
        .await?;
        let stored: String = c.query_one("SELECT check_value FROM edge_master_check WHERE id = 1", &[]).await?.get(0);
        if stored == check {
            Ok(())
        } else {
            Err(CredentialError::KeyMismatch)
        }
    }

    /// The secret of `(site, edge, kid)`, derived from the master key.
    pub fn derive(&self, site: &str, edge: &str, kid: u32) -> Credential {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.master.as_slice()).unwrap_or_else(|_| unreachable!());
        mac.update(format!("crowdgrid edge\0{site}\0{edge}\0{kid}").as_bytes());
        let secret = format!("{kid}.{}", hex::encode(mac.finalize().into_bytes()));
        Credential { kid, secret }
    }

    /// The MQTT password of a grid worker's phone on an external broker (`crowdgrid broker-acl`).
    pub fn worker_password(&self, site: &str, worker: &str) -> String {
        self.derive(site, &format!("worker/{worker}"), 0).secret
    }

    /// The password the centre's own MQTT clients present to the embedded broker.
    pub fn centre_password(&self) -> String {
        self.derive("", CENTRE_ID, 0).secret
    }

    /// Issues the next credential of `edge` in `site` (earlier ones stay valid until revoked, so a new one can be
    /// rolled out first). The secret is returned once and never stored.
    pub async fn create(&self, site: &str, edge: &str) -> Result<Credential, CredentialError> {
        for id in [site, edge] {
            if !valid_id(id) {
                return Err(CredentialError::BadId(id.to_string()));
            }
        }
        if edge == CENTRE_ID {
            // The centre signs acknowledgements and keeps the map's own series under this name.
            return Err(CredentialError::BadId(format!("{edge} (reserved for the centre)")));
        }
        let now = chrono::Utc::now().timestamp_millis();
        let (site_s, edge_s) = (site.to_string(), edge.to_string());
        let kid: i64 = match &self.backend {
            Backend::Sqlite(conn) => {
                blocking(conn, move |c| -> Result<i64, CredentialError> {
                    Ok(c.query_row(
                        "SELECT COALESCE(MAX(kid), 0) + 1 FROM edge_credentials WHERE site = ?1 AND edge = ?2",
                        params![site_s, edge_s],
                        |r| r.get(0),
                    )?)
                })
                .await?
            }
            Backend::Postgres(pool) => pool
                .get()
                .await?
                .query_one(
                    "SELECT COALESCE(MAX(kid), 0) + 1 FROM edge_credentials WHERE site = $1 AND edge = $2",
                    &[&site, &edge],
                )
                .await?
                .try_get::<_, i32>(0)
                .map(i64::from)?,
        };
        let kid = u32::try_from(kid).unwrap_or(u32::MAX);
        let cred = self.derive(site, edge, kid);
        let hash = hex::encode(Sha256::digest(cred.secret.as_bytes()));
        let sql_kid = kid as i64;
        match &self.backend {
            Backend::Sqlite(conn) => {
                let (site, edge) = (site.to_string(), edge.to_string());
                blocking(conn, move |c| -> Result<(), CredentialError> {
                    c.execute(
                        "INSERT INTO edge_credentials (site, edge, kid, secret_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![site, edge, sql_kid, hash, now],
                    )?;
                    Ok(())
                })
                .await?;
            }
            Backend::Postgres(pool) => {
                pool.get()
                    .await?
                    .execute(
                        "INSERT INTO edge_credentials (site, edge, kid, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                        &[&site, &edge, &(kid as i32), &hash, &now],
                    )
                    .await?;
            }
        }
        tracing::info!(site, edge, kid, "edge credential issued");
        Ok(cred)
    }

    /// Revokes one credential (`kid`) or every credential of the edge. Returns how many were revoked.
    pub async fn revoke(&self, site: &str, edge: &str, kid: Option<u32>) -> Result<u64, CredentialError> {
        let now = chrono::Utc::now().timestamp_millis();
        let kid = kid.map(i64::from);
        let n = match &self.backend {
            Backend::Sqlite(conn) => {
                let (site, edge) = (site.to_string(), edge.to_string());
                blocking(conn, move |c| -> Result<u64, CredentialError> {
                    Ok(c.execute(
                        "UPDATE edge_credentials SET revoked_at = ?1
                         WHERE site = ?2 AND edge = ?3 AND (?4 IS NULL OR kid = ?4) AND revoked_at IS NULL",
                        params![now, site, edge, kid],
                    )? as u64)
                })
                .await?
            }
            Backend::Postgres(pool) => {
                let kid = kid.map(|k| k as i32);
                pool.get()
                    .await?
                    .execute(
                        "UPDATE edge_credentials SET revoked_at = $1
                         WHERE site = $2 AND edge = $3 AND ($4::INT IS NULL OR kid = $4) AND revoked_at IS NULL",
                        &[&now, &site, &edge, &kid],
                    )
                    .await?
            }
        };
        tracing::info!(site, edge, ?kid, revoked = n, "edge credential revoked");
        Ok(n)
    }

    /// Every credential, issued order.
    pub async fn list(&self) -> Result<Vec<CredentialRecord>, CredentialError> {
        const SQL: &str = "SELECT site, edge, kid, secret_hash, created_at, revoked_at FROM edge_credentials
                           ORDER BY site, edge, kid";
        let rows: Vec<Row> = match &self.backend {
            Backend::Sqlite(conn) => {
                blocking(conn, |c| -> Result<_, CredentialError> {
                    let mut stmt = c.prepare(SQL)?;
                    let rows =
                        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await?
            }
            Backend::Postgres(pool) => {
                let rows = pool.get().await?.query(SQL, &[]).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    out.push((
                        r.try_get(0)?,
                        r.try_get(1)?,
                        i64::from(r.try_get::<_, i32>(2)?),
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                    ));
                }
                out
            }
        };
        Ok(rows
            .into_iter()
            .map(|(site, edge, kid, hash, created_at, revoked_at)| CredentialRecord {
                site,
                edge,
                kid: u32::try_from(kid).unwrap_or(0),
                fingerprint: hash.chars().take(12).collect(),
                created_at,
                revoked_at,
            })
            .collect())
    }
}

/// site → edge → its credentials in force (nested so a lookup by `&str` allocates nothing).
type InForce = HashMap<String, HashMap<String, Vec<Credential>>>;

/// The credentials in force, in memory, for the hot path (one hash lookup per message).
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<InForce>>,
}

impl Registry {
    /// The credential `kid` of `edge` in `site`, if it is issued and not revoked.
    pub fn key(&self, site: &str, edge: &str, kid: u32) -> Option<Credential> {
        self.with_key(site, edge, kid, |c| c.clone())
    }

    /// Runs `f` on the credential `kid` of `edge` in `site` under the read lock (the hot path: no clone).
    pub fn with_key<R>(&self, site: &str, edge: &str, kid: u32, f: impl FnOnce(&Credential) -> R) -> Option<R> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(site)?.get(edge)?.iter().find(|c| c.kid == kid).map(f)
    }

    /// The newest credential in force of `edge` in `site` (the highest kid): what the centre signs with when it
    /// starts a conversation (camera settings).
    pub fn newest(&self, site: &str, edge: &str) -> Option<Credential> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(site)?.get(edge)?.iter().max_by_key(|c| c.kid).cloned()
    }

    /// True if the broker password `password` is a valid credential of `edge` in `site`.
    pub fn password_ok(&self, site: &str, edge: &str, password: &str) -> bool {
        let Ok(presented) = Credential::parse(password) else { return false };
        match self.key(site, edge, presented.kid) {
            Some(c) => {
                use subtle::ConstantTimeEq;
                c.secret.as_bytes().ct_eq(presented.secret.as_bytes()).into()
            }
            None => false,
        }
    }

    /// Reloads from the table; returns how many credentials are in force.
    pub async fn reload(&self, store: &EdgeCredentials) -> Result<usize, CredentialError> {
        let mut map = InForce::new();
        let mut n = 0;
        for r in store.list().await? {
            if r.revoked_at.is_none() {
                let derived = store.derive(&r.site, &r.edge, r.kid);
                map.entry(r.site.clone()).or_default().entry(r.edge.clone()).or_default().push(derived);
                n += 1;
            }
        }
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(n)
    }

    /// Reloads every `every` until `stop`; a failed reload keeps the previous set (logged once per outage).
    pub async fn keep_fresh(self, store: EdgeCredentials, every: Duration, stop: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            match self.reload(&store).await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cannot reload edge credentials; keeping the last set");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn credentials_are_derived_not_stored_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let (db, key) = (dir.path().join("c.db"), dir.path().join("m.key"));
        let store = EdgeCredentials::open(&db, &key).unwrap();
        let c1 = store.create("west-taihu", "edge-1").await.unwrap();
        let c2 = store.create("west-taihu", "edge-1").await.unwrap();
        assert_eq!((c1.kid, c2.kid), (1, 2));
        assert_ne!(c1.secret, c2.secret);
        let raw = std::fs::read(&db).unwrap();
        assert!(!raw.windows(64).any(|w| w == &c1.secret.as_bytes()[2..]), "the secret is not in the database");
        // A second handle on the same key file derives the same secrets (another instance).
        let again = EdgeCredentials::open(&db, &key).unwrap();
        assert_eq!(again.derive("west-taihu", "edge-1", 1), c1);
        let reg = Registry::default();
        assert_eq!(reg.reload(&again).await.unwrap(), 2);
        assert!(reg.password_ok("west-taihu", "edge-1", &c1.secret));
        assert!(!reg.password_ok("west-taihu", "edge-2", &c1.secret), "bound to the edge");
        assert!(!reg.password_ok("boai-school", "edge-1", &c1.secret), "bound to the site");
        assert_eq!(store.revoke("west-taihu", "edge-1", Some(1)).await.unwrap(), 1);
        reg.reload(&again).await.unwrap();
        assert!(reg.key("west-taihu", "edge-1", 1).is_none(), "revoked");
        assert!(reg.key("west-taihu", "edge-1", 2).is_some(), "the other credential stays");
        let listed = store.list().await.unwrap();
        assert!(listed[0].revoked_at.is_some() && listed[1].revoked_at.is_none());
        assert!(matches!(store.create("West Taihu", "e").await, Err(CredentialError::BadId(_))));
        // The centre's own name is not an edge's: it would sign acknowledgements and the map's own series.
        assert!(matches!(store.create("s", CENTRE_ID).await, Err(CredentialError::BadId(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_corrupt_or_empty_master_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("m.key");
        std::fs::write(&key, "").unwrap();
        let e = load_or_create_master(&key).unwrap_err().to_string();
        assert!(e.contains("zero-length or corrupt"), "{e}");
        std::fs::write(&key, "abcd").unwrap();
        assert!(load_or_create_master(&key).is_err());
    }

    #[tokio::test]
    async fn credentials_in_postgres_are_shared_between_instances() {
        let schema = crate::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("m.key");
        let a =
            EdgeCredentials::from_pool(crate::store::pg_schema::connect(&schema.url()).await.unwrap(), &key).unwrap();
        let b =
            EdgeCredentials::from_pool(crate::store::pg_schema::connect(&schema.url()).await.unwrap(), &key).unwrap();
        let c = a.create("boai-school", "cam-edge").await.unwrap();
        let reg = Registry::default();
        assert_eq!(reg.reload(&b).await.unwrap(), 1);
        assert!(reg.password_ok("boai-school", "cam-edge", &c.secret));
        assert_eq!(b.revoke("boai-school", "cam-edge", None).await.unwrap(), 1);
        reg.reload(&a).await.unwrap();
        assert!(!reg.password_ok("boai-school", "cam-edge", &c.secret));
        a.check_shared_key().await.unwrap();
        b.check_shared_key().await.expect("the same key file passes");
        let other = dir.path().join("other.key");
        let stranger =
            EdgeCredentials::from_pool(crate::store::pg_schema::connect(&schema.url()).await.unwrap(), &other).unwrap();
        assert!(
            matches!(stranger.check_shared_key().await, Err(CredentialError::KeyMismatch)),
            "an instance with its own master key is refused"
        );
        schema.drop().await.unwrap();
    }
}
