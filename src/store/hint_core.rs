//! The rules of hint storage (see [`super::hints`]), written once over a
//! small synchronous [`HintBackend`] so the fjall and memory hint stores
//! cannot drift apart. Every method here may block on the backend: the
//! fjall wrapper calls them on the blocking pool, the memory one inline.

use super::StoreError;
use super::codec::{
    HintRecord, MAX_VALUE_LEN, decode_hint, encode_hint, hint_key, hint_matches, hint_prefix,
    hint_target, resolve_hint_key, valid_target,
};
use super::hints::{HintLimits, HintPut};
use crate::core::{NodeId, Object, ring_hash};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;

/// One change to the hint store; a `Vec` of them is applied atomically.
#[derive(Debug)]
pub enum HintOp {
    /// Sets a hint record.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a hint record.
    Remove(Vec<u8>),
    /// Records a ring hash as needing repair.
    NeedsRepair(u64),
    /// Forgets a ring hash needing repair.
    Repaired(u64),
}

/// Raw hint records by hint key, plus the set of ring hashes needing repair.
pub trait HintBackend: Send + Sync + 'static {
    /// The raw record at `hk`.
    fn get(&self, hk: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `visit` with each record whose key starts with `prefix`, in key
    /// order, until it returns false.
    fn visit(
        &self,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Applies `ops` atomically.
    fn write(&self, ops: Vec<HintOp>) -> Result<(), StoreError>;
    /// Makes what was written durable, if the fsync policy asks for that
    /// before an acknowledgement.
    fn settle(&self) -> Result<(), StoreError>;
    /// Ring hashes needing repair, ascending.
    fn repairs(&self) -> Result<Vec<u64>, StoreError>;
    /// Removes every hint and repair record.
    fn clear(&self) -> Result<(), StoreError>;
}

/// What is kept in memory about the hints on the backend.
#[derive(Default)]
struct Tally {
    /// Hint records per target (unreadable ones included: they are there
    /// until listed and discarded).
    counts: BTreeMap<NodeId, u64>,
    dropped: u64,
    /// No hint is older than this (a lower bound; `None`: no hints).
    oldest: Option<u64>,
    /// Oldest hint created while an expiry pass is scanning (it may miss them).
    created_during_expiry: Option<u64>,
}

impl Tally {
    fn added(&mut self, target: &NodeId, stored_at: u64) {
        *self.counts.entry(target.clone()).or_insert(0) += 1;
        self.oldest = Some(self.oldest.map_or(stored_at, |o| o.min(stored_at)));
        if let Some(min) = &mut self.created_during_expiry {
            *min = (*min).min(stored_at);
        }
    }

    fn removed(&mut self, target: &NodeId) {
        if let Some(n) = self.counts.get_mut(target) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(target);
            }
        }
    }
}

/// A hint record as found at one hint key.
enum Found {
    Absent,
    Hint(HintRecord),
    /// Undecodable bytes.
    Unreadable(String),
    /// Another key's record with the same long-key digest.
    Collision,
}

/// The hint store's rules over a backend.
pub struct HintCore<B> {
    backend: B,
    limits: HintLimits,
    /// Also serialises every read-modify-write of a hint record.
    tally: Mutex<Tally>,
    /// One expiry pass at a time.
    expiring: Mutex<()>,
}

impl<B: HintBackend> HintCore<B> {
    /// Wraps `backend`, counting what it holds. Hints written by versions
    /// that did not record when a hint was stored get `now_ms`, so the TTL
    /// runs from the upgrade rather than dropping them all at once.
    pub fn open(backend: B, limits: HintLimits, now_ms: u64) -> Result<Self, StoreError> {
        let core = Self::new_empty(backend, limits);
        core.recount(now_ms)?;
        Ok(core)
    }

    /// Wraps a backend known to be empty (nothing to count).
    pub fn new_empty(backend: B, limits: HintLimits) -> Self {
        Self {
            backend,
            limits,
            tally: Mutex::new(Tally::default()),
            expiring: Mutex::new(()),
        }
    }

    /// The backend (for crash simulation).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Rebuilds the in-memory tally from the backend (at open and after a
    /// simulated crash). `dropped` restarts at 0, as a restarted node's.
    pub fn recount(&self, now_ms: u64) -> Result<(), StoreError> {
        let mut tally = self.tally.lock();
        let mut fresh = Tally::default();
        let mut legacy = Vec::new();
        self.backend.visit(&[], &mut |hk, raw| {
            let Some(target) = hint_target(hk) else {
                tracing::error!("hint record without a target name; ignored");
                return true;
            };
            let stored_at = match decode_hint(raw) {
                Ok(HintRecord {
                    stored_at_ms: Some(at),
                    ..
                }) => at,
                Ok(record) => {
                    legacy.push((hk.to_vec(), record));
                    now_ms
                }
                // Counted: it is there until listed and discarded.
                Err(_) => now_ms,
            };
            fresh.added(&target, stored_at);
            true
        })?;
        let mut ops = Vec::new();
        for (hk, record) in legacy {
            if let Some((_, key)) = resolve_hint_key(&hk, record.full_key) {
                ops.push(HintOp::Put(hk, encode_hint(&key, now_ms, &record.object)));
            }
        }
        if !ops.is_empty() {
            self.backend.write(ops)?;
            self.backend.settle()?;
        }
        *tally = fresh;
        Ok(())
    }

