//! Property-based fuzzing of every wire and file parser in `crowdgrid-proto`: reading and edge-status JSON,
//! `Reading::check`, signed frames (`signed::open`, `Frame::verify`, `Credential::parse`), commit
//! acknowledgements (`CommitAck` JSON and `triples()`), MQTT topic names, and site TOML (from a string and from
//! a file, with its GeoJSON zone polygons).
//!
//! Each parser gets (a) arbitrary bytes and (b) structure-aware mutations of a valid document (characters
//! replaced, deleted, inserted; numbers swapped for NaN/huge/negative ones; strings swapped for hostile ones;
//! lines duplicated; truncation). Every property asserts that nothing panics and errors come back as values,
//! plus cheap invariants (round trips, MAC integrity, bounded allocation).
//!
//! The default case counts keep this file at a few seconds in debug mode. `PROPTEST_CASES` overrides every
//! count in this file, for a longer run:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test --release -p crowdgrid-proto --test fuzz
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::ack::{CommitAck, Committed, MAX_RANGE_SPAN};
use crowdgrid_proto::config::parse_toml;
use crowdgrid_proto::reading::{Limits, MAX_SEQ};
use crowdgrid_proto::signed::{self, Credential, MAGIC};
use crowdgrid_proto::site::{Site, SiteConfig};
use crowdgrid_proto::status::{EdgeState, EdgeStatus, ModelInfo, SourceHealth};
use crowdgrid_proto::{topic, ClassCounts, Reading, SourceKind, Tracked};
use proptest::prelude::*;
use proptest::sample::{select, Index};

// ---------------------------------------------------------------------------------------------------------------
// Allocation accounting: a thread-local count of bytes requested, so a property can assert that an operation
// allocates nothing (or a bounded amount). proptest runs each test on its own thread.

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    let _ = ALLOCATED.try_with(|a| a.set(a.get().saturating_add(bytes)));
}

fn allocated() -> usize {
    ALLOCATED.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---------------------------------------------------------------------------------------------------------------
// Configuration.

use mutate::config;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------------------------
// Structure-aware mutations of a valid document (shared by the workspace's fuzz files).

#[path = "support/mutate.rs"]
mod mutate;

// ---------------------------------------------------------------------------------------------------------------
// Readings.

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Every optional field present, realistic values.
fn full_reading(now: DateTime<Utc>) -> Reading {
    let mut r = Reading::new("west-taihu", "beach", SourceKind::Camera, "west-taihu-edge-1/cam", now, 30.0, 60.0, 0.8);
    r.seq = 17;
    r.epoch = (now - Duration::days(1)).timestamp_millis() as u64;
    r.classes = Some(ClassCounts { person: 30.0, vehicle: 2.0 });
    r.inflow_per_min = Some(3.5);
    r.outflow_per_min = Some(1.0);
    r.conflict = Some(1.5);
    r
}

fn reading_docs() -> Vec<Vec<u8>> {
    let now = now();
    let plain = Reading::new("t", "z", SourceKind::Gate, "e/g", now, 100.0, 50.0, 0.9);
    vec![
        serde_json::to_vec(&full_reading(now)).unwrap(),
        serde_json::to_vec_pretty(&full_reading(now)).unwrap(),
        serde_json::to_vec(&plain).unwrap(),
        br#"{"site":"boai-school","zone":"gate-plaza","source":"camera","source_id":"cam-1",
            "ts":"2026-11-27T07:30:00+08:00","seq":1,"count":30,"area_m2":60,"density":0.5,
            "confidence":0.8,"classes":{"person":30,"vehicle":2}}"#
            .to_vec(),
    ]
}

/// Floats a hostile or broken source sends.
fn hostile_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        2 => select(vec![
            0.0, -0.0, 1.0, -1.0, 12.0, 12.000_001, f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY,
            f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, 1e-300, 1e300,
        ]),
        3 => 0.0f64..1e4,
    ]
}

