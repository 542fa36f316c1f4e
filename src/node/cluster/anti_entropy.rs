//! Anti-entropy: replicas of a partition compare Merkle trees and exchange
//! only the keys that differ, so they converge without any client read.
//!
//! A round takes every partition this node replicates and, per partition,
//! one replica peer (rotating over rounds; every peer when the partition
//! must be rebuilt or had a hint dropped). Per peer it sends its roots in
//! one request; for each partition whose root differs it descends: small
//! partitions (few entries on both sides) go straight to the entry lists,
//! larger ones compare the middle level, then the leaves under differing
//! middles, and only the differing leaves' (key, digest) lists are sent.
//! The peer answers with its objects for keys that differ and the keys it
//! lacks; this node merges what it got (`merge_local`) and pushes, with
//! `PutMany`, its own copy of every key the peer lacks or holds an older
//! version of.
//!
//! Admission control: before each partition the worker waits while the
//! store's writer queue is deep, so repair traffic yields to clients.
//!
//! A node marked rebuilding (its disk was replaced) syncs every partition
//! with every reachable replica peer back to back; once each of its
//! partitions has been synced so at least once, it clears the mark and
//! votes in read quorums again.

use super::merkle_index::object_digest;
use super::{ClusterKv, REBUILDING_RECORD};
use crate::core::merkle::{self, Hash, LEAVES, NodeHash};
use crate::core::{NodeId, Object, Request, Response, ring_hash};
use crate::node::env::{MetaStore, NodeEnv};
use crate::store::ReplicaStore;
use crate::store::hints::Hints;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Both sides together hold at most this many entries of a partition (or
/// of a middle node): send the entry lists at once instead of descending,
/// which would cost more hashes than the entries themselves.
const DIRECT_ENTRIES: u64 = 64;
/// Partitions whose roots go in one request.
const ROOTS_PER_REQUEST: usize = 1024;
/// Object bytes in one answer or push (far below the RPC frame limit);
/// what does not fit is left to the next round.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Writer queue depth past which anti-entropy waits.
const BUSY_QUEUE: u64 = (crate::store::fjall_store::WRITER_QUEUE / 4) as u64;
/// Pause between rounds while rebuilding.
const REBUILD_PAUSE: Duration = Duration::from_millis(200);

/// Encoded size of a message, for the byte counters (counted while
/// encoding into nothing, so a large object is not copied).
fn wire_len<T: serde::Serialize>(msg: &T) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    postcard::to_io(msg, Count(0)).map_or(0, |c| c.0)
}

/// What went wrong with one peer (the partition stays unsynced).
#[derive(Debug)]
struct PeerFailed;

/// Runs rounds until `stop`: back to back while rebuilding, otherwise every
/// `--anti-entropy-interval`.
pub async fn run<E: NodeEnv>(node: Arc<ClusterKv<E>>, stop: CancellationToken) {
    let mut round: u64 = 0;
    let mut rebuilt: BTreeSet<usize> = BTreeSet::new();
    loop {
        let pause = if node.is_rebuilding() {
            REBUILD_PAUSE
        } else {
            node.ae_interval()
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause.max(Duration::from_millis(10))) => {}
        }
        if node.ae_interval().is_zero() && !node.is_rebuilding() {
            continue;
        }
        if !node.merkle.is_ready() {
            continue;
        }
        run_round(&node, round, &mut rebuilt, &stop).await;
        round = round.wrapping_add(1);
    }
}

