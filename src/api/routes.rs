//! Endpoint handlers.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use crowdgrid_proto::{Level, Thresholds};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::central::dispatch;
use crate::central::edges::EdgeView;
use crate::central::live::SourceLatest;
use crate::store::series::{Point, SeriesQuery};
use crate::store::tickets::{Filter, Ticket, TicketEvent};

/// `GET /healthz`
pub async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let mqtt = s.metrics.mqtt_connected.get() == 1;
    let store = s.series.count().await.is_ok();
    let status = if mqtt && store { "ok" } else { "degraded" };
    let code = if store { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(serde_json::json!({ "status": status, "mqtt_connected": mqtt, "store": store })))
}

/// `GET /metrics`
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

/// One site in `GET /api/v1/sites`.
#[derive(Serialize)]
pub struct SiteView {
    id: String,
    name: String,
    zones: usize,
    grids: usize,
    workers: usize,
}

/// `GET /api/v1/sites`
pub async fn sites(State(s): State<AppState>) -> Json<Vec<SiteView>> {
    Json(
        s.sites
            .iter()
            .map(|site| SiteView {
                id: site.config.id.clone(),
                name: site.config.name.clone(),
                zones: site.zones.len(),
                grids: site.config.grids.len(),
                workers: site.config.workers.len(),
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
#[derive(Serialize)]
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
    sources: BTreeMap<String, SourceLatest>,
}

/// `GET /api/v1/zones?site=`
pub async fn zones(State(s): State<AppState>, Query(f): Query<SiteFilter>) -> Json<Vec<ZoneView>> {
    let live = s.live.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    for site in s.sites.iter().filter(|x| f.site.as_ref().is_none_or(|id| &x.config.id == id)) {
        for z in &site.zones {
            let l = live.zone(&site.config.id, &z.config.id);
            out.push(ZoneView {
                site: site.config.id.clone(),
                zone: z.config.id.clone(),
                name: z.config.name.clone(),
                grid: z.config.grid.clone(),
                kind: z.config.kind.clone(),
                area_m2: z.area_m2,
                capacity: z.config.capacity,
                thresholds: z.thresholds,
                level: l.map_or(Level::Normal, |l| l.rule.level()),
                density: l.and_then(|l| l.density),
                count: l.and_then(|l| l.count),
                ts: l.and_then(|l| l.ts),
                from: l.and_then(|l| l.from.clone()),
                sources: l.map(|l| l.sources.clone()).unwrap_or_default(),
            });
        }
    }
    Json(out)
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
    Path((site, zone)): Path<(String, String)>,
    Query(p): Query<SeriesParams>,
) -> Result<Json<Vec<Point>>, ApiError> {
    let known = s.sites.iter().any(|x| x.config.id == site && x.zone(&zone).is_some());
    if !known {
        return Err(ApiError::NotFound(format!("no zone {site}/{zone}")));
    }
    let to = p.to.unwrap_or_else(|| Utc::now() + Duration::minutes(5));
    let from = p.from.unwrap_or(to - Duration::hours(1) - Duration::minutes(5));
    if from > to {
        return Err(ApiError::BadRequest("from is after to".into()));
    }
    let limit = p.limit.unwrap_or(10_000).min(100_000);
    Ok(Json(s.series.series(SeriesQuery { site, zone, from, to, source: p.source, limit }).await?))
}

/// `?state=open|all&site=`
#[derive(Deserialize)]
pub struct TicketParams {
    state: Option<String>,
    site: Option<String>,
}

/// `GET /api/v1/tickets` (open ones by default)
pub async fn tickets(State(s): State<AppState>, Query(p): Query<TicketParams>) -> Result<Json<Vec<Ticket>>, ApiError> {
    let filter = match p.state.as_deref() {
        None | Some("open") => Filter::Open,
        Some("all") => Filter::All,
        Some(other) => return Err(ApiError::BadRequest(format!("state must be open or all, not {other:?}"))),
    };
    Ok(Json(s.tickets.list(filter, p.site).await?))
}

/// A ticket with its audit trail.
#[derive(Serialize)]
pub struct TicketDetail {
    #[serde(flatten)]
    ticket: Ticket,
    events: Vec<TicketEvent>,
}

/// `GET /api/v1/tickets/{id}`
pub async fn ticket(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Json<TicketDetail>, ApiError> {
    let (ticket, events) = s.tickets.get(id).await?;
    Ok(Json(TicketDetail { ticket, events }))
}

/// Body of a ticket action.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Who acts (worker id or operator name).
    actor: String,
    /// Feedback note (required to resolve).
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/tickets/{id}/{acknowledge|on_site|resolve}`
pub async fn ticket_action(
    State(s): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    Json(body): Json<ActionBody>,
) -> Result<Json<Ticket>, ApiError> {
    let to = match action.as_str() {
        "acknowledge" => "acknowledged",
        "on_site" => "on_site",
        "resolve" => "resolved",
        other => return Err(ApiError::NotFound(format!("no action {other:?}"))),
    };
    if body.actor.trim().is_empty() {
        return Err(ApiError::BadRequest("actor must not be empty".into()));
    }
    if to == "resolved" && body.note.trim().is_empty() {
        return Err(ApiError::BadRequest("resolving needs a feedback note".into()));
    }
    let t = s.tickets.transition(id, to, &body.actor, &body.note).await?;
    if to == "resolved" {
        s.live.write().unwrap_or_else(|e| e.into_inner()).ticket_closed(&t.site, &t.zone);
        s.metrics.tickets_resolved.with_label_values(&["worker"]).inc();
    }
    dispatch::notify(&s.client, &s.prefix, &s.metrics, to, &t).await;
    Ok(Json(t))
}

/// `GET /api/v1/edges`
pub async fn edges(State(s): State<AppState>) -> Json<Vec<EdgeView>> {
    Json(s.edges.list())
}
