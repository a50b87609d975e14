//! Commit acknowledgements: the centre tells an edge which of its readings are durably stored, on
//! `{prefix}/{site}/edge/{edge}/ack`, signed with that edge's credential. The edge deletes a reading from its
//! queue only then, so a reading the broker acknowledged but the centre never committed (a centre killed between
//! the two, a broker that lost its queue) is sent again instead of being lost.

use serde::{Deserialize, Serialize};

/// One acknowledgement message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitAck {
    /// Committed readings, per source and epoch.
    pub committed: Vec<Committed>,
}

/// Committed sequence numbers of one source in one epoch, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committed {
    /// Source id.
    pub source_id: String,
    /// Sequence space.
    pub epoch: u64,
    /// Inclusive `[first, last]` ranges, ascending, not overlapping.
    pub ranges: Vec<(u64, u64)>,
}

/// Most sequence numbers one range may span when read (a bound on work per message at the edge).
pub const MAX_RANGE_SPAN: u64 = 1_000_000;

impl CommitAck {
    /// Builds the message from `(source_id, epoch, seq)` triples in any order (duplicates allowed).
    pub fn from_triples<'a>(items: impl IntoIterator<Item = (&'a str, u64, u64)>) -> CommitAck {
        let mut by: std::collections::BTreeMap<(&str, u64), Vec<u64>> = std::collections::BTreeMap::new();
        for (s, e, q) in items {
            by.entry((s, e)).or_default().push(q);
        }
        let committed = by
            .into_iter()
            .map(|((source_id, epoch), mut seqs)| {
                seqs.sort_unstable();
                seqs.dedup();
                let mut ranges: Vec<(u64, u64)> = Vec::new();
                for q in seqs {
                    match ranges.last_mut() {
                        Some((_, last)) if *last + 1 == q => *last = q,
                        _ => ranges.push((q, q)),
                    }
                }
                Committed { source_id: source_id.to_string(), epoch, ranges }
            })
            .collect();
        CommitAck { committed }
    }

    /// Every `(source_id, epoch, seq)` it acknowledges (ranges wider than [`MAX_RANGE_SPAN`] or inverted are
    /// skipped: the centre never sends them, and the readings are simply sent again).
    pub fn triples(&self) -> impl Iterator<Item = (&str, u64, u64)> + '_ {
        self.committed.iter().flat_map(|c| {
            c.ranges
                .iter()
                .filter(|(a, b)| a <= b && b - a < MAX_RANGE_SPAN)
                .flat_map(move |(a, b)| (*a..=*b).map(move |q| (c.source_id.as_str(), c.epoch, q)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_and_expand_back() {
        let items = [("e/a", 1, 5), ("e/a", 1, 3), ("e/a", 1, 4), ("e/a", 1, 9), ("e/b", 2, 1), ("e/a", 1, 4)];
        let ack = CommitAck::from_triples(items);
        assert_eq!(ack.committed[0], Committed { source_id: "e/a".into(), epoch: 1, ranges: vec![(3, 5), (9, 9)] });
        let json = serde_json::to_string(&ack).unwrap();
        assert_eq!(
            json,
            r#"{"committed":[{"source_id":"e/a","epoch":1,"ranges":[[3,5],[9,9]]},{"source_id":"e/b","epoch":2,"ranges":[[1,1]]}]}"#
        );
        let back: CommitAck = serde_json::from_str(&json).unwrap();
        let all: Vec<_> = back.triples().collect();
        assert_eq!(all, vec![("e/a", 1, 3), ("e/a", 1, 4), ("e/a", 1, 5), ("e/a", 1, 9), ("e/b", 2, 1)]);
        let hostile = CommitAck {
            committed: vec![Committed { source_id: "x".into(), epoch: 0, ranges: vec![(5, 1), (0, u64::MAX)] }],
        };
        assert_eq!(hostile.triples().count(), 0);
    }
}
