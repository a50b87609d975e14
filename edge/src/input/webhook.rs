//! Webhook input: an axum server accepting POSTed JSON or CSV at one path.
//!
//! Answers `202 {"accepted":n,"rejected":m}` once the source has processed the records (so a busy
//! source slows the sender down), `400` when nothing in the body parses, `413` over 1 MiB and `503`
//! when the source is shutting down. The server stops gracefully when the shutdown token is cancelled.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::{records, Ack, Batch, InputContext, InputError, Record, Spawned};

/// Largest accepted body.
pub const MAX_BODY: usize = 1024 * 1024;

struct Shared<T> {
    tx: mpsc::Sender<Batch<T>>,
    cx: InputContext,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), cx: self.cx.clone() }
    }
}

/// Binds `listen` (port 0 picks a free port), then serves `path` in a spawned task.
/// The bound address is logged and returned in [`Spawned::bound_addr`].
pub async fn spawn<T: Record>(
    listen: &str,
    path: &str,
    cx: InputContext,
    tx: mpsc::Sender<Batch<T>>,
) -> Result<Spawned, InputError> {
    let addr: SocketAddr = listen.parse().map_err(|_| InputError::BadListen { listen: listen.to_string() })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| InputError::Bind { listen: listen.to_string(), error })?;
    let bound = listener.local_addr().map_err(|error| InputError::Bind { listen: listen.to_string(), error })?;
    tracing::info!(source = %cx.source_id, addr = %bound, path, "webhook input listening");
    let shutdown = cx.shutdown.clone();
    let source_id = cx.source_id.clone();
    let app = Router::new()
        .route(path, post(handle::<T>))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(Shared { tx, cx });
    let handle = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(source = %source_id, error = %e, "webhook server failed");
        }
        tracing::debug!(source = %source_id, "webhook input stopped");
    });
    Ok(Spawned { handle, bound_addr: Some(bound) })
}

async fn handle<T: Record>(State(s): State<Shared<T>>, headers: HeaderMap, body: Bytes) -> (StatusCode, Json<Value>) {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let (recs, errors) = records::parse_auto::<T>(content_type, &body);
    let parse_errors = errors.len();
    if recs.is_empty() {
        let first = errors.first().cloned().unwrap_or_else(|| "empty body".to_string());
        s.cx.error(&format!("webhook: nothing parsed ({parse_errors} errors; first: {first})"));
        let body = json!({"accepted": 0, "rejected": parse_errors, "error": first});
        return (StatusCode::BAD_REQUEST, Json(body));
    }
    let parsed = recs.len();
    let (ack_tx, ack_rx) = oneshot::channel();
    let batch = Batch { records: recs, errors, ack: Some(ack_tx), restart: false };
    if s.tx.send(batch).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "source stopped"})));
    }
    let ack = tokio::select! {
        biased;
        a = ack_rx => a.ok(),
        _ = s.cx.shutdown.cancelled() => None,
    };
    match ack {
        Some(Ack { accepted, rejected }) => {
            (StatusCode::ACCEPTED, Json(json!({"accepted": accepted, "rejected": rejected})))
        }
        None => {
            tracing::debug!(source = %s.cx.source_id, parsed, "webhook batch not acknowledged (shutting down)");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "source stopped"})))
        }
    }
}
