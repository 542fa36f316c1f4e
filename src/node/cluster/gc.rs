//! Dead data, collected cluster-wide: the sweeper and the tombstone purge.
//!
//! Every replica's sweeper turns expired values into tombstones (see
//! [`crate::core::gc`]) and never drops dead data on its own. The purge
//! (Garage's table GC) removes a key's tombstone only when
//! 1. it has been a tombstone for longer than `--tombstone-grace`;
//! 2. every one of the key's N owners holds exactly that tombstone (it is
//!    pushed to them, all must answer) and no member holds a hint for the
//!    key: a hint may carry an older value that would come back when it is
//!    delivered into an empty record. An unreachable member fails this, so
//!    nothing is purged while any member is down;
//! 3. each owner then deletes the record only if it is still exactly the
//!    pushed object, so a write that arrived since wins.
//!
//! One node does the work for a key: its first reachable owner. The purger
//! deletes its own copy last, so a round cut short leaves it holding the
//! tombstone and the next pass retries.

use super::ClusterKv;
use crate::core::{GcItem, NodeId, Object, Request, Response, gc};
use crate::node::env::NodeEnv;
use crate::node::local::SweepMode;
use crate::store::hints::Hints;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A tombstone this many grace periods old is purged by any owner, not
/// only the first reachable one: that one evidently no longer holds it
/// (its disk was replaced, or its view of the ring differs). Two purgers at
/// once are safe, only wasteful, so this is kept long.
const ORPHAN_GRACES: u64 = 10;

/// Keys in one purge round (one RPC per member and step).
const PURGE_BATCH: usize = 256;

/// Keys purged per second at most: purging is background work and must
/// not crowd out client requests after a mass delete or FLUSHALL.
const PURGE_KEYS_PER_SEC: u64 = 5_000;

/// Runs the sweeper until `stop`: ten batches a second while a pass is
/// under way, then a one-second rest; purges what it found in between.
pub async fn sweeper<E: NodeEnv>(node: Arc<ClusterKv<E>>, stop: CancellationToken) {
    let mut cursor = 0;
    loop {
        // A finished pass rests longer: rescanning a small keyspace ten
        // times a second would mostly re-read live keys.
        let pause = if cursor == 0 { 1_000 } else { 100 };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
        }
        let mode = if node.alone() {
            SweepMode::Alone
        } else {
            SweepMode::Replica
        };
        let page = node.local.sweep(cursor, mode).await;
        cursor = page.next;
        node.report_expired(page.expired, mode);
        if mode == SweepMode::Alone {
            continue;
        }
        let mine = node.to_purge(page.purgeable);
        for chunk in mine.chunks(PURGE_BATCH) {
            node.purge_round(chunk.to_vec()).await;
            let rest = Duration::from_millis(chunk.len() as u64 * 1_000 / PURGE_KEYS_PER_SEC);
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(rest) => {}
            }
        }
    }
}

impl<E: NodeEnv> ClusterKv<E> {
    /// The key's N owners (its preference list, reachable or not).
    fn owners(&self, key: &[u8]) -> Vec<NodeId> {
        let n = self.effective_n();
        self.walk(key).into_iter().take(n).collect()
    }

    /// Reports the keys whose expiry the sweep carried out. Every replica
    /// sweeps its own copy, so only the key's first reachable owner speaks
    /// for it: one `expired` event per expiry, cluster-wide.
    fn report_expired(&self, keys: Vec<Bytes>, mode: SweepMode) {
        if self.expired_keys.receiver_count() == 0 {
            return;
        }
        for key in keys {
            let speaks = mode == SweepMode::Alone || {
                let owners = self.owners(&key);
                owners.iter().find(|m| self.membership.is_up(m)) == Some(self.me())
            };
            if speaks {
                // No listener left is not an error: nobody wants the event.
                let _ = self.expired_keys.send(key);
            }
        }
    }

    /// Of the purgeable records found here, those this node purges: it is
    /// the key's first reachable owner, or the tombstone is past
    /// [`ORPHAN_GRACES`] grace periods.
    fn to_purge(&self, found: Vec<(Bytes, Object)>) -> Vec<(Bytes, Object)> {
        let now = self.local.clock().now_ms();
        let late = self
            .local
            .tombstone_grace_ms()
            .saturating_mul(ORPHAN_GRACES);
        found
            .into_iter()
            .filter(|(key, obj)| {
                let owners = self.owners(key);
                if !owners.contains(self.me()) {
                    return false;
                }
                let first = owners.iter().find(|m| self.membership.is_up(m));
                first == Some(self.me()) || gc::purgeable(obj, now, late)
            })
            .collect()
    }

