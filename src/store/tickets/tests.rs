//! Tests of the ticket store, each run on SQLite and on PostgreSQL (a private schema per test).

use super::*;
use crate::store::pg_schema::TestSchema;
use crate::store::{from_ms, ms};

pub(super) fn new_ticket(ts: DateTime<Utc>) -> NewTicket {
    NewTicket {
        site: "t".into(),
        zone: "z".into(),
        grid: "g".into(),
        community: "c".into(),
        subdistrict: "sd".into(),
        rule: "density".into(),
        kind: "crowd".into(),
        audience: "grid_worker".into(),
        level: Level::Warning,
        measure: density(3.8),
        ts,
        candidates: vec!["w1".into(), "w2".into()],
        ack_due: Some(ts + Duration::seconds(300)),
        resolve_due: Some(ts + Duration::seconds(1800)),
        reopen_window: Duration::seconds(600),
    }
}

/// A density rule's measure: the value is the density.
pub(super) fn density(v: f64) -> Measure {
    Measure { metric: "density", unit: "people/m²", value: v, lower_is_urgent: false, density: v }
}

/// A predictive rule's measure: seconds left before the warning density, beside the zone's density.
fn predictive(seconds: f64, density: f64) -> Measure {
    Measure { metric: "predictive", unit: "s to warning", value: seconds, lower_is_urgent: true, density }
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL schema (dropped afterwards).
pub(super) async fn on_both<F, Fut>(test: F)
where
    F: Fn(TicketStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    test(TicketStore::open(&dir.path().join("t.db")).unwrap()).await;
    let schema = TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG (or 127.0.0.1:5432/test)");
    test(TicketStore::connect_pg(&schema.url()).await.unwrap()).await;
    schema.drop().await.unwrap();
}

pub(super) fn new(r: Raised) -> Ticket {
    match r {
        Raised::New(t) => t,
        other => panic!("expected a new ticket, got {other:?}"),
    }
}

#[tokio::test]
async fn one_open_ticket_per_zone_and_rule_routed_to_least_loaded() {
    on_both(|store| async move {
        let now = Utc::now();
        let a = new(store.raise(new_ticket(now)).await.unwrap());
        assert_eq!(a.assignee.as_deref(), Some("w1"));
        assert_eq!((a.state.as_str(), a.tier.as_str()), ("dispatched", "grid"));
        assert!(matches!(store.raise(new_ticket(now)).await.unwrap(), Raised::Existing(t) if t.id == a.id));
        let mut other = new_ticket(now);
        other.zone = "y".into();
        let c = new(store.raise(other).await.unwrap());
        assert_eq!(c.assignee.as_deref(), Some("w2"), "w1 already has one open");

        let up = store.upgrade("t", "z", "density", Level::Critical, density(5.3), now).await.unwrap().unwrap();
        assert_eq!((up.level.as_str(), up.peak_density, up.peak_value), ("critical", 5.3, 5.3));
        let done = store.clear("t", "z", "density", 2.0, now).await.unwrap().unwrap();
        assert_eq!(
            (done.state.as_str(), done.resolution.as_deref(), done.resolved_by.as_deref()),
            ("resolved", Some("auto"), Some("system"))
        );
        assert_eq!(done.relief_at, Some(from_ms(ms(now))));
        let (_, events) = store.get(a.id).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["raised", "dispatched", "upgraded", "resolved"]);
        assert_eq!(store.open_alerts().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn rising_again_within_the_window_reopens() {
    on_both(|store| async move {
        let t0 = Utc::now() - Duration::seconds(3600);
        let a = new(store.raise(new_ticket(t0)).await.unwrap());
        store.clear("t", "z", "density", 2.0, t0 + Duration::seconds(60)).await.unwrap();
        let again = store.raise(new_ticket(t0 + Duration::seconds(300))).await.unwrap();
        let Raised::Reopened(r) = again else { panic!("{again:?}") };
        assert_eq!((r.id, r.reopened, r.state.as_str()), (a.id, 1, "dispatched"));
        assert_eq!(r.closed_at, None);
        store.clear("t", "z", "density", 2.0, t0 + Duration::seconds(400)).await.unwrap();
        // Far outside the window: a new ticket.
        let b = new(store.raise(new_ticket(t0 + Duration::seconds(2000))).await.unwrap());
        assert_ne!(b.id, a.id);
    })
    .await;
}

#[tokio::test]
async fn transitions_escalation_and_reassignment() {
    on_both(|store| async move {
        let t = new(store.raise(new_ticket(Utc::now())).await.unwrap());
        let ack = store.transition(t.id, Action::Acknowledge, "w1", "").await.unwrap();
        assert!(ack.acknowledged_at.is_some());
        assert!(matches!(
            store.transition(t.id, Action::Acknowledge, "w1", "").await,
            Err(StoreError::Transition { .. })
        ));
        let e = store.escalate(t.id, "w1", "whistle: need traffic police", None).await.unwrap();
        assert_eq!(e.tier, "community");
        let e = store.escalate(e.id, "system", "not resolved in time", Some(Utc::now())).await.unwrap();
        let e = store.escalate(e.id, "system", "not resolved in time", None).await.unwrap();
        assert_eq!(e.tier, "department");
        assert!(
            matches!(store.escalate(e.id, "x", "", None).await, Err(StoreError::Transition { .. })),
            "no tier above"
        );
        let r = store.reassign(t.id, "w2", "operator:alice", "w1 off shift").await.unwrap();
        assert_eq!(r.assignee.as_deref(), Some("w2"));
        let done = store.transition(t.id, Action::Resolve, "w2", "crowd guided to the east exit").await.unwrap();
        assert_eq!(
            (done.resolution.as_deref(), done.resolved_by.as_deref()),
            (Some("crowd guided to the east exit"), Some("w2"))
        );
        assert!(matches!(store.transition(999, Action::Resolve, "w1", "").await, Err(StoreError::NoTicket(999))));
        let (_, events) = store.get(t.id).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["raised", "dispatched", "acknowledged", "escalated", "escalated", "escalated", "reassigned", "resolved"]
        );
    })
    .await;
}

#[tokio::test]
async fn overdue_finds_missed_deadlines() {
    on_both(|store| async move {
        let t0 = Utc::now();
        let a = new(store.raise(new_ticket(t0)).await.unwrap());
        assert!(store.overdue(t0 + Duration::seconds(299)).await.unwrap().is_empty());
        assert_eq!(store.overdue(t0 + Duration::seconds(301)).await.unwrap()[0].id, a.id, "not acknowledged in time");
        store.transition(a.id, Action::Acknowledge, "w1", "").await.unwrap();
        assert!(
            store.overdue(t0 + Duration::seconds(301)).await.unwrap().is_empty(),
            "acknowledged: ack deadline no longer counts"
        );
        assert_eq!(store.overdue(t0 + Duration::seconds(1801)).await.unwrap().len(), 1, "not resolved in time");
    })
    .await;
}

#[tokio::test]
async fn sla_escalation_only_from_the_tier_read_and_lists() {
    on_both(|store| async move {
        let t0 = Utc::now() - Duration::seconds(1000);
        let a = new(store.raise(new_ticket(t0)).await.unwrap());
        let up = store.escalate_from(a.id, Tier::Grid, "system", "late", a.resolve_due).await.unwrap().unwrap();
        assert_eq!(up.tier, "community");
        assert!(store.escalate_from(a.id, Tier::Grid, "system", "late", None).await.unwrap().is_none(), "moved on");
        store.note(a.id, "notified", "mqtt", "to w1").await.unwrap();
        let open = store.list_where(ListFilter { open_only: true, zone: Some("z".into()), ..Default::default() });
        assert_eq!(open.await.unwrap().len(), 1);
        let mine = store.list_where(ListFilter { assignee: Some("w2".into()), ..Default::default() }).await.unwrap();
        assert!(mine.is_empty());
        let h = store.history(t0 - Duration::seconds(1), Utc::now(), Some("t".into())).await.unwrap();
        let kinds: Vec<_> = h[0].1.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["raised", "dispatched", "escalated", "notified"]);
        assert!(store.history(t0, Utc::now(), Some("elsewhere".into())).await.unwrap().is_empty());
        store.transition(a.id, Action::Resolve, "w1", "done").await.unwrap();
        assert!(store.escalate_from(a.id, Tier::Community, "system", "late", None).await.unwrap().is_none());
        assert!(store.list(Filter::Open, None).await.unwrap().is_empty());
        assert_eq!(store.list(Filter::All, None).await.unwrap().len(), 1);
    })
    .await;
}

/// Issue 10: a ticket said "density" for whatever the rule measured (people/min, seconds to warning), and
/// the predictive rule's "peak" kept the least urgent value (the most seconds left).
#[tokio::test]
async fn tickets_carry_metric_value_and_unit_and_the_peak_is_the_most_urgent() {
    on_both(|store| async move {
        let now = Utc::now();
        let mut inflow = new_ticket(now);
        inflow.rule = "gate-inflow".into();
        inflow.measure =
            Measure { metric: "inflow", unit: "people/min", value: 640.0, lower_is_urgent: false, density: 1.9 };
        let t = new(store.raise(inflow).await.unwrap());
        assert_eq!((t.metric.as_str(), t.unit.as_str(), t.value, t.peak_value), ("inflow", "people/min", 640.0, 640.0));
        assert_eq!((t.density, t.peak_density), (1.9, 1.9), "the zone's density, not the inflow");
        let (_, events) = store.get(t.id).await.unwrap();
        assert_eq!(events[0].detail, "gate-inflow: z reached warning at 640.00 people/min (density 1.90/m²)");

        let mut early = new_ticket(now);
        early.rule = "early-warning".into();
        early.level = Level::Notice;
        early.measure = predictive(420.0, 2.1);
        let p = new(store.raise(early).await.unwrap());
        assert_eq!((p.value, p.peak_value, p.unit.as_str()), (420.0, 420.0, "s to warning"));
        // Nearer: 90 s left at 3.2/m² is more urgent than 420 s; then a later 300 s does not undo the peak.
        let up = store.upgrade("t", "z", "early-warning", Level::Warning, predictive(90.0, 3.2), now).await.unwrap();
        let up = up.unwrap();
        assert_eq!((up.value, up.peak_value, up.density, up.peak_density), (90.0, 90.0, 3.2, 3.2));
        let up = store.upgrade("t", "z", "early-warning", Level::Critical, predictive(300.0, 3.0), now).await.unwrap();
        let up = up.unwrap();
        assert_eq!((up.value, up.peak_value), (300.0, 90.0), "peak = most urgent = fewest seconds left");
        assert_eq!((up.density, up.peak_density), (3.0, 3.2));
    })
    .await;
}
