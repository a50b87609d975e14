//! Offline and degraded edges raise engineers' tickets. An edge's Last Will (or its own `offline` status) raises
//! one ticket per edge — on the first zone it has reported for, rule `edge-offline:{edge}` — and its coming back
//! online resolves it. An edge that keeps running but loses data — its store-and-forward queue dropping readings,
//! or its cameras dropping most of their frames because inference cannot keep up — is degraded: rule
//! `edge-degraded:{edge}`, raised on the status that shows it and resolved by the first status that shows no new
//! loss. An edge that never reported a reading has no zone to hang a ticket on: it is logged only (its sources'
//! `silent` rules, where configured, still apply).

use chrono::{DateTime, Utc};
use crowdgrid_proto::{EdgeState, EdgeStatus, Level};

use super::live::Live;
use crate::rules::{Audience, RuleEvent, Transition};

/// The rule id of an edge's offline ticket.
pub fn rule_id(edge: &str) -> String {
    format!("edge-offline:{edge}")
}

/// The rule id of an edge's degraded ticket.
pub fn degraded_rule_id(edge: &str) -> String {
    format!("edge-degraded:{edge}")
}

/// Share of a camera's frames dropped between two statuses above which its edge is degraded: a few dropped
/// frames are the drop-oldest slot working as designed; most of them means counts lag and miss people.
pub const FRAME_DROP_SHARE: f64 = 0.5;

/// Why an online edge is degraded as of `now`, judged against its previous status `prev` (counters are since the
/// edge started: a lower value than before means it restarted, and the new value is all new).
pub fn degraded(prev: Option<&EdgeStatus>, now: &EdgeStatus) -> Option<String> {
    if now.state != EdgeState::Online {
        return None;
    }
    let since = |now: u64, before: Option<u64>| match before {
        Some(b) if b <= now => now - b,
        _ => now,
    };
    let mut why = Vec::new();
    let dropped = since(now.queue_dropped, prev.map(|p| p.queue_dropped));
    if dropped > 0 {
        why.push(format!("queue overflowing: {dropped} reading(s) dropped since its last status"));
    }
    for s in &now.sources {
        let before = prev.and_then(|p| p.sources.iter().find(|x| x.id == s.id));
        let frames = |h: &crowdgrid_proto::SourceHealth| h.rejected.get("frame_dropped").copied().unwrap_or(0);
        let lost = since(frames(s), before.map(frames));
        let done = since(s.accepted, before.map(|b| b.accepted));
        if lost > 0 && lost as f64 > FRAME_DROP_SHARE * (lost + done) as f64 {
            why.push(format!("{} dropping frames: {lost} of {} since its last status", s.id, lost + done));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The ticket event for an edge whose degraded reason went from `before` to `now`.
pub fn degraded_event(live: &Live, status: &EdgeStatus, before: Option<&str>, now: Option<&str>) -> Option<RuleEvent> {
    let (transition, detail) = match (before, now) {
        (None, Some(why)) => {
            (Transition::Fire { level: Level::Warning, value: 1.0 }, format!("edge {} degraded: {why}", status.edge_id))
        }
        (Some(_), None) => (Transition::Clear { value: 0.0 }, format!("edge {} no longer losing data", status.edge_id)),
        _ => return None,
    };
    let zone = live.zone_of_edge(&status.site, &status.edge_id)?;
    let density = live.zone(&status.site, &zone).and_then(|z| z.density).unwrap_or(0.0);
    Some(RuleEvent {
        site: status.site.clone(),
        zone,
        rule: degraded_rule_id(&status.edge_id),
        audience: Audience::Engineer,
        ts: status.ts,
        transition,
        detail,
        metric: "edge_degraded",
        unit: "edge",
        lower_is_urgent: false,
        density,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(queue_dropped: u64, accepted: u64, frames_dropped: u64) -> EdgeStatus {
        let mut s = EdgeStatus::offline("cam-edge", "boai-school");
        s.state = EdgeState::Online;
        s.queue_dropped = queue_dropped;
        s.sources = vec![crowdgrid_proto::SourceHealth {
            id: "cam-edge/gate-cam".into(),
            kind: "camera".into(),
            last_ok: None,
            accepted,
            rejected: [("frame_dropped".to_string(), frames_dropped)].into_iter().collect(),
            last_error: None,
        }];
        s
    }

    #[test]
    fn losses_since_the_last_status_degrade_an_edge() {
        // A few frames dropped (10 of 110) is the drop-oldest slot at work: not degraded.
        assert_eq!(degraded(Some(&status(0, 100, 0)), &status(0, 200, 10)), None);
        // Most frames dropped since the last status (60 of 100): degraded, with the numbers.
        let why = degraded(Some(&status(0, 100, 10)), &status(0, 140, 70)).unwrap();
        assert!(why.contains("cam-edge/gate-cam dropping frames: 60 of 100"), "{why}");
        // Readings dropped by the queue: degraded; the same count again (no new loss): not.
        let why = degraded(Some(&status(5, 100, 0)), &status(8, 200, 0)).unwrap();
        assert!(why.starts_with("queue overflowing: 3 reading(s)"), "{why}");
        assert_eq!(degraded(Some(&status(8, 200, 0)), &status(8, 300, 0)), None);
        // A restarted edge's counters start again: its new losses are all new.
        assert!(degraded(Some(&status(50, 900, 0)), &status(2, 10, 0)).is_some());
        // An offline edge is offline, not degraded.
        let mut off = status(9, 0, 0);
        off.state = EdgeState::Offline;
        assert_eq!(degraded(None, &off), None);
    }
}
