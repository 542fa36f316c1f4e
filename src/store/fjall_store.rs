//! The on-disk replica store: one fjall keyspace, one record per key.
//!
//! Record key = 8-byte big-endian ring hash ++ the key's stored form (see
//! [`super::codec`]: long keys are cut and digested), so a ring partition
//! is one contiguous range on disk and SCAN can resume from a hash. Record
//! value = [`super::codec::encode_record`] (all siblings, their dots,
//! expiry, and the whole key when it is long).
//!
//! fjall calls block, so writes go to one writer thread that drains every
//! queued request into a single `WriteBatch` (group commit): with
//! `--fsync always` concurrent writers share one fdatasync. Its queue is
//! bounded ([`WRITER_QUEUE`]): producers wait for room. A cheap update
//! ([`ReplicaStore::submit_quick`], a plain SET) skips the queue when it is
//! empty and the writer idle, and commits on the caller's thread: the
//! hand-off to the writer thread and back (two thread wake-ups) cost more
//! than the write itself. Not under `--fsync always`, whose fdatasync must
//! not block the caller's thread and wants sharing. Point reads hit the
//! memtable / block cache and are served on the caller's thread; scans and
//! fsyncs run on tokio's blocking pool.

use super::change_feed::ChangeFeed;
use super::codec::{
    Lookup, MAX_VALUE_LEN, decode_record, encode_record, record_key, resolve_record_key,
};
use super::fjall_hints::FjallHints;
use super::hints::HintLimits;
use super::{Completion, FsyncPolicy, ReplicaStore, StoreError, UpdateFn, Write, blocking};
use crate::core::Object;
use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most write requests folded into one batch; bounds the latency a single
/// commit adds to the first request in it.
const MAX_GROUP: usize = 4096;

/// Updates that may wait for the writer, at most. With pipelining clients
/// the writer is the bottleneck, and an unbounded queue would turn a
/// sustained overload into unbounded memory; 16k updates is several full
/// groups (`MAX_GROUP`), enough to keep the writer busy while producers
/// wait, and a few MiB of queued values for typical sizes.
pub const WRITER_QUEUE: usize = 16 * 1024;

enum WriteOp {
    /// The key, its record key (computed by the caller: the ring hash in
    /// it is an MD5, work the single writer need not do) and the update.
    Update(Bytes, Vec<u8>, UpdateFn),
    Clear(oneshot::Sender<Result<(), StoreError>>),
}

/// fjall-backed [`ReplicaStore`].
pub struct FjallStore {
    inner: Arc<Inner>,
    writer: mpsc::Sender<WriteOp>,
    fsync: FsyncPolicy,
}

struct Inner {
    db: Database,
    data: Keyspace,
    decode_errors: AtomicU64,
    closed: AtomicBool,
    changes: ChangeFeed,
    /// Whoever builds and commits a group holds this: the writer thread,
    /// or a caller committing its quick update itself.
    group: Mutex<GroupState>,
    /// Updates sent to the writer and not yet committed. A quick update
    /// runs on its caller's thread only when this is 0 under `group`, so
    /// it can never overtake an update queued before it.
    queued: AtomicUsize,
}

/// The scratch space of the group being built, reused between groups.
#[derive(Default)]
struct GroupState {
    overlay: Overlay,
    completions: Vec<Completion>,
    staged: Staged,
}

impl FjallStore {
    /// Opens (or creates) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path, fsync: FsyncPolicy) -> Result<Self, StoreError> {
        Self::open_with_cached_files(
            dir,
            fsync,
            crate::fdlimit::MAX_STORAGE_CACHED_FILES as usize,
        )
    }

    /// [`FjallStore::open`], keeping at most `cached_files` table files
    /// open: the engine's default (900) is more than a small descriptor
    /// limit holds, and running out inside the engine stops all writes.
    pub fn open_with_cached_files(
        dir: &Path,
        fsync: FsyncPolicy,
        cached_files: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Engine(format!("cannot create {}: {e}", dir.display())))?;
        let cached_files = cached_files.max(crate::fdlimit::MIN_STORAGE_CACHED_FILES as usize);
        let db = Database::builder(dir.join("fjall"))
            .max_cached_files(Some(cached_files))
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
            changes: ChangeFeed::default(),
            group: Mutex::new(GroupState::default()),
            queued: AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
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
        Ok(Self {
            inner,
            writer: tx,
            fsync,
        })
    }
}

impl FjallStore {
    /// The hint store sharing this database (hints survive restarts and
    /// are fsynced before acks under `--fsync always`, like data). Counts
    /// the hints held: a blocking scan, meant for startup.
    pub fn hints(&self, limits: HintLimits) -> Result<FjallHints, StoreError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        FjallHints::open(
            self.inner.db.clone(),
            self.fsync == FsyncPolicy::Always,
            limits,
            now_ms,
        )
    }
}

