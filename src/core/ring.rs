//! The ring: Dynamo's strategy 3 — Q fixed, equal partitions of the 64-bit
//! hash space, each owned by one node; a key's preference list is the first
//! N distinct nodes met walking clockwise from its partition.
//!
//! Placement is pure: given the current assignment and the new member set,
//! [`Ring::rebalance`] moves only the partitions it must (a joining node
//! takes its share from the nodes above quota; a leaving node's partitions
//! go to the nodes below quota), keeps every node at ⌊Q/S⌋ or ⌈Q/S⌉, and
//! prefers placements where a node does not own two partitions within N of
//! each other, so replicas of neighbouring partitions spread evenly.

use super::version::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Default number of partitions (fixed when a cluster is created).
pub const DEFAULT_PARTITIONS: usize = 1024;
/// Fewest partitions a cluster may have.
pub const MIN_PARTITIONS: usize = 64;
/// Most partitions: one per Redis Cluster hash slot.
pub const MAX_PARTITIONS: usize = super::key::SLOTS;

/// Why a ring cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// Q must be a power of two from 64 to 16384, so a partition is a run
    /// of whole hash slots (a prefix of the ring hash).
    #[error("partition count {0} is not a power of two from 64 to 16384")]
    PartitionCount(usize),
    /// A ring needs at least one member.
    #[error("a ring needs at least one member")]
    NoMembers,
}

/// Whether `q` can be a cluster's partition count.
pub fn valid_partition_count(q: usize) -> bool {
    q.is_power_of_two() && (MIN_PARTITIONS..=MAX_PARTITIONS).contains(&q)
}

/// Partition → owner, for Q partitions.
///
/// Owners are kept as indexes into a sorted table of the distinct owners:
/// at Q = 16384 a ring is 64 KiB instead of 16384 names, decoding one does
/// not allocate a name per partition, and on the wire (postcard varints) a
/// partition costs one or two bytes. The form is canonical (table sorted,
/// every entry owns a partition), so equal rings are equal values and
/// encode to equal bytes.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RingWire")]
pub struct Ring {
    nodes: Vec<NodeId>,
    owners: Vec<u32>,
}

/// The encoded form of a [`Ring`]; checked when decoded, so a peer cannot
/// make [`Ring::owner`] index out of bounds.
#[derive(Deserialize)]
struct RingWire {
    nodes: Vec<NodeId>,
    owners: Vec<u32>,
}

#[derive(Serialize)]
struct RingWireRef<'a> {
    nodes: &'a [NodeId],
    owners: &'a [u32],
}

impl Serialize for Ring {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RingWireRef {
            nodes: &self.nodes,
            owners: &self.owners,
        }
        .serialize(serializer)
    }
}

impl TryFrom<RingWire> for Ring {
    type Error = String;

    fn try_from(wire: RingWire) -> Result<Self, String> {
        if !wire.owners.len().is_power_of_two() {
            return Err(format!(
                "ring of {} partitions is not a power of two",
                wire.owners.len()
            ));
        }
        if wire.nodes.windows(2).any(|w| w[0] >= w[1]) {
            return Err("ring owner table is not sorted and distinct".into());
        }
        let mut used = vec![false; wire.nodes.len()];
        for &o in &wire.owners {
            match used.get_mut(o as usize) {
                Some(u) => *u = true,
                None => return Err(format!("ring owner index {o} out of range")),
            }
        }
        if used.contains(&false) {
            return Err("ring owner table lists a node that owns nothing".into());
        }
        Ok(Ring {
            nodes: wire.nodes,
            owners: wire.owners,
        })
    }
}

/// Marks a partition whose owner left, in [`Ring::rebalance`].
const VACANT: u32 = u32::MAX;

impl Ring {
    /// A ring of `partitions` partitions spread over `members`, spaced for
    /// `n` replicas.
    pub fn new(partitions: usize, members: &[NodeId], n: usize) -> Result<Self, RingError> {
        if !valid_partition_count(partitions) {
            return Err(RingError::PartitionCount(partitions));
        }
        let members = sorted_members(members)?;
        // Round-robin: balanced, and no node owns two partitions closer than S.
        let owners = (0..partitions)
            .map(|p| (p % members.len()) as u32)
            .collect();
        let ring = Ring::canonical(members.clone(), owners);
        ring.rebalance(&members, n)
    }

    /// The ring with these partition owners, one name per partition (the
    /// form rings were encoded in before the owner table).
    pub fn from_owners(owners: &[NodeId]) -> Result<Ring, RingError> {
        if !owners.len().is_power_of_two() {
            return Err(RingError::PartitionCount(owners.len()));
        }
        let members = sorted_members(owners)?;
        let owners = owners
            .iter()
            .map(|o| members.binary_search(o).map_or(0, |i| i as u32))
            .collect();
        Ok(Ring::canonical(members, owners))
    }

