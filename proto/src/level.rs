//! Density levels and the thresholds that define them.

use serde::{Deserialize, Serialize};

use crate::config::Problems;

/// How crowded a zone is, from its density against its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Below the notice threshold.
    Normal,
    /// Walking speed starts to drop (Fruin/Still ~2 people/m²).
    Notice,
    /// Involuntary contact (~3.6 people/m²): send a grid worker.
    Warning,
    /// Dangerous crowd forces (~5 people/m²).
    Critical,
}

impl Level {
    /// Lower-case name used in APIs, metrics and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }

    /// Parses [`Level::as_str`] output.
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "normal" => Some(Level::Normal),
            "notice" => Some(Level::Notice),
            "warning" => Some(Level::Warning),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }
}

/// Density thresholds in people per square metre. Defaults follow the Fruin/Still levels in the brief.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Start of the notice level (people/m²).
    #[serde(default = "default_notice")]
    pub notice: f64,
    /// Start of the warning level (people/m²); a ticket is raised from here.
    #[serde(default = "default_warning")]
    pub warning: f64,
    /// Start of the critical level (people/m²).
    #[serde(default = "default_critical")]
    pub critical: f64,
    /// A level clears only when density falls below `clear_ratio` × its threshold (hysteresis).
    #[serde(default = "default_clear_ratio")]
    pub clear_ratio: f64,
}

fn default_notice() -> f64 {
    2.0
}
fn default_warning() -> f64 {
    3.6
}
fn default_critical() -> f64 {
    5.0
}
fn default_clear_ratio() -> f64 {
    0.8
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            notice: default_notice(),
            warning: default_warning(),
            critical: default_critical(),
            clear_ratio: default_clear_ratio(),
        }
    }
}

impl Thresholds {
    /// The level of `density` without hysteresis.
    pub fn level(&self, density: f64) -> Level {
        if density >= self.critical {
            Level::Critical
        } else if density >= self.warning {
            Level::Warning
        } else if density >= self.notice {
            Level::Notice
        } else {
            Level::Normal
        }
    }

    /// The threshold at which `level` starts (0 for normal).
    pub fn threshold(&self, level: Level) -> f64 {
        match level {
            Level::Normal => 0.0,
            Level::Notice => self.notice,
            Level::Warning => self.warning,
            Level::Critical => self.critical,
        }
    }

    /// The density below which `level` clears.
    pub fn clear_below(&self, level: Level) -> f64 {
        self.threshold(level) * self.clear_ratio
    }

    /// Records every inconsistency under `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        for (name, v) in [("notice", self.notice), ("warning", self.warning), ("critical", self.critical)] {
            if !v.is_finite() || v <= 0.0 || v > 20.0 {
                problems.push(format!("{path}.{name}"), format!("{v} must be in (0, 20] people/m²"));
            }
        }
        if !(self.notice < self.warning && self.warning < self.critical) {
            problems.push(path, "thresholds must rise: notice < warning < critical");
        }
        if !(self.clear_ratio > 0.0 && self.clear_ratio <= 1.0) {
            problems.push(format!("{path}.clear_ratio"), format!("{} must be in (0, 1]", self.clear_ratio));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.level(0.4), Level::Normal);
        assert_eq!(t.level(2.0), Level::Notice);
        assert_eq!(t.level(3.7), Level::Warning);
        assert_eq!(t.level(5.5), Level::Critical);
        assert!((t.clear_below(Level::Warning) - 2.88).abs() < 1e-9);
        assert_eq!(Level::parse(Level::Warning.as_str()), Some(Level::Warning));
    }

    #[test]
    fn bad_thresholds_all_reported() {
        let t = Thresholds { notice: 4.0, warning: 3.0, critical: f64::NAN, clear_ratio: 1.5 };
        let mut p = Problems::new();
        t.validate("thresholds", &mut p);
        assert_eq!(p.items().len(), 3, "{:?}", p.items());
    }
}
