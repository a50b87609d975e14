//! Worked examples: boxes in frame pixels, one call per frame, the numbers written out.

use super::lines::{Direction, LineCounter};
use super::*;

fn person(score: f32, x: f32, y: f32) -> Detection {
    // A 20 × 60 px person whose top-left is (x, y).
    Detection { class: Class::Person, raw_class: 0, score, x1: x, y1: y, x2: x + 20.0, y2: y + 60.0 }
}

fn ids(t: &Tracker) -> Vec<u64> {
    let mut v: Vec<u64> = t.tracked(0).map(|t| t.id).collect();
    v.sort();
    v
}

#[test]
fn a_person_occluded_for_eight_frames_keeps_their_id() {
    // Walking right at 4 px/frame; frames 10–17 have no detection (behind a pillar), frame 18 finds them again
    // 72 px further on, where the motion model predicted.
    let mut t = Tracker::new(TrackerConfig::default());
    for k in 0..10 {
        t.update(&[person(0.9, 100.0 + 4.0 * k as f32, 50.0)]);
    }
    let id = ids(&t);
    assert_eq!(id.len(), 1);
    for k in 10..18 {
        t.update(&[]);
        // Still counted while missed for up to 2 frames (the steadier occupancy), not after.
        assert_eq!(t.tracked(2).count(), usize::from(k < 12), "frame {k}");
    }
    t.update(&[person(0.9, 100.0 + 4.0 * 18.0, 50.0)]);
    assert_eq!(ids(&t), id, "the same id after the occlusion");
    assert_eq!(t.tracks().len(), 1, "no second track was started");
}

#[test]
fn two_people_crossing_paths_keep_their_ids() {
    // A walks right from x=0, B walks left from x=200, 5 px/frame each, 8 px apart vertically: at frame 20 both
    // are at x=100 and their boxes overlap by IoU 52/68 = 0.76; the predictions keep them apart.
    let a = |k: f32| person(0.9, 5.0 * k, 50.0);
    let b = |k: f32| person(0.85, 200.0 - 5.0 * k, 58.0);
    let mut t = Tracker::new(TrackerConfig::default());
    t.update(&[a(0.0), b(0.0)]);
    let id_of = |t: &Tracker, left: bool| {
        let mut v: Vec<_> = t.tracked(0).collect();
        v.sort_by(|p, q| p.bbox()[0].total_cmp(&q.bbox()[0]));
        if left {
            v[0].id
        } else {
            v[1].id
        }
    };
    let (ida, idb) = (id_of(&t, true), id_of(&t, false));
    for k in 1..=40 {
        t.update(&[b(k as f32), a(k as f32)]);
    }
    // After crossing, A is on the right and B on the left: their ids went with them.
    assert_eq!((id_of(&t, false), id_of(&t, true)), (ida, idb));
    assert_eq!(t.tracks().len(), 2);
}

#[test]
fn a_half_hidden_person_is_held_by_low_score_boxes() {
    // Score 0.3 for five frames (under `high`, over `low`): matched in the second pass, same id, still counted.
    let mut t = Tracker::new(TrackerConfig::default());
    for k in 0..5 {
        t.update(&[person(0.8, 100.0 + 2.0 * k as f32, 50.0)]);
    }
    let id = ids(&t);
    for k in 5..10 {
        t.update(&[person(0.3, 100.0 + 2.0 * k as f32, 50.0)]);
        assert_eq!(ids(&t), id, "frame {k}");
    }
    // A low-score box where no one was never starts a track.
    t.update(&[person(0.8, 120.0, 50.0), person(0.3, 400.0, 300.0)]);
    assert_eq!(t.tracks().len(), 1);
}

#[test]
fn a_one_frame_false_positive_never_becomes_a_track() {
    let mut t = Tracker::new(TrackerConfig::default());
    t.update(&[person(0.9, 100.0, 50.0)]);
    t.update(&[person(0.9, 100.0, 50.0), person(0.7, 300.0, 50.0)]); // the second: one frame only
    assert_eq!(t.tracked(0).count(), 1, "tentative, not counted");
    t.update(&[person(0.9, 100.0, 50.0)]);
    assert_eq!(t.tracks().len(), 1, "dropped when it did not come back");
}

/// A horizontal line across the gate at y = 200 from x = 0 to x = 400, drawn left to right: `in` is downwards
/// (the right-hand side looking along it on the image).
fn gate() -> LineCounter {
    LineCounter::new((0.0, 200.0), (400.0, 200.0), 2)
}

#[test]
fn walking_through_the_gate_counts_once_each_way() {
    // The anchor (bottom centre) starts at y = 50 + 60 = 110 and moves 10 px/frame down: it passes y = 200 at
    // frame 9, then the person turns back up.
    let mut t = Tracker::new(TrackerConfig::default());
    let mut line = gate();
    let mut crossings = Vec::new();
    let mut y = 50.0;
    let path: Vec<f32> = (0..20).map(|_| 10.0).chain((0..20).map(|_| -10.0)).chain((0..20).map(|_| 10.0)).collect();
    for dy in path {
        t.update(&[person(0.9, 100.0, y)]);
        crossings.extend(line.update(t.tracked(0)));
        y += dy;
    }
    let dirs: Vec<Direction> = crossings.iter().map(|c| c.direction).collect();
    assert_eq!(dirs, vec![Direction::In, Direction::Out], "down, up, down again: the second `in` is the same person");
    assert_eq!((line.total(Class::Person, Direction::In), line.total(Class::Person, Direction::Out)), (1, 1));
    assert_eq!(line.total(Class::Vehicle, Direction::In), 0);
}

#[test]
fn a_box_jittering_on_the_line_is_not_a_crossing() {
    // Standing on the line: the detector's box bottom alternates y = 198 and 203 (±2.5 px of noise) for 30
    // frames. Each side lasts one frame, never the two a crossing needs.
    let mut t = Tracker::new(TrackerConfig::default());
    let mut line = gate();
    for k in 0..30 {
        let top = if k % 2 == 0 { 138.0 } else { 143.0 };
        t.update(&[person(0.9, 150.0, top)]);
        assert!(line.update(t.tracked(0)).is_empty(), "frame {k}");
    }
    // A detection flicker (one frame missing) while walking past the end of the line is not a crossing either.
    let mut line = gate();
    let mut t = Tracker::new(TrackerConfig::default());
    for k in 0..30 {
        let d = person(0.9, 420.0, 120.0 + 8.0 * k as f32); // x 420–440: beyond the line's end at 400
        t.update(if k == 10 { &[][..] } else { std::slice::from_ref(&d) });
        assert!(line.update(t.tracked(1)).is_empty(), "frame {k}");
    }
}
