//! How a counts file maps onto a site (`config/<site>/<dataset>.toml`):
//!
//! ```toml
//! site = "auckland-cbd"
//! timezone = "Pacific/Auckland"  # the file's clock: local time, with daylight saving
//! day_starts_at = 6              # the file's `date` is a counting day from 06:00: hours 0–5 are the next day
//! dwell_s = 40                   # how long a passer-by is in the zone (Little's law: people = flow × dwell)
//! confidence = 0.9
//! [sensors]                      # column → zone; other columns are reported and skipped
//! "45 Queen Street" = "queen-st-lower"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use chrono_tz::Tz;
use crowdgrid_proto::config::{load_toml, ConfigError, Problems};
use crowdgrid_proto::site::Site;
use serde::Deserialize;

/// A counts file's mapping onto a site.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Site id.
    pub site: String,
    /// IANA time zone of the file's clock (e.g. `Pacific/Auckland`).
    pub timezone: String,
    /// Hour at which the file's `date` starts (hours before it belong to the next calendar day).
    #[serde(default)]
    pub day_starts_at: u32,
    /// Seconds a counted pedestrian spends in the zone (people present = flow per second × dwell).
    pub dwell_s: f64,
    /// Confidence of the imported readings.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Sensor column → zone id.
    pub sensors: BTreeMap<String, String>,
}

fn default_confidence() -> f64 {
    0.9
}

impl Mapping {
    /// Loads the mapping and checks it against `site`, every problem at once.
    pub fn load(path: &Path, site: &Site) -> Result<(Mapping, Tz), ConfigError> {
        let m: Mapping = load_toml(path)?;
        let mut p = Problems::new();
        if m.site != site.config.id {
            p.push("site", format!("{:?} is not the site {:?}", m.site, site.config.id));
        }
        let tz = m.timezone.parse::<Tz>().map_err(|e| p.push("timezone", e)).ok();
        if m.day_starts_at > 23 {
            p.push("day_starts_at", "must be an hour, 0..=23");
        }
        if !(m.dwell_s.is_finite() && m.dwell_s > 0.0 && m.dwell_s <= 3600.0) {
            p.push("dwell_s", "must be in (0, 3600] seconds");
        }
        if !(m.confidence.is_finite() && m.confidence > 0.0 && m.confidence <= 1.0) {
            p.push("confidence", "must be in (0, 1]");
        }
        if m.sensors.is_empty() {
            p.push("sensors", "map at least one column to a zone");
        }
        for (sensor, zone) in &m.sensors {
            if site.zone(zone).is_none() {
                p.push(format!("sensors.{sensor:?}"), format!("unknown zone {zone:?} in site {:?}", site.config.id));
            }
        }
        p.into_result(path)?;
        match tz {
            Some(tz) => Ok((m, tz)),
            None => Err(ConfigError::Parse { path: path.to_path_buf(), message: "timezone".into() }),
        }
    }
}
