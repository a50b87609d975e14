//! A camera's newest view for the geometry editor: `…/view` is the frame's size, when it was taken, the settings
//! version and the geometry the camera counts with; `…/view.jpg` is the blurred frame itself. Operators,
//! engineers and admins (the people who see evidence snapshots); grid workers get 403. A camera that sent no view
//! (snapshots off, or not seen since the centre started and nothing retained) is 404.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{ApiError, AppState, Caller};
use crate::auth::Role;
use crate::central::camera_views::StoredView;
use crate::store::camera_settings::CameraKey;

const READERS: &[Role] = &[Role::Operator, Role::Engineer, Role::Admin];

fn find(s: &AppState, key: &CameraKey) -> Result<StoredView, ApiError> {
    s.camera_views.get(key).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no view of camera {}/{}/{} (its edge sends one only with snapshots on: `evidence` in the edge file)",
            key.site, key.edge, key.camera
        ))
    })
}

/// `GET /api/v1/cameras/{site}/{edge}/{camera}/view` (operator, engineer, admin)
pub async fn view(
    State(s): State<AppState>,
    caller: Caller,
    Path((site, edge, camera)): Path<(String, String, String)>,
) -> Result<Json<StoredView>, ApiError> {
    caller.require(READERS)?;
    Ok(Json(find(&s, &CameraKey { site, edge, camera })?))
}

/// `GET /api/v1/cameras/{site}/{edge}/{camera}/view.jpg` (operator, engineer, admin)
pub async fn jpeg(
    State(s): State<AppState>,
    caller: Caller,
    Path((site, edge, camera)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    caller.require(READERS)?;
    let v = find(&s, &CameraKey { site, edge, camera })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        v.jpeg.as_ref().clone(),
    )
        .into_response())
}
