//! [`FjallHints`]: hints on disk, in two keyspaces of the replica store's
//! database so they survive restarts: `hints` (hint key = target name, a 0
//! byte, the key's stored form; value = [`super::codec::encode_hint`]) and
//! `hint_repair` (8-byte big-endian ring hashes needing repair).
//!
//! Every call that writes or scans runs on tokio's blocking pool; point
//! reads and the in-memory counters are served inline.

use super::hint_core::{HintBackend, HintCore, HintOp};
use super::hints::{HintLimits, HintPut, Hints};
use super::{StoreError, blocking};
use crate::core::{NodeId, Object};
use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::BTreeMap;
use std::sync::Arc;

/// fjall-backed [`Hints`].
pub struct FjallHints {
    core: Arc<HintCore<FjallBackend>>,
}

/// The two keyspaces, and whether writes are fsynced before acks.
pub struct FjallBackend {
    db: Database,
    hints: Keyspace,
    repair: Keyspace,
    fsync_always: bool,
}

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

impl FjallHints {
    /// Opens the hint keyspaces of `db` and counts the hints in them (a
    /// full scan, once, at startup).
    pub fn open(
        db: Database,
        fsync_always: bool,
        limits: HintLimits,
        now_ms: u64,
    ) -> Result<Self, StoreError> {
        let hints = db
            .keyspace("hints", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let repair = db
            .keyspace("hint_repair", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let backend = FjallBackend {
            db,
            hints,
            repair,
            fsync_always,
        };
        Ok(Self {
            core: Arc::new(HintCore::open(backend, limits, now_ms)?),
        })
    }

    /// Runs `f` on the core, on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&HintCore<FjallBackend>) -> Result<T, StoreError> + Send + 'static,
    {
        let core = self.core.clone();
        blocking(move || f(&core)).await
    }
}

impl HintBackend for FjallBackend {
    fn get(&self, hk: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.hints.get(hk).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn visit(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        for guard in self.hints.prefix(prefix) {
            let (hk, raw) = guard.into_inner().map_err(engine)?;
            if !visit(&hk, &raw) {
                break;
            }
        }
        Ok(())
    }

    fn write(&self, ops: Vec<HintOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = self.db.batch();
        for op in ops {
            match op {
                HintOp::Put(hk, raw) => batch.insert(&self.hints, hk, raw),
                HintOp::Remove(hk) => batch.remove(&self.hints, hk),
                HintOp::NeedsRepair(hash) => {
                    batch.insert(&self.repair, hash.to_be_bytes(), Vec::<u8>::new())
                }
                HintOp::Repaired(hash) => batch.remove(&self.repair, hash.to_be_bytes()),
            }
        }
        batch.commit().map_err(engine)
    }

    fn settle(&self) -> Result<(), StoreError> {
        if self.fsync_always {
            self.db.persist(PersistMode::SyncData).map_err(engine)?;
        }
        Ok(())
    }

    fn repairs(&self) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        for guard in self.repair.iter() {
            let hk = guard.key().map_err(engine)?;
            match hk.first_chunk::<8>() {
                Some(hash) if hk.len() == 8 => out.push(u64::from_be_bytes(*hash)),
                _ => tracing::error!("malformed repair record ignored"),
            }
        }
        Ok(out)
    }

    fn clear(&self) -> Result<(), StoreError> {
        self.hints.clear().map_err(engine)?;
        self.repair.clear().map_err(engine)
    }
}

impl Hints for FjallHints {
    async fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        now_ms: u64,
    ) -> Result<HintPut, StoreError> {
        let target = target.clone();
        self.run(move |core| core.put(&target, key, object, now_ms))
            .await
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
        let target = target.clone();
        self.run(move |core| core.list(&target, limit, max_bytes))
            .await
    }

    async fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> Result<bool, StoreError> {
        let target = target.clone();
        self.run(move |core| core.remove_if_unchanged(&target, &key, &delivered))
            .await
    }

    async fn discard(&self, target: &NodeId, key: Bytes) -> Result<(), StoreError> {
        let target = target.clone();
        self.run(move |core| core.discard(&target, &key)).await
    }

    async fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.run(move |core| core.expire(now_ms)).await
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
        self.run(move |core| core.repaired(hashes)).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.run(|core| core.clear()).await
    }
}
