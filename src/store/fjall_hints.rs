//! [`FjallHints`]: hints in their own fjall keyspace so they survive
//! restarts. Record key = target name,
//! a 0 byte, the user key; value = the encoded object (merged when several
//! writes for the same key accumulate).
//!
//! Hints are written only while a replica is down, so these calls are made
//! from `spawn_blocking` rather than through the data writer thread.

use super::StoreError;
use super::codec::{decode_object, encode_object};
use crate::core::{NodeId, Object};
use bytes::Bytes;
use fjall::{Database, Keyspace, PersistMode};
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// Hints kept on this node, per target node.
pub struct FjallHints {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    db: Database,
    hints: Keyspace,
    fsync_always: bool,
    /// Serialises read-merge-write of one hint against delivery's
    /// compare-and-delete.
    lock: Mutex<()>,
}

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn hint_key(target: &NodeId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(target.as_str().len() + 1 + key.len());
    k.extend_from_slice(target.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

impl FjallHints {
    /// Opens the `hints` keyspace of `db`.
    pub fn open(db: Database, fsync_always: bool) -> Result<Self, StoreError> {
        let hints = db
            .keyspace("hints", fjall::KeyspaceCreateOptions::default)
            .map_err(engine)?;
        Ok(Self {
            inner: std::sync::Arc::new(Inner {
                db,
                hints,
                fsync_always,
                lock: Mutex::new(()),
            }),
        })
    }

}

impl Inner {
    /// Keeps `object` for `target`, merged with any hint already held.
    pub fn put(&self, target: &NodeId, key: &[u8], object: &Object) -> Result<(), StoreError> {
        let _guard = self.lock.lock();
        let hk = hint_key(target, key);
        let mut merged = match self.hints.get(&hk).map_err(engine)? {
            Some(raw) => decode_object(&raw).unwrap_or_default(),
            None => Object::new(),
        };
        merged.merge(object);
        self.hints
            .insert(hk, encode_object(&merged))
            .map_err(engine)?;
        if self.fsync_always {
            self.db.persist(PersistMode::SyncData).map_err(engine)?;
        }
        Ok(())
    }

    /// Up to `limit` hints for `target`.
    pub fn list(&self, target: &NodeId, limit: usize) -> Result<Vec<(Bytes, Object)>, StoreError> {
        let mut prefix = target.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for guard in self.hints.prefix(&prefix).take(limit) {
            let (k, v) = guard.into_inner().map_err(engine)?;
            let key = Bytes::copy_from_slice(k.get(prefix.len()..).unwrap_or_default());
            match decode_object(&v) {
                Ok(obj) => out.push((key, obj)),
                Err(e) => tracing::error!("unreadable hint for {target}: {e}"),
            }
        }
        Ok(out)
    }

    /// Deletes the hint if it is still exactly `delivered` (a newer write
    /// merged in meanwhile keeps it for the next round).
    pub fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: &[u8],
        delivered: &Object,
    ) -> Result<bool, StoreError> {
        let _guard = self.lock.lock();
        let hk = hint_key(target, key);
        let current = self.hints.get(&hk).map_err(engine)?;
        let unchanged = current
            .as_deref()
            .and_then(|raw| decode_object(raw).ok())
            .is_some_and(|obj| &obj == delivered);
        if unchanged {
            self.hints.remove(hk).map_err(engine)?;
        }
        Ok(unchanged)
    }

    /// Pending hints per target.
    pub fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for guard in self.hints.iter() {
            let k = guard.key().map_err(engine)?;
            let target = k.split(|&b| b == 0).next().unwrap_or_default();
            *counts
                .entry(String::from_utf8_lossy(target).into_owned())
                .or_insert(0) += 1;
        }
        Ok(counts)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Engine(format!("hint task failed: {e}")))?
}

impl super::hints::Hints for FjallHints {
    async fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        _now_ms: u64,
    ) -> Result<super::hints::HintPut, StoreError> {
        let (inner, target) = (self.inner.clone(), target.clone());
        blocking(move || inner.put(&target, &key, &object)).await?;
        Ok(super::hints::HintPut::Stored)
    }

    fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError> {
        let raw = self.inner.hints.get(hint_key(target, key)).map_err(engine)?;
        Ok(raw.and_then(|r| decode_object(&r).ok()))
    }

    async fn list(
        &self,
        target: &NodeId,
        limit: usize,
        _max_bytes: usize,
    ) -> Result<Vec<(Bytes, Object)>, StoreError> {
        let (inner, target) = (self.inner.clone(), target.clone());
        blocking(move || inner.list(&target, limit)).await
    }

    async fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: Bytes,
        delivered: Object,
    ) -> Result<bool, StoreError> {
        let (inner, target) = (self.inner.clone(), target.clone());
        blocking(move || inner.remove_if_unchanged(&target, &key, &delivered)).await
    }

    async fn discard(&self, target: &NodeId, key: Bytes) -> Result<(), StoreError> {
        let (inner, target) = (self.inner.clone(), target.clone());
        blocking(move || {
            inner
                .hints
                .remove(hint_key(&target, &key))
                .map_err(engine)
        })
        .await
    }

    async fn expire(&self, _now_ms: u64) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn counts(&self) -> BTreeMap<NodeId, u64> {
        self.inner
            .counts()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (NodeId::new(&k), v))
            .collect()
    }

    fn dropped(&self) -> u64 {
        0
    }

    fn repair_needed(&self) -> Result<Vec<u64>, StoreError> {
        Ok(Vec::new())
    }
}