/// Any instant chrono can hold.
fn any_ts() -> impl Strategy<Value = DateTime<Utc>> {
    let (lo, hi) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
    prop_oneof![
        (lo..=hi, 0u32..2_000_000_000),
        (0i64..4_102_444_800, 0u32..1_000_000_000),
        (select(vec![lo, hi, 0, -1]), select(vec![0u32, 999_999_999, 1_999_999_999])),
    ]
    .prop_filter_map("not an instant", |(s, n)| DateTime::from_timestamp(s, n))
}

fn hostile_id() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9/_-]{1,16}", "\\PC{0,140}", (120usize..140).prop_map(|n| "x".repeat(n)),]
}

fn hostile_u64() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), select(vec![0, MAX_SEQ, MAX_SEQ + 1, u64::MAX, i64::MAX as u64]), 0u64..2_000_000_000_000]
}

prop_compose! {
    fn hostile_reading()(
        site in hostile_id(), zone in hostile_id(), source_id in hostile_id(),
        source in select(vec![SourceKind::BaseStation, SourceKind::Gate, SourceKind::Camera, SourceKind::Drone,
            SourceKind::Report, SourceKind::Simulated, SourceKind::Fused]),
        ts in any_ts(), seq in hostile_u64(), epoch in hostile_u64(),
        nums in proptest::collection::vec(hostile_f64(), 10),
        present in proptest::collection::vec(any::<bool>(), 5),
    ) -> Reading {
        Reading {
            site, zone, source, source_id, ts, seq, epoch,
            count: nums[0], area_m2: nums[1], density: nums[2], confidence: nums[3],
            classes: present[0].then_some(ClassCounts { person: nums[4], vehicle: nums[5] }),
            inflow_per_min: present[1].then_some(nums[6]),
            outflow_per_min: present[2].then_some(nums[7]),
            conflict: present[3].then_some(nums[8]),
            tracked: present[4].then_some(Tracked {
                raw_count: nums[9], dwell_p50_s: nums[4], dwell_p90_s: nums[5],
                vehicle_inflow_per_min: Some(nums[6]), vehicle_outflow_per_min: None,
            }),
        }
    }
}

prop_compose! {
    /// A reading that `check` accepts at `now`.
    fn valid_reading(now: DateTime<Utc>)(
        site in "\\PC{1,30}", zone in "[a-z0-9-]{1,64}", source_id in "\\PC{1,32}",
        ts_off in -(7 * 86_400_000i64 - 60_000)..(5 * 60_000i64),
        seq in 0..=MAX_SEQ, epoch in 0..=(now.timestamp_millis() as u64),
        area in 1e-3f64..1e7, target in 0.0f64..11.9, confidence in 0.0f64..=1.0,
        opts in proptest::collection::vec(proptest::option::of(0.0f64..1e6), 4),
    ) -> Reading {
        let count = target * area;
        Reading {
            site, zone, source: SourceKind::Fused, source_id,
            ts: now + Duration::milliseconds(ts_off), seq, epoch,
            count, area_m2: area, density: count / area, confidence,
            classes: opts[0].map(|p| ClassCounts { person: p, vehicle: p / 2.0 }),
            inflow_per_min: opts[1], outflow_per_min: opts[2], conflict: opts[3],
            tracked: opts[0].map(|p| Tracked {
                raw_count: p, dwell_p50_s: p / 3.0, dwell_p90_s: p, vehicle_inflow_per_min: opts[1], vehicle_outflow_per_min: None,
            }),
        }
    }
}

