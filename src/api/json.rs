//! The API's JSON request bodies: axum's `Json` extractor, with its refusals answered like every other API error
//! (a JSON `{"error"}` body with the status the OpenAPI document declares) instead of axum's plain-text ones:
//! a body without `Content-Type: application/json` is 415, one that is not JSON 400, JSON of the wrong shape 422
//! with the parser's message as the problem.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body of type `T`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match <axum::Json<T> as FromRequest<S>>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(r.into()),
        }
    }
}

/// An optional body (ticket actions take one or none): none without a `Content-Type`, else as above.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        match <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(v.map(|axum::Json(v)| ApiJson(v))),
            Err(r) => Err(r.into()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("send the body as Content-Type: application/json".into())
            }
            JsonRejection::JsonDataError(e) => ApiError::Invalid {
                message: "the body does not have the expected fields".into(),
                problems: vec![e.body_text()],
            },
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::BadRequest(format!("the body is not JSON: {}", e.body_text()))
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// A query string of type `T`, refused as a JSON 400 (axum's `Query` answers in plain text).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match <axum::extract::Query<T> as axum::extract::FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(ApiError::BadRequest(r.body_text())),
        }
    }
}