    /// One purge round over `items` (tombstone records past the grace);
    /// returns how many this node deleted from its own store.
    pub(crate) async fn purge_round(&self, items: Vec<(Bytes, Object)>) -> usize {
        self.stats.purge_rounds.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dynkv_purge_rounds_total").increment(1);
        let members = self.membership.with(|s| s.member_ids());
        let owners: Vec<Vec<NodeId>> = items.iter().map(|(k, _)| self.owners(k)).collect();

        // Step one: every member at once; all must say ready for a key.
        let pushes = members.iter().map(|m| {
            let batch: Vec<GcItem> = items
                .iter()
                .zip(&owners)
                .map(|((key, object), owners)| GcItem {
                    key: key.clone(),
                    object: object.clone(),
                    owner: owners.contains(m),
                })
                .collect();
            self.gc_push_to(m, batch)
        });
        let mut ready = vec![true; items.len()];
        for answer in futures::future::join_all(pushes).await {
            match answer {
                Some(flags) if flags.len() == items.len() => {
                    for (r, f) in ready.iter_mut().zip(flags) {
                        *r &= f;
                    }
                }
                _ => ready.fill(false),
            }
        }
        let confirmed: Vec<usize> = (0..items.len()).filter(|&i| ready[i]).collect();
        if confirmed.is_empty() {
            return 0;
        }

        // Step two: the other owners first, this node last.
        let mut gone_elsewhere = vec![true; items.len()];
        let others: Vec<NodeId> = members
            .iter()
            .filter(|m| *m != self.me())
            .cloned()
            .collect();
        let deletes = others.iter().map(|m| {
            let idx: Vec<usize> = confirmed
                .iter()
                .copied()
                .filter(|&i| owners[i].contains(m))
                .collect();
            let batch: Vec<(Bytes, Object)> = idx.iter().map(|&i| items[i].clone()).collect();
            async move { (idx, self.gc_delete_at(m, batch).await) }
        });
        for (idx, answer) in futures::future::join_all(deletes).await {
            match answer {
                Some(flags) if flags.len() == idx.len() => {
                    for (&i, f) in idx.iter().zip(flags) {
                        gone_elsewhere[i] &= f;
                    }
                }
                _ => idx.iter().for_each(|&i| gone_elsewhere[i] = false),
            }
        }
        let mut purged = 0;
        for i in confirmed {
            if gone_elsewhere[i] && owners[i].contains(self.me()) {
                let (key, obj) = items[i].clone();
                if let Ok(true) = self.local.remove_if_equal(key, obj).await {
                    purged += 1;
                }
            }
        }
        purged
    }

    /// Step one at member `m`; `None` when it did not answer as asked.
    async fn gc_push_to(&self, m: &NodeId, batch: Vec<GcItem>) -> Option<Vec<bool>> {
        if m == self.me() {
            return Some(self.gc_prepare(batch).await);
        }
        match self.call(m, Request::GcPush { items: batch }).await {
            Ok(Response::GcReady(flags)) => Some(flags),
            _ => None,
        }
    }

    /// Step two at member `m`.
    async fn gc_delete_at(&self, m: &NodeId, batch: Vec<(Bytes, Object)>) -> Option<Vec<bool>> {
        if batch.is_empty() {
            return Some(Vec::new());
        }
        match self.call(m, Request::GcDelete { items: batch }).await {
            Ok(Response::GcReady(flags)) => Some(flags),
            _ => None,
        }
    }

    /// Serves step one ([`Request::GcPush`]): an owner merges the
    /// tombstone and is ready if it now holds exactly it; every member is
    /// ready only while it holds no hint for the key.
    pub(crate) async fn gc_prepare(&self, items: Vec<GcItem>) -> Vec<bool> {
        if self.is_rebuilding() {
            return vec![false; items.len()];
        }
        let targets: Vec<NodeId> = self.hints.counts().into_keys().collect();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            // Only dead records are purged: anything else is a peer's bug.
            if !gc::all_tombstones(&item.object) {
                out.push(false);
                continue;
            }
            let hinted = targets
                .iter()
                .any(|t| !matches!(self.hints.get(t, &item.key), Ok(None)));
            let held = !item.owner
                || match self
                    .local
                    .merge_local(item.key.clone(), item.object.clone())
                    .await
                {
                    Ok(_) => self
                        .local
                        .local_get(&item.key)
                        .is_ok_and(|o| o == item.object),
                    Err(_) => false,
                };
            out.push(held && !hinted);
        }
        out
    }

    /// Serves step two ([`Request::GcDelete`]): deletes each record that is
    /// still exactly the pushed tombstone.
    pub(crate) async fn gc_delete(&self, items: Vec<(Bytes, Object)>) -> Vec<bool> {
        let mut out = Vec::with_capacity(items.len());
        for (key, object) in items {
            let gone = gc::all_tombstones(&object)
                && self
                    .local
                    .remove_if_equal(key, object)
                    .await
                    .unwrap_or(false);
            out.push(gone);
        }
        out
    }
}
