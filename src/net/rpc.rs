//! The RPC vocabulary shared by client and server: the [`Handler`] trait,
//! [`RpcConfig`], [`RpcError`] and the fault-injection [`Blocklist`].
//!
//! The client ([`RpcClient`]) and the server loop ([`serve`]) live in their own
//! files and are re-exported here, so everything RPC is reachable as
//! `net::rpc::*`.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::core::{ClusterSecret, DerivedKey, NodeId};

pub use super::client::RpcClient;
use super::frame::MAX_FRAME_LEN;
pub use super::server::serve;

/// Serves requests of type `Req` with responses of type `Resp`.
///
/// Generic so this layer does not depend on the cluster's message enums.
/// Requests on one connection run concurrently, so `handle` takes `&self`.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Answers one request from node `from`.
    fn handle(&self, from: NodeId, req: Req) -> impl Future<Output = Resp> + Send;
}

/// The cluster id, shared by a node's client and server so a node that
/// joins a cluster at run time (DYN.JOIN) switches both at once.
#[derive(Clone, Debug, Default)]
pub struct ClusterId(Arc<RwLock<String>>);

impl ClusterId {
    /// A cell holding `id`.
    pub fn new(id: String) -> Self {
        Self(Arc::new(RwLock::new(id)))
    }

    /// The current id.
    pub fn get(&self) -> String {
        self.0.read().clone()
    }

    /// Replaces the id.
    pub fn set(&self, id: String) {
        *self.0.write() = id;
    }
}

/// Settings of one node's RPC client and server.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Cluster id stamped on every envelope and required of incoming ones.
    /// Empty means "not joined yet" (see [`serve`]).
    pub cluster: ClusterId,
    /// This node, stamped as `from` on every envelope.
    pub node: NodeId,
    /// Whole-call deadline on the client for [`RpcClient::call`] (per call
    /// with [`RpcClient::call_with_timeout`]): waiting for an in-flight
    /// permit, connecting, sending and awaiting the reply all count.
    pub request_timeout: Duration,
    /// Deadline for one TCP connect (also bounded by `request_timeout`).
    pub connect_timeout: Duration,
    /// Client: calls outstanding per peer address. Server: requests handled
    /// concurrently per connection (further frames wait unread).
    pub max_in_flight_per_peer: usize,
    /// Key of the handshake every connection opens with (derived from the
    /// cluster secret): both ends prove they hold it before any envelope.
    pub auth_key: DerivedKey,
}

