//! Engine tests on explicit timestamps (a paused clock): `for`, hysteresis, upgrade, cooldown, schedules,
//! mute windows, tick clears and snapshot/restore.

use crowdgrid_proto::Level;

use super::testutil::*;
use super::{Audience, Engine, Snapshot, Transition};

const DENSITY_FOR_60: &str = r#"
[[rule]]
id = "crowd"
metric = "density"
zones = ["beach"]
for_s = 60
clear_for_s = 120
"#;

#[test]
fn fires_after_for_and_not_before() {
    let mut e = engine(DENSITY_FOR_60);
    assert!(feed(&mut e, "beach", t(0), 4.0).is_empty(), "pending");
    assert!(feed(&mut e, "beach", t(30), 4.2).is_empty());
    assert!(feed(&mut e, "beach", t(59), 4.1).is_empty(), "59 s is not 60 s");
    let ev = feed(&mut e, "beach", t(60), 4.0);
    assert_eq!(transitions(&ev), vec![Transition::Fire { level: Level::Warning, value: 4.0 }]);
    assert_eq!(ev[0].audience, Audience::GridWorker);
    assert_eq!(ev[0].detail, "density 4.00/m² ≥ warning 3.60/m²");
    assert_eq!(e.active_alerts(), vec![("t".into(), "beach".into(), "crowd".into(), Level::Warning)]);
}

#[test]
fn pending_resets_when_the_value_drops_below() {
    let mut e = engine(DENSITY_FOR_60);
    feed(&mut e, "beach", t(0), 4.0);
    feed(&mut e, "beach", t(30), 3.5);
    assert!(feed(&mut e, "beach", t(40), 4.0).is_empty());
    assert!(feed(&mut e, "beach", t(90), 4.0).is_empty(), "the timer restarted at 40 s");
    assert!(is_one(&feed(&mut e, "beach", t(100), 4.0), "fire"));
}

#[test]
fn upgrade_without_a_second_fire_and_clear_after_clear_for() {
    let mut e = engine("[[rule]]\nid = \"crowd\"\nmetric = \"density\"\nzones = [\"beach\"]\n");
    assert!(is_one(&feed(&mut e, "beach", t(0), 3.7), "fire"));
    assert!(feed(&mut e, "beach", t(1), 3.9).is_empty(), "a repeat at the same level yields nothing");
    let ev = feed(&mut e, "beach", t(2), 5.2);
    assert_eq!(transitions(&ev), vec![Transition::Upgrade { level: Level::Critical, value: 5.2 }]);
    assert!(feed(&mut e, "beach", t(3), 5.5).is_empty());
    assert!(feed(&mut e, "beach", t(4), 3.0).is_empty(), "3.0 is above the warning clear level 2.88");
    assert!(feed(&mut e, "beach", t(10), 2.0).is_empty(), "below: the clear timer starts");
    assert!(feed(&mut e, "beach", t(129), 2.0).is_empty());
    let ev = feed(&mut e, "beach", t(130), 2.0);
    assert_eq!(transitions(&ev), vec![Transition::Clear { value: 2.0 }]);
    assert_eq!(ev[0].detail, "density below 2.88 for 120 s");
    assert!(e.active_alerts().is_empty());
}

#[test]
fn clear_timer_runs_out_on_tick_without_new_readings() {
    let mut e = engine("[[rule]]\nid = \"crowd\"\nmetric = \"density\"\n");
    feed(&mut e, "jetty", t(0), 2.6);
    feed(&mut e, "jetty", t(10), 1.0);
    assert!(e.tick(t(129)).is_empty());
    let ev = e.tick(t(130));
    assert!(is_one(&ev, "clear") && ev[0].zone == "jetty", "{ev:?}");
}

#[test]
fn cooldown_after_clear_and_after_a_manual_close() {
    let rule =
        "[[rule]]\nid = \"crowd\"\nmetric = \"density\"\nzones = [\"beach\"]\nclear_for_s = 0\ncooldown_s = 300\n";
    let mut e = engine(rule);
    assert!(is_one(&feed(&mut e, "beach", t(0), 4.0), "fire"));
    assert!(is_one(&feed(&mut e, "beach", t(10), 1.0), "clear"));
    assert!(feed(&mut e, "beach", t(20), 4.0).is_empty(), "cooling down");
    assert!(feed(&mut e, "beach", t(309), 4.0).is_empty());
    assert!(is_one(&feed(&mut e, "beach", t(310), 4.0), "fire"), "cooldown over");
    e.mark_closed("t", "beach", "crowd", t(400));
    assert!(e.active_alerts().is_empty());
    assert!(feed(&mut e, "beach", t(500), 4.0).is_empty(), "cooldown after a manual close");
    assert!(is_one(&feed(&mut e, "beach", t(700), 4.0), "fire"));
}

const PICKUP: &str = r#"
school_holidays = [{ from = "2026-07-01", to = "2026-08-31" }]
holidays = ["2026-04-06"]
[[rule]]
id = "pickup"
metric = "density"
zones = ["beach"]
clear_for_s = 60
schedule = { days = ["mon", "tue", "wed", "thu", "fri"], from = "15:30", to = "16:30", school_days = true }
"#;

