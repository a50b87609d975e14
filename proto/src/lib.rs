//! Wire types and site configuration shared by the crowdgrid edge agent and central service.
//!
//! Layout:
//! - [`ack`]: the centre's commit acknowledgements to an edge.
//! - [`reading`]: the JSON payload of one density reading, and its validation.
//! - [`status`]: the retained edge status message (and its Last Will).
//! - [`signed`]: signed frames (HMAC per edge credential) around readings, statuses, evidence and acks.
//! - [`topic`]: MQTT topic names under the versioned prefix `crowdgrid/v1`.
//! - [`site`]: a monitored site (zones as GeoJSON polygons, grid hierarchy, roster, thresholds).
//! - [`geometry`]: a camera's calibration, image zones and counting lines, and its blurred view for drawing them.
//! - [`config`]: TOML loading with every validation problem reported at once.
//!
//! This crate has no async runtime, broker or database dependency, so both sides can use it.

pub mod ack;
pub mod config;
pub mod geometry;
pub mod level;
pub mod reading;
pub mod signed;
pub mod site;
pub mod status;
#[doc(hidden)]
pub mod testing;
pub mod topic;
pub mod tuning;

pub use config::{load_toml, ConfigError, Problems};
pub use level::{Level, Thresholds};
pub use reading::{ClassCounts, Reading, ReadingError, SourceKind, Tracked};
pub use site::{SiteConfig, Zone};
pub use status::{EdgeState, EdgeStatus, ModelInfo, SourceHealth};
