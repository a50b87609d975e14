//! A simulated city for trying crowdgrid at city scale on one machine: `crowdgrid sim-city` writes a
//! city-sized configuration (Changzhou's 62 sub-districts and 7,151 grids by default) that a centre runs as is.

pub mod cli;
pub mod gen;
