//! Base-station source: an operator's per-cell connected-device counts turned into people per zone.
//!
//! `people(zone) = Σ_cells devices_c × weight_{c,zone} / market_share / devices_per_person` over the
//! cells whose latest count is fresh (within `stale_after_s`); the reading's timestamp is the newest
//! contributing count's.
//!
//! When some of a zone's cells are stale, the fresh ones see only part of it: the reading's observed area is the
//! zone's area × `Σ fresh weights / Σ all weights` of the zone, so its density is that of the part observed
//! rather than the zone's people shrunk to the cells left, and the centre's fusion weighs it by that coverage
//! (docs/FUSION.md).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Reading, SourceKind};
use serde::{Deserialize, Serialize};

use super::{
    check_ts, check_value, start_records, zone_area, Estimator, Ids, Rejection, SourceContext, SourceError, Started,
};
use crate::config::BaseStationConfig;
use crate::input::Timestamped;

/// One count from the operator: CSV header `ts,cell,devices`, or a JSON object with those fields.
/// `cell` must be a string in JSON (CSV fields are taken as written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// When the count was taken (RFC 3339).
    pub ts: DateTime<Utc>,
    /// Cell id as the operator reports it.
    pub cell: String,
    /// Connected devices in the cell.
    pub devices: f64,
}

impl Timestamped for CellRecord {
    fn ts(&self) -> DateTime<Utc> {
        self.ts
    }
    fn set_ts(&mut self, ts: DateTime<Utc>) {
        self.ts = ts;
    }
}

/// One zone's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneEstimate {
    /// Zone id.
    pub zone: String,
    /// Estimated people.
    pub people: f64,
    /// Timestamp of the newest cell count used.
    pub ts: DateTime<Utc>,
    /// Share of the zone's cell weight that is fresh (1 when every cell covering it is).
    pub coverage: f64,
}

/// Latest count per cell and the cell → zone model; pure and synchronous.
#[derive(Debug, Clone)]
pub struct CellModel {
    ids: Ids,
    cells: HashMap<String, Vec<(String, f64)>>,
    areas: BTreeMap<String, f64>,
    scale: f64,
    stale_after: chrono::Duration,
    confidence: f64,
    latest: HashMap<String, (DateTime<Utc>, f64)>,
}

impl CellModel {
    /// Builds the model for `cfg`, checking every zone against `site`.
    pub fn new(cfg: &BaseStationConfig, site: &Site, edge_id: &str) -> Result<Self, SourceError> {
        let ids = Ids::new(site, edge_id, &cfg.id, SourceKind::BaseStation);
        let bad = |message: &str| SourceError::Config { source_id: ids.source_id.clone(), message: message.into() };
        if !(cfg.market_share.is_finite() && cfg.market_share > 0.0 && cfg.market_share <= 1.0) {
            return Err(bad("market_share must be in (0, 1]"));
        }
        if !(cfg.devices_per_person.is_finite() && cfg.devices_per_person > 0.0) {
            return Err(bad("devices_per_person must be positive"));
        }
        let mut cells = HashMap::new();
        let mut areas = BTreeMap::new();
        for c in &cfg.cells {
            let mut weights = Vec::new();
            for (zone, w) in &c.zones {
                areas.insert(zone.clone(), zone_area(site, zone, &ids.source_id)?);
                weights.push((zone.clone(), *w));
            }
            cells.insert(c.cell.clone(), weights);
        }
        Ok(Self {
            cells,
            areas,
            scale: 1.0 / (cfg.market_share * cfg.devices_per_person),
            stale_after: chrono::Duration::seconds(cfg.stale_after_s.min(i64::MAX as u64 / 1000) as i64),
            confidence: cfg.confidence,
            latest: HashMap::new(),
            ids,
        })
    }

