//! The central service's TOML configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crowdgrid_proto::config::{check_id, check_seconds, load_toml, resolve, ConfigError, Problems};
use crowdgrid_proto::reading::Limits;
use crowdgrid_proto::site::Site;
use serde::{Deserialize, Serialize};

use crate::auth::edge_credentials::Authentication;

mod escalation;
pub use escalation::{EscalationConfig, NotifyConfig, Sla, WebhookConfig};

/// The whole `central.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralConfig {
    /// Site files, relative to this file.
    pub sites: Vec<PathBuf>,
    /// Rule files (one per site, see `crate::rules`), relative to this file. Without one, a site gets the
    /// default density rule built from its zones' thresholds.
    #[serde(default)]
    pub rule_files: Vec<PathBuf>,
    /// MQTT broker: embedded (default) or external.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// Payload checks.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// How edges prove who they are (credentials, signed messages).
    #[serde(default)]
    pub edges: crate::auth::edge_credentials::EdgeAuthConfig,
    /// The centre's certificate: with it, the embedded broker speaks MQTT over TLS and the API HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::tls::TlsConfig>,
    /// Embedded time-series and ticket store.
    pub store: StoreConfig,
    /// Optional InfluxDB v2 sink (or any server speaking its write API).
    #[serde(default)]
    pub influx: Option<InfluxConfig>,
    /// HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The threshold rule.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Ticket SLAs and escalation.
    #[serde(default)]
    pub escalation: EscalationConfig,
    /// Where ticket changes are sent besides MQTT.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// The model pool served to edges.
    #[serde(default)]
    pub models: super::model_pool::ModelPoolConfig,
    /// One of several instances sharing the sites (leases, series and rule state in `store.dispatch_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::cluster::config::ClusterConfig>,
}

/// `[broker]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum BrokerConfig {
    /// rumqttd inside this process.
    Embedded {
        /// Listen address (loopback by default; 1883 is often taken by a system Mosquitto).
        #[serde(default = "default_embedded_listen")]
        listen: SocketAddr,
        /// Largest payload the broker accepts (the ingest limit below is what counts and rejects).
        #[serde(default = "default_broker_max_payload")]
        max_payload_bytes: usize,
        /// Topic prefix.
        #[serde(default = "default_prefix")]
        topic_prefix: String,
    },
    /// An existing broker (Mosquitto, EMQX, ...).
    External {
        /// Host.
        host: String,
        /// Port.
        #[serde(default = "default_external_port")]
        port: u16,
        /// Client id; a fixed id with a persistent session keeps readings queued while the centre restarts.
        #[serde(default = "default_client_id")]
        client_id: String,
        /// Username.
        #[serde(default)]
        username: Option<String>,
        /// Password.
        #[serde(default)]
        password: Option<String>,
        /// PEM CA to trust: connect with TLS (the broker's certificate must name `host`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tls_ca: Option<PathBuf>,
        /// Topic prefix.
        #[serde(default = "default_prefix")]
        topic_prefix: String,
    },
}

fn default_embedded_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1884))
}
fn default_broker_max_payload() -> usize {
    1024 * 1024
}
fn default_prefix() -> String {
    crowdgrid_proto::topic::PREFIX.to_string()
}
fn default_external_port() -> u16 {
    1883
}
fn default_client_id() -> String {
    "crowdgrid-central".to_string()
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::Embedded {
            listen: default_embedded_listen(),
            max_payload_bytes: default_broker_max_payload(),
            topic_prefix: default_prefix(),
        }
    }
}

impl BrokerConfig {
    /// The topic prefix in use.
    pub fn topic_prefix(&self) -> &str {
        match self {
            BrokerConfig::Embedded { topic_prefix, .. } | BrokerConfig::External { topic_prefix, .. } => topic_prefix,
        }
    }
}

