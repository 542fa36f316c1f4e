//! The pure Dynamo core: no tokio, no fjall, no sockets, no wall clock, no global
//! RNG. Time and randomness come in as arguments, so every piece here can be
//! tested alone and driven message by message in a simulation.
//!
//! `tests/pure_core.rs` enforces the import rule.

pub mod context;
pub mod failure;
pub mod hlc;
pub mod key;
pub mod membership;
pub mod merkle;
pub mod message;
pub mod object;
pub mod quorum;
pub mod ring;
pub mod secret;
pub mod version;

pub use context::{ContextError, decode_context, encode_context, seal_context_body};
pub use failure::{FailureDetector, Liveness};
pub use hlc::{Hlc, OffsetTable};
pub use key::ring_hash;
pub use membership::{ClusterState, Member};
pub use message::{Request, Response, WriteContext};
pub use object::{Object, Payload, Sibling};
pub use quorum::{GetCore, Plan, PutCore, QuorumStatus, Target, plan};
pub use ring::{DEFAULT_PARTITIONS, Ring, RingError};
pub use secret::{ClusterSecret, DerivedKey};
pub use version::{Dot, MAX_COUNTER, NodeId, VersionVector};
