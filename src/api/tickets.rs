//! Tickets: list, detail with trail, and the actions of the closed loop.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::central::escalation;
use crate::store::tickets::{ListFilter, Ticket, TicketEvent};

/// `?state=open|all&site=&zone=&assignee=`
#[derive(Deserialize)]
pub struct TicketParams {
    state: Option<String>,
    site: Option<String>,
    zone: Option<String>,
    assignee: Option<String>,
}

/// `GET /api/v1/tickets` (open ones by default; grid workers see their grids only)
pub async fn list(
    State(s): State<AppState>,
    Caller(p): Caller,
    Query(q): Query<TicketParams>,
) -> Result<Json<Vec<Ticket>>, ApiError> {
    let open_only = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(other) => return Err(ApiError::BadRequest(format!("state must be open or all, not {other:?}"))),
    };
    let all = s.tickets.list_where(ListFilter { open_only, site: q.site, zone: q.zone, assignee: q.assignee }).await?;
    Ok(Json(all.into_iter().filter(|t| p.sees_grid(&t.site, &t.grid)).collect()))
}

/// A ticket with its audit trail.
#[derive(Serialize)]
pub struct TicketDetail {
    #[serde(flatten)]
    ticket: Ticket,
    events: Vec<TicketEvent>,
}

/// `GET /api/v1/tickets/{id}`
pub async fn get(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<i64>,
) -> Result<Json<TicketDetail>, ApiError> {
    let (ticket, events) = s.tickets.get(id).await?;
    if !p.sees_grid(&ticket.site, &ticket.grid) {
        return Err(ApiError::Forbidden(format!("ticket {id} is not in your grids")));
    }
    Ok(Json(TicketDetail { ticket, events }))
}

/// `GET /api/v1/tickets/{id}/evidence`: the newest snapshot an edge camera sent for the ticket (JPEG, every
/// person blurred at the edge); 404 when none was sent.
pub async fn evidence(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(id): Path<i64>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (ticket, _) = s.tickets.get(id).await?;
    if !p.sees_grid(&ticket.site, &ticket.grid) {
        return Err(ApiError::Forbidden(format!("ticket {id} is not in your grids")));
    }
    let Some(e) = s.evidence.latest(id, &ticket.site, &ticket.zone).await? else {
        return Err(ApiError::NotFound(format!("no evidence snapshot for ticket {id}")));
    };
    let headers =
        [(axum::http::header::CONTENT_TYPE, "image/jpeg"), (axum::http::header::CACHE_CONTROL, "private, no-store")];
    Ok((headers, e.jpeg).into_response())
}

/// Body of a ticket action.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Feedback note (required to resolve).
    #[serde(default)]
    note: String,
    /// Worker to reassign to.
    #[serde(default)]
    to: Option<String>,
}

/// `POST /api/v1/tickets/{id}/{acknowledge|on_site|resolve|escalate|reassign}`
pub async fn act(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(i64, String)>,
    body: Option<Json<ActionBody>>,
) -> Result<Json<Ticket>, ApiError> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let (ticket, _) = s.tickets.get(id).await?;
    let p = &caller.0;
    if !p.sees_grid(&ticket.site, &ticket.grid) || !p.may_act_on(&ticket) {
        return Err(ApiError::Forbidden(format!("{} may not act on ticket {id}", p.actor())));
    }
    let actor = p.actor();
    let (event, t) = match action.as_str() {
        "acknowledge" => ("acknowledged", s.tickets.transition(id, "acknowledged", &actor, &body.note).await?),
        "on_site" => ("on_site", s.tickets.transition(id, "on_site", &actor, &body.note).await?),
        "resolve" => {
            if body.note.trim().is_empty() {
                return Err(ApiError::BadRequest("resolving needs a feedback note".into()));
            }
            let t = s.tickets.transition(id, "resolved", &actor, &body.note).await?;
            s.engine.lock().unwrap_or_else(|e| e.into_inner()).mark_closed(
                &t.site,
                &t.zone,
                &t.rule,
                chrono::Utc::now(),
            );
            s.metrics.tickets_resolved.with_label_values(&["worker"]).inc();
            ("resolved", t)
        }
        "escalate" => {
            let reason = if body.note.trim().is_empty() { "whistle blown".to_string() } else { body.note.clone() };
            let due = escalation::after_manual(&s.escalation, &ticket, chrono::Utc::now());
            let t = s.tickets.escalate(id, &actor, &reason, due).await?;
            s.metrics.escalations.with_label_values(&[t.tier.as_str()]).inc();
            ("escalated", t)
        }
        "reassign" => {
            caller.require(&[Role::Operator, Role::Admin])?;
            let to = body.to.clone().ok_or_else(|| ApiError::BadRequest("reassign needs \"to\"".into()))?;
            let covers = s
                .sites
                .iter()
                .filter(|x| x.config.id == ticket.site)
                .flat_map(|x| x.workers_of_grid(&ticket.grid).map(|w| w.id.clone()).collect::<Vec<_>>())
                .any(|w| w == to);
            if !covers {
                return Err(ApiError::BadRequest(format!("{to:?} does not cover grid {}", ticket.grid)));
            }
            ("reassigned", s.tickets.reassign(id, &to, &actor, &body.note).await?)
        }
        other => return Err(ApiError::NotFound(format!("no action {other:?}"))),
    };
    tracing::info!(ticket = id, action = event, actor = %actor, "ticket action");
    s.notifier.ticket(event, &t).await;
    Ok(Json(t))
}
