//! [`LocalKv`]: this node's own replica store as the cluster uses it — local
//! reads, merges, coordinated versions, key counts and expiry sweeping.
//!
//! Every write is an update run by the store's single writer, so
//! read-modify-write commands (INCR, APPEND, SET NX, ...) are atomic per key
//! without locks, and writes of one hot key still share a group commit.

use super::clock::NodeClock;
use super::key_counts::{KeyCounts, db_index};
use crate::core::crdt::Authority;
use crate::core::gc;
use crate::core::{MAX_COUNTER, NodeId, Object, Payload, VersionVector, WriteContext};
use crate::kv::{AdminValue, Change, KvError, LiveValue, QueuedWrite, ScanPage};
use crate::store::{ReplicaStore, StoreError, Write, queue, queue_quick, update};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `--tombstone-grace` unless set: how long a tombstone is kept at least
/// before it may be purged, so DYN.GET can still show the deletion and
/// hints and slow messages carrying older versions arrive first.
pub const DEFAULT_TOMBSTONE_GRACE_MS: u64 = crate::config::DEFAULT_TOMBSTONE_GRACE_SECS * 1000;

/// Records the expiry sweeper examines per tick.
const SWEEP_BATCH: usize = 1_000;

/// Wall-clock milliseconds since the epoch (process start-up stamps only;
/// versions and expiries use the node's hybrid logical clock).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A single node serving every key from its own store.
pub struct LocalKv<S> {
    store: Arc<S>,
    /// Issues this node's dots.
    dots: Arc<DotIssuer>,
    clock: Arc<NodeClock>,
    /// Per database: keys whose winning version is a value
    /// (expired-but-unswept included, as Redis counts them in DBSIZE), and
    /// of those the keys with an expiry.
    counts: Arc<KeyCounts>,
    keys_collected: Arc<AtomicU64>,
    /// Of those, keys whose winning version was a value that expired.
    keys_expired: Arc<AtomicU64>,
    /// `--tombstone-grace` in ms.
    grace_ms: AtomicU64,
    /// Records holding only tombstones, as of the last finished sweep pass
    /// (a pass-wide count costs nothing extra: the sweeper reads them all).
    tombstones: AtomicU64,
    /// The count of the pass under way.
    pass_tombstones: AtomicU64,
    /// Tombstone records deleted here (purge, or a lone node's sweep).
    tombstones_purged: Arc<AtomicU64>,
}

/// How a sweep treats dead data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepMode {
    /// This node is every replica of every key: expired values go at once
    /// and tombstones after the grace, nobody can hand them back.
    Alone,
    /// Other replicas exist: expired values become tombstones, and
    /// tombstones past the grace are handed to the cluster purge.
    Replica,
}

/// What one sweep call found.
#[derive(Debug, Default)]
pub struct SweepPage {
    /// Cursor for the next call (0: the pass is finished).
    pub next: u64,
    /// Records holding only tombstones older than the grace (Replica mode).
    pub purgeable: Vec<(Bytes, Object)>,
    /// Keys whose value this call found expired and took out (keyspace
    /// notifications' `expired` event).
    pub expired: Vec<Bytes>,
}

/// Dots handed out between two durable lease records: a crash can skip at
/// most this many counter values, and the lease costs one fsync per block.
pub const DOT_LEASE_BLOCK: u64 = 10_000;

/// Persists a new lease end durably before any dot below it is used.
pub type LeaseWriter = Arc<dyn Fn(u64) -> std::io::Result<()> + Send + Sync>;

/// Stamps new versions with this node's dots.
///
/// The actor is the node name plus a random id minted when its data dir was
/// created, so a node restarted on an empty disk under the same name is a
/// new actor and can never reissue a dot, while ordinary restarts keep one
/// version-vector entry per node. One counter serves all keys and is
/// leased in blocks (riak_kv's `counter_lease_size`): the end of the current
/// block is made durable before a dot in it is used, and a restart resumes
/// after it, so a crash that loses unsynced writes cannot make the node hand
/// out a dot twice.
pub struct DotIssuer {
    actor: NodeId,
    state: parking_lot::Mutex<Lease>,
    persist: LeaseWriter,
}

