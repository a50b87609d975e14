//! The bearer-token extractor and the `/me` and `/tokens` endpoints.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::auth::{Principal, Role};

/// The authenticated caller of a request (401 without a known token).
pub struct Caller(pub Principal);

fn token_from(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    // EventSource cannot set headers: the stream also takes ?access_token=.
    parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=").map(|t| t.to_string())))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = token_from(parts).ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let rec = state
            .tokens
            .lookup(&token)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
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
    Json(body): Json<NewToken>,
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