    /// Checks a record and, if good, keeps it as its cell's latest count (unless a newer one is held).
    pub fn update(&mut self, rec: CellRecord, now: DateTime<Utc>) -> Result<(), Rejection> {
        check_value("devices", rec.devices)?;
        if !self.cells.contains_key(&rec.cell) {
            return Err(Rejection::new("unknown_cell", format!("cell {:?}", rec.cell)));
        }
        check_ts(rec.ts, now, self.stale_after)?;
        match self.latest.get(&rec.cell) {
            Some((ts, _)) if *ts > rec.ts => {}
            _ => {
                self.latest.insert(rec.cell, (rec.ts, rec.devices));
            }
        }
        Ok(())
    }

    /// People per zone from the fresh cells, for every zone with at least one.
    pub fn estimates(&self, now: DateTime<Utc>) -> Vec<ZoneEstimate> {
        let mut acc: BTreeMap<&str, (f64, DateTime<Utc>, f64)> = BTreeMap::new();
        for (cell, (ts, devices)) in &self.latest {
            if now - *ts > self.stale_after {
                continue;
            }
            for (zone, w) in self.cells.get(cell).into_iter().flatten() {
                let e = acc.entry(zone.as_str()).or_insert((0.0, *ts, 0.0));
                e.0 += devices * w * self.scale;
                e.1 = e.1.max(*ts);
                e.2 += w;
            }
        }
        acc.into_iter()
            .map(|(zone, (people, ts, fresh_w))| {
                let all_w: f64 = self.cells.values().flatten().filter(|(z, _)| z == zone).map(|(_, w)| w).sum();
                let coverage = if all_w > 0.0 { (fresh_w / all_w).min(1.0) } else { 1.0 };
                ZoneEstimate { zone: zone.to_string(), people, ts, coverage }
            })
            .collect()
    }
}

impl Estimator for CellModel {
    type Record = CellRecord;

    fn apply(&mut self, rec: CellRecord, now: DateTime<Utc>) -> Result<Option<Rejection>, Rejection> {
        self.update(rec, now).map(|()| None)
    }

    fn readings(&mut self, now: DateTime<Utc>) -> Vec<Reading> {
        self.estimates(now)
            .into_iter()
            .filter_map(|e| {
                let area = *self.areas.get(&e.zone)? * e.coverage;
                (area > 0.0).then(|| self.ids.reading(&e.zone, e.ts, e.people, area, self.confidence))
            })
            .collect()
    }
}

