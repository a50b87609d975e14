//! Camera settings as versioned data: every change an engineer makes to a camera's thresholds, NMS IoU, model or
//! image geometry (through the API or the console) is a new row — the values, who, when, why. A camera's newest
//! row is what the centre pushes to its edge; a rollback is a new row holding an older one's values, so the history only grows.
//! In the dispatch database (SQLite, or PostgreSQL shared by every centre instance).

use chrono::{DateTime, Utc};
use crowdgrid_proto::geometry::CameraGeometry;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::blocking::run as blocking;
use super::dispatch_db::DispatchDb;
use super::{from_ms, ms, schema, StoreError};

/// Which camera: `(site, edge, camera id in the edge file)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CameraKey {
    /// Site id.
    pub site: String,
    /// Edge id.
    pub edge: String,
    /// Camera id.
    pub camera: String,
}

/// The values of one settings version (a `None`: the edge file's own).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsValues {
    /// Person threshold.
    #[serde(default)]
    pub person_threshold: Option<f32>,
    /// Vehicle threshold.
    #[serde(default)]
    pub vehicle_threshold: Option<f32>,
    /// NMS IoU.
    #[serde(default)]
    pub nms_iou: Option<f32>,
    /// Model name in the centre's pool.
    #[serde(default)]
    pub model: Option<String>,
    /// Calibration, image zones and counting lines drawn on the camera's view.
    #[serde(default)]
    pub geometry: Option<CameraGeometry>,
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsVersion {
    /// Increasing over all cameras.
    pub version: i64,
    /// The camera.
    #[serde(flatten)]
    pub key: CameraKey,
    /// The values.
    #[serde(flatten)]
    pub values: SettingsValues,
    /// sha256 of the model at the time (the pool's file then).
    pub model_sha256: Option<String>,
    /// Who.
    pub author: String,
    /// Why.
    pub note: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "version, site, edge, camera, person_threshold, vehicle_threshold, nms_iou, model, model_sha256, \
     author, note, created_at, geometry";

/// A stored geometry; one that no longer parses (written by a newer centre) is left out, logged.
fn geometry(text: Option<String>, version: i64) -> Option<CameraGeometry> {
    let text = text?;
    serde_json::from_str(&text)
        .map_err(|e| tracing::warn!(version, error = %e, "stored camera geometry does not parse; left out"))
        .ok()
}

fn f32s(v: Option<f64>) -> Option<f32> {
    v.map(|x| x as f32)
}

fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SettingsVersion> {
    Ok(SettingsVersion {
        version: r.get(0)?,
        key: CameraKey { site: r.get(1)?, edge: r.get(2)?, camera: r.get(3)? },
        values: SettingsValues {
            person_threshold: f32s(r.get(4)?),
            vehicle_threshold: f32s(r.get(5)?),
            nms_iou: f32s(r.get(6)?),
            model: r.get(7)?,
            geometry: geometry(r.get(12)?, r.get(0)?),
        },
        model_sha256: r.get(8)?,
        author: r.get(9)?,
        note: r.get(10)?,
        created_at: from_ms(r.get(11)?),
    })
}

fn pg_row(r: &tokio_postgres::Row) -> Result<SettingsVersion, tokio_postgres::Error> {
    Ok(SettingsVersion {
        version: r.try_get(0)?,
        key: CameraKey { site: r.try_get(1)?, edge: r.try_get(2)?, camera: r.try_get(3)? },
        values: SettingsValues {
            person_threshold: f32s(r.try_get(4)?),
            vehicle_threshold: f32s(r.try_get(5)?),
            nms_iou: f32s(r.try_get(6)?),
            model: r.try_get(7)?,
            geometry: geometry(r.try_get(12)?, r.try_get(0)?),
        },
        model_sha256: r.try_get(8)?,
        author: r.try_get(9)?,
        note: r.try_get(10)?,
        created_at: from_ms(r.try_get(11)?),
    })
}

/// Filter of [`DispatchDb::camera_settings`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this camera's versions.
    pub camera: Option<CameraKey>,
    /// Only the newest version of each camera.
    pub newest_only: bool,
    /// At most this many, newest first.
    pub limit: i64,
}

