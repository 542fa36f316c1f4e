//! An add-wins observed-remove map (an ORSWOT keyed by field or member):
//! the shape of hashes, sets and sorted-set membership.
//!
//! Every write of an element tags it with the dot of that write; the state
//! also carries `seen`, every write its writer had observed. Joining two
//! states keeps an element tag unless the other side had seen the tag and
//! no longer holds it: that is a remove that observed it. A concurrent add
//! (a tag the remover never saw) survives, so adds win.
//!
//! Tags come from the write's dot, which the coordinator issues: the
//! client-side state only carries [`super::pending_dot`] until
//! [`DotMap::stamp`] names it, so tags never repeat even when the writer
//! read a stale copy.

use super::super::version::{Dot, VersionVector};
use super::pending_dot;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What an element's tag carries besides itself.
pub trait TagValue: Clone + PartialEq + Eq + std::fmt::Debug {
    /// Called when the write that made this tag gets its dot and time.
    fn stamp(&mut self, _now_ms: u64) {}
}

impl TagValue for () {}

/// The replicated map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "V: Serialize", deserialize = "V: Deserialize<'de>"))]
pub struct DotMap<V> {
    entries: BTreeMap<Bytes, BTreeMap<Dot, V>>,
    seen: VersionVector,
    /// Elements written since the last stamp (carry the pending tag).
    pending: BTreeSet<Bytes>,
}

impl<V> Default for DotMap<V> {
    fn default() -> Self {
        DotMap {
            entries: BTreeMap::new(),
            seen: VersionVector::new(),
            pending: BTreeSet::new(),
        }
    }
}

impl<V: TagValue> DotMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tags of `key`, if present.
    pub fn get(&self, key: &[u8]) -> Option<&BTreeMap<Dot, V>> {
        self.entries.get(key)
    }

    /// Every write this state has observed.
    pub fn seen(&self) -> &VersionVector {
        &self.seen
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.entries.contains_key(key)
    }

    /// Every element with its tags, in key order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, &BTreeMap<Dot, V>)> + ExactSizeIterator {
        self.entries.iter()
    }

    /// Element names in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.entries.keys()
    }

    /// Writes `key`, replacing every tag of it this state observed.
    /// Returns whether it was absent.
    pub fn insert(&mut self, key: Bytes, value: V) -> bool {
        let mut tags = BTreeMap::new();
        tags.insert(pending_dot(), value);
        self.pending.insert(key.clone());
        self.entries.insert(key, tags).is_none()
    }

    /// Removes `key` as observed. Returns whether it was present.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        self.pending.remove(key);
        self.entries.remove(key).is_some()
    }

    /// Removes every element (the observed ones).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.entries.clear();
    }

    /// Joins another replica's state (commutative, associative, idempotent).
    pub fn merge(&mut self, other: &DotMap<V>) {
        let keys: BTreeSet<Bytes> = self
            .entries
            .keys()
            .chain(other.entries.keys())
            .cloned()
            .collect();
        let empty = BTreeMap::new();
        for key in keys {
            let ours = self.entries.get(&key).unwrap_or(&empty);
            let theirs = other.entries.get(&key).unwrap_or(&empty);
            let mut kept = BTreeMap::new();
            for (dot, v) in ours {
                if theirs.contains_key(dot) || !other.seen.covers(dot) {
                    kept.insert(dot.clone(), v.clone());
                }
            }
            for (dot, v) in theirs {
                if !ours.contains_key(dot) && !self.seen.covers(dot) {
                    kept.insert(dot.clone(), v.clone());
                }
            }
            if kept.is_empty() {
                self.entries.remove(&key);
            } else {
                self.entries.insert(key, kept);
            }
        }
        self.seen.join(&other.seen);
    }

    /// Names the write: pending tags become `dot`, and the state records
    /// that it observed `observed` (the context its writer read) and `dot`.
    pub fn stamp(&mut self, dot: &Dot, observed: &VersionVector, now_ms: u64) {
        for key in std::mem::take(&mut self.pending) {
            if let Some(tags) = self.entries.get_mut(&key)
                && let Some(mut v) = tags.remove(&pending_dot())
            {
                v.stamp(now_ms);
                tags.insert(dot.clone(), v);
            }
        }
        self.seen.join(observed);
        self.seen.add(dot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;

    fn dot(n: &str, c: u64) -> Dot {
        Dot {
            node: NodeId::new(n),
            counter: c,
        }
    }

    fn write(base: &DotMap<()>, f: impl FnOnce(&mut DotMap<()>), d: Dot) -> DotMap<()> {
        let mut s = base.clone();
        let ctx = s.seen.clone();
        f(&mut s);
        s.stamp(&d, &ctx, 0);
        s
    }

    #[test]
    fn add_wins_over_concurrent_remove() {
        let base = write(
            &DotMap::new(),
            |s| {
                s.insert("m".into(), ());
            },
            dot("a", 1),
        );
        let removed = write(
            &base,
            |s| {
                s.remove(b"m");
            },
            dot("b", 2),
        );
        let readded = write(
            &base,
            |s| {
                s.insert("m".into(), ());
            },
            dot("c", 2),
        );
        let mut m = removed.clone();
        m.merge(&readded);
        assert!(m.contains(b"m"));
        let mut only_removed = removed.clone();
        only_removed.merge(&base);
        assert!(!only_removed.contains(b"m"));
    }
}
