//! The simulated node environment: the node's own code over memory stores
//! (fenced per process incarnation, so a killed process writes nothing
//! more), a seeded network and skewed clocks.
//!
//! The only test-side logic here is the fence and the [`Observer`], which
//! watches every object written to any store so the checker can tell which
//! dot each acknowledged write got.

use crate::sim::net::SimTransport;
use bytes::Bytes;
use dynkv::core::{Dot, NodeId, Object, Payload, VersionVector};
use dynkv::node::env::{Clock, MemMeta, NodeEnv};
use dynkv::store::hints::{HintPut, Hints};
use dynkv::store::memory::MemoryStore;
use dynkv::store::memory_hints::MemoryHints;
use dynkv::store::{ReplicaStore, StoreError, UpdateFn, Write};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The simulation's [`NodeEnv`].
pub struct SimEnv;

impl NodeEnv for SimEnv {
    type Store = FencedStore;
    type Hints = FencedHints;
    type Transport = SimTransport;
    type Meta = MemMeta;

    async fn offload<T, F>(f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        f()
    }
}

/// Start of simulated wall-clock time (2026-01-01).
pub const EPOCH_MS: u64 = 1_767_225_600_000;

/// A node's physical clock: simulated time plus the node's skew.
pub struct SimClock {
    pub start: tokio::time::Instant,
    pub skew_ms: i64,
}

impl Clock for SimClock {
    fn physical_ms(&self) -> u64 {
        let elapsed = self.start.elapsed().as_millis() as u64;
        (EPOCH_MS + elapsed).saturating_add_signed(self.skew_ms)
    }
}

/// What one dot was first seen as.
#[derive(Clone, Debug)]
pub struct SeenDot {
    pub key: Bytes,
    pub payload: Payload,
    /// The context of the first object it appeared in: for a blind write,
    /// what it superseded.
    pub created_in: VersionVector,
}

/// Watches every object stored anywhere.
#[derive(Default)]
pub struct Observer {
    state: Mutex<ObserverState>,
}

#[derive(Default)]
pub struct ObserverState {
    pub dots: BTreeMap<Dot, SeenDot>,
    pub by_value: BTreeMap<Bytes, Vec<Dot>>,
    pub conflicts: Vec<String>,
}

impl Observer {
    pub fn saw(&self, key: &Bytes, obj: &Object) {
        let mut st = self.state.lock();
        for s in &obj.siblings {
            match st.dots.get(&s.dot) {
                None => {
                    st.dots.insert(
                        s.dot.clone(),
                        SeenDot {
                            key: key.clone(),
                            payload: s.payload.clone(),
                            created_in: obj.context.clone(),
                        },
                    );
                    // A duplicated forward is coordinated twice: the same
                    // value under two dots. Both are real versions; the
                    // checker follows each.
                    if let Payload::Value { data, .. } = &s.payload {
                        st.by_value
                            .entry(data.clone())
                            .or_default()
                            .push(s.dot.clone());
                    }
                }
                Some(seen) if seen.key != key || seen.payload != s.payload => {
                    let msg = format!(
                        "dot {:?} names two writes: {:?}={:?} and {:?}={:?}",
                        s.dot, seen.key, seen.payload, key, s.payload
                    );
                    st.conflicts.push(msg);
                }
                Some(_) => {}
            }
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&ObserverState) -> T) -> T {
        f(&self.state.lock())
    }
}

/// One process incarnation's view of a disk: it stops writing when the
/// process is killed.
pub struct FencedStore {
    pub inner: Arc<MemoryStore>,
    pub alive: Arc<AtomicBool>,
    pub observer: Arc<Observer>,
}

impl ReplicaStore for FencedStore {
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError> {
        self.inner.get(key)
    }

    async fn submit(&self, key: Bytes, f: UpdateFn) {
        if !self.alive.load(Ordering::SeqCst) {
            let (_, done) = f(None);
            done(Err(StoreError::Closed));
            return;
        }
        let observer = self.observer.clone();
        let k = key.clone();
        self.inner
            .submit(
                key,
                Box::new(move |current| {
                    let (write, done) = f(current);
                    if let Write::Put(obj) = &write {
                        observer.saw(&k, obj);
                    }
                    (write, done)
                }),
            )
            .await;
    }

    async fn scan(
        &self,
        from_hash: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes, Object)>, StoreError> {
        self.inner.scan(from_hash, limit).await
    }

    fn approximate_len(&self) -> u64 {
        self.inner.approximate_len()
    }

    fn queue_depth(&self) -> u64 {
        self.inner.queue_depth()
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync().await
    }

    fn decode_errors(&self) -> u64 {
        self.inner.decode_errors()
    }

    fn changes(&self) -> &dynkv::store::change_feed::ChangeFeed {
        self.inner.changes()
    }
}

/// The hint store, fenced the same way.
pub struct FencedHints {
    pub inner: Arc<MemoryHints>,
    pub alive: Arc<AtomicBool>,
    pub observer: Arc<Observer>,
}

impl Hints for FencedHints {
    async fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        now_ms: u64,
    ) -> Result<HintPut, StoreError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.observer.saw(&key, &object);
        self.inner.put(target, key, object, now_ms).await
    }

    fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError> {
        self.inner.get(target, key)
    }

    async fn list(
        &self,
        target: &NodeId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Bytes, Object)>, StoreError> {
        self.inner.list(target, limit, max_bytes).await
    }

    async fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> Result<bool, StoreError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.remove_if_unchanged(target, key, delivered).await
    }

    async fn discard(&self, target: &NodeId, key: Bytes) -> Result<(), StoreError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.discard(target, key).await
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.expire(now_ms).await
    }

    fn counts(&self) -> BTreeMap<NodeId, u64> {
        self.inner.counts()
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }

    fn repair_needed(&self) -> Result<Vec<u64>, StoreError> {
        self.inner.repair_needed()
    }

    async fn repaired(&self, hashes: Vec<u64>) -> Result<(), StoreError> {
        self.inner.repaired(hashes).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }
}
