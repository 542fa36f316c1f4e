//! Replica storage: where one node keeps its copies of objects.
//!
//! [`ReplicaStore`] is implemented by [`fjall_store::FjallStore`] (on disk) and
//! [`memory::MemoryStore`] (simulation and tests); [`hints::Hints`] by
//! [`fjall_hints::FjallHints`] and [`memory_hints::MemoryHints`].
//! `tests/store_conformance.rs` runs one suite against both of each.

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
/// Point reads are synchronous: they are served from fjall's memtable and
/// block cache and are cheap enough for the reactor. Writes are updates
/// executed in order by a single writer that folds concurrent callers into
/// one commit (group commit); an update sees every earlier update,
/// committed or not. Bulk work (scans, fsync) is async so the on-disk store
/// can run it off the reactor.
pub trait ReplicaStore: Send + Sync + 'static {
    /// The stored object for `key`, if any. A record that fails to decode is
    /// logged, counted in [`ReplicaStore::decode_errors`] and read as absent.
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError>;

    /// Queues an update of `key`; resolves once it is queued, waiting for
    /// room when the writer's queue is full (backpressure). `f` runs on the
    /// writer and its completion after the commit under the fsync policy.
    /// Updates queued one after another by one caller run in that order.
    fn submit(&self, key: Bytes, f: UpdateFn) -> impl Future<Output = ()> + Send;

    /// [`ReplicaStore::submit`] for an update the caller knows is cheap (a
    /// plain overwrite of a small value): the store may run it, and commit
    /// it, on the caller's thread when nothing is queued ahead of it, which
    /// saves the hand-off to the writer and back. Same ordering guarantee.
    fn submit_quick(&self, key: Bytes, f: UpdateFn) -> impl Future<Output = ()> + Send {
        self.submit(key, f)
    }

    /// Up to `limit` records whose ring hash is `>= from_hash`, in ring order,
    /// with each record's ring hash and whole key.
    fn scan(
        &self,
        from_hash: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(u64, Bytes, Object)>, StoreError>> + Send;

    /// Approximate number of records.
    fn approximate_len(&self) -> u64;

    /// Updates queued and not yet taken by the writer (approximate).
    fn queue_depth(&self) -> u64;

    /// Removes every record (ordered after every update queued before it).
    fn clear(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes everything written so far durable.
    fn sync(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that failed to decode since start.
    fn decode_errors(&self) -> u64;

    /// The Merkle update queue: every committed put or remove of a record,
    /// in commit order (see [`change_feed`]).
    fn changes(&self) -> &change_feed::ChangeFeed;
}

/// Runs blocking engine work on tokio's blocking pool, so the reactor's
/// worker threads never wait for the disk.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Engine(format!("storage task failed: {e}")))?
}

/// The outcome of a queued update, once its batch is committed.
pub struct Committed<T>(tokio::sync::oneshot::Receiver<Result<T, StoreError>>);

impl<T> Future for Committed<T> {
    type Output = Result<T, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // A dropped sender means the writer went away with the update.
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::Closed)))
    }
}

/// Typed convenience over [`ReplicaStore::submit`]: `f` decides the write
/// and a result. Resolves once the update is queued (in call order); the
/// [`Committed`] it returns resolves once the write is committed, so a
/// caller can queue several updates before waiting for any commit.
pub async fn queue<S, T, F>(store: &S, key: Bytes, f: F) -> Committed<T>
where
    S: ReplicaStore,
    T: Send + 'static,
    F: FnOnce(Option<Object>) -> (Write, T) + Send + 'static,
{
    let (update, committed) = with_completion(f);
    store.submit(key, update).await;
    committed
}

/// [`queue`] through [`ReplicaStore::submit_quick`]: for cheap updates.
pub async fn queue_quick<S, T, F>(store: &S, key: Bytes, f: F) -> Committed<T>
where
    S: ReplicaStore,
    T: Send + 'static,
    F: FnOnce(Option<Object>) -> (Write, T) + Send + 'static,
{
    let (update, committed) = with_completion(f);
    store.submit_quick(key, update).await;
    committed
}

/// Wraps `f` as an [`UpdateFn`] whose completion resolves the returned
/// [`Committed`].
fn with_completion<T, F>(f: F) -> (UpdateFn, Committed<T>)
where
    T: Send + 'static,
    F: FnOnce(Option<Object>) -> (Write, T) + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let update: UpdateFn = Box::new(move |current| {
        let (write, value) = f(current);
        let done: Completion = Box::new(move |result| {
            // The caller may be gone (client disconnected); the write stands.
            let _ = tx.send(result.map(|()| value));
        });
        (write, done)
    });
    (update, Committed(rx))
}

/// [`queue`], then wait for the commit.
pub async fn update<S, T, F>(store: &S, key: Bytes, f: F) -> Result<T, StoreError>
where
    S: ReplicaStore,
    T: Send + 'static,
    F: FnOnce(Option<Object>) -> (Write, T) + Send + 'static,
{
    queue(store, key, f).await.await
}

pub mod change_feed;
pub mod codec;
pub mod fjall_hints;
pub mod fjall_store;
pub mod hint_core;
pub mod hints;
pub mod memory;
pub mod memory_hints;
pub mod undo_map;