struct Lease {
    last: u64,
    leased_to: u64,
}

impl DotIssuer {
    /// An issuer for `actor` resuming after `leased_to` (the durable lease
    /// end read at start, 0 on a new disk).
    pub fn new(actor: NodeId, leased_to: u64, persist: LeaseWriter) -> Self {
        Self {
            actor,
            state: parking_lot::Mutex::new(Lease {
                last: leased_to,
                leased_to,
            }),
            persist,
        }
    }

    /// The actor named in this node's dots.
    pub fn actor(&self) -> &NodeId {
        &self.actor
    }

    /// A counter never issued before and above `seen`, the highest counter
    /// of this actor the write's object and context have seen.
    ///
    /// `seen` may come from a client or a peer, so it is checked, not
    /// trusted: a counter above the durable lease was never issued by this
    /// actor (a forged or corrupt context), and building on it would make
    /// this node stamp later writes with dots everyone has already "seen",
    /// hiding them. And no arithmetic here may wrap.
    fn issue(&self, seen: u64) -> Result<u64, KvError> {
        let mut lease = self.state.lock();
        if seen > lease.leased_to {
            return Err(KvError::BadVersion(format!(
                "the context names version {seen} of {}, which was never issued: it was not returned by this cluster",
                self.actor
            )));
        }
        let exhausted = || {
            KvError::BadVersion(format!(
                "the version counter of {} is exhausted; restart the node with a new data dir to get a new actor",
                self.actor
            ))
        };
        // Counters stop at MAX_COUNTER: a larger one would make an object
        // that no node decodes.
        let next = lease
            .last
            .max(seen)
            .checked_add(1)
            .filter(|next| *next <= MAX_COUNTER)
            .ok_or_else(exhausted)?;
        if next > lease.leased_to {
            let to = next.saturating_add(DOT_LEASE_BLOCK).min(MAX_COUNTER);
            (self.persist)(to).map_err(|e| KvError::Storage(format!("cannot lease dots: {e}")))?;
            lease.leased_to = to;
        }
        lease.last = next;
        Ok(next)
    }

    /// Applies a write to `obj`, this node's stored copy, with a fresh dot.
    pub fn stamp(
        &self,
        obj: &mut Object,
        context: &VersionVector,
        payload: Payload,
        now: u64,
    ) -> Result<(), KvError> {
        self.stamp_as(obj, context, payload, now, Authority::Owner)
    }

    /// [`DotIssuer::stamp`] on a copy that is this node's own
    /// ([`Authority::Owner`]) or only a base it read (`Detached`).
    pub fn stamp_as(
        &self,
        obj: &mut Object,
        context: &VersionVector,
        payload: Payload,
        now: u64,
        authority: Authority,
    ) -> Result<(), KvError> {
        let seen = obj.context.get(&self.actor).max(context.get(&self.actor));
        let counter = self.issue(seen)?;
        obj.update_as(context, &self.actor, payload, now, counter, authority);
        Ok(())
    }
}

/// Whether `obj` counts as a key for DBSIZE.
fn counts_as_key(obj: &Object) -> bool {
    // A deleted collection is kept as an empty one (it remembers what it
    // removed); it is not a key.
    obj.winner().is_some_and(|s| match &s.payload {
        Payload::Value { .. } | Payload::Flagged { .. } | Payload::Item { .. } => true,
        Payload::Typed { value, .. } => !value.is_empty_collection(),
        Payload::Tombstone => false,
    })
}

/// Whether `obj` counts as a key with an expiry (INFO keyspace).
fn has_expiry(obj: &Object) -> bool {
    obj.winner()
        .is_some_and(|s| s.payload.expires_at_ms().is_some())
}

