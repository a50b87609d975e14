//! The central service: broker, ingest, processing, rules, tickets.

pub mod broker;
pub mod config;
pub mod dedup;
pub mod dispatch;
pub mod edges;
pub mod ingest;
pub mod live;
pub mod process;
pub mod rule;
pub mod run;
pub mod validate;

pub use run::{start, Central, CentralError};
