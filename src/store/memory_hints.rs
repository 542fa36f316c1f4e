//! In-memory [`Hints`] for the simulation.

use super::StoreError;
use super::hints::{HintLimits, HintPut, Hints};
use crate::core::{NodeId, Object, ring_hash};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Hints in a BTreeMap (target, key) -> (object, stored at).
pub struct MemoryHints {
    limits: HintLimits,
    /// What survives a crash under `--fsync everysec` (None: everything).
    durable: Option<Mutex<BTreeMap<(NodeId, Bytes), (Object, u64)>>>,
    hints: Mutex<BTreeMap<(NodeId, Bytes), (Object, u64)>>,
    dropped: AtomicU64,
    repair: Mutex<Vec<u64>>,
}

impl MemoryHints {
    /// An empty hint store.
    pub fn new(limits: HintLimits) -> Self {
        Self {
            limits,
            durable: None,
            hints: Mutex::new(BTreeMap::new()),
            dropped: AtomicU64::new(0),
            repair: Mutex::new(Vec::new()),
        }
    }

    /// A hint store that loses un-fsynced hints in a crash.
    pub fn new_with(limits: HintLimits, fsync: super::FsyncPolicy) -> Self {
        let mut h = Self::new(limits);
        if fsync != super::FsyncPolicy::Always {
            h.durable = Some(Mutex::new(BTreeMap::new()));
        }
        h
    }

    /// A crash: hints not yet synced are lost.
    pub fn crash(&self) {
        if let Some(durable) = &self.durable {
            *self.hints.lock() = durable.lock().clone();
        }
    }

    /// Makes every hint durable.
    pub fn sync(&self) {
        if let Some(durable) = &self.durable {
            *durable.lock() = self.hints.lock().clone();
        }
    }

    fn drop_one(&self, key: &[u8]) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.repair.lock().push(ring_hash(key));
    }
}

impl Hints for MemoryHints {
    async fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        now_ms: u64,
    ) -> Result<HintPut, StoreError> {
        let mut hints = self.hints.lock();
        let k = (target.clone(), key.clone());
        if let Some((held, _)) = hints.get_mut(&k) {
            held.merge(&object);
            return Ok(HintPut::Stored);
        }
        let count = hints.keys().filter(|(t, _)| t == target).count() as u64;
        if count >= self.limits.max_per_target {
            drop(hints);
            self.drop_one(&key);
            return Ok(HintPut::Dropped);
        }
        hints.insert(k, (object, now_ms));
        Ok(HintPut::Stored)
    }

    fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError> {
        let k = (target.clone(), Bytes::copy_from_slice(key));
        Ok(self.hints.lock().get(&k).map(|(o, _)| o.clone()))
    }

    async fn list(
        &self,
        target: &NodeId,
        limit: usize,
        _max_bytes: usize,
    ) -> Result<Vec<(Bytes, Object)>, StoreError> {
        Ok(self
            .hints
            .lock()
            .iter()
            .filter(|((t, _), _)| t == target)
            .take(limit)
            .map(|((_, k), (o, _))| (k.clone(), o.clone()))
            .collect())
    }

    async fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> Result<bool, StoreError> {
        let mut hints = self.hints.lock();
        let k = (target.clone(), key);
        let same = hints.get(&k).is_some_and(|(o, _)| o == &delivered);
        if same {
            hints.remove(&k);
        }
        Ok(same)
    }

    async fn discard(&self, target: &NodeId, key: Bytes) -> Result<(), StoreError> {
        if self.hints.lock().remove(&(target.clone(), key.clone())).is_some() {
            self.drop_one(&key);
        }
        Ok(())
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        let ttl = self.limits.ttl_ms;
        let old: Vec<(NodeId, Bytes)> = self
            .hints
            .lock()
            .iter()
            .filter(|(_, (_, at))| at.saturating_add(ttl) <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for (t, k) in &old {
            self.discard(t, k.clone()).await?;
        }
        Ok(old.len() as u64)
    }

    fn counts(&self) -> BTreeMap<NodeId, u64> {
        let mut counts = BTreeMap::new();
        for (t, _) in self.hints.lock().keys() {
            *counts.entry(t.clone()).or_insert(0) += 1;
        }
        counts
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn repair_needed(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self.repair.lock().clone())
    }
}
