//! The deterministic cluster simulation of `tests/simulation.rs`: the
//! node's own `ClusterKv`, boot code and workers over a seeded network.

pub mod check;
pub mod env;
pub mod net;
pub mod params;
pub mod world;