impl Inner {
    /// Reads and checks the record of `key` at record key `rk`.
    fn lookup(&self, key: &[u8], rk: &[u8]) -> Result<Lookup, StoreError> {
        let raw = self.data.get(rk).map_err(engine)?;
        let found = Lookup::of(key, raw.as_deref());
        match &found {
            Lookup::Unreadable(e) => {
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(key = %printable(key), "unreadable record: {e}");
            }
            Lookup::Collision => {
                tracing::error!(key = %printable(key), "another key's record has this key's digest");
            }
            Lookup::Absent | Lookup::Found(_) => {}
        }
        Ok(found)
    }
}

impl Inner {
    /// Blocking body of [`ReplicaStore::scan`].
    fn scan(&self, from_hash: u64, limit: usize) -> Result<Vec<(u64, Bytes, Object)>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024));
        for guard in self.data.range(from_hash.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (rk, raw) = guard.into_inner().map_err(engine)?;
            let record = decode_record(&raw).map_err(|e| e.to_string());
            let resolved = record.and_then(|(full_key, obj)| {
                let (hash, key) = resolve_record_key(&rk, full_key)
                    .ok_or("record key and stored key disagree")?;
                Ok((hash, key, obj))
            });
            match resolved {
                Ok(entry) => out.push(entry),
                Err(e) => {
                    self.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(key = %printable(rk.get(8..).unwrap_or_default()), "unreadable record: {e}");
                }
            }
        }
        Ok(out)
    }
}

/// A key for a log line: lossy text, cut so a huge key cannot flood the log.
fn printable(key: &[u8]) -> String {
    let shown = key.get(..128).unwrap_or(key);
    let text = String::from_utf8_lossy(shown);
    if shown.len() < key.len() {
        format!("{text}... ({} bytes)", key.len())
    } else {
        text.into_owned()
    }
}

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// Records written by the group being built, by record key, with the key
/// that wrote them (a long key's record key is shared by digest collisions).
type Overlay = HashMap<Vec<u8>, (Bytes, Option<Object>)>;

/// The group's writes for the Merkle update queue, in staging order.
type Staged = Vec<(Bytes, Option<crate::core::merkle::Hash>)>;

