//! In-memory [`ReplicaStore`] for simulations and tests: same ordering and
//! encoding as fjall (records are stored encoded, so decode paths are
//! shared), with fjall's crash behaviour under each fsync policy.
//!
//! Everything runs inline on the caller's task: the simulation drives this
//! store from a single-threaded, paused-clock runtime, so it must not use
//! threads, blocking pools, wall clocks or hash-map iteration order.

use super::change_feed::ChangeFeed;
use super::codec::{
    Lookup, MAX_VALUE_LEN, decode_record, encode_record, record_key, resolve_record_key,
};
use super::undo_map::UndoMap;
use super::{FsyncPolicy, ReplicaStore, StoreError, UpdateFn, Write};
use crate::core::Object;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Encoded records by record key, as fjall would hold them.
type Records = UndoMap<Vec<u8>, Vec<u8>>;

/// Encoded records in a BTreeMap, plus what a crash would bring back.
pub struct MemoryStore {
    records: Mutex<Records>,
    decode_errors: AtomicU64,
    changes: ChangeFeed,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new_with(FsyncPolicy::Always)
    }
}

impl MemoryStore {
    /// An empty store whose every write is durable at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that loses writes in a [`MemoryStore::crash`] like
    /// fjall under `fsync`: with `Always` none, otherwise those made since
    /// the last [`ReplicaStore::sync`] (the simulation syncs every
    /// simulated second for `everysec`).
    pub fn new_with(fsync: FsyncPolicy) -> Self {
        Self {
            records: Mutex::new(UndoMap::new(fsync == FsyncPolicy::Always)),
            decode_errors: AtomicU64::new(0),
            changes: ChangeFeed::default(),
        }
    }

    /// Reverts to the last durable state, as a process crash and restart
    /// would.
    pub fn crash(&self) {
        self.records.lock().crash();
        // The update queue dies with the process; the next one rescans.
        self.changes.reset();
    }

    /// Overwrites a record with raw bytes (tests of unreadable records).
    pub fn put_raw(&self, key: &[u8], raw: Vec<u8>) {
        self.put_raw_record(record_key(key), raw);
    }

    /// Stores raw bytes under a raw record key (tests of old or colliding
    /// records).
    pub fn put_raw_record(&self, rk: Vec<u8>, raw: Vec<u8>) {
        self.records.lock().insert(rk, raw);
    }

    fn lookup(&self, records: &Records, key: &[u8], rk: &[u8]) -> Lookup {
        let found = Lookup::of(key, records.live().get(rk).map(Vec::as_slice));
        if let Lookup::Unreadable(_) = found {
            self.decode_errors.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Runs one update against the records; the outcome its completion gets.
    fn apply(&self, key: &Bytes, f: UpdateFn) -> (super::Completion, Result<(), StoreError>) {
        let rk = record_key(key);
        let mut records = self.records.lock();
        let current = match self.lookup(&records, key, &rk) {
            Lookup::Found(obj) => Some(obj),
            Lookup::Absent | Lookup::Unreadable(_) => None,
            Lookup::Collision => {
                // Never clobber another key's record (as fjall).
                let (_, done) = f(None);
                let e = StoreError::Rejected("another key's record has this key's digest".into());
                return (done, Err(e));
            }
        };
        let (write, done) = f(current);
        match write {
            Write::Keep => {}
            Write::Put(obj) => {
                let raw = encode_record(key, &obj);
                if raw.len() > MAX_VALUE_LEN {
                    let e = StoreError::Rejected(format!(
                        "record of {} bytes is larger than the storage limit",
                        raw.len()
                    ));
                    return (done, Err(e));
                }
                if self.changes.is_enabled() {
                    let digest = crate::core::merkle::record_digest(&raw);
                    self.changes.push([(key.clone(), Some(digest))]);
                }
                records.insert(rk, raw);
            }
            Write::Remove => {
                records.remove(&rk);
                self.changes.push([(key.clone(), None)]);
            }
        }
        (done, Ok(()))
    }
}

impl ReplicaStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError> {
        let records = self.records.lock();
        match self.lookup(&records, key, &record_key(key)) {
            Lookup::Found(obj) => Ok(Some(obj)),
            Lookup::Absent | Lookup::Unreadable(_) | Lookup::Collision => Ok(None),
        }
    }

    async fn submit(&self, key: Bytes, f: UpdateFn) {
        let (done, result) = self.apply(&key, f);
        // Completions run outside the lock: they may read the store.
        done(result);
    }

    async fn scan(
        &self,
        from_hash: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes, Object)>, StoreError> {
        let records = self.records.lock();
        let mut out = Vec::new();
        for (rk, raw) in records.live().range(from_hash.to_be_bytes().to_vec()..) {
            if out.len() >= limit {
                break;
            }
            let resolved = decode_record(raw)
                .ok()
                .and_then(|(full_key, obj)| Some((resolve_record_key(rk, full_key)?, obj)));
            match resolved {
                Some(((hash, key), obj)) => out.push((hash, key, obj)),
                None => {
                    self.decode_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(out)
    }

    fn approximate_len(&self) -> u64 {
        self.records.lock().live().len() as u64
    }

    fn queue_depth(&self) -> u64 {
        // Updates are applied as they are submitted.
        0
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.records.lock().clear();
        self.changes.cleared();
        Ok(())
    }

    async fn sync(&self) -> Result<(), StoreError> {
        self.records.lock().sync();
        Ok(())
    }

    fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }

    fn changes(&self) -> &ChangeFeed {
        &self.changes
    }
}
