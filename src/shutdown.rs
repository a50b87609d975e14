//! Waiting for SIGINT or SIGTERM: the edge crate's, so the centre and the edge binary stop alike.

pub use crowdgrid_edge::shutdown::signal;
