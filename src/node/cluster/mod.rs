//! [`ClusterKv`]: the Dynamo node behind the [`Kv`] facade.
//!
//! Any node takes any request. Reads fan out to the key's preference list
//! and return after R replies (read repair follows in the background).
//! Writes are coordinated by a preference-list node (others forward), which
//! creates the new version, replicates the whole object, and answers after
//! W acks; unreachable replicas are replaced by fallbacks carrying hints,
//! or the coordinator keeps the hint itself.
//!
//! - [`membership`]: shared cluster state + failure detector.
//! - [`coordinator`]: quorum reads and writes.
//! - [`service`]: answers peers' RPCs.
//! - [`workers`]: gossip and hinted handoff.

pub mod coordinator;
pub mod membership;
pub mod service;
pub mod workers;

use super::local::{LocalKv, object_value, wall_clock_ms};
use crate::core::{NodeId, Object, Request, Response};
use crate::core::{Payload, VersionVector, WriteContext, ring_hash};
use crate::kv::{
    AdminCommand, AdminValue, Change, InfoFields, Kv, KvError, LiveValue, QueuedWrite, ReadOptions,
    ScanPage, WriteOptions,
};
use crate::net::{Blocklist, RpcClient, RpcError};
use crate::store::fjall_hints::FjallHints;
use crate::store::fjall_store::FjallStore;
use crate::store::hints::{HintPut, Hints};
use bytes::Bytes;
use membership::Membership;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Stripes of the per-key lock that makes read-modify-write commands
/// through one node atomic.
const LOCK_STRIPES: usize = 1024;

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
}

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

/// A node of the cluster.
pub struct ClusterKv {
    pub(crate) local: Arc<LocalKv<FjallStore>>,
    pub(crate) hints: Arc<FjallHints>,
    pub(crate) membership: Arc<Membership>,
    pub(crate) rpc: RpcClient<Request, Response>,
    pub(crate) blocklist: Arc<Blocklist>,
    pub(crate) quorums: Quorums,
    pub(crate) timeout: Duration,
    pub(crate) stats: ClusterStats,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Background work (replication fan-out, read repair) outlives the
    /// request that started it, so it needs an owned handle to the node.
    this: std::sync::Weak<ClusterKv>,
}

