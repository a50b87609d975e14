//! Sites, zones (JSON and GeoJSON) and series.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::site::{Community, Grid, Subdistrict, Worker};
use crowdgrid_proto::{Level, Thresholds};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::central::live::SourceLatest;
use crate::store::series::{Point, SeriesQuery};
use crate::store::tickets::Filter;

/// A site's hierarchy.
#[derive(Serialize)]
pub struct Hierarchy {
    subdistricts: Vec<Subdistrict>,
    communities: Vec<Community>,
    grids: Vec<Grid>,
    workers: Vec<Worker>,
}

/// One site in `GET /api/v1/sites`.
#[derive(Serialize)]
pub struct SiteView {
    id: String,
    name: String,
    zones: usize,
    grids: usize,
    workers: usize,
    utc_offset_minutes: i32,
    hierarchy: Hierarchy,
    /// Optional basemap tile URL template (`[api] tile_url`).
    tile_url: Option<String>,
}

/// `GET /api/v1/sites`
pub async fn sites(State(s): State<AppState>, Caller(p): Caller) -> Json<Vec<SiteView>> {
    let visible = s.sites.iter().filter(|site| p.reads_all() || p.grids.iter().any(|(id, _)| id == &site.config.id));
    Json(
        visible
            .map(|site| SiteView {
                id: site.config.id.clone(),
                name: site.config.name.clone(),
                zones: site.zones.len(),
                grids: site.config.grids.len(),
                workers: site.config.workers.len(),
                utc_offset_minutes: site.config.utc_offset_minutes,
                hierarchy: Hierarchy {
                    subdistricts: site.config.subdistricts.clone(),
                    communities: site.config.communities.clone(),
                    grids: site.config.grids.clone(),
                    workers: site.config.workers.clone(),
                },
                tile_url: s.tile_url.clone(),
            })
            .collect(),
    )
}

/// `?site=`
#[derive(Deserialize)]
pub struct SiteFilter {
    site: Option<String>,
}

/// One zone in `GET /api/v1/zones`.
#[derive(Serialize, Clone)]
pub struct ZoneView {
    site: String,
    zone: String,
    name: String,
    grid: String,
    kind: String,
    area_m2: f64,
    capacity: Option<u32>,
    thresholds: Thresholds,
    level: Level,
    density: Option<f64>,
    count: Option<f64>,
    ts: Option<DateTime<Utc>>,
    from: Option<String>,
    coverage: Option<f64>,
    confidence: Option<f64>,
    trend_per_min: Option<f64>,
    open_tickets: Vec<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<BTreeMap<String, SourceLatest>>,
}

async fn zone_views(
    s: &AppState,
    p: &crate::auth::Principal,
    site: Option<&str>,
) -> Result<Vec<(ZoneView, geojson::Geometry)>, ApiError> {
    let open = s.tickets.list(Filter::Open, None).await?;
    let live = s.live.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    for st in s.sites.iter().filter(|x| site.is_none_or(|id| x.config.id == id)) {
        for z in st.zones.iter().filter(|z| p.sees_grid(&st.config.id, &z.config.grid)) {
            let l = live.zone(&st.config.id, &z.config.id);
            let view = ZoneView {
                site: st.config.id.clone(),
                zone: z.config.id.clone(),
                name: z.config.name.clone(),
                grid: z.config.grid.clone(),
                kind: z.config.kind.clone(),
                area_m2: z.area_m2,
                capacity: z.config.capacity,
                thresholds: z.thresholds,
                level: l.map_or(Level::Normal, |l| l.level()),
                density: l.and_then(|l| l.density),
                count: l.and_then(|l| l.count),
                ts: l.and_then(|l| l.ts),
                from: l.and_then(|l| l.from.clone()),
                coverage: l.and_then(|l| l.coverage),
                confidence: l.and_then(|l| l.confidence),
                trend_per_min: l.and_then(|l| l.trend_per_min()),
                open_tickets: open
                    .iter()
                    .filter(|t| t.site == st.config.id && t.zone == z.config.id)
                    .map(|t| t.id)
                    .collect(),
                sources: Some(l.map(|l| l.sources.clone()).unwrap_or_default()),
            };
            out.push((view, z.config.geometry.clone()));
        }
    }
    Ok(out)
}

/// `GET /api/v1/zones?site=`
pub async fn zones(
    State(s): State<AppState>,
    Caller(p): Caller,
    Query(f): Query<SiteFilter>,
) -> Result<Json<Vec<ZoneView>>, ApiError> {
    Ok(Json(zone_views(&s, &p, f.site.as_deref()).await?.into_iter().map(|(v, _)| v).collect()))
}

/// `GET /api/v1/zones.geojson?site=`: one Polygon feature per zone, the zone view as properties.
pub async fn zones_geojson(
    State(s): State<AppState>,
    Caller(p): Caller,
    Query(f): Query<SiteFilter>,
) -> Result<Json<geojson::FeatureCollection>, ApiError> {
    let mut features = Vec::new();
    for (view, geometry) in zone_views(&s, &p, f.site.as_deref()).await? {
        let properties = match serde_json::to_value(&view) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        };
        features.push(geojson::Feature {
            bbox: None,
            geometry: Some(geometry),
            id: Some(geojson::feature::Id::String(format!("{}/{}", view.site, view.zone))),
            properties,
            foreign_members: None,
        });
    }
    Ok(Json(geojson::FeatureCollection { bbox: None, features, foreign_members: None }))
}

/// `?from=&to=&source=&limit=`
#[derive(Deserialize)]
pub struct SeriesParams {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    source: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/zones/{site}/{zone}/series` (default: the last hour, every source, at most 10,000 points).
pub async fn series(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((site, zone)): Path<(String, String)>,
    Query(q): Query<SeriesParams>,
) -> Result<Json<Vec<Point>>, ApiError> {
    let z = s
        .sites
        .iter()
        .find(|x| x.config.id == site)
        .and_then(|x| x.zone(&zone))
        .ok_or_else(|| ApiError::NotFound(format!("no zone {site}/{zone}")))?;
    if !p.sees_grid(&site, &z.config.grid) {
        return Err(ApiError::Forbidden(format!("zone {site}/{zone} is not in your grids")));
    }
    let to = q.to.unwrap_or_else(|| Utc::now() + Duration::minutes(5));
    let from = q.from.unwrap_or(to - Duration::hours(1) - Duration::minutes(5));
    if from > to {
        return Err(ApiError::BadRequest("from is after to".into()));
    }
    let limit = q.limit.unwrap_or(10_000).min(100_000);
    // At most SERIES_AT_ONCE queries (and their answers, up to 100,000 points each) in memory at once; the rest
    // wait, and after 10 s are told to come back (fifty concurrent maximum-range queries held 512 MB on main).
    let _permit = tokio::time::timeout(std::time::Duration::from_secs(10), s.series_slots.clone().acquire_owned())
        .await
        .map_err(|_| ApiError::Unavailable("too many series queries at once; try again".into()))?
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let points = s.series.series(SeriesQuery { site, zone, from, to, source: q.source, limit }).await?;
    Ok(Json(points))
}