impl DispatchDb {
    /// Stores a new version for `key` and returns its number.
    pub async fn add_camera_settings(
        &self,
        key: &CameraKey,
        v: &SettingsValues,
        model_sha256: Option<&str>,
        author: &str,
        note: &str,
    ) -> Result<i64, StoreError> {
        let now = ms(Utc::now());
        let f = |x: Option<f32>| x.map(f64::from);
        let (site, edge, camera) = (key.site.clone(), key.edge.clone(), key.camera.clone());
        let (pt, vt, iou, model) = (f(v.person_threshold), f(v.vehicle_threshold), f(v.nms_iou), v.model.clone());
        let (sha, author, note) = (model_sha256.map(str::to_string), author.to_string(), note.to_string());
        let geometry = v
            .geometry
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Encode(format!("geometry: {e}")))?;
        const INSERT: &str = "INSERT INTO camera_settings (site, edge, camera, person_threshold, vehicle_threshold,
             nms_iou, model, model_sha256, author, note, created_at, geometry)";
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                blocking(move || {
                    let c = schema::open(&p)?;
                    c.execute(
                        &format!("{INSERT} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                        params![site, edge, camera, pt, vt, iou, model, sha, author, note, now, geometry],
                    )?;
                    Ok(c.last_insert_rowid())
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let c = pool.get().await?;
                let row = c
                    .query_one(
                        &format!(
                            "{INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING version"
                        ),
                        &[&site, &edge, &camera, &pt, &vt, &iou, &model, &sha, &author, &note, &now, &geometry],
                    )
                    .await?;
                Ok(row.try_get(0)?)
            }
        }
    }

    /// Versions, newest first, as `filter` says.
    pub async fn camera_settings(&self, filter: Filter) -> Result<Vec<SettingsVersion>, StoreError> {
        let newest = "version = (SELECT MAX(version) FROM camera_settings o WHERE o.site = s.site AND o.edge = s.edge
             AND o.camera = s.camera)";
        let (site, edge, camera) = match &filter.camera {
            Some(k) => (Some(k.site.clone()), Some(k.edge.clone()), Some(k.camera.clone())),
            None => (None, None, None),
        };
        let only_newest = if filter.newest_only { newest } else { "1 = 1" };
        let limit = filter.limit.max(1);
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                let sql = format!(
                    "SELECT {COLUMNS} FROM camera_settings s WHERE (?1 IS NULL OR (site = ?1 AND edge = ?2 AND camera = ?3))
                     AND {only_newest} ORDER BY version DESC LIMIT ?4"
                );
                blocking(move || {
                    let c = schema::open(&p)?;
                    let mut stmt = c.prepare(&sql)?;
                    let rows = stmt.query_map(params![site, edge, camera, limit], sqlite_row)?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM camera_settings s WHERE ($1::TEXT IS NULL OR (site = $1 AND edge = $2
                     AND camera = $3)) AND {only_newest} ORDER BY version DESC LIMIT $4"
                );
                let c = pool.get().await?;
                let rows = c.query(&sql, &[&site, &edge, &camera, &limit]).await?;
                Ok(rows.iter().map(pg_row).collect::<Result<Vec<_>, _>>()?)
            }
        }
    }

    /// One version.
    pub async fn camera_settings_version(&self, version: i64) -> Result<Option<SettingsVersion>, StoreError> {
        match self {
            DispatchDb::Sqlite(p) => {
                let p = p.clone();
                blocking(move || {
                    let c = schema::open(&p)?;
                    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM camera_settings WHERE version = ?1"))?;
                    let mut rows = stmt.query_map(params![version], sqlite_row)?;
                    Ok(rows.next().transpose()?)
                })
                .await
            }
            DispatchDb::Postgres(pool) => {
                let c = pool.get().await?;
                let row = c
                    .query_opt(&format!("SELECT {COLUMNS} FROM camera_settings WHERE version = $1"), &[&version])
                    .await?;
                Ok(row.as_ref().map(pg_row).transpose()?)
            }
        }
    }
}