impl ClusterKv {
    /// Assembles a node from its parts.
    pub fn new(
        local: Arc<LocalKv<FjallStore>>,
        hints: Arc<FjallHints>,
        membership: Arc<Membership>,
        rpc: RpcClient<Request, Response>,
        blocklist: Arc<Blocklist>,
        quorums: Quorums,
        timeout: Duration,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            local,
            hints,
            membership,
            rpc,
            blocklist,
            quorums,
            timeout,
            stats: ClusterStats::default(),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            this: this.clone(),
        })
    }

    /// An owned handle for background tasks (None while shutting down).
    pub fn handle(&self) -> Option<Arc<ClusterKv>> {
        self.this.upgrade()
    }

    /// This node's name.
    pub fn me(&self) -> &NodeId {
        self.membership.me()
    }

    /// N clamped to the member count.
    pub fn effective_n(&self) -> usize {
        let members = self.membership.with(|s| s.members.len());
        self.quorums.n.min(members).max(1)
    }

    /// Sends one RPC; updates the failure detector from the outcome.
    pub async fn call(&self, to: &NodeId, req: Request) -> Result<Response, RpcError> {
        let Some(addr) = self.membership.cluster_addr(to) else {
            return Err(RpcError::Connect(format!("{to} is not a member")));
        };
        match self.rpc.call(to, addr, req).await {
            Ok(resp) => {
                self.membership.mark_up(to);
                Ok(resp)
            }
            Err(e) => {
                self.membership.mark_down(to);
                Err(e)
            }
        }
    }

    /// Keeps a hint for `owner` in this node's hint store.
    pub async fn keep_hint(&self, owner: NodeId, key: Bytes, object: Object) {
        match self.hints.put(&owner, key, object, wall_clock_ms()).await {
            Ok(HintPut::Stored) => {
                self.stats.hints_stored.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dynkv_hints_stored_total").increment(1);
            }
            Ok(HintPut::Dropped) => tracing::warn!("hint for {owner} dropped: too many pending"),
            Err(e) => tracing::error!("cannot store hint: {e}"),
        }
    }

    /// A one-node cluster: every key's only replica is here.
    fn alone(&self) -> bool {
        self.membership.with(|s| s.members.len()) == 1
    }

    fn hints_pending(&self) -> u64 {
        self.hints.counts().values().sum()
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

impl Kv for ClusterKv {
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

    async fn overwrite_queued(&self, key: Bytes, change: Change) -> Option<QueuedWrite> {
        // Only a lone node can queue at once: a cluster write first has to
        // find its coordinator and replicas.
        if self.alone() {
            self.local.overwrite_now(key, change).await
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
        let stripe = (ring_hash(&key) as usize) % LOCK_STRIPES;
        let _guard = self.locks[stripe].lock().await;
        let r = self.check(None, self.quorums.r, "R")?;
        let obj = self.quorum_get(key.clone(), r).await?;
        let now = wall_clock_ms();
        let (change, value) = f(LiveValue::of(&obj, now), now);
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
        self.local.flush_all().await
    }

    fn key_count(&self) -> u64 {
        self.local.key_count()
    }

    fn expiring_key_count(&self) -> u64 {
        self.local.expiring_key_count()
    }

    fn now_ms(&self) -> u64 {
        wall_clock_ms()
    }

    fn node_id(&self) -> &NodeId {
        self.me()
    }

    fn replica_count(&self) -> usize {
        self.effective_n() - 1
    }

    fn info_fields(&self) -> InfoFields {
        let (members, owned) = self.membership.with(|s| {
            (
                s.member_ids(),
                s.ring.ownership().get(self.me()).copied().unwrap_or(0),
            )
        });
        let up = members.iter().filter(|m| self.membership.is_up(m)).count();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        vec![
            ("node_name", self.me().to_string()),
            ("cluster_id", self.membership.with(|s| s.cluster_id.clone())),
            ("members_up", up.to_string()),
            ("members_down", (members.len() - up).to_string()),
            ("n", self.effective_n().to_string()),
            ("r", self.quorums.r.min(self.effective_n()).to_string()),
            ("w", self.quorums.w.min(self.effective_n()).to_string()),
            ("partitions_owned", owned.to_string()),
            ("hints_pending", self.hints_pending().to_string()),
            ("hints_stored", load(&self.stats.hints_stored)),
            ("hints_delivered", load(&self.stats.hints_delivered)),
            ("read_repairs", load(&self.stats.read_repairs)),
            ("ae_keys_repaired", "0".into()),
            ("gets_with_siblings", load(&self.stats.gets_with_siblings)),
            ("quorum_failures", load(&self.stats.quorum_failures)),
            ("forwarded_requests", load(&self.stats.forwarded)),
            ("keys_collected", self.local.keys_collected().to_string()),
            (
                "storage_decode_errors",
                crate::store::ReplicaStore::decode_errors(&**self.local.store()).to_string(),
            ),
        ]
    }

    async fn sync(&self) -> Result<(), KvError> {
        self.local.sync().await
    }

    async fn admin(&self, cmd: AdminCommand) -> Result<AdminValue, KvError> {
        let bulk = |s: String| AdminValue::Bulk(Bytes::from(s));
        match cmd {
            AdminCommand::Members => {
                let state = self.membership.snapshot();
                let owned = state.ring.ownership();
                Ok(AdminValue::Array(
                    state
                        .members
                        .iter()
                        .map(|(id, m)| {
                            let status = if self.membership.is_up(id) { "up" } else { "down" };
                            AdminValue::Array(vec![
                                bulk(id.to_string()),
                                bulk(m.client_addr.clone()),
                                bulk(status.into()),
                                AdminValue::Int(owned.get(id).copied().unwrap_or(0) as i64),
                            ])
                        })
                        .collect(),
                ))
            }
            AdminCommand::Ring => {
                let n = self.effective_n();
                let ring = self.membership.with(|s| s.ring.clone());
                Ok(AdminValue::Array(
                    (0..ring.partitions())
                        .map(|p| {
                            AdminValue::Array(vec![
                                AdminValue::Int(p as i64),
                                AdminValue::Array(
                                    ring.preference_list(p, n)
                                        .into_iter()
                                        .map(|m| bulk(m.to_string()))
                                        .collect(),
                                ),
                            ])
                        })
                        .collect(),
                ))
            }
            AdminCommand::Hints => {
                let counts = self.hints.counts();
                Ok(AdminValue::Array(
                    counts
                        .into_iter()
                        .map(|(t, c)| {
                            AdminValue::Array(vec![bulk(t.to_string()), AdminValue::Int(c as i64)])
                        })
                        .collect(),
                ))
            }
            AdminCommand::LocalGet(key) => {
                let obj = self.local.local_get(&key)?;
                Ok(object_value(&obj, wall_clock_ms()))
            }
            AdminCommand::Partition(names) => {
                let blocked = names
                    .iter()
                    .map(|n| NodeId::new(&String::from_utf8_lossy(n)))
                    .collect();
                self.blocklist.set(blocked);
                Ok(AdminValue::Status("OK".into()))
            }
            AdminCommand::Join(target) => self.join_via(&target).await,
            AdminCommand::Leave(_) => Err(KvError::Admin(
                "DYN.LEAVE is not supported yet: stop the node and its replicas are rebuilt by hints and read repair; removal from the ring is future work".into(),
            )),
        }
    }
}
