//! Tests of [`super`] (queue.rs).
use super::*;
use chrono::{TimeZone, Utc};
use crowdgrid_proto::SourceKind;

fn reading(source_id: &str, zone: &str) -> Reading {
    Reading {
        site: "site-a".into(),
        zone: zone.into(),
        source: SourceKind::Simulated,
        source_id: source_id.into(),
        ts: Utc.with_ymd_and_hms(2024, 10, 1, 12, 0, 0).unwrap(),
        seq: 0,
        epoch: 0,
        count: 10.0,
        area_m2: 100.0,
        density: 0.1,
        confidence: 0.5,
        classes: None,
        inflow_per_min: None,
        outflow_per_min: None,
        conflict: None,
        tracked: None,
    }
}

fn cfg(dir: &tempfile::TempDir, max_bytes: u64, overflow: Overflow) -> QueueConfig {
    QueueConfig { path: dir.path().join("sub/queue.db"), max_bytes, overflow, inflight: 10 }
}

fn decode(q: &Queue) -> Vec<(i64, Reading)> {
    q.peek(0, usize::MAX).unwrap().into_iter().map(|m| (m.id, serde_json::from_slice(&m.payload).unwrap())).collect()
}

#[test]
fn seqs_per_source_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(&dir, 64 << 20, Overflow::DropOldest);
    let epoch;
    {
        let mut q = Queue::open(&cfg, "p").unwrap();
        epoch = q.epoch();
        assert!(epoch > 0 && epoch <= i64::MAX as u64);
        let out = q.push(vec![reading("a", "z1"), reading("b", "z2"), reading("a", "z1")]).unwrap();
        assert_eq!(out, PushOutcome { accepted: 3, dropped: 0 });
        q.push(vec![reading("b", "z2")]).unwrap();
        let got = decode(&q);
        let seqs: Vec<_> = got.iter().map(|(_, r)| (r.source_id.as_str(), r.seq, r.epoch)).collect();
        assert_eq!(seqs, [("a", 1, epoch), ("b", 1, epoch), ("a", 2, epoch), ("b", 2, epoch)]);
        let first = q.peek(0, 1).unwrap();
        assert_eq!(first[0].topic, "p/site-a/z1/reading");
        q.ack(&[first[0].id]).unwrap();
        assert_eq!(q.depth(), 3);
    }
    let mut q = Queue::open(&cfg, "p").unwrap();
    assert_eq!(q.epoch(), epoch);
    assert_eq!(q.depth(), 3);
    q.push(vec![reading("a", "z1"), reading("c", "z1")]).unwrap();
    let got = decode(&q);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "id order");
    let seqs: Vec<_> = got.iter().map(|(_, r)| (r.source_id.as_str(), r.seq)).collect();
    assert_eq!(seqs, [("b", 1), ("a", 2), ("b", 2), ("a", 3), ("c", 1)]);
}

#[test]
fn peek_pages_and_ack_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Queue::open(&cfg(&dir, 64 << 20, Overflow::DropOldest), "p").unwrap();
    q.push((0..10).map(|_| reading("a", "z")).collect()).unwrap();
    let first = q.peek(0, 4).unwrap();
    assert_eq!(first.len(), 4);
    let next = q.peek(first[3].id, 100).unwrap();
    assert_eq!(next.len(), 6);
    assert!(next[0].id > first[3].id);
    let bytes_before = q.bytes();
    let ids: Vec<i64> = first.iter().map(|m| m.id).collect();
    q.ack(&ids).unwrap();
    q.ack(&ids).unwrap(); // twice is harmless
    assert_eq!(q.depth(), 6);
    assert!(q.bytes() < bytes_before);
    assert_eq!(q.peek(0, 100).unwrap(), next);
    q.ack(&next.iter().map(|m| m.id).collect::<Vec<_>>()).unwrap();
    assert_eq!((q.depth(), q.bytes()), (0, 0));
    // Ids are never reused, so a publisher's cursor stays valid.
    q.push(vec![reading("a", "z")]).unwrap();
    assert!(q.peek(0, 1).unwrap()[0].id > next[5].id);
}

/// Bytes one stored reading costs in these tests.
fn one_cost(dir: &tempfile::TempDir) -> u64 {
    let mut q = Queue::open(&cfg(dir, 64 << 20, Overflow::DropOldest), "p").unwrap();
    q.push(vec![reading("a", "z")]).unwrap();
    q.bytes()
}

#[test]
fn drop_oldest_keeps_the_newest_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let cost = one_cost(&tempfile::tempdir().unwrap());
    // A quarter of a small budget is kept for the WAL: rows get 10.5 readings' worth of 14.
    let budget = cost * 14;
    let mut q = Queue::open(&cfg(&dir, budget, Overflow::DropOldest), "p").unwrap();
    let mut dropped = 0;
    for _ in 0..5 {
        dropped += q.push((0..10).map(|_| reading("a", "z")).collect()).unwrap().dropped;
        assert!(q.bytes() <= budget / 4 * 3 + 1, "{} > three quarters of {budget}", q.bytes());
    }
    assert_eq!(dropped, 40);
    assert_eq!(q.dropped_total(), 40);
    assert_eq!(q.depth(), 10);
    let seqs: Vec<u64> = decode(&q).iter().map(|(_, r)| r.seq).collect();
    assert_eq!(seqs, (41..=50).collect::<Vec<_>>());
}

#[test]
fn drop_newest_refuses_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let cost = one_cost(&tempfile::tempdir().unwrap());
    let budget = cost * 14;
    let mut q = Queue::open(&cfg(&dir, budget, Overflow::DropNewest), "p").unwrap();
    let out = q.push((0..25).map(|_| reading("a", "z")).collect()).unwrap();
    assert_eq!(out, PushOutcome { accepted: 10, dropped: 15 });
    assert!(q.bytes() <= budget);
    assert_eq!(q.push(vec![reading("a", "z")]).unwrap().dropped, 1);
    assert_eq!(q.dropped_total(), 16);
    // Refused readings consume no seq; the oldest stay.
    let seqs: Vec<u64> = decode(&q).iter().map(|(_, r)| r.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    // Room again after an ack: the next reading continues the sequence.
    let first = q.peek(0, 1).unwrap()[0].id;
    q.ack(&[first]).unwrap();
    assert_eq!(q.push(vec![reading("a", "z")]).unwrap().accepted, 1);
    assert_eq!(decode(&q).last().unwrap().1.seq, 11);
}

#[test]
fn budget_is_recomputed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg(&dir, 64 << 20, Overflow::DropOldest);
    let bytes = {
        let mut q = Queue::open(&cfg, "p").unwrap();
        q.push((0..7).map(|_| reading("a", "z")).collect()).unwrap();
        q.bytes()
    };
    let q = Queue::open(&cfg, "p").unwrap();
    assert_eq!((q.depth(), q.bytes()), (7, bytes));
}

#[tokio::test]
async fn handle_tracks_depth_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let h = QueueHandle::open(&cfg(&dir, 64 << 20, Overflow::DropOldest), "p").unwrap();
    let waiter = {
        let h = h.clone();
        tokio::spawn(async move { h.notified().await })
    };
    h.push(vec![reading("a", "z"), reading("a", "z")]).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert_eq!(h.depth(), 2);
    let msgs = h.peek(0, 10).await.unwrap();
    h.ack(msgs.iter().map(|m| m.id).collect()).await.unwrap();
    assert_eq!((h.depth(), h.dropped()), (0, 0));
}
