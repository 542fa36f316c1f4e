//! Merkle trees for anti-entropy: one per ring partition, over the pairs
//! (key, digest of the key's stored record).
//!
//! Replicas holding the same logical state hold byte-identical records
//! (the record encoding is canonical), so two replicas of a partition that
//! have converged have equal roots, and comparing roots costs one hash per
//! partition whatever its size.
//!
//! # Shape
//! Fixed depth, fan-out [`FANOUT`]: a root, [`FANOUT`] middle nodes and
//! [`LEAVES`] leaves. A key's leaf comes from a hash of the key itself (not
//! its ring hash, whose layout may change), so a partition's keys spread
//! evenly over its leaves. Every node's hash is the XOR of the hashes of the
//! entries below it, with an entry count beside it: XOR is order
//! independent and its own inverse, so inserting, replacing or removing one
//! entry updates the three nodes above it in O(1) and never needs a rescan.
//! Two different sets collide only if their XORs of 128-bit hashes of
//! distinct entries agree by chance.
//!
//! Each leaf also keeps its entries (key -> digest), because the exchange
//! sends the (key, digest) lists of differing leaves and an update must know
//! the digest it replaces.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// A 128-bit hash: record digests, entry hashes and node hashes.
pub type Hash = [u8; 16];

/// Children per inner node.
pub const FANOUT: usize = 16;
/// Leaves per partition (two levels of [`FANOUT`]).
pub const LEAVES: usize = FANOUT * FANOUT;

/// The all-zero hash of an empty node.
pub const EMPTY: Hash = [0; 16];

/// The digest of a record's canonical stored bytes.
pub fn record_digest(raw: &[u8]) -> Hash {
    truncate(&Sha256::digest(raw))
}

/// The hash one (key, digest) entry contributes to its leaf.
pub fn entry_hash(key: &[u8], digest: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(digest);
    truncate(&h.finalize())
}

/// The leaf (0..[`LEAVES`]) a key belongs to in its partition's tree.
pub fn leaf_of(key: &[u8]) -> usize {
    let mut h = Sha256::new();
    h.update(b"merkle-leaf");
    h.update(key);
    let d = h.finalize();
    (usize::from(d[0]) << 8 | usize::from(d[1])) % LEAVES
}

/// The middle node (0..[`FANOUT`]) above a leaf.
pub fn middle_of(leaf: usize) -> usize {
    leaf / FANOUT
}

/// The leaves under a middle node.
pub fn leaves_under(middle: usize) -> std::ops::Range<usize> {
    middle * FANOUT..(middle + 1) * FANOUT
}

fn truncate(d: &[u8]) -> Hash {
    let mut out = EMPTY;
    out.copy_from_slice(&d[..16]);
    out
}

fn xor_into(acc: &mut Hash, h: &Hash) {
    for (a, b) in acc.iter_mut().zip(h) {
        *a ^= b;
    }
}

/// A node's summary: XOR of its entries' hashes and their number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHash {
    /// XOR of the entry hashes below.
    pub hash: Hash,
    /// Entries below.
    pub count: u64,
}

impl NodeHash {
    fn toggle(&mut self, h: &Hash, added: bool) {
        xor_into(&mut self.hash, h);
        if added {
            self.count += 1;
        } else {
            self.count = self.count.saturating_sub(1);
        }
    }
}

/// One leaf: its summary and its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Leaf {
    summary: NodeHash,
    entries: BTreeMap<Bytes, Hash>,
}

/// One partition's tree. Leaves are allocated when they get their first
/// entry, so a node with many small partitions pays for the keys it holds,
/// not for the shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionTree {
    root: NodeHash,
    middles: [NodeHash; FANOUT],
    leaves: BTreeMap<usize, Leaf>,
}

