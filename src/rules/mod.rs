//! Alert rules (being written).
