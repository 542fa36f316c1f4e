//! The RESP front end: listener, connections, request parsing, replies, and
//! one file per command group under [`cmd`]. It knows only the
//! [`crate::kv::Kv`] facade, never the ring, the network or fjall.

pub mod auth_limit;
pub mod blocking;
pub mod cmd;
pub mod conn;
pub mod database;
pub mod forward;
pub mod glob;
pub mod listener;
pub mod notify;
pub mod observe;
pub mod protected;
pub mod pubsub;
pub mod reply;
pub mod request;
pub mod script;
pub mod session;
pub mod tls;
