//! dynkv: Amazon's Dynamo, spoken over RESP.
//!
//! # Layout
//! Dependencies point down this list, never up:
//!
//! - [`resp`]: RESP2/RESP3 server, connections, one file per command group.
//!   It knows only the [`kv::Kv`] facade.
//! - [`node`]: the tokio shell that implements [`kv::Kv`]: the single-node
//!   store, (later) the coordinator and background workers.
//! - [`store`]: replica storage (fjall on disk, memory for simulation).
//! - [`core`]: pure logic (version vectors, objects, ...): no I/O, no clock.
//! - [`config`]: flags and TOML configuration.
//! - [`fdlimit`], [`logging`]: process-wide limits and log hygiene.
#![deny(clippy::unwrap_used)]

pub mod config;
pub mod core;
pub mod fdlimit;
pub mod kv;
pub mod logging;
pub mod memcache;
pub mod net;
pub mod node;
pub mod obs;
pub mod resp;
pub mod store;
