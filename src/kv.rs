//! The `Kv` facade: everything the RESP front end may ask of the store.
//!
//! The front end never sees the ring, the network or fjall: the node behind
//! this trait (`node::cluster::ClusterKv`, a one-node cluster by default)
//! can change without any command changing.

use crate::core::crdt::{Resolved, TypeKind, TypedValue, resolve};
use crate::core::{ItemMeta, NodeId, Object, Payload, SlotRange, VersionVector};
use bytes::Bytes;
use std::future::Future;

/// Per-request read quorum (DYN.GET ... R n). `None` = cluster default.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Replies to wait for.
    pub r: Option<usize>,
}

/// Per-request write quorum (DYN.PUT ... W n). `None` = cluster default.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Acks to wait for.
    pub w: Option<usize>,
}

/// The value plain Redis commands see: the winning sibling, if live, or
/// for a data type the join of its concurrent siblings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveValue {
    /// A string's bytes; a counter's value as Redis shows it; empty for a
    /// collection.
    pub data: Bytes,
    /// Absolute expiry in ms since the epoch.
    pub expires_at_ms: Option<u64>,
    /// The data type, when the key holds one.
    pub typed: Option<TypedValue>,
    /// memcached client flags of a string (0 when a Redis command wrote it).
    pub flags: u32,
    /// A fingerprint of every version the object holds (its causal
    /// context): memcached's cas unique. Equal exactly when no write came
    /// in between, siblings included. Computed only by
    /// [`LiveValue::versioned`] (0 from [`LiveValue::of`]), so a plain GET
    /// does not pay for the digest. A cas stored with the value (see
    /// [`ItemMeta::cas`]) stands in for the digest while no concurrent
    /// version sits beside it.
    pub cas: u64,
    /// memcached's meta state of a string (default for anything else).
    /// Its `cas` is cleared when siblings make it not apply.
    pub meta: ItemMeta,
}

impl LiveValue {
    /// The live value of `obj` at `now_ms`, with its cas unique.
    pub fn versioned(obj: &Object, now_ms: u64) -> Option<LiveValue> {
        let mut live = Self::of(obj, now_ms)?;
        if obj.siblings.len() > 1 {
            // A stored cas names one version; concurrent ones need the
            // digest of them all, so that a cas resolves every sibling.
            live.meta.cas = None;
        }
        live.cas = match live.meta.cas {
            Some(stored) => stored.value(),
            None => obj.context.fingerprint(),
        };
        Some(live)
    }

    /// The live value of `obj` at `now_ms` (its `cas` left 0).
    pub fn of(obj: &Object, now_ms: u64) -> Option<LiveValue> {
        let cas = 0;
        match resolve(obj, now_ms)? {
            Resolved::Str {
                data,
                expires_at_ms,
                flags,
                meta,
            } => Some(LiveValue {
                data,
                expires_at_ms,
                typed: None,
                flags,
                cas,
                meta,
            }),
            Resolved::Typed {
                value,
                expires_at_ms,
            } => Some(LiveValue {
                data: match &value {
                    TypedValue::Counter(c) => Bytes::from(c.render()),
                    _ => Bytes::new(),
                },
                expires_at_ms,
                typed: Some(value),
                flags: 0,
                cas,
                meta: ItemMeta::default(),
            }),
        }
    }

    /// The Redis type: `None` for a plain string.
    pub fn kind(&self) -> Option<TypeKind> {
        self.typed.as_ref().map(TypedValue::kind)
    }

    /// Whether string commands may read it (a string or a counter).
    pub fn is_string(&self) -> bool {
        matches!(self.kind(), None | Some(TypeKind::Counter))
    }

    /// The TYPE reply.
    pub fn type_name(&self) -> &'static str {
        self.kind().map_or("string", TypeKind::redis_name)
    }

    /// The same value with another expiry (a memcached item keeps its
    /// meta state: memcached's touch does not modify the item).
    pub fn with_expiry(self, expires_at_ms: Option<u64>) -> Change {
        match self.typed {
            Some(value) => Change::WriteTyped {
                value,
                expires_at_ms,
            },
            None => Change::WriteItem {
                data: self.data,
                expires_at_ms,
                flags: self.flags,
                meta: self.meta,
            },
        }
    }
}