/// One round over every partition this node replicates.
async fn run_round<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    round: u64,
    rebuilt: &mut BTreeSet<usize>,
    stop: &CancellationToken,
) {
    let ring = node.membership.with(|s| s.ring.clone());
    let n = node.effective_n();
    let me = node.me().clone();
    let rebuilding = node.is_rebuilding();
    let needed: Vec<u64> = node.hints.repair_needed().unwrap_or_default();
    let needed_parts: BTreeSet<usize> = needed.iter().map(|h| ring.partition_of(*h)).collect();

    // partition -> the peers it is compared with this round
    let mut plan: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
    let mut mine: Vec<usize> = Vec::new();
    for p in 0..ring.partitions() {
        let replicas = ring.preference_list(p, n);
        if !replicas.contains(&me) {
            continue;
        }
        mine.push(p);
        let peers: Vec<NodeId> = replicas
            .into_iter()
            .filter(|r| r != &me && node.membership.is_up(r))
            .collect();
        if peers.is_empty() {
            continue;
        }
        let everyone = (rebuilding && !rebuilt.contains(&p)) || needed_parts.contains(&p);
        if everyone {
            plan.insert(p, peers);
        } else {
            let pick = (round as usize).wrapping_add(p) % peers.len();
            plan.insert(p, vec![peers[pick].clone()]);
        }
    }
    let mut by_peer: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    for (p, peers) in &plan {
        for peer in peers {
            by_peer.entry(peer.clone()).or_default().push(*p);
        }
    }
    let mut failed: BTreeSet<usize> = BTreeSet::new();
    for (peer, parts) in by_peer {
        if stop.is_cancelled() {
            return;
        }
        for chunk in parts.chunks(ROOTS_PER_REQUEST) {
            failed.extend(sync_with(node, &peer, chunk, stop).await);
        }
    }
    let synced = |p: &usize| plan.contains_key(p) && !failed.contains(p);

    // Dropped hints: their partitions are repaired once every replica
    // peer was reachable and synced.
    let repaired: Vec<u64> = needed
        .into_iter()
        .filter(|h| {
            let p = ring.partition_of(*h);
            let all_up = ring
                .preference_list(p, n)
                .iter()
                .all(|r| r == &me || node.membership.is_up(r));
            all_up && synced(&p)
        })
        .collect();
    if !repaired.is_empty()
        && let Err(e) = node.hints.repaired(repaired).await
    {
        tracing::warn!("cannot record repaired hint partitions: {e}");
    }

    if rebuilding {
        rebuilt.extend(mine.iter().copied().filter(synced));
        let left = mine.iter().filter(|p| !rebuilt.contains(p)).count();
        if left == 0 {
            finish_rebuild(node).await;
        } else {
            tracing::info!(left, "rebuilding: partitions not yet synced with a peer");
        }
    }
    node.stats.ae_rounds.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("dynkv_ae_rounds_total").increment(1);
}

/// Every partition was synced once: leave the rebuilding state.
async fn finish_rebuild<E: NodeEnv>(node: &ClusterKv<E>) {
    let meta = node.meta.clone();
    let cleared = E::offload(move || meta.write(REBUILDING_RECORD, b"0")).await;
    match cleared {
        Ok(()) => {
            node.rebuilding.store(false, Ordering::SeqCst);
            tracing::info!("rebuilt by anti-entropy: this node votes in read quorums again");
        }
        Err(e) => tracing::warn!("cannot clear the rebuilding state: {e}"),
    }
}

/// Compares `parts` with `peer`; returns the partitions that failed.
async fn sync_with<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    peer: &NodeId,
    parts: &[usize],
    stop: &CancellationToken,
) -> Vec<usize> {
    let roots: Vec<(u32, NodeHash)> = parts
        .iter()
        .map(|&p| (p as u32, node.merkle.root(p)))
        .collect();
    let summary = Request::AeSummary {
        partitions: Bytes::from(merkle::partition_bitmap(parts.iter().copied())),
        combined: merkle::combine_roots(roots.iter().copied()),
    };
    match node.ae_call(peer, summary).await {
        Ok(Response::AeSame(true)) => return Vec::new(),
        Ok(Response::AeSame(false)) => {}
        _ => return parts.to_vec(),
    }
    let differ = match node.ae_call(peer, Request::AeRoots { roots }).await {
        Ok(Response::AeDiffer { items }) => items,
        _ => return parts.to_vec(),
    };
    let asked: BTreeSet<usize> = parts.iter().copied().collect();
    let mut failed = Vec::new();
    for (p, their_count) in differ {
        let p = p as usize;
        if !asked.contains(&p) {
            continue;
        }
        if stop.is_cancelled() {
            failed.push(p);
            continue;
        }
        admission(node, stop).await;
        if sync_partition(node, peer, p, their_count).await.is_err() {
            failed.push(p);
        }
    }
    failed
}

/// Waits while the writer queue is deep (clients first).
async fn admission<E: NodeEnv>(node: &ClusterKv<E>, stop: &CancellationToken) {
    while node.local.store().queue_depth() > BUSY_QUEUE && !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Descends partition `p`'s differing subtrees with `peer` and exchanges
/// the differing keys.
async fn sync_partition<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    peer: &NodeId,
    p: usize,
    their_count: u64,
) -> Result<(), PeerFailed> {
    let my_count = node.merkle.with(p, |t| t.len());
    let leaves = if my_count + their_count <= DIRECT_ENTRIES {
        None
    } else {
        Some(differing_leaves(node, peer, p).await?)
    };
    if leaves.as_ref().is_some_and(Vec::is_empty) {
        // Changed between the root comparison and now: next round.
        return Ok(());
    }
    let entries: Vec<(Bytes, Hash)> = node.merkle.with(p, |t| match &leaves {
        None => t.all_entries().map(|(k, d)| (k.clone(), *d)).collect(),
        Some(leaves) => leaves
            .iter()
            .flat_map(|&l| t.leaf_entries(usize::from(l)))
            .map(|(k, d)| (k.clone(), *d))
            .collect(),
    });
    let req = Request::AeLeaves {
        partition: p as u32,
        leaves,
        entries,
    };
    let (objects, want) = match node.ae_call(peer, req).await {
        Ok(Response::AeLeaves { objects, want }) => (objects, want),
        _ => return Err(PeerFailed),
    };
    let mut push: Vec<Bytes> = want;
    for (key, theirs) in objects {
        // Only keys of this partition: a peer cannot make us store others.
        if node
            .membership
            .with(|s| s.ring.partition_of(ring_hash(&key)))
            != p
        {
            continue;
        }
        let their_digest = object_digest(&key, &theirs);
        match node.local.merge_local(key.clone(), theirs).await {
            Ok(changed) => {
                if changed {
                    node.stats.ae_keys_repaired.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("dynkv_ae_keys_repaired_total").increment(1);
                }
            }
            Err(e) => {
                tracing::warn!("anti-entropy merge failed: {e}");
                continue;
            }
        }
        // Ours now holds theirs; if it also holds more, they need it.
        let ours = node.local.store().get(&key).ok().flatten();
        if ours.is_some_and(|o| object_digest(&key, &o) != their_digest) {
            push.push(key);
        }
    }
    push_objects(node, peer, push).await
}

