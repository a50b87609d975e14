//! KPI arithmetic on hand-made tickets.

use chrono::{DateTime, Duration, Utc};

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T08:00:00Z").unwrap().with_timezone(&Utc)
}

fn ticket(id: i64, tier: &str, resolved_by: Option<&str>, ack_after: Option<i64>) -> Ticket {
    Ticket {
        id,
        site: "s".into(),
        zone: "z".into(),
        grid: "g".into(),
        community: "c".into(),
        subdistrict: "sd".into(),
        rule: "density".into(),
        kind: "crowd".into(),
        audience: "grid_worker".into(),
        level: "warning".into(),
        state: if resolved_by.is_some() { "resolved".into() } else { "dispatched".into() },
        tier: tier.into(),
        assignee: Some("w1".into()),
        opened_at: t0(),
        updated_at: t0(),
        acknowledged_at: ack_after.map(|s| t0() + Duration::seconds(s)),
        on_site_at: None,
        closed_at: resolved_by.map(|_| t0() + Duration::seconds(600)),
        relief_at: resolved_by.map(|_| t0() + Duration::seconds(300)),
        ack_due: None,
        resolve_due: None,
        density: 4.0,
        peak_density: 4.0,
        resolution: resolved_by.map(|_| "guided".into()),
        resolved_by: resolved_by.map(|s| s.into()),
        reopened: 0,
        metric: "density".into(),
        unit: "people/m²".into(),
        value: 4.0,
        peak_value: 4.0,
    }
}

#[test]
fn tier_shares_and_times() {
    let mut history = Vec::new();
    // 10 resolved: 7 in the grid, 1 in the community, 1 in the sub-district, 1 by the department.
    for i in 0..7 {
        history.push((ticket(i, "grid", Some("w1"), Some(60 + i * 10)), vec![]));
    }
    history.push((ticket(7, "community", Some("w1"), Some(400)), vec![]));
    history.push((ticket(8, "subdistrict", Some("w1"), None), vec![]));
    let whistle = TicketEvent {
        id: 1,
        ts: t0() + Duration::seconds(500),
        kind: "escalated".into(),
        actor: "system".into(),
        detail: "subdistrict -> department: late".into(),
    };
    history.push((ticket(9, "department", Some("w1"), None), vec![whistle]));
    history.push((ticket(10, "grid", None, None), vec![]));
    let k = compute(&history);
    assert_eq!((k.tickets, k.resolved), (11, 10));
    assert_eq!(k.tiers.grid, Some(0.7));
    assert_eq!(k.tiers.community, Some(0.8));
    assert_eq!(k.tiers.subdistrict, Some(0.9));
    assert_eq!(k.time_to_ack_s.count, 8);
    assert_eq!(k.time_to_ack_s.p50, Some(100.0), "acks at 60..120 s and 400 s");
    assert_eq!(k.time_to_relief_s.mean, Some(300.0));
    assert_eq!(k.workers[0].assigned, 11);
    assert_eq!(k.workers[0].resolved, 10);
    assert_eq!(k.departments[0].whistles, 1);
    assert_eq!(k.departments[0].mean_resolve_s, Some(100.0), "whistle at 500 s, closed at 600 s");
}
