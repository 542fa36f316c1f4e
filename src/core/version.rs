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

/// A causal history: node -> highest counter seen.
///
/// `BTreeMap` keeps iteration (and so encoding) deterministic.
#[derive(Clone, PartialEq, Eq, Default, Debug, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<NodeId, u64>);

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
        let entry = self.0.entry(dot.node.clone()).or_insert(0);
        *entry = (*entry).max(dot.counter);
    }

    /// Pointwise maximum: the union of both histories.
    pub fn join(&mut self, other: &VersionVector) {
        for (node, &counter) in &other.0 {
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
}
