//! Rule sets as versioned data: every change of a site's rules made through the API is a new version — the
//! whole rules file as TOML, who, when, why, and the diff from the one before. The highest version of a site is
//! its live rules (the TOML files in `rule_files` are where each site starts); a rollback is a new version
//! holding an older one's text, so the history only grows. In the dispatch database (SQLite, or PostgreSQL
//! shared by every centre instance: each applies a new version within seconds).

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::blocking::run as blocking;
use super::dispatch_db::DispatchDb;
use super::{from_ms, ms, schema, StoreError};

/// One version of one site's rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleVersion {
    /// Increasing over all sites.
    pub version: i64,
    /// Site id.
    pub site: String,
    /// The whole rules file.
    pub toml: String,
    /// Who made it (token holder).
    pub author: String,
    /// Why.
    pub note: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Unified diff from the site's previous rules.
    pub diff: String,
}

/// What a new version holds.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Site id.
    pub site: String,
    /// The whole rules file.
    pub toml: String,
    /// Who.
    pub author: String,
    /// Why.
    pub note: String,
    /// Diff from the previous rules.
    pub diff: String,
}

const COLUMNS: &str = "version, site, toml, author, note, created_at, diff";

fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RuleVersion> {
    Ok(RuleVersion {
        version: r.get(0)?,
        site: r.get(1)?,
        toml: r.get(2)?,
        author: r.get(3)?,
        note: r.get(4)?,
        created_at: from_ms(r.get(5)?),
        diff: r.get(6)?,
    })
}

fn pg_row(r: &tokio_postgres::Row) -> Result<RuleVersion, tokio_postgres::Error> {
    Ok(RuleVersion {
        version: r.try_get(0)?,
        site: r.try_get(1)?,
        toml: r.try_get(2)?,
        author: r.try_get(3)?,
        note: r.try_get(4)?,
        created_at: from_ms(r.try_get(5)?),
        diff: r.try_get(6)?,
    })
}

impl DispatchDb {
    /// Stores a new version and returns its number.
    pub async fn add_rule_version(&self, v: NewVersion) -> Result<i64, StoreError> {
        let now = ms(Utc::now());
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                blocking(move || {
                    let c = schema::open(&p)?;
                    c.execute(
                        "INSERT INTO rule_versions (site, toml, author, note, created_at, diff)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![v.site, v.toml, v.author, v.note, now, v.diff],
                    )?;
                    Ok(c.last_insert_rowid())
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let c = pool.get().await?;
                let row = c
                    .query_one(
                        "INSERT INTO rule_versions (site, toml, author, note, created_at, diff)
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING version",
                        &[&v.site, &v.toml, &v.author, &v.note, &now, &v.diff],
                    )
                    .await?;
                Ok(row.try_get(0)?)
            }
        }
    }

    /// Versions, newest first (of `site` when given), at most `limit`.
    pub async fn rule_versions(&self, site: Option<&str>, limit: i64) -> Result<Vec<RuleVersion>, StoreError> {
        let site = site.map(str::to_string);
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                blocking(move || {
                    let c = schema::open(&p)?;
                    let mut stmt = c.prepare(&format!(
                        "SELECT {COLUMNS} FROM rule_versions WHERE (?1 IS NULL OR site = ?1)
                         ORDER BY version DESC LIMIT ?2"
                    ))?;
                    let rows = stmt.query_map(params![site, limit], sqlite_row)?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let c = pool.get().await?;
                let rows = c
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM rule_versions WHERE ($1::TEXT IS NULL OR site = $1)
                             ORDER BY version DESC LIMIT $2"
                        ),
                        &[&site, &limit],
                    )
                    .await?;
                Ok(rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()?)
            }
        }
    }

    /// One version.
    pub async fn rule_version(&self, version: i64) -> Result<Option<RuleVersion>, StoreError> {
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                blocking(move || {
                    let c = schema::open(&p)?;
                    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM rule_versions WHERE version = ?1"))?;
                    let mut rows = stmt.query_map(params![version], sqlite_row)?;
                    Ok(rows.next().transpose()?)
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let c = pool.get().await?;
                let row = c
                    .query_opt(&format!("SELECT {COLUMNS} FROM rule_versions WHERE version = $1"), &[&version])
                    .await?;
                Ok(row.as_ref().map(pg_row).transpose()?)
            }
        }
    }

    /// The highest version number (0: none). Every instance asks this every 2 s; only when it moves does it read
    /// the versions themselves.
    pub async fn newest_rule_version(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COALESCE(MAX(version), 0) FROM rule_versions";
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                // A plain read connection: the schema was made when the centre opened the store.
                blocking(move || {
                    let c = rusqlite::Connection::open_with_flags(&p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                    c.busy_timeout(std::time::Duration::from_secs(5))?;
                    Ok(c.query_row(SQL, [], |r| r.get(0))?)
                })
                .await
            }
            DispatchDb::Postgres(pool) => Ok(pool.get().await?.query_one(SQL, &[]).await?.try_get(0)?),
        }
    }

    /// The newest version of every site that has one.
    pub async fn live_rule_versions(&self) -> Result<Vec<RuleVersion>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rule_versions r WHERE version = (SELECT MAX(version) FROM rule_versions
             WHERE site = r.site) ORDER BY site"
        );
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                blocking(move || {
                    let c = schema::open(&p)?;
                    let mut stmt = c.prepare(&sql)?;
                    let rows = stmt.query_map([], sqlite_row)?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let c = pool.get().await?;
                let rows = c.query(&sql, &[]).await?;
                Ok(rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()?)
            }
        }
    }
}
