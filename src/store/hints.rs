//! Hinted handoff storage: copies of objects kept for an unreachable owner
//! until it can take them. [`Hints`] is implemented by
//! [`super::fjall_hints::FjallHints`] (on disk, next to the replica store)
//! and [`super::memory_hints::MemoryHints`] (simulation and tests), both on
//! top of [`super::hint_core`], so they share every rule:
//!
//! - one hint per (target, key): a newer write for the same key is merged
//!   into the hint already held;
//! - at most [`HintLimits::max_per_target`] hints per target, and none older
//!   than [`HintLimits::ttl_ms`]: a hint that is not kept is counted as
//!   dropped and its key's ring hash is recorded as needing repair, so
//!   anti-entropy can repair its partition later instead of the write being
//!   silently lost;
//! - pending counts are kept in memory (rebuilt once when the store opens),
//!   so INFO and the handoff loop never scan the store.

use super::StoreError;
use crate::core::{NodeId, Object};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;

/// How many hints a node keeps, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HintLimits {
    /// Hints kept per target; past it new keys are dropped (and recorded
    /// for repair). Bounds the disk a long-dead peer can make us fill.
    pub max_per_target: u64,
    /// Hints older than this (since first stored) are dropped (and
    /// recorded for repair): a peer down that long is better rebuilt by
    /// anti-entropy than by replaying every write it missed.
    pub ttl_ms: u64,
}

impl Default for HintLimits {
    /// 100,000 hints per target and three hours, Cassandra's default hint
    /// window: long enough to cover a reboot or a short outage, short
    /// enough that a dead node's hints do not pile up for days.
    fn default() -> Self {
        Self {
            max_per_target: 100_000,
            ttl_ms: 3 * 60 * 60 * 1000,
        }
    }
}

/// What [`Hints::put`] did with a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintPut {
    /// Kept (new, or merged into the hint already held for the key).
    Stored,
    /// Not kept: the target already has its cap of hints and the key is
    /// new for it. Counted as dropped; the key's ring hash needs repair.
    Dropped,
}

/// A node's hints for other nodes.
///
/// Bulk and write calls are async: the on-disk implementation runs them off
/// the reactor. Point reads and counters are synchronous and cheap.
pub trait Hints: Send + Sync + 'static {
    /// Keeps `object` for `target`, merged with any hint already held for
    /// that key. Resolves once durable under the fsync policy (the caller
    /// acks a replica write only then). Fails for a target name hints
    /// cannot be kept for (with a 0 byte, or over
    /// [`super::codec::MAX_TARGET_LEN`] bytes).
    fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        now_ms: u64,
    ) -> impl Future<Output = Result<HintPut, StoreError>> + Send;

    /// The hint held for (`target`, `key`), if any (a point read).
    fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError>;

    /// Up to `limit` hints for `target`, in key order; stops early once the
    /// encoded hints returned reach `max_bytes` (at least one is returned
    /// when any is held). A hint that cannot be read is discarded (see
    /// [`Hints::discard`]) instead of being returned.
    fn list(
        &self,
        target: &NodeId,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<(Bytes, Object)>, StoreError>> + Send;

    /// Deletes the hint if it still equals `delivered` (a newer write merged
    /// in meanwhile keeps it for the next round). Returns whether it did.
    fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives up on a hint that can never be delivered (too large,
    /// unreadable): removes it, counts it as dropped, records its key's
    /// ring hash as needing repair. No-op when no such hint is held.
    fn discard(
        &self,
        target: &NodeId,
        key: Bytes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops hints first stored more than the TTL before `now_ms` (counted
    /// as dropped, recorded for repair); returns how many. Cheap when no
    /// hint can have expired yet (no scan).
    fn expire(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Pending hints per target (kept in memory, no scan).
    fn counts(&self) -> BTreeMap<NodeId, u64>;

    /// Hints dropped since start (cap, TTL, discard).
    fn dropped(&self) -> u64;

    /// Ring hashes of keys whose hints were dropped, ascending (persisted):
    /// anti-entropy should repair their partitions.
    fn repair_needed(&self) -> Result<Vec<u64>, StoreError>;

    /// Forgets ring hashes from [`Hints::repair_needed`] once repaired.
    fn repaired(&self, hashes: Vec<u64>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets every hint, count and repair record (tests).
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
