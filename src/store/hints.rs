//! Hinted handoff storage: copies kept for an unreachable owner until it
//! answers again. [`Hints`] is implemented on fjall
//! ([`super::fjall_hints::FjallHints`]) and in memory
//! ([`super::memory_hints::MemoryHints`]).

use super::StoreError;
use crate::core::{NodeId, Object};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;

/// Bounds on what one node keeps for others.
#[derive(Clone, Copy, Debug)]
pub struct HintLimits {
    /// Hints kept per target; further keys for it are dropped.
    pub max_per_target: u64,
    /// Hints older than this are dropped.
    pub ttl_ms: u64,
}

/// What became of a hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintPut {
    /// Kept (durable under the fsync policy).
    Stored,
    /// Not kept: the target's cap is reached.
    Dropped,
}

/// Hints kept for unreachable owners.
pub trait Hints: Send + Sync + 'static {
    /// Keeps `object` for `target`, merged with any hint already held for
    /// that key; resolves once durable under the fsync policy.
    fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        now_ms: u64,
    ) -> impl Future<Output = Result<HintPut, StoreError>> + Send;
    /// The hint held for (target, key), if any.
    fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError>;
    /// Up to `limit` hints for `target`, stopping past `max_bytes`.
    fn list(
        &self,
        target: &NodeId,
        limit: usize,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<(Bytes, Object)>, StoreError>> + Send;
    /// Deletes the hint if it still equals `delivered`.
    fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Gives up on a hint that can never be delivered.
    fn discard(
        &self,
        target: &NodeId,
        key: Bytes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Drops hints older than the TTL; returns how many.
    fn expire(&self, now_ms: u64) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Pending hints per target.
    fn counts(&self) -> BTreeMap<NodeId, u64>;
    /// Hints dropped since start.
    fn dropped(&self) -> u64;
    /// Ring hashes of keys whose hints were dropped.
    fn repair_needed(&self) -> Result<Vec<u64>, StoreError>;
}
