//! The edge agent's TOML configuration: the types, every struct refusing unknown keys. [`EdgeConfig::load`]
//! (in `load.rs`, with path resolution and validation) checks it against the site file and reports every problem
//! at once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole edge file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Identity and site.
    pub edge: EdgeSection,
    /// Broker connection.
    #[serde(default)]
    pub mqtt: MqttConfig,
    /// Store-and-forward queue.
    pub queue: QueueConfig,
    /// Per-zone fusion.
    #[serde(default)]
    pub fusion: FusionConfig,
    /// Sources, each tagged by `type`.
    pub sources: Vec<SourceConfig>,
    /// Camera settings and models from the centre.
    #[serde(default)]
    pub tuning: crate::tuning::config::TuningConfig,
}

/// `[edge]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSection {
    /// Edge id, unique in the site (a topic level).
    pub id: String,
    /// Path of the site file, relative to this file.
    pub site: PathBuf,
}

/// `[mqtt]`: where readings are published.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host.
    #[serde(default = "default_host")]
    pub host: String,
    /// Broker port (the embedded broker's port when run by `crowdgrid demo`).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Client id; defaults to the edge id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Topic prefix.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Keep-alive in seconds (also how quickly the Last Will fires).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Optional username.
    #[serde(default)]
    pub username: Option<String>,
    /// Optional password.
    #[serde(default)]
    pub password: Option<String>,
    /// How often the retained status is refreshed.
    #[serde(default = "default_status_interval")]
    pub status_interval_s: u64,
    /// Largest reconnect backoff in seconds.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: u64,
    /// File holding this edge's credential (`crowdgrid edge-credential create` prints it): every message is
    /// signed with it and the broker login is `{site}/{edge}` with it as the password. Keep it owner-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_file: Option<PathBuf>,
    /// The credential itself, read from `credential_file` at load (or set by the demo).
    #[serde(skip)]
    pub credential: Option<crowdgrid_proto::signed::Credential>,
    /// When a reading leaves the queue: `commit` (default: the centre's signed acknowledgement that it is stored)
    /// or `puback` (the broker took it: for a broker without a crowdgrid centre behind it).
    #[serde(default)]
    pub delete_on: DeleteOn,
    /// PEM file of the certificate authority (or, self-signed, the centre's certificate) to trust: the broker
    /// connection uses TLS and trusts exactly this. Unset: plain TCP (only to a broker on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<PathBuf>,
    /// The TLS configuration built from `tls_ca` at load.
    #[serde(skip)]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Readings the broker took but the centre has not acknowledged after this many seconds are sent again.
    #[serde(default = "default_commit_timeout")]
    pub commit_timeout_s: u64,
}

/// When the publisher deletes a reading from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteOn {
    /// On the centre's commit acknowledgement.
    #[default]
    Commit,
    /// On the broker's PUBACK.
    Puback,
}

fn default_commit_timeout() -> u64 {
    10
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    crowdgrid_proto::topic::PREFIX.into()
}
fn default_keep_alive() -> u64 {
    10
}
fn default_status_interval() -> u64 {
    10
}
fn default_max_backoff() -> u64 {
    5
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            client_id: None,
            topic_prefix: default_prefix(),
            keep_alive_s: default_keep_alive(),
            username: None,
            password: None,
            status_interval_s: default_status_interval(),
            max_backoff_s: default_max_backoff(),
            credential_file: None,
            credential: None,
            tls_ca: None,
            tls: None,
            delete_on: DeleteOn::Commit,
            commit_timeout_s: default_commit_timeout(),
        }
    }
}

/// What the queue does when its disk budget is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Delete the oldest unsent readings to make room (the newest data matters most live).
    DropOldest,
    /// Refuse new readings until there is room.
    DropNewest,
}

/// `[queue]`: the on-disk store-and-forward queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// SQLite file, relative to this file.
    pub path: PathBuf,
    /// Disk budget in bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Overflow policy; every dropped reading is counted.
    #[serde(default = "default_overflow")]
    pub overflow: Overflow,
    /// Publishes awaiting PUBACK at once.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
}

