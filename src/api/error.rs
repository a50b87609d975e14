//! API errors as JSON with the right status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no or unknown token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: known caller, not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 409: the ticket's state does not allow the action.
    #[error("{0}")]
    Conflict(String),
    /// 429: over the per-token rate.
    #[error("{0}")]
    TooMany(String),
    /// 422: the submitted document is invalid; every problem is listed.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Every problem, one per line as `check-config` prints them.
        problems: Vec<String>,
    },
    /// 415: a request body that is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 503: a bounded resource (event streams) is full.
    #[error("{0}")]
    Unavailable(String),
    /// 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoTicket(_) => ApiError::NotFound(e.to_string()),
            StoreError::Transition { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crowdgrid_proto::config::ConfigError> for ApiError {
    fn from(e: crowdgrid_proto::config::ConfigError) -> Self {
        use crowdgrid_proto::config::ConfigError;
        let problems = match &e {
            ConfigError::Invalid { problems, .. } => problems.clone(),
            other => vec![other.to_string()],
        };
        ApiError::Invalid { message: format!("invalid rules: {} problem(s)", problems.len()), problems }
    }
}

impl From<crate::central::rulebook::RulebookError> for ApiError {
    fn from(e: crate::central::rulebook::RulebookError) -> Self {
        use crate::central::rulebook::RulebookError;
        match e {
            RulebookError::Invalid(c) => c.into(),
            RulebookError::NotFound(m) => ApiError::NotFound(m),
            RulebookError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "api error");
        }
        let body = match &self {
            ApiError::Invalid { problems, .. } => {
                serde_json::json!({ "error": self.to_string(), "problems": problems })
            }
            _ => serde_json::json!({ "error": self.to_string() }),
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
