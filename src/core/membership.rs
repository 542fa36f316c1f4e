//! Cluster membership and ring as one versioned value, spread by gossip.
//!
//! Every change (join, leave, removal) is made by one node, which bumps the
//! version; gossip keeps the higher version as the base of a merge. A change
//! does not switch the ring at once: it opens a [`Transition`] to the next
//! ring, whose partition moves are recorded as they complete (a grow-only
//! set, merged by union) until the state commits (ring := next) — a
//! deterministic step, so every node that has seen the same transfers
//! commits to the same state. Concurrent changes fold into one next ring.
//! Removed members are kept as tombstones (name → version of removal), so
//! gossip from a node that has not heard of the removal cannot bring them
//! back; a later explicit join (a newer admission) can.

use super::ring::{Ring, RingError};
use super::transition::{Move, Transition};
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
    /// The client address Redis Cluster clients are pointed at
    /// (`--cluster-client-port`), where keys this node does not serve are
    /// answered `MOVED`; `None` points them at `client_addr`.
    pub cluster_client_addr: Option<String>,
}

impl Member {
    /// The address the slot map advertises for this member.
    pub fn slot_map_addr(&self) -> &str {
        self.cluster_client_addr
            .as_deref()
            .unwrap_or(&self.client_addr)
    }
}

/// Why a membership change cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    /// The ring cannot be built.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// No member has that name.
    #[error("unknown node {0}")]
    UnknownNode(String),
    /// Removing it would leave no member.
    #[error("{0} is the last member of the cluster: it cannot leave")]
    LastMember(String),
    /// It is already on its way out.
    #[error("{0} is already leaving the cluster")]
    AlreadyLeaving(String),
}

