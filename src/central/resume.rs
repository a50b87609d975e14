//! Rule state carried across a restart or a handover: the saved snapshot goes back into the engine, the open
//! tickets mark their alerts active (a ticket raised after the last snapshot is not raised twice), and an alert
//! the snapshot says was active but whose ticket is missing is returned to be raised again. The same step for
//! the whole centre at start and, in a cluster, for one site when this instance takes it over.

use chrono::Utc;
use crowdgrid_proto::Level;

use crate::rules::{self, Engine, RuleEvent, Snapshot};

/// Restores `snapshot` into `engine` and resumes `open` alerts, for `site` only when given (the engine forgets
/// that site's state first); returns the alerts to raise again.
pub fn resume(
    engine: &mut Engine,
    snapshot: Option<Snapshot>,
    open: &[(String, String, String, Level)],
    site: Option<&str>,
) -> Vec<RuleEvent> {
    let ours = |s: &str| site.is_none_or(|only| only == s);
    if let Some(site) = site {
        engine.reset_site(site);
    }
    if let Some(s) = snapshot {
        engine.restore(match site {
            Some(site) => s.of(site),
            None => s,
        });
    }
    let open: Vec<_> = open.iter().filter(|(s, ..)| ours(s)).collect();
    for (site, zone, rule, level) in &open {
        engine.resume_alert(site, zone, rule, *level, Utc::now());
    }
    engine
        .views(None)
        .into_iter()
        .filter(|v| ours(&v.site))
        .filter(|v| {
            v.state.alert.is_some() && !open.iter().any(|(s, z, r, _)| s == &v.site && z == &v.zone && r == &v.rule)
        })
        .map(|v| RuleEvent {
            site: v.site,
            zone: v.zone,
            rule: v.rule,
            audience: v.audience,
            ts: v.state.firing_since.unwrap_or_else(Utc::now),
            transition: rules::Transition::Fire {
                level: v.state.alert.unwrap_or(Level::Warning),
                value: v.state.last_value.unwrap_or(0.0),
            },
            detail: "alert was active before the restart but its ticket was not stored".into(),
            metric: v.metric,
            unit: v.unit,
            lower_is_urgent: v.lower_is_urgent,
            density: v.density,
        })
        .collect()
}
