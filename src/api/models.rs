//! The model pool and camera settings over HTTP: the pool's models with their eval-model reports, every camera
//! with what the centre wants of it and what its edge says it runs, a camera's settings history, a change and a
//! rollback (engineers and admins; operators read; grid workers get 403), and the model files themselves for
//! edges (signed with the edge's credential: a model is the city's, not the public's).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crowdgrid_edge::vision::eval::report::EvalReport;
use crowdgrid_proto::{signed, EdgeState, ModelInfo};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller};
use crate::auth::edge_credentials::Authentication;
use crate::auth::Role;
use crate::central::camera_tuning::{Changed, TuningError};
use crate::central::model_pool::PoolModel;
use crate::store::camera_settings::{CameraKey, Filter, SettingsValues, SettingsVersion};

/// How far a signed model request's time may be from the centre's clock.
pub const SIGNED_REQUEST_SKEW_S: i64 = 300;

const READERS: &[Role] = &[Role::Operator, Role::Engineer, Role::Admin];
const TUNERS: &[Role] = &[Role::Engineer, Role::Admin];

impl From<TuningError> for ApiError {
    fn from(e: TuningError) -> Self {
        match e {
            TuningError::Invalid(problems) => {
                ApiError::Invalid { message: "camera settings are not valid".into(), problems }
            }
            TuningError::NotFound(v) => ApiError::NotFound(format!("no camera settings version {v}")),
            TuningError::Store(e) => e.into(),
        }
    }
}

/// `GET /api/v1/models`
#[derive(Serialize)]
pub struct Models {
    /// The pool.
    pub models: Vec<PoolModel>,
    /// eval-model reports beside the pool's manifest, newest first, without each run's per-image counts (the
    /// bulk of a report, and not what the console shows).
    pub evaluations: Vec<serde_json::Value>,
}

/// `GET /api/v1/models` (operator, engineer, admin)
pub async fn models(State(s): State<AppState>, caller: Caller) -> Result<Json<Models>, ApiError> {
    caller.require(READERS)?;
    let pool = s.cameras.pool.clone();
    let evaluations = tokio::task::spawn_blocking(move || pool.evaluations().iter().map(summary).collect())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Models { models: s.cameras.pool.models().to_vec(), evaluations }))
}

fn summary(r: &EvalReport) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(runs) = v.get_mut("runs").and_then(|x| x.as_array_mut()) {
        for run in runs {
            if let Some(o) = run.as_object_mut() {
                o.remove("images");
            }
        }
    }
    v
}

/// One camera in `GET /api/v1/cameras`.
#[derive(Serialize)]
pub struct CameraView {
    /// Which camera.
    #[serde(flatten)]
    pub key: CameraKey,
    /// Whether its edge is online (`None`: never seen).
    pub edge_state: Option<EdgeState>,
    /// What the edge says the camera runs (its status).
    pub running: Option<ModelInfo>,
    /// The newest settings version the centre holds for it.
    pub desired: Option<SettingsVersion>,
    /// The edge runs the newest version (or there is none and it runs its own file's).
    pub in_step: bool,
}

/// `GET /api/v1/cameras` (operator, engineer, admin): every camera an edge reports or the centre has settings
/// for.
pub async fn cameras(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<CameraView>>, ApiError> {
    caller.require(READERS)?;
    let mut out: std::collections::BTreeMap<CameraKey, CameraView> = std::collections::BTreeMap::new();
    for e in s.edges.list() {
        for m in &e.status.models {
            let camera = m.source.strip_prefix(&format!("{}/", e.status.edge_id)).unwrap_or(&m.source).to_string();
            let key = CameraKey { site: e.status.site.clone(), edge: e.status.edge_id.clone(), camera };
            out.insert(
                key.clone(),
                CameraView {
                    key,
                    edge_state: Some(e.status.state),
                    running: Some(m.clone()),
                    desired: None,
                    in_step: false,
                },
            );
        }
    }
    for v in s.cameras.newest().await? {
        let edge_state = s.edges.state(&v.key.site, &v.key.edge);
        let key = v.key.clone();
        out.entry(key.clone())
            .or_insert_with(|| CameraView { key, edge_state, running: None, desired: None, in_step: false })
            .desired = Some(v);
    }
    let mut views: Vec<CameraView> = out.into_values().collect();
    for v in &mut views {
        let runs = v.running.as_ref().and_then(|r| r.settings_version);
        v.in_step = runs == v.desired.as_ref().map(|d| d.version) && v.running.is_some();
    }
    Ok(Json(views))
}

/// `GET /api/v1/cameras/{site}/{edge}/{camera}/settings` (operator, engineer, admin): the camera's versions,
/// newest first (at most 100).
pub async fn history(
    State(s): State<AppState>,
    caller: Caller,
    Path((site, edge, camera)): Path<(String, String, String)>,
) -> Result<Json<Vec<SettingsVersion>>, ApiError> {
    caller.require(READERS)?;
    let key = CameraKey { site, edge, camera };
    Ok(Json(s.cameras.db().camera_settings(Filter { camera: Some(key), newest_only: false, limit: 100 }).await?))
}

/// A camera's new settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The values (a left-out one: the edge file's).
    #[serde(flatten)]
    pub values: SettingsValues,
    /// Why (kept with the version).
    #[serde(default)]
    pub note: String,
}

