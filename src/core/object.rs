//! The replicated object: causally concurrent versions (siblings) of one key
//! plus the causal context that says which writes it has seen.
//!
//! This is a dotted version vector set in the style of Riak's `dvvset` /
//! delta-CRDT multi-value registers: every sibling carries the [`Dot`] of the
//! write that created it, and the object carries one [`VersionVector`] covering
//! every write it has seen, including superseded ones. Keeping dots per sibling
//! (instead of one clock per sibling, as the Dynamo paper did) is what stops two
//! clients that write through the same coordinator with the same context from
//! silently overwriting each other: each write gets its own dot, and a context
//! only removes the dots it actually covers.

use super::crdt::{Authority, TypedValue};
use super::item_meta::ItemMeta;
use super::version::{Dot, NodeId, VersionVector};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What one version holds: a value (with optional absolute expiry) or a deletion.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Payload {
    /// A live value.
    Value {
        /// The opaque value bytes.
        data: Bytes,
        /// Absolute expiry, milliseconds since the Unix epoch.
        expires_at_ms: Option<u64>,
    },
    /// A versioned deletion.
    Tombstone,
    /// A replicated data type (counter, hash, set, sorted set). Placed
    /// after the older variants so records written before it still decode.
    Typed {
        /// The state.
        value: TypedValue,
        /// Absolute expiry, milliseconds since the Unix epoch.
        expires_at_ms: Option<u64>,
    },
    /// A string stored with memcached's client flags (nonzero ones: a
    /// string without flags stays a [`Payload::Value`]). Redis commands see
    /// a plain string; memcached `get` hands the flags back.
    Flagged {
        /// The opaque value bytes.
        data: Bytes,
        /// Absolute expiry, milliseconds since the Unix epoch.
        expires_at_ms: Option<u64>,
        /// The 32-bit flags the memcached client stored with it.
        flags: u32,
    },
    /// A memcached item with meta state (stale, win handed out, a kept
    /// or chosen cas); a string without any stays a plainer variant.
    Item {
        /// The opaque value bytes.
        data: Bytes,
        /// Absolute expiry, milliseconds since the Unix epoch.
        expires_at_ms: Option<u64>,
        /// The memcached client flags.
        flags: u32,
        /// The meta state.
        meta: ItemMeta,
    },
}

impl Payload {
    /// A value without expiry.
    pub fn value(data: impl Into<Bytes>) -> Self {
        Payload::Value {
            data: data.into(),
            expires_at_ms: None,
        }
    }

    /// A string with memcached flags (a plain value when they are 0).
    pub fn string(data: Bytes, expires_at_ms: Option<u64>, flags: u32) -> Self {
        if flags == 0 {
            Payload::Value {
                data,
                expires_at_ms,
            }
        } else {
            Payload::Flagged {
                data,
                expires_at_ms,
                flags,
            }
        }
    }

    /// A memcached item: the plainest variant that holds it.
    pub fn item(data: Bytes, expires_at_ms: Option<u64>, flags: u32, meta: ItemMeta) -> Self {
        if meta.is_plain() {
            Self::string(data, expires_at_ms, flags)
        } else {
            Payload::Item {
                data,
                expires_at_ms,
                flags,
                meta,
            }
        }
    }

    /// Absolute expiry of a value or data type (`None` for a tombstone).
    pub fn expires_at_ms(&self) -> Option<u64> {
        match self {
            Payload::Value { expires_at_ms, .. }
            | Payload::Flagged { expires_at_ms, .. }
            | Payload::Item { expires_at_ms, .. }
            | Payload::Typed { expires_at_ms, .. } => *expires_at_ms,
            Payload::Tombstone => None,
        }
    }

