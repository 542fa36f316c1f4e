//! Background workers: gossip (membership + failure detection) and hinted
//! handoff. Each runs once a second until the stop token fires.

use super::ClusterKv;
use crate::core::{NodeId, Request, Response};
use crate::store::hints::Hints;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Hints delivered per target per round (bounds handoff's share of the
/// network so foreground requests keep their latency).
const HANDOFF_BATCH: usize = 512;

/// Exchanges cluster state with one random reachable peer and probes every
/// unreachable one, so a returning node is noticed within a second.
pub async fn gossip(node: Arc<ClusterKv>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let peers = node.membership.peers();
        let (up, down): (Vec<NodeId>, Vec<NodeId>) =
            peers.into_iter().partition(|p| node.membership.is_up(p));
        let mut targets = down;
        if !up.is_empty() {
            let pick = rand::random_range(0..up.len());
            targets.push(up[pick].clone());
        }
        for peer in targets {
            let state = node.membership.snapshot();
            if let Ok(Response::State(theirs)) = node.call(&peer, Request::Gossip { state }).await {
                node.membership.merge(&theirs);
            }
        }
    }
}

/// Delivers hints to their owners when they answer; a delivered hint is
/// deleted unless a newer write was merged into it meanwhile.
pub async fn handoff(node: Arc<ClusterKv>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let counts = node.hints.counts();
        for target in counts.keys() {
            if !node.membership.with(|s| s.members.contains_key(target)) {
                continue;
            }
            deliver(&node, target).await;
        }
    }
}

async fn deliver(node: &Arc<ClusterKv>, target: &NodeId) {
    let batch = match node.hints.list(target, HANDOFF_BATCH, usize::MAX).await {
        Ok(batch) => batch,
        Err(_) => return,
    };
    for (key, object) in batch {
        let req = Request::Put {
            key: key.clone(),
            object: object.clone(),
            hint_for: None,
        };
        match node.call(target, req).await {
            Ok(Response::Ack) => {
                let removed = node.hints.remove_if_unchanged(target, key, object).await;
                if matches!(removed, Ok(true)) {
                    node.stats.hints_delivered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("dynkv_hints_delivered_total").increment(1);
                }
            }
            // Still unreachable: try again next round.
            _ => return,
        }
    }
}