/// Starts a base-station source.
pub async fn start(cfg: &BaseStationConfig, cx: SourceContext) -> Result<Started, SourceError> {
    let model = CellModel::new(cfg, &cx.site, &cx.edge_id)?;
    let ids = model.ids.clone();
    start_records(model, ids, &cfg.input, cfg.report_interval_ms, cx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing;

    fn config() -> BaseStationConfig {
        toml::from_str(
            r#"id = "cmcc"
market_share = 0.5
devices_per_person = 1.0
stale_after_s = 600
input = { kind = "http", url = "http://127.0.0.1:1/x" }
cells = [
  { cell = "A", zones = { plaza = 0.5, beach = 0.25 } },
  { cell = "B", zones = { plaza = 0.5 } },
]"#,
        )
        .unwrap()
    }

    fn rec(ts: DateTime<Utc>, cell: &str, devices: f64) -> CellRecord {
        CellRecord { ts, cell: cell.into(), devices }
    }

    #[test]
    fn worked_zone_estimate() {
        let site = testing::site();
        let mut m = CellModel::new(&config(), &site, "edge-1").unwrap();
        let now = Utc::now();
        let t1 = now - chrono::Duration::seconds(30);
        // 1000 devices × weight 0.5 / share 0.5 / 1.0 device per person = 1000 people.
        m.update(rec(t1, "A", 1000.0), now).unwrap();
        let est = m.estimates(now);
        assert_eq!(est[0], ZoneEstimate { zone: "beach".into(), people: 500.0, ts: t1, coverage: 1.0 });
        // The plaza's cells are A (0.5) and B (0.5): with only A heard from, half of it is observed.
        assert_eq!(est[1], ZoneEstimate { zone: "plaza".into(), people: 1000.0, ts: t1, coverage: 0.5 });
        let plaza = m.readings(now).into_iter().find(|r| r.zone == "plaza").unwrap();
        assert_eq!((plaza.count, plaza.area_m2, plaza.density), (1000.0, 500.0, 2.0), "density of the part observed");
        // Cell B adds 200 × 0.5 / 0.5 = 200 to the plaza; its newer ts becomes the reading's.
        m.update(rec(now, "B", 200.0), now).unwrap();
        // An older count for A does not replace the newer one.
        m.update(rec(t1 - chrono::Duration::seconds(1), "A", 1.0), now).unwrap();
        let rs = m.readings(now);
        let plaza = rs.iter().find(|r| r.zone == "plaza").unwrap();
        assert_eq!((plaza.count, plaza.area_m2, plaza.density, plaza.ts), (1200.0, 1000.0, 1.2, now));
        assert_eq!((plaza.source_id.as_str(), plaza.site.as_str(), plaza.seq), ("edge-1/cmcc", "west-lake", 0));
        assert_eq!(plaza.confidence, 0.6);
        // Ten minutes later cell A is stale: only B counts.
        let later = t1 + chrono::Duration::seconds(601);
        let est = m.estimates(later);
        assert_eq!(est.len(), 1);
        assert_eq!((est[0].people, est[0].coverage), (200.0, 0.5));
        // A stale cell no longer shrinks the zone's density (on main: 1.2 → 0.2 at the same confidence): B's 200
        // people are the density of the half of the plaza it covers, 0.4/m², weighted by 0.5 at the centre.
        let plaza = m.readings(later).into_iter().find(|r| r.zone == "plaza").unwrap();
        assert_eq!((plaza.count, plaza.area_m2, plaza.density), (200.0, 500.0, 0.4));
    }

    #[test]
    fn bad_records_are_named() {
        let site = testing::site();
        let mut m = CellModel::new(&config(), &site, "edge-1").unwrap();
        let now = Utc::now();
        let reason = |m: &mut CellModel, r| m.update(r, now).unwrap_err().reason;
        assert_eq!(reason(&mut m, rec(now, "A", -3.0)), "negative");
        assert_eq!(reason(&mut m, rec(now, "A", f64::INFINITY)), "not_finite");
        assert_eq!(reason(&mut m, rec(now, "Z", 3.0)), "unknown_cell");
        assert_eq!(reason(&mut m, rec(now - chrono::Duration::seconds(700), "A", 3.0)), "stale");
        assert_eq!(reason(&mut m, rec(now + chrono::Duration::minutes(6), "A", 3.0)), "future");
        assert!(m.estimates(now).is_empty());
    }

    #[test]
    fn unknown_zone_is_refused() {
        let mut cfg = config();
        cfg.cells[0].zones.insert("nowhere".into(), 0.1);
        let err = CellModel::new(&cfg, &testing::site(), "e").unwrap_err();
        assert!(matches!(err, SourceError::UnknownZone { .. }), "{err}");
    }

    #[test]
    fn records_parse_from_csv_and_json() {
        let (r, e) = crate::input::records::parse_auto::<CellRecord>(
            None,
            b"ts,cell,devices\n2026-05-01T08:00:00+08:00,0042,17\n2026-05-01T08:00:00+08:00,43,NaN\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r[0].cell, "0042");
        assert_eq!(r[0].ts.to_rfc3339(), "2026-05-01T00:00:00+00:00");
        assert!(r[1].devices.is_nan());
        let (r, e) = crate::input::records::parse_auto::<CellRecord>(
            None,
            br#"{"ts":"2026-05-01T00:00:00Z","cell":"A","devices":5}"#,
        );
        assert_eq!((r.len(), e.len()), (1, 0));
    }
}
