//! Property test: over random density series, an alert never flaps inside its hysteresis band (safety), and it
//! does fire and clear when it must (liveness: an engine that never fires passes the first half alone).

use proptest::prelude::*;

use super::testutil::*;
use super::Transition;

const WARNING: f64 = 3.6;
const CLEAR_BELOW: f64 = 3.6 * 0.8;

fn value() -> impl Strategy<Value = f64> {
    // Half the values inside or around the band [2.88, 3.6), where flapping would show.
    prop_oneof![0.0..7.0f64, 2.5..3.8f64]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Between two Fires there is always a Clear; a Fire needs the value at/above warning for `for_s` and the
    /// cooldown over; a Clear needs the value below the clear level for `clear_for_s` without a break.
    #[test]
    fn no_flapping_inside_the_hysteresis_band(
        steps in prop::collection::vec((1i64..90, value(), any::<bool>()), 1..300),
        for_s in 0i64..120,
        clear_for_s in 0i64..300,
        cooldown_s in 0i64..300,
    ) {
        let rule = format!(
            "[[rule]]\nid = \"crowd\"\nmetric = \"density\"\nzones = [\"beach\"]\n\
             for_s = {for_s}\nclear_for_s = {clear_for_s}\ncooldown_s = {cooldown_s}\n"
        );
        let mut e = engine(&rule);
        let (mut ts, mut active, mut last_clear) = (0i64, false, None::<i64>);
        let (mut above_since, mut below_since) = (None::<i64>, None::<i64>);
        for (dt, v, tick) in steps {
            ts += dt;
            above_since = if v >= WARNING { Some(above_since.unwrap_or(ts)) } else { None };
            below_since = if v < CLEAR_BELOW { Some(below_since.unwrap_or(ts)) } else { None };
            let mut events = feed(&mut e, "beach", t(ts), v);
            if tick {
                events.extend(e.tick(t(ts)));
            }
            for ev in events {
                match ev.transition {
                    Transition::Fire { .. } => {
                        prop_assert!(!active, "a second Fire at {ts} without a Clear");
                        prop_assert!(above_since.is_some_and(|s| ts - s >= for_s), "fired before `for` at {ts}");
                        prop_assert!(last_clear.is_none_or(|c| ts - c >= cooldown_s), "fired in the cooldown at {ts}");
                        active = true;
                    }
                    Transition::Upgrade { .. } => prop_assert!(active, "upgrade without an alert"),
                    Transition::Clear { .. } => {
                        prop_assert!(active, "a Clear without an alert at {ts}");
                        prop_assert!(
                            below_since.is_some_and(|s| ts - s >= clear_for_s),
                            "cleared at {ts} though the value was not below {CLEAR_BELOW} for {clear_for_s} s"
                        );
                        active = false;
                        last_clear = Some(ts);
                    }
                }
            }
            // Liveness: held at/above warning for `for` (out of the cooldown) it has fired; held below the clear
            // level for `clear_for` it has cleared.
            if above_since.is_some_and(|s| ts - s >= for_s) && last_clear.is_none_or(|c| ts - c >= cooldown_s) {
                prop_assert!(active, "{v} at/above {WARNING} since {above_since:?}, for_s {for_s}: no alert at {ts}");
            }
            if below_since.is_some_and(|s| ts - s >= clear_for_s) {
                prop_assert!(!active, "{v} below {CLEAR_BELOW} since {below_since:?}, clear_for_s {clear_for_s}: still active at {ts}");
            }
        }
    }
}
