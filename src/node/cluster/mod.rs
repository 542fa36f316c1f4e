//! [`ClusterKv`]: the Dynamo node behind the [`Kv`] facade.
//!
//! Any node takes any request. Reads go to the first N reachable nodes of
//! the key's ring walk and return after R replies (read repair follows in
//! the background). Writes are coordinated by a preference-list node
//! (others forward), which creates the new version, replicates it and
//! answers after W acks; unreachable replicas are replaced by fallbacks
//! carrying hints, or the coordinator keeps the hint itself.
//!
//! `ClusterKv` is generic over its [`NodeEnv`] (storage, hints, transport,
//! metadata), so the simulation runs exactly this code over memory stores
//! and a seeded network.
//!
//! - [`membership`]: shared cluster state, failure detector, clock offsets.
//! - [`peer_log`]: when a peer's ups and downs are logged.
//! - [`coordinator`]: quorum reads and writes.
//! - [`admin`]: DYN.* admin commands, INFO, FLUSHALL.
//! - [`service`]: answers peers' RPCs.
//! - [`gossip`]: one gossip round and its answers (digest first).
//! - [`workers`]: gossip, hinted handoff, hint expiry.
//! - [`gc`]: the expiry sweeper and the cluster-wide tombstone purge.
//! - [`handoff`]: partition transfers of membership changes, dropping
//!   partitions that moved away, leaving.
//! - [`merkle_index`]: the Merkle trees and the folder keeping them current.
//! - [`anti_entropy`]: replicas compare trees and exchange differing keys.
//! - [`boot`]: identity, joining, and starting the workers.

pub mod admin;
pub mod anti_entropy;
pub mod boot;
pub mod coordinator;
pub mod gc;
pub mod gossip;
pub mod handoff;
mod legacy_state;
pub mod membership;
pub mod merkle_index;
pub mod peer_log;
pub mod service;
pub mod slots;
pub mod workers;

use super::env::{MetaStore, NodeEnv, Production};
use super::local::LocalKv;
use crate::core::{NodeId, Object, Payload, Request, Response, VersionVector, WriteContext};
use crate::kv::{
    AdminCommand, AdminValue, Change, InfoFields, Kv, KvError, LiveValue, QueuedWrite, ReadOptions,
    ScanPage, WriteOptions,
};
use crate::net::{Blocklist, RpcError, Transport};
use crate::store::hints::{HintPut, Hints};
use bytes::Bytes;
use membership::Membership;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Stripes of the per-key lock that makes read-modify-write commands
/// through one node atomic.
const LOCK_STRIPES: usize = 1024;

/// Background read repairs in flight at once; past that a read skips its
/// repair (anti-entropy and later reads catch up) instead of queueing
/// unbounded work.
const MAX_BACKGROUND_REPAIRS: usize = 1024;

/// Counters for INFO dynamo and Prometheus.
#[derive(Default)]
pub struct ClusterStats {
    /// Requests forwarded to a preference-list node.
    pub forwarded: AtomicU64,
    /// Quorums not reached.
    pub quorum_failures: AtomicU64,
    /// Hints stored (here or at fallbacks on our behalf).
    pub hints_stored: AtomicU64,
    /// Hints delivered by this node.
    pub hints_delivered: AtomicU64,
    /// Stale replicas repaired after reads.
    pub read_repairs: AtomicU64,
    /// Reads that found siblings.
    pub gets_with_siblings: AtomicU64,
    /// Writes refused because this node's clock is off.
    pub clock_refusals: AtomicU64,
    /// Read repairs skipped because too many were in flight.
    pub repairs_skipped: AtomicU64,
    /// Tombstone purge rounds run here as the keys' purger.
    pub purge_rounds: AtomicU64,
    /// Value bytes streamed to new owners (membership changes).
    pub handoff_bytes_sent: AtomicU64,
    /// Value bytes received from old owners.
    pub handoff_bytes_received: AtomicU64,
    /// Records streamed to new owners.
    pub handoff_keys_sent: AtomicU64,
    /// Records deleted because their partition moved away.
    pub handoff_keys_dropped: AtomicU64,
    /// Keys anti-entropy repaired (here or pushed to a peer).
    pub ae_keys_repaired: AtomicU64,
    /// Keys compared for peers' anti-entropy exchanges.
    pub ae_keys_compared: AtomicU64,
    /// Bytes of anti-entropy requests sent.
    pub ae_bytes_sent: AtomicU64,
    /// Bytes of anti-entropy answers received.
    pub ae_bytes_received: AtomicU64,
    /// Anti-entropy rounds completed.
    pub ae_rounds: AtomicU64,
}

