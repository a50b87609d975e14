//! Exactly-once storage that tolerates reordering: per source, every `seq` up to a contiguous mark `low` is
//! stored, plus a set of the ones above it that arrived early. A reading is new unless its `seq` is at or below
//! `low` or already in the set; a gap is a `seq` between `low` and the highest seen that has not arrived (yet).
//! Pure; the marks and the early arrivals are persisted by the store writer in the same transaction as the
//! readings, so a restart neither loses nor double-stores.
//!
//! Why not a high-water mark alone: a publisher that reconnects and resends in a different order (or two paths
//! through a bridged broker) would have every reading below the newest one dropped as a "duplicate", silently.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

/// Early arrivals kept per source; past this the oldest gap is given up (counted in `abandoned`) so memory stays
/// bounded whatever a broken edge sends.
pub const MAX_PENDING: usize = 65_536;

/// What to do with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen before: store it. `reordered` if a higher `seq` of the same epoch arrived earlier.
    New { reordered: bool },
    /// Already stored (a QoS 1 redelivery, a replay after a reconnect).
    Duplicate,
    /// From an epoch older than the source's current one (a stream that was replaced).
    Stale,
}

/// One source's sequence state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mark {
    /// Sequence space.
    pub epoch: u64,
    /// Every seq up to this one is stored (0: none yet).
    pub low: u64,
    /// Highest seq stored.
    pub high: u64,
    /// Stored seqs above `low`.
    pub early: BTreeSet<u64>,
    /// Seq 0 was stored (hand publishers may start at 0; edges start at 1).
    pub zero: bool,
}

/// Counters per source, for the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceSequence {
    /// Source id.
    pub source_id: String,
    /// Current epoch.
    pub epoch: u64,
    /// Every seq up to this is stored.
    pub contiguous: u64,
    /// Highest seq stored.
    pub highest: u64,
    /// Seqs between `contiguous` and `highest` not received (yet).
    pub missing: u64,
    /// Readings that arrived after a higher seq (since start).
    pub reordered: u64,
    /// Readings dropped as already stored (since start).
    pub duplicates: u64,
    /// Readings of an older epoch dropped (since start).
    pub stale: u64,
    /// Seqs given up on when more than [`MAX_PENDING`] arrived early (since start).
    pub abandoned: u64,
}

#[derive(Debug, Clone, Default)]
struct Counters {
    reordered: u64,
    duplicates: u64,
    stale: u64,
    abandoned: u64,
}

/// Sequence state of every source.
#[derive(Debug, Default, Clone)]
pub struct Dedup {
    marks: HashMap<String, (Mark, Counters)>,
}

impl Dedup {
    /// Starts from the marks loaded from the store.
    pub fn from_marks(marks: impl IntoIterator<Item = (String, Mark)>) -> Self {
        Self { marks: marks.into_iter().map(|(s, m)| (s, (m, Counters::default()))).collect() }
    }

    /// Takes the marks as the store has them (at start; in a cluster, a site's sources when this instance takes
    /// the site over), replacing what it knew of those sources.
    pub fn load(&mut self, rows: Vec<(crate::store::writer::MarkRow, Vec<u64>)>) {
        for (m, early) in rows {
            let mark =
                Mark { epoch: m.epoch, low: m.low, high: m.high, early: early.into_iter().collect(), zero: false };
            self.marks.insert(m.source_id, (mark, Counters::default()));
        }
    }

    /// Decides on `(epoch, seq)` of `source_id` and records it. A higher epoch starts a new sequence space (an
    /// edge whose queue file was re-created: edges use the file's creation time).
    pub fn accept(&mut self, source_id: &str, epoch: u64, seq: u64) -> Verdict {
        let (mark, counters) = match self.marks.get_mut(source_id) {
            Some(m) => m,
            None => self
                .marks
                .entry(source_id.to_string())
                .or_insert_with(|| (Mark { epoch, ..Mark::default() }, Counters::default())),
        };
        if epoch < mark.epoch {
            counters.stale += 1;
            return Verdict::Stale;
        }
        if epoch > mark.epoch {
            *mark = Mark { epoch, ..Mark::default() };
        }
        if seq == 0 && !mark.zero && mark.low == 0 {
            mark.zero = true;
            return Verdict::New { reordered: mark.high > 0 };
        }
        if seq <= mark.low || mark.early.contains(&seq) {
            counters.duplicates += 1;
            return Verdict::Duplicate;
        }
        let reordered = seq < mark.high;
        if reordered {
            counters.reordered += 1;
        }
        mark.high = mark.high.max(seq);
        if seq == mark.low + 1 {
            mark.low = seq;
            while mark.early.remove(&(mark.low + 1)) {
                mark.low += 1;
            }
        } else {
            mark.early.insert(seq);
            if mark.early.len() > MAX_PENDING {
                // Give up the oldest gap: everything below the first early arrival counts as lost.
                if let Some(first) = mark.early.pop_first() {
                    counters.abandoned += first - mark.low - 1;
                    mark.low = first;
                    while mark.early.remove(&(mark.low + 1)) {
                        mark.low += 1;
                    }
                }
            }
        }
        Verdict::New { reordered }
    }

