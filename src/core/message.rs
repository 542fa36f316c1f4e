//! What nodes say to each other (carried by `net` as postcard frames).

use super::gossip::StateDigest;
use super::membership::{ClusterState, Member};
use super::merkle::{Hash, NodeHash};
use super::object::{Object, Payload};
use super::version::{NodeId, VersionVector};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Which versions a coordinated write supersedes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteContext {
    /// Exactly the versions this context covers (DYN.PUT, read-modify-write).
    Client(VersionVector),
    /// Everything the coordinator holds (plain SET: last writer wins).
    CoordinatorLatest,
}

/// A request from one node to another.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// Liveness probe.
    Ping,
    /// Your copy of `key` (with any hints you hold for it).
    Get {
        /// Key.
        key: Bytes,
    },
    /// Merge each object into your copy (batched hint delivery).
    PutMany {
        /// Keys and full objects.
        items: Vec<(Bytes, Object)>,
    },
    /// Merge `object` into your copy of `key` (replication, read repair,
    /// hint delivery); with `hint_for`, keep it as a hint for that node.
    Put {
        /// Key.
        key: Bytes,
        /// Full object (all siblings, context).
        object: Object,
        /// The unreachable owner this copy stands in for.
        hint_for: Option<NodeId>,
    },
    /// Coordinate this write (you are in the key's preference list).
    Coordinate {
        /// Key.
        key: Bytes,
        /// Versions it supersedes.
        context: WriteContext,
        /// New value or tombstone.
        payload: Payload,
        /// Acks required (None = cluster default).
        w: Option<usize>,
        /// The forwarder's hybrid logical clock, so the version is stamped
        /// after everything the forwarder has seen.
        hlc_ms: u64,
    },
    /// Delete every key you hold through the quorum path (FLUSHALL).
    FlushAll,
    /// Admit this node.
    Join {
        /// Its name.
        node: NodeId,
        /// Its addresses.
        member: Member,
    },
    /// Here is my cluster state; answer with yours.
    Gossip {
        /// Sender's state.
        state: ClusterState,
        /// Sender's hybrid logical clock.
        hlc_ms: u64,
    },
    /// Gossip by digest: here is my state's digest; answer with
    /// [`Response::GossipDelta`] (your state only if it differs).
    GossipDigest {
        /// Digest of the sender's state.
        digest: StateDigest,
        /// Sender's hybrid logical clock.
        hlc_ms: u64,
    },
    /// Gossip by digest, second step: my state, which holds something yours
    /// lacks; answer with [`Response::GossipDelta`] (your merged state only
    /// if it is not exactly mine).
    GossipPush {
        /// Sender's state.
        state: ClusterState,
        /// Sender's hybrid logical clock.
        hlc_ms: u64,
    },
    /// Tombstone purge, step one: merge each tombstone you own and say,
    /// per item, whether you now hold exactly it and no hint for the key.
    GcPush {
        /// The tombstones to be purged.
        items: Vec<GcItem>,
    },
    /// Tombstone purge, step two: delete each record you own only if it is
    /// still exactly this object (a newer write since step one wins).
    GcDelete {
        /// Keys and the objects pushed in step one.
        items: Vec<(Bytes, Object)>,
    },
    /// Merge these records of `partition`: part of its transfer to you
    /// during a membership change.
    Handoff {
        /// The partition they belong to.
        partition: usize,
        /// Keys and full objects.
        items: Vec<(Bytes, Object)>,
    },
    /// Anti-entropy: my Merkle roots of these partitions; which of yours
    /// differ? (answered with [`Response::AeDiffer`]: partition, your count)
    AeRoots {
        /// Partition and root.
        roots: Vec<(u32, NodeHash)>,
    },
    /// Anti-entropy: my hashes of these nodes of one partition's tree at
    /// `level` (1 = middle, 2 = leaf); which of yours differ?
    AeLevel {
        /// Partition.
        partition: u32,
        /// Tree level of the nodes.
        level: u8,
        /// Node index at that level and its hash.
        nodes: Vec<(u16, NodeHash)>,
    },
    /// Anti-entropy: my (key, record digest) entries of these leaves (None:
    /// of the whole partition); send me your objects that differ and name
    /// the keys you lack.
    AeLeaves {
        /// Partition.
        partition: u32,
        /// Leaves compared (None: all).
        leaves: Option<Vec<u16>>,
        /// My entries in them.
        entries: Vec<(Bytes, Hash)>,
    },
    /// Anti-entropy: one hash over my roots of these partitions (a bitmap,
    /// bit p of byte p / 8); is yours the same? (answered with
    /// [`Response::AeSame`]), so replicas in sync compare everything they
    /// share in one small request.
    AeSummary {
        /// Bitmap of the partitions covered.
        partitions: Bytes,
        /// `merkle::combine_roots` over them, ascending.
        combined: Hash,
    },
    /// Delete every key of database `db` you hold through the quorum path
    /// (FLUSHDB in a database other than the only one in use).
    FlushDb {
        /// The SELECT index.
        db: u8,
    },
    /// Run this client command here: you are the first healthy node of its
    /// key's preference list, where conditional commands are serialised.
    /// The encoding is the front end's own; nodes only carry it.
    Command {
        /// The encoded command.
        payload: Bytes,
    },
}

