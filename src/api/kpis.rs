//! `GET /api/v1/kpis`

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::central::kpi::{self, Kpis};

/// `?site=&from=&to=` (default: the last 30 days)
#[derive(Deserialize)]
pub struct KpiParams {
    site: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// `GET /api/v1/kpis` (operator, engineer, admin)
pub async fn kpis(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<KpiParams>,
) -> Result<Json<Kpis>, ApiError> {
    caller.require(&[Role::Operator, Role::Engineer, Role::Admin])?;
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    let history = s.tickets.history(from, to, q.site).await?;
    Ok(Json(kpi::compute(&history)))
}
