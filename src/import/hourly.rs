//! Wide hourly counts → readings. Each cell is the people counted passing one sensor in one local hour; it becomes
//! one reading of the sensor's zone at the end of that hour (when the count is complete), with
//! `inflow_per_min` = count / 60 and, by Little's law, `count` (people present) = count per second × dwell.
//!
//! What real files hold, and what happens to it (every case is counted in the [`Report`]):
//! - an empty cell (the sensor was down): no reading; counted as missing for that sensor;
//! - a local hour that does not exist (the spring-forward hour): the row is refused;
//! - a local hour that happens twice (the fall-back hour): taken as the first (daylight-saving) one;
//! - a row whose sensor hours were already read (a mis-dated row): the second is refused as a duplicate;
//! - a row that does not parse (date, hour, field count) or a negative/non-numeric cell: refused, with its line.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Reading, SourceKind};
use serde::Serialize;

use super::mapping::Mapping;

/// The source id prefix of imported readings (`{SOURCE_EDGE}/{zone}`).
pub const SOURCE_EDGE: &str = "import";

/// What an import found.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Data rows read.
    pub rows: u64,
    /// Readings made.
    pub readings: u64,
    /// Empty cells per mapped sensor.
    pub missing: BTreeMap<String, u64>,
    /// Columns not mapped to a zone (skipped).
    pub unmapped: Vec<String>,
    /// Rows at a local hour that does not exist (spring forward): `(line, local time)`.
    pub nonexistent: Vec<(u64, String)>,
    /// Rows at a local hour that happens twice (fall back), taken as the first: `(line, local time)`.
    pub ambiguous: Vec<(u64, String)>,
    /// Rows whose hour was already read (a mis-dated row): `(line, end of the hour, UTC)`.
    pub duplicates: Vec<(u64, String)>,
    /// Rows or cells refused: `(line, why)`.
    pub bad: Vec<(u64, String)>,
    /// Stretches of more than an hour without a row, in UTC: `(last hour before, first hour after)` (at most
    /// 100 listed; `gaps_total` counts them all). Daylight saving makes none: the hours are consecutive in UTC.
    pub gaps: Vec<(String, String)>,
    /// Every such stretch.
    pub gaps_total: u64,
    /// First and last reading time.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// `H:00-H:59` → H.
fn hour_of(s: &str) -> Option<u32> {
    let (a, b) = s.trim().split_once('-')?;
    let h: u32 = a.strip_suffix(":00")?.parse().ok()?;
    let h2: u32 = b.strip_suffix(":59")?.parse().ok()?;
    (h < 24 && h == h2).then_some(h)
}

/// Reads the CSV text; readings come out in file order per sensor (sequence numbers from 1).
pub fn read(text: &str, m: &Mapping, tz: Tz, site: &Site) -> (Vec<Reading>, Report) {
    let mut report = Report::default();
    let mut out = Vec::new();
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            report.bad.push((1, format!("no header: {e}")));
            return (out, report);
        }
    };
    let (Some(di), Some(hi)) = (header.iter().position(|h| h == "date"), header.iter().position(|h| h == "hour"))
    else {
        report.bad.push((1, "the header needs `date` and `hour` columns".into()));
        return (out, report);
    };
    let mut columns: Vec<(usize, &str, f64)> = Vec::new();
    for (i, h) in header.iter().enumerate() {
        if i == di || i == hi || h == "year" {
            continue;
        }
        match m.sensors.get(h) {
            Some(zone) => {
                let area = site.zone(zone).map_or(1.0, |z| z.area_m2);
                columns.push((i, h.as_str(), area));
                report.missing.insert(h.clone(), 0);
            }
            None => report.unmapped.push(h.clone()),
        }
    }
    let mut seen: HashSet<i64> = HashSet::new();
    let mut seq: BTreeMap<usize, u64> = BTreeMap::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n as u64 + 2;
        report.rows += 1;
        let rec = match rec {
            Ok(r) if r.len() == header.len() => r,
            Ok(r) => {
                report.bad.push((line, format!("{} fields where the header has {}", r.len(), header.len())));
                continue;
            }
            Err(e) => {
                report.bad.push((line, e.to_string()));
                continue;
            }
        };
        let (Some(date), Some(hour)) = (NaiveDate::parse_from_str(rec[di].trim(), "%Y-%m-%d").ok(), hour_of(&rec[hi]))
        else {
            report.bad.push((line, format!("date {:?} / hour {:?} do not parse", &rec[di], &rec[hi])));
            continue;
        };
        let day = if hour < m.day_starts_at { date + Duration::days(1) } else { date };
        let local = day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default());
        let start = match tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => t,
            chrono::LocalResult::Ambiguous(first, _) => {
                report.ambiguous.push((line, local.to_string()));
                first
            }
            chrono::LocalResult::None => {
                report.nonexistent.push((line, local.to_string()));
                continue;
            }
        };
        let ts = start.with_timezone(&Utc) + Duration::hours(1);
        if !seen.insert(ts.timestamp()) {
            report.duplicates.push((line, ts.to_rfc3339()));
            continue;
        }
        for &(i, sensor, area) in &columns {
            let cell = rec[i].trim();
            if cell.is_empty() {
                *report.missing.entry(sensor.to_string()).or_default() += 1;
                continue;
            }
            let flow = match cell.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => v,
                _ => {
                    report.bad.push((line, format!("{sensor}: {cell:?} is not a count")));
                    continue;
                }
            };
            let zone = &m.sensors[sensor];
            let people = flow / 3600.0 * m.dwell_s;
            let s = seq.entry(i).or_default();
            *s += 1;
            let mut r = Reading::new(
                &site.config.id,
                zone,
                SourceKind::Gate,
                &format!("{SOURCE_EDGE}/{zone}"),
                ts,
                people,
                area,
                m.confidence,
            );
            r.seq = *s;
            r.inflow_per_min = Some(flow / 60.0);
            report.span = Some(report.span.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
            out.push(r);
        }
    }
    let mut hours: Vec<i64> = seen.into_iter().collect();
    hours.sort_unstable();
    for w in hours.windows(2).filter(|w| w[1] - w[0] > 3600) {
        report.gaps_total += 1;
        if report.gaps.len() < 100 {
            let at = |s: i64| DateTime::from_timestamp(s, 0).map_or_else(String::new, |t| t.to_rfc3339());
            report.gaps.push((at(w[0]), at(w[1])));
        }
    }
    report.readings = out.len() as u64;
    (out, report)
}