/// `check` says yes only when every documented rule holds.
fn assert_accepted_is_sane(r: &Reading, now: DateTime<Utc>, lim: &Limits) {
    for id in [&r.site, &r.zone, &r.source_id] {
        assert!(!id.is_empty() && id.len() <= 128, "id {id:?}");
    }
    for v in [r.count, r.area_m2, r.density, r.confidence] {
        assert!(v.is_finite() && v >= 0.0, "{v}");
    }
    assert!(r.area_m2 > 0.0 && r.confidence <= 1.0);
    if let Some(t) = r.tracked {
        for v in [
            Some(t.raw_count),
            Some(t.dwell_p50_s),
            Some(t.dwell_p90_s),
            t.vehicle_inflow_per_min,
            t.vehicle_outflow_per_min,
        ]
        .into_iter()
        .flatten()
        {
            assert!(v.is_finite() && v >= 0.0, "tracked {v}");
        }
    }
    // A NaN limit compares false, so only a number above the limit is excluded.
    assert!(r.density.partial_cmp(&lim.max_density) != Some(std::cmp::Ordering::Greater));
    assert!(r.seq <= MAX_SEQ);
    assert!(r.ts - now <= lim.max_future && now - r.ts <= lim.max_age);
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn reading_json_arbitrary_bytes(bytes in mutate::bytes(b"{\"site\":")) {
        let now = now();
        if let Ok(r) = serde_json::from_slice::<Reading>(&bytes) {
            if r.check(now, &Limits::default()).is_ok() {
                assert_accepted_is_sane(&r, now, &Limits::default());
            }
        }
    }

    #[test]
    fn reading_json_mutated(doc in mutate::mutated(reading_docs())) {
        let now = now();
        if let Ok(r) = serde_json::from_slice::<Reading>(&doc) {
            if r.check(now, &Limits::default()).is_ok() {
                assert_accepted_is_sane(&r, now, &Limits::default());
            }
            // Whatever parsed can be written back (the centre re-serialises readings for the API and live view).
            let _ = serde_json::to_vec(&r);
        }
    }

}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn reading_check_any_values(r in hostile_reading(), now_s in 0i64..8_000_000_000) {
        let now = DateTime::from_timestamp(now_s, 0).unwrap_or_else(Utc::now);
        let lims = [
            Limits::default(),
            Limits { max_density: f64::INFINITY, max_future: Duration::zero(), max_age: Duration::days(36_500) },
            Limits { max_density: f64::NAN, max_future: Duration::days(365), max_age: Duration::seconds(1) },
        ];
        for lim in &lims {
            match r.check(now, lim) {
                Ok(()) => assert_accepted_is_sane(&r, now, lim),
                Err(e) => prop_assert!(!e.reason().is_empty() && !e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn valid_reading_round_trips(r in valid_reading(Utc::now())) {
        let now = Utc::now();
        r.check(now, &Limits::default()).map_err(|e| TestCaseError::fail(format!("generator: {e}")))?;
        let json = serde_json::to_string(&r).unwrap();
        let back: Reading = serde_json::from_str(&json).unwrap();
        // Exact, float for float (serde_json's float_roundtrip; see `regression_reading_float_round_trip`).
        let floats = |r: &Reading| {
            let c = r.classes.unwrap_or_default();
            [r.count, r.area_m2, r.density, r.confidence, c.person, c.vehicle,
                r.inflow_per_min.unwrap_or(0.0), r.outflow_per_min.unwrap_or(0.0), r.conflict.unwrap_or(0.0)]
        };
        for (a, b) in floats(&back).into_iter().zip(floats(&r)) {
            prop_assert!(a.to_bits() == b.to_bits(), "{} came back as {}: {}", b, a, json);
        }
        let same_floats = Reading {
            count: r.count, area_m2: r.area_m2, density: r.density, confidence: r.confidence,
            classes: r.classes, inflow_per_min: r.inflow_per_min, outflow_per_min: r.outflow_per_min,
            conflict: r.conflict, ..back.clone()
        };
        prop_assert_eq!(&same_floats, &r, "{}", json);
        back.check(now, &Limits::default()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Edge status.

fn status_docs() -> Vec<Vec<u8>> {
    let mut s = EdgeStatus::offline("west-taihu-edge-1", "west-taihu");
    s.state = EdgeState::Online;
    s.version = "0.1.0".into();
    s.queue_depth = 12;
    s.queue_dropped = 1;
    s.resent = 3;
    s.acks_refused = 2;
    s.sources = vec![SourceHealth {
        id: "cmcc-cells".into(),
        kind: "base_station".into(),
        last_ok: Some(Utc::now()),
        accepted: 120,
        rejected: [("stale".to_string(), 3u64), ("malformed".to_string(), 1)].into_iter().collect(),
        last_error: Some("line 3: bad".into()),
    }];
    s.models = vec![ModelInfo {
        name: "nanodet-g-coco".into(),
        version: "1".into(),
        sha256: "ab".repeat(32),
        source: "gate-cam".into(),
        settings_version: Some(3),
        person_threshold: Some(0.4),
        ..ModelInfo::default()
    }];
    vec![
        serde_json::to_vec(&s).unwrap(),
        serde_json::to_vec_pretty(&s).unwrap(),
        serde_json::to_vec(&EdgeStatus::offline("e", "s")).unwrap(),
        br#"{"edge_id":"e","site":"s","state":"offline","ts":"2026-03-10T08:00:00Z"}"#.to_vec(),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn edge_status_arbitrary_bytes(bytes in mutate::bytes(b"{\"edge_id\":")) {
        if let Ok(s) = serde_json::from_slice::<EdgeStatus>(&bytes) {
            let _ = serde_json::to_vec(&s);
        }
    }

    #[test]
    fn edge_status_mutated(doc in mutate::mutated(status_docs())) {
        if let Ok(s) = serde_json::from_slice::<EdgeStatus>(&doc) {
            // The centre shows statuses through its API: re-serialising what parsed must work.
            serde_json::to_vec(&s).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Signed frames and credentials.

fn hex_secret() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 32).prop_map(hex::encode)
}

prop_compose! {
    fn credential()(kid in any::<u32>(), secret in hex_secret()) -> Credential {
        Credential::parse(&format!("{kid}.{secret}")).unwrap()
    }
}

const TOPIC: &str = "crowdgrid/v1/west-taihu/beach/reading";

fn frame_docs() -> Vec<Vec<u8>> {
    let c = Credential::parse(&format!("3.{}", "ab".repeat(32))).unwrap();
    let body = serde_json::to_vec(&full_reading(now())).unwrap();
    vec![
        signed::seal(&c, "west-taihu-edge-1", TOPIC, &body),
        signed::seal(&c, signed::CENTRE, TOPIC, b""),
        signed::seal(&c, "e", TOPIC, &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
    ]
}

fn check_opened(payload: &[u8], key: &[u8]) {
    match signed::open(payload) {
        Ok(None) => assert!(!payload.starts_with(MAGIC)),
        Ok(Some(f)) => {
            assert!(payload.starts_with(MAGIC));
            assert_eq!(f.header.mac.len(), 64);
            assert!(payload.ends_with(f.body));
            let _ = f.verify(key, TOPIC);
            let _ = f.verify(b"", "");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn signed_open_arbitrary_bytes(
        bytes in prop_oneof![
            mutate::bytes(MAGIC),
            // A header-like line, then a body.
            ("\\PC{0,600}", proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|(h, b)| [MAGIC, h.as_bytes(), b"\n", &b[..]].concat()),
        ],
    ) {
        check_opened(&bytes, b"key");
    }

    #[test]
    fn signed_open_mutated(doc in mutate::mutated(frame_docs())) {
        check_opened(&doc, format!("3.{}", "ab".repeat(32)).as_bytes());
    }

}

proptest! {
    #![proptest_config(config(1500))]

    /// `seal` then `open` + `verify` succeeds; any single-byte change of the body, another topic or another key
    /// fails verification.
    #[test]
    fn seal_open_verify(
        cred in credential(),
        other in credential(),
        signer in prop_oneof![
            "[a-z0-9_-]{1,64}",
            Just(signed::CENTRE.to_string()),
            proptest::collection::vec(any::<char>(), 0..=64).prop_map(String::from_iter),
        ],
        topic in "\\PC{0,80}",
        other_topic in "\\PC{0,80}",
        body in proptest::collection::vec(any::<u8>(), 0..256),
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let sealed = signed::seal(&cred, &signer, &topic, &body);
        let f = signed::open(&sealed).unwrap().expect("a sealed payload is a frame");
        prop_assert_eq!(&f.header.edge, &signer);
        prop_assert_eq!(f.header.kid, cred.kid);
        prop_assert_eq!(f.body, &body[..]);
        prop_assert!(f.verify(cred.key(), &topic));
        if other_topic != topic {
            prop_assert!(!f.verify(cred.key(), &other_topic));
        }
        if other.secret != cred.secret {
            prop_assert!(!f.verify(other.key(), &topic));
        }
        if !body.is_empty() {
            let mut tampered = sealed.clone();
            let k = sealed.len() - body.len() + at.index(body.len());
            tampered[k] ^= flip;
            let g = signed::open(&tampered).unwrap().expect("still a frame");
            prop_assert!(!g.verify(cred.key(), &topic), "byte {} of the body changed, still verifies", k);
        }
    }

}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn credential_parse(
        text in prop_oneof![
            "\\PC{0,100}",
            proptest::collection::vec(any::<u8>(), 0..100).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            mutate::mutated(vec![format!("3.{}\n", "ab".repeat(32)).into_bytes(), format!(" 4294967295.{}", "0F".repeat(32)).into_bytes()])
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
    ) {
        if let Ok(c) = Credential::parse(&text) {
            prop_assert_eq!(c.secret.as_str(), text.trim());
            let (kid, hex) = c.secret.split_once('.').unwrap();
            prop_assert_eq!(kid.parse::<u32>().unwrap(), c.kid);
            prop_assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert!(!format!("{c:?}").contains(hex), "the secret must never be printed");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Commit acknowledgements.

fn ack_docs() -> Vec<Vec<u8>> {
    let items = [("e/a", 1, 5), ("e/a", 1, 3), ("e/a", 1, 4), ("e/a", 1, 9), ("e/b", 2, 1)];
    vec![
        serde_json::to_vec(&CommitAck::from_triples(items)).unwrap(),
        br#"{"committed":[{"source_id":"x","epoch":0,"ranges":[[5,1],[0,18446744073709551615],[7,7]]}]}"#.to_vec(),
        br#"{"committed":[{"source_id":"e/a","epoch":1776000000000,"ranges":[[0,999999],[1000001,1000001]]}]}"#
            .to_vec(),
        br#"{"committed":[]}"#.to_vec(),
    ]
}

/// How many triples `triples()` must yield: the ranges it keeps, summed.
fn expected_triples(ack: &CommitAck) -> u128 {
    ack.committed
        .iter()
        .flat_map(|c| &c.ranges)
        .filter(|(a, b)| a <= b && b - a < MAX_RANGE_SPAN)
        .map(|(a, b)| u128::from(b - a) + 1)
        .sum()
}

/// Parsing allocates in proportion to the payload, and `triples()` allocates nothing however wide the ranges.
fn check_ack(payload: &[u8]) {
    let before = allocated();
    let parsed = serde_json::from_slice::<CommitAck>(payload);
    let used = allocated() - before;
    assert!(used <= 32 * payload.len() + 16 * 1024, "{used} bytes allocated to parse {} bytes", payload.len());
    let Ok(ack) = parsed else { return };
    let expected = expected_triples(&ack);
    let ranges: usize = ack.committed.iter().map(|c| c.ranges.len()).sum();
    assert!(expected <= ranges as u128 * u128::from(MAX_RANGE_SPAN));
    let before = allocated();
    let walked = ack.triples().take(10_000).count();
    assert_eq!(allocated() - before, 0, "triples() allocated");
    assert_eq!(walked as u128, expected.min(10_000));
}

prop_compose! {
    /// Ranges an attacker picks: inverted, at the u64 edges, just inside and just outside the span limit.
    fn hostile_range()(a in hostile_u64(), kind in 0u8..5, d in 0u64..10) -> (u64, u64) {
        match kind {
            0 => (a, a.saturating_add(d)),
            1 => (a, a.saturating_sub(d + 1)),
            2 => (a, a.saturating_add(MAX_RANGE_SPAN - 1 - d.min(MAX_RANGE_SPAN - 1))),
            3 => (a, a.saturating_add(MAX_RANGE_SPAN + d)),
            _ => (u64::MAX - d, u64::MAX),
        }
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn ack_json_arbitrary_bytes(bytes in mutate::bytes(b"{\"committed\":[")) {
        check_ack(&bytes);
    }

    #[test]
    fn ack_json_mutated(doc in mutate::mutated(ack_docs())) {
        check_ack(&doc);
    }

}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn ack_hostile_ranges(ranges in proptest::collection::vec(hostile_range(), 0..16)) {
        let ack = CommitAck { committed: vec![Committed { source_id: "e/s".into(), epoch: 1, ranges }] };
        let json = serde_json::to_vec(&ack).unwrap();
        check_ack(&json);
    }

    /// `from_triples` then `triples()` gives back the same set (and the JSON form is lossless).
    #[test]
    fn ack_from_triples_round_trips(
        items in proptest::collection::vec(
            (
                select(vec!["e/a", "e/b", "", "é/中"]),
                prop_oneof![0u64..3, Just(u64::MAX)],
                prop_oneof![0u64..300, u64::MAX - 300..=u64::MAX, any::<u64>()],
            ),
            0..64,
        ),
    ) {
        let ack = CommitAck::from_triples(items.iter().copied());
        let want: BTreeSet<(&str, u64, u64)> = items.iter().copied().collect();
        let got: Vec<(&str, u64, u64)> = ack.triples().collect();
        prop_assert_eq!(got.len(), want.len(), "a triple came back twice or went missing");
        prop_assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
        for c in &ack.committed {
            prop_assert!(c.ranges.windows(2).all(|w| w[0].1 + 1 < w[1].0), "{:?}", c.ranges);
        }
        let back: CommitAck = serde_json::from_slice(&serde_json::to_vec(&ack).unwrap()).unwrap();
        prop_assert_eq!(back, ack);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Topics (the centre and the edge route every publish by its topic name).

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn topics_parse(
        t in prop_oneof![
            "\\PC{0,80}",
            "crowdgrid/v1(/[a-z0-9+#-]{0,8}){0,7}",
            "crowdgrid/v1/[a-z]{0,3}/(edge|evidence|x)/[a-z]{0,3}/(status|reading|ack|[-+]?[0-9]{1,25})",
        ],
    ) {
        let p = topic::PREFIX;
        if let Some((site, zone)) = topic::parse_reading(p, &t) {
            prop_assert_eq!(topic::reading(p, &site, &zone), t.clone());
        }
        if let Some((site, edge)) = topic::parse_edge_status(p, &t) {
            prop_assert_eq!(topic::edge_status(p, &site, &edge), t.clone());
        }
        if let Some((site, zone, _ticket)) = topic::parse_evidence(p, &t) {
            prop_assert!(!site.is_empty() && !zone.is_empty() && !site.contains('/') && !zone.contains('/'));
        }
        let _ = SourceKind::parse(&t);
        let _ = crowdgrid_proto::Level::parse(&t);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Site files: TOML from a string and from a file, and the GeoJSON zone polygons inside.

fn site_docs() -> Vec<Vec<u8>> {
    vec![read("config/west-taihu/site.toml").into_bytes(), read("config/boai-school/site.toml").into_bytes()]
}

/// A loaded site is usable: every zone has a real WGS84 polygon and area, and the roster can be asked who is
/// on duty.
fn check_site(site: &Site) {
    for z in &site.zones {
        assert!(!hole_outside_wgs84(z), "zone {} loaded with a hole outside WGS84", z.config.id);
        assert!(z.area_m2.is_finite() && z.area_m2 >= 1.0, "zone {} area {}", z.config.id, z.area_m2);
        for c in z.polygon.exterior().coords() {
            assert!(c.x.is_finite() && c.y.is_finite() && c.x.abs() <= 180.0 && c.y.abs() <= 90.0);
        }
    }
    for g in &site.config.grids {
        let _ = site.on_duty_workers_of_grid(&g.id, Utc::now()).count();
    }
}

/// A hole beyond a pole (found by these properties, see `regression_site_zone_hole_outside_wgs84`) gave the zone
/// an area of NaN: every ring is checked now.
fn hole_outside_wgs84(z: &crowdgrid_proto::Zone) -> bool {
    z.polygon.interiors().iter().flat_map(|r| r.coords()).any(|c| {
        !(c.x.is_finite() && c.y.is_finite() && (-180.0..=180.0).contains(&c.x) && (-90.0..=90.0).contains(&c.y))
    })
}

fn load_site_text(text: &str) {
    let path = Path::new("fuzz/site.toml");
    if let Ok(cfg) = parse_toml::<SiteConfig>(path, text) {
        if let Ok(site) = Site::from_config(cfg, path) {
            check_site(&site);
        }
    }
}

fn load_site_file(bytes: &[u8]) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    match Site::load(f.path()) {
        Ok(site) => check_site(&site),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A TOML float as written (TOML has `nan` and `inf`).
fn toml_f64() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-0.001f64..0.001).prop_map(|v| format!("{v:?}")),
        1 => hostile_f64().prop_map(|v| {
            if v.is_nan() { "nan".to_string() } else if v.is_infinite() { if v > 0.0 { "inf".into() } else { "-inf".into() } } else { format!("{v:?}") }
        }),
        1 => select(vec!["180.0", "-180.0", "90.0", "-90.0", "180.0000001", "0", "1e308", "-0.0"]).prop_map(String::from),
    ]
}

fn position() -> impl Strategy<Value = String> {
    proptest::collection::vec(toml_f64(), 0..4).prop_map(|v| format!("[{}]", v.join(", ")))
}

fn ring() -> impl Strategy<Value = String> {
    prop_oneof![
        // A ring from the fuzzer, closed or not.
        (proptest::collection::vec(position(), 0..7), any::<bool>()).prop_map(|(mut ps, close)| {
            if close && !ps.is_empty() {
                ps.push(ps[0].clone());
            }
            format!("[{}]", ps.join(", "))
        }),
        // The test square, with one coordinate swapped for a hostile one.
        (any::<Index>(), toml_f64()).prop_map(|(i, v)| {
            let mut c =
                ["0.0", "0.0", "0.000898315", "0.0", "0.000898315", "0.000904369", "0.0", "0.000904369", "0.0", "0.0"]
                    .map(String::from);
            c[i.index(c.len())] = v;
            format!(
                "[[{}, {}], [{}, {}], [{}, {}], [{}, {}], [{}, {}]]",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
            )
        }),
    ]
}

fn geometry() -> impl Strategy<Value = String> {
    let polygon = proptest::collection::vec(ring(), 0..3).prop_map(|rs| format!("[{}]", rs.join(", "))).boxed();
    prop_oneof![
        4 => polygon.clone().prop_map(|c| format!("{{ type = \"Polygon\", coordinates = {c} }}")),
        1 => proptest::collection::vec(polygon, 0..3)
            .prop_map(|ps| format!("{{ type = \"MultiPolygon\", coordinates = [{}] }}", ps.join(", "))),
        1 => position().prop_map(|p| format!("{{ type = \"Point\", coordinates = {p} }}")),
        1 => ring().prop_map(|r| format!("{{ type = \"LineString\", coordinates = {r} }}")),
        1 => Just("{ type = \"GeometryCollection\", geometries = [{ type = \"GeometryCollection\", geometries = [] }] }".to_string()),
        1 => (ring(), "\\PC{0,10}").prop_map(|(r, t)| format!("{{ type = {t:?}, coordinates = [{r}] }}")),
        1 => (polygon_bbox(), ring()).prop_map(|(b, r)| format!("{{ type = \"Polygon\", bbox = {b}, coordinates = [{r}], extra = 1 }}")),
    ]
}

fn polygon_bbox() -> impl Strategy<Value = String> {
    proptest::collection::vec(toml_f64(), 0..6).prop_map(|v| format!("[{}]", v.join(", ")))
}

fn site_with_geometry(geometry: &str) -> String {
    format!(
        "{head}\n[[workers]]\nid = \"w\"\nname = \"W\"\ngrids = [\"g\"]\n[[zones]]\nid = \"z\"\nname = \"Z\"\ngrid = \"g\"\nkind = \"square\"\ngeometry = {geometry}\n",
        head = crowdgrid_proto::testing::site_head("t"),
    )
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn site_toml_mutated(doc in mutate::mutated(site_docs())) {
        load_site_text(&String::from_utf8_lossy(&doc));
    }

    #[test]
    fn site_file_mutated(doc in mutate::mutated(site_docs())) {
        load_site_file(&doc);
    }

    #[test]
    fn site_file_arbitrary_bytes(bytes in mutate::bytes(b"id = \"t\"\n[[zones]]\n")) {
        load_site_text(&String::from_utf8_lossy(&bytes));
        load_site_file(&bytes);
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn site_zone_geojson(geometry in geometry()) {
        let text = site_with_geometry(&geometry);
        load_site_text(&text);
    }
}

#[test]
fn the_seed_documents_are_valid() {
    // Mutations start from valid documents: make sure they are.
    let now = now();
    for doc in reading_docs() {
        let r: Reading = serde_json::from_slice(&doc).unwrap();
        if r.site != "boai-school" {
            r.check(now, &Limits::default()).unwrap();
        }
    }
    for doc in status_docs() {
        serde_json::from_slice::<EdgeStatus>(&doc).unwrap();
    }
    for doc in frame_docs() {
        let f = signed::open(&doc).unwrap().unwrap();
        assert!(f.verify(format!("3.{}", "ab".repeat(32)).as_bytes(), TOPIC));
    }
    for doc in ack_docs() {
        serde_json::from_slice::<CommitAck>(&doc).unwrap();
    }
    for doc in site_docs() {
        let text = String::from_utf8(doc).unwrap();
        let site = Site::from_config(parse_toml(Path::new("s.toml"), &text).unwrap(), Path::new("s.toml")).unwrap();
        check_site(&site);
    }
    load_site_text(&site_with_geometry(crowdgrid_proto::testing::SQUARE));
}

// ---------------------------------------------------------------------------------------------------------------
// Regressions found by the properties above (fixed; kept so they stay fixed).

/// Found by `valid_reading_round_trips`: serde_json (without its `float_roundtrip` feature) parses some floats
/// one bit off, so a reading written by an edge is not the reading the centre reads back.
#[test]
fn regression_reading_float_round_trip() {
    let mut r = Reading::new("A", "-", SourceKind::Fused, " ", Utc::now(), 0.0, 0.001, 0.0);
    r.conflict = Some(920913.0089170025);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("920913.0089170025"), "{json}");
    let back: Reading = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r, "{json}");
}

/// Found by `site_zone_geojson`: only the exterior ring is checked against WGS84, so a hole reaching past the
/// pole loads, and the zone's geodesic area is NaN (which passes `area_m2 < 1.0`).
#[test]
fn regression_site_zone_hole_outside_wgs84() {
    let geometry = "{ type = \"Polygon\", coordinates = [[[0.0, 0.0], [0.000898315, 0.0], [0.000898315, 0.000904369], \
        [0.0, 0.000904369], [0.0, 0.0]], [[0.0, 0.0], [0.0, 91.0], [0.0001, 0.0], [0.0, 0.0]]] }";
    let text = site_with_geometry(geometry);
    let cfg = parse_toml::<SiteConfig>(Path::new("t.toml"), &text).unwrap();
    match Site::from_config(cfg, Path::new("t.toml")) {
        Ok(site) => panic!("loaded with zone area {}", site.zones[0].area_m2),
        Err(e) => assert!(e.to_string().contains("WGS84"), "{e}"),
    }
}
