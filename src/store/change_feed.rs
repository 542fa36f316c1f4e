//! The Merkle update queue: every committed write of a record (put or
//! remove) is recorded here as (key, digest of the new record or None),
//! in commit order, for the anti-entropy folder to apply to the trees.
//!
//! The trees are kept in memory and rebuilt by a background scan at start
//! (see `node::cluster::merkle_index`), so the queue needs no durability
//! of its own: entries are pushed by the store's single writer right after
//! the batch holding the writes commits, which is the order the folder must
//! apply them in. A queue nobody drains must not grow without bound: it
//! records nothing until [`ChangeFeed::enable`], and past [`MAX_PENDING`]
//! entries it drops them and asks for a rescan instead.

use crate::core::merkle::Hash;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Entries held before the feed gives up and asks for a rescan.
pub const MAX_PENDING: usize = 1 << 20;

/// What the folder takes from the feed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Everything before `items` is unknown (the store was cleared or the
    /// queue overflowed): drop the trees and rescan.
    pub rescan: bool,
    /// Writes in commit order: the key's new record digest, or None when
    /// its record was removed.
    pub items: Vec<(Bytes, Option<Hash>)>,
}

/// The queue between a store's writer and the Merkle folder.
#[derive(Default)]
pub struct ChangeFeed {
    enabled: AtomicBool,
    pending: Mutex<Changes>,
}

impl ChangeFeed {
    /// Starts recording (the folder is running).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// True once [`ChangeFeed::enable`] was called.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records committed writes, in commit order.
    pub fn push(&self, items: impl IntoIterator<Item = (Bytes, Option<Hash>)>) {
        if !self.is_enabled() {
            return;
        }
        let mut pending = self.pending.lock();
        pending.items.extend(items);
        if pending.items.len() > MAX_PENDING {
            pending.items.clear();
            pending.rescan = true;
        }
    }

    /// Records that every record is gone (FLUSHALL's clear).
    pub fn cleared(&self) {
        if !self.is_enabled() {
            return;
        }
        let mut pending = self.pending.lock();
        pending.items.clear();
        pending.rescan = true;
    }

    /// Forgets everything and stops recording, as a process crash would
    /// (the queue lives in memory).
    pub fn reset(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        *self.pending.lock() = Changes::default();
    }

    /// Takes everything recorded so far.
    pub fn take(&self) -> Changes {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Entries waiting for the folder.
    pub fn len(&self) -> usize {
        self.pending.lock().items.len()
    }

    /// True when nothing waits for the folder.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
