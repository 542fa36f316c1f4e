//! Cluster membership and ring as one versioned value, spread by gossip.
//!
//! Every change (join, leave) is made by one node, which bumps the version;
//! gossip keeps the higher version. Two different states with the same
//! version (concurrent joins through different seeds) merge by taking the
//! union of members, rebalancing, and bumping the version, so every node
//! ends with the same members and ring.

use super::ring::{Ring, RingError};
use super::version::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One member as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Client (RESP) address, `host:port`.
    pub client_addr: String,
    /// Node-to-node address, `host:port`.
    pub cluster_addr: String,
}

/// The cluster's shared state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Random id chosen when the cluster was created; peers with another id
    /// are refused.
    pub cluster_id: String,
    /// Bumped by every change.
    pub version: u64,
    /// Members by name.
    pub members: BTreeMap<NodeId, Member>,
    /// Partition owners.
    pub ring: Ring,
    /// Replicas per key the ring is spaced for.
    pub n: usize,
}

impl ClusterState {
    /// A one-node cluster.
    pub fn founding(
        cluster_id: String,
        node: NodeId,
        member: Member,
        partitions: usize,
        n: usize,
    ) -> Result<Self, RingError> {
        let ring = Ring::new(partitions, std::slice::from_ref(&node), n)?;
        Ok(Self {
            cluster_id,
            version: 1,
            members: BTreeMap::from([(node, member)]),
            ring,
            n,
        })
    }

    /// The state after `node` joins (or updates its addresses).
    pub fn with_member(&self, node: NodeId, member: Member) -> Result<Self, RingError> {
        let mut next = self.clone();
        next.members.insert(node, member);
        next.ring = next.ring.rebalance(&next.member_ids(), self.n)?;
        next.version = next.version.saturating_add(1);
        Ok(next)
    }

    /// The state after `node` leaves.
    pub fn without_member(&self, node: &NodeId) -> Result<Self, RingError> {
        let mut next = self.clone();
        next.members.remove(node);
        next.ring = next.ring.rebalance(&next.member_ids(), self.n)?;
        next.version = next.version.saturating_add(1);
        Ok(next)
    }

    /// Member names in order.
    pub fn member_ids(&self) -> Vec<NodeId> {
        self.members.keys().cloned().collect()
    }

    /// Combines a state heard from a peer with ours; returns the state to
    /// keep. The newer state is the base (for equal versions, the one that
    /// sorts larger, so both sides pick the same); members only the other
    /// state knows are added to it, the ring rebalanced, and the version
    /// bumped. So two joins admitted concurrently by different seeds, at any
    /// versions, both survive, and every node computes the same result.
    pub fn merge(&self, other: &ClusterState) -> Result<ClusterState, RingError> {
        if other.cluster_id != self.cluster_id || other == self {
            return Ok(self.clone());
        }
        let other_is_base = match other.version.cmp(&self.version) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => digest(other) > digest(self),
        };
        let (base, extra) = if other_is_base {
            (other, self)
        } else {
            (self, other)
        };
        let missing: Vec<(&NodeId, &Member)> = extra
            .members
            .iter()
            .filter(|(id, _)| !base.members.contains_key(*id))
            .collect();
        if missing.is_empty() {
            return Ok(base.clone());
        }
        let mut next = base.clone();
        for (id, m) in missing {
            next.members.insert(id.clone(), m.clone());
        }
        next.ring = base.ring.rebalance(&next.member_ids(), base.n)?;
        next.version = base.version.max(extra.version).saturating_add(1);
        Ok(next)
    }
}

/// An order on states that does not depend on which side computes it.
fn digest(state: &ClusterState) -> Vec<u8> {
    postcard::to_allocvec(state).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(port: u16) -> Member {
        Member {
            client_addr: format!("127.0.0.1:{port}"),
            cluster_addr: format!("127.0.0.1:{}", port + 10000),
        }
    }

    #[test]
    fn higher_version_wins_and_concurrent_joins_converge() {
        let a = NodeId::new("a");
        let base = ClusterState::founding("c".into(), a, member(1), 64, 3).expect("state");
        let with_b = base.with_member(NodeId::new("b"), member(2)).expect("join");
        let with_c = base.with_member(NodeId::new("c"), member(3)).expect("join");
        assert_eq!(base.merge(&with_b).expect("merge"), with_b);
        assert_eq!(with_b.merge(&base).expect("merge"), with_b);
        let m1 = with_b.merge(&with_c).expect("merge");
        let m2 = with_c.merge(&with_b).expect("merge");
        assert_eq!(m1, m2);
        assert_eq!(m1.members.len(), 3);
        assert_eq!(m1.ring.members().len(), 3);
    }

    #[test]
    fn concurrent_joins_at_different_versions_both_survive() {
        let base =
            ClusterState::founding("c".into(), NodeId::new("n1"), member(1), 64, 3).expect("state");
        let v2 = base
            .with_member(NodeId::new("n2"), member(2))
            .expect("join");
        // n2 admits n4 knowing only v2; n1 admits n3 and then n5 (v4).
        let with_n4 = v2.with_member(NodeId::new("n4"), member(4)).expect("join");
        let with_n5 = v2
            .with_member(NodeId::new("n3"), member(3))
            .and_then(|s| s.with_member(NodeId::new("n5"), member(5)))
            .expect("join");
        let a = with_n4.merge(&with_n5).expect("merge");
        let b = with_n5.merge(&with_n4).expect("merge");
        assert_eq!(a, b);
        assert_eq!(a.members.len(), 5);
        // Merging again changes nothing.
        assert_eq!(a.merge(&with_n4).expect("merge"), a);
        assert_eq!(a.merge(&with_n5).expect("merge"), a);
    }
}
