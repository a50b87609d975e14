//! A simulated city for trying crowdgrid at city scale on one machine: `crowdgrid sim-city` writes a
//! city-sized configuration (Changzhou's 62 sub-districts and 7,151 grids by default) that a centre runs as is,
//! and `crowdgrid sim-load` plays its edges: base stations on every zone, gates and cameras, as MQTT load.

pub mod cli;
pub mod gen;
pub mod load;
pub mod probe;
