//! Replicated data types: the Redis types dynkv stores, each with a merge
//! that is commutative, associative and idempotent, so replicas that took
//! different writes during a partition agree once they exchange state.
//!
//! - [`Counter`]: concurrent increments sum; a reset forgets what it saw.
//! - [`DotMap`]: add-wins observed-remove map; sets and hashes are one.
//! - [`ZSet`]: add-wins members whose scores are counters.
//! - [`List`]: a sequence at dense positions; concurrent pushes all
//!   survive in one order, pops remove what they observed.
//!
//! A typed value lives inside a sibling of the key's [`crate::core::Object`]
//! (see [`TypedValue`]), so replication, hints, read repair, handoff and
//! anti-entropy carry it unchanged; reading a key joins the states of its
//! concurrent siblings ([`resolve`]).

pub mod counter;
pub mod dotmap;
pub mod list;
mod resolve;
mod typed;
pub mod zset;

pub use counter::{Amount, Counter};
pub use dotmap::{DotMap, TagValue};
pub use list::List;
pub use resolve::{Resolved, resolve};
pub use typed::{HashField, TypeKind, TypedValue};
pub use zset::ZSet;

use super::version::{Dot, NodeId};

/// The tag an element carries between the command that wrote it and the
/// coordinator that names the write; no real write has counter 0.
pub fn pending_dot() -> Dot {
    Dot {
        node: NodeId::new(""),
        counter: 0,
    }
}

/// Whose stored copy a coordinator builds a write on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// A replica of the key: its stored copy holds every increment it
    /// ever coordinated, so it may keep one running total.
    Owner,
    /// A coordinator outside the preference list (its version lives only
    /// in hints): increments are kept one per write.
    Detached,
}