impl PartitionTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`'s digest (`None`: the key has no record). Returns whether
    /// the tree changed.
    pub fn set(&mut self, key: &Bytes, digest: Option<Hash>) -> bool {
        let index = leaf_of(key);
        let leaf = self.leaves.entry(index).or_default();
        let old = match digest {
            // A copy: the caller's key may be a slice of a large request
            // buffer, which the tree must not keep alive.
            Some(d) => match leaf.entries.get_mut(key) {
                Some(slot) => Some(std::mem::replace(slot, d)),
                None => leaf.entries.insert(Bytes::copy_from_slice(key), d),
            },
            None => leaf.entries.remove(key),
        };
        if old == digest {
            if leaf.entries.is_empty() {
                self.leaves.remove(&index);
            }
            return false;
        }
        for (h, added) in old
            .map(|d| (entry_hash(key, &d), false))
            .into_iter()
            .chain(digest.map(|d| (entry_hash(key, &d), true)))
        {
            leaf.summary.toggle(&h, added);
            self.middles[middle_of(index)].toggle(&h, added);
            self.root.toggle(&h, added);
        }
        if leaf.entries.is_empty() {
            self.leaves.remove(&index);
        }
        true
    }

    /// The root.
    pub fn root(&self) -> NodeHash {
        self.root
    }

    /// The middle level.
    pub fn middles(&self) -> &[NodeHash; FANOUT] {
        &self.middles
    }

    /// A middle node's or leaf's summary by level (1 = middle, 2 = leaf);
    /// None for an index past the level.
    pub fn node(&self, level: u8, index: usize) -> Option<NodeHash> {
        match level {
            0 if index == 0 => Some(self.root),
            1 => self.middles.get(index).copied(),
            2 if index < LEAVES => Some(self.leaf(index)),
            _ => None,
        }
    }

    /// The children of a node at `level` (0 = the root's middles, 1 = a
    /// middle's leaves), with their indices at the next level.
    pub fn children(&self, level: u8, index: usize) -> Vec<(usize, NodeHash)> {
        match level {
            0 if index == 0 => self.middles.iter().copied().enumerate().collect(),
            1 if index < FANOUT => leaves_under(index)
                .map(|leaf| (leaf, self.leaf(leaf)))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn leaf(&self, index: usize) -> NodeHash {
        self.leaves
            .get(&index)
            .map(|l| l.summary)
            .unwrap_or_default()
    }

    /// The (key, digest) entries of one leaf (empty past [`LEAVES`]).
    pub fn leaf_entries(&self, leaf: usize) -> impl Iterator<Item = (&Bytes, &Hash)> {
        self.leaves
            .get(&leaf)
            .into_iter()
            .flat_map(|l| l.entries.iter())
    }

    /// Every (key, digest) entry of the partition.
    pub fn all_entries(&self) -> impl Iterator<Item = (&Bytes, &Hash)> {
        self.leaves.values().flat_map(|l| l.entries.iter())
    }

    /// The digest recorded for `key`.
    pub fn digest(&self, key: &[u8]) -> Option<Hash> {
        self.leaves
            .get(&leaf_of(key))
            .and_then(|l| l.entries.get(key))
            .copied()
    }

    /// Entries in the tree.
    pub fn len(&self) -> u64 {
        self.root.count
    }

    /// True when the tree holds no entry.
    pub fn is_empty(&self) -> bool {
        self.root.count == 0
    }
}

/// The indices where `local` and `remote` differ (both listed by index;
/// an index only one side lists differs unless it is empty there).
pub fn diff(local: &[(usize, NodeHash)], remote: &[(usize, NodeHash)]) -> Vec<usize> {
    let mine: BTreeMap<usize, NodeHash> = local.iter().copied().collect();
    let theirs: BTreeMap<usize, NodeHash> = remote.iter().copied().collect();
    let mut out: Vec<usize> = mine
        .keys()
        .chain(theirs.keys())
        .copied()
        .filter(|i| {
            mine.get(i).copied().unwrap_or_default() != theirs.get(i).copied().unwrap_or_default()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What one side of a leaf comparison must do for each key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LeafDiff {
    /// Keys whose copy here the other side lacks or holds differently:
    /// send ours.
    pub send: Vec<Bytes>,
    /// Keys only the other side holds: ask for theirs.
    pub want: Vec<Bytes>,
    /// Keys compared.
    pub compared: u64,
}

/// Compares this side's entries with the other side's (both over the same
/// leaves).
pub fn compare_entries<'a>(
    mine: impl IntoIterator<Item = (&'a Bytes, &'a Hash)>,
    theirs: &[(Bytes, Hash)],
) -> LeafDiff {
    let mine: BTreeMap<&Bytes, &Hash> = mine.into_iter().collect();
    let theirs_map: BTreeMap<&Bytes, &Hash> = theirs.iter().map(|(k, d)| (k, d)).collect();
    let mut out = LeafDiff::default();
    for (key, digest) in &mine {
        out.compared += 1;
        if theirs_map.get(key) != Some(digest) {
            out.send.push((*key).clone());
        }
    }
    for key in theirs_map.keys() {
        if !mine.contains_key(key) {
            out.compared += 1;
            out.want.push((*key).clone());
        }
    }
    out
}

/// Lower-case hex of a hash (DYN.DEBUG MERKLE).
pub fn to_hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// One hash over several partitions' roots, in the order given (so a
/// whole node's trees compare in one line).
pub fn combine_roots(roots: impl IntoIterator<Item = (u32, NodeHash)>) -> Hash {
    let mut h = Sha256::new();
    for (p, n) in roots {
        h.update(p.to_be_bytes());
        h.update(n.hash);
        h.update(n.count.to_be_bytes());
    }
    truncate(&h.finalize())
}

/// A set of partitions as a bitmap (bit p of byte p / 8).
pub fn partition_bitmap(partitions: impl IntoIterator<Item = usize>) -> Vec<u8> {
    let mut bits = Vec::new();
    for p in partitions {
        let byte = p / 8;
        if bits.len() <= byte {
            bits.resize(byte + 1, 0);
        }
        bits[byte] |= 1 << (p % 8);
    }
    bits
}

/// The partitions below `limit` a bitmap holds, ascending.
pub fn bitmap_partitions(bits: &[u8], limit: usize) -> Vec<usize> {
    bits.iter()
        .enumerate()
        .flat_map(|(byte, b)| {
            (0..8)
                .filter(move |i| b & (1 << i) != 0)
                .map(move |i| byte * 8 + i)
        })
        .filter(|p| *p < limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Bytes {
        Bytes::from(format!("key:{i}"))
    }

    fn digest(i: u32, v: u32) -> Hash {
        record_digest(format!("{i}/{v}").as_bytes())
    }

    fn tree_of(items: impl IntoIterator<Item = (u32, u32)>) -> PartitionTree {
        let mut t = PartitionTree::new();
        for (i, v) in items {
            t.set(&key(i), Some(digest(i, v)));
        }
        t
    }

    #[test]
    fn equal_sets_have_equal_roots_whatever_the_order() {
        let a = tree_of((0..500).map(|i| (i, 1)));
        let b = tree_of((0..500).rev().map(|i| (i, 1)));
        assert_eq!(a.root(), b.root());
        assert_eq!(a.root().count, 500);
        assert_ne!(a.root().hash, EMPTY);
    }

    #[test]
    fn one_change_is_found_in_exactly_its_leaf() {
        let a = tree_of((0..500).map(|i| (i, 1)));
        let mut b = a.clone();
        assert!(b.set(&key(77), Some(digest(77, 2))));
        assert_ne!(a.root(), b.root());
        let mids = diff(&a.children(0, 0), &b.children(0, 0));
        assert_eq!(mids, vec![middle_of(leaf_of(&key(77)))]);
        let leaves = diff(&a.children(1, mids[0]), &b.children(1, mids[0]));
        assert_eq!(leaves, vec![leaf_of(&key(77))]);
        let mine: Vec<(Bytes, Hash)> = a
            .leaf_entries(leaves[0])
            .map(|(k, d)| (k.clone(), *d))
            .collect();
        let d = compare_entries(b.leaf_entries(leaves[0]), &mine);
        assert_eq!(d.send, vec![key(77)]);
        assert!(d.want.is_empty());
    }

    #[test]
    fn insert_and_remove_are_inverse() {
        let a = tree_of((0..100).map(|i| (i, 1)));
        let mut b = a.clone();
        assert!(b.set(&key(1000), Some(digest(1000, 1))));
        assert_eq!(b.len(), 101);
        assert!(b.set(&key(1000), None));
        assert_eq!(a, b);
        // Replacing a digest and putting it back is also a no-op overall.
        b.set(&key(5), Some(digest(5, 9)));
        b.set(&key(5), Some(digest(5, 1)));
        assert_eq!(a.root(), b.root());
        // Setting the same digest again changes nothing.
        assert!(!b.set(&key(5), Some(digest(5, 1))));
        let mut empty = tree_of([]);
        empty.set(&key(1), Some(digest(1, 1)));
        empty.set(&key(1), None);
        assert_eq!(empty.root(), NodeHash::default());
    }

    #[test]
    fn compare_lists_missing_keys_on_both_sides() {
        let a = tree_of([(1, 1), (2, 1)]);
        let b = tree_of([(2, 1), (3, 1)]);
        let all_a: Vec<(Bytes, Hash)> = (0..LEAVES)
            .flat_map(|l| a.leaf_entries(l).map(|(k, d)| (k.clone(), *d)))
            .collect();
        let d = compare_entries(b.all_entries(), &all_a);
        assert_eq!(d.send, vec![key(3)]);
        assert_eq!(d.want, vec![key(1)]);
        assert_eq!(d.compared, 3);
    }

    #[test]
    fn bitmaps_round_trip() {
        let set = vec![0, 7, 8, 100, 1023];
        let bits = partition_bitmap(set.iter().copied());
        assert_eq!(bits.len(), 128);
        assert_eq!(bitmap_partitions(&bits, 1024), set);
        assert_eq!(bitmap_partitions(&bits, 100), vec![0, 7, 8]);
        assert!(bitmap_partitions(&[], 1024).is_empty());
    }

    #[test]
    fn diff_treats_absent_as_empty() {
        let x = NodeHash {
            hash: [1; 16],
            count: 1,
        };
        assert_eq!(diff(&[(0, x)], &[]), vec![0]);
        assert!(diff(&[(0, NodeHash::default())], &[]).is_empty());
        assert_eq!(diff(&[(0, x), (1, x)], &[(1, x), (2, x)]), vec![0, 2]);
    }
}
