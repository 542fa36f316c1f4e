//! Partition handoff for membership changes: the I/O shell around the pure
//! [`crate::core::Transition`].
//!
//! While a change runs, each node streams the partitions it is the source
//! of (the core decides which) to their new owners in batches, rate-limited
//! and yielding to client writes when the storage writer is busy, then
//! records the transfer in the shared state (gossip spreads it; the state
//! commits when the last one is in). A crash of either side just restarts
//! the partition: merges are idempotent. After a commit, once every node
//! has had time to hear of it, a node deletes its copies of partitions it
//! no longer replicates (Garage's offload), so every key ends on exactly N
//! nodes. A node that left the cluster stops itself. Hints held for a
//! removed member go to the key's current owners instead.

use super::ClusterKv;
use crate::core::{NodeId, Object, Request, Response, ring_hash};
use crate::kv::{AdminValue, KvError};
use crate::node::env::NodeEnv;
use crate::store::ReplicaStore;
use crate::store::hints::Hints;
use bytes::Bytes;
use futures::StreamExt as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Records read from the store per scan.
const SCAN_BATCH: usize = 256;
/// Value bytes per transfer RPC (one larger record goes alone).
const SEND_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// How fast one node streams partitions (bytes/s): a change must not
/// starve client traffic.
const BYTES_PER_SEC: u64 = 64 * 1024 * 1024;
/// Past this many queued writes the transfer waits: client writes first.
const QUEUE_DEEP: u64 = 2_000;
/// How long a transition must be known before sources stream: long enough
/// for gossip to tell every coordinator to write to the next owners too,
/// so no write lands only behind the stream's cursor.
const START_DELAY: Duration = Duration::from_secs(2);
/// How long after a commit a node keeps partitions it no longer owns:
/// nodes that have not heard of the commit yet still read from it.
const DROP_GRACE: Duration = Duration::from_secs(10);
/// Partitions streamed at once (the byte budget is shared among them).
const CONCURRENT_STREAMS: usize = 4;
/// How often completed transfers are recorded while streaming.
const RECORD_EVERY: Duration = Duration::from_millis(500);
/// How often the worker looks for work.
const TICK: Duration = Duration::from_millis(250);
/// How long a node that has left keeps telling the remaining members
/// before it stops anyway (some may be down or cut off for longer).
const FAREWELL_LIMIT: Duration = Duration::from_secs(60);

/// Runs membership-change work until `stop` fires (or this node has left
/// the cluster, when it fires `stop` itself).
pub async fn run<E: NodeEnv>(node: Arc<ClusterKv<E>>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    // (generation, next ring) of the transition last seen, and since when.
    let mut seen: Option<(u64, crate::core::Ring, Instant)> = None;
    // Generation whose unowned partitions were dropped (None: not yet in
    // this run, so leftovers of a crash are dropped too).
    let mut dropped: Option<u64> = None;
    let mut committed_at: (u64, Instant) = (u64::MAX, Instant::now());
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let state = node.membership.snapshot();
        metrics::gauge!("dynkv_partitions_moving").set(state.pending_moves().len() as f64);
        if !state.members.contains_key(node.me()) {
            if state.removed.contains_key(node.me()) {
                farewell(&node, &stop).await;
                tracing::info!("this node has left the cluster: stopping");
                stop.cancel();
                return;
            }
            continue;
        }
        if committed_at.0 != state.generation {
            committed_at = (state.generation, Instant::now());
        }
        if let Some(t) = &state.transition {
            let fresh =
                !matches!(&seen, Some((g, ring, _)) if *g == state.generation && *ring == t.next);
            if fresh {
                seen = Some((state.generation, t.next.clone(), Instant::now()));
            }
            let ready = seen
                .as_ref()
                .is_some_and(|(_, _, at)| at.elapsed() >= START_DELAY);
            if ready {
                let moves = t.moves_from(&state.ring, state.n, node.me(), |m| {
                    node.membership.is_up(m)
                });
                // Recorded in groups: one state change (and one fsync of it)
                // per group, not per partition.
                let mut sent = Vec::new();
                let mut since = Instant::now();
                let mut streams = futures::stream::iter(moves.into_iter().map(|m| {
                    let (node, stop) = (node.clone(), stop.clone());
                    async move {
                        let result = send_partition(&node, m.partition, &m.to, &stop).await;
                        (m, result)
                    }
                }))
                .buffer_unordered(CONCURRENT_STREAMS);
                while let Some((m, result)) = streams.next().await {
                    if stop.is_cancelled() {
                        return;
                    }
                    match result {
                        Ok(()) => sent.push((m.partition, m.to)),
                        Err(e) => {
                            tracing::warn!(partition = m.partition, to = %m.to, "partition transfer failed, retrying: {e}");
                        }
                    }
                    if since.elapsed() >= RECORD_EVERY {
                        record_transfers(&node, std::mem::take(&mut sent)).await;
                        since = Instant::now();
                    }
                }
                record_transfers(&node, sent).await;
            }
        }
        let settled = committed_at.1.elapsed() >= DROP_GRACE;
        if settled && dropped != Some(state.generation) {
            drop_unowned(&node, &stop).await;
            dropped = Some(state.generation);
        }
    }
}

