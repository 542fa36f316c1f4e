//! In-memory [`ReplicaStore`] for simulations and tests: same ordering and
//! encoding as fjall (records are stored encoded, so decode paths are shared).

use super::codec::{decode_object, encode_object, split_record_key};
use super::{ReplicaStore, StoreError, UpdateFn, Write, codec::record_key};
use crate::core::Object;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// A BTreeMap of encoded records.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// What survives a crash (None: everything does).
    durable: Option<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
    always: bool,
    decode_errors: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose writes become durable as `fsync` says.
    pub fn new_with(fsync: super::FsyncPolicy) -> Self {
        Self {
            durable: Some(Mutex::new(BTreeMap::new())),
            always: fsync == super::FsyncPolicy::Always,
            ..Self::default()
        }
    }

    /// A crash: everything written since the last durable point is lost.
    pub fn crash(&self) {
        if let Some(durable) = &self.durable {
            *self.records.lock() = durable.lock().clone();
        }
    }

    /// Overwrites a record with raw bytes (tests of unreadable records).
    pub fn put_raw(&self, key: &[u8], raw: Vec<u8>) {
        self.records.lock().insert(record_key(key), raw);
    }
}

impl ReplicaStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError> {
        let records = self.records.lock();
        let Some(raw) = records.get(&record_key(key)) else {
            return Ok(None);
        };
        match decode_object(raw) {
            Ok(obj) => Ok(Some(obj)),
            Err(_) => {
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    fn submit(&self, key: Bytes, f: UpdateFn) {
        let rk = record_key(&key);
        let done = {
            let mut records = self.records.lock();
            let current = records.get(&rk).and_then(|raw| match decode_object(raw) {
                Ok(obj) => Some(obj),
                Err(_) => {
                    self.decode_errors.fetch_add(1, Ordering::Relaxed);
                    None
                }
            });
            let (write, done) = f(current);
            match write {
                Write::Keep => {}
                Write::Put(obj) => {
                    records.insert(rk.clone(), encode_object(&obj));
                }
                Write::Remove => {
                    records.remove(&rk);
                }
            }
            if let (true, Some(durable)) = (self.always, &self.durable) {
                let mut durable = durable.lock();
                match records.get(&rk) {
                    Some(raw) => durable.insert(rk, raw.clone()),
                    None => durable.remove(&rk),
                };
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
            match (split_record_key(rk), decode_object(raw)) {
                (Some((hash, key)), Ok(obj)) => out.push((hash, key, obj)),
                _ => {
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
        if let Some(durable) = &self.durable {
            *durable.lock() = self.records.lock().clone();
        }
        Ok(())
    }

    fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }
}
