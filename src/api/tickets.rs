//! Tickets: list, detail with trail, and the actions of the closed loop.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::auth::Role;
use crate::store::tickets::{Action, ListFilter, Ticket, TicketEvent};

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
    body: Option<super::ApiJson<ActionBody>>,
) -> Result<Json<Ticket>, ApiError> {
    let body = body.map(|super::ApiJson(b)| b).unwrap_or_default();
    let (ticket, _) = s.tickets.get(id).await?;
    let p = &caller.0;
    if !p.sees_grid(&ticket.site, &ticket.grid) || !p.may_act_on(&ticket) {
        return Err(ApiError::Forbidden(format!("{} may not act on ticket {id}", p.actor())));
    }
    let actor = p.actor();
    let Some(act) = Action::parse(&action) else {
        return Err(ApiError::NotFound(format!("no action {action:?}")));
    };
    match act {
        Action::Resolve if body.note.trim().is_empty() => {
            return Err(ApiError::BadRequest("resolving needs a feedback note".into()))
        }
        Action::Reassign => {
            caller.require(&[Role::Operator, Role::Admin])?;
            let to = body.to.as_deref().ok_or_else(|| ApiError::BadRequest("reassign needs \"to\"".into()))?;
            let covers = s
                .sites
                .iter()
                .filter(|x| x.config.id == ticket.site)
                .any(|x| x.workers_of_grid(&ticket.grid).any(|w| w.id == to));
            if !covers {
                return Err(ApiError::BadRequest(format!("{to:?} does not cover grid {}", ticket.grid)));
            }
        }
        _ => {}
    }
    let t = s.ticket_service.act(&ticket, act, &actor, &body.note, body.to.as_deref(), &s.escalation).await?;
    if act == Action::Resolve {
        // The rule's cooldown starts now: the same crowd does not raise a new ticket the moment it is closed.
        s.engine.lock().unwrap_or_else(|e| e.into_inner()).mark_closed(&t.site, &t.zone, &t.rule, chrono::Utc::now());
    }
    Ok(Json(t))
}