#[test]
fn schedules_gate_firing_and_clear_when_the_window_closes() {
    let mut e = engine(PICKUP);
    assert!(feed(&mut e, "beach", at("2026-03-10T15:00:00+08:00"), 4.0).is_empty(), "before the window");
    assert!(is_one(&feed(&mut e, "beach", at("2026-03-10T15:50:00+08:00"), 4.0), "fire"), "Tuesday pick-up");
    assert!(e.tick(at("2026-03-10T16:29:59+08:00")).is_empty());
    let ev = e.tick(at("2026-03-10T16:30:00+08:00"));
    assert!(is_one(&ev, "clear") && ev[0].detail == "schedule window closed", "{ev:?}");
    assert!(feed(&mut e, "beach", at("2026-03-10T16:31:00+08:00"), 4.0).is_empty(), "outside the window");
    for day in ["2026-03-14", "2026-04-06", "2026-07-15"] {
        let ts = at(&format!("{day}T15:50:00+08:00"));
        assert!(feed(&mut e, "beach", ts, 4.0).is_empty(), "{day}: Saturday, public or school holiday");
    }
    assert!(is_one(&feed(&mut e, "beach", at("2026-09-01T15:50:00+08:00"), 4.0), "fire"), "a school day again");
    let views = e.views_at(Some("t"), at("2026-09-01T17:00:00+08:00"));
    assert!(!views[0].active_now);
}

#[test]
fn mute_windows_suppress_fire_and_upgrade_but_not_clear() {
    let rule = r#"
[[rule]]
id = "crowd"
metric = "density"
zones = ["beach"]
clear_for_s = 0
mute = [{ from = "2026-03-10T14:10:00+08:00", to = "2026-03-10T14:20:00+08:00" }]
"#;
    let mut e = engine(rule);
    assert!(is_one(&feed(&mut e, "beach", t(0), 4.0), "fire"));
    assert!(feed(&mut e, "beach", t(650), 6.0).is_empty(), "muted: no upgrade");
    assert!(is_one(&feed(&mut e, "beach", t(660), 1.0), "clear"), "clears while muted");
    assert!(feed(&mut e, "beach", t(700), 4.0).is_empty(), "muted: no fire");
    assert!(is_one(&feed(&mut e, "beach", t(1200), 4.0), "fire"), "the mute ended at 14:20");
}

#[test]
fn occupancy_and_inflow_rules() {
    let rules = r#"
[[rule]]
id = "occupancy"
metric = "occupancy"
zone_kinds = ["beach"]
levels = { notice = 0.8, warning = 0.9, critical = 1.0 }
[[rule]]
id = "inflow"
metric = "inflow"
zones = ["beach"]
levels = { notice = 300.0, warning = 500.0, critical = 800.0 }
"#;
    let mut e = engine(rules);
    // 0.085/m² × 10,000 m² = 850 people of 1,000: notice only, no ticket.
    assert!(feed_with(&mut e, "beach", t(0), 0.085, None, &[]).is_empty());
    let ev = feed_with(&mut e, "beach", t(1), 0.095, Some(520.0), &[]);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0].rule, "occupancy");
    assert!(
        matches!(ev[0].transition, Transition::Fire { level: Level::Warning, value } if (value - 0.95).abs() < 1e-9)
    );
    assert_eq!(ev[0].detail, "occupancy 95.00% ≥ warning 90.00%");
    assert_eq!(transitions(&ev[1..]), vec![Transition::Fire { level: Level::Warning, value: 520.0 }]);
    assert!(feed_with(&mut e, "beach", t(2), 0.095, None, &[]).is_empty(), "no inflow: the inflow rule waits");
}

#[test]
fn conflict_rule_fires_on_people_in_the_vehicle_lane_and_clears_when_they_leave() {
    let rules = r#"
[[rule]]
id = "people-vehicle"
metric = "conflict"
zones = ["lane"]
levels = { notice = 0.5, warning = 1.0, critical = 3.0 }
for_s = 10
clear_for_s = 30
"#;
    let mut e = engine(rules);
    // Without a camera there is no conflict measure: the rule waits whatever the density.
    assert!(feed(&mut e, "lane", t(0), 5.0).is_empty());
    assert!(feed_conflict(&mut e, "lane", t(1), 0.1, 0.6).is_empty(), "notice only: no ticket");
    assert!(feed_conflict(&mut e, "lane", t(2), 0.1, 1.4).is_empty(), "warning, pending for 10 s");
    let ev = feed_conflict(&mut e, "lane", t(12), 0.1, 1.2);
    assert_eq!(transitions(&ev), vec![Transition::Fire { level: Level::Warning, value: 1.2 }]);
    assert_eq!(ev[0].detail, "people–vehicle conflict 1.20 people ≥ warning 1.00 people");
    // A crowd in the lane: critical, after the same `for`.
    let mut up = feed_conflict(&mut e, "lane", t(13), 0.1, 3.5);
    up.extend(feed_conflict(&mut e, "lane", t(23), 0.1, 3.5));
    assert_eq!(transitions(&up), vec![Transition::Upgrade { level: Level::Critical, value: 3.5 }]);
    assert!(feed_conflict(&mut e, "lane", t(30), 0.0, 0.0).is_empty(), "clear pending");
    assert!(is_one(&feed_conflict(&mut e, "lane", t(60), 0.0, 0.0), "clear"), "clears after 30 s at zero");
}

