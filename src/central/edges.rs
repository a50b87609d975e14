//! Edge agents as last heard: their retained status or Last Will.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use crowdgrid_proto::{EdgeState, EdgeStatus};
use serde::{Deserialize, Serialize};

/// One edge as the centre sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeView {
    /// The last status it (or the broker, for the Last Will) published.
    #[serde(flatten)]
    pub status: EdgeStatus,
    /// When the centre received it.
    pub received_at: DateTime<Utc>,
    /// Why the edge is degraded (its queue overflowing, its cameras dropping most frames) as of this status;
    /// absent when it is not ([`super::edge_watch::degraded`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// Shared registry of edges by `(site, edge)`.
#[derive(Debug, Clone, Default)]
pub struct Edges {
    inner: Arc<RwLock<BTreeMap<(String, String), EdgeView>>>,
}

impl Edges {
    /// Records a status; returns the number of edges online afterwards and the stored view.
    pub fn update(&self, status: EdgeStatus, degraded: Option<String>) -> (usize, EdgeView) {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let key = (status.site.clone(), status.edge_id.clone());
        if status.state == EdgeState::Offline {
            tracing::warn!(site = %status.site, edge = %status.edge_id, "edge offline");
        } else if map.get(&key).is_none_or(|v| v.status.state == EdgeState::Offline) {
            tracing::info!(site = %status.site, edge = %status.edge_id, "edge online");
        }
        let view = EdgeView { status, received_at: Utc::now(), degraded };
        map.insert(key, view.clone());
        (map.values().filter(|v| v.status.state == EdgeState::Online).count(), view)
    }

    /// Takes another cluster instance's view of one of its edges; returns whether it is newer than the one held.
    pub fn mirror(&self, view: EdgeView) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let key = (view.status.site.clone(), view.status.edge_id.clone());
        if map.get(&key).is_some_and(|v| v.received_at >= view.received_at) {
            return false;
        }
        map.insert(key, view);
        true
    }

    /// The edge's last view.
    pub fn get(&self, site: &str, edge: &str) -> Option<EdgeView> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(site.to_string(), edge.to_string())).cloned()
    }

    /// The last known state of an edge.
    pub fn state(&self, site: &str, edge: &str) -> Option<EdgeState> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(&(site.to_string(), edge.to_string())).map(|v| v.status.state)
    }

    /// Every edge, by site then id.
    pub fn list(&self) -> Vec<EdgeView> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }
}
