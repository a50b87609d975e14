//! The series in PostgreSQL, for centre instances that share one store (`[cluster]`): the sources' readings, the
//! map's own series and the sources' sequence marks, so any instance's API answers for any zone and the instance
//! that takes a site over continues its de-duplication where the last owner stopped.
//!
//! `readings` and `map_series` are partitioned by data time, one partition per UTC day (`readings_d20261130`):
//! retention drops whole partitions instead of deleting rows, and a query for an hour touches one partition. A
//! batch creates the partitions of its days first (under an advisory lock: two instances creating the same day
//! would otherwise race). Every write is idempotent on the same keys as SQLite's (`(site, zone, ts, source_id,
//! seq)`): an instance that stores a reading its predecessor already stored changes nothing, so a handover can
//! at worst repeat work, never a row. Rows go in as arrays (`UNNEST`): one statement per table per batch, however
//! many sources it touches.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;

use super::series::{Point, SeriesQuery, MAP_SERIES};
use super::writer::{Batch, MarkRow};
use super::{from_ms, ms, StoreError};

/// Tables, created idempotently when an instance joins a cluster.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS readings (
    site TEXT NOT NULL, zone TEXT NOT NULL, ts BIGINT NOT NULL, source_id TEXT NOT NULL, seq BIGINT NOT NULL,
    source TEXT NOT NULL, count DOUBLE PRECISION NOT NULL, area_m2 DOUBLE PRECISION NOT NULL,
    density DOUBLE PRECISION NOT NULL, confidence DOUBLE PRECISION NOT NULL, person DOUBLE PRECISION,
    vehicle DOUBLE PRECISION, inflow DOUBLE PRECISION, outflow DOUBLE PRECISION, conflict DOUBLE PRECISION,
    raw_count DOUBLE PRECISION, dwell_p50_s DOUBLE PRECISION, dwell_p90_s DOUBLE PRECISION,
    vehicle_inflow DOUBLE PRECISION, vehicle_outflow DOUBLE PRECISION,
    PRIMARY KEY (site, zone, ts, source_id, seq)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS map_series (
    site TEXT NOT NULL, zone TEXT NOT NULL, ts BIGINT NOT NULL, count DOUBLE PRECISION NOT NULL,
    density DOUBLE PRECISION NOT NULL, area_m2 DOUBLE PRECISION NOT NULL, confidence DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (site, zone, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS source_marks (
    source_id TEXT PRIMARY KEY, site TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, high BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS source_marks_site ON source_marks (site);
CREATE TABLE IF NOT EXISTS source_early (
    source_id TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (source_id, epoch, seq)
);
";

/// The partitioned tables.
const PARTITIONED: [&str; 2] = ["readings", "map_series"];

/// Advisory lock key taken while creating partitions (any constant distinct from the schema's).
const PARTITION_LOCK: i64 = 0x6367_7061_7274;

/// Advisory lock key of retention (one instance drops partitions at a time).
const RETENTION_LOCK: i64 = 0x6367_7265_7465;

/// How long retention waits for the partitioned table's lock.
const RETENTION_LOCK_TIMEOUT: &str = "2s";

const DAY_MS: i64 = 86_400_000;

fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS)
}

fn day_name(day: i64) -> String {
    let date = DateTime::<Utc>::from_timestamp(day * 86_400, 0).map(|d| d.date_naive()).unwrap_or_default();
    date.format("%Y%m%d").to_string()
}

/// Creates the day partitions of `days` not in `known` (and remembers them).
async fn ensure_partitions(pool: &Pool, known: &mut HashSet<i64>, days: HashSet<i64>) -> Result<(), StoreError> {
    let missing: Vec<i64> = days.into_iter().filter(|d| !known.contains(d)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK]).await?;
    for day in &missing {
        for table in PARTITIONED {
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {table}_d{} PARTITION OF {table} FOR VALUES FROM ({}) TO ({})",
                day_name(*day),
                day * DAY_MS,
                (day + 1) * DAY_MS
            );
            tx.batch_execute(&sql).await?;
        }
    }
    tx.commit().await?;
    known.extend(missing);
    Ok(())
}

