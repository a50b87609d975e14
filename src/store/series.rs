//! Reading series back for the API: from SQLite (its own connection; WAL lets it read while the writer commits),
//! or from PostgreSQL when the instances of a cluster share the series (`pg_series`).

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::blocking::BlockingConn;
use super::{from_ms, ms, StoreError};

/// One stored reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Timestamp.
    pub ts: DateTime<Utc>,
    /// Source id.
    pub source_id: String,
    /// Source kind.
    pub source: String,
    /// Sequence number.
    pub seq: i64,
    /// People.
    pub count: f64,
    /// People per m².
    pub density: f64,
    /// Confidence.
    pub confidence: f64,
    /// Detected people, if a detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<f64>,
    /// Detected vehicles, if a detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<f64>,
    /// Inflow per minute (gates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflow_per_min: Option<f64>,
    /// Outflow per minute (gates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outflow_per_min: Option<f64>,
    /// People–vehicle conflict, people (cameras, drones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<f64>,
    /// Tracking cameras: the detector's own per-frame count (smoothed), beside the tracked `count`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_count: Option<f64>,
    /// Tracking cameras: how long the people in the zone have been in it, median, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_p50_s: Option<f64>,
    /// The same, 90th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_p90_s: Option<f64>,
    /// Tracking cameras: vehicles through the zone's line per minute, in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle_inflow_per_min: Option<f64>,
    /// The same, out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle_outflow_per_min: Option<f64>,
}

/// A query for one zone's series.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    /// Site id.
    pub site: String,
    /// Zone id.
    pub zone: String,
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Inclusive end.
    pub to: DateTime<Utc>,
    /// Only this source kind (e.g. `fused`) or this source id (e.g. `crowdgrid-central/fused`, the map's own
    /// series) when set.
    pub source: Option<String>,
    /// Most points returned (oldest first).
    pub limit: usize,
}

/// Source id under which the map's own values (the centre's fusion of every source, table `map_series`) are
/// served beside the sources' series. `crowdgrid-central` is the centre's identity: no edge can be issued a
/// credential under it.
pub const MAP_SERIES: &str = "crowdgrid-central/fused";

/// Read side of the store.
#[derive(Clone)]
pub enum SeriesReader {
    /// The centre's own SQLite file.
    Sqlite(BlockingConn),
    /// The cluster's PostgreSQL.
    Postgres(deadpool_postgres::Pool),
}

impl SeriesReader {
    /// Opens a read connection.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self::Sqlite(BlockingConn::open(path)?))
    }

    /// One zone's readings in a time range, oldest first.
    pub async fn series(&self, q: SeriesQuery) -> Result<Vec<Point>, StoreError> {
        let conn = match self {
            Self::Sqlite(conn) => conn,
            Self::Postgres(pool) => return super::pg_series::series(pool, &q).await,
        };
        conn.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT ts, source_id, source, seq, count, density, confidence, person, vehicle, inflow, outflow,
                 conflict, raw_count, dwell_p50_s, dwell_p90_s, vehicle_inflow, vehicle_outflow
                 FROM readings WHERE site = ?1 AND zone = ?2 AND ts >= ?3 AND ts <= ?4
                 AND (?5 IS NULL OR source = ?5 OR source_id = ?5)
                 UNION ALL
                 SELECT ts, ?7, 'fused', 0, count, density, confidence, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, NULL FROM map_series
                 WHERE site = ?1 AND zone = ?2 AND ts >= ?3 AND ts <= ?4 AND (?5 IS NULL OR ?5 IN ('fused', ?7))
                 ORDER BY 1, 2, 4 LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![q.site, q.zone, ms(q.from), ms(q.to), q.source, q.limit as i64, MAP_SERIES],
                |r| {
                    Ok(Point {
                        ts: from_ms(r.get(0)?),
                        source_id: r.get(1)?,
                        source: r.get(2)?,
                        seq: r.get(3)?,
                        count: r.get(4)?,
                        density: r.get(5)?,
                        confidence: r.get(6)?,
                        person: r.get(7)?,
                        vehicle: r.get(8)?,
                        inflow_per_min: r.get(9)?,
                        outflow_per_min: r.get(10)?,
                        conflict: r.get(11)?,
                        raw_count: r.get(12)?,
                        dwell_p50_s: r.get(13)?,
                        dwell_p90_s: r.get(14)?,
                        vehicle_inflow_per_min: r.get(15)?,
                        vehicle_outflow_per_min: r.get(16)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Whether the store answers (a cheap query: health checks run often).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(conn) => {
                conn.with(|c| Ok(c.query_row("SELECT COUNT(*) FROM (SELECT 1 FROM readings LIMIT 1)", [], |_| Ok(()))?))
                    .await
            }
            Self::Postgres(pool) => super::pg_series::ping(pool).await,
        }
    }
}
