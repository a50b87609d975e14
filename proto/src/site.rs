//! A monitored site: zones as GeoJSON polygons (WGS84), the grid hierarchy
//! (grid → community → sub-district), the grid-worker roster and default thresholds.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use geo::{Area, Coord, GeodesicArea, Intersects, Line, LineString, Point, Polygon};
use serde::{Deserialize, Serialize};

use crate::config::{check_id, load_toml, ConfigError, Problems};
use crate::level::Thresholds;

/// A sub-district or town (街镇).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subdistrict {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// District (区) it belongs to.
    #[serde(default)]
    pub district: String,
}

/// A community or village (社村).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Sub-district id.
    pub subdistrict: String,
}

/// Whether a grid is a comprehensive grid or a specialised one (park, school, scenic area...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridKind {
    /// Daily affairs, staffed by community cadres.
    Comprehensive,
    /// Parks, schools, scenic areas, hospitals: staffed by professionals.
    Specialised,
}

/// A grid (网格), the smallest unit of governance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Community id.
    pub community: String,
    /// Comprehensive or specialised.
    pub kind: GridKind,
    /// For specialised grids: what it covers (e.g. `school`, `scenic_area`).
    #[serde(default)]
    pub specialty: Option<String>,
}

/// A grid worker (网格员) or specialised staff member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    /// Identifier (also the MQTT topic level for their notifications).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Grids this worker covers.
    pub grids: Vec<String>,
    /// Contact phone, shown to operators.
    #[serde(default)]
    pub phone: Option<String>,
    /// When the worker is on duty (site local time); none means always (tickets route only to on-duty workers).
    #[serde(default)]
    pub shifts: Vec<Shift>,
}

