//! Health, metrics, edges, rules, the outbox and the OpenAPI document.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::central::edges::EdgeView;
use crate::rules::RuleView;
use crate::store::outbox::Delivery;

/// `GET /healthz`
pub async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    // Every subscriber up: the one connection, or in a cluster one per site held (none when it holds none).
    let connected = s.metrics.mqtt_connected.get();
    let held = s.ownership.leased().map(|h| h.len());
    let mqtt = match held {
        Some(n) => connected >= n as i64,
        None => connected >= 1,
    };
    let store = s.series.ping().await.is_ok();
    let status = if mqtt && store { "ok" } else { "degraded" };
    let code = if store { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    let mut body = serde_json::json!({ "status": status, "mqtt_connected": mqtt, "store": store });
    if let Some(n) = held {
        body["sites_held"] = n.into();
    }
    (code, Json(body))
}

/// `GET /metrics`
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

/// `GET /api/v1/edges`
pub async fn edges(State(s): State<AppState>, Caller(p): Caller) -> Json<Vec<EdgeView>> {
    Json(
        s.edges
            .list()
            .into_iter()
            .filter(|e| p.reads_all() || p.grids.iter().any(|(site, _)| site == &e.status.site))
            .collect(),
    )
}

/// `GET /api/v1/sequences`: per source, the contiguous and highest stored `seq`, how many in between are
/// missing, and how many arrived reordered, duplicated or stale (operator, engineer, admin).
pub async fn sequences(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<crate::central::dedup::SourceSequence>>, ApiError> {
    caller.require(&[Role::Operator, Role::Engineer, Role::Admin])?;
    let d = s.sequences.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Json(d.sequences()))
}

/// `?site=`
#[derive(Deserialize)]
pub struct SiteParam {
    site: Option<String>,
}

/// `GET /api/v1/rules` (operator, engineer, admin)
pub async fn rules(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<SiteParam>,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    caller.require(&[Role::Operator, Role::Engineer, Role::Admin])?;
    let engine = s.engine.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Json(engine.views(q.site.as_deref())))
}

/// `GET /api/v1/outbox`: webhook deliveries not yet made (operator, engineer, admin).
pub async fn outbox(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<Delivery>>, ApiError> {
    caller.require(&[Role::Operator, Role::Engineer, Role::Admin])?;
    Ok(Json(s.notifier.outbox.undelivered().await?))
}

/// `GET /api/v1/openapi.json`
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../docs/openapi.json"))
}
