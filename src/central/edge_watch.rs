//! Offline edges raise engineers' tickets. An edge's Last Will (or its own `offline` status) raises one ticket
//! per edge — on the first zone it has reported for, rule `edge-offline:{edge}` — and its coming back online
//! resolves it. An edge that never reported a reading has no zone to hang a ticket on: it is logged only (its
//! sources' `silent` rules, where configured, still apply).

use chrono::{DateTime, Utc};
use crowdgrid_proto::{EdgeState, Level};

use super::live::Live;
use crate::rules::{Audience, RuleEvent, Transition};

/// The rule id of an edge's offline ticket.
pub fn rule_id(edge: &str) -> String {
    format!("edge-offline:{edge}")
}

/// The ticket event for `edge` of `site` going from `before` to `now` (`None`: no change worth a ticket).
pub fn event(
    live: &Live,
    site: &str,
    edge: &str,
    before: Option<EdgeState>,
    now: EdgeState,
    at: DateTime<Utc>,
) -> Option<RuleEvent> {
    let transition = match (before, now) {
        (Some(EdgeState::Offline), EdgeState::Offline) => return None,
        (_, EdgeState::Offline) => Transition::Fire { level: Level::Warning, value: 1.0 },
        (Some(EdgeState::Offline), EdgeState::Online) => Transition::Clear { value: 0.0 },
        _ => return None,
    };
    let Some(zone) = live.zone_of_edge(site, edge) else {
        tracing::warn!(site, edge, "edge offline before it reported any reading: no ticket");
        return None;
    };
    let density = live.zone(site, &zone).and_then(|z| z.density).unwrap_or(0.0);
    let detail = match transition {
        Transition::Clear { .. } => format!("edge {edge} back online"),
        _ => format!("edge {edge} went offline (its Last Will or its own status)"),
    };
    Some(RuleEvent {
        site: site.to_string(),
        zone,
        rule: rule_id(edge),
        audience: Audience::Engineer,
        ts: at,
        transition,
        detail,
        metric: "edge_offline",
        unit: "edge",
        lower_is_urgent: false,
        density,
    })
}