/// Default `--anti-entropy-interval` (seconds between rounds).
pub const DEFAULT_AE_INTERVAL_SECS: u64 = 10;

/// Replication defaults (`--n --r --w`).
#[derive(Clone, Copy, Debug)]
pub struct Quorums {
    /// Replicas per key.
    pub n: usize,
    /// Read quorum.
    pub r: usize,
    /// Write quorum.
    pub w: usize,
}

/// How long things may take.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A coordinator's deadline for its replicas' answers (and for one
    /// replica RPC).
    pub quorum: Duration,
    /// A forwarder's deadline for the coordinator it forwarded to: longer
    /// than the coordinator's own quorum deadline, so a slow quorum answers
    /// "unavailable" instead of looking like a dead coordinator (which
    /// would make the forwarder write the same value again elsewhere).
    pub forward: Duration,
}

impl Timeouts {
    /// Defaults from a quorum deadline.
    pub fn from_quorum(quorum: Duration) -> Self {
        Self {
            quorum,
            forward: quorum * 2 + Duration::from_millis(500),
        }
    }
}

/// Everything a node is made of.
pub struct NodeParts<E: NodeEnv> {
    /// Replica store (already holding the dot issuer's lease record).
    pub local: Arc<LocalKv<E::Store>>,
    /// Hint store.
    pub hints: Arc<E::Hints>,
    /// Node-to-node calls.
    pub transport: E::Transport,
    /// Durable metadata.
    pub meta: Arc<E::Meta>,
    /// Fault-injection blocklist shared with the RPC server.
    pub blocklist: Arc<Blocklist>,
    /// Seed of the node's random choices (gossip peers).
    pub seed: u64,
}

/// A node of the cluster.
pub struct ClusterKv<E: NodeEnv = Production> {
    pub(crate) local: Arc<LocalKv<E::Store>>,
    pub(crate) hints: Arc<E::Hints>,
    pub(crate) membership: Arc<Membership>,
    pub(crate) rpc: E::Transport,
    pub(crate) blocklist: Arc<Blocklist>,
    pub(crate) quorums: Quorums,
    pub(crate) timeouts: Timeouts,
    pub(crate) stats: ClusterStats,
    /// This node lost its data (empty disk under a known name): it answers
    /// no reads until rebuilt.
    pub(crate) rebuilding: AtomicBool,
    /// Durable metadata (the rebuilding record).
    pub(crate) meta: Arc<E::Meta>,
    /// The Merkle trees anti-entropy compares.
    pub(crate) merkle: merkle_index::MerkleIndex,
    /// `--read-repair`: repair stale replicas after reads.
    pub(crate) read_repair: AtomicBool,
    /// `--anti-entropy-interval` in ms (0 = rounds only while rebuilding).
    ae_interval_ms: AtomicU64,
    rng: Mutex<StdRng>,
    repairs_in_flight: Arc<tokio::sync::Semaphore>,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Runs the client commands other nodes forward here.
    command_runner: std::sync::OnceLock<Arc<dyn crate::kv::CommandRunner>>,
    /// Expired keys the sweeper reports (see [`Kv::expired_keys`]).
    pub(crate) expired_keys: tokio::sync::broadcast::Sender<Bytes>,
    /// Background work (replication fan-out, read repair) outlives the
    /// request that started it, so it needs an owned handle to the node.
    this: std::sync::Weak<ClusterKv<E>>,
}

/// Expired-key reports a slow listener may fall behind by before it misses
/// some (notifications are best effort, as in Redis).
const EXPIRED_KEYS_BACKLOG: usize = 4_096;

/// Extra time a request of `bytes` may take on the wire: a 32 MiB value
/// must not look like a dead peer because it takes longer than a small one.
pub fn transfer_allowance(bytes: usize) -> Duration {
    // ~64 MB/s, far below loopback or a LAN, so only real stalls time out.
    Duration::from_millis((bytes / 65_536) as u64)
}

/// Value bytes an object carries.
pub fn object_bytes(obj: &Object) -> usize {
    obj.siblings.iter().map(|s| s.payload.approx_len()).sum()
}

fn request_bytes(req: &Request) -> usize {
    match req {
        Request::Put { key, object, .. } => key.len() + object_bytes(object),
        Request::PutMany { items } | Request::Handoff { items, .. } => {
            items.iter().map(|(k, o)| k.len() + object_bytes(o)).sum()
        }
        Request::Coordinate { key, payload, .. } => key.len() + payload.approx_len(),
        Request::Command { payload } => payload.len(),
        _ => 0,
    }
}

