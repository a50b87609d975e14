//! Camera settings from the engineer to the edge (thresholds, IoU, model, image geometry): a change (or a rollback) is stored as a new version
//! ([`crate::store::camera_settings`]), then the edge's whole settings — the newest version of each of its
//! cameras, with each assigned model's manifest entry and sha256 — are published retained on
//! `{prefix}/{site}/edge/{edge}/settings`, signed with the edge's newest credential (unsigned only when edge
//! authentication is off). Retained, so an edge that was offline gets them when it connects; republished for
//! every edge when the centre starts (an embedded broker forgets retained messages on restart). The edge says
//! what it runs in its status; `GET /api/v1/cameras` shows both side by side.

use std::collections::BTreeMap;
use std::sync::Arc;

use crowdgrid_proto::site::Site;
use crowdgrid_proto::tuning::{CameraSettings, EdgeSettings, ModelAssignment};
use crowdgrid_proto::{signed, topic};
use rumqttc::{AsyncClient, QoS};

use super::model_pool::ModelPool;
use crate::auth::edge_credentials::{Authentication, Registry, CENTRE_ID};
use crate::store::camera_settings::{CameraKey, Filter, SettingsValues, SettingsVersion};
use crate::store::dispatch_db::DispatchDb;
use crate::store::StoreError;

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The values are out of range or name an unknown model (every problem listed).
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// No such version.
    #[error("no camera settings version {0}")]
    NotFound(i64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a change made: the stored version, and whether the edge's settings were published (when not, why: the
/// edge gets them when the centre next publishes, at the next change or start).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Changed {
    /// The new version.
    pub version: i64,
    /// Published to the edge's retained settings topic.
    pub published: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_published: Option<String>,
}

/// The camera settings service (cloned into the API state).
#[derive(Clone)]
pub struct CameraTuning {
    /// The model pool.
    pub pool: Arc<ModelPool>,
    db: DispatchDb,
    client: AsyncClient,
    prefix: String,
    registry: Registry,
    auth: Authentication,
}

impl CameraTuning {
    /// The service.
    pub fn new(
        pool: Arc<ModelPool>,
        db: DispatchDb,
        client: AsyncClient,
        prefix: String,
        registry: Registry,
        auth: Authentication,
    ) -> Self {
        CameraTuning { pool, db, client, prefix, registry, auth }
    }

    /// The edge-credential registry (the model download checks edges' signatures with it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether edges must sign.
    pub fn authentication(&self) -> Authentication {
        self.auth
    }

    /// The dispatch database.
    pub fn db(&self) -> &DispatchDb {
        &self.db
    }

    /// Problems with `v` against the pool and the camera's site (its geometry: zones the site has, a calibration
    /// that fits, image zones that lie on their site zones).
    pub fn problems(&self, site: &Site, v: &SettingsValues) -> Vec<String> {
        let mut out = crowdgrid_proto::tuning::value_problems(v.person_threshold, v.vehicle_threshold, v.nms_iou);
        if let Some(g) = &v.geometry {
            let found = crowdgrid_edge::config::geometry::problems(g, site);
            out.extend(found.into_iter().map(|p| format!("geometry.{p}")));
        }
        if let Some(m) = &v.model {
            if self.pool.by_name(m).is_none() {
                let have: Vec<&str> = self.pool.models().iter().map(|m| m.spec.name.as_str()).collect();
                out.push(format!("model: {m:?} is not in the centre's pool (have: {})", have.join(", ")));
            }
        }
        out
    }

    /// Stores `v` as the camera's new version and publishes the edge's settings; the version.
    pub async fn change(
        &self,
        site: &Site,
        key: &CameraKey,
        v: &SettingsValues,
        author: &str,
        note: &str,
    ) -> Result<Changed, TuningError> {
        let problems = self.problems(site, v);
        if !problems.is_empty() {
            return Err(TuningError::Invalid(problems));
        }
        let sha = v.model.as_deref().and_then(|m| self.pool.by_name(m)).map(|m| m.spec.sha256.clone());
        let version = self.db.add_camera_settings(key, v, sha.as_deref(), author, note).await?;
        tracing::info!(site = %key.site, edge = %key.edge, camera = %key.camera, version, author, "camera settings changed");
        let published = self.publish(&key.site, &key.edge).await;
        if let Err(why) = &published {
            tracing::warn!(site = %key.site, edge = %key.edge, version, why, "camera settings stored, not published");
        }
        Ok(Changed { version, published: published.is_ok(), not_published: published.err() })
    }

