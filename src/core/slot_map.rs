//! The Redis Cluster view of the ring: which hash slots each preference
//! list serves, so a Redis Cluster client (CLUSTER SLOTS / SHARDS / NODES)
//! sends each key straight to a node that coordinates it.
//!
//! A partition is a run of whole hash slots, so the map is exact: the
//! slots of partition `p` are served by `p`'s preference list. Redis
//! Cluster has one master per slot; dynkv's is the first healthy node of
//! the preference list (the node that serialises conditional commands),
//! and the other healthy owners are its "replicas".

use super::ring::Ring;
use super::version::NodeId;
use sha1::{Digest, Sha1};

/// A run of consecutive hash slots with the same owners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRange {
    /// First slot (inclusive).
    pub first: u16,
    /// Last slot (inclusive).
    pub last: u16,
    /// The preference list, healthy nodes first in ring order: the first
    /// is the range's master. Down owners are left out unless none is up.
    pub owners: Vec<NodeId>,
}

/// The slot ranges of `ring` with replication factor `n`, adjacent
/// partitions with the same owners folded into one range.
pub fn slot_ranges(ring: &Ring, n: usize, is_up: impl Fn(&NodeId) -> bool) -> Vec<SlotRange> {
    let mut ranges: Vec<SlotRange> = Vec::new();
    for p in 0..ring.partitions() {
        let owners = serving_order(ring.preference_list(p, n), &is_up);
        let slots = ring.slots_of(p);
        let (first, last) = (slots.start as u16, (slots.end - 1) as u16);
        match ranges.last_mut() {
            Some(prev) if prev.owners == owners && prev.last.wrapping_add(1) == first => {
                prev.last = last;
            }
            _ => ranges.push(SlotRange {
                first,
                last,
                owners,
            }),
        }
    }
    ranges
}

/// A preference list as clients should use it: the healthy owners in ring
/// order; all of them when none is healthy (a client then fails over by
/// itself, as against a Redis Cluster whose shard is down).
pub fn serving_order(preference: Vec<NodeId>, is_up: impl Fn(&NodeId) -> bool) -> Vec<NodeId> {
    let healthy: Vec<NodeId> = preference.iter().filter(|m| is_up(m)).cloned().collect();
    if healthy.is_empty() {
        preference
    } else {
        healthy
    }
}

/// The 40-hex-digit node id Redis Cluster clients expect, derived from the
/// node's name so every node reports the same id for it.
pub fn cluster_node_id(name: &NodeId) -> String {
    hex::encode(Sha1::digest(name.as_str().as_bytes()))
}

/// Folds slots into `first-last` runs (CLUSTER NODES' slot column).
pub fn slot_runs(mut slots: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    slots.sort_unstable();
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for (first, last) in slots {
        match runs.last_mut() {
            Some(prev) if u32::from(prev.1) + 1 == u32::from(first) => prev.1 = last,
            _ => runs.push((first, last)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SLOTS;

    fn ring(members: &[&str], q: usize) -> Ring {
        let ids: Vec<NodeId> = members.iter().map(|m| NodeId::new(m)).collect();
        Ring::new(q, &ids, 3).unwrap_or_else(|e| panic!("ring: {e}"))
    }

    #[test]
    fn ranges_cover_every_slot_once_in_order() {
        let r = ring(&["a", "b", "c", "d"], 64);
        let ranges = slot_ranges(&r, 3, |_| true);
        let mut next = 0usize;
        for range in &ranges {
            assert_eq!(usize::from(range.first), next);
            assert!(range.last >= range.first);
            assert_eq!(range.owners.len(), 3);
            next = usize::from(range.last) + 1;
        }
        assert_eq!(next, SLOTS);
    }

    #[test]
    fn a_lone_node_serves_all_slots_in_one_range() {
        let ranges = slot_ranges(&ring(&["solo"], 1024), 3, |_| true);
        assert_eq!(
            ranges,
            vec![SlotRange {
                first: 0,
                last: 16383,
                owners: vec![NodeId::new("solo")]
            }]
        );
    }

    #[test]
    fn down_owners_step_aside_unless_none_is_up() {
        let r = ring(&["a", "b", "c"], 64);
        let down = NodeId::new("b");
        for range in slot_ranges(&r, 3, |m| m != &down) {
            assert_eq!(range.owners.len(), 2);
            assert!(!range.owners.contains(&down));
        }
        for range in slot_ranges(&r, 3, |_| false) {
            assert_eq!(range.owners.len(), 3);
        }
    }

    #[test]
    fn node_ids_are_forty_hex_digits_and_stable() {
        let id = cluster_node_id(&NodeId::new("n1"));
        assert_eq!(id.len(), 40);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, cluster_node_id(&NodeId::new("n1")));
        assert_ne!(id, cluster_node_id(&NodeId::new("n2")));
    }

    #[test]
    fn slot_runs_fold_adjacent_ranges() {
        assert_eq!(
            slot_runs(vec![(32, 47), (0, 15), (16, 31), (64, 79)]),
            vec![(0, 47), (64, 79)]
        );
    }
}