/// Metadata record present while the node is being rebuilt.
pub const REBUILDING_RECORD: &str = "rebuilding";

impl<E: NodeEnv> ClusterKv<E> {
    /// Assembles a node from its parts.
    pub fn new(
        parts: NodeParts<E>,
        membership: Arc<Membership>,
        quorums: Quorums,
        timeouts: Timeouts,
    ) -> Arc<Self> {
        // "0" is written when a rebuild finishes (records cannot be removed).
        let rebuilding = parts
            .meta
            .read(REBUILDING_RECORD)
            .is_some_and(|r| r.as_slice() != b"0");
        Arc::new_cyclic(|this| Self {
            local: parts.local,
            hints: parts.hints,
            membership,
            rpc: parts.transport,
            blocklist: parts.blocklist,
            quorums,
            timeouts,
            stats: ClusterStats::default(),
            rebuilding: AtomicBool::new(rebuilding),
            meta: parts.meta,
            merkle: merkle_index::MerkleIndex::default(),
            read_repair: AtomicBool::new(true),
            ae_interval_ms: AtomicU64::new(DEFAULT_AE_INTERVAL_SECS * 1000),
            rng: Mutex::new(StdRng::seed_from_u64(parts.seed)),
            repairs_in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_BACKGROUND_REPAIRS)),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            command_runner: std::sync::OnceLock::new(),
            expired_keys: tokio::sync::broadcast::Sender::new(EXPIRED_KEYS_BACKLOG),
            this: this.clone(),
        })
    }

    /// Registers what runs forwarded client commands (once, at start).
    pub fn set_command_runner(&self, runner: Arc<dyn crate::kv::CommandRunner>) {
        let _ = self.command_runner.set(runner);
    }

    /// Runs a forwarded client command, if a runner is registered.
    pub(crate) async fn run_forwarded(&self, payload: Bytes) -> Option<Bytes> {
        let runner = self.command_runner.get()?.clone();
        Some(runner.run(payload).await)
    }

    /// An owned handle for background tasks (None while shutting down).
    pub fn handle(&self) -> Option<Arc<ClusterKv<E>>> {
        self.this.upgrade()
    }

    /// This node's name.
    pub fn me(&self) -> &NodeId {
        self.membership.me()
    }

    /// The node's replica store.
    pub fn local(&self) -> &Arc<LocalKv<E::Store>> {
        &self.local
    }

    /// The node's hint store.
    pub fn hints(&self) -> &Arc<E::Hints> {
        &self.hints
    }

    /// The node's view of the cluster.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// True while this node is rebuilding after losing its data.
    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Relaxed)
    }

    /// Sets `--read-repair` (on by default).
    pub fn set_read_repair(&self, on: bool) {
        self.read_repair.store(on, Ordering::Relaxed);
    }

    /// Sets the pause between anti-entropy rounds (zero: only a rebuilding
    /// node runs rounds).
    pub fn set_ae_interval(&self, every: Duration) {
        self.ae_interval_ms
            .store(every.as_millis() as u64, Ordering::Relaxed);
    }

    /// The pause between anti-entropy rounds.
    pub fn ae_interval(&self) -> Duration {
        Duration::from_millis(self.ae_interval_ms.load(Ordering::Relaxed))
    }

    /// Partition `p`'s Merkle root and entry count here (None until the
    /// trees are built).
    pub fn merkle_root(&self, p: usize) -> Option<crate::core::merkle::NodeHash> {
        self.merkle.is_ready().then(|| self.merkle.root(p))
    }

    /// N clamped to the member count.
    pub fn effective_n(&self) -> usize {
        let members = self.membership.with(|s| s.members.len());
        self.quorums.n.min(members).max(1)
    }

    /// A random index below `len` from the node's seeded generator.
    pub(crate) fn random_index(&self, len: usize) -> usize {
        use rand::RngExt as _;
        if len == 0 {
            return 0;
        }
        self.rng.lock().random_range(0..len)
    }

    /// Sends one RPC with the replica deadline (longer for large payloads).
    pub async fn call(&self, to: &NodeId, req: Request) -> Result<Response, RpcError> {
        let timeout = self.timeouts.quorum + transfer_allowance(request_bytes(&req));
        self.call_within(to, req, timeout).await
    }

    /// Sends one RPC; feeds the failure detector from the outcome (only
    /// failures that say something about the peer count against it).
    pub async fn call_within(
        &self,
        to: &NodeId,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let Some(addr) = self.membership.cluster_addr(to) else {
            return Err(RpcError::Connect(format!("{to} is not a member")));
        };
        // Timed here, on the coordinator's side: the figure includes queueing
        // for a connection and the peer's work, which is what a client waits on.
        let histogram = crate::obs::catalog::handles()
            .rpc
            .get(crate::obs::catalog::rpc_kind_index(&req));
        let started = std::time::Instant::now();
        let result = self.rpc.call(to, addr, req, timeout).await;
        if let Some(h) = histogram {
            h.record(started.elapsed().as_secs_f64());
        }
        match result {
            Ok(resp) => {
                self.membership.mark_up(to);
                Ok(resp)
            }
            Err(e) => {
                if e.is_remote_failure() {
                    self.membership.record_miss(to);
                }
                Err(e)
            }
        }
    }

    /// Keeps a hint for `owner` in this node's hint store. Ok(true) once it
    /// is stored durably; Ok(false) when the cap for `owner` dropped it.
    pub async fn keep_hint(&self, owner: NodeId, key: Bytes, object: Object) -> bool {
        let now = self.local.clock().now_ms();
        match self.hints.put(&owner, key, object, now).await {
            Ok(HintPut::Stored) => {
                self.stats.hints_stored.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dynkv_hints_stored_total").increment(1);
                true
            }
            Ok(HintPut::Dropped) => {
                metrics::counter!("dynkv_hints_dropped_total").increment(1);
                false
            }
            Err(e) => {
                tracing::error!("cannot store hint for {owner}: {e}");
                false
            }
        }
    }

    /// This node's copy of `key` as a replica answers for it: its store
    /// merged with any hints it holds for the key (a fallback's data).
    pub fn replica_read(&self, key: &[u8]) -> Result<Object, KvError> {
        let mut obj = self.local.local_get(key)?;
        let counts = self.hints.counts();
        for target in counts.keys() {
            match self.hints.get(target, key) {
                Ok(Some(hinted)) => obj.merge(&hinted),
                Ok(None) => {}
                Err(e) => return Err(KvError::Storage(e.to_string())),
            }
        }
        Ok(obj)
    }

    /// A one-node cluster: every key's only replica is here.
    pub(crate) fn alone(&self) -> bool {
        self.membership.with(|s| s.members.len()) == 1
    }

    pub(crate) fn hints_pending(&self) -> u64 {
        self.hints.counts().values().sum()
    }

    /// Persists the cluster state off the async workers.
    pub async fn save_membership(&self) {
        let membership = self.membership.clone();
        E::offload(move || membership.save()).await;
    }

    fn check(&self, asked: Option<usize>, default: usize, what: &str) -> Result<usize, KvError> {
        let n = self.effective_n();
        let q = asked.unwrap_or(default).min(n);
        match asked {
            Some(a) if a == 0 || a > n => Err(KvError::BadQuorum(format!(
                "{what} must be between 1 and N ({n}), got {a}"
            ))),
            _ => Ok(q.max(1)),
        }
    }
}

