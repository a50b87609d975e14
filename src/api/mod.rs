//! The HTTP API (axum): zones, series, tickets, edges, health and Prometheus metrics.

mod error;
mod routes;

use std::sync::{Arc, RwLock};

use axum::routing::{get, post};
use axum::Router;
use crowdgrid_proto::site::Site;
use rumqttc::AsyncClient;

use crate::central::edges::Edges;
use crate::central::live::Live;
use crate::metrics::Metrics;
use crate::store::series::SeriesReader;
use crate::store::tickets::TicketStore;

pub use error::ApiError;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Configured sites.
    pub sites: Vec<Arc<Site>>,
    /// Live zone state.
    pub live: Arc<RwLock<Live>>,
    /// Edge registry.
    pub edges: Edges,
    /// Series reader.
    pub series: SeriesReader,
    /// Ticket store.
    pub tickets: TicketStore,
    /// Metrics.
    pub metrics: Metrics,
    /// MQTT client for ticket notifications after manual actions.
    pub client: AsyncClient,
    /// Topic prefix.
    pub prefix: String,
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/api/v1/sites", get(routes::sites))
        .route("/api/v1/zones", get(routes::zones))
        .route("/api/v1/zones/{site}/{zone}/series", get(routes::series))
        .route("/api/v1/tickets", get(routes::tickets))
        .route("/api/v1/tickets/{id}", get(routes::ticket))
        .route("/api/v1/tickets/{id}/{action}", post(routes::ticket_action))
        .route("/api/v1/edges", get(routes::edges))
        .with_state(state)
}
