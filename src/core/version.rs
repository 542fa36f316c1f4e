//! Node identities, dots and version vectors.
//!
//! A [`Dot`] names one write: the node that coordinated it and that node's
//! per-key event counter. A [`VersionVector`] summarises a causal history: for
//! every node, the highest counter seen. Because a coordinator always numbers
//! its writes for a key contiguously (it increments the highest counter it has
//! seen for itself), `counter <= vv[node]` is exactly "this write was seen".

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A node's stable name (its `--node-name`). Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Wraps a node name.
    pub fn new(name: &str) -> Self {
        NodeId(Arc::from(name))
    }

    /// The node name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId::new(s)
    }
}

/// One write event: `(node, counter)`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Dot {
    /// The coordinator that created the write.
    pub node: NodeId,
    /// The coordinator's event counter for this key.
    pub counter: u64,
}

/// Largest counter a decoded version vector may hold, and a coordinator
/// may issue. A coordinator numbers a write above the highest counter it
/// has seen for itself, so a context claiming `u64::MAX` (a forged DYN.PUT
/// token) would leave it no fresh dot for any later write. Bounding what
/// decodes, and refusing to issue past it, keeps every issued dot fresh and
/// every stored object decodable; real counters (one per write) stay far
/// below 2^62.
pub const MAX_COUNTER: u64 = 1 << 62;

/// A decoded version vector with a counter above [`MAX_COUNTER`].
#[derive(Debug, thiserror::Error)]
#[error("version counter {0} exceeds {MAX_COUNTER}")]
pub struct CounterTooLarge(pub u64);

/// A causal history: node -> highest counter seen.
///
/// `BTreeMap` keeps iteration (and so encoding) deterministic. No entry is
/// ever 0 (an entry of 0 records nothing): then two vectors with the same
/// history are equal as values, which object comparisons (`descends`, read
/// repair) rely on. Decoding drops zero entries a peer or a client sent.
#[derive(Clone, PartialEq, Eq, Default, Debug, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<NodeId, u64>")]
pub struct VersionVector(BTreeMap<NodeId, u64>);

impl TryFrom<BTreeMap<NodeId, u64>> for VersionVector {
    type Error = CounterTooLarge;

    fn try_from(mut entries: BTreeMap<NodeId, u64>) -> Result<Self, CounterTooLarge> {
        if let Some(&too_large) = entries.values().find(|&&c| c > MAX_COUNTER) {
            return Err(CounterTooLarge(too_large));
        }
        entries.retain(|_, &mut counter| counter > 0);
        Ok(VersionVector(entries))
    }
}

impl VersionVector {
    /// The empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest counter seen for `node` (0 when none).
    pub fn get(&self, node: &NodeId) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// True when the write `dot` is part of this history.
    pub fn covers(&self, dot: &Dot) -> bool {
        dot.counter <= self.get(&dot.node)
    }

    /// Adds `dot` to the history (entries only ever grow).
    pub fn add(&mut self, dot: &Dot) {
        if dot.counter == 0 {
            return;
        }
        let entry = self.0.entry(dot.node.clone()).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum: the union of both histories.
    pub fn join(&mut self, other: &VersionVector) {
        for (node, &counter) in &other.0 {
            if counter == 0 {
                continue;
            }
            let entry = self.0.entry(node.clone()).or_insert(0);
            *entry = (*entry).max(counter);
        }
    }

    /// True when every event of `other` is in `self`.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(node, &c)| self.get(node) >= c)
    }

    /// Causal order: `Some(Less)` when self happened before other, `None` when concurrent.
    pub fn partial_cmp_causal(&self, other: &VersionVector) -> Option<Ordering> {
        match (self.descends(other), other.descends(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }

    /// A stable 64-bit digest of the vector (never 0): equal vectors give
    /// equal digests on every node and every build.
    pub fn fingerprint(&self) -> u64 {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        for (node, counter) in &self.0 {
            h.update((node.as_str().len() as u32).to_be_bytes());
            h.update(node.as_str().as_bytes());
            h.update(counter.to_be_bytes());
        }
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first).max(1)
    }

    /// True when no event is recorded.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|&c| c == 0)
    }

    /// `(node, counter)` entries in node order.
    pub fn entries(&self) -> impl Iterator<Item = (&NodeId, u64)> {
        self.0.iter().map(|(n, &c)| (n, c))
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<T: IntoIterator<Item = (NodeId, u64)>>(iter: T) -> Self {
        let mut vv = VersionVector::new();
        for (node, counter) in iter {
            vv.add(&Dot { node, counter });
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(entries: &[(&str, u64)]) -> VersionVector {
        entries.iter().map(|(n, c)| (NodeId::new(n), *c)).collect()
    }

    #[test]
    fn covers_and_join() {
        let mut a = vv(&[("a", 2)]);
        let b = vv(&[("b", 1)]);
        assert!(a.covers(&Dot {
            node: "a".into(),
            counter: 2
        }));
        assert!(!a.covers(&Dot {
            node: "a".into(),
            counter: 3
        }));
        assert_eq!(a.partial_cmp_causal(&b), None);
        a.join(&b);
        assert_eq!(a.partial_cmp_causal(&b), Some(Ordering::Greater));
        assert_eq!(a, vv(&[("a", 2), ("b", 1)]));
    }

    /// Found by fuzzing (fuzz/corpus/context_token/zero-entry): a context
    /// token holding `{"": 0}` decoded to a vector unequal to the empty one,
    /// so an object whose context picked it up no longer compared equal to
    /// the same history without it (needless read repair).
    #[test]
    fn zero_entries_record_nothing_and_never_appear() -> Result<(), postcard::Error> {
        let mut with_zero = BTreeMap::new();
        with_zero.insert(NodeId::new("x"), 0u64);
        with_zero.insert(NodeId::new("a"), 1u64);
        let decoded: VersionVector = postcard::from_bytes(&postcard::to_allocvec(&with_zero)?)?;
        assert_eq!(decoded, vv(&[("a", 1)]));
        let mut joined = vv(&[("a", 1)]);
        joined.join(&VersionVector(with_zero));
        assert_eq!(joined, vv(&[("a", 1)]));
        assert_eq!(vv(&[("z", 0)]), VersionVector::new());
        Ok(())
    }

    /// Found by fuzzing (fuzz/corpus/context_token/max-counter): a context
    /// token claiming `u64::MAX` for the coordinator overflowed the next
    /// dot's counter (a panic in debug builds; in release builds the node's
    /// one dot counter stuck at `u64::MAX`, so later writes reused a dot).
    #[test]
    fn counters_past_the_limit_do_not_decode() -> Result<(), postcard::Error> {
        let encode = |c: u64| postcard::to_allocvec(&BTreeMap::from([(NodeId::new("n1"), c)]));
        let at_limit: VersionVector = postcard::from_bytes(&encode(MAX_COUNTER)?)?;
        assert_eq!(at_limit.get(&NodeId::new("n1")), MAX_COUNTER);
        assert!(postcard::from_bytes::<VersionVector>(&encode(MAX_COUNTER + 1)?).is_err());
        assert!(postcard::from_bytes::<VersionVector>(&encode(u64::MAX)?).is_err());
        Ok(())
    }
}