fn default_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_overflow() -> Overflow {
    Overflow::DropOldest
}
fn default_inflight() -> u16 {
    100
}

/// `[fusion]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// How often a fused reading per zone is produced.
    #[serde(default = "default_fusion_interval")]
    pub interval_ms: u64,
    /// Source estimates older than this are left out of the fusion.
    #[serde(default = "default_stale")]
    pub stale_after_s: u64,
}

fn default_fusion_interval() -> u64 {
    1000
}
fn default_stale() -> u64 {
    300
}

impl Default for FusionConfig {
    fn default() -> Self {
        Self { interval_ms: default_fusion_interval(), stale_after_s: default_stale() }
    }
}

/// One source, tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Mobile operator per-cell connected-device counts.
    BaseStation(BaseStationConfig),
    /// Turnstile entry/exit events.
    Gate(GateConfig),
    /// Built-in generator (labelled `simulated` in the data).
    Simulated(SimulatedConfig),
    /// A fixed camera: video → detector → per-zone people/vehicles, density via its homography.
    Camera(CameraConfig),
    /// A drone feed with telemetry: video → detector → ground footprint → density per site zone.
    Drone(DroneConfig),
}

impl SourceConfig {
    /// The source id.
    pub fn id(&self) -> &str {
        match self {
            SourceConfig::BaseStation(c) => &c.id,
            SourceConfig::Gate(c) => &c.id,
            SourceConfig::Simulated(c) => &c.id,
            SourceConfig::Camera(c) => &c.id,
            SourceConfig::Drone(c) => &c.id,
        }
    }
}

/// How raw records arrive at a source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputConfig {
    /// Poll an HTTP endpoint returning JSON or CSV.
    Http {
        /// URL to GET.
        url: String,
        /// Poll interval.
        #[serde(default = "default_poll_s")]
        interval_s: u64,
        /// Request timeout.
        #[serde(default = "default_timeout_s")]
        timeout_s: u64,
    },
    /// Watch a directory for dropped files (JSON or CSV); processed files move to `done/`.
    FileDrop {
        /// Directory, relative to the edge file.
        dir: PathBuf,
        /// Scan interval.
        #[serde(default = "default_scan_ms")]
        interval_ms: u64,
    },
    /// Follow a CSV file as lines are appended (like `tail -F`).
    CsvTail {
        /// File, relative to the edge file.
        path: PathBuf,
        /// Poll interval.
        #[serde(default = "default_scan_ms")]
        interval_ms: u64,
    },
    /// Accept POSTed JSON or CSV.
    Webhook {
        /// Listen address, e.g. `127.0.0.1:8091` (port 0 picks a free one).
        listen: String,
        /// Path, e.g. `/gate-events`.
        #[serde(default = "default_webhook_path")]
        path: String,
    },
    /// Subscribe to an MQTT topic (JSON or CSV payloads).
    Mqtt {
        /// Broker host; defaults to the edge's `[mqtt]` host.
        #[serde(default)]
        host: Option<String>,
        /// Broker port; defaults to the edge's `[mqtt]` port.
        #[serde(default)]
        port: Option<u16>,
        /// Topic filter.
        topic: String,
    },
    /// Replay a recorded CSV file, re-stamped so its first record is "now".
    Replay {
        /// File, relative to the edge file.
        path: PathBuf,
        /// Playback speed (60 = one recorded minute per second).
        #[serde(default = "default_speed")]
        speed: f64,
        /// Start again at the end.
        #[serde(default)]
        r#loop: bool,
    },
}

fn default_poll_s() -> u64 {
    60
}
fn default_timeout_s() -> u64 {
    10
}
fn default_scan_ms() -> u64 {
    1000
}
fn default_webhook_path() -> String {
    "/events".into()
}
fn default_speed() -> f64 {
    1.0
}

