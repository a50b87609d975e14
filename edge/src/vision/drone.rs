//! Drone geometry: per-frame telemetry from a sidecar file → the camera's ground footprint (nadir gimbal)
//! → where each detection stands on the ground → people per site zone over the part of the zone seen.

use std::path::Path;

use geo::orient::{Direction, Orient};
use geo::{BooleanOps, Contains, Coord, GeodesicArea, LineString, Point as GeoPoint, Polygon};
use serde::Deserialize;

use super::detect::{Class, Detection};

/// One telemetry record, as in the sidecar CSV (header line) or JSON (array of objects).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// Video frame index the record applies to (records apply until the next one).
    pub frame: u64,
    /// Latitude (WGS84, degrees).
    pub lat: f64,
    /// Longitude (WGS84, degrees).
    pub lon: f64,
    /// Altitude above ground (m).
    pub alt_m: f64,
    /// Heading of the image's top edge, degrees clockwise from north.
    pub heading_deg: f64,
    /// Horizontal field of view (degrees).
    pub hfov_deg: f64,
    /// Vertical field of view (degrees).
    pub vfov_deg: f64,
}

/// Why telemetry could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        error: std::io::Error,
    },
    /// A record is malformed.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads a sidecar (`.json`: an array of records; anything else: CSV with a header), sorted by frame.
/// Records with impossible values (altitude ≤ 0, field of view outside 1–170°) are an error.
pub fn load_telemetry(path: &Path) -> Result<Vec<Telemetry>, TelemetryError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| TelemetryError::Io { path: p.clone(), error })?;
    let parse = |message: String| TelemetryError::Parse { path: p.clone(), message };
    let mut recs: Vec<Telemetry> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?
    } else {
        let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        rdr.deserialize().collect::<Result<_, _>>().map_err(|e| parse(e.to_string()))?
    };
    for r in &recs {
        let fov_ok = |f: f64| f.is_finite() && (1.0..=170.0).contains(&f);
        // Every number must be finite: a NaN heading or longitude would make the footprint NaN, which the
        // polygon intersection cannot take.
        let place_ok = r.lat.is_finite() && r.lat.abs() < 89.0 && r.lon.is_finite() && r.lon.abs() <= 180.0;
        if !(r.alt_m.is_finite()
            && r.alt_m > 0.0
            && fov_ok(r.hfov_deg)
            && fov_ok(r.vfov_deg)
            && place_ok
            && r.heading_deg.is_finite())
        {
            return Err(parse(format!("frame {}: implausible telemetry {r:?}", r.frame)));
        }
    }
    if recs.is_empty() {
        return Err(parse("no telemetry records".into()));
    }
    recs.sort_by_key(|r| r.frame);
    Ok(recs)
}

/// The record in force at `frame` (the last one at or before it; the first one before any).
pub fn at_frame(recs: &[Telemetry], frame: u64) -> Option<&Telemetry> {
    let i = recs.partition_point(|r| r.frame <= frame);
    recs.get(i.saturating_sub(1))
}

impl Telemetry {
    /// Ground half-extents (m) across and along the image: `alt × tan(fov / 2)`.
    pub fn half_extents(&self) -> (f64, f64) {
        let t = |deg: f64| (deg.to_radians() / 2.0).tan() * self.alt_m;
        (t(self.hfov_deg), t(self.vfov_deg))
    }

    /// The lon/lat of a point `east`, `north` metres from the drone.
    pub fn offset(&self, east: f64, north: f64) -> Coord<f64> {
        super::georef::offset(Coord { x: self.lon, y: self.lat }, east, north)
    }

    /// The ground position of image point `(u, v)` of a `w × h` frame, looking straight down with the
    /// image's top edge towards `heading_deg`.
    pub fn ground(&self, u: f64, v: f64, w: f64, h: f64) -> Coord<f64> {
        let (hx, hy) = self.half_extents();
        let right = (u / w - 0.5) * 2.0 * hx;
        let fwd = (0.5 - v / h) * 2.0 * hy;
        let th = self.heading_deg.to_radians();
        // Forward is (sin θ, cos θ) in (east, north); right is (cos θ, −sin θ).
        self.offset(fwd * th.sin() + right * th.cos(), fwd * th.cos() - right * th.sin())
    }

    /// The footprint polygon (lon/lat) of a `w × h` frame, counter-clockwise (as geodesic areas need).
    pub fn footprint(&self, w: f64, h: f64) -> Polygon<f64> {
        let corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h), (0.0, 0.0)];
        Polygon::new(
            LineString::from(corners.iter().map(|&(u, v)| self.ground(u, v, w, h)).collect::<Vec<_>>()),
            vec![],
        )
        .orient(Direction::Default)
    }
}

/// One zone's drone estimate for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneView {
    /// Site zone id.
    pub zone: String,
    /// People standing in the seen part of the zone.
    pub person: f64,
    /// Vehicles in it.
    pub vehicle: f64,
    /// Area of the zone inside the footprint (m², geodesic).
    pub seen_m2: f64,
}