    /// The canonical ring for `owners` (indexes into the sorted `members`):
    /// members owning nothing are dropped from the table.
    fn canonical(members: Vec<NodeId>, mut owners: Vec<u32>) -> Ring {
        // Rebalance fills every vacant partition (the quotas add up to Q,
        // so a member below quota always exists); should one be left, it
        // goes to the first member rather than indexing out of bounds.
        for o in &mut owners {
            if *o as usize >= members.len() {
                *o = 0;
            }
        }
        let mut used = vec![false; members.len()];
        for &o in &owners {
            used[o as usize] = true;
        }
        let mut remap = vec![0u32; members.len()];
        let mut nodes = Vec::new();
        for (i, m) in members.into_iter().enumerate() {
            if used[i] {
                remap[i] = nodes.len() as u32;
                nodes.push(m);
            }
        }
        for o in &mut owners {
            *o = remap[*o as usize];
        }
        Ring { nodes, owners }
    }

    /// Number of partitions (Q).
    pub fn partitions(&self) -> usize {
        self.owners.len()
    }

    /// The partition a ring hash falls in: its top log2(Q) bits.
    pub fn partition_of(&self, hash: u64) -> usize {
        let bits = self.owners.len().trailing_zeros();
        if bits == 0 {
            0
        } else {
            (hash >> (64 - bits)) as usize
        }
    }

    /// The hash slots of partition `p`: `slot >> (14 - log2 Q) == p`.
    pub fn slots_of(&self, p: usize) -> std::ops::Range<usize> {
        let width = super::key::SLOTS / self.owners.len().max(1);
        p * width..(p + 1) * width
    }

    /// The first hash of partition `p` (its range is up to the next one's).
    pub fn partition_start(&self, p: usize) -> u64 {
        let bits = self.owners.len().trailing_zeros();
        if bits == 0 {
            0
        } else {
            (p as u64) << (64 - bits)
        }
    }

    /// Owner of partition `p`.
    pub fn owner(&self, p: usize) -> &NodeId {
        &self.nodes[self.owners[p % self.owners.len()] as usize]
    }

    /// How many members own partitions. O(1): transition planning asks
    /// this once per partition, where `members()` would copy every name.
    pub fn member_count(&self) -> usize {
        self.nodes.len()
    }