/// Base station source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseStationConfig {
    /// Source id.
    pub id: String,
    /// Operator name (for display).
    #[serde(default)]
    pub operator: String,
    /// The operator's share of all phones in the area, 0..=1 (counts are divided by it).
    pub market_share: f64,
    /// Connected devices per person (counts are divided by it).
    #[serde(default = "default_devices_per_person")]
    pub devices_per_person: f64,
    /// Records older than this are rejected as stale.
    #[serde(default = "default_bs_stale")]
    pub stale_after_s: u64,
    /// Confidence attached to its readings.
    #[serde(default = "default_bs_confidence")]
    pub confidence: f64,
    /// How often per-zone readings are published from the latest cell counts.
    #[serde(default = "default_report_ms")]
    pub report_interval_ms: u64,
    /// Where the counts come from.
    pub input: InputConfig,
    /// Cell → zone coverage weights.
    pub cells: Vec<CellConfig>,
}

fn default_devices_per_person() -> f64 {
    1.0
}
fn default_bs_stale() -> u64 {
    900
}
fn default_bs_confidence() -> f64 {
    0.6
}
fn default_report_ms() -> u64 {
    5000
}

/// One cell and the share of its coverage that falls in each zone.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    /// Cell id as the operator reports it.
    pub cell: String,
    /// Zone id → weight (share of the cell's devices in that zone); weights sum to ≤ 1.
    pub zones: BTreeMap<String, f64>,
}

/// Gate (turnstile) source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// Source id.
    pub id: String,
    /// Zone whose occupancy the gates control.
    pub zone: String,
    /// Confidence attached to its readings.
    #[serde(default = "default_gate_confidence")]
    pub confidence: f64,
    /// Local time of day (HH:MM) at which occupancy resets to zero (site closed overnight).
    #[serde(default)]
    pub daily_reset: Option<String>,
    /// Drift correction: occupancy is clamped to this capacity (counted when it happens).
    #[serde(default)]
    pub max_occupancy: Option<u64>,
    /// Records older than this are rejected as stale.
    #[serde(default = "default_bs_stale")]
    pub stale_after_s: u64,
    /// How often a reading is published.
    #[serde(default = "default_report_ms")]
    pub report_interval_ms: u64,
    /// Where the events come from.
    pub input: InputConfig,
}

fn default_gate_confidence() -> f64 {
    0.9
}

/// Daily curve shape for a simulated zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Scenic area: builds from morning to an afternoon peak, empties by night.
    Scenic,
    /// School gate: sharp spikes at drop-off (07:30) and pick-up (16:00) on weekdays.
    School,
    /// Flat with noise.
    Flat,
}

/// One zone the simulator feeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimZone {
    /// Zone id.
    pub zone: String,
    /// Density at quiet times (people/m²).
    pub base: f64,
    /// Density at the daily peak (people/m²).
    pub peak: f64,
    /// Curve shape.
    pub profile: Profile,
    /// Relative noise (0.05 = ±5 %).
    #[serde(default = "default_noise")]
    pub noise: f64,
}

fn default_noise() -> f64 {
    0.05
}

/// Simulated source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Source id.
    pub id: String,
    /// How often a reading per zone is produced.
    #[serde(default = "default_sim_interval")]
    pub interval_ms: u64,
    /// Simulated seconds per real second.
    #[serde(default = "default_speed")]
    pub time_scale: f64,
    /// Local time of day (HH:MM) the simulated clock starts at; default: now.
    #[serde(default)]
    pub start_local: Option<String>,
    /// Local date (YYYY-MM-DD) the simulated clock starts on; default: today. Set it to a school day
    /// so a school-run demo does not depend on the weekday it is run on.
    #[serde(default)]
    pub start_date: Option<String>,
    /// Multiply by the holiday peak factor (a public holiday).
    #[serde(default)]
    pub holiday: bool,
    /// Random seed, for repeatable runs.
    #[serde(default)]
    pub seed: u64,
    /// Confidence attached to its readings.
    #[serde(default = "default_sim_confidence")]
    pub confidence: f64,
    /// Zones fed.
    pub zones: Vec<SimZone>,
}

fn default_sim_interval() -> u64 {
    1000
}
fn default_sim_confidence() -> f64 {
    0.5
}

pub mod geometry;
mod load;
mod tracking;
mod validate;
mod vision;

pub use load::LoadedEdge;

pub use tracking::{LineConfig, TrackingConfig};
pub use vision::{Calibration, CameraConfig, CameraZone, DroneConfig};

pub use validate::parse_hhmm;