    /// Whether this is a value or data type not expired at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !matches!(self, Payload::Tombstone) && self.expires_at_ms().is_none_or(|at| at > now_ms)
    }

    /// Rough size of what it holds, in bytes.
    pub fn approx_len(&self) -> usize {
        match self {
            Payload::Value { data, .. }
            | Payload::Flagged { data, .. }
            | Payload::Item { data, .. } => data.len(),
            Payload::Typed { value, .. } => value.approx_len(),
            Payload::Tombstone => 0,
        }
    }

    /// The live string bytes at `now_ms`, or `None` for a tombstone, a data
    /// type or an expired value.
    pub fn live_data(&self, now_ms: u64) -> Option<&Bytes> {
        match self {
            Payload::Value {
                data,
                expires_at_ms,
            }
            | Payload::Flagged {
                data,
                expires_at_ms,
                ..
            }
            | Payload::Item {
                data,
                expires_at_ms,
                ..
            } if expires_at_ms.is_none_or(|at| at > now_ms) => Some(data),
            _ => None,
        }
    }
}

/// One version of a key.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Sibling {
    /// The write that created this version.
    pub dot: Dot,
    /// Coordinator wall-clock time of the write (ms); only used to pick a GET winner.
    pub timestamp_ms: u64,
    /// Value or deletion.
    pub payload: Payload,
}

impl Sibling {
    /// The deterministic GET order: latest timestamp, then node name, then counter.
    fn winner_key(&self) -> (u64, &NodeId, u64) {
        (self.timestamp_ms, &self.dot.node, self.dot.counter)
    }
}

/// All concurrent versions of one key and the history they summarise.
#[derive(Clone, PartialEq, Eq, Default, Debug, Serialize, Deserialize)]
pub struct Object {
    /// Every write this object has seen (superseded ones included).
    pub context: VersionVector,
    /// The surviving versions, sorted by dot so equal objects compare equal.
    pub siblings: Vec<Sibling>,
}

impl Object {
    /// An object that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a write coordinated by `coordinator` at `now_ms`.
    ///
    /// The write supersedes exactly the siblings whose dots `client_context`
    /// covers; every other sibling stays. Returns the new version's dot.
    pub fn update(
        &mut self,
        client_context: &VersionVector,
        coordinator: &NodeId,
        payload: Payload,
        now_ms: u64,
    ) -> Dot {
        self.update_at_least(client_context, coordinator, payload, now_ms, 0)
    }

    /// [`Object::update`] with the new dot's counter at least `min_counter`.
    ///
    /// A coordinator that keeps one counter for all keys passes its next
    /// value here, so it never hands out a dot twice even when its copy of
    /// the key was collected (tombstone GC) or never existed.
    pub fn update_at_least(
        &mut self,
        client_context: &VersionVector,
        coordinator: &NodeId,
        payload: Payload,
        now_ms: u64,
        min_counter: u64,
    ) -> Dot {
        self.update_as(
            client_context,
            coordinator,
            payload,
            now_ms,
            min_counter,
            Authority::Owner,
        )
    }

    /// [`Object::update_at_least`] by a coordinator with `authority` over
    /// this copy: a data type's queued changes are named after the new
    /// dot here (see [`TypedValue::stamp`]).
    pub fn update_as(
        &mut self,
        client_context: &VersionVector,
        coordinator: &NodeId,
        mut payload: Payload,
        now_ms: u64,
        min_counter: u64,
        authority: Authority,
    ) -> Dot {
        // Numbering above both histories keeps this coordinator's dots for
        // the key unique even if the client has seen a newer write of ours
        // than the copy we hold.
        // Saturating, never wrapping: a wrapped counter would be a dot every
        // history already covers. Callers that number writes for real
        // (`DotIssuer`) refuse before a counter can reach the top.
        let counter = self
            .context
            .get(coordinator)
            .max(client_context.get(coordinator))
            .saturating_add(1)
            .max(min_counter);
        let dot = Dot {
            node: coordinator.clone(),
            counter,
        };
        // A write that supersedes versions must also win last-writer-wins
        // against them, even if this coordinator's clock lags theirs.
        let superseded_max = self
            .siblings
            .iter()
            .filter(|s| client_context.covers(&s.dot))
            .map(|s| s.timestamp_ms)
            .max();
        let now_ms = superseded_max.map_or(now_ms, |t| now_ms.max(t.saturating_add(1)));
        if let Payload::Typed { value, .. } = &mut payload {
            let stored: Vec<&TypedValue> = self
                .siblings
                .iter()
                .filter_map(|s| match &s.payload {
                    Payload::Typed { value: v, .. } if v.kind() == value.kind() => Some(v),
                    _ => None,
                })
                .collect();
            value.stamp(&dot, client_context, now_ms, authority, &stored);
        }
        self.siblings.retain(|s| !client_context.covers(&s.dot));
        self.context.join(client_context);
        self.context.add(&dot);
        self.siblings.push(Sibling {
            dot: dot.clone(),
            timestamp_ms: now_ms,
            payload,
        });
        self.siblings.sort_by(|a, b| a.dot.cmp(&b.dot));
        dot
    }