    fn find(&self, hk: &[u8], key: &[u8]) -> Result<Found, StoreError> {
        let Some(raw) = self.backend.get(hk)? else {
            return Ok(Found::Absent);
        };
        Ok(match decode_hint(&raw) {
            Ok(record) if hint_matches(key, &record) => Found::Hint(record),
            Ok(_) => Found::Collision,
            Err(e) => Found::Unreadable(e.to_string()),
        })
    }

    /// See [`super::hints::Hints::put`].
    pub fn put(
        &self,
        target: &NodeId,
        key: Bytes,
        object: Object,
        now_ms: u64,
    ) -> Result<HintPut, StoreError> {
        if !valid_target(target) {
            return Err(StoreError::Rejected(format!(
                "cannot keep hints for node name {:?}",
                target.as_str().get(..64).unwrap_or(target.as_str())
            )));
        }
        let hk = hint_key(target, &key);
        let outcome = {
            let mut tally = self.tally.lock();
            let (is_new, stored_at, mut merged) = match self.find(&hk, &key)? {
                Found::Absent => (true, now_ms, Object::new()),
                // The first store time stays: the TTL bounds how long any
                // write can wait in a hint, however many follow it.
                Found::Hint(record) => {
                    (false, record.stored_at_ms.unwrap_or(now_ms), record.object)
                }
                Found::Unreadable(e) => {
                    tracing::error!(target = %target, "unreadable hint replaced: {e}");
                    (false, now_ms, Object::new())
                }
                Found::Collision => {
                    return Err(StoreError::Rejected(
                        "another key's hint has this key's digest".into(),
                    ));
                }
            };
            let at_cap =
                tally.counts.get(target).copied().unwrap_or(0) >= self.limits.max_per_target;
            if is_new && at_cap {
                self.backend
                    .write(vec![HintOp::NeedsRepair(ring_hash(&key))])?;
                tally.dropped += 1;
                HintPut::Dropped
            } else {
                merged.merge(&object);
                let raw = encode_hint(&key, stored_at, &merged);
                if raw.len() > MAX_VALUE_LEN {
                    return Err(StoreError::Rejected(format!(
                        "hint of {} bytes is larger than the storage limit",
                        raw.len()
                    )));
                }
                self.backend.write(vec![HintOp::Put(hk, raw)])?;
                if is_new {
                    tally.added(target, stored_at);
                }
                HintPut::Stored
            }
        };
        // Outside the lock: concurrent puts share the fsync's wait.
        self.backend.settle()?;
        Ok(outcome)
    }

    /// See [`super::hints::Hints::get`].
    pub fn get(&self, target: &NodeId, key: &[u8]) -> Result<Option<Object>, StoreError> {
        if !valid_target(target) {
            return Ok(None);
        }
        match self.find(&hint_key(target, key), key)? {
            Found::Hint(record) => Ok(Some(record.object)),
            Found::Absent | Found::Unreadable(_) | Found::Collision => Ok(None),
        }
    }

    /// See [`super::hints::Hints::list`].
    pub fn list(
        &self,
        target: &NodeId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Bytes, Object)>, StoreError> {
        if !valid_target(target) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut unreadable = Vec::new();
        self.backend.visit(&hint_prefix(target), &mut |hk, raw| {
            let decoded = decode_hint(raw).map_err(|e| e.to_string());
            let resolved = decoded.and_then(|record| {
                let (_, key) = resolve_hint_key(hk, record.full_key)
                    .ok_or("hint key and stored key disagree")?;
                Ok((key, record.object))
            });
            match resolved {
                Ok(hint) => {
                    out.push(hint);
                    bytes = bytes.saturating_add(raw.len());
                }
                Err(e) => {
                    tracing::error!(target = %target, "unreadable hint discarded: {e}");
                    unreadable.push(hk.to_vec());
                }
            }
            out.len() < limit && bytes < max_bytes
        })?;
        if !unreadable.is_empty() {
            self.discard_unreadable(target, unreadable)?;
        }
        Ok(out)
    }

    /// Drops records that did not decode when listed (and still do not).
    fn discard_unreadable(&self, target: &NodeId, hks: Vec<Vec<u8>>) -> Result<(), StoreError> {
        let mut tally = self.tally.lock();
        let mut ops = Vec::new();
        for hk in hks {
            let Some(raw) = self.backend.get(&hk)? else {
                continue;
            };
            if decode_hint(&raw).is_ok() {
                // Rewritten by a put since it was listed.
                continue;
            }
            // A short key is its own stored form; a long key's whole key
            // was in the lost value, so its partition cannot be named.
            if let Some((_, key)) = resolve_hint_key(&hk, None) {
                ops.push(HintOp::NeedsRepair(ring_hash(&key)));
            }
            ops.push(HintOp::Remove(hk));
            tally.removed(target);
            tally.dropped += 1;
        }
        self.backend.write(ops)?;
        drop(tally);
        self.backend.settle()
    }