/// What a read-modify-write decided to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Write nothing.
    Keep,
    /// Write a new value that supersedes every version the coordinator read.
    Write {
        /// New value.
        data: Bytes,
        /// Absolute expiry in ms since the epoch.
        expires_at_ms: Option<u64>,
        /// memcached client flags (0 from Redis commands).
        flags: u32,
    },
    /// Write a tombstone that supersedes every version the coordinator read.
    Delete,
    /// Write a data type's new state (its queued changes are named by the
    /// coordinator).
    WriteTyped {
        /// New state.
        value: TypedValue,
        /// Absolute expiry in ms since the epoch.
        expires_at_ms: Option<u64>,
    },
    /// [`Change::Write`] of a memcached item with meta state.
    WriteItem {
        /// New value.
        data: Bytes,
        /// Absolute expiry in ms since the epoch.
        expires_at_ms: Option<u64>,
        /// memcached client flags.
        flags: u32,
        /// Stale, win handed out, stored cas.
        meta: ItemMeta,
    },
}

impl Change {
    /// The payload this change writes, if any.
    pub fn into_payload(self) -> Option<Payload> {
        match self {
            Change::Keep => None,
            Change::Write {
                data,
                expires_at_ms,
                flags,
            } => Some(Payload::string(data, expires_at_ms, flags)),
            Change::Delete => Some(Payload::Tombstone),
            Change::WriteTyped {
                value,
                expires_at_ms,
            } => Some(Payload::Typed {
                value,
                expires_at_ms,
            }),
            Change::WriteItem {
                data,
                expires_at_ms,
                flags,
                meta,
            } => Some(Payload::item(data, expires_at_ms, flags, meta)),
        }
    }
}

/// One page of SCAN.
#[derive(Clone, Debug, Default)]
pub struct ScanPage {
    /// Cursor for the next call; 0 when the scan is complete.
    pub next_cursor: u64,
    /// Live keys in this page.
    pub keys: Vec<Bytes>,
}

/// Failures a command turns into an error reply.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Fewer replicas answered than the quorum asked for.
    #[error("UNAVAILABLE {answered} of {required} required replicas answered")]
    Unavailable {
        /// Replicas that answered in time.
        answered: usize,
        /// Replicas the quorum needed.
        required: usize,
    },
    /// The quorum asked for is impossible (0, or more than N).
    #[error("ERR {0}")]
    BadQuorum(String),
    /// An admin request that cannot be carried out as asked.
    #[error("ERR {0}")]
    Admin(String),
    /// A write's context cannot be built on: it names a version this node
    /// never issued, or the node's version counter would overflow.
    #[error("ERR {0}")]
    BadVersion(String),
    /// Local storage failed.
    #[error("ERR storage error: {0}")]
    Storage(String),
    /// A forwarded write's coordinator did not answer in time; it may or
    /// may not have applied the write.
    #[error("TIMEOUT {0}")]
    Timeout(String),
    /// This node's clock is too far off the cluster's to coordinate writes.
    #[error(
        "CLOCKSKEW this node's clock is {0} ms off the cluster's (more than --max-offset): it refuses to coordinate writes and no other replica could"
    )]
    ClockSkew(i64),
    /// A command could not be handed to the node that serialises its key
    /// (it surely did not run there).
    #[error("ERR {0}")]
    NotDelivered(String),
    /// A write's context claims history no node can have made (counters
    /// past `MAX_COUNTER`: a forged or corrupt token); nothing was written.
    #[error("ERR {0}")]
    Context(String),
}

/// Cluster administration requested over RESP (DYN.MEMBERS, DYN.RING, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// DYN.MEMBERS: name, address, status, partitions owned.
    Members,
    /// DYN.RING: partition -> preference list.
    Ring,
    /// DYN.JOIN host:clusterport: ask that member to admit this node.
    Join(String),
    /// DYN.LEAVE `[node]`: hand off data, then leave (default: this node).
    Leave(Option<String>),
    /// DYN.HINTS: pending hints per target.
    Hints,
    /// DYN.DEBUG LOCAL key: this node's own stored copy, without quorum.
    LocalGet(Bytes),
    /// DYN.DEBUG PARTITION ...: fault injection on the node-to-node links
    /// (arguments as given after PARTITION).
    Partition(Vec<Bytes>),
    /// DYN.DEBUG MERKLE partition|ALL: this node's Merkle root of a
    /// partition (or one hash over all its partitions' roots), in hex.
    Merkle(String),
}