/// The single writer: applies queued updates in order against the latest
/// state (committed records overlaid with this group's own writes), commits
/// the group as one batch, then completes every update in it.
fn writer_loop(inner: &Inner, mut rx: mpsc::Receiver<WriteOp>, fsync: FsyncPolicy) {
    while let Some(first) = rx.blocking_recv() {
        let mut state = lock_group(inner);
        let GroupState {
            overlay,
            completions,
            staged,
        } = &mut *state;
        let mut next = Some(first);
        let mut batch = inner.db.batch();
        let mut taken = 0;
        while let Some(op) = next.take() {
            taken += 1;
            match op {
                WriteOp::Update(key, rk, f) => {
                    if let Some(done) = stage(inner, overlay, &mut batch, staged, key, rk, f) {
                        completions.push(done);
                    }
                }
                WriteOp::Clear(reply) => {
                    // Commit what came before, so the clear is ordered after it.
                    let pending = std::mem::replace(&mut batch, inner.db.batch());
                    let result = commit(inner, pending, fsync);
                    publish(inner, staged, &result);
                    let result = result.and_then(|()| inner.data.clear().map_err(engine));
                    // Even a failed clear may have removed some records.
                    inner.changes.cleared();
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
        publish(inner, staged, &result);
        overlay.clear();
        let done = std::mem::take(completions);
        inner.queued.fetch_sub(taken, Ordering::SeqCst);
        drop(state);
        // Completions wake callers: run them after letting go of the group,
        // so a woken caller may commit its next quick update at once.
        for done in done {
            done(result.clone());
        }
    }
    inner.closed.store(true, Ordering::SeqCst);
}

/// The group scratch space; a panic elsewhere while holding it leaves
/// nothing half-built that matters (every group starts by clearing it).
fn lock_group(inner: &Inner) -> std::sync::MutexGuard<'_, GroupState> {
    inner.group.lock().unwrap_or_else(|poisoned| {
        let mut state = poisoned.into_inner();
        state.overlay.clear();
        state.staged.clear();
        state
    })
}

impl Inner {
    /// Runs `f` as a group of its own on the caller's thread when no update
    /// is queued ahead of it and no group is being built; hands `f` back
    /// otherwise.
    fn try_commit_here(&self, key: Bytes, f: UpdateFn, fsync: FsyncPolicy) -> Option<UpdateFn> {
        if self.queued.load(Ordering::SeqCst) != 0 {
            return Some(f);
        }
        let mut state = match self.group.try_lock() {
            Ok(state) => state,
            Err(_) => return Some(f),
        };
        // Checked again under the group: the writer lowers it only while
        // holding the group, after committing.
        if self.queued.load(Ordering::SeqCst) != 0 {
            return Some(f);
        }
        let GroupState {
            overlay, staged, ..
        } = &mut *state;
        let mut batch = self.db.batch();
        let rk = record_key(&key);
        let done = stage(self, overlay, &mut batch, staged, key, rk, f);
        let result = commit(self, batch, fsync);
        publish(self, staged, &result);
        overlay.clear();
        drop(state);
        if let Some(done) = done {
            done(result);
        }
        None
    }
}

/// Hands a committed group's writes to the Merkle update queue (a failed
/// commit wrote nothing).
fn publish(inner: &Inner, staged: &mut Staged, result: &Result<(), StoreError>) {
    if result.is_ok() {
        inner.changes.push(staged.drain(..));
    } else {
        staged.clear();
    }
}

/// Runs one update and adds its write to `batch`. Returns its completion,
/// to run after the commit, or `None` when it already failed alone.
fn stage(
    inner: &Inner,
    overlay: &mut Overlay,
    batch: &mut fjall::OwnedWriteBatch,
    staged: &mut Staged,
    key: Bytes,
    rk: Vec<u8>,
    f: UpdateFn,
) -> Option<Completion> {
    let current = match overlay.get(&rk) {
        Some((owner, obj)) if *owner == key => Ok(obj.clone()),
        Some(_) => Err(collision()),
        None => match inner.lookup(&key, &rk) {
            Ok(Lookup::Found(obj)) => Ok(Some(obj)),
            // Overwriting an unreadable record is how it gets repaired.
            Ok(Lookup::Absent | Lookup::Unreadable(_)) => Ok(None),
            // Never clobber another key's record.
            Ok(Lookup::Collision) => Err(collision()),
            Err(e) => Err(e),
        },
    };
    let current = match current {
        Ok(current) => current,
        Err(e) => {
            let (_, done) = f(None);
            done(Err(e));
            return None;
        }
    };
    let (write, done) = f(current);
    match write {
        Write::Keep => {}
        Write::Put(obj) => {
            let raw = encode_record(&key, &obj);
            if raw.len() > MAX_VALUE_LEN {
                // fjall panics on such a value (and then refuses every
                // later write): refuse this one alone instead.
                done(Err(too_large(raw.len())));
                return None;
            }
            if inner.changes.is_enabled() {
                staged.push((key.clone(), Some(crate::core::merkle::record_digest(&raw))));
            }
            batch.insert(&inner.data, rk.clone(), raw);
            overlay.insert(rk, (key, Some(obj)));
        }
        Write::Remove => {
            if inner.changes.is_enabled() {
                staged.push((key.clone(), None));
            }
            batch.remove(&inner.data, rk.clone());
            overlay.insert(rk, (key, None));
        }
    }
    Some(done)
}

fn collision() -> StoreError {
    StoreError::Rejected("another key's record has this key's digest".into())
}

fn too_large(len: usize) -> StoreError {
    StoreError::Rejected(format!(
        "record of {len} bytes is larger than the storage limit of {MAX_VALUE_LEN} bytes"
    ))
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
        match self.inner.lookup(key, &record_key(key))? {
            Lookup::Found(obj) => Ok(Some(obj)),
            Lookup::Absent | Lookup::Unreadable(_) | Lookup::Collision => Ok(None),
        }
    }

    async fn submit(&self, key: Bytes, f: UpdateFn) {
        self.inner.queued.fetch_add(1, Ordering::SeqCst);
        let rk = record_key(&key);
        if let Err(mpsc::error::SendError(op)) = self.writer.send(WriteOp::Update(key, rk, f)).await
        {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
            if let WriteOp::Update(_, _, f) = op {
                let (_, done) = f(None);
                done(Err(StoreError::Closed));
            }
        }
    }

    async fn submit_quick(&self, key: Bytes, f: UpdateFn) {
        if self.fsync == FsyncPolicy::Always || self.inner.closed.load(Ordering::SeqCst) {
            return self.submit(key, f).await;
        }
        if let Some(f) = self.inner.try_commit_here(key.clone(), f, self.fsync) {
            self.submit(key, f).await;
        }
    }

    async fn scan(
        &self,
        from_hash: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Bytes, Object)>, StoreError> {
        let inner = self.inner.clone();
        blocking(move || inner.scan(from_hash, limit)).await
    }

    fn approximate_len(&self) -> u64 {
        self.inner.data.approximate_len() as u64
    }

    fn queue_depth(&self) -> u64 {
        // Free permits are the queue's room; waiting producers are not counted.
        (self.writer.max_capacity() - self.writer.capacity()) as u64
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner.queued.fetch_add(1, Ordering::SeqCst);
        if self.writer.send(WriteOp::Clear(tx)).await.is_err() {
            self.inner.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Closed);
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn sync(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let inner = self.inner.clone();
        blocking(move || inner.db.persist(PersistMode::SyncAll).map_err(engine)).await
    }

    fn decode_errors(&self) -> u64 {
        self.inner.decode_errors.load(Ordering::Relaxed)
    }

    fn changes(&self) -> &ChangeFeed {
        &self.inner.changes
    }
}
