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

/// Where the stored readings are: the centre's SQLite file, or a cluster's PostgreSQL (`store::pg_series`).
#[derive(Clone)]
pub enum Stored {
    /// The SQLite file.
    Sqlite(std::path::PathBuf),
    /// The cluster's series.
    Postgres(deadpool_postgres::Pool),
}

/// [`each`] from wherever the readings are. Blocking: call it off the async runtime (PostgreSQL's rows are
/// streamed through the runtime's handle, row by row as SQLite's).
pub fn each_stored(stored: &Stored, range: &Range, f: impl FnMut(Reading)) -> Result<u64, StoreError> {
    match stored {
        Stored::Sqlite(db) => each(db, range, f),
        Stored::Postgres(pool) => {
            tokio::runtime::Handle::current().block_on(crate::store::pg_series::each(pool, range, f))
        }
    }
}

/// One stored row as the backtest reads it (the same columns in SQLite and PostgreSQL).
pub(crate) struct StoredRow {
    pub site: String,
    pub zone: String,
    pub ts: i64,
    pub source_id: String,
    pub seq: i64,
    pub kind: String,
    pub count: f64,
    pub area_m2: f64,
    pub density: f64,
    pub confidence: f64,
    pub person: Option<f64>,
    pub vehicle: Option<f64>,
    pub inflow: Option<f64>,
    pub outflow: Option<f64>,
    pub conflict: Option<f64>,
}

impl StoredRow {
    /// The reading, `None` for a source kind this build does not know.
    pub(crate) fn reading(self) -> Option<Reading> {
        Some(Reading {
            source: SourceKind::parse(&self.kind)?,
            site: self.site,
            zone: self.zone,
            ts: from_ms(self.ts),
            source_id: self.source_id,
            seq: self.seq.max(0) as u64,
            epoch: 0,
            count: self.count,
            area_m2: self.area_m2,
            density: self.density,
            confidence: self.confidence,
            classes: self.person.map(|p| ClassCounts { person: p, vehicle: self.vehicle.unwrap_or(0.0) }),
            inflow_per_min: self.inflow,
            outflow_per_min: self.outflow,
            conflict: self.conflict,
            // What a tracking camera adds is for people reading the charts; the rules do not use it.
            tracked: None,
        })
    }
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
        let stored = StoredRow {
            site: row.get(0)?,
            zone: row.get(1)?,
            ts: row.get(2)?,
            source_id: row.get(3)?,
            seq: row.get(4)?,
            kind: row.get(5)?,
            count: row.get(6)?,
            area_m2: row.get(7)?,
            density: row.get(8)?,
            confidence: row.get(9)?,
            person: row.get(10)?,
            vehicle: row.get(11)?,
            inflow: row.get(12)?,
            outflow: row.get(13)?,
            conflict: row.get(14)?,
        };
        match stored.reading() {
            Some(r) => f(r),
            None => skipped += 1,
        }
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

/// The map's own series of one zone (table `map_series`) in `[from, to]`, oldest first.
pub fn map_series(
    db: &Path,
    site: &str,
    zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, f64)>, StoreError> {
    let c = open(db)?;
    let mut stmt = c.prepare(
        "SELECT ts, density FROM map_series WHERE site = ?1 AND zone = ?2 AND ts >= ?3 AND ts <= ?4 ORDER BY ts",
    )?;
    let rows = stmt.query_map(params![site, zone, ms(from), ms(to)], |r| Ok((from_ms(r.get(0)?), r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Why a counts CSV could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Rows that do not parse, each with its line (none is used if any is bad).
    #[error("{path}: {}", problems.join("; "))]
    Bad {
        /// The file.
        path: String,
        /// `line N: why`.
        problems: Vec<String>,
    },
}

/// Readings from a CSV of timestamped counts — header `ts,site,zone,count` and optionally `inflow_per_min` (`ts`
/// RFC 3339, `count` people in the zone) — sorted by time, each the only source of its zone (`csv/{zone}`). Every
/// bad row is reported at once, with its line.
pub fn from_csv(path: &Path, sites: &[std::sync::Arc<crowdgrid_proto::site::Site>]) -> Result<Vec<Reading>, CsvError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CsvError::Read { path: name.clone(), source })?;
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let header: Vec<String> = rdr.headers().map(|h| h.iter().map(str::to_string).collect()).unwrap_or_default();
    let col = |n: &str| header.iter().position(|h| h == n);
    let mut problems = Vec::new();
    let (Some(ti), Some(si), Some(zi), Some(ci)) = (col("ts"), col("site"), col("zone"), col("count")) else {
        return Err(CsvError::Bad {
            path: name,
            problems: vec!["line 1: the header needs ts, site, zone and count".into()],
        });
    };
    let inflow = col("inflow_per_min");
    let mut out = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let get = |i: usize| rec.get(i).unwrap_or("");
        let ts = DateTime::parse_from_rfc3339(get(ti)).map(|t| t.with_timezone(&Utc));
        let count = get(ci).parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.0);
        let zone = sites.iter().find(|s| s.config.id == get(si)).and_then(|s| s.zone(get(zi)));
        match (ts, count, zone) {
            (Ok(ts), Some(count), Some(z)) => {
                let mut r = Reading::new(
                    get(si),
                    get(zi),
                    SourceKind::Report,
                    &format!("csv/{}", get(zi)),
                    ts,
                    count,
                    z.area_m2,
                    0.9,
                );
                r.seq = line as u64;
                r.inflow_per_min =
                    inflow.and_then(|i| get(i).parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
                out.push(r);
            }
            (Err(e), _, _) => problems.push(format!("line {line}: ts {:?}: {e}", get(ti))),
            (_, None, _) => problems.push(format!("line {line}: count {:?} is not a number of people", get(ci))),
            (_, _, None) => problems.push(format!("line {line}: no zone {:?} in site {:?}", get(zi), get(si))),
        }
    }
    if !problems.is_empty() {
        return Err(CsvError::Bad { path: name, problems });
    }
    out.sort_by_key(|r| r.ts);
    Ok(out)
}