/// A structured admin reply; the front end renders it as RESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminValue {
    /// Status line (`+OK`).
    Status(String),
    /// Integer.
    Int(i64),
    /// Bulk string.
    Bulk(Bytes),
    /// Null.
    Null,
    /// Array of values.
    Array(Vec<AdminValue>),
    /// A causal context; the front end renders it as the signed token
    /// DYN.GET hands out, since only it holds the signing key.
    Context(VersionVector),
}

/// A member as Redis Cluster clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMember {
    /// Its node name.
    pub name: NodeId,
    /// The client address Redis Cluster clients are sent to, `host:port`
    /// (its `--cluster-client-port` if it has one, else its client port).
    pub client_addr: String,
    /// Node-to-node address, `host:port`.
    pub cluster_addr: String,
    /// Whether this node sees it up.
    pub up: bool,
}

/// The Redis Cluster view of the key space (CLUSTER SLOTS, SHARDS, NODES).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// This node.
    pub me: NodeId,
    /// Every member, by name.
    pub members: Vec<ClusterMember>,
    /// Every hash slot, in runs served by the same preference list.
    pub ranges: Vec<SlotRange>,
    /// Bumped by every membership change (Redis's config epoch).
    pub epoch: u64,
}

/// A write already queued in storage; resolves when it is committed.
pub type QueuedWrite = std::pin::Pin<Box<dyn Future<Output = Result<(), KvError>> + Send>>;