/// The cluster's shared state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Random id chosen when the cluster was created; peers with another id
    /// are refused.
    pub cluster_id: String,
    /// Bumped by every change.
    pub version: u64,
    /// Members by name (during a transition: those of both rings).
    pub members: BTreeMap<NodeId, Member>,
    /// Partition owners (the committed ring: reads go by it).
    pub ring: Ring,
    /// Replicas per key the ring is spaced for.
    pub n: usize,
    /// Commits so far: transfers of an older transition never count.
    pub generation: u64,
    /// The change in progress, if any.
    pub transition: Option<Transition>,
    /// Version at which each member was last admitted.
    pub admitted: BTreeMap<NodeId, u64>,
    /// Version at which each removed member left (tombstones).
    pub removed: BTreeMap<NodeId, u64>,
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
            admitted: BTreeMap::from([(node.clone(), 1)]),
            members: BTreeMap::from([(node, member)]),
            ring,
            n,
            generation: 0,
            transition: None,
            removed: BTreeMap::new(),
        })
    }

    /// The ring being moved to (the committed one when nothing moves).
    pub fn next_ring(&self) -> &Ring {
        self.transition.as_ref().map_or(&self.ring, |t| &t.next)
    }

    /// Whether `node` is on its way out.
    pub fn is_leaving(&self, node: &NodeId) -> bool {
        self.transition
            .as_ref()
            .is_some_and(|t| t.leaving.contains_key(node))
    }

    /// Members that stay once the transition commits.
    pub fn target_members(&self) -> Vec<NodeId> {
        self.members
            .keys()
            .filter(|m| !self.is_leaving(m))
            .cloned()
            .collect()
    }

    /// The next preference list of partition `p`, while a change runs.
    pub fn next_preference_list(&self, p: usize, n: usize) -> Option<Vec<NodeId>> {
        self.transition
            .as_ref()
            .map(|t| t.next.preference_list(p, n))
    }

    /// Moves not complete yet (empty when nothing moves).
    pub fn pending_moves(&self) -> Vec<Move> {
        self.transition
            .as_ref()
            .map(|t| t.pending(&self.ring, self.n))
            .unwrap_or_default()
    }

    /// The state after `node` joins (or updates its addresses).
    pub fn with_member(&self, node: NodeId, member: Member) -> Result<Self, RingError> {
        let mut next = self.clone();
        next.version = next.version.saturating_add(1);
        let known = next.members.insert(node.clone(), member).is_some();
        if !known || next.is_leaving(&node) {
            next.admitted.insert(node.clone(), next.version);
            if let Some(t) = next.transition.as_mut() {
                t.leaving.remove(&node);
            }
            let target = next.target_members();
            next.replan(&target, &BTreeMap::new())?;
        }
        Ok(next)
    }

    /// The state after `node` starts leaving: `dead` when it is removed by
    /// another node because it no longer answers.
    pub fn leave(&self, node: &NodeId, dead: bool) -> Result<Self, ChangeError> {
        if !self.members.contains_key(node) {
            return Err(ChangeError::UnknownNode(node.to_string()));
        }
        if self.is_leaving(node) {
            return Err(ChangeError::AlreadyLeaving(node.to_string()));
        }
        let target: Vec<NodeId> = self
            .target_members()
            .into_iter()
            .filter(|m| m != node)
            .collect();
        if target.is_empty() {
            return Err(ChangeError::LastMember(node.to_string()));
        }
        let mut next = self.clone();
        next.version = next.version.saturating_add(1);
        next.replan(&target, &BTreeMap::from([(node.clone(), dead)]))?;
        Ok(next)
    }

    /// Records that `from` has sent partition `p` to `to`; commits when it
    /// was the last transfer missing.
    pub fn with_transfer(&self, p: usize, to: NodeId, from: NodeId) -> Self {
        self.with_transfers(&[(p, to)], &from)
    }

    /// [`ClusterState::with_transfer`] for several partitions sent by `from`.
    pub fn with_transfers(&self, sent: &[(usize, NodeId)], from: &NodeId) -> Self {
        let mut next = self.clone();
        let n = next.n;
        if let Some(t) = next.transition.as_mut() {
            for (p, to) in sent {
                t.done.insert((*p, to.clone(), from.clone()));
            }
            t.prune(&next.ring, n);
        }
        next.maybe_commit();
        next
    }

    /// Re-plans the next ring for `target` (from the current next ring, so
    /// transfers already made stay valid where they can); `new_leavers` are
    /// members that leave with this change.
    fn replan(
        &mut self,
        target: &[NodeId],
        new_leavers: &BTreeMap<NodeId, bool>,
    ) -> Result<(), RingError> {
        let next_ring = self.next_ring().rebalance(target, self.n)?;
        let mut leaving = self
            .transition
            .take()
            .map(|t| (t.leaving, t.done))
            .unwrap_or_default();
        for (m, dead) in new_leavers {
            leaving.0.insert(m.clone(), *dead);
        }
        leaving
            .0
            .retain(|m, _| self.members.contains_key(m) && !target.contains(m));
        let mut t = Transition {
            next: next_ring,
            leaving: leaving.0,
            done: leaving.1,
        };
        t.prune(&self.ring, self.n);
        self.transition = if t.next == self.ring && t.leaving.is_empty() {
            None
        } else {
            Some(t)
        };
        self.maybe_commit();
        Ok(())
    }

    /// Switches to the next ring once every move is complete: leavers
    /// become tombstones.
    fn maybe_commit(&mut self) {
        let complete = self
            .transition
            .as_ref()
            .is_some_and(|t| t.pending(&self.ring, self.n).is_empty());
        if !complete {
            return;
        }
        let Some(t) = self.transition.take() else {
            return;
        };
        self.version = self.version.saturating_add(1);
        self.generation = self.generation.saturating_add(1);
        self.ring = t.next;
        for m in t.leaving.keys() {
            self.members.remove(m);
            self.removed.insert(m.clone(), self.version);
        }
    }

    /// Member names in order.
    pub fn member_ids(&self) -> Vec<NodeId> {
        self.members.keys().cloned().collect()
    }

    /// Combines a state heard from a peer with ours; returns the state to
    /// keep. The newer state is the base (for equal versions, the one that
    /// sorts larger, so both sides pick the same). Admissions and tombstones
    /// are merged by maximum, members only the other state knows are added
    /// unless removed since their admission, leavers are united; if that
    /// changes who stays, the next ring is re-planned and the version
    /// bumped. Transfers of the same generation are united, and the state
    /// commits if they complete the change. Every step is symmetric in the
    /// two states, so every node computes the same result.
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
        let mut next = base.clone();
        for (m, v) in &extra.admitted {
            let e = next.admitted.entry(m.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
        for (m, v) in &extra.removed {
            let e = next.removed.entry(m.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
        for (id, m) in &extra.members {
            let admitted = next.admitted.get(id).copied().unwrap_or(0);
            let removed = next.removed.get(id).copied().unwrap_or(0);
            if !next.members.contains_key(id) && admitted > removed {
                next.members.insert(id.clone(), m.clone());
            }
        }
        let mut leavers = BTreeMap::new();
        if let Some(t) = &extra.transition {
            for (m, dead) in &t.leaving {
                if next.members.contains_key(m) && !next.is_leaving(m) {
                    leavers.insert(m.clone(), *dead);
                }
            }
        }
        let target: Vec<NodeId> = next
            .target_members()
            .into_iter()
            .filter(|m| !leavers.contains_key(m))
            .collect();
        if target != base.target_members() {
            next.version = base.version.max(extra.version).saturating_add(1);
            next.replan(&target, &leavers)?;
        }
        if extra.generation == next.generation {
            let n = next.n;
            if let (Some(t), Some(theirs)) = (next.transition.as_mut(), &extra.transition) {
                t.done.extend(theirs.done.iter().cloned());
                t.prune(&next.ring, n);
            }
        }
        next.maybe_commit();
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
            cluster_client_addr: None,
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::new(s)
    }

    /// Completes every pending move, as the sources would.
    fn finish(mut s: ClusterState) -> ClusterState {
        while let Some(m) = s.pending_moves().first().cloned() {
            let from = s
                .ring
                .preference_list(m.partition, s.n)
                .into_iter()
                .find(|o| !s.transition.as_ref().is_some_and(|t| t.is_dead_leaver(o)))
                .expect("a source");
            let all: Vec<NodeId> = s.ring.preference_list(m.partition, s.n);
            s = s.with_transfer(m.partition, m.to.clone(), from);
            for o in all {
                if s.transition.is_some() {
                    s = s.with_transfer(m.partition, m.to.clone(), o);
                }
            }
        }
        s
    }

    fn three() -> ClusterState {
        let s = ClusterState::founding("c".into(), id("a"), member(1), 64, 3).expect("state");
        let s = finish(s.with_member(id("b"), member(2)).expect("join"));
        finish(s.with_member(id("c"), member(3)).expect("join"))
    }

    #[test]
    fn a_join_commits_only_when_every_move_is_complete() {
        let s = three();
        assert!(s.transition.is_none());
        assert_eq!(s.ring.members().len(), 3);
        let joined = s.with_member(id("d"), member(4)).expect("join");
        // The ring has not switched: reads still go to the old owners.
        assert_eq!(joined.ring, s.ring);
        let moves = joined.pending_moves();
        assert!(!moves.is_empty());
        let mut t = joined.clone();
        for m in &moves[..moves.len() - 1] {
            let from = m.sources[0].clone();
            t = t.with_transfer(m.partition, m.to.clone(), from);
            assert!(t.transition.is_some(), "committed before the last move");
        }
        let last = moves.last().expect("a move");
        let from = last.sources[0].clone();
        let done = t.with_transfer(last.partition, last.to.clone(), from);
        assert!(done.transition.is_none());
        assert_eq!(done.ring.members().len(), 4);
        assert_eq!(done.generation, s.generation + 1);
        // A transfer that is not a move is ignored.
        let bogus = joined.with_transfer(0, id("zz"), id("a"));
        assert_eq!(bogus.transition.as_ref().map(|t| t.done.len()), Some(0));
    }

    #[test]
    fn merge_unites_transfers_commutatively_and_idempotently() {
        let joined = three().with_member(id("d"), member(4)).expect("join");
        let moves = joined.pending_moves();
        let half = moves.len() / 2;
        let from = |_: &ClusterState, m: &Move| m.sources[0].clone();
        let mut a = joined.clone();
        for m in &moves[..half] {
            a = a.with_transfer(m.partition, m.to.clone(), from(&joined, m));
        }
        let mut b = joined.clone();
        for m in &moves[half..moves.len() - 1] {
            b = b.with_transfer(m.partition, m.to.clone(), from(&joined, m));
        }
        let ab = a.merge(&b).expect("merge");
        let ba = b.merge(&a).expect("merge");
        assert_eq!(ab, ba);
        assert_eq!(ab.merge(&a).expect("merge"), ab);
        assert_eq!(ab.merge(&b).expect("merge"), ab);
        assert_eq!(ab.merge(&ab).expect("merge"), ab);
        assert_eq!(ab.pending_moves().len(), 1);
        // The last transfer, made on either side, commits the same state.
        let last = moves.last().expect("a move");
        let c = b.with_transfer(last.partition, last.to.clone(), from(&joined, last));
        let x = ab.merge(&c).expect("merge");
        let y = c.merge(&ab).expect("merge");
        assert_eq!(x, y);
        assert!(x.transition.is_none());
        assert_eq!(x.ring.members().len(), 4);
        // An older state heard later changes nothing.
        assert_eq!(x.merge(&joined).expect("merge"), x);
        assert_eq!(joined.merge(&x).expect("merge"), x);
    }

    #[test]
    fn a_join_during_a_transition_folds_into_the_next_ring() {
        let with_d = three().with_member(id("d"), member(4)).expect("join");
        let m = with_d.pending_moves()[0].clone();
        let from = m.sources[0].clone();
        let partly = with_d.with_transfer(m.partition, m.to.clone(), from);
        let with_e = partly.with_member(id("e"), member(5)).expect("join");
        assert_eq!(with_e.next_ring().members().len(), 5);
        // Concurrent joins through different nodes converge.
        let with_f = partly.with_member(id("f"), member(6)).expect("join");
        let x = with_e.merge(&with_f).expect("merge");
        assert_eq!(x, with_f.merge(&with_e).expect("merge"));
        assert_eq!(x.members.len(), 6);
        assert_eq!(x.next_ring().members().len(), 6);
        let done = finish(x);
        assert_eq!(done.ring.members().len(), 6);
        for c in done.ring.ownership().values() {
            assert!(*c == 64 / 6 || *c == 64 / 6 + 1);
        }
    }

    #[test]
    fn removed_members_stay_removed_until_they_join_again() {
        let s = finish(three().with_member(id("d"), member(4)).expect("join"));
        assert_eq!(
            s.leave(&id("zz"), true),
            Err(ChangeError::UnknownNode("zz".into()))
        );
        let leaving = s.leave(&id("c"), true).expect("leave");
        assert!(leaving.is_leaving(&id("c")));
        assert_eq!(
            leaving.leave(&id("c"), true),
            Err(ChangeError::AlreadyLeaving("c".into()))
        );
        assert_eq!(leaving.members.len(), 4);
        let gone = finish(leaving);
        assert!(!gone.members.contains_key(&id("c")));
        assert_eq!(gone.ring.members().len(), 3);
        // Gossip from a node that never heard of the removal.
        assert_eq!(gone.merge(&s).expect("merge"), gone);
        assert_eq!(s.merge(&gone).expect("merge"), gone);
        // An explicit join admits it again.
        let back = gone.with_member(id("c"), member(3)).expect("join");
        assert!(back.members.contains_key(&id("c")));
        assert_eq!(back.merge(&s).expect("merge").members.len(), 4);
        let last = ClusterState::founding("c".into(), id("a"), member(1), 64, 3).expect("state");
        assert_eq!(
            last.leave(&id("a"), false),
            Err(ChangeError::LastMember("a".into()))
        );
    }

    #[test]
    fn concurrent_joins_at_different_versions_both_survive() {
        let base = ClusterState::founding("c".into(), id("n1"), member(1), 64, 3).expect("state");
        let v2 = finish(base.with_member(id("n2"), member(2)).expect("join"));
        let with_n4 = v2.with_member(id("n4"), member(4)).expect("join");
        let with_n5 = v2
            .with_member(id("n3"), member(3))
            .and_then(|s| s.with_member(id("n5"), member(5)))
            .expect("join");
        let a = with_n4.merge(&with_n5).expect("merge");
        let b = with_n5.merge(&with_n4).expect("merge");
        assert_eq!(a, b);
        assert_eq!(a.members.len(), 5);
        assert_eq!(a.merge(&with_n4).expect("merge"), a);
        assert_eq!(a.merge(&with_n5).expect("merge"), a);
        assert_eq!(finish(a).ring.members().len(), 5);
    }
}