/// Commits one batch: readings, the map's rows, early arrivals and marks in one transaction.
pub async fn write_batch(pool: &Pool, known: &mut HashSet<i64>, batch: &Batch) -> Result<(), StoreError> {
    let days = batch.readings.iter().map(|r| day_of(ms(r.ts))).chain(batch.map.iter().map(|r| day_of(ms(r.ts))));
    ensure_partitions(pool, known, days.collect()).await?;
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    if !batch.readings.is_empty() {
        let rs = &batch.readings;
        let text = |f: fn(&crowdgrid_proto::Reading) -> &str| rs.iter().map(f).collect::<Vec<&str>>();
        let num = |f: fn(&crowdgrid_proto::Reading) -> f64| rs.iter().map(f).collect::<Vec<f64>>();
        let opt = |f: fn(&crowdgrid_proto::Reading) -> Option<f64>| rs.iter().map(f).collect::<Vec<Option<f64>>>();
        let ts: Vec<i64> = rs.iter().map(|r| ms(r.ts)).collect();
        let seq: Vec<i64> = rs.iter().map(|r| r.seq as i64).collect();
        tx.execute(
            "INSERT INTO readings (site, zone, ts, source_id, seq, source, count, area_m2, density, confidence, person,
             vehicle, inflow, outflow, conflict, raw_count, dwell_p50_s, dwell_p90_s, vehicle_inflow, vehicle_outflow)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::text[],
             $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[],
             $14::float8[], $15::float8[], $16::float8[], $17::float8[], $18::float8[], $19::float8[], $20::float8[])
             ON CONFLICT DO NOTHING",
            &[
                &text(|r| &r.site),
                &text(|r| &r.zone),
                &ts,
                &text(|r| &r.source_id),
                &seq,
                &text(|r| r.source.as_str()),
                &num(|r| r.count),
                &num(|r| r.area_m2),
                &num(|r| r.density),
                &num(|r| r.confidence),
                &opt(|r| r.classes.map(|c| c.person)),
                &opt(|r| r.classes.map(|c| c.vehicle)),
                &opt(|r| r.inflow_per_min),
                &opt(|r| r.outflow_per_min),
                &opt(|r| r.conflict),
                &opt(|r| r.tracked.map(|t| t.raw_count)),
                &opt(|r| r.tracked.map(|t| t.dwell_p50_s)),
                &opt(|r| r.tracked.map(|t| t.dwell_p90_s)),
                &opt(|r| r.tracked.and_then(|t| t.vehicle_inflow_per_min)),
                &opt(|r| r.tracked.and_then(|t| t.vehicle_outflow_per_min)),
            ],
        )
        .await?;
    }
    if !batch.map.is_empty() {
        // One row per (site, zone, ts): the last of the batch wins, as SQLite's INSERT OR REPLACE.
        let mut rows: Vec<&crowdgrid_proto::Reading> = Vec::with_capacity(batch.map.len());
        let mut seen = HashSet::new();
        for r in batch.map.iter().rev() {
            if seen.insert((&r.site, &r.zone, r.ts)) {
                rows.push(r);
            }
        }
        let col = |f: fn(&crowdgrid_proto::Reading) -> f64| rows.iter().map(|r| f(r)).collect::<Vec<f64>>();
        tx.execute(
            "INSERT INTO map_series (site, zone, ts, count, density, area_m2, confidence)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::float8[], $5::float8[], $6::float8[],
             $7::float8[])
             ON CONFLICT (site, zone, ts) DO UPDATE SET count = excluded.count, density = excluded.density,
             area_m2 = excluded.area_m2, confidence = excluded.confidence",
            &[
                &rows.iter().map(|r| r.site.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| r.zone.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|r| ms(r.ts)).collect::<Vec<_>>(),
                &col(|r| r.count),
                &col(|r| r.density),
                &col(|r| r.area_m2),
                &col(|r| r.confidence),
            ],
        )
        .await?;
    }
    if !batch.early.is_empty() {
        let (sources, epochs, seqs) = columns3(batch.early.iter().map(|(s, e, q)| (s.as_str(), *e as i64, *q as i64)));
        tx.execute(
            "INSERT INTO source_early (source_id, epoch, seq)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[]) ON CONFLICT DO NOTHING",
            &[&sources, &epochs, &seqs],
        )
        .await?;
    }
    // A merged batch holds a source's marks in order: the last one stands (one row per source, as an upsert of
    // one statement needs). Its early arrivals at or below it are dropped when any of its marks had some above.
    let mut last: HashMap<&str, &MarkRow> = HashMap::new();
    let mut gapped: HashSet<&str> = HashSet::new();
    for m in &batch.marks {
        last.insert(&m.source_id, m);
        if m.high > m.low {
            gapped.insert(&m.source_id);
        }
    }
    if !last.is_empty() {
        let marks: Vec<&MarkRow> = last.values().copied().collect();
        let (epochs, lows, highs) = columns3(marks.iter().map(|m| (m.epoch as i64, m.low as i64, m.high as i64)));
        tx.execute(
            "INSERT INTO source_marks (source_id, site, epoch, seq, high)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[])
             ON CONFLICT (source_id) DO UPDATE SET site = excluded.site, epoch = excluded.epoch, seq = excluded.seq,
             high = excluded.high
             WHERE (source_marks.epoch, source_marks.seq, source_marks.high) <= (excluded.epoch, excluded.seq, excluded.high)",
            &[
                &marks.iter().map(|m| m.source_id.as_str()).collect::<Vec<_>>(),
                &marks.iter().map(|m| m.site.as_str()).collect::<Vec<_>>(),
                &epochs,
                &lows,
                &highs,
            ],
        )
        .await?;
        let settled = marks.iter().filter(|m| !batch.early.is_empty() || gapped.contains(m.source_id.as_str()));
        let (sources, epochs, lows) = columns3(settled.map(|m| (m.source_id.as_str(), m.epoch as i64, m.low as i64)));
        if !sources.is_empty() {
            tx.execute(
                "DELETE FROM source_early e USING UNNEST($1::text[], $2::int8[], $3::int8[]) AS m(source_id, epoch, seq)
                 WHERE e.source_id = m.source_id AND (e.epoch <> m.epoch OR e.seq <= m.seq)",
                &[&sources, &epochs, &lows],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Three columns out of rows of three.
fn columns3<A, B, C>(rows: impl Iterator<Item = (A, B, C)>) -> (Vec<A>, Vec<B>, Vec<C>) {
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (x, y, z) in rows {
        a.push(x);
        b.push(y);
        c.push(z);
    }
    (a, b, c)
}

/// The sequence state of `site`'s sources (every site's with `None`): marks and early arrivals.
pub async fn load_marks(pool: &Pool, site: Option<&str>) -> Result<Vec<(MarkRow, Vec<u64>)>, StoreError> {
    let c = pool.get().await?;
    let rows = c
        .query(
            "SELECT m.source_id, m.site, m.epoch, m.seq, m.high,
             COALESCE(ARRAY(SELECT e.seq FROM source_early e WHERE e.source_id = m.source_id AND e.epoch = m.epoch
             AND e.seq > m.seq ORDER BY e.seq), '{}')
             FROM source_marks m WHERE $1::text IS NULL OR m.site = $1",
            &[&site],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mark = MarkRow {
            source_id: r.try_get(0)?,
            site: r.try_get(1)?,
            epoch: r.try_get::<_, i64>(2)? as u64,
            low: r.try_get::<_, i64>(3)? as u64,
            high: r.try_get::<_, i64>(4)? as u64,
        };
        let early: Vec<i64> = r.try_get(5)?;
        out.push((mark, early.into_iter().map(|s| s as u64).collect()));
    }
    Ok(out)
}

/// One zone's readings and map rows in a time range, oldest first (as SQLite's [`super::series::SeriesReader`]).
pub async fn series(pool: &Pool, q: &SeriesQuery) -> Result<Vec<Point>, StoreError> {
    let c = pool.get().await?;
    let rows = c
        .query(
            "SELECT ts, source_id, source, seq, count, density, confidence, person, vehicle, inflow, outflow,
             conflict, raw_count, dwell_p50_s, dwell_p90_s, vehicle_inflow, vehicle_outflow
             FROM readings WHERE site = $1 AND zone = $2 AND ts >= $3 AND ts <= $4
             AND ($5::text IS NULL OR source = $5 OR source_id = $5)
             UNION ALL
             SELECT ts, $7::text, 'fused', 0::int8, count, density, confidence, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL, NULL, NULL FROM map_series
             WHERE site = $1 AND zone = $2 AND ts >= $3 AND ts <= $4 AND ($5::text IS NULL OR $5 IN ('fused', $7))
             ORDER BY 1, 2, 4 LIMIT $6",
            &[&q.site, &q.zone, &ms(q.from), &ms(q.to), &q.source, &(q.limit as i64), &MAP_SERIES],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Point {
                ts: from_ms(r.try_get(0)?),
                source_id: r.try_get(1)?,
                source: r.try_get(2)?,
                seq: r.try_get(3)?,
                count: r.try_get(4)?,
                density: r.try_get(5)?,
                confidence: r.try_get(6)?,
                person: r.try_get(7)?,
                vehicle: r.try_get(8)?,
                inflow_per_min: r.try_get(9)?,
                outflow_per_min: r.try_get(10)?,
                conflict: r.try_get(11)?,
                raw_count: r.try_get(12)?,
                dwell_p50_s: r.try_get(13)?,
                dwell_p90_s: r.try_get(14)?,
                vehicle_inflow_per_min: r.try_get(15)?,
                vehicle_outflow_per_min: r.try_get(16)?,
            })
        })
        .collect()
}

/// [`crate::backtest::source::each`] from PostgreSQL: every reading in `range` but edges' own `fused` ones,
/// oldest first, streamed row by row (a year of readings never sits in memory).
pub async fn each(
    pool: &Pool,
    range: &crate::backtest::source::Range,
    mut f: impl FnMut(crowdgrid_proto::Reading),
) -> Result<u64, StoreError> {
    use futures::StreamExt;
    let c = pool.get().await?;
    let (from, to) = (ms(range.from), ms(range.to));
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&from, &to, &range.site];
    let rows = c
        .query_raw(
            "SELECT site, zone, ts, source_id, seq, source, count, area_m2, density, confidence, person, vehicle,
             inflow, outflow, conflict FROM readings WHERE ts >= $1 AND ts <= $2 AND ($3::text IS NULL OR site = $3)
             AND source <> 'fused' ORDER BY ts, source_id, seq",
            params,
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
    let mut skipped = 0;
    while let Some(row) = rows.next().await {
        let row = row?;
        let stored = crate::backtest::source::StoredRow {
            site: row.try_get(0)?,
            zone: row.try_get(1)?,
            ts: row.try_get(2)?,
            source_id: row.try_get(3)?,
            seq: row.try_get(4)?,
            kind: row.try_get(5)?,
            count: row.try_get(6)?,
            area_m2: row.try_get(7)?,
            density: row.try_get(8)?,
            confidence: row.try_get(9)?,
            person: row.try_get(10)?,
            vehicle: row.try_get(11)?,
            inflow: row.try_get(12)?,
            outflow: row.try_get(13)?,
            conflict: row.try_get(14)?,
        };
        match stored.reading() {
            Some(r) => f(r),
            None => skipped += 1,
        }
    }
    Ok(skipped)
}

/// Whether the server answers and the series table is there.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    pool.get().await?.query_opt("SELECT 1 FROM readings LIMIT 1", &[]).await?;
    Ok(())
}