    /// A new version holding `version`'s values (checked again against the camera's site as it is now),
    /// published.
    pub async fn rollback(&self, sites: &[Arc<Site>], version: i64, author: &str) -> Result<Changed, TuningError> {
        let old = self.db.camera_settings_version(version).await?.ok_or(TuningError::NotFound(version))?;
        let Some(site) = sites.iter().find(|s| s.config.id == old.key.site) else {
            return Err(TuningError::Invalid(vec![format!("site {:?} is no longer configured", old.key.site)]));
        };
        let note = format!("rollback to version {version}");
        self.change(site, &old.key, &old.values, author, &note).await
    }

    /// The newest version of every camera.
    pub async fn newest(&self) -> Result<Vec<SettingsVersion>, StoreError> {
        self.db.camera_settings(Filter { newest_only: true, limit: 100_000, ..Filter::default() }).await
    }

    /// The message the edge `(site, edge)` should hold now.
    pub async fn settings_of(&self, site: &str, edge: &str) -> Result<EdgeSettings, StoreError> {
        let newest = self.newest().await?;
        Ok(self.message(newest.iter().filter(|v| v.key.site == site && v.key.edge == edge)))
    }

    /// An edge's message from the newest version of each of its cameras.
    fn message<'a>(&self, versions: impl Iterator<Item = &'a SettingsVersion>) -> EdgeSettings {
        let mut cameras = BTreeMap::new();
        for v in versions {
            let model = v.values.model.as_deref().and_then(|m| self.pool.by_name(m)).map(|m| ModelAssignment {
                name: m.spec.name.clone(),
                version: m.spec.version.clone(),
                sha256: m.spec.sha256.clone(),
                bytes: m.bytes,
                spec: serde_json::to_value(&m.spec).unwrap_or_default(),
            });
            cameras.insert(
                v.key.camera.clone(),
                CameraSettings {
                    version: v.version,
                    person_threshold: v.values.person_threshold,
                    vehicle_threshold: v.values.vehicle_threshold,
                    nms_iou: v.values.nms_iou,
                    model,
                    geometry: v.values.geometry.clone(),
                },
            );
        }
        EdgeSettings { cameras }
    }

    /// Publishes the edge's settings (retained, signed with its newest credential).
    pub async fn publish(&self, site: &str, edge: &str) -> Result<(), String> {
        let settings = self.settings_of(site, edge).await.map_err(|e| e.to_string())?;
        self.send(site, edge, &settings).await
    }

    async fn send(&self, site: &str, edge: &str, settings: &EdgeSettings) -> Result<(), String> {
        let body = serde_json::to_vec(settings).map_err(|e| e.to_string())?;
        let t = topic::edge_settings(&self.prefix, site, edge);
        let payload = match self.auth {
            Authentication::Off => body,
            _ => match self.registry.newest(site, edge) {
                Some(cred) => signed::seal(&cred, CENTRE_ID, &t, &body),
                None => return Err(format!("edge {site}/{edge} has no credential in force")),
            },
        };
        self.client.publish(t, QoS::AtLeastOnce, true, payload).await.map_err(|e| e.to_string())
    }

    /// Publishes every edge's settings (at start), from one read of the newest versions.
    pub async fn publish_all(&self) {
        let newest = match self.newest().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot read camera settings; edges keep what they have");
                return;
            }
        };
        let mut by_edge: BTreeMap<(&str, &str), Vec<&SettingsVersion>> = BTreeMap::new();
        for v in &newest {
            by_edge.entry((v.key.site.as_str(), v.key.edge.as_str())).or_default().push(v);
        }
        for ((site, edge), versions) in by_edge {
            if let Err(why) = self.send(site, edge, &self.message(versions.into_iter())).await {
                tracing::warn!(site, edge, why, "camera settings not published");
            }
        }
    }
}
