//! Background workers: gossip (membership, failure detection, clock
//! offsets) and hinted handoff (delivery and expiry). Each runs until the
//! stop token fires.

use super::ClusterKv;
use crate::core::{NodeId, Object, Request, Response};
use crate::net::RpcError;
use crate::node::env::NodeEnv;
use crate::store::hints::Hints;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Hints sent to one owner in one RPC.
const HANDOFF_BATCH: usize = 256;
/// Encoded bytes of hints in one RPC (far below the RPC frame limit, so a
/// batch of ordinary hints always fits; one oversized hint goes alone).
const HANDOFF_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How often hints past their TTL are dropped.
const HINT_EXPIRY_EVERY: Duration = Duration::from_secs(60);

/// Runs a gossip round ([`super::gossip::round`]) every second: cluster
/// state, failure detection, clock offsets.
pub async fn gossip<E: NodeEnv>(node: Arc<ClusterKv<E>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        node.publish_gauges();
        super::gossip::round(&*node).await;
    }
}

/// Delivers hints to their owners when they answer, in batches; a
/// delivered hint is deleted unless a newer write was merged into it
/// meanwhile. Hints past their TTL are dropped once a minute.
pub async fn handoff<E: NodeEnv>(node: Arc<ClusterKv<E>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_expiry = tokio::time::Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if last_expiry.elapsed() >= HINT_EXPIRY_EVERY {
            last_expiry = tokio::time::Instant::now();
            let now = node.local.clock().now_ms();
            match node.hints.expire(now).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!("dropped {n} hints older than --hint-ttl"),
                Err(e) => tracing::warn!("hint expiry failed: {e}"),
            }
        }
        let targets: Vec<NodeId> = node.hints.counts().into_keys().collect();
        for target in targets {
            if stop.is_cancelled() {
                return;
            }
            let (member, removed) = node.membership.with(|s| {
                (
                    s.members.contains_key(&target),
                    s.removed.contains_key(&target),
                )
            });
            // This node counts as up for itself: its own hints are merged.
            if member && node.membership.is_up(&target) {
                deliver_all(&node, &target).await;
            } else if !member && removed {
                // Its owner left the cluster: the key's owners take them.
                while node.hints.counts().get(&target).is_some_and(|c| *c > 0) {
                    if stop.is_cancelled() || !node.retarget_hints(&target).await {
                        break;
                    }
                }
            }
        }
    }
}

/// Delivers every hint held for `target` (batch after batch) until one
/// fails to arrive.
async fn deliver_all<E: NodeEnv>(node: &Arc<ClusterKv<E>>, target: &NodeId) {
    loop {
        let batch = match node
            .hints
            .list(target, HANDOFF_BATCH, HANDOFF_BATCH_BYTES)
            .await
        {
            Ok(batch) if !batch.is_empty() => batch,
            _ => return,
        };
        let full = batch.len() == HANDOFF_BATCH;
        if !deliver_batch(node, target, batch).await || !full {
            return;
        }
    }
}

/// Sends one batch; returns false if the owner could not be reached.
async fn deliver_batch<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    target: &NodeId,
    batch: Vec<(Bytes, Object)>,
) -> bool {
    if target == node.me() {
        // Hints for this very node (kept while it was being replaced, or
        // left by an older incarnation): merge them into the store.
        for (key, object) in batch {
            if node
                .local
                .merge_local(key.clone(), object.clone())
                .await
                .is_ok()
            {
                forget(node, target, key, object).await;
            }
        }
        return true;
    }
    let req = Request::PutMany {
        items: batch.clone(),
    };
    match node.call(target, req).await {
        Ok(Response::Ack) => {
            for (key, object) in batch {
                forget(node, target, key, object).await;
            }
            true
        }
        // This batch cannot be sent as a whole (too large to encode): send
        // each hint alone, and give up on any that cannot be sent at all,
        // so one bad hint never blocks the ones behind it.
        Err(e) if !e.is_remote_failure() && batch.len() > 1 => {
            let _ = e;
            for (key, object) in batch {
                let single = Request::PutMany {
                    items: vec![(key.clone(), object.clone())],
                };
                match node.call(target, single).await {
                    Ok(Response::Ack) => forget(node, target, key, object).await,
                    Err(e) if !e.is_remote_failure() => discard(node, target, key, &e).await,
                    _ => return false,
                }
            }
            true
        }
        Err(e) if !e.is_remote_failure() => {
            for (key, _) in batch {
                discard(node, target, key, &e).await;
            }
            true
        }
        _ => false,
    }
}

async fn forget<E: NodeEnv>(node: &ClusterKv<E>, target: &NodeId, key: Bytes, object: Object) {
    if let Ok(true) = node.hints.remove_if_unchanged(target, key, object).await {
        node.stats.hints_delivered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dynkv_hints_delivered_total").increment(1);
    }
}

async fn discard<E: NodeEnv>(node: &ClusterKv<E>, target: &NodeId, key: Bytes, why: &RpcError) {
    tracing::warn!(%target, "dropping a hint that cannot be delivered: {why}");
    metrics::counter!("dynkv_hints_dropped_total").increment(1);
    if let Err(e) = node.hints.discard(target, key).await {
        tracing::warn!("cannot drop hint: {e}");
    }
}