/// Intersects the footprint with each zone and places each detection's feet on the ground. Zones with
/// less than `min_seen_m2` in view are left out (too little seen to estimate a density).
pub fn zone_views<'a>(
    t: &Telemetry,
    w: f64,
    h: f64,
    dets: &[Detection],
    zones: impl IntoIterator<Item = (&'a str, &'a Polygon<f64>)>,
    min_seen_m2: f64,
) -> Vec<ZoneView> {
    let fp = t.footprint(w, h);
    let feet: Vec<(Class, GeoPoint<f64>)> =
        dets.iter().map(|d| (d.class, GeoPoint::from(t.ground(d.foot()[0], d.foot()[1], w, h)))).collect();
    let mut out = Vec::new();
    for (zone, poly) in zones {
        let seen = fp.intersection(poly).orient(Direction::Default);
        let seen_m2 = seen.geodesic_area_unsigned();
        if seen_m2 < min_seen_m2 {
            continue;
        }
        let (mut person, mut vehicle) = (0.0, 0.0);
        for (class, p) in &feet {
            if seen.contains(p) {
                match class {
                    Class::Person => person += 1.0,
                    Class::Vehicle => vehicle += 1.0,
                }
            }
        }
        out.push(ZoneView { zone: zone.to_string(), person, vehicle, seen_m2 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(heading: f64) -> Telemetry {
        // 100 m up with a 90° × 60° lens: 200 m across, 2·100·tan 30° = 115.47 m along.
        Telemetry {
            frame: 0,
            lat: 31.78,
            lon: 119.96,
            alt_m: 100.0,
            heading_deg: heading,
            hfov_deg: 90.0,
            vfov_deg: 60.0,
        }
    }

    #[test]
    fn footprint_size_and_orientation() {
        let (hx, hy) = t(0.0).half_extents();
        assert!((hx - 100.0).abs() < 1e-9 && (hy - 57.735).abs() < 1e-3);
        let fp = t(0.0).footprint(1920.0, 1080.0);
        let area = fp.geodesic_area_unsigned();
        assert!((area - 200.0 * 115.470).abs() / 23_094.0 < 0.005, "footprint area {area}");
        // Heading north: the image top-left corner is north-west of the drone.
        let tl = t(0.0).ground(0.0, 0.0, 1920.0, 1080.0);
        assert!(tl.x < 119.96 && tl.y > 31.78);
        // Heading east (90°): the image top is east, so the top-left corner is north-east.
        let tl = t(90.0).ground(0.0, 0.0, 1920.0, 1080.0);
        assert!(tl.x > 119.96 && tl.y > 31.78, "{tl:?}");
        // The image centre is straight below.
        let c = t(37.0).ground(960.0, 540.0, 1920.0, 1080.0);
        assert!((c.x - 119.96).abs() < 1e-12 && (c.y - 31.78).abs() < 1e-12);
    }

    #[test]
    fn zone_half_in_view_counts_people_over_the_seen_area() {
        let tel = t(0.0);
        // A 100 m × 100 m zone east of the drone, from 0 to +100 m east and −50..+50 m north:
        // the footprint reaches 100 m east, 57.7 m north/south, so all of it is seen (10,000 m²).
        let c = |e: f64, n: f64| tel.offset(e, n);
        let zone = Polygon::new(
            LineString::from(vec![c(0.0, -50.0), c(100.0, -50.0), c(100.0, 50.0), c(0.0, 50.0), c(0.0, -50.0)]),
            vec![],
        );
        // A second zone straddling the image's east edge: 50 m of its 100 m width in view → 5,000 m².
        let edge = Polygon::new(
            LineString::from(vec![c(50.0, -50.0), c(150.0, -50.0), c(150.0, 50.0), c(50.0, 50.0), c(50.0, -50.0)]),
            vec![],
        );
        let far = Polygon::new(
            LineString::from(vec![c(500.0, 0.0), c(510.0, 0.0), c(510.0, 10.0), c(500.0, 10.0), c(500.0, 0.0)]),
            vec![],
        );
        // Feet at 45.8 m east, 56.25 m east, and 79 m west of the drone.
        let p = |u: f32| Detection {
            class: Class::Person,
            raw_class: 0,
            score: 0.9,
            x1: u - 5.0,
            y1: 500.0,
            x2: u + 5.0,
            y2: 540.0,
        };
        let dets = [p(1400.0), p(1500.0), p(200.0)];
        let v = zone_views(&tel, 1920.0, 1080.0, &dets, [("east", &zone), ("edge", &edge), ("far", &far)], 10.0);
        assert_eq!(v.len(), 2, "the far zone is out of view: {v:?}");
        assert!((v[0].seen_m2 - 10_000.0).abs() / 10_000.0 < 0.01, "{v:?}");
        assert_eq!(v[0].person, 2.0);
        assert!((v[1].seen_m2 - 5_000.0).abs() / 5_000.0 < 0.01, "{v:?}");
        assert_eq!(v[1].person, 1.0, "only the person at 56 m east is in the edge zone");
    }

    #[test]
    fn telemetry_sidecar_csv_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.csv");
        std::fs::write(
            &f,
            "frame,lat,lon,alt_m,heading_deg,hfov_deg,vfov_deg\n10,31.7,119.9,80,0,84,53\n0,31.7,119.9,60,0,84,53\n",
        )
        .unwrap();
        let recs = load_telemetry(&f).unwrap();
        assert_eq!(at_frame(&recs, 5).unwrap().alt_m, 60.0);
        assert_eq!(at_frame(&recs, 12).unwrap().alt_m, 80.0);
        std::fs::write(&f, "frame,lat,lon,alt_m,heading_deg,hfov_deg,vfov_deg\n0,31.7,119.9,-5,0,84,53\n").unwrap();
        assert!(load_telemetry(&f).unwrap_err().to_string().contains("implausible"));
    }
}
