//! Replica storage: where one node keeps its copies of objects.
//!
//! [`ReplicaStore`] is implemented by [`fjall_store::FjallStore`] (on disk) and
//! [`memory::MemoryStore`] (simulation and tests); `tests/store_conformance.rs`
//! runs one suite against both.

use crate::core::Object;
use bytes::Bytes;
use std::future::Future;

/// Storage failures.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed.
    #[error("fjall: {0}")]
    Engine(String),
    /// The writer thread is gone (shutting down).
    #[error("store is closed")]
    Closed,
    /// The request cannot be stored as asked (a value past the engine's
    /// size limit, a bad name); nothing was written.
    #[error("{0}")]
    Rejected(String),
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

/// What an update decided to do with the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Leave the record as it is.
    Keep,
    /// Store this object.
    Put(Object),
    /// Physically remove the record (collection of dead objects only: a
    /// user's delete is a tombstone, i.e. a `Put`).
    Remove,
}

/// Runs once the update's batch is committed (or failed), with the outcome.
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A read-modify-write of one record, run by the store's single writer so
/// updates of one key never race and still share a commit.
pub type UpdateFn = Box<dyn FnOnce(Option<Object>) -> (Write, Completion) + Send>;

/// One node's copies of objects, keyed by the user key.
///
/// Reads are synchronous: they are served from fjall's memtable and block
/// cache and are cheap enough for the reactor. Writes are updates executed in
/// order by a single writer that folds concurrent callers into one commit
/// (group commit); an update sees every earlier update, committed or not.
pub trait ReplicaStore: Send + Sync + 'static {
    /// The stored object for `key`, if any. A record that fails to decode is
    /// logged, counted in [`ReplicaStore::decode_errors`] and read as absent.
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError>;

    /// Queues an update of `key`; `f` runs on the writer and its completion
    /// after the commit under the fsync policy.
    fn submit(&self, key: Bytes, f: UpdateFn);

    /// Up to `limit` records whose ring hash is `>= from_hash`, in ring order,
    /// with each record's ring hash.
    fn scan(&self, from_hash: u64, limit: usize) -> Result<Vec<(u64, Bytes, Object)>, StoreError>;

    /// Approximate number of records.
    fn approximate_len(&self) -> u64;

    /// Removes every record (ordered after every update queued before it).
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes everything written so far durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// Records that failed to decode since start.
    fn decode_errors(&self) -> u64;
}

/// Typed convenience over [`ReplicaStore::submit`]: `f` decides the write and
/// a result, which is returned once the write is committed.
pub fn update<S, T, F>(
    store: &S,
    key: Bytes,
    f: F,
) -> impl Future<Output = Result<T, StoreError>> + Send + use<S, T, F>
where
    S: ReplicaStore + ?Sized,
    T: Send + 'static,
    F: FnOnce(Option<Object>) -> (Write, T) + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit(
        key,
        Box::new(move |current| {
            let (write, value) = f(current);
            let done: Completion = Box::new(move |result| {
                // The caller may be gone (client disconnected); the write stands.
                let _ = tx.send(result.map(|()| value));
            });
            (write, done)
        }),
    );
    async move { rx.await.map_err(|_| StoreError::Closed)? }
}

pub mod codec;
pub mod fjall_store;
pub mod hints;
pub mod memory;