/// Finds the leaves of `p` whose hashes differ from `peer`'s.
async fn differing_leaves<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    peer: &NodeId,
    p: usize,
) -> Result<Vec<u16>, PeerFailed> {
    let middles = node.merkle.with(p, |t| t.children(0, 0));
    let differ = level_diff(node, peer, p, 1, &middles).await?;
    let mut leaves: Vec<u16> = Vec::new();
    let mut deeper: Vec<(usize, NodeHash)> = Vec::new();
    for (m, their_count) in differ {
        let Some(mine) = middles.get(m).map(|(_, h)| h.count) else {
            continue;
        };
        let children = node.merkle.with(p, |t| t.children(1, m));
        if mine + their_count <= DIRECT_ENTRIES {
            leaves.extend(merkle::leaves_under(m).map(|l| l as u16));
        } else {
            deeper.extend(children);
        }
    }
    if !deeper.is_empty() {
        let differ = level_diff(node, peer, p, 2, &deeper).await?;
        leaves.extend(
            differ
                .into_iter()
                .filter(|(l, _)| *l < LEAVES)
                .map(|(l, _)| l as u16),
        );
    }
    leaves.sort_unstable();
    leaves.dedup();
    Ok(leaves)
}

/// Sends this side's hashes of some nodes at `level`; the peer's differing
/// indices with its counts.
async fn level_diff<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    peer: &NodeId,
    p: usize,
    level: u8,
    nodes: &[(usize, NodeHash)],
) -> Result<Vec<(usize, u64)>, PeerFailed> {
    let req = Request::AeLevel {
        partition: p as u32,
        level,
        nodes: nodes.iter().map(|(i, h)| (*i as u16, *h)).collect(),
    };
    match node.ae_call(peer, req).await {
        Ok(Response::AeDiffer { items }) => {
            Ok(items.into_iter().map(|(i, c)| (i as usize, c)).collect())
        }
        _ => Err(PeerFailed),
    }
}

/// Sends this node's copies of `keys` to `peer` (merged there).
async fn push_objects<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    peer: &NodeId,
    keys: Vec<Bytes>,
) -> Result<(), PeerFailed> {
    let mut batch: Vec<(Bytes, Object)> = Vec::new();
    let mut bytes = 0usize;
    for key in keys {
        let Ok(Some(obj)) = node.local.store().get(&key) else {
            continue;
        };
        let size = key.len() + super::object_bytes(&obj);
        if !batch.is_empty() && bytes + size > MAX_BATCH_BYTES {
            bytes = 0;
            push_batch(node, peer, std::mem::take(&mut batch)).await?;
        }
        bytes += size;
        batch.push((key, obj));
    }
    if batch.is_empty() {
        return Ok(());
    }
    push_batch(node, peer, batch).await
}

async fn push_batch<E: NodeEnv>(
    node: &Arc<ClusterKv<E>>,
    peer: &NodeId,
    items: Vec<(Bytes, Object)>,
) -> Result<(), PeerFailed> {
    let sent = items.len() as u64;
    match node.ae_call(peer, Request::PutMany { items }).await {
        Ok(Response::Ack) => {
            node.stats
                .ae_keys_repaired
                .fetch_add(sent, Ordering::Relaxed);
            metrics::counter!("dynkv_ae_keys_repaired_total").increment(sent);
            Ok(())
        }
        _ => Err(PeerFailed),
    }
}

