//! The central service: broker, ingest, processing, rules, tickets.

pub mod acker;
pub mod authn;
pub mod broker;
pub mod camera_tuning;
pub mod camera_views;
pub mod cluster;
pub mod config;
pub mod dedup;
pub mod dispatch;
pub mod edge_watch;
pub mod edges;
pub mod escalation;
pub mod events;
pub mod evidence_in;
pub mod fanout;
pub mod fusion;
pub mod ingest;
pub mod judge;
pub mod kpi;
pub mod live;
pub mod model_pool;
pub mod notify;
pub mod process;
pub mod resume;
pub mod rulebook;
pub mod run;
pub mod tick;
pub mod ticket_service;
pub mod tls;
pub mod validate;

pub use run::{start, Central, CentralError};
