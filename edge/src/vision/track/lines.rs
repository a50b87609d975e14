//! Counting lines: a segment drawn on the camera's image with a named direction, counting tracked objects that
//! cross it, per class and direction (supervision's LineZone, DeepStream's line crossing, OpenDataCam's counting
//! lines).
//!
//! A track is on one side of the line or the other by the sign of the cross product of the line (from → to) and
//! its anchor (bottom centre of the box): positive is the right-hand side looking from `from` to `to` on the image
//! (y grows downwards). Crossing into the right-hand side is `in`, into the left-hand side `out`. Three rules
//! keep the counts honest:
//! - the anchor must be within the segment's extent (its projection between the ends), so passing beside the
//!   line's end is not a crossing;
//! - the new side must hold for `stable_frames` consecutive frames, so a box whose bottom jitters on the line
//!   does not count at every jitter;
//! - each track counts at most once per direction: someone pacing back and forth at the gate is one `in` and one
//!   `out`, not ten.

use std::collections::HashMap;

use super::Track;
use crate::vision::detect::Class;

/// Which way a crossing went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Into the right-hand side of from → to.
    In,
    /// Into the left-hand side.
    Out,
}

/// One crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    pub track: u64,
    pub class: Class,
    pub direction: Direction,
}

/// What the counter remembers of a track.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// The side it was last stably on (+1 right, -1 left).
    side: i8,
    /// A different side seen for this many consecutive frames.
    pending: i8,
    pending_frames: u32,
    counted_in: bool,
    counted_out: bool,
}

/// A counting line and its memory of the tracks near it.
#[derive(Debug, Clone)]
pub struct LineCounter {
    from: (f32, f32),
    to: (f32, f32),
    stable_frames: u32,
    seen: HashMap<u64, Seen>,
    /// Totals since start, per class and direction.
    pub totals: HashMap<(Class, Direction), u64>,
}

impl LineCounter {
    /// A line from `from` to `to` in frame pixels; a side must hold `stable_frames` (≥ 1) frames to count.
    pub fn new(from: (f32, f32), to: (f32, f32), stable_frames: u32) -> Self {
        LineCounter { from, to, stable_frames: stable_frames.max(1), seen: HashMap::new(), totals: HashMap::new() }
    }

    /// +1 right of the line, -1 left, 0 on it or beyond its ends.
    fn side(&self, p: (f32, f32)) -> i8 {
        let (dx, dy) = (self.to.0 - self.from.0, self.to.1 - self.from.1);
        let len2 = dx * dx + dy * dy;
        if len2 <= 0.0 {
            return 0;
        }
        let t = ((p.0 - self.from.0) * dx + (p.1 - self.from.1) * dy) / len2;
        if !(0.0..=1.0).contains(&t) {
            return 0;
        }
        let cross = dx * (p.1 - self.from.1) - dy * (p.0 - self.from.0);
        if cross > 0.0 {
            1
        } else if cross < 0.0 {
            -1
        } else {
            0
        }
    }

    /// Takes the tracks of one frame (the tracker's confirmed tracks matched this frame); returns the crossings.
    pub fn update<'a>(&mut self, tracks: impl IntoIterator<Item = &'a Track>) -> Vec<Crossing> {
        let mut out = Vec::new();
        let mut alive = std::collections::HashSet::new();
        for t in tracks {
            alive.insert(t.id);
            let side = self.side(t.anchor());
            let s = self.seen.entry(t.id).or_default();
            if side == 0 {
                s.pending_frames = 0;
                continue;
            }
            if s.side == 0 {
                s.side = side; // first seen: where it starts, no crossing
                continue;
            }
            if side == s.side {
                s.pending_frames = 0;
                continue;
            }
            if s.pending == side {
                s.pending_frames += 1;
            } else {
                s.pending = side;
                s.pending_frames = 1;
            }
            if s.pending_frames < self.stable_frames {
                continue;
            }
            s.side = side;
            s.pending_frames = 0;
            let direction = if side > 0 { Direction::In } else { Direction::Out };
            let first = match direction {
                Direction::In => !std::mem::replace(&mut s.counted_in, true),
                Direction::Out => !std::mem::replace(&mut s.counted_out, true),
            };
            if first {
                *self.totals.entry((t.class, direction)).or_default() += 1;
                out.push(Crossing { track: t.id, class: t.class, direction });
            }
        }
        // Tracks the tracker no longer reports are forgotten (their ids are never reused).
        self.seen.retain(|id, _| alive.contains(id));
        out
    }

    /// Total crossings of `class` in `direction` since start.
    pub fn total(&self, class: Class, direction: Direction) -> u64 {
        self.totals.get(&(class, direction)).copied().unwrap_or(0)
    }
}
