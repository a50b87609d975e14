//! The HTTP API (axum): zones, series, tickets, live events, rules, KPIs, tokens, health, metrics, and
//! the web app. See docs/API.md.

mod auth;
mod city;
mod error;
mod events;
mod json;
mod kpis;
pub mod limit;
mod models;
mod ops;
pub mod serve;
mod tickets;
pub mod tuning;
mod ui;
mod views;
mod zones;

use std::sync::{Arc, Mutex, RwLock};

use axum::routing::{get, post};
use axum::Router;
use crowdgrid_proto::site::Site;

use crate::central::config::EscalationConfig;
use crate::central::edges::Edges;
use crate::central::events::Events;
use crate::central::live::Live;
use crate::central::notify::Notifier;
use crate::metrics::Metrics;
use crate::rules::Engine;
use crate::store::series::SeriesReader;
use crate::store::tickets::TicketStore;

pub use auth::Caller;
pub use error::ApiError;
pub use json::ApiJson;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The sites this instance judges (all, or in a cluster those it holds).
    pub ownership: crate::central::cluster::Ownership,
    /// Configured sites.
    pub sites: Vec<Arc<Site>>,
    /// Live zone state.
    pub live: Arc<RwLock<Live>>,
    /// Rule engine.
    pub engine: Arc<Mutex<Engine>>,
    /// Edge registry.
    pub edges: Edges,
    /// Series reader.
    pub series: SeriesReader,
    /// Evidence snapshots.
    pub evidence: crate::store::evidence::EvidenceStore,
    /// Ticket store.
    pub tickets: TicketStore,
    /// Tokens.
    pub tokens: crate::auth::Tokens,
    /// Metrics.
    pub metrics: Metrics,
    /// Ticket notifications.
    pub notifier: Notifier,
    /// Live stream.
    pub events: Events,
    /// SLAs (for manual escalation deadlines).
    pub escalation: EscalationConfig,
    /// Optional basemap tiles.
    pub tile_url: Option<String>,
    /// Per-source sequence state (gaps, reordering, duplicates).
    pub sequences: Arc<Mutex<crate::central::dedup::Dedup>>,
    /// Cancelled at shutdown: event streams end.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// One permit per open event stream.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Short-lived tickets that open event streams.
    pub stream_tickets: limit::StreamTickets,
    /// Requests per token.
    pub limiter: limit::RateLimiter,
    /// Series queries running at once (see `zones::series`).
    pub series_slots: Arc<tokio::sync::Semaphore>,
    /// Ticket changes: store → metrics → notifications.
    pub ticket_service: crate::central::ticket_service::TicketService,
    /// The live rule set, its versions and changes.
    pub rulebook: crate::central::rulebook::Rulebook,
    /// Backtests from the API.
    pub backtests: tuning::Backtests,
    /// Camera settings and the model pool.
    pub cameras: crate::central::camera_tuning::CameraTuning,
    /// Cameras' newest views (blurred frame + geometry).
    pub camera_views: crate::central::camera_views::CameraViews,
}

/// Series queries answered at once.
pub const SERIES_AT_ONCE: usize = 4;

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every route, in one place (docs/openapi.json lists the same; a test compares them).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/me"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/sites"),
    ("GET", "/api/v1/city"),
    ("GET", "/api/v1/zones"),
    ("GET", "/api/v1/sequences"),
    ("POST", "/api/v1/events/ticket"),
    ("GET", "/api/v1/zones.geojson"),
    ("GET", "/api/v1/zones/{site}/{zone}/series"),
    ("GET", "/api/v1/tickets"),
    ("GET", "/api/v1/tickets/{id}"),
    ("GET", "/api/v1/tickets/{id}/evidence"),
    ("POST", "/api/v1/tickets/{id}/{action}"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/edges"),
    ("GET", "/api/v1/edges/{site}/{edge}/models/{sha256}"),
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/cameras"),
    ("GET", "/api/v1/cameras/{site}/{edge}/{camera}/settings"),
    ("POST", "/api/v1/cameras/{site}/{edge}/{camera}/settings"),
    ("POST", "/api/v1/cameras/settings/{version}/rollback"),
    ("GET", "/api/v1/cameras/{site}/{edge}/{camera}/view"),
    ("GET", "/api/v1/cameras/{site}/{edge}/{camera}/view.jpg"),
    ("GET", "/api/v1/rules"),
    ("GET", "/api/v1/rulesets"),
    ("POST", "/api/v1/rulesets"),
    ("POST", "/api/v1/rulesets/check"),
    ("POST", "/api/v1/rulesets/{version}/rollback"),
    ("POST", "/api/v1/backtest"),
    ("GET", "/api/v1/kpis"),
    ("GET", "/api/v1/outbox"),
];

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    // The web app's files and the API's large answers (a city of 20,000 zones is 2.9 MB of JSON) are compressed
    // (gzip or brotli, as accepted); the event stream is not (each event must leave at once).
    let compressed = Router::new()
        .route("/ui/", get(ui::index))
        .route("/ui/{*path}", get(ui::asset))
        .route("/api/v1/city", get(city::city))
        .route("/api/v1/zones", get(zones::zones))
        .route("/api/v1/zones.geojson", get(zones::zones_geojson))
        .route("/api/v1/zones/{site}/{zone}/series", get(zones::series))
        .route("/api/v1/tickets", get(tickets::list))
        .layer(tower_http::compression::CompressionLayer::new());
    Router::new()
        .merge(compressed)
        .route("/", get(ui::root))
        .route("/ui", get(ui::root))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/tokens", post(auth::create_token))
        .route("/api/v1/sites", get(zones::sites))
        .route("/api/v1/tickets/{id}", get(tickets::get))
        .route("/api/v1/tickets/{id}/evidence", get(tickets::evidence))
        .route("/api/v1/tickets/{id}/{action}", post(tickets::act))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/events/ticket", post(events::ticket))
        .route("/api/v1/edges", get(ops::edges))
        .route("/api/v1/edges/{site}/{edge}/models/{sha256}", get(models::file))
        .route("/api/v1/models", get(models::models))
        .route("/api/v1/cameras", get(models::cameras))
        .route("/api/v1/cameras/{site}/{edge}/{camera}/settings", get(models::history).post(models::change))
        .route("/api/v1/cameras/settings/{version}/rollback", post(models::rollback))
        .route("/api/v1/cameras/{site}/{edge}/{camera}/view", get(views::view))
        .route("/api/v1/cameras/{site}/{edge}/{camera}/view.jpg", get(views::jpeg))
        .route("/api/v1/sequences", get(ops::sequences))
        .route("/api/v1/rules", get(ops::rules))
        .route("/api/v1/rulesets", get(tuning::rulesets).post(tuning::change))
        .route("/api/v1/rulesets/check", post(tuning::check))
        .route("/api/v1/rulesets/{version}/rollback", post(tuning::rollback))
        .route("/api/v1/backtest", post(tuning::backtest))
        .route("/api/v1/kpis", get(kpis::kpis))
        .route("/api/v1/outbox", get(ops::outbox))
        .with_state(state)
        // A request body (tokens, ticket actions: a few hundred bytes) must arrive within this: a client that
        // trickles one in would otherwise hold its connection slot for as long as it likes.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
}
