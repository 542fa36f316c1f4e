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

/// Why a ring cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// Q must be a power of two (so a partition is a hash prefix).
    #[error("partition count {0} is not a power of two")]
    PartitionCount(usize),
    /// A ring needs at least one member.
    #[error("a ring needs at least one member")]
    NoMembers,
}

/// Partition → owner, for Q partitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    owners: Vec<NodeId>,
}

impl Ring {
    /// A ring of `partitions` partitions spread over `members`, spaced for
    /// `n` replicas.
    pub fn new(partitions: usize, members: &[NodeId], n: usize) -> Result<Self, RingError> {
        if !partitions.is_power_of_two() {
            return Err(RingError::PartitionCount(partitions));
        }
        let members: BTreeSet<NodeId> = members.iter().cloned().collect();
        if members.is_empty() {
            return Err(RingError::NoMembers);
        }
        // Round-robin: balanced, and no node owns two partitions closer than S.
        let members: Vec<NodeId> = members.into_iter().collect();
        let ring = Ring {
            owners: (0..partitions)
                .map(|p| members[p % members.len()].clone())
                .collect(),
        };
        ring.rebalance(&members, n)
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
        &self.owners[p % self.owners.len()]
    }

    /// Distinct members, sorted.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.owners.iter().cloned().collect()
    }

    /// Partitions owned by each member.
    pub fn ownership(&self) -> BTreeMap<NodeId, usize> {
        let mut counts = BTreeMap::new();
        for o in &self.owners {
            *counts.entry(o.clone()).or_insert(0) += 1;
        }
        counts
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
        let mut seen = Vec::new();
        for i in 0..q {
            if seen.len() >= limit {
                break;
            }
            let owner = &self.owners[(p + i) % q];
            if !seen.contains(owner) {
                seen.push(owner.clone());
            }
        }
        seen
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
    pub fn rebalance(&self, members: &[NodeId], n: usize) -> Result<Ring, RingError> {
        let members: BTreeSet<NodeId> = members.iter().cloned().collect();
        if members.is_empty() {
            return Err(RingError::NoMembers);
        }
        let q = self.owners.len();
        let s = members.len();
        let mut owners = self.owners.clone();
        let mut counts: BTreeMap<NodeId, usize> = members.iter().map(|m| (m.clone(), 0)).collect();
        for o in &owners {
            if let Some(c) = counts.get_mut(o) {
                *c += 1;
            }
        }
        // Quotas: everyone gets ⌊Q/S⌋; the Q mod S extra partitions go to the
        // members that already hold the most (then by name), so they move least.
        let mut order: Vec<NodeId> = members.iter().cloned().collect();
        order.sort_by(|a, b| counts[b].cmp(&counts[a]).then_with(|| a.cmp(b)));
        let quota: BTreeMap<NodeId, usize> = order
            .iter()
            .enumerate()
            .map(|(i, m)| (m.clone(), q / s + usize::from(i < q % s)))
            .collect();

        let window = n.max(1) - 1;
        let conflicted = |owners: &[NodeId], p: usize, node: &NodeId| {
            (1..=window).any(|d| &owners[(p + d) % q] == node || &owners[(p + q - d) % q] == node)
        };
        // Visit partitions in a strided order so the partitions a newcomer
        // takes are spread around the ring instead of forming one block.
        let order: Vec<usize> = (0..s).flat_map(|off| (off..q).step_by(s)).collect();
        let below_quota = |counts: &BTreeMap<NodeId, usize>, m: &NodeId| counts[m] < quota[m];
        // Best receiver for partition p: below quota, not owning a partition
        // within the window if `strict`, then the furthest below quota.
        let pick = |owners: &[NodeId], counts: &BTreeMap<NodeId, usize>, p: usize, strict: bool| {
            members
                .iter()
                .filter(|m| below_quota(counts, m) && (!strict || !conflicted(owners, p, m)))
                .min_by_key(|m| (counts[*m] as isize - quota[*m] as isize, (*m).clone()))
                .cloned()
        };
        // 1. Partitions of departed members must move.
        for strict in [true, false] {
            for &p in &order {
                if members.contains(&owners[p]) {
                    continue;
                }
                if let Some(r) = pick(&owners, &counts, p, strict) {
                    *counts.entry(r.clone()).or_insert(0) += 1;
                    owners[p] = r;
                }
            }
        }
        // 2. Members above quota give partitions to members below it.
        for strict in [true, false] {
            for &p in &order {
                let owner = owners[p].clone();
                if counts.get(&owner).is_none_or(|&c| c <= quota[&owner]) {
                    continue;
                }
                if let Some(r) = pick(&owners, &counts, p, strict) {
                    if let Some(c) = counts.get_mut(&owner) {
                        *c -= 1;
                    }
                    *counts.entry(r.clone()).or_insert(0) += 1;
                    owners[p] = r;
                }
            }
        }
        Ok(Ring { owners })
    }
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
    }
}
