//! Stored readings in data-time order, streamed from the SQLite store (one statement, row by row: a year of
//! readings never sits in memory). Edges' own `fused` readings are left out: the centre's fusion never uses
//! them.

use std::path::Path;

use chrono::{DateTime, Utc};
use crowdgrid_proto::{ClassCounts, Reading, SourceKind};
use rusqlite::{params, Connection, OpenFlags};

use crate::store::{from_ms, ms, StoreError};

/// Which stored readings to replay.
#[derive(Debug, Clone)]
pub struct Range {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Inclusive end.
    pub to: DateTime<Utc>,
    /// Only this site.
    pub site: Option<String>,
}

/// How many readings [`each`] will replay (for a progress bar).
pub fn count(db: &Path, range: &Range) -> Result<u64, StoreError> {
    let c = open(db)?;
    let n: i64 = c.query_row(
        "SELECT COUNT(*) FROM readings WHERE ts >= ?1 AND ts <= ?2 AND (?3 IS NULL OR site = ?3) AND source <> 'fused'",
        params![ms(range.from), ms(range.to), range.site],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// Calls `f` with every reading in `range`, oldest first (ties in source id and sequence order). Rows that no
/// longer parse (an unknown source kind) are skipped and counted in the returned number.
pub fn each(db: &Path, range: &Range, mut f: impl FnMut(Reading)) -> Result<u64, StoreError> {
    let c = open(db)?;
    let mut stmt = c.prepare(
        "SELECT site, zone, ts, source_id, seq, source, count, area_m2, density, confidence, person, vehicle, inflow,
         outflow, conflict FROM readings WHERE ts >= ?1 AND ts <= ?2 AND (?3 IS NULL OR site = ?3)
         AND source <> 'fused' ORDER BY ts, source_id, seq",
    )?;
    let mut rows = stmt.query(params![ms(range.from), ms(range.to), range.site])?;
    let mut skipped = 0;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(5)?;
        let Some(source) = SourceKind::parse(&kind) else {
            skipped += 1;
            continue;
        };
        let person: Option<f64> = row.get(10)?;
        let vehicle: Option<f64> = row.get(11)?;
        f(Reading {
            site: row.get(0)?,
            zone: row.get(1)?,
            ts: from_ms(row.get(2)?),
            source_id: row.get(3)?,
            seq: row.get::<_, i64>(4)?.max(0) as u64,
            epoch: 0,
            source,
            count: row.get(6)?,
            area_m2: row.get(7)?,
            density: row.get(8)?,
            confidence: row.get(9)?,
            classes: person.map(|p| ClassCounts { person: p, vehicle: vehicle.unwrap_or(0.0) }),
            inflow_per_min: row.get(12)?,
            outflow_per_min: row.get(13)?,
            conflict: row.get(14)?,
        });
    }
    Ok(skipped)
}

/// Read-only: a backtest never writes to the store it reads.
fn open(db: &Path) -> Result<Connection, StoreError> {
    if !db.is_file() {
        return Err(StoreError::Dir { path: db.display().to_string(), source: std::io::ErrorKind::NotFound.into() });
    }
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(c)
}

/// A time range: first and last.
pub type Span = (DateTime<Utc>, DateTime<Utc>);

/// The oldest and newest stored reading's time (of `site` when given).
pub fn span(db: &Path, site: Option<&str>) -> Result<Option<Span>, StoreError> {
    let c = open(db)?;
    let (a, b): (Option<i64>, Option<i64>) = c.query_row(
        "SELECT MIN(ts), MAX(ts) FROM readings WHERE (?1 IS NULL OR site = ?1) AND source <> 'fused'",
        params![site],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(a.zip(b).map(|(a, b)| (from_ms(a), from_ms(b))))
}
