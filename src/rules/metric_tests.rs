//! Predictive and data-quality rules through the engine, on explicit timestamps.

use crowdgrid_proto::{Level, SourceKind};

use super::testutil::*;
use super::{Audience, SourceValue, Transition};

const PREDICTIVE: &str = r#"
[[rule]]
id = "early"
metric = "predictive"
zones = ["beach"]
horizon_s = 900
window_s = 600
clear_for_s = 0
"#;

#[test]
fn predictive_warning_with_worked_numbers() {
    let mut e = engine(PREDICTIVE);
    // 1.0, 1.3, 1.6, 1.9 one minute apart: fewer than the 5 points needed.
    for i in 0..4 {
        assert!(feed(&mut e, "beach", t(i * 60), 1.0 + 0.3 * i as f64).is_empty(), "point {i}");
    }
    // 2.2 at 4 min: slope 0.3/min = 0.005/s; ETA (3.6 − 2.2) / 0.005 = 280 s < 900 s.
    let ev = feed(&mut e, "beach", t(240), 2.2);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let Transition::Fire { level, value } = ev[0].transition else { panic!("{ev:?}") };
    assert_eq!(level, Level::Notice);
    assert!((value - 280.0).abs() < 1e-6, "{value}");
    assert!(ev[0].detail.starts_with("warning in ~5 min (density 2.20/m² rising 0.30/m² per min"), "{}", ev[0].detail);
    // A drop to 1.0: the fitted slope falls to 90 / 63,000 ≈ 0.00143/s, ETA ≈ 1,820 s > 900 s: clears.
    let ev = feed(&mut e, "beach", t(300), 1.0);
    assert!(
        matches!(ev[..], [ref c] if matches!(c.transition, Transition::Clear { value } if (value - 1820.0).abs() < 1e-6)),
        "{ev:?}"
    );
}

#[test]
fn predictive_is_quiet_when_the_horizon_is_far_or_warning_already_reached() {
    let mut e = engine(PREDICTIVE);
    // Slow growth: 0.05/min from 1.0: ETA (3.6 − 1.2) / (0.05/60) = 2,880 s > 900 s.
    for i in 0..5 {
        assert!(feed(&mut e, "beach", t(i * 60), 1.0 + 0.05 * i as f64).is_empty());
    }
    let mut e = engine(PREDICTIVE);
    for i in 0..5 {
        assert!(feed(&mut e, "beach", t(i * 60), 2.5 + 0.3 * i as f64).is_empty(), "the 5th point is past warning");
    }
}

fn cells(density: f64, ts: i64) -> SourceValue {
    SourceValue { source_id: "cmcc-cells".into(), kind: SourceKind::BaseStation, density, ts: t(ts) }
}

#[test]
fn silent_source_raises_an_engineer_ticket_via_tick() {
    let rule = r#"
[[rule]]
id = "cells-silent"
metric = "silent"
source_kinds = ["base_station"]
expected_every_s = 900
"#;
    let mut e = engine(rule);
    assert!(feed_with(&mut e, "beach", t(0), 1.0, None, &[cells(1.0, 0)]).is_empty());
    assert!(e.tick(t(900)).is_empty(), "exactly the expected interval is fine");
    let ev = e.tick(t(901));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].audience, Audience::Engineer);
    assert_eq!(ev[0].transition, Transition::Fire { level: Level::Warning, value: 901.0 });
    assert_eq!(ev[0].detail, "cmcc-cells (base_station) silent for 15 min");
    assert!(e.tick(t(1000)).is_empty(), "one ticket");
    let ev = feed_with(&mut e, "beach", t(1001), 1.0, None, &[cells(1.1, 1001)]);
    assert!(is_one(&ev, "clear"), "heard again: {ev:?}");
    assert!(e.tick(t(1002)).is_empty());
}

#[test]
fn disagreement_fires_after_for_s() {
    let rule = r#"
[[rule]]
id = "disagree"
metric = "disagree"
factor = 3.0
for_s = 120
clear_for_s = 60
"#;
    let mut e = engine(rule);
    let cam =
        |d: f64, ts: i64| SourceValue { source_id: "cam".into(), kind: SourceKind::Camera, density: d, ts: t(ts) };
    let feed_both =
        |e: &mut _, ts: i64, a: f64, b: f64| feed_with(e, "jetty", t(ts), 1.0, None, &[cells(a, ts), cam(b, ts)]);
    assert!(feed_both(&mut e, 0, 0.5, 2.0).is_empty(), "×4, pending");
    assert!(feed_both(&mut e, 119, 0.5, 2.0).is_empty());
    let ev = feed_both(&mut e, 120, 0.5, 2.0);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].audience, &ev[0].transition),
        (Audience::Engineer, &Transition::Fire { level: Level::Warning, value: 4.0 })
    );
    assert_eq!(ev[0].detail, "cam reports 2.00/m², cmcc-cells reports 0.50/m² (×4.0, limit ×3)");
    assert!(feed_both(&mut e, 130, 1.0, 2.0).is_empty(), "×2: the clear timer starts");
    assert!(is_one(&feed_both(&mut e, 190, 1.0, 2.0), "clear"));
}
