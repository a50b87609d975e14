//! crowdgrid: crowd-density monitoring for city grid governance.
//!
//! Layout:
//! - [`central`]: the central service (embedded broker, ingest, rules, tickets).
//! - [`store`]: SQLite series and tickets, the InfluxDB sink.
//! - [`api`]: the HTTP API.
//! - [`metrics`]: Prometheus metrics.
//! - [`backtest`]: stored readings replayed through the centre's engine with candidate rule sets.
//! - [`demo`]: both scenarios on the embedded defaults.
//! - [`import`]: recorded counts (e.g. Auckland's hourly pedestrian counts) into a site's series.
//! - [`cli`]: the `crowdgrid` command line.
//!
//! The edge agent is the `crowdgrid-edge` crate; wire types and site config are `crowdgrid-proto`.

pub mod api;
pub mod auth;
pub mod backtest;
pub mod backtest_cli;
pub mod central;
pub mod cli;
pub mod credential_cli;
pub mod demo;
#[cfg(feature = "vision")]
pub mod eval_cli;
#[cfg(feature = "vision")]
pub mod eval_plot;
pub mod import;
pub mod import_cli;
pub mod kpi_cli;
pub mod metrics;
pub mod rules;
pub mod rules_cli;
pub mod shutdown;
pub mod simcity;
pub mod store;
pub mod ticket_state;
