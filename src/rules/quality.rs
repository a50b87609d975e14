//! Data-quality conditions for engineer tickets: a source silent for longer than expected, and two sources of
//! one zone disagreeing beyond a factor.

use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::SourceKind;

use super::SourceValue;

/// The outcome of a data-quality check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The rule's value (seconds of silence, or the max/min density ratio).
    pub value: f64,
    /// The condition holds.
    pub on: bool,
    /// What an engineer should read on the ticket.
    pub detail: String,
}

/// Remembers the newest value of each source in `into` (one entry per source id).
pub fn remember(into: &mut Vec<SourceValue>, sources: &[SourceValue]) {
    for s in sources {
        match into.iter_mut().find(|h| h.source_id == s.source_id) {
            Some(h) if s.ts > h.ts => {
                // In place: no allocation on the hot path.
                h.ts = s.ts;
                h.density = s.density;
                h.kind = s.kind;
            }
            Some(_) => {}
            None => into.push(s.clone()),
        }
    }
}

/// Sources of `kinds` (every kind when empty) not heard for more than `expected` at `now`.
/// `None` when no watched source was ever heard in the zone.
pub fn silent(heard: &[SourceValue], kinds: &[SourceKind], expected: Duration, now: DateTime<Utc>) -> Option<Check> {
    let watched = heard.iter().filter(|s| kinds.is_empty() || kinds.contains(&s.kind));
    let mut longest: Option<(f64, &SourceValue)> = None;
    let mut quiet = Vec::new();
    for s in watched {
        let gap = (now - s.ts).num_milliseconds() as f64 / 1000.0;
        if now - s.ts > expected {
            quiet.push(format!("{} ({}) silent for {:.0} min", s.source_id, s.kind.as_str(), gap / 60.0));
        }
        if longest.is_none_or(|(g, _)| gap > g) {
            longest = Some((gap, s));
        }
    }
    let (value, _) = longest?;
    let detail = if quiet.is_empty() { "every source heard".to_string() } else { quiet.join("; ") };
    Some(Check { value, on: !quiet.is_empty(), detail })
}

/// The largest max/min ratio between fresh non-fused sources at or above `min_density`.
/// `None` when fewer than two such sources report.
pub fn disagree(
    sources: &[SourceValue],
    factor: f64,
    min_density: f64,
    max_age: Duration,
    now: DateTime<Utc>,
) -> Option<Check> {
    let mut lo: Option<&SourceValue> = None;
    let mut hi: Option<&SourceValue> = None;
    let mut n = 0;
    for s in sources {
        if s.kind == SourceKind::Fused || s.density < min_density || !s.density.is_finite() || now - s.ts > max_age {
            continue;
        }
        n += 1;
        if lo.is_none_or(|l| s.density < l.density) {
            lo = Some(s);
        }
        if hi.is_none_or(|h| s.density > h.density) {
            hi = Some(s);
        }
    }
    let (lo, hi) = (lo?, hi?);
    if n < 2 {
        return None;
    }
    let value = hi.density / lo.density;
    let detail = format!(
        "{} reports {:.2}/m², {} reports {:.2}/m² (×{:.1}, limit ×{factor})",
        hi.source_id, hi.density, lo.source_id, lo.density, value
    );
    Some(Check { value, on: value > factor, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
    }

    fn src(id: &str, kind: SourceKind, density: f64, ts: i64) -> SourceValue {
        SourceValue { source_id: id.into(), kind, density, ts: t(ts) }
    }

    #[test]
    fn silent_watches_only_the_named_kinds() {
        let heard = vec![src("cells", SourceKind::BaseStation, 1.0, 0), src("gates", SourceKind::Gate, 1.0, 500)];
        let c = silent(&heard, &[SourceKind::BaseStation], Duration::seconds(900), t(901)).unwrap();
        assert!(c.on && c.detail.starts_with("cells (base_station) silent"), "{c:?}");
        assert!(!silent(&heard, &[SourceKind::Gate], Duration::seconds(900), t(901)).unwrap().on);
        assert_eq!(silent(&heard, &[SourceKind::Drone], Duration::seconds(1), t(901)), None, "never heard");
        let mut h = heard.clone();
        remember(&mut h, &[src("cells", SourceKind::BaseStation, 2.0, 900)]);
        assert!(!silent(&h, &[], Duration::seconds(900), t(901)).unwrap().on, "heard again");
    }

    #[test]
    fn disagreement_ignores_fused_stale_and_sparse_sources() {
        let s = vec![
            src("cells", SourceKind::BaseStation, 0.5, 100),
            src("cam", SourceKind::Camera, 2.0, 100),
            src("e/fused", SourceKind::Fused, 9.0, 100),
            src("drone", SourceKind::Drone, 0.05, 100),
            src("old", SourceKind::Gate, 8.0, 0),
        ];
        let c = disagree(&s, 3.0, 0.2, Duration::seconds(60), t(100)).unwrap();
        assert!((c.value - 4.0).abs() < 1e-12 && c.on, "{c:?}");
        assert!(!disagree(&s, 5.0, 0.2, Duration::seconds(60), t(100)).unwrap().on);
        assert_eq!(disagree(&s[..1], 3.0, 0.2, Duration::seconds(60), t(100)), None);
    }
}
