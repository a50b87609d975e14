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

    /// True if `(epoch, seq)` is above the last stored pair for `source_id` (and records it). A higher
    /// epoch starts a new sequence space (an edge whose queue file was re-created: edges use the
    /// file's creation time); a lower epoch is a stale stream and is dropped.
    pub fn accept(&mut self, source_id: &str, epoch: u64, seq: u64) -> bool {
        match self.last.get_mut(source_id) {
            Some(mark) => {
                if (epoch, seq) > *mark {
                    *mark = (epoch, seq);
                    true
                } else {
                    false
                }
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
        assert!(d.accept("a", 8, 1), "a higher epoch restarts the sequence");
        assert!(!d.accept("a", 8, 1));
        assert!(!d.accept("a", 7, 99), "an older epoch is stale");
        assert!(d.accept("b", 0, 0), "an unknown source is new");
    }
}
