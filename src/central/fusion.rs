//! Fusion at the centre: one density per zone from every source of every edge, each estimate weighted by its
//! confidence *and* by how much of the zone it observed (docs/FUSION.md has the model with worked numbers).
//!
//! Why here and not at the edge: two edges can see one zone (the West Taihu drone beside the base-station edge);
//! each edge's own `fused` reading knows only its sources, and taking whichever arrived last made the zone jump
//! between them. The centre has every source's latest estimate, so it combines them once. Edge `fused` series are
//! still stored and shown, never used to drive the zone.
//!
//! For the fresh estimates i of a zone of area A (observed area aᵢ, density dᵢ, confidence cᵢ):
//!
//! ```text
//! coverage fᵢ = min(aᵢ, A) / A          weight wᵢ = cᵢ · fᵢ
//! density  D  = Σ wᵢ dᵢ / Σ wᵢ          count = D · A
//! observed    = max fᵢ · A              confidence = max wᵢ
//! ```
//!
//! A density seen on part of a zone counts for that part only: a drone seeing 2 % of a campground at confidence
//! 0.7 weighs 0.014 against a base station's 0.6 over the whole of it. When every estimate sees the same true
//! density, D is that density whatever their coverages; an estimate that observes nothing (aᵢ = 0) or has zero
//! confidence changes nothing. The published confidence is that of the best whole-zone-equivalent estimate, so a
//! zone known only through a sliver, or whose whole-zone sources went stale, says so.

use chrono::{DateTime, Utc};

/// One source's latest estimate for a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// People per m² over the observed area.
    pub density: f64,
    /// Observed area, m².
    pub area_m2: f64,
    /// 0..1.
    pub confidence: f64,
    /// When it applies.
    pub ts: DateTime<Utc>,
}

/// The zone's fused estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// People per m² over the zone.
    pub density: f64,
    /// People in the zone (`density × zone area`).
    pub count: f64,
    /// Part of the zone observed (0..1): the largest single coverage, a lower bound on their union.
    pub coverage: f64,
    /// Confidence of the fused value: the largest `confidence × coverage`.
    pub confidence: f64,
    /// Estimates that took part.
    pub sources: usize,
}

