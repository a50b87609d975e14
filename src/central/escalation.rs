//! The SLA clock: which tier a late ticket moves to, and its new deadline. Pure.

use chrono::{DateTime, Duration, Utc};

use super::config::EscalationConfig;
use crate::store::tickets::{Ticket, Tier};

/// Deadlines for a new ticket at `level`, raised at `at`.
pub fn deadlines(
    cfg: &EscalationConfig,
    audience: &str,
    level: crowdgrid_proto::Level,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let sla = cfg.sla_for(audience, level);
    (at + Duration::seconds(sla.ack_s), at + Duration::seconds(sla.resolve_s))
}

/// The escalation due for `t` at `now`: the reason and the new resolve deadline.
pub fn due(cfg: &EscalationConfig, t: &Ticket, now: DateTime<Utc>) -> Option<(String, Option<DateTime<Utc>>)> {
    if !t.is_open() {
        return None;
    }
    let sla = cfg.sla_for(&t.audience, t.level());
    let tier = t.tier();
    let unacked = matches!(t.state.as_str(), "raised" | "dispatched");
    if tier == Tier::Grid && unacked && t.ack_due.is_some_and(|d| now > d) {
        return Some((format!("not acknowledged within {} s", sla.ack_s), t.resolve_due));
    }
    if t.resolve_due.is_some_and(|d| now > d) {
        return match tier {
            Tier::Grid | Tier::Community => Some((
                format!("not resolved within {} s at {} level", sla.resolve_s, tier.as_str()),
                Some(now + Duration::seconds(sla.subdistrict_s)),
            )),
            Tier::Subdistrict => Some((
                format!(
                    "sub-district did not resolve within {} s: whistle to the responsible department",
                    sla.subdistrict_s
                ),
                None,
            )),
            Tier::Department => None,
        };
    }
    None
}

/// One pass of the SLA clock over the store alone (no notification: `TicketService::escalate_late` notifies):
/// moves every late ticket one tier up, only if it is still at the tier read, so several centre instances sharing
/// a PostgreSQL store escalate it once. Returns the escalated tickets.
pub async fn escalate_late(
    tickets: &crate::store::tickets::TicketStore,
    cfg: &EscalationConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Ticket>, crate::store::StoreError> {
    let mut out = Vec::new();
    for t in tickets.overdue(now).await? {
        let Some((reason, resolve_due)) = due(cfg, &t, now) else { continue };
        match tickets.escalate_from(t.id, t.tier(), "system", &reason, resolve_due).await {
            Ok(Some(up)) => {
                tracing::warn!(ticket = up.id, site = %up.site, zone = %up.zone, tier = %up.tier, reason, "ticket escalated");
                out.push(up);
            }
            Ok(None) => tracing::debug!(ticket = t.id, "already escalated or being escalated elsewhere"),
            Err(e) => tracing::error!(error = %e, ticket = t.id, "escalation failed"),
        }
    }
    Ok(out)
}

/// The resolve deadline after a manual escalation (whistle) from `tier`.
pub fn after_manual(cfg: &EscalationConfig, t: &Ticket, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match t.tier().next() {
        Some(Tier::Subdistrict) => Some(now + Duration::seconds(cfg.sla_for(&t.audience, t.level()).subdistrict_s)),
        Some(Tier::Community) => t.resolve_due,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdgrid_proto::Level;

    fn ticket(tier: &str, state: &str, opened: DateTime<Utc>, cfg: &EscalationConfig) -> Ticket {
        let (ack, resolve) = deadlines(cfg, "grid_worker", Level::Warning, opened);
        Ticket {
            id: 1,
            site: "s".into(),
            zone: "z".into(),
            grid: "g".into(),
            community: "c".into(),
            subdistrict: "sd".into(),
            rule: "density".into(),
            kind: "crowd".into(),
            audience: "grid_worker".into(),
            level: "warning".into(),
            state: state.into(),
            tier: tier.into(),
            assignee: Some("w".into()),
            opened_at: opened,
            updated_at: opened,
            acknowledged_at: None,
            on_site_at: None,
            closed_at: None,
            relief_at: None,
            ack_due: Some(ack),
            resolve_due: Some(resolve),
            density: 4.0,
            peak_density: 4.0,
            resolution: None,
            resolved_by: None,
            reopened: 0,
            metric: "density".into(),
            unit: "people/m²".into(),
            value: 4.0,
            peak_value: 4.0,
        }
    }

    #[test]
    fn the_ladder_follows_the_sla() {
        let cfg = EscalationConfig::default(); // warning: ack 300 s, resolve 1800 s, sub-district 3600 s
        let t0 = DateTime::parse_from_rfc3339("2026-05-01T08:00:00Z").unwrap().with_timezone(&Utc);
        let t = ticket("grid", "dispatched", t0, &cfg);
        assert_eq!(due(&cfg, &t, t0 + Duration::seconds(300)), None, "at the deadline it is not late yet");
        let (why, resolve) = due(&cfg, &t, t0 + Duration::seconds(301)).unwrap();
        assert!(why.contains("not acknowledged within 300 s"), "{why}");
        assert_eq!(resolve, t.resolve_due, "the resolve deadline is unchanged");

        let acked = ticket("grid", "acknowledged", t0, &cfg);
        assert_eq!(due(&cfg, &acked, t0 + Duration::seconds(1000)), None, "acknowledged: only the resolve clock runs");
        let (why, resolve) = due(&cfg, &acked, t0 + Duration::seconds(1801)).unwrap();
        assert!(why.contains("not resolved within 1800 s"), "{why}");
        assert_eq!(resolve, Some(t0 + Duration::seconds(1801 + 3600)));

        let mut sub = ticket("subdistrict", "on_site", t0, &cfg);
        sub.resolve_due = Some(t0 + Duration::seconds(5401));
        assert_eq!(due(&cfg, &sub, t0 + Duration::seconds(5401)), None);
        let (why, resolve) = due(&cfg, &sub, t0 + Duration::seconds(5402)).unwrap();
        assert!(why.contains("whistle"), "{why}");
        assert_eq!(resolve, None);
    }

    /// Issue 11: an engineers' ticket had no deadline and never escalated. It has its own SLA now (acknowledge
    /// within 30 min, resolve within 4 h by default) and climbs the same ladder when missed.
    #[test]
    fn an_unacknowledged_engineers_ticket_escalates_on_its_own_sla() {
        let cfg = EscalationConfig::default();
        let t0 = DateTime::parse_from_rfc3339("2026-05-01T08:00:00Z").unwrap().with_timezone(&Utc);
        let (ack, resolve) = deadlines(&cfg, "engineer", Level::Warning, t0);
        assert_eq!((ack - t0, resolve - t0), (Duration::seconds(1800), Duration::seconds(14_400)));
        let mut t = ticket("grid", "raised", t0, &cfg);
        (t.audience, t.kind, t.assignee, t.ack_due, t.resolve_due) =
            ("engineer".into(), "data_quality".into(), None, Some(ack), Some(resolve));
        assert_eq!(due(&cfg, &t, t0 + Duration::seconds(1800)), None);
        let (why, _) = due(&cfg, &t, t0 + Duration::seconds(1801)).expect("late: escalates");
        assert!(why.contains("not acknowledged within 1800 s"), "{why}");
        t.state = "acknowledged".into();
        let (why, _) = due(&cfg, &t, t0 + Duration::seconds(14_401)).expect("unresolved: escalates");
        assert!(why.contains("not resolved within 14400 s"), "{why}");
    }
}