/// `[ingest]`: what a payload must satisfy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Payloads above this size are rejected as `oversized`.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
    /// Largest accepted clock skew into the future, seconds.
    #[serde(default = "default_max_future")]
    pub max_future_s: i64,
    /// Oldest accepted reading, seconds (edge queues replay after outages).
    #[serde(default = "default_max_age")]
    pub max_age_s: i64,
    /// Largest plausible density, people/m².
    #[serde(default = "default_max_density")]
    pub max_density: f64,
    /// Readings buffered between the MQTT client and the processor.
    #[serde(default = "default_channel")]
    pub channel_capacity: usize,
}

fn default_max_payload() -> usize {
    64 * 1024
}
fn default_max_future() -> i64 {
    300
}
fn default_max_age() -> i64 {
    7 * 24 * 3600
}
fn default_max_density() -> f64 {
    12.0
}
fn default_channel() -> usize {
    20_000
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: default_max_payload(),
            max_future_s: default_max_future(),
            max_age_s: default_max_age(),
            max_density: default_max_density(),
            channel_capacity: default_channel(),
        }
    }
}

impl IngestConfig {
    /// The reading limits these settings describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_density: self.max_density,
            max_future: chrono::Duration::seconds(self.max_future_s),
            max_age: chrono::Duration::seconds(self.max_age_s),
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite file, relative to this file.
    pub path: PathBuf,
    /// Readings older than this are deleted.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
    /// Largest batch per transaction.
    #[serde(default = "default_batch")]
    pub batch_max: usize,
    /// A partial batch is written after this long.
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// PostgreSQL for the dispatch state (tickets, their events, the webhook outbox, the rule-engine
    /// snapshot, API tokens), e.g. `postgres://crowdgrid@db.internal:5432/crowdgrid`, so several centre
    /// instances can share it. Unset: all of it stays in the SQLite file at `path`. The reading series
    /// always stays in SQLite (and InfluxDB). `?options=-csearch_path%3Dmyschema` selects a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_url: Option<String>,
}

fn default_retention() -> u32 {
    30
}
fn default_batch() -> usize {
    5000
}
fn default_flush_ms() -> u64 {
    100
}

/// `[influx]`: the InfluxDB v2 write API (InfluxDB 2.x/3.x, or VictoriaMetrics).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxConfig {
    /// Server URL, e.g. `http://127.0.0.1:8086` (no path: the client sets `/api/v2/write`).
    pub url: String,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token (may be empty for servers without auth).
    #[serde(default)]
    pub token: String,
    /// Measurement name.
    #[serde(default = "default_measurement")]
    pub measurement: String,
    /// Points per write request.
    #[serde(default = "default_influx_batch")]
    pub batch_size: usize,
    /// A partial batch is written after this long.
    #[serde(default = "default_influx_flush")]
    pub flush_interval_ms: u64,
    /// Points kept while the server is down; past this the oldest are dropped and counted.
    #[serde(default = "default_influx_buffer")]
    pub max_buffered_points: usize,
}

fn default_measurement() -> String {
    "crowd".to_string()
}
fn default_influx_batch() -> usize {
    5000
}
fn default_influx_flush() -> u64 {
    1000
}
fn default_influx_buffer() -> usize {
    1_000_000
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (port 0 picks a free port, printed at start).
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// Optional basemap tile URL template for the map (e.g. a city GIS server); none reachable by default.
    #[serde(default)]
    pub tile_url: Option<String>,
    /// Connection limits (`[api.limits]`).
    #[serde(default)]
    pub limits: crate::api::serve::ServeLimits,
    /// Live event streams open at once at most (more are answered 503).
    #[serde(default = "default_max_streams")]
    pub max_event_streams: usize,
    /// Requests per second per token, sustained (bursts of 10 × this are allowed); over it: 429.
    #[serde(default = "default_rate")]
    pub rate_per_token: f64,
}

fn default_max_streams() -> usize {
    256
}
fn default_rate() -> f64 {
    50.0
}

fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8088))
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            tile_url: None,
            limits: Default::default(),
            max_event_streams: default_max_streams(),
            rate_per_token: default_rate(),
        }
    }
}

/// `[rules]`: the density threshold rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// A ticket auto-resolves after the zone stayed below its warning clear level this long.
    #[serde(default = "default_clear_for")]
    pub clear_for_s: i64,
    /// A fused reading newer than this makes the zone ignore per-source readings for its level.
    #[serde(default = "default_fused_fresh")]
    pub fused_fresh_s: i64,
}