    /// Merges another replica's copy into this one (commutative, associative,
    /// idempotent). A sibling survives unless the other side has seen its dot
    /// and no longer keeps it.
    pub fn merge(&mut self, other: &Object) {
        let mut merged: Vec<Sibling> =
            Vec::with_capacity(self.siblings.len() + other.siblings.len());
        for s in &self.siblings {
            match other.siblings.iter().find(|o| o.dot == s.dot) {
                Some(o) => merged.push(same_dot(s, o).clone()),
                None if !other.context.covers(&s.dot) => merged.push(s.clone()),
                None => {}
            }
        }
        for o in &other.siblings {
            let already = merged.iter().any(|m| m.dot == o.dot);
            if !already && !self.context.covers(&o.dot) {
                merged.push(o.clone());
            }
        }
        merged.sort_by(|a, b| a.dot.cmp(&b.dot));
        self.siblings = merged;
        self.context.join(&other.context);
    }

    /// The version plain GET shows: latest timestamp, ties broken by dot.
    /// Every replica picks the same one for the same object.
    pub fn winner(&self) -> Option<&Sibling> {
        self.siblings
            .iter()
            .max_by(|a, b| a.winner_key().cmp(&b.winner_key()))
    }

    /// The winner's live value at `now_ms` (None if deleted, expired or absent).
    pub fn visible(&self, now_ms: u64) -> Option<&Sibling> {
        self.winner().filter(|s| s.payload.is_live(now_ms))
    }

    /// True when no sibling holds a live value at `now_ms` (only tombstones or
    /// expired values remain), so the object may be collected once every
    /// replica has it.
    pub fn is_dead(&self, now_ms: u64) -> bool {
        self.siblings.iter().all(|s| !s.payload.is_live(now_ms))
    }

    /// The latest sibling timestamp (0 when empty): what a node folds into
    /// its hybrid logical clock when it receives this object.
    pub fn max_timestamp(&self) -> u64 {
        self.siblings
            .iter()
            .map(|s| s.timestamp_ms)
            .max()
            .unwrap_or(0)
    }

    /// True when `self` already contains everything `other` would add.
    pub fn descends(&self, other: &Object) -> bool {
        let mut merged = self.clone();
        merged.merge(other);
        &merged == self
    }
}

