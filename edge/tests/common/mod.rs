//! Shared by the edge's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crowdgrid_edge::health::Health;
use crowdgrid_edge::source::SourceContext;
use crowdgrid_proto::site::Site;
use crowdgrid_proto::Reading;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A source context for `site` (e.g. "boai-school") as edge `edge_id`: readings arrive on the receiver;
/// the health registry and the shutdown token are shared with the context.
pub fn context(site: &str, edge_id: &str) -> (SourceContext, mpsc::Receiver<Reading>, Health, CancellationToken) {
    let site = Site::load(&root().join(format!("config/{site}/site.toml"))).expect("site loads");
    let (out, rx) = mpsc::channel(64);
    let (health, shutdown) = (Health::new(), CancellationToken::new());
    let cx = SourceContext {
        tuning: Default::default(),
        edge_id: edge_id.into(),
        site: Arc::new(site),
        mqtt: Default::default(),
        out,
        health: health.clone(),
        shutdown: shutdown.clone(),
        evidence: Default::default(),
    };
    (cx, rx, health, shutdown)
}
