//! The crowdgrid edge agent: sources → fusion → on-disk queue → MQTT publisher.
//!
//! Layout:
//! - [`config`]: the edge TOML file (`deny_unknown_fields`, every problem reported at once).
//! - [`source`]: one module per source kind (base station, gate, simulated); each turns raw
//!   records into [`crowdgrid_proto::Reading`]s on a bounded channel (backpressure, never dropped).
//! - [`input`]: how raw records arrive (HTTP poll, file drop, CSV tail, webhook, MQTT, replay).
//! - [`fusion`]: per-zone confidence-weighted combination, forwarding each source's own series too.
//! - [`queue`]: SQLite store-and-forward queue with sequence numbers and a disk budget.
//! - [`publisher`]: rumqttc QoS 1 publisher draining the queue in order, with status + Last Will.
//! - [`identity`]: the edge's credential: signs what it publishes, checks the centre's acknowledgements.
//! - [`health`]: per-source counters reported in the edge status message.
//! - [`vision`]: camera and drone detection (OpenCV + ONNX Runtime, with the default `vision` feature), zones,
//!   homography, drone footprint, tracking.
//! - [`shutdown`]: waiting for SIGINT or SIGTERM.
//! - [`tls`]: TLS towards the broker (trusting one PEM file).
//! - [`agent`]: wires it all together and shuts down gracefully.

pub mod agent;
pub mod config;
pub mod evidence;
pub mod fusion;
pub mod health;
pub mod identity;
pub mod input;
pub mod memory;
pub mod publisher;
pub mod queue;
pub mod shutdown;
pub mod source;
pub mod tls;
pub mod tuning;
pub mod vision;