/// A recurring duty window in the site's local time; `to` before `from` runs past midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Days the shift starts on: `mon`..`sun` (empty: every day).
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM`.
    pub from: String,
    /// End, `HH:MM`.
    pub to: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn hhmm(s: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").ok()
}

impl Shift {
    /// True if `local` falls in this shift.
    pub fn covers(&self, local: chrono::NaiveDateTime) -> bool {
        use chrono::Datelike;
        let (Some(from), Some(to)) = (hhmm(&self.from), hhmm(&self.to)) else { return false };
        let t = local.time();
        let day_ok = |d: chrono::Weekday| {
            self.days.is_empty() || self.days.iter().any(|x| x == DAYS[d.num_days_from_monday() as usize])
        };
        if from <= to {
            day_ok(local.weekday()) && t >= from && t < to
        } else {
            // Past midnight: the part after midnight belongs to the previous day's shift.
            (day_ok(local.weekday()) && t >= from) || (day_ok(local.weekday().pred()) && t < to)
        }
    }
}

impl Worker {
    /// On duty at `local` (site local time).
    pub fn on_duty(&self, local: chrono::NaiveDateTime) -> bool {
        self.shifts.is_empty() || self.shifts.iter().any(|s| s.covers(local))
    }
}

/// A monitored zone as written in the site file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Identifier, unique in the site (a topic level).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Grid id this zone belongs to.
    pub grid: String,
    /// Free-form kind (`campsite`, `beach`, `jetty`, `car_park`, `school_gate`, ...).
    pub kind: String,
    /// Design capacity in people, if known.
    #[serde(default)]
    pub capacity: Option<u32>,
    /// Overrides the site's thresholds for this zone.
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    /// GeoJSON Polygon geometry in WGS84 (longitude, latitude).
    pub geometry: geojson::Geometry,
}

/// The site file as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site identifier (first topic level).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Local time offset from UTC in minutes (China: 480).
    #[serde(default = "default_utc_offset")]
    pub utc_offset_minutes: i32,
    /// Sub-districts (街镇).
    pub subdistricts: Vec<Subdistrict>,
    /// Communities (社村).
    pub communities: Vec<Community>,
    /// Grids (网格).
    pub grids: Vec<Grid>,
    /// Roster of grid workers.
    pub workers: Vec<Worker>,
    /// Default thresholds for every zone.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// Monitored zones.
    pub zones: Vec<ZoneConfig>,
}

fn default_utc_offset() -> i32 {
    480
}

/// A validated zone with its polygon and geodesic area.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The zone as configured.
    pub config: ZoneConfig,
    /// Its polygon (x = longitude, y = latitude).
    pub polygon: Polygon<f64>,
    /// Geodesic area on the WGS84 ellipsoid, m².
    pub area_m2: f64,
    /// Effective thresholds (zone override or site default).
    pub thresholds: Thresholds,
}

/// A validated site.
#[derive(Debug, Clone)]
pub struct Site {
    /// The site file as written.
    pub config: SiteConfig,
    /// Zones in file order.
    pub zones: Vec<Zone>,
}

impl Site {
    /// Loads and validates a site file, reporting every problem at once.
    pub fn load(path: &Path) -> Result<Site, ConfigError> {
        let config: SiteConfig = load_toml(path)?;
        Site::from_config(config, path)
    }

    /// Validates a parsed site file (`path` is used in messages).
    pub fn from_config(config: SiteConfig, path: &Path) -> Result<Site, ConfigError> {
        let mut p = Problems::new();
        let zones = config.validate(&mut p);
        p.into_result(path)?;
        Ok(Site { config, zones })
    }

    /// The zone with id `id`.
    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.config.id == id)
    }

    /// The grid with id `id`.
    pub fn grid(&self, id: &str) -> Option<&Grid> {
        self.config.grids.iter().find(|g| g.id == id)
    }

    /// The community with id `id`.
    pub fn community(&self, id: &str) -> Option<&Community> {
        self.config.communities.iter().find(|c| c.id == id)
    }

    /// Workers of grid `grid` on duty at `at`, in roster order.
    pub fn on_duty_workers_of_grid<'a>(
        &'a self,
        grid: &'a str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> impl Iterator<Item = &'a Worker> + 'a {
        let local = at.naive_utc() + chrono::Duration::minutes(i64::from(self.config.utc_offset_minutes));
        self.workers_of_grid(grid).filter(move |w| w.on_duty(local))
    }

    /// Workers covering grid `grid`, in roster order.
    pub fn workers_of_grid<'a>(&'a self, grid: &'a str) -> impl Iterator<Item = &'a Worker> + 'a {
        self.config.workers.iter().filter(move |w| w.grids.iter().any(|g| g == grid))
    }
}

impl SiteConfig {
    /// Records every problem and returns the zones that could be built.
    pub fn validate(&self, p: &mut Problems) -> Vec<Zone> {
        check_id(p, "id", &self.id);
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            p.push("utc_offset_minutes", "must be within -720..=840");
        }
        self.thresholds.validate("thresholds", p);
        let subdistricts = unique_ids(p, "subdistricts", self.subdistricts.iter().map(|s| s.id.as_str()));
        let communities = unique_ids(p, "communities", self.communities.iter().map(|c| c.id.as_str()));
        let grids = unique_ids(p, "grids", self.grids.iter().map(|g| g.id.as_str()));
        unique_ids(p, "workers", self.workers.iter().map(|w| w.id.as_str()));
        unique_ids(p, "zones", self.zones.iter().map(|z| z.id.as_str()));
        for (i, c) in self.communities.iter().enumerate() {
            if !subdistricts.contains(c.subdistrict.as_str()) {
                p.push(format!("communities[{i}].subdistrict"), format!("unknown sub-district {:?}", c.subdistrict));
            }
        }
        let mut staffed: HashMap<&str, usize> = HashMap::new();
        for (i, g) in self.grids.iter().enumerate() {
            if !communities.contains(g.community.as_str()) {
                p.push(format!("grids[{i}].community"), format!("unknown community {:?}", g.community));
            }
            if g.kind == GridKind::Specialised && g.specialty.is_none() {
                p.push(format!("grids[{i}].specialty"), "a specialised grid needs a specialty");
            }
            staffed.insert(g.id.as_str(), 0);
        }
        for (i, w) in self.workers.iter().enumerate() {
            for (j, sh) in w.shifts.iter().enumerate() {
                if hhmm(&sh.from).is_none() || hhmm(&sh.to).is_none() {
                    p.push(format!("workers[{i}].shifts[{j}]"), "from and to must be HH:MM");
                }
                for d in &sh.days {
                    if !DAYS.contains(&d.as_str()) {
                        p.push(format!("workers[{i}].shifts[{j}].days"), format!("{d:?} is not one of {DAYS:?}"));
                    }
                }
            }
            if w.grids.is_empty() {
                p.push(format!("workers[{i}].grids"), "a worker must cover at least one grid");
            }
            for g in &w.grids {
                match staffed.get_mut(g.as_str()) {
                    Some(n) => *n += 1,
                    None => p.push(format!("workers[{i}].grids"), format!("unknown grid {g:?}")),
                }
            }
        }
        let mut zones = Vec::new();
        for (i, z) in self.zones.iter().enumerate() {
            let path = format!("zones[{i}]");
            if !grids.contains(z.grid.as_str()) {
                p.push(format!("{path}.grid"), format!("unknown grid {:?}", z.grid));
            } else if staffed.get(z.grid.as_str()) == Some(&0) {
                p.push(format!("{path}.grid"), format!("grid {:?} has no worker on the roster", z.grid));
            }
            let thresholds = z.thresholds.unwrap_or(self.thresholds);
            if let Some(t) = &z.thresholds {
                t.validate(&format!("{path}.thresholds"), p);
            }
            if let Some(polygon) = zone_polygon(p, &path, &z.geometry) {
                let area_m2 = polygon.geodesic_area_unsigned();
                if !(area_m2.is_finite() && (1.0..=MAX_ZONE_AREA_M2).contains(&area_m2)) {
                    p.push(
                        format!("{path}.geometry"),
                        format!("area {area_m2:.3} m² is not a zone's (1 m² to {MAX_ZONE_AREA_M2} m²)"),
                    );
                }
                zones.push(Zone { config: z.clone(), polygon, area_m2, thresholds });
            }
        }
        zones
    }
}

fn unique_ids<'a>(p: &mut Problems, what: &str, ids: impl Iterator<Item = &'a str>) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        check_id(p, format!("{what}[{i}].id"), id);
        if !seen.insert(id) {
            p.push(format!("{what}[{i}].id"), format!("duplicate id {id:?}"));
        }
    }
    seen
}

/// Largest zone area accepted, m² (a monitored zone is a square, a campground, a school gate; 50 km² is a district).
pub const MAX_ZONE_AREA_M2: f64 = 50_000_000.0;

/// The zone's polygon, checked: a GeoJSON Polygon whose rings are closed, in WGS84 range, with at least three
/// distinct points and no self-intersection (a bow-tie's area is not the ground it covers), holes inside the
/// exterior. Every problem is recorded; `None` if any.
fn zone_polygon(p: &mut Problems, path: &str, geometry: &geojson::Geometry) -> Option<Polygon<f64>> {
    let at = format!("{path}.geometry");
    let before = p.items().len();
    if let geojson::Value::Polygon(rings) = &geometry.value {
        for (r, ring) in rings.iter().enumerate() {
            let name = if r == 0 { "the exterior ring".to_string() } else { format!("hole {r}") };
            if ring.len() >= 2 && ring.first() != ring.last() {
                p.push(&at, format!("{name} is not closed (its last point must repeat its first)"));
            }
            for c in ring {
                let ok = c.len() >= 2
                    && c[0].is_finite()
                    && c[1].is_finite()
                    && (-180.0..=180.0).contains(&c[0])
                    && (-90.0..=90.0).contains(&c[1]);
                if !ok {
                    p.push(&at, format!("{name}: {c:?} is not a WGS84 longitude, latitude"));
                }
            }
        }
    }
    let polygon: Polygon<f64> = match Polygon::try_from(geometry.value.clone()) {
        Ok(poly) => poly,
        Err(e) => {
            p.push(&at, format!("must be a GeoJSON Polygon: {e}"));
            return None;
        }
    };
    if p.items().len() > before {
        return None;
    }
    let rings: Vec<&LineString<f64>> = std::iter::once(polygon.exterior()).chain(polygon.interiors()).collect();
    for (r, ring) in rings.iter().enumerate() {
        let name = if r == 0 { "the exterior ring".to_string() } else { format!("hole {r}") };
        let mut distinct: Vec<Coord<f64>> = ring.coords().copied().collect();
        distinct.dedup();
        if distinct.len() < 4 {
            p.push(&at, format!("{name} needs at least 3 distinct points"));
        } else if let Some((i, j)) = self_intersection(ring) {
            p.push(&at, format!("{name} crosses itself (edges {i} and {j}): a polygon must be simple"));
        }
        if r > 0 {
            let exterior = Polygon::new(polygon.exterior().clone(), vec![]);
            if !ring.coords().all(|c| exterior.intersects(&Point::from(*c))) {
                p.push(&at, format!("{name} is not inside the exterior ring"));
            }
        }
    }
    if p.items().len() > before {
        return None;
    }
    if polygon.unsigned_area() == 0.0 {
        p.push(&at, "polygon has no area");
        return None;
    }
    Some(polygon)
}

/// The first pair of non-adjacent edges of a closed ring that touch or cross, by edge index.
fn self_intersection(ring: &LineString<f64>) -> Option<(usize, usize)> {
    let edges: Vec<Line<f64>> = ring.lines().filter(|l| l.start != l.end).collect();
    let n = edges.len();
    for i in 0..n {
        for j in i + 1..n {
            // Neighbours share a point by construction (and the last closes on the first).
            if j == i + 1 || (i == 0 && j == n - 1) {
                continue;
            }
            if edges[i].intersects(&edges[j]) {
                return Some((i, j));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One worker `w` and one zone `z` of about 100 m × 100 m at the equator.
    fn site_text() -> String {
        format!(
            r#"{head}
[[workers]]
id = "w"
name = "W"
grids = ["g"]
[[zones]]
id = "z"
name = "Z"
grid = "g"
kind = "square"
geometry = {square}
"#,
            head = crate::testing::site_head("t"),
            square = crate::testing::SQUARE
        )
    }

    #[test]
    fn parses_and_computes_geodesic_area() {
        let cfg: SiteConfig = toml::from_str(&site_text()).unwrap();
        let site = Site::from_config(cfg, Path::new("t.toml")).unwrap();
        let z = site.zone("z").unwrap();
        assert!((z.area_m2 - 10_000.0).abs() < 20.0, "area {}", z.area_m2);
        assert_eq!(z.thresholds, Thresholds::default());
        assert_eq!(site.workers_of_grid("g").count(), 1);
    }

    #[test]
    fn reports_every_problem() {
        let bad = site_text()
            .replace("subdistrict = \"sd\"", "subdistrict = \"nope\"")
            .replace("grid = \"g\"\nkind = \"square\"", "grid = \"missing\"\nkind = \"square\"")
            .replace("[0.0, 0.0], [0.000898315, 0.0]", "[0.0, 0.0], [190.0, 0.0]");
        let cfg: SiteConfig = toml::from_str(&bad).unwrap();
        let err = Site::from_config(cfg, Path::new("t.toml")).unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else { panic!("{err}") };
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("unknown sub-district"));
        assert!(problems[1].contains("unknown grid"));
        assert!(problems[2].contains("WGS84"));
    }

    #[test]
    fn bow_ties_open_rings_and_stray_holes_are_each_reported() {
        // A bow-tie: the square with two corners swapped. Its signed-area formula gives ~0 where it covers half the
        // square twice; on main it passed with the wrong area.
        let bow = "{ type = \"Polygon\", coordinates = [[[0.0, 0.0], [0.000898315, 0.000904369], [0.000898315, 0.0], \
                   [0.0, 0.000904369], [0.0, 0.0]]] }";
        let open = "{ type = \"Polygon\", coordinates = [[[0.0, 0.0], [0.000898315, 0.0], [0.000898315, 0.000904369], \
                    [0.0, 0.000904369]]] }";
        let stray = "{ type = \"Polygon\", coordinates = [[[0.0, 0.0], [0.000898315, 0.0], [0.000898315, 0.000904369], \
                     [0.0, 0.000904369], [0.0, 0.0]], [[0.002, 0.002], [0.003, 0.002], [0.003, 0.003], [0.002, 0.002]]] }";
        let tiny = "{ type = \"Polygon\", coordinates = [[[0.0, 0.0], [0.000001, 0.0], [0.000001, 0.000001], \
                    [0.0, 0.0]]] }";
        let mut text = site_text().replace(crate::testing::SQUARE, bow);
        for (id, g) in [("open", open), ("stray", stray), ("tiny", tiny)] {
            text.push_str(&format!(
                "[[zones]]\nid = \"{id}\"\nname = \"X\"\ngrid = \"g\"\nkind = \"square\"\ngeometry = {g}\n"
            ));
        }
        let cfg: SiteConfig = toml::from_str(&text).unwrap();
        let ConfigError::Invalid { problems, .. } = Site::from_config(cfg, Path::new("t.toml")).unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.len(), 4, "every zone's problem at once: {problems:#?}");
        assert!(problems[0].contains("zones[0]") && problems[0].contains("crosses itself"), "{}", problems[0]);
        assert!(problems[1].contains("zones[1]") && problems[1].contains("not closed"), "{}", problems[1]);
        assert!(problems[2].contains("zones[2]") && problems[2].contains("hole 1 is not inside"), "{}", problems[2]);
        assert!(problems[3].contains("zones[3]") && problems[3].contains("not a zone's"), "{}", problems[3]);
    }

    #[test]
    fn shifts_decide_who_is_on_duty() {
        let day = Shift { days: vec!["mon".into(), "tue".into()], from: "08:00".into(), to: "20:00".into() };
        let night = Shift { days: vec!["mon".into()], from: "20:00".into(), to: "08:00".into() };
        let at = |d: &str| chrono::NaiveDateTime::parse_from_str(d, "%Y-%m-%d %H:%M").unwrap();
        // 2026-03-09 is a Monday.
        assert!(day.covers(at("2026-03-09 08:00")));
        assert!(!day.covers(at("2026-03-09 20:00")), "the end is exclusive");
        assert!(!day.covers(at("2026-03-11 12:00")), "Wednesday");
        assert!(night.covers(at("2026-03-09 23:30")));
        assert!(night.covers(at("2026-03-10 03:00")), "Tuesday early morning belongs to Monday's night shift");
        assert!(!night.covers(at("2026-03-11 03:00")));
        let bad = site_text().replace(
            "grids = [\"g\"]",
            "grids = [\"g\"]\nshifts = [{ days = [\"mon\", \"someday\"], from = \"8am\", to = \"20:00\" }]",
        );
        let cfg: SiteConfig = toml::from_str(&bad).unwrap();
        let ConfigError::Invalid { problems, .. } = Site::from_config(cfg, Path::new("t.toml")).unwrap_err() else {
            panic!()
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = site_text().replace("name = \"Test\"", "name = \"Test\"\ncolour = \"red\"");
        assert!(toml::from_str::<SiteConfig>(&bad).is_err());
    }
}
