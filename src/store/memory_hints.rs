//! [`MemoryHints`]: hints in memory for simulations and tests, encoded and
//! ordered exactly as [`super::fjall_hints::FjallHints`] keeps them, with
//! the same crash model as [`super::memory::MemoryStore`].
//!
//! Everything runs inline on the caller's task (no threads, blocking pool,
//! wall clock or hash-map iteration): the simulation is deterministic.

use super::FsyncPolicy;
use super::StoreError;
use super::hint_core::{HintBackend, HintCore, HintOp};
use super::hints::{HintLimits, HintPut, Hints};
use super::undo_map::UndoMap;
use crate::core::{NodeId, Object};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// In-memory [`Hints`].
pub struct MemoryHints {
    core: HintCore<MemoryBackend>,
}

/// Hint records and repair hashes, each with what a crash would bring back.
pub struct MemoryBackend {
    state: Mutex<State>,
}

struct State {
    hints: UndoMap<Vec<u8>, Vec<u8>>,
    repair: UndoMap<u64, ()>,
}

impl MemoryHints {
    /// An empty hint store that loses, in a [`MemoryHints::crash`], what
    /// fjall would lose under `fsync` (see [`super::memory::MemoryStore::new_with`]).
    pub fn new_with(fsync: FsyncPolicy, limits: HintLimits) -> Self {
        let at_once = fsync == FsyncPolicy::Always;
        let backend = MemoryBackend {
            state: Mutex::new(State {
                hints: UndoMap::new(at_once),
                repair: UndoMap::new(at_once),
            }),
        };
        Self {
            core: HintCore::new_empty(backend, limits),
        }
    }

    /// Makes every change so far durable (the simulation's everysec tick).
    pub fn sync(&self) {
        let mut state = self.core.backend().state.lock();
        state.hints.sync();
        state.repair.sync();
    }

    /// Reverts to the last durable state, as a crash and restart would;
    /// counts are rebuilt and the dropped counter restarts at 0.
    pub fn crash(&self) -> Result<(), StoreError> {
        {
            let mut state = self.core.backend().state.lock();
            state.hints.crash();
            state.repair.crash();
        }
        // Records in memory are never legacy ones, so no time is needed.
        self.core.recount(0)
    }

    /// Stores raw bytes under a raw hint key (tests of unreadable hints).
    pub fn put_raw(&self, hk: Vec<u8>, raw: Vec<u8>) -> Result<(), StoreError> {
        self.core.backend().write(vec![HintOp::Put(hk, raw)])
    }
}

impl HintBackend for MemoryBackend {
    fn get(&self, hk: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state.lock().hints.live().get(hk).cloned())
    }

    fn visit(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let state = self.state.lock();
        for (hk, raw) in state.hints.live().range(prefix.to_vec()..) {
            if !hk.starts_with(prefix) || !visit(hk, raw) {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, ops: Vec<HintOp>) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        for op in ops {
            match op {
                HintOp::Put(hk, raw) => state.hints.insert(hk, raw),
                HintOp::Remove(hk) => state.hints.remove(&hk),
                HintOp::NeedsRepair(hash) => state.repair.insert(hash, ()),
                HintOp::Repaired(hash) => state.repair.remove(&hash),
            }
        }
        Ok(())
    }

    fn settle(&self) -> Result<(), StoreError> {
        // Durability is modelled by the undo maps.
        Ok(())
    }

    fn repairs(&self) -> Result<Vec<u64>, StoreError> {
        Ok(self.state.lock().repair.live().keys().copied().collect())
    }

    fn clear(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        state.hints.clear();
        state.repair.clear();
        Ok(())
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
        self.core.put(target, key, object, now_ms)
    }

    fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError> {
        self.core.get(target, key)
    }

    async fn list(
        &self,
        target: &NodeId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Bytes, Object)>, StoreError> {
        self.core.list(target, limit, max_bytes)
    }

    async fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> Result<bool, StoreError> {
        self.core.remove_if_unchanged(target, &key, &delivered)
    }

    async fn discard(&self, target: &NodeId, key: Bytes) -> Result<(), StoreError> {
        self.core.discard(target, &key)
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.core.expire(now_ms)
    }

    fn counts(&self) -> BTreeMap<NodeId, u64> {
        self.core.counts()
    }

    fn dropped(&self) -> u64 {
        self.core.dropped()
    }

    fn repair_needed(&self) -> Result<Vec<u64>, StoreError> {
        self.core.repair_needed()
    }

    async fn repaired(&self, hashes: Vec<u64>) -> Result<(), StoreError> {
        self.core.repaired(hashes)
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.core.clear()
    }
}