/// 201 when the edge was told, 202 when the version is stored and not yet published (e.g. an edge without a
/// credential in force: it gets the settings once it has one and the centre publishes again).
fn status_of(c: &Changed) -> StatusCode {
    if c.published {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    }
}

fn check_camera<'a>(s: &'a AppState, key: &CameraKey) -> Result<&'a crowdgrid_proto::site::Site, ApiError> {
    let Some(site) = s.sites.iter().find(|x| x.config.id == key.site) else {
        return Err(ApiError::NotFound(format!("no site {}", key.site)));
    };
    let mut p = crowdgrid_proto::config::Problems::new();
    crowdgrid_proto::config::check_id(&mut p, "edge", &key.edge);
    crowdgrid_proto::config::check_id(&mut p, "camera", &key.camera);
    if !p.is_empty() {
        return Err(ApiError::Invalid { message: "bad camera".into(), problems: p.items().to_vec() });
    }
    Ok(site)
}

/// `POST /api/v1/cameras/{site}/{edge}/{camera}/settings` (engineer, admin): 201 with the version (202 when it
/// is stored but could not be published yet), 422 with every problem and nothing changed.
pub async fn change(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path((site, edge, camera)): Path<(String, String, String)>,
    super::ApiJson(c): super::ApiJson<Change>,
) -> Result<(StatusCode, Json<Changed>), ApiError> {
    Caller(p.clone()).require(TUNERS)?;
    let key = CameraKey { site, edge, camera };
    let site = check_camera(&s, &key)?;
    let changed = s.cameras.change(site, &key, &c.values, &p.name, &c.note).await?;
    Ok((status_of(&changed), Json(changed)))
}

/// `POST /api/v1/cameras/settings/{version}/rollback` (engineer, admin): that version's values again, as a new
/// version of the same camera.
pub async fn rollback(
    State(s): State<AppState>,
    Caller(p): Caller,
    Path(version): Path<i64>,
) -> Result<(StatusCode, Json<Changed>), ApiError> {
    Caller(p.clone()).require(TUNERS)?;
    let changed = s.cameras.rollback(&s.sites, version, &p.name).await?;
    Ok((status_of(&changed), Json(changed)))
}

/// `GET /api/v1/edges/{site}/{edge}/models/{sha256}`: a pool model's file, for that edge. With edge
/// authentication on, the request must be signed with one of the edge's credentials in force
/// (`x-crowdgrid-signature` over `GET {path}` and `x-crowdgrid-time`, within ±5 min of the centre's clock).
pub async fn file(
    State(s): State<AppState>,
    Path((site, edge, sha256)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if s.cameras.authentication() != Authentication::Off {
        let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (line, time) = (get(signed::HTTP_SIGNATURE), get(signed::HTTP_TIME));
        let fresh =
            time.parse::<i64>().is_ok_and(|t| (t - chrono::Utc::now().timestamp()).abs() <= SIGNED_REQUEST_SKEW_S);
        let target = format!("GET /api/v1/edges/{site}/{edge}/models/{sha256}");
        let ok = fresh
            && signed::verify_request(line, time, &target, |h| {
                (h.edge == edge)
                    .then(|| s.cameras.registry().key(&site, &edge, h.kid))
                    .flatten()
                    .map(|c| c.key().to_vec())
            })
            .is_some();
        if !ok {
            s.metrics.model_requests_refused.inc();
            return Err(ApiError::Unauthorized(
                "a model is served only to its edge, signed with its credential".into(),
            ));
        }
    }
    let m = s
        .cameras
        .pool
        .by_sha256(&sha256)
        .ok_or_else(|| ApiError::NotFound(format!("no model with sha256 {sha256} in the pool")))?;
    let f = tokio::fs::File::open(&m.path).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    tracing::info!(site, edge, model = %m.spec.name, "model served");
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, m.bytes.to_string())],
        body,
    )
        .into_response())
}