    /// See [`super::hints::Hints::remove_if_unchanged`].
    pub fn remove_if_unchanged(
        &self,
        target: &NodeId,
        key: &[u8],
        delivered: &Object,
    ) -> Result<bool, StoreError> {
        if !valid_target(target) {
            return Ok(false);
        }
        let hk = hint_key(target, key);
        let mut tally = self.tally.lock();
        let unchanged = matches!(self.find(&hk, key)?, Found::Hint(r) if r.object == *delivered);
        if unchanged {
            // Not fsynced: a removal lost in a crash only re-delivers a
            // hint, and merging it again is harmless.
            self.backend.write(vec![HintOp::Remove(hk)])?;
            tally.removed(target);
        }
        Ok(unchanged)
    }

    /// See [`super::hints::Hints::discard`].
    pub fn discard(&self, target: &NodeId, key: &[u8]) -> Result<(), StoreError> {
        if !valid_target(target) {
            return Ok(());
        }
        let hk = hint_key(target, key);
        {
            let mut tally = self.tally.lock();
            match self.find(&hk, key)? {
                Found::Absent | Found::Collision => return Ok(()),
                Found::Hint(_) | Found::Unreadable(_) => {}
            }
            self.backend.write(vec![
                HintOp::Remove(hk),
                HintOp::NeedsRepair(ring_hash(key)),
            ])?;
            tally.removed(target);
            tally.dropped += 1;
        }
        self.backend.settle()
    }

    /// See [`super::hints::Hints::expire`].
    pub fn expire(&self, now_ms: u64) -> Result<u64, StoreError> {
        let ttl = self.limits.ttl_ms;
        let expired = |at: u64| at.saturating_add(ttl) <= now_ms;
        let _one_pass = self.expiring.lock();
        {
            let mut tally = self.tally.lock();
            if !tally.oldest.is_some_and(expired) {
                return Ok(0);
            }
            tally.created_during_expiry = Some(u64::MAX);
        }
        // Scan without holding the tally lock (puts go on meanwhile), then
        // re-check each candidate under it.
        let mut candidates = Vec::new();
        let mut oldest_kept = u64::MAX;
        self.backend.visit(&[], &mut |hk, raw| {
            match decode_hint(raw) {
                Ok(HintRecord {
                    stored_at_ms: Some(at),
                    ..
                }) if expired(at) => candidates.push(hk.to_vec()),
                Ok(HintRecord {
                    stored_at_ms: Some(at),
                    ..
                }) => oldest_kept = oldest_kept.min(at),
                // Legacy records are rewritten at open, unreadable ones when
                // listed: neither is for this pass.
                _ => {}
            }
            true
        })?;
        let mut tally = self.tally.lock();
        let mut ops = Vec::new();
        let mut dropped = 0;
        for hk in candidates {
            let Some(raw) = self.backend.get(&hk)? else {
                continue;
            };
            let Ok(record) = decode_hint(&raw) else {
                continue;
            };
            let (Some(at), Some((target, key))) =
                (record.stored_at_ms, resolve_hint_key(&hk, record.full_key))
            else {
                continue;
            };
            if !expired(at) {
                // Replaced since the scan saw it.
                oldest_kept = oldest_kept.min(at);
                continue;
            }
            ops.push(HintOp::Remove(hk));
            ops.push(HintOp::NeedsRepair(ring_hash(&key)));
            tally.removed(&target);
            dropped += 1;
        }
        if !ops.is_empty() {
            self.backend.write(ops)?;
        }
        tally.dropped += dropped;
        let created = tally.created_during_expiry.take().unwrap_or(u64::MAX);
        let oldest = oldest_kept.min(created);
        tally.oldest = (oldest != u64::MAX && !tally.counts.is_empty()).then_some(oldest);
        drop(tally);
        self.backend.settle()?;
        Ok(dropped)
    }

    /// See [`super::hints::Hints::counts`].
    pub fn counts(&self) -> BTreeMap<NodeId, u64> {
        self.tally.lock().counts.clone()
    }

    /// See [`super::hints::Hints::dropped`].
    pub fn dropped(&self) -> u64 {
        self.tally.lock().dropped
    }

    /// See [`super::hints::Hints::repair_needed`].
    pub fn repair_needed(&self) -> Result<Vec<u64>, StoreError> {
        self.backend.repairs()
    }

    /// See [`super::hints::Hints::repaired`].
    pub fn repaired(&self, hashes: Vec<u64>) -> Result<(), StoreError> {
        self.backend
            .write(hashes.into_iter().map(HintOp::Repaired).collect())?;
        self.backend.settle()
    }

    /// See [`super::hints::Hints::clear`].
    pub fn clear(&self) -> Result<(), StoreError> {
        let mut tally = self.tally.lock();
        self.backend.clear()?;
        *tally = Tally::default();
        drop(tally);
        self.backend.settle()
    }
}
