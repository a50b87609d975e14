//! The newest view of every camera that sends one (a blurred frame and the geometry it counts with), kept in
//! memory for the engineer's geometry editor. Views are retained on the broker, so a restarted centre (or another
//! instance) gets each camera's newest again on subscribing; nothing is written to disk.
//!
//! A view is admitted only from the edge whose topic it is on (checked in `ingest`), with a structurally valid
//! geometry and a payload that decodes to a JPEG. Memory is bounded: at most [`TOTAL_BYTES`] of JPEGs, the
//! oldest views dropped first.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use crowdgrid_proto::geometry::{CameraGeometry, CameraView, MAX_VIEW_BYTES};
use serde::Serialize;

use super::validate::Rejection;
use crate::store::camera_settings::CameraKey;

/// All views' JPEGs together stay under this many bytes.
pub const TOTAL_BYTES: usize = 256 << 20;

/// A camera's view as the centre keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredView {
    /// When the frame was analysed (the edge's clock).
    pub taken_at: chrono::DateTime<chrono::Utc>,
    /// When it arrived.
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// Frame size in pixels.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The settings version the camera ran.
    pub settings_version: Option<i64>,
    /// The geometry it counted with.
    pub geometry: CameraGeometry,
    /// The JPEG (served apart).
    #[serde(skip)]
    pub jpeg: Arc<Vec<u8>>,
}

/// Checks a view published on camera `camera`'s topic; the stored view, or why not (a metric label).
pub fn admit(body: &[u8], camera: &str) -> Result<StoredView, Rejection> {
    if body.len() > MAX_VIEW_BYTES {
        return Err(Rejection::new("view_malformed", format!("{} bytes, more than {MAX_VIEW_BYTES}", body.len())));
    }
    let v: CameraView =
        serde_json::from_slice(body).map_err(|e| Rejection::new("view_malformed", format!("view: {e}")))?;
    if v.camera != camera {
        return Err(Rejection::new("view_malformed", format!("the view of {:?} on {camera:?}'s topic", v.camera)));
    }
    let problems = v.geometry.problems();
    if !problems.is_empty() || v.width == 0 || v.height == 0 || v.width > 16_384 || v.height > 16_384 {
        return Err(Rejection::new(
            "view_malformed",
            format!("view of {camera}: {} {}x{}", problems.join("; "), v.width, v.height),
        ));
    }
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(v.jpeg.as_bytes())
        .map_err(|e| Rejection::new("view_malformed", format!("view of {camera}: jpeg: {e}")))?;
    if !jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(Rejection::new("view_malformed", format!("view of {camera}: not a JPEG")));
    }
    Ok(StoredView {
        taken_at: v.taken_at,
        received_at: chrono::Utc::now(),
        width: v.width,
        height: v.height,
        settings_version: v.settings_version,
        geometry: v.geometry,
        jpeg: Arc::new(jpeg),
    })
}

/// The views (cloned into the ingest task and the API).
#[derive(Debug, Clone, Default)]
pub struct CameraViews {
    inner: Arc<RwLock<Held>>,
}

/// The views and the bytes of their JPEGs (kept, not summed at every put: a centre starting up takes every
/// camera's retained view at once).
#[derive(Debug, Default)]
struct Held {
    views: BTreeMap<CameraKey, StoredView>,
    bytes: usize,
}

impl CameraViews {
    /// Keeps `v` as `key`'s newest view, dropping the oldest others while the total is over budget.
    pub fn put(&self, key: CameraKey, v: StoredView) {
        let mut held = self.inner.write().unwrap_or_else(|p| p.into_inner());
        held.bytes += v.jpeg.len();
        if let Some(old) = held.views.insert(key, v) {
            held.bytes -= old.jpeg.len();
        }
        while held.bytes > TOTAL_BYTES && held.views.len() > 1 {
            let Some(oldest) = held.views.iter().min_by_key(|(_, v)| v.received_at).map(|(k, _)| k.clone()) else {
                break;
            };
            if let Some(gone) = held.views.remove(&oldest) {
                held.bytes -= gone.jpeg.len();
                tracing::warn!(site = %oldest.site, edge = %oldest.edge, camera = %oldest.camera, "camera view dropped: views over budget");
            }
        }
    }

    /// The newest view of `key`.
    pub fn get(&self, key: &CameraKey) -> Option<StoredView> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).views.get(key).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(camera: &str, jpeg: &[u8]) -> Vec<u8> {
        let v = CameraView {
            camera: camera.into(),
            taken_at: chrono::Utc::now(),
            width: 768,
            height: 576,
            settings_version: Some(4),
            geometry: crowdgrid_proto::testing::camera_geometry(),
            jpeg: base64::engine::general_purpose::STANDARD.encode(jpeg),
        };
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn a_view_is_admitted_only_on_its_own_topic_and_as_a_jpeg() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
        let v = admit(&view("gate-cam", &jpeg), "gate-cam").unwrap();
        assert_eq!((v.width, v.settings_version, v.jpeg.as_slice()), (768, Some(4), &jpeg[..]));
        assert_eq!(admit(&view("gate-cam", &jpeg), "lane-cam").unwrap_err().reason, "view_malformed");
        assert!(admit(&view("gate-cam", b"<svg onload=alert(1)>"), "gate-cam")
            .unwrap_err()
            .detail
            .contains("not a JPEG"));
        assert!(admit(b"{", "gate-cam").is_err());
        let big = vec![b' '; MAX_VIEW_BYTES + 1];
        assert!(admit(&big, "gate-cam").unwrap_err().detail.contains("more than"));
    }

    #[test]
    fn the_oldest_views_go_first_when_over_budget() {
        let views = CameraViews::default();
        let key = |c: &str| CameraKey { site: "s".into(), edge: "e".into(), camera: c.into() };
        let big = |t: i64| StoredView {
            taken_at: chrono::Utc::now(),
            received_at: chrono::DateTime::from_timestamp(t, 0).unwrap(),
            width: 1,
            height: 1,
            settings_version: None,
            geometry: serde_json::from_slice::<CameraView>(&view("x", &[0xFF, 0xD8, 0xFF])).unwrap().geometry,
            jpeg: Arc::new(vec![0; TOTAL_BYTES / 2]),
        };
        views.put(key("a"), big(1));
        views.put(key("b"), big(2));
        assert!(views.get(&key("a")).is_some() && views.get(&key("b")).is_some(), "exactly the budget fits");
        views.put(key("c"), big(3));
        assert!(views.get(&key("a")).is_none(), "the oldest went");
        assert!(views.get(&key("b")).is_some() && views.get(&key("c")).is_some());
    }
}
