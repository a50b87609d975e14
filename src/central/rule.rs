//! The density threshold rule as a pure state machine: level with hysteresis, a ticket while the
//! zone is at warning or above, auto-clear after it stayed below for `clear_for`.

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::{Level, Thresholds};
use serde::Serialize;

/// The rule's name in tickets.
pub const DENSITY_RULE: &str = "density";

/// What the rule asks the ticket manager to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RuleAction {
    /// Open a ticket at `level`.
    Raise { level: Level, density: f64, ts: DateTime<Utc> },
    /// Raise the open ticket's level.
    Upgrade { level: Level, density: f64, ts: DateTime<Utc> },
    /// The zone stayed below the clear level long enough: resolve automatically.
    Clear { density: f64, ts: DateTime<Utc> },
}

/// Per-zone rule state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleState {
    /// Current level with hysteresis.
    pub level: Option<Level>,
    /// Level of the open ticket, if any.
    pub alert: Option<Level>,
    /// Since when the zone has been below the warning clear level while a ticket is open.
    pub below_since: Option<DateTime<Utc>>,
}

impl RuleState {
    /// State for a zone that already has an open ticket at `alert` (after a restart).
    pub fn with_alert(alert: Level) -> Self {
        Self { level: Some(alert), alert: Some(alert), below_since: None }
    }

    /// The current level (normal before the first reading).
    pub fn level(&self) -> Level {
        self.level.unwrap_or(Level::Normal)
    }

    /// Feeds one density observation at `ts`.
    pub fn observe(
        &mut self,
        t: &Thresholds,
        density: f64,
        ts: DateTime<Utc>,
        clear_for: Duration,
    ) -> Option<RuleAction> {
        let raw = t.level(density);
        let mut level = self.level();
        if raw >= level {
            level = raw;
        } else {
            // Step down only through levels whose clear threshold the density is below.
            while level > raw && density < t.clear_below(level) {
                level = lower(level);
            }
        }
        self.level = Some(level);
        match self.alert {
            None if level >= Level::Warning => {
                self.alert = Some(level);
                self.below_since = None;
                Some(RuleAction::Raise { level, density, ts })
            }
            None => None,
            Some(alert) if level > alert => {
                self.alert = Some(level);
                self.below_since = None;
                Some(RuleAction::Upgrade { level, density, ts })
            }
            Some(_) if level >= Level::Warning => {
                self.below_since = None;
                None
            }
            Some(_) => {
                let since = *self.below_since.get_or_insert(ts);
                if ts - since >= clear_for {
                    self.alert = None;
                    self.below_since = None;
                    Some(RuleAction::Clear { density, ts })
                } else {
                    None
                }
            }
        }
    }
}

fn lower(l: Level) -> Level {
    match l {
        Level::Critical => Level::Warning,
        Level::Warning => Level::Notice,
        Level::Notice | Level::Normal => Level::Normal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T14:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn raises_upgrades_and_clears_after_the_clear_duration() {
        let t = Thresholds::default();
        let clear = Duration::seconds(60);
        let mut s = RuleState::default();
        assert_eq!(s.observe(&t, 1.0, t0(), clear), None);
        assert!(matches!(s.observe(&t, 3.7, t0(), clear), Some(RuleAction::Raise { level: Level::Warning, .. })));
        assert_eq!(s.observe(&t, 3.9, t0(), clear), None, "repeats update nothing");
        assert!(matches!(s.observe(&t, 5.2, t0(), clear), Some(RuleAction::Upgrade { level: Level::Critical, .. })));
        // 4.2 is below critical (5.0) but above its clear level (4.0): still critical, no action.
        assert_eq!(s.observe(&t, 4.2, t0(), clear), None);
        assert_eq!(s.level(), Level::Critical);
        // Below the warning clear level (2.88): the clock starts.
        let later = t0() + Duration::seconds(10);
        assert_eq!(s.observe(&t, 2.0, later, clear), None);
        assert_eq!(s.observe(&t, 2.0, later + Duration::seconds(59), clear), None);
        assert!(matches!(s.observe(&t, 2.0, later + Duration::seconds(60), clear), Some(RuleAction::Clear { .. })));
        assert_eq!(s.alert, None);
    }

    #[test]
    fn rising_again_before_clear_keeps_the_ticket() {
        let t = Thresholds::default();
        let clear = Duration::seconds(60);
        let mut s = RuleState::default();
        s.observe(&t, 4.0, t0(), clear);
        s.observe(&t, 1.0, t0() + Duration::seconds(10), clear);
        assert_eq!(s.observe(&t, 3.8, t0() + Duration::seconds(30), clear), None);
        assert_eq!(s.below_since, None);
        assert_eq!(s.observe(&t, 1.0, t0() + Duration::seconds(80), clear), None, "clock restarted at 80 s");
    }

    #[test]
    fn no_flapping_inside_the_band() {
        let t = Thresholds::default();
        let clear = Duration::seconds(0);
        let mut s = RuleState::default();
        s.observe(&t, 3.7, t0(), clear);
        // Oscillate between the clear level (2.88) and the threshold (3.6): never clears, never re-raises.
        for i in 0..100 {
            let d = if i % 2 == 0 { 2.9 } else { 3.59 };
            assert_eq!(s.observe(&t, d, t0() + Duration::seconds(i), clear), None, "step {i}");
        }
    }
}
