//! `GET /api/v1/city`: every site at a glance, aggregated on the city's own hierarchy (sub-district → community →
//! grid), so a command centre can watch thousands of zones without drawing thousands of polygons.
//!
//! Why aggregate on the server: a city of 7,151 grids has ~20,000 zones; their polygons are megabytes and
//! their live readings thousands of events a second, more than a browser should take. The answer here is one
//! row per sub-district, community and grid (worst level, zones per level, open tickets, centre and bounds),
//! plus the zones and tickets that need eyes first (the worst zones by density against their warning level,
//! the oldest open tickets), recomputed from the live state on each request. Drilling into a grid opens the
//! site's own map, which draws that site's zones. Operators, engineers and admins may read it; a grid worker's
//! world is their own grids, so they get 403.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use crowdgrid_proto::Level;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::json::ApiQuery;
use super::{ApiError, AppState};
use crate::store::tickets::Filter;

/// How many worst zones and oldest tickets are listed (`?top=`, at most 200).
const TOP_DEFAULT: usize = 20;
const TOP_MAX: usize = 200;

/// `?top=`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityParams {
    top: Option<usize>,
}

/// Zones per level.
#[derive(Serialize, Default, Clone, Copy)]
pub struct LevelCounts {
    normal: usize,
    notice: usize,
    warning: usize,
    critical: usize,
    /// No fresh reading.
    stale: usize,
}

impl LevelCounts {
    fn add(&mut self, level: Level, fresh: bool) {
        if !fresh {
            self.stale += 1;
            return;
        }
        match level {
            Level::Normal => self.normal += 1,
            Level::Notice => self.notice += 1,
            Level::Warning => self.warning += 1,
            Level::Critical => self.critical += 1,
        }
    }
}

/// One sub-district, community or grid.
#[derive(Serialize)]
pub struct Area {
    site: String,
    id: String,
    name: String,
    /// The community of a grid, the sub-district of a community; empty for a sub-district.
    parent: String,
    zones: usize,
    levels: LevelCounts,
    /// The worst level of its zones with a fresh reading.
    level: Level,
    /// Its highest density against the warning level (1.0 = at warning).
    max_ratio: Option<f64>,
    open_tickets: usize,
    /// [longitude, latitude] of the centre of its zones' bounds.
    center: [f64; 2],
    /// [west, south, east, north].
    bbox: [f64; 4],
}

/// A zone that needs eyes.
#[derive(Serialize)]
pub struct HotZone {
    site: String,
    zone: String,
    name: String,
    grid: String,
    level: Level,
    density: f64,
    warning: f64,
    ratio: f64,
    ts: Option<DateTime<Utc>>,
}

/// An open ticket, oldest first.
#[derive(Serialize)]
pub struct OldTicket {
    id: i64,
    site: String,
    zone: String,
    zone_name: String,
    level: String,
    state: String,
    assignee: Option<String>,
    assignee_name: Option<String>,
    opened_at: DateTime<Utc>,
    metric: String,
    unit: String,
    value: f64,
}

/// `GET /api/v1/city`
#[derive(Serialize)]
pub struct CityView {
    zones: usize,
    levels: LevelCounts,
    open_tickets: usize,
    subdistricts: Vec<Area>,
    communities: Vec<Area>,
    grids: Vec<Area>,
    worst: Vec<HotZone>,
    oldest_tickets: Vec<OldTicket>,
}

/// An area being summed up.
struct Acc {
    site: String,
    id: String,
    name: String,
    parent: String,
    zones: usize,
    levels: LevelCounts,
    level: Option<Level>,
    max_ratio: Option<f64>,
    open: usize,
    bbox: Option<[f64; 4]>,
}

impl Acc {
    fn new(site: &str, id: &str, name: &str, parent: &str) -> Self {
        Acc {
            site: site.into(),
            id: id.into(),
            name: name.into(),
            parent: parent.into(),
            zones: 0,
            levels: LevelCounts::default(),
            level: None,
            max_ratio: None,
            open: 0,
            bbox: None,
        }
    }

    fn add(&mut self, z: &ZoneNow) {
        self.zones += 1;
        self.open += z.open;
        self.levels.add(z.level, z.ratio.is_some());
        if let Some(r) = z.ratio {
            self.level = Some(self.level.map_or(z.level, |l| l.max(z.level)));
            self.max_ratio = Some(self.max_ratio.map_or(r, |m| m.max(r)));
        }
        let b = z.bbox;
        self.bbox = Some(match self.bbox {
            None => b,
            Some(a) => [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])],
        });
    }

    fn done(self) -> Area {
        let bbox = self.bbox.unwrap_or([0.0; 4]);
        Area {
            site: self.site,
            id: self.id,
            name: self.name,
            parent: self.parent,
            zones: self.zones,
            levels: self.levels,
            level: self.level.unwrap_or(Level::Normal),
            max_ratio: self.max_ratio,
            open_tickets: self.open,
            center: [(bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0],
            bbox,
        }
    }
}

/// What the aggregation needs of one zone.
struct ZoneNow {
    level: Level,
    /// Density against the warning level, when the zone has a fresh reading.
    ratio: Option<f64>,
    open: usize,
    bbox: [f64; 4],
}

