//! The bearer-token extractor and the `/me` and `/tokens` endpoints.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::auth::{Principal, Role};

/// The authenticated caller of a request (401 without a known token, 429 over its rate).
pub struct Caller(pub Principal);

/// The bearer token of the `Authorization` header, the only place a token is taken from (a token in a URL ends
/// up in logs and browser history; the event stream takes a short-lived ticket instead, see `limit.rs`).
fn token_from(parts: &Parts) -> Option<String> {
    let v = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// The record of the caller's bearer token, rate-limited per token.
pub async fn bearer(parts: &Parts, state: &AppState) -> Result<crate::auth::TokenRecord, ApiError> {
    let token = token_from(parts).ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
    let rec = state
        .tokens
        .lookup(&token)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
    if !state.limiter.allow(&token) {
        state.metrics.http_rate_limited.inc();
        return Err(ApiError::TooMany(format!("over {} requests/s for this token", state.limiter.rate())));
    }
    Ok(rec)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let rec = bearer(parts, state).await?;
        Ok(Caller(Principal::new(rec, &state.sites)))
    }
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("role {} may not do this", self.0.role.as_str())))
        }
    }
}

/// `GET /api/v1/me`
pub async fn me(Caller(p): Caller) -> Json<Principal> {
    Json(p)
}

/// Body of `POST /api/v1/tokens`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: Role,
    #[serde(default)]
    worker: Option<String>,
}

/// A created token, shown once.
#[derive(Serialize)]
pub struct CreatedToken {
    name: String,
    role: Role,
    worker: Option<String>,
    token: String,
}

/// `POST /api/v1/tokens` (admin)
pub async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    super::ApiJson(body): super::ApiJson<NewToken>,
) -> Result<Json<CreatedToken>, ApiError> {
    caller.require(&[Role::Admin])?;
    if let Some(w) = &body.worker {
        if !s.sites.iter().any(|site| site.config.workers.iter().any(|x| &x.id == w)) {
            return Err(ApiError::BadRequest(format!("no worker {w:?} on any roster")));
        }
    }
    let token = s
        .tokens
        .create(&body.name, body.role, body.worker.as_deref())
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracing::info!(name = %body.name, role = body.role.as_str(), by = %caller.0.actor(), "token created");
    Ok(Json(CreatedToken { name: body.name, role: body.role, worker: body.worker, token }))
}
