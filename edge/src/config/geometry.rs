//! Checks of a camera's image geometry (calibration, image zones, counting lines) against its site: run on the
//! edge file at start, by the centre before it stores a geometry an engineer drew, and by the edge again before
//! it applies one (a forged or stale message cannot make a camera count in a zone its site does not have).

use crowdgrid_proto::config::Problems;
use crowdgrid_proto::geometry::{
    Calibration, CameraGeometry, CameraZone, LineConfig, MAX_LINES, MAX_POINTS, MAX_ZONES,
};
use crowdgrid_proto::site::Site;

use crate::vision::geometry::Homography;
use crate::vision::georef::{self, FitVerdict, GroundFrame};

/// The calibration's ground frame on the map, when both `origin` and `bearing_deg` are set.
pub fn ground_frame(c: &Calibration) -> Option<GroundFrame> {
    match (c.origin, c.bearing_deg) {
        (Some([lon, lat]), Some(bearing_deg)) => {
            Some(GroundFrame { origin: geo::Coord { x: lon, y: lat }, bearing_deg })
        }
        _ => None,
    }
}

/// Every problem of `g` on `site`: its structure and, unless it is too big to look at, its fit, by path.
pub fn problems(g: &CameraGeometry, site: &Site) -> Vec<String> {
    let mut out = g.problems();
    let c = &g.calibration;
    let too_big = g.zones.len() > MAX_ZONES
        || g.lines.len() > MAX_LINES
        || c.image.len().max(c.ground.len()) > MAX_POINTS
        || g.zones.iter().any(|z| z.polygon.len() > MAX_POINTS);
    if !too_big {
        let mut p = Problems::new();
        validate(c, &g.zones, &g.lines, site, "geometry", &mut p);
        out.extend(p.items().iter().map(|x| x.strip_prefix("geometry.").unwrap_or(x).to_string()));
    }
    out
}

/// Every problem of a camera's calibration, zones and lines on `site`, at `path`.
pub fn validate(
    c: &Calibration,
    zones: &[CameraZone],
    lines: &[LineConfig],
    site: &Site,
    path: &str,
    p: &mut Problems,
) {
    let h = match Homography::fit(&c.image, &c.ground) {
        Ok(h) => Some(h),
        Err(e) => {
            p.push(format!("{path}.calibration"), e.to_string());
            None
        }
    };
    match (c.origin, c.bearing_deg) {
        (Some([lon, lat]), _) if !((-180.0..=180.0).contains(&lon) && (-85.0..=85.0).contains(&lat)) => {
            p.push(format!("{path}.calibration.origin"), format!("[{lon}, {lat}] is not a WGS84 [longitude, latitude]"))
        }
        (_, Some(b)) if !b.is_finite() => p.push(format!("{path}.calibration.bearing_deg"), "must be a number"),
        (Some(_), None) | (None, Some(_)) => {
            p.push(format!("{path}.calibration"), "origin and bearing_deg go together (one places the other)")
        }
        _ => {}
    }
    if zones.is_empty() {
        p.push(format!("{path}.zones"), "at least one image zone is needed");
    }
    super::tracking::validate_lines(lines, zones, &format!("{path}.tracking"), p);
    let mut seen = std::collections::HashSet::new();
    for (j, z) in zones.iter().enumerate() {
        let zp = format!("{path}.zones[{j}]");
        if site.zone(&z.zone).is_none() {
            p.push(format!("{zp}.zone"), format!("unknown zone {:?} in site {:?}", z.zone, site.config.id));
        }
        if !seen.insert(&z.zone) {
            p.push(format!("{zp}.zone"), format!("zone {:?} appears twice on this camera", z.zone));
        }
        if z.polygon.len() < 3 || z.polygon.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
            p.push(format!("{zp}.polygon"), "need 3 or more points with non-negative pixel coordinates");
            continue;
        }
        let Some(h) = &h else { continue };
        match h.ground_area(&z.polygon) {
            Some(a) if a.is_finite() && a >= 1.0 => {
                let placed = ground_frame(c).is_some() && site.zone(&z.zone).is_some();
                let fit = zone_fit(c, zones, h, j, site);
                if placed && fit.is_none() {
                    p.push(
                        format!("{zp}.polygon"),
                        format!(
                            "cannot be placed on the map: a corner maps farther than {} m from the calibration's \
                             origin (or the origin is not a WGS84 position)",
                            georef::MAX_REACH_M
                        ),
                    );
                }
                if let Some((fit, site_zone)) = fit {
                    if fit.verdict() == FitVerdict::Refuse {
                        p.push(
                            format!("{zp}.polygon"),
                            format!(
                                "is not the ground of site zone {site_zone:?}: {fit} (more than {:.0} % outside; \
                                 fix the polygon, the calibration or its origin/bearing_deg)",
                                georef::OUTSIDE_REFUSED * 100.0
                            ),
                        );
                    }
                }
            }
            Some(a) => {
                p.push(format!("{zp}.polygon"), format!("ground area {a:.2} m² is too small (check the calibration)"))
            }
            None => p.push(format!("{zp}.polygon"), "reaches beyond the horizon of the calibration"),
        }
    }
}

/// How image zone `j` of a placed camera lies against its site zone (`None`: not placed, unknown zone or
/// beyond the horizon).
pub fn zone_fit<'a>(
    c: &Calibration,
    zones: &'a [CameraZone],
    h: &Homography,
    j: usize,
    site: &Site,
) -> Option<(georef::ZoneFit, &'a str)> {
    let frame = ground_frame(c)?;
    let z = zones.get(j)?;
    let site_zone = site.zone(&z.zone)?;
    georef::fit(h, &frame, &z.polygon, &site_zone.polygon).map(|f| (f, z.zone.as_str()))
}