fn default_clear_for() -> i64 {
    120
}
fn default_fused_fresh() -> i64 {
    120
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self { clear_for_s: default_clear_for(), fused_fresh_s: default_fused_fresh() }
    }
}

/// A validated configuration with its sites loaded.
#[derive(Debug, Clone)]
pub struct LoadedCentral {
    /// The file as written, paths resolved.
    pub config: CentralConfig,
    /// Every site, validated.
    pub sites: Vec<Arc<Site>>,
}

impl CentralConfig {
    /// Loads, resolves paths, loads sites and validates; every problem is reported at once.
    pub fn load(path: &Path) -> Result<LoadedCentral, ConfigError> {
        let mut config: CentralConfig = load_toml(path)?;
        config.store.path = resolve(path, &config.store.path);
        if let Some(k) = &config.edges.key_file {
            config.edges.key_file = Some(resolve(path, k));
        }
        if let Some(t) = &mut config.tls {
            t.cert = resolve(path, &t.cert);
            t.key = resolve(path, &t.key);
            t.ca = t.ca.as_ref().map(|c| resolve(path, c));
        }
        if let BrokerConfig::External { tls_ca: Some(ca), .. } = &mut config.broker {
            *ca = resolve(path, ca);
        }
        for s in &mut config.sites {
            *s = resolve(path, s);
        }
        for r in &mut config.rule_files {
            *r = resolve(path, r);
        }
        if let Some(m) = &config.models.manifest {
            config.models.manifest = Some(resolve(path, m));
        }
        let mut p = Problems::new();
        let mut sites = Vec::new();
        for (i, s) in config.sites.iter().enumerate() {
            match Site::load(s) {
                Ok(site) => sites.push(Arc::new(site)),
                Err(e) => p.push(format!("sites[{i}]"), e),
            }
        }
        let mut ids = std::collections::HashSet::new();
        for s in &sites {
            if !ids.insert(s.config.id.clone()) {
                p.push("sites", format!("site id {:?} appears twice", s.config.id));
            }
        }
        config.validate(&mut p);
        if p.is_empty() && !config.rule_files.is_empty() {
            if let Err(e) = crate::rules::load(&config.rule_files, &sites) {
                p.push("rule_files", e);
            }
        }
        p.into_result(path)?;
        Ok(LoadedCentral { config, sites })
    }