impl RpcConfig {
    /// Defaults: 1 s per request, 500 ms per connect, 1024 calls in flight.
    /// Connections authenticate with `secret`: only peers holding the same
    /// secret are talked to or answered.
    pub fn new(cluster: impl Into<String>, node: NodeId, secret: &ClusterSecret) -> Self {
        Self {
            cluster: ClusterId::new(cluster.into()),
            node,
            request_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            max_in_flight_per_peer: 1024,
            auth_key: secret.handshake_key(),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// No reply within `request_timeout`.
    #[error("rpc timed out")]
    Timeout,
    /// The TCP connection could not be established.
    #[error("rpc connect failed: {0}")]
    Connect(String),
    /// The connection broke (or was closed by the peer) before the reply came.
    #[error("rpc connection failed: {0}")]
    Io(String),
    /// The peer refused the request (wrong cluster or protocol version), or
    /// could not encode its reply to it (too large): the peer is up.
    #[error("rpc refused by peer: {0}")]
    Refused(String),
    /// The peer's response could not be decoded.
    #[error("rpc codec error: {0}")]
    Decode(String),
    /// The peer is on this node's [`Blocklist`] (simulated partition).
    #[error("rpc peer is partitioned away (fault injection)")]
    Partitioned,
    /// This request could not be encoded. Nothing was sent; the connection
    /// and other calls on it are unaffected.
    #[error("rpc request could not be encoded: {0}")]
    Encode(String),
    /// This request's envelope is this many bytes, more than
    /// [`MAX_FRAME_LEN`]. Nothing was sent; the connection and other calls on
    /// it are unaffected.
    #[error("rpc request of {0} bytes exceeds the {MAX_FRAME_LEN} byte frame limit")]
    TooLarge(usize),
    /// The call's time ran out while it waited for one of the
    /// `max_in_flight_per_peer` slots: this node has too many calls
    /// outstanding to the peer. Nothing was sent.
    #[error("rpc not sent: too many calls in flight to this peer")]
    Overloaded,
    /// The peer and this node do not share the cluster secret (the
    /// handshake failed). Nothing was sent.
    #[error("{0}")]
    Auth(String),
}

impl RpcError {
    /// Whether the request surely never reached the peer, so another node
    /// may safely be asked instead.
    pub fn surely_not_delivered(&self) -> bool {
        matches!(
            self,
            RpcError::Connect(_)
                | RpcError::Partitioned
                | RpcError::Refused(_)
                | RpcError::Encode(_)
                | RpcError::TooLarge(_)
                | RpcError::Overloaded
                | RpcError::Auth(_)
        )
    }

    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::Timeout => "timeout",
            RpcError::Connect(_) => "connect",
            RpcError::Io(_) => "io",
            RpcError::Refused(_) => "refused",
            RpcError::Decode(_) => "decode",
            RpcError::Partitioned => "partitioned",
            RpcError::Encode(_) => "encode",
            RpcError::TooLarge(_) => "too_large",
            RpcError::Overloaded => "overloaded",
            RpcError::Auth(_) => "auth",
        }
    }

    /// Whether this failure says something about the peer's reachability,
    /// so a failure detector should count it against the peer.
    ///
    /// True for [`Timeout`](RpcError::Timeout), [`Connect`](RpcError::Connect),
    /// [`Io`](RpcError::Io) and [`Partitioned`](RpcError::Partitioned) (fault
    /// injection simulates an unreachable peer). False for the rest: a
    /// refusal or an undecodable reply comes from a peer that is up, and
    /// [`Encode`](RpcError::Encode), [`TooLarge`](RpcError::TooLarge) and
    /// [`Overloaded`](RpcError::Overloaded) are this node's own problem with
    /// one call, which must not get a healthy peer marked down.
    pub fn is_remote_failure(&self) -> bool {
        match self {
            RpcError::Timeout | RpcError::Connect(_) | RpcError::Io(_) | RpcError::Partitioned => {
                true
            }
            RpcError::Refused(_)
            | RpcError::Decode(_)
            | RpcError::Encode(_)
            | RpcError::TooLarge(_)
            | RpcError::Overloaded
            | RpcError::Auth(_) => false,
        }
    }
}

/// Peers this node pretends it cannot reach: fault injection for tests
/// (`DYN.DEBUG PARTITION`).
///
/// Share one `Arc<Blocklist>` between this node's [`RpcClient`] and [`serve`]:
/// the client fails calls to a blocked peer at once with
/// [`RpcError::Partitioned`], and the server drops requests from a blocked
/// peer (closes the connection, sends no reply). Together that simulates a
/// network partition at this node in both directions, even if the peer
/// itself blocks nothing.
#[derive(Debug, Default)]
pub struct Blocklist(RwLock<BTreeSet<NodeId>>);

impl Blocklist {
    /// An empty blocklist (nothing partitioned).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set of blocked peers; an empty set heals the partition.
    pub fn set(&self, peers: BTreeSet<NodeId>) {
        *self.0.write() = peers;
    }

    /// Whether `peer` is blocked.
    pub fn contains(&self, peer: &NodeId) -> bool {
        self.0.read().contains(peer)
    }

    /// The blocked peers, for diagnostics.
    pub fn snapshot(&self) -> BTreeSet<NodeId> {
        self.0.read().clone()
    }
}