/// Which of two copies of one write survives a merge. They differ only when
/// one replica has already turned an expired value into its tombstone
/// ([`crate::core::gc::expire`]): the tombstone must win on every replica,
/// in either merge order, or a replica that has not converted yet would
/// hand the value back.
fn same_dot<'a>(a: &'a Sibling, b: &'a Sibling) -> &'a Sibling {
    let rank = |s: &Sibling| (matches!(s.payload, Payload::Tombstone), s.timestamp_ms);
    if rank(b) > rank(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str) -> NodeId {
        NodeId::new(name)
    }

    fn values(o: &Object) -> Vec<Bytes> {
        o.siblings
            .iter()
            .filter_map(|s| s.payload.live_data(0).cloned())
            .collect()
    }

    #[test]
    fn empty_context_writes_become_siblings() {
        let mut o = Object::new();
        o.update(&VersionVector::new(), &n("a"), Payload::value("x"), 1);
        o.update(&VersionVector::new(), &n("a"), Payload::value("y"), 2);
        assert_eq!(values(&o), vec![Bytes::from("x"), Bytes::from("y")]);
        let ctx = o.context.clone();
        o.update(&ctx, &n("a"), Payload::value("z"), 3);
        assert_eq!(values(&o), vec![Bytes::from("z")]);
    }

    #[test]
    fn same_context_same_coordinator_keeps_both() {
        let mut o = Object::new();
        o.update(&VersionVector::new(), &n("a"), Payload::value("base"), 1);
        let ctx = o.context.clone();
        o.update(&ctx, &n("a"), Payload::value("c1"), 2);
        o.update(&ctx, &n("a"), Payload::value("c2"), 3);
        assert_eq!(values(&o), vec![Bytes::from("c1"), Bytes::from("c2")]);
    }

    #[test]
    fn merge_drops_superseded_keeps_concurrent() {
        let mut a = Object::new();
        a.update(&VersionVector::new(), &n("a"), Payload::value("v1"), 1);
        let mut b = a.clone();
        let ctx = a.context.clone();
        a.update(&ctx, &n("a"), Payload::value("v2"), 2);
        b.update(&ctx, &n("b"), Payload::value("w2"), 2);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(values(&m), vec![Bytes::from("v2"), Bytes::from("w2")]);
        let mut m2 = b.clone();
        m2.merge(&a);
        assert_eq!(m, m2);
    }

    #[test]
    fn winner_is_latest_timestamp_then_dot() {
        let mut o = Object::new();
        o.update(&VersionVector::new(), &n("b"), Payload::value("old"), 5);
        o.update(&VersionVector::new(), &n("a"), Payload::value("new"), 9);
        assert_eq!(o.winner().map(|s| s.timestamp_ms), Some(9));
        let mut tie = Object::new();
        tie.update(&VersionVector::new(), &n("a"), Payload::value("a"), 5);
        tie.update(&VersionVector::new(), &n("b"), Payload::value("b"), 5);
        assert_eq!(tie.winner().map(|s| s.dot.node.clone()), Some(n("b")));
    }

    #[test]
    fn expiry_hides_value() {
        let mut o = Object::new();
        o.update(
            &VersionVector::new(),
            &n("a"),
            Payload::Value {
                data: Bytes::from("x"),
                expires_at_ms: Some(100),
            },
            1,
        );
        assert!(o.visible(99).is_some());
        assert!(o.visible(100).is_none());
        assert!(o.is_dead(100));
    }

    #[test]
    fn items_with_meta_state_are_a_new_tag_and_older_records_still_decode() {
        use crate::core::item_meta::ItemCas;
        let flagged = Payload::string(Bytes::from("x"), Some(9), 5);
        let old = postcard::to_allocvec(&flagged).expect("encode");
        assert_eq!(old[0], 3, "Flagged keeps its tag");
        assert_eq!(
            postcard::from_bytes::<Payload>(&old).ok(),
            Some(flagged.clone())
        );
        // Without meta state an item is the plainer variant.
        let plain = Payload::item(Bytes::from("x"), Some(9), 5, ItemMeta::default());
        assert_eq!(plain, flagged);
        let meta = ItemMeta {
            cas: Some(ItemCas::Chosen(7)),
            stale: true,
            win_sent: false,
        };
        let item = Payload::item(Bytes::from("x"), None, 0, meta);
        let new = postcard::to_allocvec(&item).expect("encode");
        assert_eq!(new[0], 4);
        assert_eq!(
            postcard::from_bytes::<Payload>(&new).ok(),
            Some(item.clone())
        );
        assert_eq!(item.live_data(0), Some(&Bytes::from("x")));
    }
}