    /// Records every problem in the values.
    pub fn validate(&self, p: &mut Problems) {
        if self.sites.is_empty() {
            p.push("sites", "at least one site file is needed");
        }
        let prefix = self.broker.topic_prefix();
        if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.ends_with('/') {
            p.push("broker.topic_prefix", format!("{prefix:?} must be non-empty, without wildcards or a trailing '/'"));
        }
        if let BrokerConfig::External { client_id, host, .. } = &self.broker {
            if host.is_empty() {
                p.push("broker.host", "must not be empty");
            }
            if client_id.is_empty() {
                p.push("broker.client_id", "must not be empty");
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.validate(p);
            if self.store.dispatch_url.is_none() {
                p.push("cluster", "needs store.dispatch_url: the instances share leases, series and rule state there");
            }
            if matches!(self.broker, BrokerConfig::Embedded { .. }) {
                p.push("cluster", "needs broker.mode = \"external\": every instance must reach the same broker");
            }
        }
        if let Some(url) = &self.store.dispatch_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                p.push("store.dispatch_url", "must start with postgres:// or postgresql://");
            }
        }
        let i = &self.ingest;
        if i.max_payload_bytes < 256 {
            p.push("ingest.max_payload_bytes", "must be at least 256");
        }
        if let BrokerConfig::Embedded { max_payload_bytes, listen, .. } = &self.broker {
            if *max_payload_bytes < i.max_payload_bytes {
                p.push("broker.max_payload_bytes", "must be at least ingest.max_payload_bytes");
            }
            // Anyone who can reach an open broker can raise tickets or blind a zone; without TLS anyone on the
            // path reads every reading and credential.
            if !listen.ip().is_loopback() && (self.edges.authentication == Authentication::Off || self.tls.is_none()) {
                p.push(
                    "broker.listen",
                    format!(
                        "{listen} is not a loopback address: it needs [edges] authentication = \"required\" and [tls]"
                    ),
                );
            }
        }
        let a = &self.api;
        if !a.listen.ip().is_loopback() && self.tls.is_none() {
            p.push(
                "api.listen",
                format!(
                    "{} is not a loopback address: it needs [tls] (tokens would cross the network in clear)",
                    a.listen
                ),
            );
        }
        if let Some(t) = &self.tls {
            if let Err(e) = t.server_config() {
                p.push("tls", e);
            }
            if let Err(e) = t.client_config() {
                p.push("tls.ca", e);
            }
        }
        if a.limits.max_connections == 0 || a.limits.max_per_ip == 0 || a.limits.header_read_timeout_s == 0 {
            p.push("api.limits", "max_connections, max_per_ip and header_read_timeout_s must be positive");
        }
        if a.max_event_streams == 0 || !(a.rate_per_token.is_finite() && a.rate_per_token > 0.0) {
            p.push("api", "max_event_streams and rate_per_token must be positive");
        }
        if self.edges.refresh_s == 0 || self.edges.refresh_s > 3600 {
            p.push("edges.refresh_s", "must be from 1 to 3600");
        }
        check_seconds(p, "ingest.max_future_s", i.max_future_s, false);
        check_seconds(p, "ingest.max_age_s", i.max_age_s, true);
        if !(i.max_density.is_finite() && i.max_density > 0.0) {
            p.push("ingest.max_density", "must be positive");
        }
        if i.channel_capacity == 0 {
            p.push("ingest.channel_capacity", "must be positive");
        }
        if self.store.batch_max == 0 || self.store.flush_interval_ms == 0 {
            p.push("store", "batch_max and flush_interval_ms must be positive");
        }
        if self.store.retention_days == 0 {
            p.push("store.retention_days", "must be at least 1");
        }
        if let Some(f) = &self.influx {
            if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
                p.push("influx.url", format!("{:?} is not an http(s) URL", f.url));
            }
            if f.org.is_empty() || f.bucket.is_empty() {
                p.push("influx", "org and bucket must not be empty");
            }
            check_id(p, "influx.measurement", &f.measurement);
            if f.batch_size == 0 || f.max_buffered_points < f.batch_size {
                p.push("influx", "batch_size must be positive and at most max_buffered_points");
            }
        }
        for (name, sla) in [
            ("notice", self.escalation.notice),
            ("warning", self.escalation.warning),
            ("critical", self.escalation.critical),
            ("engineering", self.escalation.engineering),
        ] {
            for (key, v) in [("ack_s", sla.ack_s), ("resolve_s", sla.resolve_s), ("subdistrict_s", sla.subdistrict_s)] {
                check_seconds(p, format!("escalation.{name}.{key}"), v, true);
            }
            if sla.ack_s > sla.resolve_s {
                p.push(format!("escalation.{name}"), "ack_s must be <= resolve_s");
            }
        }
        check_seconds(p, "escalation.reopen_window_s", self.escalation.reopen_window_s, false);
        if self.escalation.check_interval_ms == 0 {
            p.push("escalation.check_interval_ms", "must be positive");
        }
        for (i, w) in self.notify.webhooks.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                p.push(format!("notify.webhooks[{i}].url"), format!("{:?} is not an http(s) URL", w.url));
            }
            if w.secret.len() < 16 {
                p.push(format!("notify.webhooks[{i}].secret"), "use at least 16 characters");
            }
            if w.max_attempts == 0 {
                p.push(format!("notify.webhooks[{i}].max_attempts"), "must be positive");
            }
        }
        check_seconds(p, "rules.clear_for_s", self.rules.clear_for_s, false);
        check_seconds(p, "rules.fused_fresh_s", self.rules.fused_fresh_s, true);
    }
}