/// `field:value` lines for INFO's `dynamo` section, in order.
pub type InfoFields = Vec<(&'static str, String)>;

/// Runs client commands other nodes forward here (the front end's
/// dispatcher, registered when the node starts). The payload and its
/// reply are encoded by the front end; the node only carries them.
pub trait CommandRunner: Send + Sync {
    /// Runs one forwarded command and returns its encoded reply.
    fn run(&self, payload: Bytes) -> std::pin::Pin<Box<dyn Future<Output = Bytes> + Send>>;
}

/// The store as the front end sees it.
pub trait Kv: Send + Sync {
    /// All versions of `key` with their causal context (empty object if absent).
    fn get(
        &self,
        key: Bytes,
        opts: ReadOptions,
    ) -> impl Future<Output = Result<Object, KvError>> + Send;

    /// DYN.PUT / DYN.DEL: writes `payload`, superseding exactly the versions
    /// `context` covers.
    fn put(
        &self,
        key: Bytes,
        context: VersionVector,
        payload: Payload,
        opts: WriteOptions,
    ) -> impl Future<Output = Result<(), KvError>> + Send;

    /// Atomic (per coordinator) read-modify-write for plain Redis commands:
    /// `f` sees the live winner at `now_ms`, and what it returns supersedes
    /// every version read. The `T` it returns is handed back (the reply).
    fn modify<T, F>(&self, key: Bytes, f: F) -> impl Future<Output = Result<T, KvError>> + Send
    where
        T: Send + 'static,
        F: FnOnce(Option<LiveValue>, u64) -> (Change, T) + Send + 'static;

    /// A page of live keys in ring order starting at `cursor` (this node's data).
    fn scan(
        &self,
        cursor: u64,
        count: usize,
    ) -> impl Future<Output = Result<ScanPage, KvError>> + Send;

    /// Deletes every key (FLUSHDB / FLUSHALL).
    fn flush_all(&self) -> impl Future<Output = Result<(), KvError>> + Send;

    /// Deletes every key of database `db` (FLUSHDB), leaving the others.
    fn flush_db(&self, db: u8) -> impl Future<Output = Result<(), KvError>> + Send {
        let _ = db;
        async {
            Err(KvError::Admin(
                "FLUSHDB of one database is not available on this node".into(),
            ))
        }
    }

    /// Approximate number of keys stored on this node (DBSIZE).
    fn key_count(&self) -> u64;

    /// How many of those keys have an expiry (INFO keyspace).
    fn expiring_key_count(&self) -> u64 {
        0
    }

    /// Approximate number of keys of database `db` stored on this node.
    fn key_count_in(&self, db: u8) -> u64 {
        if db == 0 { self.key_count() } else { 0 }
    }

    /// How many of database `db`'s keys have an expiry.
    fn expiring_key_count_in(&self, db: u8) -> u64 {
        if db == 0 {
            self.expiring_key_count()
        } else {
            0
        }
    }

    /// Keys removed because their time to live ran out, since start
    /// (INFO `expired_keys`).
    fn expired_key_count(&self) -> u64 {
        0
    }

    /// The clock commands compute expiries with (ms since the epoch).
    fn now_ms(&self) -> u64;

    /// This node's name.
    fn node_id(&self) -> &NodeId;

    /// Replicas a write reaches (for WAIT): N - 1 in a cluster, 0 alone.
    fn replica_count(&self) -> usize;

    /// The `dynamo` section of INFO.
    fn info_fields(&self) -> InfoFields;

    /// Persists everything written so far (shutdown, SAVE).
    fn sync(&self) -> impl Future<Output = Result<(), KvError>> + Send;

    /// Plain SET / MSET without conditions: a blind write that supersedes
    /// every version the coordinator knows of. Cluster implementations skip
    /// the read round; the default goes through [`Kv::modify`].
    fn overwrite(
        &self,
        key: Bytes,
        change: Change,
    ) -> impl Future<Output = Result<(), KvError>> + Send {
        self.modify(key, move |_, _| (change, ()))
    }

    /// A plain SET whose write is queued in call order, so the SETs of one
    /// pipeline share a commit instead of waiting for each other: resolves
    /// once the write is queued (waiting only while storage's queue is
    /// full), to a [`QueuedWrite`] that resolves at its commit. `None` when
    /// this implementation cannot queue eagerly; the caller then uses
    /// [`Kv::overwrite`]. `more_follow` says the client sent more commands
    /// behind this one: the write then waits to share their commit, while
    /// a lone SET may be committed at once on the caller's thread.
    fn overwrite_queued(
        &self,
        key: Bytes,
        change: Change,
        more_follow: bool,
    ) -> impl Future<Output = Option<QueuedWrite>> + Send {
        let _ = (key, change, more_follow);
        std::future::ready(None)
    }

    /// The node where conditional commands on `key` are serialised (the
    /// first healthy node of its preference list), when that is another
    /// node; `None` when they run here.
    fn serialising_node(&self, key: &[u8]) -> Option<NodeId> {
        let _ = key;
        None
    }

    /// The other members this node believes up (Pub/Sub delivers to
    /// them). None for a node alone.
    fn live_peers(&self) -> Vec<NodeId> {
        Vec::new()
    }

    /// Keys (as stored: database prefix included) whose values this node's
    /// sweeper found expired and took out, for keyspace notifications'
    /// `expired` event. Each expiry is reported by one node of the cluster
    /// only. `None` when this store reports none.
    fn expired_keys(&self) -> Option<tokio::sync::broadcast::Receiver<Bytes>> {
        None
    }

    /// Sends an encoded command to `node`'s [`CommandRunner`] and returns
    /// its encoded reply.
    fn forward_command(
        &self,
        node: NodeId,
        payload: Bytes,
    ) -> impl Future<Output = Result<Bytes, KvError>> + Send {
        let _ = payload;
        async move {
            Err(KvError::Admin(format!(
                "cannot forward a command to {node} from this node"
            )))
        }
    }

    /// The Redis Cluster view of the key space; `None` when this store is
    /// not a cluster node.
    fn cluster_view(&self) -> Option<ClusterView> {
        None
    }

    /// The client address of `slot`'s master when this node is not among
    /// the slot's owners (a cluster-aware client is then told `MOVED`);
    /// `None` when this node serves the slot itself.
    fn moved_to(&self, slot: u16) -> Option<String> {
        let _ = slot;
        None
    }

    /// Cluster administration (DYN.MEMBERS, DYN.RING, DYN.JOIN, ...).
    fn admin(&self, cmd: AdminCommand) -> impl Future<Output = Result<AdminValue, KvError>> + Send {
        async move {
            Err(KvError::Admin(format!(
                "{cmd:?} is not available on this node"
            )))
        }
    }
}
