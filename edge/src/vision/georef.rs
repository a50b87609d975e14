//! A fixed camera's ground frame placed on the map, and how each of its image zones lies against the site
//! zone it reports for.
//!
//! A camera counts people in an image polygon and divides by that polygon's ground area (the homography).
//! The centre then spreads the density over the *site* zone's area. If the two are not the same ground, the
//! map is wrong by their ratio (a 1,456 m² camera zone reported for a 600 m² site zone showed 0.41× what the
//! detector counted). Placing the calibration's metres on the map — an origin and the bearing of its x axis —
//! lets the edge map every image zone to longitude/latitude and measure, before it starts: how much of the
//! camera's zone lies outside the site zone (people counted on someone else's ground), and how much of the
//! site zone the camera sees (the rest is extrapolated, and the centre's fusion weights it so).

use geo::orient::{Direction, Orient};
use geo::{BooleanOps, Coord, GeodesicArea, LineString, Polygon};

use super::geometry::{Homography, Point};

/// Mean Earth radius (m) for the local flat-Earth offset (errors < 0.1 % over a few hundred metres).
pub const EARTH_R: f64 = 6_371_008.8;

/// Share of a camera zone's ground allowed outside its site zone before it is refused (`check-config` and
/// start fail): beyond this the camera counts people on ground the zone does not hold.
pub const OUTSIDE_REFUSED: f64 = 0.10;
/// Share outside, or share of the zone unseen, above which a warning is printed.
pub const OUTSIDE_WARNED: f64 = 0.02;
/// A camera seeing less than this share of its zone gets a warning (the rest of the zone is extrapolated).
pub const COVERAGE_WARNED: f64 = 0.90;

/// Farthest a camera zone's corner may be from its ground frame's origin (m) to be measured against the site.
pub const MAX_REACH_M: f64 = 5_000.0;

/// The longitude/latitude `east`, `north` metres from `origin`.
pub fn offset(origin: Coord<f64>, east: f64, north: f64) -> Coord<f64> {
    let lat = origin.y + (north / EARTH_R).to_degrees();
    let lon = origin.x + (east / (EARTH_R * origin.y.to_radians().cos())).to_degrees();
    Coord { x: lon, y: lat }
}

/// A calibration's metres on the map: `(0, 0)` is at `origin` (lon, lat), the x axis points `bearing_deg`
/// clockwise from north and the y axis 90° anticlockwise from it (a right-handed frame, as on a site plan:
/// bearing 90° puts x east and y north).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundFrame {
    /// Longitude/latitude of the frame's `(0, 0)`.
    pub origin: Coord<f64>,
    /// Bearing of the x axis, degrees clockwise from north.
    pub bearing_deg: f64,
}

impl GroundFrame {
    /// The longitude/latitude of a ground point in metres.
    pub fn to_lonlat(&self, p: Point) -> Coord<f64> {
        let b = self.bearing_deg.to_radians();
        // x̂ = (sin b, cos b) in (east, north); ŷ = x̂ turned 90° anticlockwise = (−cos b, sin b).
        let east = p[0] * b.sin() - p[1] * b.cos();
        let north = p[0] * b.cos() + p[1] * b.sin();
        offset(self.origin, east, north)
    }

    /// A ground polygon (metres) as a closed, counter-clockwise lon/lat polygon.
    pub fn polygon(&self, ground: &[Point]) -> Polygon<f64> {
        let mut ring: Vec<Coord<f64>> = ground.iter().map(|p| self.to_lonlat(*p)).collect();
        if let Some(first) = ring.first().copied() {
            ring.push(first);
        }
        Polygon::new(LineString::from(ring), vec![]).orient(Direction::Default)
    }
}

/// How one camera zone's ground lies against its site zone (geodesic areas, m²).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneFit {
    /// Ground area of the camera's image zone.
    pub camera_m2: f64,
    /// Area of the site zone.
    pub site_m2: f64,
    /// Area they share.
    pub shared_m2: f64,
}

/// What to do about a [`ZoneFit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitVerdict {
    /// Same ground (within [`OUTSIDE_WARNED`] and [`COVERAGE_WARNED`]).
    Good,
    /// Usable, but the engineer should look (partly outside, or the camera sees part of the zone).
    Warn,
    /// More than [`OUTSIDE_REFUSED`] of the camera's zone is not the site zone's ground.
    Refuse,
}

