//! The on-disk replica store: one fjall keyspace, one record per key.
//!
//! Record key = 8-byte big-endian ring hash ++ user key, so a ring partition
//! is one contiguous range on disk and SCAN can resume from a hash. Record
//! value = [`super::codec::encode_object`] (all siblings, their dots, expiry).
//!
//! fjall calls block, so writes go to one writer thread that drains every
//! queued request into a single `WriteBatch` (group commit): with
//! `--fsync always` concurrent writers share one fdatasync. Reads hit the
//! memtable / block cache and are served on the caller's thread.

use super::codec::{decode_object, encode_object, record_key, split_record_key};
use super::{Completion, FsyncPolicy, ReplicaStore, StoreError, UpdateFn, Write};
use crate::core::Object;
use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most write requests folded into one batch; bounds the latency a single
/// commit adds to the first request in it.
const MAX_GROUP: usize = 4096;

enum WriteOp {
    Update(Bytes, UpdateFn),
    Clear(oneshot::Sender<Result<(), StoreError>>),
}

/// fjall-backed [`ReplicaStore`].
pub struct FjallStore {
    inner: Arc<Inner>,
    writer: mpsc::UnboundedSender<WriteOp>,
}

struct Inner {
    db: Database,
    data: Keyspace,
    decode_errors: AtomicU64,
    closed: AtomicBool,
}

impl FjallStore {
    /// Opens (or creates) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path, fsync: FsyncPolicy) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Engine(format!("cannot create {}: {e}", dir.display())))?;
        let db = Database::builder(dir.join("fjall"))
            .open()
            .map_err(engine)?;
        let data = db
            .keyspace("data", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let inner = Arc::new(Inner {
            db,
            data,
            decode_errors: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_inner = inner.clone();
        std::thread::Builder::new()
            .name("dynkv-writer".into())
            .spawn(move || writer_loop(&writer_inner, rx, fsync))
            .map_err(|e| StoreError::Engine(format!("cannot start writer thread: {e}")))?;
        if fsync == FsyncPolicy::Everysec {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name("dynkv-fsync".into())
                .spawn(move || everysec_loop(weak))
                .map_err(|e| StoreError::Engine(format!("cannot start fsync thread: {e}")))?;
        }
        Ok(Self { inner, writer: tx })
    }
}

impl FjallStore {
    /// The hint store sharing this database (hints survive restarts).
    pub fn hints(&self, fsync: FsyncPolicy) -> Result<super::fjall_hints::FjallHints, StoreError> {
        super::fjall_hints::FjallHints::open(self.inner.db.clone(), fsync == FsyncPolicy::Always)
    }
}

impl Inner {
    fn read(&self, rk: &[u8]) -> Result<Option<Object>, StoreError> {
        let Some(raw) = self.data.get(rk).map_err(engine)? else {
            return Ok(None);
        };
        match decode_object(&raw) {
            Ok(obj) => Ok(Some(obj)),
            Err(e) => {
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
                let key = rk.get(8..).unwrap_or_default();
                tracing::error!(key = %String::from_utf8_lossy(key), "unreadable record: {e}");
                Ok(None)
            }
        }
    }
}

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// The single writer: applies queued updates in order against the latest
/// state (committed records overlaid with this group's own writes), commits
/// the group as one batch, then completes every update in it.
fn writer_loop(inner: &Inner, mut rx: mpsc::UnboundedReceiver<WriteOp>, fsync: FsyncPolicy) {
    let mut overlay: HashMap<Vec<u8>, Option<Object>> = HashMap::new();
    let mut completions: Vec<Completion> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        let mut batch = inner.db.batch();
        let mut taken = 0;
        while let Some(op) = next.take() {
            taken += 1;
            match op {
                WriteOp::Update(key, f) => {
                    let rk = record_key(&key);
                    let current = match overlay.get(&rk) {
                        Some(obj) => Ok(obj.clone()),
                        None => inner.read(&rk),
                    };
                    let current = match current {
                        Ok(c) => c,
                        Err(e) => {
                            // Unreadable engine state: fail this update alone.
                            let (_, done) = f(None);
                            done(Err(e));
                            continue;
                        }
                    };
                    let (write, done) = f(current);
                    match write {
                        Write::Keep => {}
                        Write::Put(obj) => {
                            batch.insert(&inner.data, rk.clone(), encode_object(&obj));
                            overlay.insert(rk, Some(obj));
                        }
                        Write::Remove => {
                            batch.remove(&inner.data, rk.clone());
                            overlay.insert(rk, None);
                        }
                    }
                    completions.push(done);
                }
                WriteOp::Clear(reply) => {
                    // Commit what came before, so the clear is ordered after it.
                    let pending = std::mem::replace(&mut batch, inner.db.batch());
                    let result = commit(inner, pending, fsync)
                        .and_then(|()| inner.data.clear().map_err(engine));
                    overlay.clear();
                    for done in completions.drain(..) {
                        done(result.clone());
                    }
                    let _ = reply.send(result);
                }
            }
            if taken < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        let result = commit(inner, batch, fsync);
        overlay.clear();
        for done in completions.drain(..) {
            done(result.clone());
        }
    }
    inner.closed.store(true, Ordering::SeqCst);
}

fn commit(
    inner: &Inner,
    batch: fjall::OwnedWriteBatch,
    fsync: FsyncPolicy,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    batch.commit().map_err(engine)?;
    if fsync == FsyncPolicy::Always {
        inner.db.persist(PersistMode::SyncData).map_err(engine)?;
    }
    Ok(())
}

fn everysec_loop(inner: std::sync::Weak<Inner>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.db.persist(PersistMode::SyncData) {
            tracing::error!("background fsync failed: {e}");
        }
    }
}

impl ReplicaStore for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Object>, StoreError> {
        self.inner.read(&record_key(key))
    }

    fn submit(&self, key: Bytes, f: UpdateFn) {
        if let Err(mpsc::error::SendError(WriteOp::Update(_, f))) =
            self.writer.send(WriteOp::Update(key, f))
        {
            let (_, done) = f(None);
            done(Err(StoreError::Closed));
        }
    }

    fn scan(&self, from_hash: u64, limit: usize) -> Result<Vec<(u64, Bytes, Object)>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for guard in self.inner.data.range(from_hash.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (rk, raw) = guard.into_inner().map_err(engine)?;
            let Some((hash, key)) = split_record_key(&rk) else {
                self.inner.decode_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match decode_object(&raw) {
                Ok(obj) => out.push((hash, key, obj)),
                Err(e) => {
                    self.inner.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(key = %String::from_utf8_lossy(&key), "unreadable record: {e}");
                }
            }
        }
        Ok(out)
    }

    fn approximate_len(&self) -> u64 {
        self.inner.data.approximate_len() as u64
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(WriteOp::Clear(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn sync(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.db.persist(PersistMode::SyncAll).map_err(engine)
    }

    fn decode_errors(&self) -> u64 {
        self.inner.decode_errors.load(Ordering::Relaxed)
    }
}
