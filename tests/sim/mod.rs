//! Building blocks of the deterministic cluster simulation in
//! `tests/simulation.rs`.

pub mod check;
pub mod coordinator;
pub mod node;
pub mod params;
pub mod proto;
pub mod sched;
pub mod world;
