//! Replica storage: where one node keeps its copies of objects.
//!
//! [`ReplicaStore`] is implemented by [`fjall_store::FjallStore`] (on disk) and
//! [`memory::MemoryStore`] (simulation); `tests/store_conformance.rs` runs one
//! suite against both.

use crate::core::Object;
use bytes::Bytes;
use std::future::Future;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed.
    #[error("fjall: {0}")]
    Engine(String),
    /// The writer thread is gone (shutting down).
    #[error("store is closed")]
    Closed,
}

/// How writes reach the disk (`--fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before acknowledging; concurrent writes share one fsync.
    Always,
    /// fsync once a second in the background (default, like Redis AOF).
    #[default]
    Everysec,
    /// Leave it to the OS.
    No,
}

/// One node's copies of objects, keyed by the user key.
///
/// Reads are synchronous: they are served from fjall's memtable and block
/// cache and are cheap enough for the reactor. Writes go through a single
/// writer that batches concurrent callers into one commit (group commit).
pub trait ReplicaStore: Send + Sync + 'static {
    /// The stored object for `key`, if any. A record that fails to decode is
    /// logged, counted in [`ReplicaStore::decode_errors`] and read as absent.
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError>;

    /// Stores (`Some`) or physically removes (`None`) records; resolves once
    /// the batch is committed under the fsync policy.
    fn write(
        &self,
        batch: Vec<(Bytes, Option<Object>)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` records whose ring hash is `>= from_hash`, in ring order,
    /// with each record's ring hash.
    fn scan(&self, from_hash: u64, limit: usize) -> Result<Vec<(u64, Bytes, Object)>, StoreError>;

    /// Approximate number of records.
    fn approximate_len(&self) -> u64;

    /// Removes every record.
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes everything written so far durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// Records that failed to decode since start.
    fn decode_errors(&self) -> u64;
}

pub mod fjall_store;
pub mod memory;
