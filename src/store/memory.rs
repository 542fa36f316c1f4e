//! In-memory [`ReplicaStore`] for simulations and tests: same ordering and
//! encoding as fjall (records are stored encoded, so decode paths are shared).

use super::codec::{
    Lookup, MAX_VALUE_LEN, decode_record, encode_record, record_key, resolve_record_key,
};
use super::{ReplicaStore, StoreError, UpdateFn, Write};
use crate::core::Object;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A BTreeMap of encoded records.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    decode_errors: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
}

impl MemoryStore {
    fn lookup(&self, records: &BTreeMap<Vec<u8>, Vec<u8>>, key: &[u8], rk: &[u8]) -> Lookup {
        let found = Lookup::of(key, records.get(rk).map(Vec::as_slice));
        if let Lookup::Unreadable(_) = found {
            self.decode_errors.fetch_add(1, Ordering::Relaxed);
        }
        found
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

    fn submit(&self, key: Bytes, f: UpdateFn) {
        let rk = record_key(&key);
        let done = {
            let mut records = self.records.lock();
            let current = match self.lookup(&records, &key, &rk) {
                Lookup::Found(obj) => Some(obj),
                Lookup::Absent | Lookup::Unreadable(_) => None,
                Lookup::Collision => {
                    // Never clobber another key's record (as fjall).
                    let (_, done) = f(None);
                    drop(records);
                    done(Err(StoreError::Rejected(
                        "another key's record has this key's digest".into(),
                    )));
                    return;
                }
            };
            let (write, done) = f(current);
            match write {
                Write::Keep => {}
                Write::Put(obj) => {
                    let raw = encode_record(&key, &obj);
                    if raw.len() > MAX_VALUE_LEN {
                        drop(records);
                        done(Err(StoreError::Rejected(format!(
                            "record of {} bytes is larger than the storage limit",
                            raw.len()
                        ))));
                        return;
                    }
                    records.insert(rk, raw);
                }
                Write::Remove => {
                    records.remove(&rk);
                }
            }
            done
        };
        done(Ok(()));
    }

    fn scan(&self, from_hash: u64, limit: usize) -> Result<Vec<(u64, Bytes, Object)>, StoreError> {
        let records = self.records.lock();
        let mut out = Vec::new();
        for (rk, raw) in records.range(from_hash.to_be_bytes().to_vec()..) {
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
        self.records.lock().len() as u64
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.records.lock().clear();
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }
}
