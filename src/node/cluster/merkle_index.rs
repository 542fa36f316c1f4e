//! The node's Merkle trees (one per partition it holds keys of) and the
//! folder that keeps them current.
//!
//! The trees live in memory. At start the folder builds them by scanning the
//! store page by page (pausing while the writer is busy, so the rebuild
//! runs at a bounded rate next to client traffic); anti-entropy waits until
//! the build is done ([`MerkleIndex::is_ready`]). From then on it never
//! rescans: it applies the store's update queue ([`ChangeFeed`]), which the
//! writer fills with (key, new record digest) for every committed put and
//! remove. The queue is enabled before any worker or server starts, so no
//! write is missed; the scan and the queue may report one key twice, and
//! applying them in the order "page, then the queue after it" always ends
//! at the key's last committed state.
//!
//! [`ChangeFeed`]: crate::store::change_feed::ChangeFeed

use super::ClusterKv;
use crate::core::merkle::{Hash, NodeHash, PartitionTree, record_digest};
use crate::core::ring_hash;
use crate::node::env::NodeEnv;
use crate::store::ReplicaStore;
use crate::store::codec::encode_record;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Records read per page of the start-up scan.
const SCAN_PAGE: usize = 1024;
/// How often the folder applies the update queue.
const FOLD_EVERY: Duration = Duration::from_millis(50);
/// Writer queue depth past which the scan pauses (the writer is busy with
/// clients: the rebuild can wait).
const BUSY_QUEUE: u64 = 1024;

/// The trees, by partition.
#[derive(Default)]
pub struct MerkleIndex {
    trees: Mutex<BTreeMap<usize, PartitionTree>>,
    ready: AtomicBool,
}

impl MerkleIndex {
    /// True once the start-up scan is done: only then do the trees say
    /// what the store holds.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records `key`'s digest in partition `p`'s tree.
    pub fn set(&self, p: usize, key: &Bytes, digest: Option<Hash>) {
        let mut trees = self.trees.lock();
        let tree = trees.entry(p).or_default();
        tree.set(key, digest);
        if tree.is_empty() {
            trees.remove(&p);
        }
    }

    /// Runs `f` on partition `p`'s tree (an empty one if it has no key).
    pub fn with<T>(&self, p: usize, f: impl FnOnce(&PartitionTree) -> T) -> T {
        let trees = self.trees.lock();
        match trees.get(&p) {
            Some(tree) => f(tree),
            None => f(&PartitionTree::new()),
        }
    }

    /// Partition `p`'s root.
    pub fn root(&self, p: usize) -> NodeHash {
        self.trees
            .lock()
            .get(&p)
            .map(PartitionTree::root)
            .unwrap_or_default()
    }

    fn reset(&self) {
        self.ready.store(false, Ordering::SeqCst);
        self.trees.lock().clear();
    }
}

/// The digest a record of `obj` under `key` has on disk.
pub fn object_digest(key: &Bytes, obj: &crate::core::Object) -> Hash {
    record_digest(&encode_record(key, obj))
}

/// How often a node without peers looks for one before building trees.
const ALONE_POLL: Duration = Duration::from_millis(500);

/// Once the node has a peer, builds the trees, then folds the update queue
/// into them until `stop`.
///
/// A node that has never had a peer keeps no trees: nobody would compare
/// them, and keeping them current costs every write a digest of its
/// record plus two tree-entry hashes and a ring hash in the folder. The
/// update queue is switched on right before the first scan, which then
/// accounts for everything written before it (as at a restart).
pub async fn fold<E: NodeEnv>(node: std::sync::Arc<ClusterKv<E>>, stop: CancellationToken) {
    while node.alone() {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(ALONE_POLL) => {}
        }
    }
    node.local.store().changes().enable();
    loop {
        match rebuild(&node, &stop).await {
            Build::Done => {}
            Build::Again => continue,
            Build::Stopped => return,
        }
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(FOLD_EVERY) => {}
            }
            if !apply_queue(&node) {
                // The store was cleared or the queue overflowed.
                break;
            }
        }
    }
}

/// Applies the queued changes; false when they ask for a rescan.
fn apply_queue<E: NodeEnv>(node: &ClusterKv<E>) -> bool {
    let changes = node.local.store().changes().take();
    if changes.rescan {
        node.merkle.reset();
    }
    if !changes.items.is_empty() {
        let ring = node.membership.with(|s| s.ring.clone());
        for (key, digest) in changes.items {
            node.merkle
                .set(ring.partition_of(ring_hash(&key)), &key, digest);
        }
    }
    !changes.rescan
}

/// How a rebuild ended.
enum Build {
    Done,
    /// The store was cleared meanwhile: start over.
    Again,
    Stopped,
}

/// Scans the whole store into fresh trees.
async fn rebuild<E: NodeEnv>(node: &ClusterKv<E>, stop: &CancellationToken) -> Build {
    node.merkle.reset();
    let started = tokio::time::Instant::now();
    let store = node.local.store();
    let mut from = 0u64;
    let mut records = 0u64;
    loop {
        while store.queue_depth() > BUSY_QUEUE {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return Build::Stopped,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        if stop.is_cancelled() {
            return Build::Stopped;
        }
        let page = match store.scan(from, SCAN_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!("merkle rebuild: scan failed ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let full = page.len() == SCAN_PAGE;
        let (first, last) = match (page.first(), page.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => break,
        };
        let ring = node.membership.with(|s| s.ring.clone());
        for (hash, key, obj) in &page {
            node.merkle
                .set(ring.partition_of(*hash), key, Some(object_digest(key, obj)));
        }
        records += page.len() as u64;
        // Changes committed after this page was read come after it.
        if !apply_queue(node) {
            return Build::Again;
        }
        if !full {
            break;
        }
        // Resume at the last hash (keys sharing it may straddle the page)
        // unless the whole page is one hash, which would never advance.
        from = if first == last {
            match last.checked_add(1) {
                Some(next) => next,
                None => break,
            }
        } else {
            last
        };
        tokio::task::yield_now().await;
    }
    node.merkle.ready.store(true, Ordering::SeqCst);
    tracing::info!(
        records,
        ms = started.elapsed().as_millis() as u64,
        "merkle trees built"
    );
    Build::Done
}