/// Drops the day partitions wholly older than `days` days. One instance at a time does it (the others skip), and
/// it gives up after [`RETENTION_LOCK_TIMEOUT`] rather than hold the writers up behind a long query: the next hour
/// tries again.
pub async fn apply_retention(pool: &Pool, days: u32) -> Result<usize, StoreError> {
    let cutoff = day_of(ms(Utc::now())) - i64::from(days);
    let mut c = pool.get().await?;
    let c = c.transaction().await?;
    let mine: bool = c.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK]).await?.try_get(0)?;
    if !mine {
        return Ok(0);
    }
    c.batch_execute(&format!("SET LOCAL lock_timeout = '{RETENTION_LOCK_TIMEOUT}'")).await?;
    let mut dropped = 0;
    for table in PARTITIONED {
        let rows = c
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 JOIN pg_class p ON p.oid = i.inhparent
                 WHERE p.relname = $1 AND p.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
                &[&table],
            )
            .await?;
        for r in rows {
            let name: String = r.try_get(0)?;
            let Some(date) = name.strip_prefix(&format!("{table}_d")) else { continue };
            let Ok(date) = NaiveDate::parse_from_str(date, "%Y%m%d") else { continue };
            let day = date.and_hms_opt(0, 0, 0).map(|d| d.and_utc().timestamp() / 86_400).unwrap_or(i64::MAX);
            if day < cutoff {
                c.batch_execute(&format!("DROP TABLE IF EXISTS {name}")).await?;
                dropped += 1;
            }
        }
    }
    c.commit().await?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(source: &str, epoch: u64, low: u64, high: u64) -> MarkRow {
        MarkRow { source_id: source.into(), site: "s".into(), epoch, low, high }
    }

    /// Marks and early arrivals of many sources go in one statement each; a merged batch's last mark of a source
    /// stands, early arrivals at or below it go, and a late batch never moves a mark back.
    #[tokio::test]
    async fn marks_and_early_arrivals_round_trip() {
        let schema = crate::store::pg_schema::TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG");
        let pool = crate::store::pg_schema::connect(&schema.url()).await.unwrap();
        crate::store::pg_schema::apply(&pool, SCHEMA).await.unwrap();
        let mut known = HashSet::new();
        let first = Batch {
            marks: vec![mark("e/a", 1, 3, 7), mark("e/b", 1, 5, 5), mark("e/a", 1, 4, 7)],
            early: vec![("e/a".into(), 1, 6), ("e/a".into(), 1, 7)],
            ..Batch::default()
        };
        write_batch(&pool, &mut known, &first).await.unwrap();
        let mut got = load_marks(&pool, Some("s")).await.unwrap();
        got.sort_by(|x, y| x.0.source_id.cmp(&y.0.source_id));
        assert_eq!(got, vec![(mark("e/a", 1, 4, 7), vec![6, 7]), (mark("e/b", 1, 5, 5), vec![])]);
        // The gap filled up to 6: 6 is no longer early; a stale mark of e/b from a late batch changes nothing.
        let second = Batch { marks: vec![mark("e/a", 1, 6, 7), mark("e/b", 1, 2, 2)], ..Batch::default() };
        write_batch(&pool, &mut known, &second).await.unwrap();
        let mut got = load_marks(&pool, None).await.unwrap();
        got.sort_by(|x, y| x.0.source_id.cmp(&y.0.source_id));
        assert_eq!(got, vec![(mark("e/a", 1, 6, 7), vec![7]), (mark("e/b", 1, 5, 5), vec![])]);
        let rows: i64 =
            pool.get().await.unwrap().query_one("SELECT COUNT(*) FROM source_early", &[]).await.unwrap().get(0);
        assert_eq!(rows, 1, "6 was deleted once settled");
        schema.drop().await.unwrap();
    }

    #[test]
    fn days_are_utc_days() {
        let ts = DateTime::parse_from_rfc3339("2026-11-30T23:59:59.999Z").unwrap().with_timezone(&Utc);
        assert_eq!(day_name(day_of(ms(ts))), "20261130");
        assert_eq!(day_name(day_of(ms(ts) + 1)), "20261201");
        assert_eq!(day_name(day_of(-1)), "19691231", "before the epoch rounds down");
    }
}