    /// Distinct members, sorted.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.nodes.iter().cloned().collect()
    }

    /// Partitions owned by each member.
    pub fn ownership(&self) -> BTreeMap<NodeId, usize> {
        let mut counts = vec![0usize; self.nodes.len()];
        for &o in &self.owners {
            counts[o as usize] += 1;
        }
        self.nodes.iter().cloned().zip(counts).collect()
    }

    /// Every distinct node in ring order starting at partition `p`: the
    /// first N are the preference list, the rest are sloppy-quorum fallbacks.
    pub fn walk(&self, p: usize) -> Vec<NodeId> {
        self.walk_up_to(p, usize::MAX)
    }

    /// [`Ring::walk`], stopping once `limit` distinct nodes are found (pass
    /// the member count: a well-spread ring finds them all within a few
    /// partitions, instead of visiting all Q).
    pub fn walk_up_to(&self, p: usize, limit: usize) -> Vec<NodeId> {
        let q = self.owners.len();
        let limit = limit.min(self.nodes.len());
        let mut seen = vec![false; self.nodes.len()];
        let mut walk = Vec::new();
        for i in 0..q {
            if walk.len() >= limit {
                break;
            }
            let owner = self.owners[(p + i) % q] as usize;
            if !seen[owner] {
                seen[owner] = true;
                walk.push(self.nodes[owner].clone());
            }
        }
        walk
    }

    /// The preference list of partition `p`: its first `n` distinct nodes.
    pub fn preference_list(&self, p: usize, n: usize) -> Vec<NodeId> {
        self.walk_up_to(p, n)
    }

    /// The preference list for a key's ring hash.
    pub fn preference_list_for_hash(&self, hash: u64, n: usize) -> Vec<NodeId> {
        self.preference_list(self.partition_of(hash), n)
    }

    /// The ring after the member set becomes `members`, moving as few
    /// partitions as possible. `n` is the replica count the spacing aims at.
    ///
    /// Cost: O(Q + moved · (receivers + N)), where receivers are the members
    /// below quota (one on a join, about Q/S on a leave), so a join at
    /// Q = 16384, S = 1000 touches each partition a few times.
    pub fn rebalance(&self, members: &[NodeId], n: usize) -> Result<Ring, RingError> {
        let members = sorted_members(members)?;
        let q = self.owners.len();
        let s = members.len();
        // Old table index → new member index (VACANT: that owner left).
        let remap: Vec<u32> = self
            .nodes
            .iter()
            .map(|m| members.binary_search(m).map_or(VACANT, |i| i as u32))
            .collect();
        let mut owners: Vec<u32> = self.owners.iter().map(|&o| remap[o as usize]).collect();
        let mut counts = vec![0usize; s];
        for &o in &owners {
            if o != VACANT {
                counts[o as usize] += 1;
            }
        }
        // Quotas: everyone gets ⌊Q/S⌋; the Q mod S extra partitions go to the
        // members that already hold the most (then by name), so they move least.
        let mut by_count: Vec<usize> = (0..s).collect();
        by_count.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
        let mut quota = vec![0usize; s];
        for (rank, &m) in by_count.iter().enumerate() {
            quota[m] = q / s + usize::from(rank < q % s);
        }
        // Only members below quota can receive: keep them apart, so a pick
        // looks at a handful of candidates instead of all S members.
        let mut receivers: Vec<usize> = (0..s).filter(|&m| counts[m] < quota[m]).collect();

        let window = n.max(1) - 1;
        let conflicted = |owners: &[u32], p: usize, node: usize| {
            let node = node as u32;
            (1..=window).any(|d| owners[(p + d) % q] == node || owners[(p + q - d) % q] == node)
        };
        // Visit partitions in a strided order so the partitions a newcomer
        // takes are spread around the ring instead of forming one block.
        let order: Vec<usize> = (0..s.min(q)).flat_map(|off| (off..q).step_by(s)).collect();
        // Best receiver for partition p: below quota, not owning a partition
        // within the window if `strict`, then the furthest below quota, then
        // the first by name.
        let pick =
            |owners: &[u32], counts: &[usize], receivers: &[usize], p: usize, strict: bool| {
                receivers
                    .iter()
                    .copied()
                    .filter(|&m| counts[m] < quota[m] && (!strict || !conflicted(owners, p, m)))
                    .min_by_key(|&m| (counts[m] as isize - quota[m] as isize, m))
            };
        // 1. Partitions of departed members must move.
        for strict in [true, false] {
            for &p in &order {
                if owners[p] != VACANT {
                    continue;
                }
                if let Some(r) = pick(&owners, &counts, &receivers, p, strict) {
                    counts[r] += 1;
                    owners[p] = r as u32;
                }
            }
            receivers.retain(|&m| counts[m] < quota[m]);
        }
        // 2. Members above quota give partitions to members below it.
        for strict in [true, false] {
            for &p in &order {
                if receivers.is_empty() {
                    break;
                }
                let owner = owners[p] as usize;
                if counts[owner] <= quota[owner] {
                    continue;
                }
                if let Some(r) = pick(&owners, &counts, &receivers, p, strict) {
                    counts[owner] -= 1;
                    counts[r] += 1;
                    owners[p] = r as u32;
                    if counts[r] >= quota[r] {
                        receivers.retain(|&m| m != r);
                    }
                }
            }
        }
        Ok(Ring::canonical(members, owners))
    }
}

/// `members` sorted and deduplicated; at least one.
fn sorted_members(members: &[NodeId]) -> Result<Vec<NodeId>, RingError> {
    let members: Vec<NodeId> = members
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if members.is_empty() {
        return Err(RingError::NoMembers);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<NodeId> {
        (0..n).map(|i| NodeId::new(&format!("node{i}"))).collect()
    }

    #[test]
    fn balanced_and_distinct() {
        let ring = Ring::new(1024, &nodes(5), 3).expect("ring");
        for (_, c) in ring.ownership() {
            assert!(c == 1024 / 5 || c == 1024 / 5 + 1, "count {c}");
        }
        for p in 0..1024 {
            let pl = ring.preference_list(p, 3);
            assert_eq!(pl.len(), 3);
        }
    }

    #[test]
    fn partition_of_uses_top_bits() {
        let ring = Ring::new(1024, &nodes(1), 3).expect("ring");
        assert_eq!(ring.partition_of(0), 0);
        assert_eq!(ring.partition_of(u64::MAX), 1023);
        assert_eq!(ring.partition_of(ring.partition_start(17)), 17);
        assert!(Ring::new(1000, &nodes(1), 3).is_err());
        assert!(Ring::new(32, &nodes(1), 3).is_err());
        assert!(Ring::new(32768, &nodes(1), 3).is_err());
    }

    #[test]
    fn a_partition_is_a_run_of_slots() {
        use crate::core::key::{key_slot, ring_hash};
        for q in [64, 1024, 16384] {
            let ring = Ring::new(q, &nodes(1), 3).expect("ring");
            let shift = 14 - q.trailing_zeros();
            for key in [&b"foo"[..], b"bar", b"{user}1", b"", b"zz"] {
                let slot = usize::from(key_slot(key));
                let p = ring.partition_of(ring_hash(key));
                assert_eq!(p, slot >> shift);
                assert!(ring.slots_of(p).contains(&slot));
            }
        }
    }
}