#[test]
fn snapshot_restore_keeps_a_pending_timer_and_an_active_alert() {
    let mut a = engine(DENSITY_FOR_60);
    feed(&mut a, "beach", t(0), 4.0);
    let json = serde_json::to_string(&a.snapshot()).expect("serialises");
    let mut b = engine(DENSITY_FOR_60);
    b.restore(serde_json::from_str::<Snapshot>(&json).expect("parses"));
    assert!(feed(&mut b, "beach", t(59), 4.0).is_empty(), "the pending timer survived");
    assert!(is_one(&feed(&mut b, "beach", t(60), 4.0), "fire"), "fires at 60 s, counted from before the restart");
    let json = serde_json::to_string(&b.snapshot()).expect("serialises");
    let mut c: Engine = engine(DENSITY_FOR_60);
    c.restore(serde_json::from_str(&json).expect("parses"));
    assert_eq!(c.active_alerts().len(), 1);
    assert!(feed(&mut c, "beach", t(200), 4.5).is_empty(), "no duplicate fire after the restart");
    assert!(feed(&mut c, "beach", t(210), 1.0).is_empty());
    assert!(is_one(&feed(&mut c, "beach", t(330), 1.0), "clear"));
}

#[test]
fn a_snapshot_split_by_site_is_the_same_as_each_site_s_part() {
    let mut a = engine(DENSITY_FOR_60);
    feed(&mut a, "beach", t(0), 4.0);
    let whole = a.snapshot();
    let site = whole.states[0].site.clone();
    let parts = whole.clone().by_site();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[&site], whole.of(&site));
    assert!(whole.of("elsewhere").states.is_empty());
}

#[test]
fn resume_alert_and_views() {
    let mut e = engine(DENSITY_FOR_60);
    e.resume_alert("t", "beach", "crowd", Level::Warning, t(0));
    assert!(feed(&mut e, "beach", t(100), 4.0).is_empty(), "the open ticket is not raised again");
    let v = e.views_at(None, t(100));
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].metric, v[0].for_s, v[0].clear_for_s), ("density", 60, 120));
    assert_eq!(v[0].levels.get("warning"), Some(&3.6));
    assert_eq!((v[0].state.alert, v[0].state.last_value), (Some(Level::Warning), Some(4.0)));
    assert!(v[0].active_now);
    let json = serde_json::to_value(&v[0]).expect("serialises");
    assert_eq!(json["state"]["level"], "warning");
}

/// Applying a new rule set live: an unchanged rule keeps its pending `for` timer; a rule whose levels changed
/// keeps its active alert (its ticket is cleared by the new levels) but not its timers.
#[test]
fn replacing_rules_keeps_the_state_of_unchanged_rules_and_the_alerts_of_changed_ones() {
    let two = |warning: f64| {
        format!(
            "{DENSITY_FOR_60}\n[[rule]]\nid = \"jetty\"\nmetric = \"density\"\nzones = [\"jetty\"]\n\
             levels = {{ notice = 1.0, warning = {warning}, critical = 9.0 }}\nclear_for_s = 30\n"
        )
    };
    let mut e = engine(&two(2.5));
    assert!(feed(&mut e, "beach", t(0), 4.0).is_empty(), "pending: `for` is 60 s");
    let fired = feed(&mut e, "jetty", t(0), 3.0);
    assert!(matches!(fired[0].transition, Transition::Fire { level: Level::Warning, .. }), "{fired:?}");
    // Same beach rule, the jetty's warning raised to 4.0.
    e.replace_rules(rules(&two(4.0)));
    let fired = feed(&mut e, "beach", t(60), 4.0);
    assert!(matches!(fired[..], [ref f] if matches!(f.transition, Transition::Fire { .. })), "timer kept: {fired:?}");
    assert!(feed(&mut e, "jetty", t(10), 3.0).is_empty(), "the jetty's alert is still active, nothing re-fired");
    // 3.0 is under the new clear level (0.8 × 4.0 = 3.2): cleared after 30 s by the new rule.
    let cleared = feed(&mut e, "jetty", t(45), 3.0);
    assert!(matches!(cleared[..], [ref c] if matches!(c.transition, Transition::Clear { .. })), "{cleared:?}");
    // A rule that is no longer there is gone; one that is new starts fresh.
    e.replace_rules(rules(DENSITY_FOR_60));
    assert_eq!(e.views_at(None, t(60)).len(), 1);
}