impl<E: NodeEnv> Kv for ClusterKv<E> {
    async fn get(&self, key: Bytes, opts: ReadOptions) -> Result<Object, KvError> {
        let obj = if self.alone() && opts.r.is_none_or(|r| r == 1) {
            // The only replica is here.
            self.local.local_get(&key)?
        } else {
            let r = self.check(opts.r, self.quorums.r, "R")?;
            self.quorum_get(key, r).await?
        };
        if obj.siblings.len() > 1 {
            self.stats
                .gets_with_siblings
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(obj)
    }

    async fn put(
        &self,
        key: Bytes,
        context: VersionVector,
        payload: Payload,
        opts: WriteOptions,
    ) -> Result<(), KvError> {
        let w = self.check(opts.w, self.quorums.w, "W")?;
        self.write(key, WriteContext::Client(context), payload, w)
            .await
    }

    async fn overwrite(&self, key: Bytes, change: Change) -> Result<(), KvError> {
        let Some(payload) = change.into_payload() else {
            return Ok(());
        };
        let w = self.check(None, self.quorums.w, "W")?;
        self.write(key, WriteContext::CoordinatorLatest, payload, w)
            .await
    }

    async fn overwrite_queued(
        &self,
        key: Bytes,
        change: Change,
        more_follow: bool,
    ) -> Option<QueuedWrite> {
        // Only a lone node can queue at once: a cluster write first has to
        // find its coordinator and replicas.
        if self.alone() {
            self.local.overwrite_now(key, change, !more_follow).await
        } else {
            None
        }
    }

    async fn modify<T, F>(&self, key: Bytes, f: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(Option<LiveValue>, u64) -> (Change, T) + Send + 'static,
    {
        if self.alone() {
            // The store's writer makes this atomic without a lock.
            return self.local.modify(key, f).await;
        }
        let stripe = (crate::core::ring_hash(&key) as usize) % LOCK_STRIPES;
        let _guard = self.locks[stripe].lock().await;
        let r = self.check(None, self.quorums.r, "R")?;
        let obj = self.quorum_get(key.clone(), r).await?;
        let now = self.local.clock().now_ms();
        let (change, value) = f(LiveValue::versioned(&obj, now), now);
        if let Some(payload) = change.into_payload() {
            let w = self.check(None, self.quorums.w, "W")?;
            self.write(key, WriteContext::Client(obj.context.clone()), payload, w)
                .await?;
        }
        Ok(value)
    }

    async fn scan(&self, cursor: u64, count: usize) -> Result<ScanPage, KvError> {
        self.local.scan(cursor, count).await
    }

    async fn flush_all(&self) -> Result<(), KvError> {
        if self.alone() {
            return self.local.flush_all().await;
        }
        self.flush_cluster(None).await
    }

    async fn flush_db(&self, db: u8) -> Result<(), KvError> {
        let others_empty = (0..crate::core::MAX_DATABASES)
            .filter(|&other| other != usize::from(db))
            .all(|other| self.local.key_counts().live_in(other) == 0);
        if self.alone() && others_empty {
            return self.local.flush_all().await;
        }
        self.flush_cluster(Some(db)).await
    }

    fn key_count(&self) -> u64 {
        self.local.key_count()
    }

    fn expiring_key_count(&self) -> u64 {
        self.local.expiring_key_count()
    }

    fn key_count_in(&self, db: u8) -> u64 {
        self.local.key_counts().live_in(usize::from(db))
    }

    fn expiring_key_count_in(&self, db: u8) -> u64 {
        self.local.key_counts().expiring_in(usize::from(db))
    }

    fn expired_key_count(&self) -> u64 {
        self.local.keys_expired()
    }

    fn now_ms(&self) -> u64 {
        // Commands turn relative expiries into absolute ones with this
        // time; on a node whose clock is known to be off, correct it by
        // the measured offset so an `EX 600` is not already past elsewhere.
        let now = self.local.clock().now_ms();
        if self.membership.clock_is_skewed() {
            now.saturating_add_signed(self.membership.own_offset_ms().saturating_neg())
        } else {
            now
        }
    }

    fn node_id(&self) -> &NodeId {
        self.me()
    }

    fn replica_count(&self) -> usize {
        self.effective_n() - 1
    }

    fn info_fields(&self) -> InfoFields {
        self.info()
    }

    async fn sync(&self) -> Result<(), KvError> {
        self.local.sync().await
    }

    fn serialising_node(&self, key: &[u8]) -> Option<NodeId> {
        if self.alone() {
            return None;
        }
        let me = self.me();
        let first = self
            .walk(key)
            .into_iter()
            .take(self.effective_n())
            .find(|m| m == me || self.membership.is_up(m))?;
        (&first != me).then_some(first)
    }

    fn expired_keys(&self) -> Option<tokio::sync::broadcast::Receiver<Bytes>> {
        Some(self.expired_keys.subscribe())
    }

    fn live_peers(&self) -> Vec<NodeId> {
        self.membership
            .peers()
            .into_iter()
            .filter(|peer| self.membership.is_up(peer))
            .collect()
    }

    async fn forward_command(&self, node: NodeId, payload: Bytes) -> Result<Bytes, KvError> {
        // A forwarded transaction runs several quorum rounds there.
        let deadline = self.timeouts.forward * 4 + transfer_allowance(payload.len()) * 3;
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        match self
            .call_within(&node, Request::Command { payload }, deadline)
            .await
        {
            Ok(Response::CommandReply(reply)) => Ok(reply),
            Ok(Response::Error(e)) => Err(KvError::Storage(e)),
            Ok(other) => Err(KvError::NotDelivered(format!(
                "{node} did not run the command ({other:?})"
            ))),
            Err(e) if e.surely_not_delivered() => {
                Err(KvError::NotDelivered(format!("{node} unreachable ({e})")))
            }
            Err(e) => Err(KvError::Timeout(format!(
                "{node} did not answer ({e}); the command may or may not have run"
            ))),
        }
    }

    async fn admin(&self, cmd: AdminCommand) -> Result<AdminValue, KvError> {
        self.run_admin(cmd).await
    }

    fn cluster_view(&self) -> Option<crate::kv::ClusterView> {
        Some(self.cluster_view_now())
    }

    fn moved_to(&self, slot: u16) -> Option<String> {
        self.moved_target(slot)
    }
}
