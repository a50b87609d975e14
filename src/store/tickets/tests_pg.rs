//! Two centre instances (two stores, two pools) on one PostgreSQL schema, racing.

use std::sync::Arc;

use super::tests::new_ticket;
use super::*;
use crate::central::config::EscalationConfig;
use crate::central::escalation::escalate_late;
use crate::store::pg_schema::TestSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_raise_one_ticket_and_escalate_it_once() {
    let schema = TestSchema::create().await.expect("PostgreSQL at $CROWDGRID_TEST_PG (or 127.0.0.1:5432/test)");
    let a = TicketStore::connect_pg(&schema.url()).await.unwrap();
    let b = TicketStore::connect_pg(&schema.url()).await.unwrap();

    // 50 concurrent raises of the same zone and rule, alternating instances: one ticket.
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let t0 = Utc::now() - Duration::seconds(1000);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            store.raise(new_ticket(t0)).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            Raised::New(t) => {
                fresh += 1;
                ids.push(t.id);
            }
            Raised::Existing(t) => ids.push(t.id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one instance raised it");
    assert!(ids.iter().all(|id| *id == ids[0]), "everyone got the same ticket: {ids:?}");
    assert_eq!(a.list(Filter::Open, None).await.unwrap().len(), 1);
    assert_eq!(b.list(Filter::All, None).await.unwrap().len(), 1);

    // More late tickets, then both instances' SLA clocks run at once, several times.
    for zone in ["y1", "y2", "y3", "y4"] {
        let mut t = new_ticket(t0);
        t.zone = zone.into();
        new_or_panic(a.raise(t).await.unwrap());
    }
    let cfg = EscalationConfig::default();
    let mut escalated = 0;
    for _ in 0..3 {
        let now = Utc::now();
        let (x, y) = tokio::join!(escalate_late(&a, &cfg, now), escalate_late(&b, &cfg, now));
        escalated += x.unwrap().len() + y.unwrap().len();
    }
    assert_eq!(escalated, 5, "each late ticket escalated once (not acknowledged: grid -> community)");
    for t in b.list(Filter::Open, None).await.unwrap() {
        assert_eq!(t.tier, "community", "ticket {} escalated exactly once", t.id);
        let (_, events) = a.get(t.id).await.unwrap();
        assert_eq!(events.iter().filter(|e| e.kind == "escalated").count(), 1);
    }
    schema.drop().await.unwrap();
}

fn new_or_panic(r: Raised) {
    assert!(matches!(r, Raised::New(_)), "{r:?}");
}