impl<E: NodeEnv> ClusterKv<E> {
    /// One anti-entropy RPC, counted in the byte counters. Background
    /// repair is no evidence about a peer's health for client requests: a
    /// slow answer (a partition of large values) must not make the failure
    /// detector suspect it, so this bypasses [`ClusterKv::call`] and allows
    /// the time the largest frame takes.
    async fn ae_call(&self, peer: &NodeId, req: Request) -> Result<Response, crate::net::RpcError> {
        use crate::net::Transport as _;
        let Some(addr) = self.membership.cluster_addr(peer) else {
            return Err(crate::net::RpcError::Connect(format!(
                "{peer} is not a member"
            )));
        };
        let sent = wire_len(&req);
        self.stats.ae_bytes_sent.fetch_add(sent, Ordering::Relaxed);
        metrics::counter!("dynkv_ae_bytes_sent_total").increment(sent);
        let timeout =
            self.timeouts.forward * 4 + super::transfer_allowance(crate::net::MAX_FRAME_LEN);
        let resp = self.rpc.call(peer, addr, req, timeout).await?;
        let received = wire_len(&resp);
        self.stats
            .ae_bytes_received
            .fetch_add(received, Ordering::Relaxed);
        metrics::counter!("dynkv_ae_bytes_received_total").increment(received);
        Ok(resp)
    }

    /// Answers [`Request::AeSummary`].
    pub(crate) fn ae_summary(&self, partitions: &[u8], combined: Hash) -> Response {
        if !self.merkle.is_ready() {
            return Response::Refused("merkle trees are still being built".into());
        }
        let limit = self.membership.with(|s| s.ring.partitions());
        let mine = merkle::combine_roots(
            merkle::bitmap_partitions(partitions, limit)
                .into_iter()
                .map(|p| (p as u32, self.merkle.root(p))),
        );
        Response::AeSame(mine == combined)
    }

    /// Answers [`Request::AeRoots`].
    pub(crate) fn ae_roots(&self, roots: Vec<(u32, NodeHash)>) -> Response {
        if !self.merkle.is_ready() {
            return Response::Refused("merkle trees are still being built".into());
        }
        let partitions = self.membership.with(|s| s.ring.partitions());
        let items = roots
            .into_iter()
            .filter(|(p, _)| (*p as usize) < partitions)
            .filter_map(|(p, theirs)| {
                let mine = self.merkle.root(p as usize);
                (mine != theirs).then_some((p, mine.count))
            })
            .collect();
        Response::AeDiffer { items }
    }

    /// Answers [`Request::AeLevel`].
    pub(crate) fn ae_level(
        &self,
        partition: u32,
        level: u8,
        nodes: Vec<(u16, NodeHash)>,
    ) -> Response {
        if !self.merkle.is_ready() {
            return Response::Refused("merkle trees are still being built".into());
        }
        let items = self.merkle.with(partition as usize, |t| {
            nodes
                .into_iter()
                .filter_map(|(i, theirs)| {
                    let mine = t.node(level, usize::from(i))?;
                    (mine != theirs).then_some((u32::from(i), mine.count))
                })
                .collect()
        });
        Response::AeDiffer { items }
    }

    /// Answers [`Request::AeLeaves`].
    pub(crate) fn ae_leaves(
        &self,
        partition: u32,
        leaves: Option<Vec<u16>>,
        entries: Vec<(Bytes, Hash)>,
    ) -> Response {
        if !self.merkle.is_ready() {
            return Response::Refused("merkle trees are still being built".into());
        }
        let p = partition as usize;
        let diff = self.merkle.with(p, |t| match &leaves {
            None => merkle::compare_entries(t.all_entries(), &entries),
            Some(leaves) => {
                let leaves: BTreeSet<usize> = leaves.iter().map(|&l| usize::from(l)).collect();
                let theirs: Vec<(Bytes, Hash)> = entries
                    .iter()
                    .filter(|(k, _)| leaves.contains(&merkle::leaf_of(k)))
                    .cloned()
                    .collect();
                merkle::compare_entries(leaves.iter().flat_map(|&l| t.leaf_entries(l)), &theirs)
            }
        });
        self.stats
            .ae_keys_compared
            .fetch_add(diff.compared, Ordering::Relaxed);
        metrics::counter!("dynkv_ae_keys_compared_total").increment(diff.compared);
        let mut objects = Vec::new();
        let mut bytes = 0usize;
        for key in diff.send {
            if let Ok(Some(obj)) = self.local.store().get(&key) {
                let size = key.len() + super::object_bytes(&obj);
                if !objects.is_empty() && bytes + size > MAX_BATCH_BYTES {
                    // The rest waits for the next round.
                    break;
                }
                bytes += size;
                objects.push((key, obj));
            }
        }
        // Only keys of the partition asked about, so a confused peer cannot
        // make this node accept keys it does not replicate.
        let want = diff
            .want
            .into_iter()
            .filter(|k| self.membership.with(|s| s.ring.partition_of(ring_hash(k))) == p)
            .collect();
        Response::AeLeaves { objects, want }
    }
}
