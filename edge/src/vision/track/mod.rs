//! Multi-object tracking on the detector's boxes, ByteTrack-style (Zhang et al., 2022): every detection is
//! associated, not only the confident ones. Per frame and per class:
//!
//! 1. every track's box is predicted one frame ahead ([`kalman::Motion`], constant velocity);
//! 2. detections at or above `high` are matched to all tracks (tracked and lost) by IoU ≥ `match_iou`;
//! 3. detections between `low` and `high` — a person half hidden behind another, blurred, at the edge — are
//!    matched to the tracks still unmatched that were seen last frame, by IoU ≥ `low_match_iou`: this is what
//!    keeps an occluded person's id where a confidence threshold alone would drop them;
//! 4. tracks left unmatched are lost, kept (coasting on their prediction) for `max_lost` frames, then removed;
//!    a track that was never confirmed is removed at once;
//! 5. confident unmatched detections (≥ `new_track`) start tentative tracks, confirmed after `min_hits`
//!    consecutive frames: a one-frame false positive never becomes a track.
//!
//! Matching is greedy by IoU, highest pair first, rather than Hungarian: with the few dozen boxes of a gate camera
//! the two agree except on near ties, and greedy keeps this allocation-light and deterministic. Pure and
//! synchronous: it runs on the camera's inference thread, after NMS, never on the async runtime.

pub mod kalman;
pub mod lines;

use super::detect::{box_iou, Class, Detection};
use kalman::Motion;

/// The tracker's thresholds (ByteTrack's defaults for 30 fps video).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this are associated first.
    pub high: f32,
    /// Detections below this are ignored.
    pub low: f32,
    /// An unmatched detection at or above this starts a track.
    pub new_track: f32,
    /// IoU a confident detection needs with a track's prediction.
    pub match_iou: f32,
    /// IoU a low-score detection needs (stricter: it is less sure to be a person).
    pub low_match_iou: f32,
    /// Frames a lost track is kept before it is removed.
    pub max_lost: u32,
    /// Consecutive frames before a new track is confirmed.
    pub min_hits: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high: 0.5,
            low: 0.1,
            new_track: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            max_lost: 30,
            min_hits: 2,
        }
    }
}

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Unique for the tracker's life.
    pub id: u64,
    pub class: Class,
    motion: Motion,
    /// Consecutive frames matched.
    hits: u32,
    /// Frames since last matched (0: matched this frame).
    pub missed: u32,
    /// Confirmed (seen `min_hits` frames in a row at least once).
    pub confirmed: bool,
    /// Score of the last matched detection.
    pub score: f32,
}

impl Track {
    /// The box: the last detection's, corrected by the motion model; predicted while lost.
    pub fn bbox(&self) -> [f32; 4] {
        self.motion.bbox()
    }

    /// The point that stands for the object on the ground: the bottom centre of its box (as the zone counting).
    pub fn anchor(&self) -> (f32, f32) {
        let b = self.bbox();
        ((b[0] + b[2]) / 2.0, b[3])
    }
}

/// The tracker of one camera.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    frames: u64,
}

/// Greedy matching of `tracks` (indices into `all`) to `dets` (indices into `detections`): highest IoU first.
fn greedy(
    all: &[Track],
    tracks: &[usize],
    detections: &[Detection],
    dets: &[usize],
    min_iou: f32,
) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for &t in tracks {
        let p = all[t].bbox();
        for &d in dets {
            let v = box_iou(p, detections[d].bbox());
            if v >= min_iou {
                pairs.push((v, t, d));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut used_t, mut used_d) = (vec![false; all.len()], vec![false; detections.len()]);
    let mut out = Vec::new();
    for (_, t, d) in pairs {
        if !used_t[t] && !used_d[d] {
            used_t[t] = true;
            used_d[d] = true;
            out.push((t, d));
        }
    }
    out
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker { config, tracks: Vec::new(), next_id: 1, frames: 0 }
    }

    /// Every track kept, lost ones included.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Confirmed tracks missed for at most `max_missed` frames: the tracked count of people or vehicles, which a
    /// person missed by the detector for a frame or two does not leave.
    pub fn tracked(&self, max_missed: u32) -> impl Iterator<Item = &Track> {
        self.tracks.iter().filter(move |t| t.confirmed && t.missed <= max_missed)
    }

    /// Takes one frame's detections (after NMS, frame pixels).
    pub fn update(&mut self, detections: &[Detection]) {
        let c = self.config;
        self.frames += 1;
        for t in &mut self.tracks {
            t.motion.predict();
        }
        // assign[track] = the detection it matched this frame.
        let mut assign: Vec<Option<usize>> = vec![None; self.tracks.len()];
        let mut taken = vec![false; detections.len()];
        for class in [Class::Person, Class::Vehicle] {
            let of_class: Vec<usize> = (0..self.tracks.len()).filter(|&i| self.tracks[i].class == class).collect();
            let scored = |lo: f32, hi: f32| -> Vec<usize> {
                (0..detections.len())
                    .filter(|&d| detections[d].class == class && detections[d].score >= lo && detections[d].score < hi)
                    .collect()
            };
            let high = scored(c.high, f32::INFINITY);
            for (t, d) in greedy(&self.tracks, &of_class, detections, &high, c.match_iou) {
                assign[t] = Some(d);
                taken[d] = true;
            }
            // Second pass: the low-score boxes, only for tracks still unmatched that were seen last frame.
            let seen_last: Vec<usize> =
                of_class.iter().copied().filter(|&t| assign[t].is_none() && self.tracks[t].missed == 0).collect();
            let low = scored(c.low, c.high);
            for (t, d) in greedy(&self.tracks, &seen_last, detections, &low, c.low_match_iou) {
                assign[t] = Some(d);
                taken[d] = true;
            }
        }
        for (t, a) in self.tracks.iter_mut().zip(&assign) {
            match a {
                Some(d) => {
                    let det = &detections[*d];
                    t.motion.update(det.bbox());
                    t.missed = 0;
                    t.hits += 1;
                    t.score = det.score;
                    t.confirmed |= t.hits >= c.min_hits;
                }
                None => {
                    t.missed += 1;
                    t.hits = 0;
                }
            }
        }
        // Lost too long, or never confirmed and now unmatched: gone.
        self.tracks.retain(|t| if t.confirmed { t.missed <= c.max_lost } else { t.missed == 0 });
        // New tracks from confident leftovers; on the very first frame they are confirmed at once (ByteTrack).
        let first = self.frames == 1;
        for (d, det) in detections.iter().enumerate() {
            if taken[d] || det.score < c.new_track {
                continue;
            }
            self.tracks.push(Track {
                id: self.next_id,
                class: det.class,
                motion: Motion::new(det.bbox()),
                hits: 1,
                missed: 0,
                confirmed: first || c.min_hits <= 1,
                score: det.score,
            });
            self.next_id += 1;
        }
    }
}

#[cfg(test)]
mod tests;
