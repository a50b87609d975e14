//! Exactly-once storage: the last stored `(epoch, seq)` per source. Pure; persisted by the store.

use std::collections::HashMap;

/// High-water marks per source id.
#[derive(Debug, Default, Clone)]
pub struct Dedup {
    last: HashMap<String, (u64, u64)>,
}

impl Dedup {
    /// Starts from marks loaded from the store.
    pub fn from_marks(marks: impl IntoIterator<Item = (String, u64, u64)>) -> Self {
        Self { last: marks.into_iter().map(|(s, e, q)| (s, (e, q))).collect() }
    }

    /// True if `(epoch, seq)` is new for `source_id` (and records it). A different epoch starts a new
    /// sequence space (e.g. an edge whose queue file was re-created).
    pub fn accept(&mut self, source_id: &str, epoch: u64, seq: u64) -> bool {
        match self.last.get_mut(source_id) {
            Some((e, q)) if *e == epoch => {
                if seq > *q {
                    *q = seq;
                    true
                } else {
                    false
                }
            }
            Some(mark) => {
                *mark = (epoch, seq);
                true
            }
            None => {
                self.last.insert(source_id.to_string(), (epoch, seq));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_replays_are_dropped_once() {
        let mut d = Dedup::from_marks([("a".to_string(), 7, 10)]);
        assert!(!d.accept("a", 7, 9));
        assert!(!d.accept("a", 7, 10));
        assert!(d.accept("a", 7, 11));
        assert!(!d.accept("a", 7, 11));
        assert!(d.accept("a", 8, 1), "a new epoch restarts the sequence");
        assert!(!d.accept("a", 8, 1));
        assert!(d.accept("b", 0, 0), "an unknown source is new");
    }
}
