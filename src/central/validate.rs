//! Turning an MQTT publish into a trusted [`Reading`], or a named rejection. Pure and synchronous.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crowdgrid_proto::reading::Limits;
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{topic, Reading};

/// A reading may observe at most this multiple of its zone's area.
pub const MAX_AREA_RATIO: f64 = 3.0;

/// Why a payload was not accepted; `reason` is the metric label.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Stable label (`oversized`, `malformed`, `unknown_zone`, ... or a [`crowdgrid_proto::ReadingError`] reason).
    pub reason: &'static str,
    /// Human-readable detail for the log.
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// Checks payloads against the configured sites and limits.
#[derive(Debug, Clone)]
pub struct Validator {
    prefix: String,
    sites: HashMap<String, Arc<Site>>,
    limits: Limits,
    max_payload: usize,
}

impl Validator {
    /// A validator for `sites`.
    pub fn new(prefix: &str, sites: &[Arc<Site>], limits: Limits, max_payload: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            sites: sites.iter().map(|s| (s.config.id.clone(), s.clone())).collect(),
            limits,
            max_payload,
        }
    }

    /// Validates a publish on a reading topic.
    pub fn reading(&self, topic_name: &str, payload: &[u8], now: DateTime<Utc>) -> Result<Reading, Rejection> {
        if payload.len() > self.max_payload {
            return Err(Rejection::new(
                "oversized",
                format!("{} bytes on {topic_name} (limit {})", payload.len(), self.max_payload),
            ));
        }
        let (site_id, zone_id) = topic::parse_reading(&self.prefix, topic_name)
            .ok_or_else(|| Rejection::new("topic_mismatch", format!("{topic_name} is not a reading topic")))?;
        let mut reading: Reading =
            serde_json::from_slice(payload).map_err(|e| Rejection::new("malformed", format!("{topic_name}: {e}")))?;
        // The store keeps milliseconds: the rules judge the time as stored, so a backtest of the stored readings
        // sees exactly what the live engine saw (a `for` of 1 s measured on nanoseconds fired one reading later).
        reading.ts = chrono::SubsecRound::trunc_subsecs(reading.ts, 3);
        if reading.site != site_id || reading.zone != zone_id {
            return Err(Rejection::new(
                "topic_mismatch",
                format!("{topic_name} carries a reading for {}/{}", reading.site, reading.zone),
            ));
        }
        let site = self
            .sites
            .get(&site_id)
            .ok_or_else(|| Rejection::new("unknown_zone", format!("unknown site {site_id:?}")))?;
        let Some(zone) = site.zone(&zone_id) else {
            return Err(Rejection::new("unknown_zone", format!("unknown zone {zone_id:?} in site {site_id:?}")));
        };
        // A source observes the zone or a part of it; an area far beyond the zone's is a wrong calibration or a
        // forged reading, and would be taken as a density over ground the zone does not have.
        if reading.area_m2.is_finite() && reading.area_m2 > MAX_AREA_RATIO * zone.area_m2 {
            return Err(Rejection::new(
                "area_mismatch",
                format!(
                    "{topic_name}: area_m2 {:.0} is over {MAX_AREA_RATIO} × the zone's {:.0} m²",
                    reading.area_m2, zone.area_m2
                ),
            ));
        }
        reading.check(now, &self.limits).map_err(|e| Rejection::new(e.reason(), format!("{topic_name}: {e}")))?;
        Ok(reading)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crowdgrid_proto::SourceKind;
    use std::path::Path;

    pub(crate) fn test_site() -> Arc<Site> {
        let text = format!(
            r#"{head}
[[workers]]
id = "w1"
name = "Worker One"
grids = ["g"]
[[workers]]
id = "w2"
name = "Worker Two"
grids = ["g"]
[[zones]]
id = "z"
name = "Z"
grid = "g"
kind = "square"
geometry = {square}
"#,
            head = crowdgrid_proto::testing::site_head("t"),
            square = crowdgrid_proto::testing::SQUARE
        );
        let cfg = toml::from_str(&text).expect("test site parses");
        Arc::new(Site::from_config(cfg, Path::new("t.toml")).expect("test site is valid"))
    }

    fn validator() -> Validator {
        Validator::new("crowdgrid/v1", &[test_site()], Limits::default(), 1024)
    }

    fn payload(now: DateTime<Utc>, zone: &str) -> Vec<u8> {
        let r = Reading::new("t", zone, SourceKind::Camera, "cam", now, 10.0, 100.0, 0.9);
        serde_json::to_vec(&r).expect("serialises")
    }

    #[test]
    fn accepts_a_good_reading() {
        let now = Utc::now();
        let r = validator().reading("crowdgrid/v1/t/z/reading", &payload(now, "z"), now).unwrap();
        assert_eq!(r.density, 0.1);
    }

    #[test]
    fn names_each_rejection() {
        let now = Utc::now();
        let v = validator();
        let reason = |t: &str, p: &[u8]| v.reading(t, p, now).unwrap_err().reason;
        assert_eq!(reason("crowdgrid/v1/t/z/reading", &[b' '; 2000]), "oversized");
        assert_eq!(reason("crowdgrid/v1/t/z/reading", b"{not json"), "malformed");
        assert_eq!(reason("crowdgrid/v1/t/z/reading", b"{\"site\":\"t\"}"), "malformed");
        assert_eq!(reason("crowdgrid/v1/t/other/reading", &payload(now, "z")), "topic_mismatch");
        assert_eq!(reason("crowdgrid/v1/t/nope/reading", &payload(now, "nope")), "unknown_zone");
        let bad = String::from_utf8(payload(now, "z")).unwrap().replace("\"count\":10.0", "\"count\":-10.0");
        assert_eq!(reason("crowdgrid/v1/t/z/reading", bad.as_bytes()), "negative");
        let nan = String::from_utf8(payload(now, "z")).unwrap().replace("\"count\":10.0", "\"count\":NaN");
        assert_eq!(reason("crowdgrid/v1/t/z/reading", nan.as_bytes()), "malformed");
    }

    #[test]
    fn an_area_far_beyond_the_zone_is_refused_and_a_part_of_it_accepted() {
        let now = Utc::now();
        let v = validator();
        let area = test_site().zone("z").unwrap().area_m2;
        let with_area = |a: f64| {
            let r = Reading::new("t", "z", SourceKind::Camera, "cam", now, a * 0.1, a, 0.9);
            serde_json::to_vec(&r).unwrap()
        };
        assert_eq!(
            v.reading("crowdgrid/v1/t/z/reading", &with_area(area * 3.5), now).unwrap_err().reason,
            "area_mismatch"
        );
        v.reading("crowdgrid/v1/t/z/reading", &with_area(area * 2.9), now).unwrap();
        v.reading("crowdgrid/v1/t/z/reading", &with_area(area * 0.02), now).unwrap();
    }
}
