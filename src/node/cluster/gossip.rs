//! One gossip round and its answers, generic over the node they run in
//! ([`GossipNode`]): production drives them from [`super::workers::gossip`]
//! and [`super::service`] over the real transport; `tests/gossip_scale.rs`
//! drives the very same functions with 1,000 [`Membership`]s over an
//! in-process exchange.
//!
//! A round sends the digest of this node's state to one random reachable
//! peer (and to every suspected or unreachable one, so a dead node is
//! confirmed down and a returning one noticed within seconds). Full states
//! travel only when the two differ; who sends what is decided in
//! [`crate::core::gossip`]. The full-state exchange
//! ([`Request::Gossip`], both states every round) is still served, and
//! [`exchange_full`] still sends it, so its cost can be measured.

use super::ClusterKv;
use super::membership::Membership;
use crate::core::gossip::{DigestReply, must_push, on_digest};
use crate::core::{ClusterState, NodeId, Request, Response};
use crate::net::RpcError;
use crate::node::clock::NodeClock;
use crate::node::env::NodeEnv;
use std::future::Future;

/// What gossip needs from the node it runs in.
pub trait GossipNode: Send + Sync {
    /// The node's cluster state and failure detector.
    fn membership(&self) -> &Membership;
    /// The node's hybrid logical clock.
    fn clock(&self) -> &NodeClock;
    /// A random index below `len` (which reachable peer to gossip with).
    fn random_index(&self, len: usize) -> usize;
    /// Sends one request to `peer` (feeding the failure detector).
    fn call(
        &self,
        peer: &NodeId,
        req: Request,
    ) -> impl Future<Output = Result<Response, RpcError>> + Send;
    /// Persists the cluster state after it changed.
    fn save(&self) -> impl Future<Output = ()> + Send;
}

impl<E: NodeEnv> GossipNode for ClusterKv<E> {
    fn membership(&self) -> &Membership {
        &self.membership
    }

    fn clock(&self) -> &NodeClock {
        self.local.clock()
    }

    fn random_index(&self, len: usize) -> usize {
        ClusterKv::random_index(self, len)
    }

    fn call(
        &self,
        peer: &NodeId,
        req: Request,
    ) -> impl Future<Output = Result<Response, RpcError>> + Send {
        ClusterKv::call(self, peer, req)
    }

    fn save(&self) -> impl Future<Output = ()> + Send {
        self.save_membership()
    }
}

/// One round: exchange with one random healthy peer, probe every
/// suspected or unreachable one. Probing the suspected ones each round is
/// what bounds detection time: a peer that missed once is confirmed down
/// (or cleared) within [`crate::core::failure::MISSES_BEFORE_DOWN`] rounds
/// instead of waiting for the random pick to land on it.
pub async fn round<G: GossipNode>(node: &G) {
    let membership = node.membership();
    membership.settle_peer_log();
    let (healthy, mut targets): (Vec<NodeId>, Vec<NodeId>) = membership
        .peers()
        .into_iter()
        .partition(|p| !membership.is_suspected(p));
    if !healthy.is_empty() {
        targets.push(healthy[node.random_index(healthy.len())].clone());
    }
    for peer in targets {
        exchange(node, peer).await;
    }
}

/// Digest first; full states only where the two differ. Measures the
/// peer's clock offset from the first round trip.
pub async fn exchange<G: GossipNode>(node: &G, peer: NodeId) {
    let clock = node.clock();
    let sent = clock.physical_ms();
    let req = Request::GossipDigest {
        digest: node.membership().digest(),
        hlc_ms: clock.now_ms(),
    };
    let (heard, want) = match node.call(&peer, req).await {
        Ok(Response::GossipDelta {
            state,
            want,
            physical_ms,
            hlc_ms,
        }) => {
            let received = clock.physical_ms();
            node.membership()
                .record_offset(peer.clone(), sent, physical_ms, received);
            clock.observe(hlc_ms);
            (state, want)
        }
        _ => return,
    };
    let push = match heard {
        Some(heard) => {
            merge(node, &heard).await;
            node.membership().with(|ours| must_push(ours, &heard))
        }
        None => want,
    };
    if !push {
        return;
    }
    let req = Request::GossipPush {
        state: node.membership().snapshot(),
        hlc_ms: clock.now_ms(),
    };
    if let Ok(Response::GossipDelta {
        state: Some(heard),
        hlc_ms,
        ..
    }) = node.call(&peer, req).await
    {
        clock.observe(hlc_ms);
        merge(node, &heard).await;
    }
}

/// Whether `peer` holds the same state as this node (one digest round
/// trip; false when it cannot be reached).
pub async fn in_sync<G: GossipNode>(node: &G, peer: &NodeId) -> bool {
    let req = Request::GossipDigest {
        digest: node.membership().digest(),
        hlc_ms: node.clock().now_ms(),
    };
    matches!(
        node.call(peer, req).await,
        Ok(Response::GossipDelta {
            state: None,
            want: false,
            ..
        })
    )
}

/// The full-state exchange, as gossip worked before digests: both states
/// cross the wire every time.
pub async fn exchange_full<G: GossipNode>(node: &G, peer: NodeId) {
    let clock = node.clock();
    let sent = clock.physical_ms();
    let req = Request::Gossip {
        state: node.membership().snapshot(),
        hlc_ms: clock.now_ms(),
    };
    if let Ok(Response::Gossip {
        state,
        physical_ms,
        hlc_ms,
    }) = node.call(&peer, req).await
    {
        let received = clock.physical_ms();
        node.membership()
            .record_offset(peer, sent, physical_ms, received);
        clock.observe(hlc_ms);
        merge(node, &state).await;
    }
}

/// Answers a gossip request ([`Request::Gossip`], [`Request::GossipDigest`],
/// [`Request::GossipPush`]); anything else is an error.
pub async fn serve<G: GossipNode>(node: &G, req: Request) -> Response {
    let membership = node.membership();
    match req {
        Request::Gossip { state, hlc_ms } => {
            node.clock().observe(hlc_ms);
            merge(node, &state).await;
            Response::Gossip {
                state: membership.snapshot(),
                physical_ms: node.clock().physical_ms(),
                hlc_ms: node.clock().now_ms(),
            }
        }
        Request::GossipDigest { digest, hlc_ms } => {
            node.clock().observe(hlc_ms);
            match on_digest(&membership.digest(), &digest) {
                DigestReply::Same => delta(node, None, false),
                DigestReply::SendMine => delta(node, Some(membership.snapshot()), false),
                DigestReply::SendYours => delta(node, None, true),
            }
        }
        Request::GossipPush { state, hlc_ms } => {
            node.clock().observe(hlc_ms);
            merge(node, &state).await;
            // Send ours back only if the merge kept something the pusher lacks.
            let back = membership.with(|ours| must_push(ours, &state).then(|| ours.clone()));
            delta(node, back, false)
        }
        _ => Response::Error("not a gossip request".into()),
    }
}

fn delta<G: GossipNode>(node: &G, state: Option<ClusterState>, want: bool) -> Response {
    Response::GossipDelta {
        state,
        want,
        physical_ms: node.clock().physical_ms(),
        hlc_ms: node.clock().now_ms(),
    }
}

async fn merge<G: GossipNode>(node: &G, heard: &ClusterState) {
    if node.membership().merge(heard) {
        node.save().await;
    }
}