/// Fuses the estimates fresh at `now` (not older than `fresh`); `None` if none can carry weight.
pub fn fuse<E: std::borrow::Borrow<Estimate>>(
    zone_area: f64,
    estimates: impl IntoIterator<Item = E>,
    now: DateTime<Utc>,
    fresh: chrono::Duration,
) -> Option<Fused> {
    if !(zone_area.is_finite() && zone_area > 0.0) {
        return None;
    }
    let (mut sw, mut swd, mut coverage, mut confidence, mut n) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize);
    for e in estimates {
        let e = e.borrow();
        if now - e.ts > fresh || !(e.density.is_finite() && e.area_m2.is_finite() && e.confidence.is_finite()) {
            continue;
        }
        let f = (e.area_m2.max(0.0) / zone_area).min(1.0);
        let w = e.confidence.clamp(0.0, 1.0) * f;
        if w <= 0.0 {
            continue;
        }
        sw += w;
        swd += w * e.density.max(0.0);
        coverage = coverage.max(f);
        confidence = confidence.max(w);
        n += 1;
    }
    if sw <= 0.0 {
        return None;
    }
    let density = swd / sw;
    Some(Fused { density, count: density * zone_area, coverage, confidence, sources: n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn est(density: f64, area_m2: f64, confidence: f64, ts: i64) -> Estimate {
        Estimate { density, area_m2, confidence, ts: at(ts) }
    }

    const FRESH: chrono::Duration = chrono::Duration::seconds(120);

    #[test]
    fn a_drone_sliver_barely_moves_a_zone_the_base_station_sees_whole() {
        // Campground 14,913 m²: base station 2.0/m² over all of it at 0.6; a drone frame sees 292 m² (2 %) at 0.7
        // and reads 0.
        let bs = est(2.0, 14_913.0, 0.6, 0);
        let drone = est(0.0, 292.0, 0.7, 0);
        let f = fuse(14_913.0, [&bs, &drone], at(0), FRESH).unwrap();
        // w_bs = 0.6, w_drone = 0.7 × 292/14913 = 0.013706; D = 0.6 × 2 / 0.613706 = 1.95533
        assert!((f.density - 1.955_33).abs() < 1e-4, "{}", f.density);
        assert_eq!(f.sources, 2);
        assert_eq!(f.coverage, 1.0);
        // On main, confidence weights alone gave D = 0.6 × 2 / 1.3 = 0.923: the sliver pulled it down by half.
        let only_drone = fuse(14_913.0, [&drone], at(0), FRESH).unwrap();
        assert!((only_drone.coverage - 292.0 / 14_913.0).abs() < 1e-12);
        assert!(only_drone.confidence < 0.014, "a sliver alone is published with little confidence");
    }

    #[test]
    fn a_camera_seeing_part_of_the_zone_counts_for_that_part() {
        // Gate plaza 600 m²; the camera sees 240 m² (40 %) with 6 people there: 0.025/m². Nothing else: the zone's
        // density is the camera's, the count extrapolated to the plaza (15), and the coverage says 40 %.
        let cam = est(6.0 / 240.0, 240.0, 0.8, 0);
        let f = fuse(600.0, [&cam], at(0), FRESH).unwrap();
        assert!((f.density - 0.025).abs() < 1e-12);
        assert!((f.count - 15.0).abs() < 1e-9);
        assert!((f.coverage - 0.4).abs() < 1e-12);
        assert!((f.confidence - 0.32).abs() < 1e-12);
        // An area larger than the zone (a calibration that disagrees with the site) counts as the whole zone.
        let wide = est(0.01, 1456.0, 0.8, 0);
        assert_eq!(fuse(600.0, [&wide], at(0), FRESH).unwrap().coverage, 1.0);
    }

    #[test]
    fn two_edges_on_one_zone_give_one_density() {
        // Edge 1's base station says 3.0/m² over the whole campground; edge 2's drone 3.4/m² over 30 % of it.
        let a = est(3.0, 10_000.0, 0.6, 0);
        let b = est(3.4, 3_000.0, 0.7, 1);
        let ab = fuse(10_000.0, [&a, &b], at(1), FRESH).unwrap();
        let ba = fuse(10_000.0, [&b, &a], at(1), FRESH).unwrap();
        assert_eq!(ab, ba, "order of arrival does not matter");
        // w = 0.6 and 0.21: D = (1.8 + 0.714) / 0.81 = 3.10370
        assert!((ab.density - 3.103_70).abs() < 1e-4, "{}", ab.density);
    }

    #[test]
    fn stale_estimates_drop_out_and_lower_the_confidence() {
        let bs = est(2.0, 1000.0, 0.6, 0);
        let cam = est(1.0, 250.0, 0.8, 200);
        let f = fuse(1000.0, [&bs, &cam], at(200), FRESH).unwrap();
        assert_eq!(f.sources, 1, "the base station is 200 s old");
        assert_eq!(f.density, 1.0);
        assert!((f.confidence - 0.2).abs() < 1e-12);
        assert_eq!(fuse(1000.0, [&bs], at(500), FRESH), None);
    }

    proptest! {
        #[test]
        fn the_same_true_density_comes_back_whatever_the_coverages(
            d in 0.0f64..10.0,
            parts in proptest::collection::vec((0.0f64..1.5, 0.0f64..1.0), 1..8),
            area in 10.0f64..100_000.0,
        ) {
            let es: Vec<Estimate> = parts.iter().map(|(f, c)| est(d, f * area, *c, 0)).collect();
            if let Some(fused) = fuse(area, &es, at(0), FRESH) {
                prop_assert!((fused.density - d).abs() <= 1e-9 * d.max(1.0), "{} vs {d}", fused.density);
                prop_assert!(fused.coverage <= 1.0 && fused.confidence <= 1.0);
            } else {
                prop_assert!(parts.iter().all(|(f, c)| f * c == 0.0), "only weightless estimates give nothing");
            }
        }

        #[test]
        fn a_source_that_sees_nothing_changes_nothing(
            parts in proptest::collection::vec((0.0f64..10.0, 0.01f64..1.0, 0.05f64..1.0), 1..8),
            blind in (0.0f64..10.0, 0.0f64..1.0),
        ) {
            let area = 1000.0;
            let es: Vec<Estimate> = parts.iter().map(|(d, f, c)| est(*d, f * area, *c, 0)).collect();
            let base = fuse(area, &es, at(0), FRESH).unwrap();
            let mut with = es.clone();
            with.push(est(blind.0, 0.0, blind.1, 0));
            let after = fuse(area, &with, at(0), FRESH).unwrap();
            prop_assert_eq!(base, after);
        }
    }
}
