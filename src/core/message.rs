//! What nodes say to each other (carried by `net` as postcard frames).

use super::membership::{ClusterState, Member};
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
    /// Your copy of `key`.
    Get {
        /// Key.
        key: Bytes,
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
    },
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
    },
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
    /// Refused or failed, with a reason for a person.
    Error(String),
    /// A coordinated write could not reach its quorum.
    Unavailable {
        /// Replicas that acknowledged.
        answered: usize,
        /// Replicas required.
        required: usize,
    },
}
