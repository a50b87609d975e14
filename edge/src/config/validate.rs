//! Validation of the edge file's source sections (kept apart from the types in [`super`]).

use crowdgrid_proto::config::Problems;
use crowdgrid_proto::site::Site;

use super::{BaseStationConfig, GateConfig, InputConfig, SimulatedConfig};

fn check_zone(site: &Site, p: &mut Problems, path: String, zone: &str) {
    if site.zone(zone).is_none() {
        p.push(path, format!("unknown zone {zone:?} in site {:?}", site.config.id));
    }
}

fn check_unit(p: &mut Problems, path: String, v: f64) {
    if !(v.is_finite() && v > 0.0 && v <= 1.0) {
        p.push(path, format!("{v} must be in (0, 1]"));
    }
}

/// Parses `HH:MM`.
pub fn parse_hhmm(s: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").ok()
}

fn validate_input(input: &InputConfig, path: &str, p: &mut Problems) {
    match input {
        InputConfig::Http { url, interval_s, .. } => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.push(format!("{path}.input.url"), format!("{url:?} is not an http(s) URL"));
            }
            if *interval_s == 0 {
                p.push(format!("{path}.input.interval_s"), "must be positive");
            }
        }
        InputConfig::Webhook { listen, path: wpath } => {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                p.push(format!("{path}.input.listen"), format!("{listen:?} is not host:port"));
            }
            if !wpath.starts_with('/') {
                p.push(format!("{path}.input.path"), "must start with '/'");
            }
        }
        InputConfig::Replay { speed, .. } => {
            if !(speed.is_finite() && *speed > 0.0) {
                p.push(format!("{path}.input.speed"), "must be positive");
            }
        }
        InputConfig::Mqtt { topic, .. } => {
            if topic.is_empty() {
                p.push(format!("{path}.input.topic"), "must not be empty");
            }
        }
        InputConfig::FileDrop { .. } | InputConfig::CsvTail { .. } => {}
    }
}

pub(super) fn validate_base_station(c: &BaseStationConfig, site: &Site, path: &str, p: &mut Problems) {
    check_unit(p, format!("{path}.market_share"), c.market_share);
    check_unit(p, format!("{path}.confidence"), c.confidence);
    if !(c.devices_per_person.is_finite() && c.devices_per_person > 0.0) {
        p.push(format!("{path}.devices_per_person"), "must be positive");
    }
    if c.cells.is_empty() {
        p.push(format!("{path}.cells"), "at least one cell is needed");
    }
    validate_input(&c.input, path, p);
    for (j, cell) in c.cells.iter().enumerate() {
        let mut sum = 0.0;
        for (zone, w) in &cell.zones {
            check_zone(site, p, format!("{path}.cells[{j}].zones"), zone);
            if !(w.is_finite() && *w > 0.0) {
                p.push(format!("{path}.cells[{j}].zones.{zone}"), "weight must be positive");
            }
            sum += w;
        }
        if sum > 1.0 + 1e-9 {
            p.push(format!("{path}.cells[{j}].zones"), format!("weights sum to {sum}, more than 1"));
        }
    }
}

pub(super) fn validate_gate(c: &GateConfig, site: &Site, path: &str, p: &mut Problems) {
    check_zone(site, p, format!("{path}.zone"), &c.zone);
    check_unit(p, format!("{path}.confidence"), c.confidence);
    if let Some(t) = &c.daily_reset {
        if parse_hhmm(t).is_none() {
            p.push(format!("{path}.daily_reset"), format!("{t:?} is not HH:MM"));
        }
    }
    validate_input(&c.input, path, p);
}

pub(super) fn validate_simulated(c: &SimulatedConfig, site: &Site, path: &str, p: &mut Problems) {
    check_unit(p, format!("{path}.confidence"), c.confidence);
    if !(c.time_scale.is_finite() && c.time_scale > 0.0) {
        p.push(format!("{path}.time_scale"), "must be positive");
    }
    if let Some(t) = &c.start_local {
        if parse_hhmm(t).is_none() {
            p.push(format!("{path}.start_local"), format!("{t:?} is not HH:MM"));
        }
    }
    if let Some(d) = &c.start_date {
        if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
            p.push(format!("{path}.start_date"), format!("{d:?} is not YYYY-MM-DD"));
        }
    }
    for (j, z) in c.zones.iter().enumerate() {
        check_zone(site, p, format!("{path}.zones[{j}].zone"), &z.zone);
        if !(z.base >= 0.0 && z.peak >= z.base && z.peak < 12.0) {
            p.push(format!("{path}.zones[{j}]"), "need 0 <= base <= peak < 12 people/m²");
        }
    }
}
