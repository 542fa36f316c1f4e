//! The pure Dynamo core: no tokio, no fjall, no sockets, no wall clock, no global
//! RNG. Time and randomness come in as arguments, so every piece here can be
//! tested alone and driven message by message in a simulation.
//!
//! `tests/pure_core.rs` enforces the import rule.

pub mod context;
pub mod crdt;
pub mod failure;
pub mod gc;
pub mod gossip;
pub mod hlc;
pub mod item_meta;
pub mod key;
pub mod membership;
pub mod merkle;
pub mod message;
pub mod object;
pub mod quorum;
pub mod ring;
pub mod secret;
pub mod slot_map;
pub mod transition;
pub mod version;

pub use context::{ContextError, decode_context, encode_context, seal_context_body};
pub use failure::{FailureDetector, Liveness};
pub use gossip::StateDigest;
pub use hlc::{Hlc, OffsetTable};
pub use item_meta::{ItemCas, ItemMeta};
pub use key::{
    MAX_DATABASES, SLOTS, db_key, key_slot, ring_hash, slot_of_hash, slot_start_hash, split_db_key,
    stored_as_is,
};
pub use membership::{ChangeError, ClusterState, Member};
pub use message::{GcItem, Request, Response, WriteContext};
pub use object::{Object, Payload, Sibling};
pub use quorum::{GetCore, Plan, PutCore, QuorumStatus, Target, plan, plan_write};
pub use ring::{
    DEFAULT_PARTITIONS, MAX_PARTITIONS, MIN_PARTITIONS, Ring, RingError, valid_partition_count,
};
pub use secret::{ClusterSecret, DerivedKey};
pub use slot_map::{SlotRange, cluster_node_id, serving_order, slot_ranges, slot_runs};
pub use transition::{Move, Transition};
pub use version::{Dot, MAX_COUNTER, NodeId, VersionVector};
