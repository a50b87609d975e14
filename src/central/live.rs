//! The live picture: per zone, the latest density (fused when fresh, otherwise the latest source),
//! each source's latest value, and the rule state. Pure; the processor owns it behind a lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::site::Site;
use crowdgrid_proto::{Level, Reading, SourceKind};
use serde::Serialize;

use super::rule::{RuleAction, RuleState};

/// The latest value from one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceLatest {
    /// Source kind.
    pub kind: SourceKind,
    /// People count.
    pub count: f64,
    /// People per m².
    pub density: f64,
    /// Confidence.
    pub confidence: f64,
    /// Timestamp.
    pub ts: DateTime<Utc>,
}

/// One zone's live state.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneLive {
    /// Latest density used for the level (people/m²).
    pub density: Option<f64>,
    /// Latest people count.
    pub count: Option<f64>,
    /// When `density` was measured.
    pub ts: Option<DateTime<Utc>>,
    /// Which source `density` came from.
    pub from: Option<String>,
    /// Latest per source id.
    pub sources: BTreeMap<String, SourceLatest>,
    /// The threshold rule's state.
    pub rule: RuleState,
    last_fused: Option<DateTime<Utc>>,
}

/// Every zone of every site.
#[derive(Debug)]
pub struct Live {
    sites: HashMap<String, Arc<Site>>,
    zones: HashMap<(String, String), ZoneLive>,
    fused_fresh: Duration,
    clear_for: Duration,
}

impl Live {
    /// Empty state for `sites`; `alerts` are the open tickets' levels to resume from.
    pub fn new(
        sites: &[Arc<Site>],
        alerts: &[(String, String, Level)],
        fused_fresh: Duration,
        clear_for: Duration,
    ) -> Self {
        let mut zones = HashMap::new();
        for s in sites {
            for z in &s.zones {
                zones.insert(
                    (s.config.id.clone(), z.config.id.clone()),
                    ZoneLive {
                        density: None,
                        count: None,
                        ts: None,
                        from: None,
                        sources: BTreeMap::new(),
                        rule: RuleState::default(),
                        last_fused: None,
                    },
                );
            }
        }
        for (site, zone, level) in alerts {
            if let Some(z) = zones.get_mut(&(site.clone(), zone.clone())) {
                z.rule = RuleState::with_alert(*level);
            }
        }
        Self { sites: sites.iter().map(|s| (s.config.id.clone(), s.clone())).collect(), zones, fused_fresh, clear_for }
    }

    /// Applies a validated reading; returns the rule's action, if any.
    pub fn apply(&mut self, r: &Reading) -> Option<RuleAction> {
        let thresholds = self.sites.get(&r.site)?.zone(&r.zone)?.thresholds;
        let z = self.zones.get_mut(&(r.site.clone(), r.zone.clone()))?;
        let newer = |prev: Option<DateTime<Utc>>| prev.is_none_or(|p| r.ts >= p);
        let entry_newer = z.sources.get(&r.source_id).is_none_or(|s| r.ts >= s.ts);
        if entry_newer {
            z.sources.insert(
                r.source_id.clone(),
                SourceLatest { kind: r.source, count: r.count, density: r.density, confidence: r.confidence, ts: r.ts },
            );
        }
        let drives = if r.source == SourceKind::Fused {
            z.last_fused = Some(z.last_fused.map_or(r.ts, |t| t.max(r.ts)));
            true
        } else {
            z.last_fused.is_none_or(|f| r.ts - f > self.fused_fresh)
        };
        if !drives || !newer(z.ts) {
            return None;
        }
        z.density = Some(r.density);
        z.count = Some(r.count);
        z.ts = Some(r.ts);
        z.from = Some(r.source_id.clone());
        z.rule.observe(&thresholds, r.density, r.ts, self.clear_for)
    }

    /// One zone's state.
    pub fn zone(&self, site: &str, zone: &str) -> Option<&ZoneLive> {
        self.zones.get(&(site.to_string(), zone.to_string()))
    }

    /// The current level of a zone.
    pub fn level(&self, site: &str, zone: &str) -> Level {
        self.zone(site, zone).map_or(Level::Normal, |z| z.rule.level())
    }

    /// Marks the zone's ticket as closed by someone (so a new crossing raises a new one).
    pub fn ticket_closed(&mut self, site: &str, zone: &str) {
        if let Some(z) = self.zones.get_mut(&(site.to_string(), zone.to_string())) {
            z.rule.alert = None;
            z.rule.below_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::validate::tests::test_site;

    fn reading(kind: SourceKind, id: &str, ts: DateTime<Utc>, density: f64) -> Reading {
        Reading::new("t", "z", kind, id, ts, density * 10_000.0, 10_000.0, 0.8)
    }

    #[test]
    fn fused_drives_the_level_when_fresh() {
        let site = test_site();
        let mut live = Live::new(&[site], &[], Duration::seconds(120), Duration::seconds(60));
        let now = Utc::now();
        assert!(live.apply(&reading(SourceKind::Camera, "cam", now, 4.0)).is_some(), "no fused yet: the source drives");
        let mut live = Live::new(&[test_site()], &[], Duration::seconds(120), Duration::seconds(60));
        assert_eq!(live.apply(&reading(SourceKind::Fused, "e/fused", now, 1.0)), None);
        assert_eq!(live.apply(&reading(SourceKind::Camera, "cam", now, 4.0)), None, "fused is fresh");
        assert_eq!(live.level("t", "z"), Level::Normal);
        assert_eq!(live.zone("t", "z").unwrap().sources.len(), 2);
        let action = live.apply(&reading(SourceKind::Fused, "e/fused", now + Duration::seconds(1), 3.8));
        assert!(matches!(action, Some(RuleAction::Raise { level: Level::Warning, .. })));
    }

    #[test]
    fn resumes_open_alerts() {
        let mut live = Live::new(
            &[test_site()],
            &[("t".into(), "z".into(), Level::Warning)],
            Duration::seconds(120),
            Duration::seconds(0),
        );
        let now = Utc::now();
        assert_eq!(
            live.apply(&reading(SourceKind::Fused, "e/fused", now, 3.9)),
            None,
            "no second ticket after restart"
        );
        assert!(matches!(live.apply(&reading(SourceKind::Fused, "e/fused", now, 1.0)), Some(RuleAction::Clear { .. })));
    }
}