/// Records completed transfers; on the commit they complete, tells every
/// member at once instead of waiting for gossip.
async fn record_transfers<E: NodeEnv>(node: &Arc<ClusterKv<E>>, sent: Vec<(usize, NodeId)>) {
    if sent.is_empty() {
        return;
    }
    let me = node.me().clone();
    let before = node.membership.with(|s| s.generation);
    let changed = node
        .membership
        .change(|s| Ok::<_, std::convert::Infallible>(s.with_transfers(&sent, &me)))
        .map(|(_, changed)| changed)
        .unwrap_or(false);
    if !changed {
        return;
    }
    node.save_membership().await;
    if node.membership.with(|s| s.generation) != before {
        tracing::info!("membership change complete: the new ring is committed");
        announce(node).await;
    }
}

/// Gossips the current state to every member now.
pub(crate) async fn announce<E: NodeEnv>(node: &Arc<ClusterKv<E>>) {
    let peers: Vec<NodeId> = node.membership.with(|s| {
        s.members
            .keys()
            .filter(|m| *m != node.me())
            .cloned()
            .collect()
    });
    for peer in peers {
        super::gossip::exchange(&**node, peer).await;
    }
}

/// Before a node that has left stops: makes every remaining member hold
/// this node's state. The commit that removed it may exist only here (it
/// recorded the last transfer itself); stopping before anyone heard of it
/// would leave the others waiting on a transition forever.
async fn farewell<E: NodeEnv>(node: &Arc<ClusterKv<E>>, stop: &CancellationToken) {
    let deadline = Instant::now() + FAREWELL_LIMIT;
    let mut told: std::collections::BTreeSet<NodeId> = Default::default();
    loop {
        let peers: Vec<NodeId> = node.membership.with(|s| {
            s.members
                .keys()
                .filter(|m| *m != node.me() && !told.contains(*m))
                .cloned()
                .collect()
        });
        if peers.is_empty() {
            return;
        }
        for peer in peers {
            super::gossip::exchange(&**node, peer.clone()).await;
            if super::gossip::in_sync(&**node, &peer).await {
                told.insert(peer);
            }
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                told = told.len(),
                "left the cluster: stopping before every member confirmed it"
            );
            return;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// The ring hashes of partition `p`: `[start, end)`, end None for the last.
fn partition_range<E: NodeEnv>(node: &ClusterKv<E>, p: usize) -> (u64, Option<u64>) {
    node.membership.with(|s| {
        let start = s.ring.partition_start(p);
        let end = (p + 1 < s.ring.partitions()).then(|| s.ring.partition_start(p + 1));
        (start, end)
    })
}

/// Every record this node holds of partition `p`, page by page; `each`
/// gets each page (stopping on its error).
async fn for_each_page<E: NodeEnv, F, Fut>(
    node: &ClusterKv<E>,
    p: usize,
    stop: &CancellationToken,
    mut each: F,
) -> Result<(), String>
where
    F: FnMut(Vec<(Bytes, Object)>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let (start, end) = partition_range(node, p);
    let mut cursor = start;
    loop {
        if stop.is_cancelled() {
            return Err("stopping".into());
        }
        while node.local.store().queue_depth() > QUEUE_DEEP {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let page = node
            .local
            .store()
            .scan(cursor, SCAN_BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let full = page.len() == SCAN_BATCH;
        let last = page.last().map(|(h, _, _)| *h);
        let items: Vec<(Bytes, Object)> = page
            .into_iter()
            .filter(|(h, _, _)| end.is_none_or(|e| *h < e))
            .map(|(_, k, o)| (k, o))
            .collect();
        let reached_end = match (last, end) {
            (Some(l), Some(e)) => l >= e,
            _ => false,
        };
        if !items.is_empty() {
            each(items).await?;
        }
        match last.and_then(|l| l.checked_add(1)) {
            Some(next) if full && !reached_end => cursor = next,
            _ => return Ok(()),
        }
    }
}

/// Streams this node's copy of partition `p` to `to`.
async fn send_partition<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    p: usize,
    to: &NodeId,
    stop: &CancellationToken,
) -> Result<(), String> {
    for_each_page(node, p, stop, |items| async move {
        for batch in split_by_bytes(items) {
            let bytes: usize = batch
                .iter()
                .map(|(k, o)| k.len() + super::object_bytes(o))
                .sum();
            let keys = batch.len() as u64;
            let started = Instant::now();
            let req = Request::Handoff {
                partition: p,
                items: batch,
            };
            match node.call(to, req).await {
                Ok(Response::Ack) => {}
                Ok(Response::Error(e)) => return Err(format!("{to}: {e}")),
                Ok(_) => return Err(format!("{to} gave an unexpected answer")),
                Err(e) => return Err(e.to_string()),
            }
            node.stats
                .handoff_bytes_sent
                .fetch_add(bytes as u64, Ordering::Relaxed);
            node.stats
                .handoff_keys_sent
                .fetch_add(keys, Ordering::Relaxed);
            metrics::counter!("dynkv_handoff_bytes_sent_total").increment(bytes as u64);
            metrics::counter!("dynkv_handoff_keys_sent_total").increment(keys);
            // The byte budget: a batch of b bytes takes at least b / rate.
            let rate = (BYTES_PER_SEC / CONCURRENT_STREAMS as u64) as f64;
            let budget = Duration::from_secs_f64(bytes as f64 / rate);
            if let Some(rest) = budget.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        Ok(())
    })
    .await
}

/// Splits records into batches of at most [`SEND_BATCH_BYTES`] value bytes.
fn split_by_bytes(items: Vec<(Bytes, Object)>) -> Vec<Vec<(Bytes, Object)>> {
    let mut out: Vec<Vec<(Bytes, Object)>> = Vec::new();
    let mut size = 0;
    for (k, o) in items {
        let b = k.len() + super::object_bytes(&o);
        match out.last_mut() {
            Some(last) if size + b <= SEND_BATCH_BYTES => {
                last.push((k, o));
                size += b;
            }
            _ => {
                out.push(vec![(k, o)]);
                size = b;
            }
        }
    }
    out
}

/// Deletes this node's copies of every partition it replicates in neither
/// the committed ring nor the next one.
async fn drop_unowned<E: NodeEnv>(node: &Arc<ClusterKv<E>>, stop: &CancellationToken) {
    let n = node.effective_n();
    let unowned: Vec<usize> = node.membership.with(|s| {
        (0..s.ring.partitions())
            .filter(|&p| {
                !s.ring.preference_list(p, n).contains(node.me())
                    && !s
                        .next_preference_list(p, n)
                        .is_some_and(|l| l.contains(node.me()))
            })
            .collect()
    });
    let mut dropped = 0u64;
    for p in unowned {
        let result = for_each_page(node, p, stop, |items| {
            let count = items.len() as u64;
            async move {
                for (key, _) in items {
                    node.local
                        .remove_local(key)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                node.stats
                    .handoff_keys_dropped
                    .fetch_add(count, Ordering::Relaxed);
                metrics::counter!("dynkv_handoff_keys_dropped_total").increment(count);
                Ok(())
            }
        })
        .await;
        match result {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(
                    partition = p,
                    "cannot drop a partition that moved away: {e}"
                );
                return;
            }
        }
        dropped += 1;
    }
    if dropped > 0 {
        tracing::debug!("checked {dropped} partitions this node no longer replicates");
    }
}

impl<E: NodeEnv> ClusterKv<E> {
    /// Merges records of a partition sent to this node by its old owner.
    pub(crate) async fn receive_partition(
        &self,
        partition: usize,
        items: Vec<(Bytes, Object)>,
    ) -> Response {
        let mut bytes = 0u64;
        for (key, object) in items {
            let (p, q) = self
                .membership
                .with(|s| (s.ring.partition_of(ring_hash(&key)), s.ring.partitions()));
            if p != partition || partition >= q {
                return Response::Error(format!(
                    "a record sent as partition {partition} belongs to partition {p}"
                ));
            }
            bytes += (key.len() + super::object_bytes(&object)) as u64;
            if let Err(e) = self.local.merge_local(key, object).await {
                return Response::Error(e.to_string());
            }
        }
        self.stats
            .handoff_bytes_received
            .fetch_add(bytes, Ordering::Relaxed);
        metrics::counter!("dynkv_handoff_bytes_received_total").increment(bytes);
        Response::Ack
    }

    /// DYN.LEAVE [node]: this node hands its partitions off and stops, or
    /// a dead member is removed and its partitions rebuilt elsewhere.
    pub(crate) async fn leave(&self, node: Option<String>) -> Result<AdminValue, KvError> {
        let target = node.map(|n| NodeId::new(&n));
        let myself = target.as_ref().is_none_or(|t| t == self.me());
        let who = target.unwrap_or_else(|| self.me().clone());
        if !self.membership.with(|s| s.members.contains_key(&who)) {
            return Err(KvError::Admin(format!("unknown node {who}")));
        }
        if !myself && self.membership.is_up(&who) {
            return Err(KvError::Admin(format!(
                "{who} is up: run DYN.LEAVE on {who} itself so it hands its data off (only a dead member can be removed from another node)"
            )));
        }
        self.membership
            .change(|s| s.leave(&who, !myself))
            .map_err(|e| KvError::Admin(e.to_string()))?;
        self.save_membership().await;
        tracing::info!(node = %who, dead = !myself, "membership change: leaving");
        if let Some(this) = self.handle() {
            tokio::spawn(async move { announce(&this).await });
        }
        Ok(AdminValue::Status("OK".into()))
    }

    /// Hints held for a member that was removed: sent to the key's current
    /// owners instead (merged here when this node is one). Returns false
    /// when some could not be delivered (tried again later).
    pub(crate) async fn retarget_hints(&self, target: &NodeId) -> bool {
        let n = self.effective_n();
        let batch = match self.hints.list(target, SCAN_BATCH, SEND_BATCH_BYTES).await {
            Ok(batch) => batch,
            Err(_) => return false,
        };
        for (key, object) in batch {
            let owners: Vec<NodeId> = self.walk(&key).into_iter().take(n).collect();
            let mut stored = false;
            for owner in owners {
                let ok = if &owner == self.me() {
                    self.local
                        .merge_local(key.clone(), object.clone())
                        .await
                        .is_ok()
                } else {
                    let req = Request::Put {
                        key: key.clone(),
                        object: object.clone(),
                        hint_for: None,
                    };
                    matches!(self.call(&owner, req).await, Ok(Response::Ack))
                };
                stored |= ok;
            }
            if !stored {
                return false;
            }
            if let Ok(true) = self.hints.remove_if_unchanged(target, key, object).await {
                self.stats.hints_delivered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dynkv_hints_delivered_total").increment(1);
            }
        }
        true
    }
}