impl ZoneFit {
    /// Share of the camera zone's ground that lies outside the site zone.
    pub fn outside(&self) -> f64 {
        if self.camera_m2 > 0.0 {
            (1.0 - self.shared_m2 / self.camera_m2).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    /// Share of the site zone the camera sees.
    pub fn coverage(&self) -> f64 {
        if self.site_m2 > 0.0 {
            (self.shared_m2 / self.site_m2).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Whether the zone is accepted, accepted with a warning, or refused.
    pub fn verdict(&self) -> FitVerdict {
        if self.outside() > OUTSIDE_REFUSED {
            FitVerdict::Refuse
        } else if self.outside() > OUTSIDE_WARNED || self.coverage() < COVERAGE_WARNED {
            FitVerdict::Warn
        } else {
            FitVerdict::Good
        }
    }
}

impl std::fmt::Display for ZoneFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "on the ground it covers {:.0} m² against the site zone's {:.0} m² ({:+.0} %); {:.1} % of it lies outside \
             the site zone and it sees {:.1} % of the zone",
            self.camera_m2,
            self.site_m2,
            (self.camera_m2 / self.site_m2 - 1.0) * 100.0,
            self.outside() * 100.0,
            self.coverage() * 100.0
        )
    }
}

/// Maps an image zone to the map through the homography and the ground frame and measures it against the
/// site zone's polygon. `None` when a vertex maps beyond the calibration's horizon or farther than
/// [`MAX_REACH_M`], or the origin is not on the globe.
pub fn fit(h: &Homography, frame: &GroundFrame, image_zone: &[Point], site_zone: &Polygon<f64>) -> Option<ZoneFit> {
    let ground: Vec<Point> = image_zone.iter().map(|p| h.apply(*p)).collect::<Option<_>>()?;
    // A calibration that throws a corner kilometres away (near its horizon), or an origin off the globe, is not a
    // camera view: no fit (the polygon-clipping library refuses such coordinates by panicking).
    let near = |p: &Point| p.iter().all(|v| v.is_finite() && v.abs() <= MAX_REACH_M);
    let on_globe = frame.origin.x.abs() <= 180.0 && frame.origin.y.abs() <= 85.0 && frame.bearing_deg.is_finite();
    let zone_ok = site_zone.exterior().coords().all(|c| c.x.abs() <= 180.0 && c.y.abs() <= 90.0);
    if !(ground.iter().all(near) && on_globe && zone_ok) {
        return None;
    }
    let camera = frame.polygon(&ground);
    // Geodesic areas need counter-clockwise rings (a clockwise one measures the rest of the Earth).
    let site_zone = site_zone.clone().orient(Direction::Default);
    let shared = camera.intersection(&site_zone).orient(Direction::Default);
    Some(ZoneFit {
        camera_m2: camera.geodesic_area_unsigned(),
        site_m2: site_zone.geodesic_area_unsigned(),
        shared_m2: shared.geodesic_area_unsigned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 100 m × 100 m square zone, 10 m east and north of the origin of a frame whose x axis is east.
    fn setup() -> (Homography, GroundFrame, Polygon<f64>) {
        // 1 px = 1 m (image y grows down, ground y up).
        let image = [[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]];
        let ground = [[0.0, 100.0], [100.0, 100.0], [100.0, 0.0], [0.0, 0.0]];
        let h = Homography::fit(&image, &ground).unwrap();
        let frame = GroundFrame { origin: Coord { x: 120.0, y: 31.0 }, bearing_deg: 90.0 };
        let site = frame.polygon(&[[10.0, 10.0], [110.0, 10.0], [110.0, 110.0], [10.0, 110.0]]);
        (h, frame, site)
    }

    #[test]
    fn bearing_turns_the_frame_on_the_map() {
        let o = Coord { x: 120.0, y: 31.0 };
        let east = GroundFrame { origin: o, bearing_deg: 90.0 };
        let p = east.to_lonlat([100.0, 0.0]);
        assert!(p.x > o.x && (p.y - o.y).abs() < 1e-12, "{p:?}");
        let q = east.to_lonlat([0.0, 100.0]);
        assert!(q.y > o.y && (q.x - o.x).abs() < 1e-12, "y is north when x is east: {q:?}");
        // x along a road 8° north of east: 100 m along it is 13.9 m north, 99.0 m east.
        let road = GroundFrame { origin: o, bearing_deg: 82.0 };
        let r = road.to_lonlat([100.0, 0.0]);
        let north = (r.y - o.y).to_radians() * EARTH_R;
        let east = (r.x - o.x).to_radians() * EARTH_R * o.y.to_radians().cos();
        assert!((north - 13.917).abs() < 1e-3 && (east - 99.027).abs() < 1e-3, "{east} {north}");
    }

    #[test]
    fn worked_overlaps() {
        let (h, frame, site) = setup();
        // The image square is ground (0..100)²; the zone is (10..110)²: 81 % shared each way.
        let f = fit(&h, &frame, &[[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]], &site).unwrap();
        assert!((f.camera_m2 - 10_000.0).abs() < 10.0 && (f.site_m2 - 10_000.0).abs() < 10.0, "{f:?}");
        assert!((f.outside() - 0.19).abs() < 1e-3 && (f.coverage() - 0.81).abs() < 1e-3, "{f}");
        assert_eq!(f.verdict(), FitVerdict::Refuse);
        // The image's (10..100) × (0..90) is ground (10..100)²: all inside, sees 81 % of the zone: a warning.
        let f = fit(&h, &frame, &[[10.0, 0.0], [100.0, 0.0], [100.0, 90.0], [10.0, 90.0]], &site).unwrap();
        assert!(f.outside() < 1e-6 && (f.coverage() - 0.81).abs() < 1e-3, "{f}");
        assert_eq!(f.verdict(), FitVerdict::Warn);
        assert!(f.to_string().contains("0.0 % of it lies outside") && f.to_string().contains("sees 81.0 %"), "{f}");
        // Shifted by 1 m: 1 % outside, 99 % seen: the same ground.
        let h1 = Homography::fit(
            &[[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]],
            &[[11.0, 110.0], [111.0, 110.0], [111.0, 10.0], [11.0, 10.0]],
        )
        .unwrap();
        let f = fit(&h1, &frame, &[[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]], &site).unwrap();
        assert!((f.outside() - 0.01).abs() < 1e-3, "{f}");
        assert_eq!(f.verdict(), FitVerdict::Good);
    }
}