/// `GET /api/v1/city?top=`
pub async fn city(
    State(s): State<AppState>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<CityParams>,
) -> Result<Json<CityView>, ApiError> {
    if !p.reads_all() {
        return Err(ApiError::Forbidden("the city view is for operators, engineers and admins".into()));
    }
    let top = q.top.unwrap_or(TOP_DEFAULT).clamp(1, TOP_MAX);
    let open = s.tickets.list(Filter::Open, None).await?;
    let mut open_by_zone: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for t in &open {
        *open_by_zone.entry((t.site.as_str(), t.zone.as_str())).or_default() += 1;
    }

    let mut subdistricts = Vec::new();
    let mut communities = Vec::new();
    let mut grids = Vec::new();
    let mut hot = Vec::new();
    let mut levels = LevelCounts::default();
    let mut zone_count = 0;
    {
        let live = s.live.read().unwrap_or_else(|e| e.into_inner());
        let fresh_after = Utc::now() - live.fresh();
        for site in &s.sites {
            let cfg = &site.config;
            let mut sub: BTreeMap<&str, Acc> =
                cfg.subdistricts.iter().map(|x| (x.id.as_str(), Acc::new(&cfg.id, &x.id, &x.name, ""))).collect();
            let mut com: BTreeMap<&str, Acc> = cfg
                .communities
                .iter()
                .map(|x| (x.id.as_str(), Acc::new(&cfg.id, &x.id, &x.name, &x.subdistrict)))
                .collect();
            let mut grd: BTreeMap<&str, Acc> =
                cfg.grids.iter().map(|x| (x.id.as_str(), Acc::new(&cfg.id, &x.id, &x.name, &x.community))).collect();
            // Looked up once per site, not once per zone (a city has 20,000 zones).
            let community_of: BTreeMap<&str, &str> =
                cfg.grids.iter().map(|g| (g.id.as_str(), g.community.as_str())).collect();
            let subdistrict_of: BTreeMap<&str, &str> =
                cfg.communities.iter().map(|c| (c.id.as_str(), c.subdistrict.as_str())).collect();
            for z in &site.zones {
                let l = live.zone(&cfg.id, &z.config.id);
                let fresh = l.and_then(|l| l.ts).is_some_and(|ts| ts >= fresh_after);
                let density = l.and_then(|l| l.density).filter(|_| fresh);
                let level = l.map_or(Level::Normal, |l| l.level());
                let ratio = density.map(|d| if z.thresholds.warning > 0.0 { d / z.thresholds.warning } else { 0.0 });
                let bbox = z
                    .polygon
                    .exterior()
                    .coords()
                    .fold([f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY], |b, c| {
                        [b[0].min(c.x), b[1].min(c.y), b[2].max(c.x), b[3].max(c.y)]
                    });
                let now = ZoneNow {
                    level,
                    ratio,
                    open: open_by_zone.get(&(cfg.id.as_str(), z.config.id.as_str())).copied().unwrap_or(0),
                    bbox,
                };
                zone_count += 1;
                levels.add(level, ratio.is_some());
                // The hierarchy was validated at load (every zone's grid, every grid's community exist).
                let community = community_of.get(z.config.grid.as_str()).copied();
                let subdistrict = community.and_then(|c| subdistrict_of.get(c).copied());
                for (map, key) in
                    [(&mut grd, Some(z.config.grid.as_str())), (&mut com, community), (&mut sub, subdistrict)]
                {
                    if let Some(acc) = key.and_then(|k| map.get_mut(k)) {
                        acc.add(&now);
                    }
                }
                if let (Some(d), Some(r)) = (density, ratio) {
                    hot.push(HotZone {
                        site: cfg.id.clone(),
                        zone: z.config.id.clone(),
                        name: z.config.name.clone(),
                        grid: z.config.grid.clone(),
                        level,
                        density: d,
                        warning: z.thresholds.warning,
                        ratio: r,
                        ts: l.and_then(|l| l.ts),
                    });
                }
            }
            for (map, out) in [(sub, &mut subdistricts), (com, &mut communities), (grd, &mut grids)] {
                out.extend(map.into_values().filter(|a| a.zones > 0).map(Acc::done));
            }
        }
    }
    hot.sort_by(|a, b| b.level.cmp(&a.level).then(b.ratio.total_cmp(&a.ratio)));
    hot.truncate(top);

    let mut crowd: Vec<_> = open.iter().collect();
    crowd.sort_by_key(|t| (t.opened_at, t.id));
    let oldest_tickets = crowd
        .into_iter()
        .take(top)
        .map(|t| {
            let site = s.sites.iter().find(|x| x.config.id == t.site);
            OldTicket {
                id: t.id,
                site: t.site.clone(),
                zone: t.zone.clone(),
                zone_name: site.and_then(|x| x.zone(&t.zone)).map_or_else(|| t.zone.clone(), |z| z.config.name.clone()),
                level: t.level.clone(),
                state: t.state.clone(),
                assignee: t.assignee.clone(),
                assignee_name: t.assignee.as_ref().and_then(|a| {
                    site.and_then(|x| x.config.workers.iter().find(|w| &w.id == a)).map(|w| w.name.clone())
                }),
                opened_at: t.opened_at,
                metric: t.metric.clone(),
                unit: t.unit.clone(),
                value: t.value,
            }
        })
        .collect();

    Ok(Json(CityView {
        zones: zone_count,
        levels,
        open_tickets: open.len(),
        subdistricts,
        communities,
        grids,
        worst: hot,
        oldest_tickets,
    }))
}