    /// The current mark of a source.
    pub fn mark(&self, source_id: &str) -> Option<&Mark> {
        self.marks.get(source_id).map(|(m, _)| m)
    }

    /// Counters of every source, by id.
    pub fn sequences(&self) -> Vec<SourceSequence> {
        let mut out: Vec<SourceSequence> = self
            .marks
            .iter()
            .map(|(id, (m, c))| SourceSequence {
                source_id: id.clone(),
                epoch: m.epoch,
                contiguous: m.low,
                highest: m.high,
                missing: m.high.saturating_sub(m.low).saturating_sub(m.early.len() as u64),
                reordered: c.reordered,
                duplicates: c.duplicates,
                stale: c.stale,
                abandoned: c.abandoned,
            })
            .collect();
        out.sort_by(|a, b| a.source_id.cmp(&b.source_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new() -> Verdict {
        Verdict::New { reordered: false }
    }

    #[test]
    fn duplicates_and_replays_are_dropped_once() {
        let mut d = Dedup::from_marks([("a".to_string(), Mark { epoch: 7, low: 10, high: 10, ..Mark::default() })]);
        assert_eq!(d.accept("a", 7, 9), Verdict::Duplicate);
        assert_eq!(d.accept("a", 7, 10), Verdict::Duplicate);
        assert_eq!(d.accept("a", 7, 11), new());
        assert_eq!(d.accept("a", 7, 11), Verdict::Duplicate);
        assert_eq!(d.accept("a", 8, 1), new(), "a higher epoch restarts the sequence");
        assert_eq!(d.accept("a", 8, 1), Verdict::Duplicate);
        assert_eq!(d.accept("a", 7, 99), Verdict::Stale, "an older epoch is stale");
        assert_eq!(d.accept("b", 0, 0), new(), "a hand publisher may start at 0");
        assert_eq!(d.accept("b", 0, 0), Verdict::Duplicate);
        assert_eq!(d.accept("b", 0, 1), new());
        assert_eq!(d.accept("c", 0, 1), new(), "an unknown source is new");
    }

    #[test]
    fn reordered_readings_are_stored_and_gaps_reported() {
        let mut d = Dedup::default();
        for s in [1, 2, 5, 6] {
            d.accept("e/s", 1, s);
        }
        let seq = |d: &Dedup| d.sequences().into_iter().next().unwrap();
        assert_eq!((seq(&d).contiguous, seq(&d).highest, seq(&d).missing), (2, 6, 2), "3 and 4 are missing");
        assert_eq!(d.accept("e/s", 1, 4), Verdict::New { reordered: true });
        assert_eq!(d.accept("e/s", 1, 4), Verdict::Duplicate);
        assert_eq!(seq(&d).missing, 1);
        assert_eq!(d.accept("e/s", 1, 3), Verdict::New { reordered: true });
        let s = seq(&d);
        assert_eq!((s.contiguous, s.highest, s.missing, s.reordered, s.duplicates), (6, 6, 0, 2, 1));
        assert!(d.mark("e/s").unwrap().early.is_empty(), "the gap closed: nothing pending");
    }

    #[test]
    fn early_arrivals_are_bounded() {
        let mut d = Dedup::default();
        d.accept("e/s", 1, 1);
        // Seq 2 never comes; MAX_PENDING + 1 later ones do.
        for s in 3..(MAX_PENDING as u64 + 4) {
            d.accept("e/s", 1, s);
        }
        let m = d.mark("e/s").unwrap();
        assert!(m.early.len() <= MAX_PENDING);
        let s = &d.sequences()[0];
        assert_eq!((s.abandoned, s.missing), (1, 0), "seq 2 given up, counted");
        assert_eq!(d.accept("e/s", 1, 2), Verdict::Duplicate, "below the mark now");
    }
}