/// One key of a tombstone purge round ([`Request::GcPush`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GcItem {
    /// Key.
    pub key: Bytes,
    /// The purger's copy: only tombstones, older than the grace.
    pub object: Object,
    /// The receiver is one of the key's owners (it stores the tombstone);
    /// otherwise it only checks that it holds no hint for the key.
    pub owner: bool,
}

/// An answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    /// Done.
    Ack,
    /// A copy (empty object when absent).
    Object(Object),
    /// A cluster state.
    State(ClusterState),
    /// The answer to a join: the cluster state, and whether the cluster
    /// already knew a member of that name (a node whose disk was replaced).
    Admitted {
        /// The state with the new member.
        state: ClusterState,
        /// The name was a member before this join.
        known_before: bool,
    },
    /// The answer to gossip: the peer's state and clocks.
    Gossip {
        /// The peer's state.
        state: ClusterState,
        /// The peer's physical clock when it answered (offset measurement).
        physical_ms: u64,
        /// The peer's hybrid logical clock.
        hlc_ms: u64,
    },
    /// This replica lost its data and is being rebuilt: it may not vote in
    /// a read quorum, but should receive the read's repair.
    Rebuilding,
    /// Not carried out; ask another node (e.g. this node's clock is off).
    Refused(String),
    /// Refused or failed, with a reason for a person.
    Error(String),
    /// A coordinated write could not reach its quorum.
    Unavailable {
        /// Replicas that acknowledged.
        answered: usize,
        /// Replicas required.
        required: usize,
    },
    /// The answer to [`Request::GcPush`] / [`Request::GcDelete`]: per item,
    /// in order, whether it is ready to purge / was deleted (or absent).
    GcReady(Vec<bool>),
    /// The answer to [`Request::GossipDigest`] and [`Request::GossipPush`].
    GossipDelta {
        /// The peer's state, when the caller should merge it.
        state: Option<ClusterState>,
        /// The peer wants the caller's state (it is newer).
        want: bool,
        /// The peer's physical clock when it answered (offset measurement).
        physical_ms: u64,
        /// The peer's hybrid logical clock.
        hlc_ms: u64,
    },
    /// Anti-entropy: the partitions or tree nodes whose hash differs here,
    /// each with this side's entry count below it.
    AeDiffer {
        /// Index (partition or node) and entry count.
        items: Vec<(u32, u64)>,
    },
    /// Anti-entropy: this side's objects for keys the asker lacks or holds
    /// differently, and the keys only the asker holds.
    AeLeaves {
        /// Keys and full objects.
        objects: Vec<(Bytes, Object)>,
        /// Keys this side wants.
        want: Vec<Bytes>,
    },
    /// Anti-entropy: whether this side's summary equals the asker's.
    AeSame(bool),
    /// The reply to a [`Request::Command`], encoded by the front end.
    CommandReply(Bytes),
}