/// Writes carrying at most this many value bytes may be committed on the
/// caller's thread (see [`ReplicaStore::submit_quick`]); a bigger one, such
/// as a whole large collection, goes to the writer thread so it cannot
/// hold up the connections sharing the caller's thread.
const QUICK_WRITE_BYTES: usize = 16 * 1024;

/// Whether a write of `payloads` is small enough to be quick.
fn is_quick<'a>(payloads: impl IntoIterator<Item = &'a Payload>) -> bool {
    payloads.into_iter().map(Payload::approx_len).sum::<usize>() <= QUICK_WRITE_BYTES
}

fn storage(e: StoreError) -> KvError {
    KvError::Storage(e.to_string())
}

impl<S: ReplicaStore> LocalKv<S> {
    /// Serves `store`, stamping with `dots` and `clock`; counts the keys
    /// already stored.
    pub async fn new(
        store: Arc<S>,
        dots: DotIssuer,
        clock: Arc<NodeClock>,
    ) -> Result<Self, KvError> {
        let counts = KeyCounts::default();
        let mut cursor = 0u64;
        loop {
            let page = store.scan(cursor, 10_000).await.map_err(storage)?;
            let Some((last, _, _)) = page.last() else {
                break;
            };
            let next = last.checked_add(1);
            for (_, key, obj) in &page {
                counts.add_live(db_index(key), counts_as_key(obj) as i64);
                counts.add_expiring(db_index(key), has_expiry(obj) as i64);
            }
            match next {
                Some(n) => cursor = n,
                None => break,
            }
        }
        Ok(Self {
            store,
            dots: Arc::new(dots),
            clock,
            counts: Arc::new(counts),
            keys_collected: Arc::new(AtomicU64::new(0)),
            keys_expired: Arc::new(AtomicU64::new(0)),
            grace_ms: AtomicU64::new(DEFAULT_TOMBSTONE_GRACE_MS),
            tombstones: AtomicU64::new(0),
            pass_tombstones: AtomicU64::new(0),
            tombstones_purged: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The node's clock.
    pub fn clock(&self) -> &Arc<NodeClock> {
        &self.clock
    }

    /// The dot issuer.
    pub fn dots(&self) -> &Arc<DotIssuer> {
        &self.dots
    }

    /// The store this node writes to.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Applies `decide` to the current object; keeps the key count right.
    async fn apply<T, F>(&self, key: Bytes, decide: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> (Option<Object>, T) + Send + 'static,
    {
        self.apply_as(key, false, decide).await
    }

    /// [`LocalKv::apply`]; `quick` as in [`LocalKv::apply_queued_as`].
    async fn apply_as<T, F>(&self, key: Bytes, quick: bool, decide: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> (Option<Object>, T) + Send + 'static,
    {
        self.apply_queued_as(key, quick, decide)
            .await
            .await
            .map_err(storage)
    }

    /// [`LocalKv::apply`] split in two: resolves once the update is queued
    /// on the writer (waiting for room), returning the wait for its commit.
    async fn apply_queued<T, F>(&self, key: Bytes, decide: F) -> crate::store::Committed<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> (Option<Object>, T) + Send + 'static,
    {
        self.apply_queued_as(key, false, decide).await
    }

    /// [`LocalKv::apply_queued`]; `quick` marks an update cheap enough to
    /// commit on the caller's thread (see [`ReplicaStore::submit_quick`]).
    async fn apply_queued_as<T, F>(
        &self,
        key: Bytes,
        quick: bool,
        decide: F,
    ) -> crate::store::Committed<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> (Option<Object>, T) + Send + 'static,
    {
        let counts = self.counts.clone();
        let db = db_index(&key);
        let update = move |current: Option<Object>| {
            let before = current.as_ref().is_some_and(counts_as_key);
            let before_ttl = current.as_ref().is_some_and(has_expiry);
            let (next, value) = decide(current.unwrap_or_default());
            match next {
                None => (Write::Keep, value),
                Some(obj) => {
                    counts.add_live(db, counts_as_key(&obj) as i64 - before as i64);
                    counts.add_expiring(db, has_expiry(&obj) as i64 - before_ttl as i64);
                    (Write::Put(obj), value)
                }
            }
        };
        if quick {
            queue_quick(&*self.store, key, update).await
        } else {
            queue(&*self.store, key, update).await
        }
    }

    /// A plain SET, resolved once queued (see
    /// [`crate::kv::Kv::overwrite_queued`]): the connection queues the SETs
    /// of a pipeline in order without waiting for each commit.
    /// `quick`: nothing follows it, so it may commit on the caller's
    /// thread (see [`ReplicaStore::submit_quick`]).
    pub async fn overwrite_now(
        &self,
        key: Bytes,
        change: Change,
        quick: bool,
    ) -> Option<QueuedWrite> {
        let payload = change.into_payload()?;
        let quick = quick && is_quick([&payload]);
        let dots = self.dots.clone();
        let now = self.clock.now_ms();
        let committed = self
            .apply_queued_as(key, quick, move |mut obj| {
                let seen = obj.context.clone();
                match dots.stamp(&mut obj, &seen, payload, now) {
                    Ok(()) => (Some(obj), Ok(())),
                    Err(e) => (None, Err(e)),
                }
            })
            .await;
        Some(Box::pin(async move { committed.await.map_err(storage)? }))
    }

    /// This node's copy of `key` (empty if none).
    pub fn local_get(&self, key: &[u8]) -> Result<Object, KvError> {
        Ok(self.store.get(key).map_err(storage)?.unwrap_or_default())
    }

    /// Merges a replica's copy into ours (replication, read repair, hint
    /// delivery). Returns false when we already had everything in it.
    pub async fn merge_local(&self, key: Bytes, incoming: Object) -> Result<bool, KvError> {
        self.clock.observe(incoming.max_timestamp());
        let quick = is_quick(incoming.siblings.iter().map(|s| &s.payload));
        self.apply_as(key, quick, move |mut obj| {
            if obj.descends(&incoming) {
                return (None, false);
            }
            obj.merge(&incoming);
            (Some(obj), true)
        })
        .await
    }

    /// Physically removes this node's copy of `key` (its partition moved to
    /// other nodes); keeps the key counts right.
    pub async fn remove_local(&self, key: Bytes) -> Result<(), KvError> {
        let counts = self.counts.clone();
        let db = db_index(&key);
        update(&*self.store, key, move |current| match current {
            Some(obj) => {
                if counts_as_key(&obj) {
                    counts.add_live(db, -1);
                }
                if has_expiry(&obj) {
                    counts.add_expiring(db, -1);
                }
                (Write::Remove, ())
            }
            None => (Write::Keep, ()),
        })
        .await
        .map_err(storage)
    }

    /// Creates a new version here as coordinator and returns the whole
    /// object to replicate.
    pub async fn coordinate_local(
        &self,
        key: Bytes,
        context: WriteContext,
        payload: Payload,
    ) -> Result<Object, KvError> {
        let dots = self.dots.clone();
        let now = self.clock.now_ms();
        let quick = is_quick([&payload]);
        self.apply_as(key, quick, move |mut obj| {
            let ctx = match context {
                WriteContext::Client(ctx) => ctx,
                WriteContext::CoordinatorLatest => obj.context.clone(),
            };
            match dots.stamp(&mut obj, &ctx, payload, now) {
                Ok(()) => (Some(obj.clone()), Ok(obj)),
                Err(e) => (None, Err(e)),
            }
        })
        .await?
    }

    /// Creates a new version on top of `base` without storing it here: a
    /// coordinator outside the key's preference list keeps it only as hints
    /// (a version in its main store would be found by no read or handoff).
    pub fn coordinate_detached(
        &self,
        mut base: Object,
        context: WriteContext,
        payload: Payload,
    ) -> Result<Object, KvError> {
        let ctx = match context {
            WriteContext::Client(ctx) => ctx,
            WriteContext::CoordinatorLatest => base.context.clone(),
        };
        // The base is what this node read, not its own copy: increments
        // made here are kept one per write (see `crdt::Authority`).
        self.dots.stamp_as(
            &mut base,
            &ctx,
            payload,
            self.clock.now_ms(),
            Authority::Detached,
        )?;
        Ok(base)
    }

    /// Sets `--tombstone-grace`.
    pub fn set_tombstone_grace_ms(&self, ms: u64) {
        self.grace_ms.store(ms, Ordering::Relaxed);
    }

    /// `--tombstone-grace` in ms.
    pub fn tombstone_grace_ms(&self) -> u64 {
        self.grace_ms.load(Ordering::Relaxed)
    }

    /// Sweeps `SWEEP_BATCH` records starting at `cursor` (see [`SweepMode`]).
    pub async fn sweep(&self, cursor: u64, mode: SweepMode) -> SweepPage {
        let now = self.clock.now_ms();
        let grace = self.tombstone_grace_ms();
        let page = match self.store.scan(cursor, SWEEP_BATCH).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!("expiry sweep failed: {e}");
                return SweepPage {
                    next: cursor,
                    ..SweepPage::default()
                };
            }
        };
        let next = match page.last() {
            Some((last, _, _)) if page.len() == SWEEP_BATCH => last.wrapping_add(1),
            _ => 0,
        };
        let mut purgeable = Vec::new();
        let mut expired = Vec::new();
        for (_, key, obj) in page {
            let result = match mode {
                SweepMode::Alone => {
                    self.collect_alone(key.clone(), obj, now, grace)
                        .await
                        .map(|was_live| {
                            if was_live {
                                expired.push(key);
                            }
                        })
                }
                SweepMode::Replica => {
                    self.convert_expired(key, obj, now)
                        .await
                        .map(|(kept, was_live)| {
                            if let Some((key, obj)) = kept {
                                if was_live {
                                    expired.push(key.clone());
                                }
                                if gc::purgeable(&obj, now, grace) {
                                    purgeable.push((key, obj));
                                }
                            }
                        })
                }
            };
            if let Err(e) = result {
                tracing::warn!("expiry sweep failed: {e}");
                break;
            }
        }
        if next == 0 {
            let counted = self.pass_tombstones.swap(0, Ordering::Relaxed);
            self.tombstones.store(counted, Ordering::Relaxed);
            metrics::gauge!("dynkv_tombstones").set(counted as f64);
        }
        SweepPage {
            next,
            purgeable,
            expired,
        }
    }

    /// A lone node's sweep of one record: removed once collectible. True
    /// when what it removed was a live key's expired value.
    async fn collect_alone(
        &self,
        key: Bytes,
        obj: Object,
        now: u64,
        grace: u64,
    ) -> Result<bool, StoreError> {
        if !gc::lone_collectible(&obj, now, grace) {
            if gc::all_tombstones(&obj) {
                self.pass_tombstones.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(false);
        }
        let counts = self.counts.clone();
        let db = db_index(&key);
        let collected = self.keys_collected.clone();
        let expired = self.keys_expired.clone();
        let purged = self.tombstones_purged.clone();
        // Re-checked on the writer: a write may have revived the key.
        update(&*self.store, key, move |current| match current {
            Some(obj) if gc::lone_collectible(&obj, now, grace) => {
                let was_live = counts_as_key(&obj);
                if was_live {
                    // A dead object whose winner is a value: it expired.
                    counts.add_live(db, -1);
                    expired.fetch_add(1, Ordering::Relaxed);
                }
                if has_expiry(&obj) {
                    counts.add_expiring(db, -1);
                }
                if gc::all_tombstones(&obj) {
                    purged.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("dynkv_tombstones_purged_total").increment(1);
                }
                collected.fetch_add(1, Ordering::Relaxed);
                (Write::Remove, was_live)
            }
            _ => (Write::Keep, false),
        })
        .await
    }

    /// A replica's sweep of one record: expired values become tombstones
    /// (never removed here: only the cluster purge removes dead data).
    /// Returns the record as it now stands, and whether this call turned a
    /// live key's value into a tombstone.
    async fn convert_expired(
        &self,
        key: Bytes,
        obj: Object,
        now: u64,
    ) -> Result<(Option<(Bytes, Object)>, bool), StoreError> {
        let mut was_live = false;
        let obj = if gc::expire(&obj, now).is_some() {
            let expired = self.keys_expired.clone();
            // Converted on the writer from the record as it is then, so a
            // write that arrived since is kept.
            let converted = self
                .apply_queued(key.clone(), move |current| {
                    match gc::expire(&current, now) {
                        Some(next) => {
                            let ended = counts_as_key(&current) && !counts_as_key(&next);
                            if ended {
                                expired.fetch_add(1, Ordering::Relaxed);
                            }
                            (Some(next.clone()), Some((next, ended)))
                        }
                        None => (None, None),
                    }
                })
                .await
                .await?;
            match converted {
                Some((next, ended)) => {
                    was_live = ended;
                    next
                }
                None => return Ok((None, false)),
            }
        } else {
            obj
        };
        if gc::all_tombstones(&obj) {
            self.pass_tombstones.fetch_add(1, Ordering::Relaxed);
        }
        Ok((Some((key, obj)), was_live))
    }

    /// Deletes `key` if its record is still exactly `expected` (the purge's
    /// last step: a write merged since then wins). True when the record is
    /// gone (deleted now, or absent already).
    pub async fn remove_if_equal(&self, key: Bytes, expected: Object) -> Result<bool, KvError> {
        let counts = self.counts.clone();
        let db = db_index(&key);
        let purged = self.tombstones_purged.clone();
        let collected = self.keys_collected.clone();
        update(&*self.store, key, move |current| match current {
            None => (Write::Keep, true),
            Some(obj) if obj == expected => {
                counts.add_live(db, -(counts_as_key(&obj) as i64));
                counts.add_expiring(db, -(has_expiry(&obj) as i64));
                purged.fetch_add(1, Ordering::Relaxed);
                collected.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dynkv_tombstones_purged_total").increment(1);
                (Write::Remove, true)
            }
            Some(_) => (Write::Keep, false),
        })
        .await
        .map_err(storage)
    }

    /// Atomic read-modify-write of the live value (see [`crate::kv::Kv::modify`]); the
    /// change supersedes every version stored here.
    pub async fn modify<T, F>(&self, key: Bytes, f: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(Option<LiveValue>, u64) -> (Change, T) + Send + 'static,
    {
        let dots = self.dots.clone();
        let now = self.clock.now_ms();
        self.apply(key, move |mut obj| {
            let live = LiveValue::versioned(&obj, now);
            let (change, value) = f(live, now);
            match change.into_payload() {
                None => (None, Ok(value)),
                Some(payload) => {
                    let seen = obj.context.clone();
                    match dots.stamp(&mut obj, &seen, payload, now) {
                        Ok(()) => (Some(obj), Ok(value)),
                        Err(e) => (None, Err(e)),
                    }
                }
            }
        })
        .await?
    }

    /// A page of the live keys stored here, in ring order from `cursor`.
    pub async fn scan(&self, cursor: u64, count: usize) -> Result<ScanPage, KvError> {
        let count = count.max(1);
        let page = self.store.scan(cursor, count).await.map_err(storage)?;
        let next_cursor = match page.last() {
            Some((last, _, _)) if page.len() == count => last.wrapping_add(1),
            _ => 0,
        };
        let now = self.clock.now_ms();
        let keys = page
            .into_iter()
            .filter(|(_, _, obj)| LiveValue::of(obj, now).is_some())
            .map(|(_, key, _)| key)
            .collect();
        Ok(ScanPage { next_cursor, keys })
    }

    /// Removes every record stored here.
    pub async fn flush_all(&self) -> Result<(), KvError> {
        self.store.clear().await.map_err(storage)?;
        self.counts.clear();
        Ok(())
    }

    /// Keys stored here whose winner is a value (DBSIZE).
    pub fn key_count(&self) -> u64 {
        self.counts.live_total()
    }

    /// Of those, keys with an expiry.
    pub fn expiring_key_count(&self) -> u64 {
        self.counts.expiring_total()
    }

    /// Keys stored here per database.
    pub fn key_counts(&self) -> &KeyCounts {
        &self.counts
    }

    /// Dead records removed by the sweeper since start.
    pub fn keys_collected(&self) -> u64 {
        self.keys_collected.load(Ordering::Relaxed)
    }

    /// Records holding only tombstones, as of the last sweep pass.
    pub fn tombstones(&self) -> u64 {
        self.tombstones.load(Ordering::Relaxed)
    }

    /// Tombstone records deleted here since start.
    pub fn tombstones_purged(&self) -> u64 {
        self.tombstones_purged.load(Ordering::Relaxed)
    }

    /// Expired keys the sweeper removed (lone node) or turned into
    /// tombstones (cluster) since start.
    pub fn keys_expired(&self) -> u64 {
        self.keys_expired.load(Ordering::Relaxed)
    }

    /// Makes everything written so far durable.
    pub async fn sync(&self) -> Result<(), KvError> {
        self.store.sync().await.map_err(storage)
    }
}

/// DYN.GET's shape for an object: `[context, [value-or-nil, ...]]`.
pub fn object_value(obj: &Object, now_ms: u64) -> AdminValue {
    let values = obj
        .siblings
        .iter()
        .map(|s| match s.payload.live_data(now_ms) {
            Some(data) => AdminValue::Bulk(data.clone()),
            None => AdminValue::Null,
        })
        .collect();
    AdminValue::Array(vec![
        AdminValue::Context(obj.context.clone()),
        AdminValue::Array(values),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Dot;

    fn issuer() -> DotIssuer {
        DotIssuer::new(NodeId::new("n1#a"), 0, Arc::new(|_| Ok(())))
    }

    /// Found by fuzzing (fuzz/corpus/context_token/max-counter): a client
    /// context claiming a huge counter for this node moved its one dot
    /// counter (shared by every key) to the end of the range for good.
    #[test]
    fn a_context_past_the_counter_limit_is_refused_and_moves_nothing() {
        let issuer = issuer();
        let forged: VersionVector = [(issuer.actor().clone(), MAX_COUNTER)]
            .into_iter()
            .collect();
        let mut obj = Object::new();
        let refused = issuer.stamp(&mut obj, &forged, Payload::value("v"), 1);
        assert!(
            matches!(refused, Err(KvError::BadVersion(_))),
            "{refused:?}"
        );
        assert_eq!(obj, Object::new());

        let stamped = issuer.stamp(&mut obj, &VersionVector::new(), Payload::value("v"), 2);
        assert!(stamped.is_ok());
        let dot = Dot {
            node: issuer.actor().clone(),
            counter: 1,
        };
        assert_eq!(obj.siblings.first().map(|s| &s.dot), Some(&dot));
    }

    #[test]
    fn the_last_counter_below_the_limit_is_issued_and_stored_and_then_none() {
        let issuer = DotIssuer::new(NodeId::new("n1#a"), MAX_COUNTER - 1, Arc::new(|_| Ok(())));
        let mut obj = Object::new();
        let none = VersionVector::new();
        assert!(
            issuer
                .stamp(&mut obj, &none, Payload::value("v"), 1)
                .is_ok()
        );
        assert_eq!(obj.context.get(issuer.actor()), MAX_COUNTER);
        let raw = crate::store::codec::encode_record(&Bytes::from("k"), &obj);
        assert_eq!(
            crate::store::codec::decode_object(&raw).ok(),
            Some(obj.clone())
        );
        let exhausted = issuer.stamp(&mut obj, &none, Payload::value("w"), 2);
        assert!(
            matches!(exhausted, Err(KvError::BadVersion(_))),
            "{exhausted:?}"
        );
    }
}
