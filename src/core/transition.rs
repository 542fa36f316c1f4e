//! A membership change in progress: the ring being moved to, who leaves,
//! and which partition replicas have already been copied to their new
//! owners.
//!
//! A change does not switch the ring at once (a joining node holds nothing,
//! so reads it answered would miss keys). Instead the state carries the
//! *next* ring beside the committed one; every partition replica the next
//! ring adds (a node in a partition's next preference list that is not in
//! its current one) is a [`Move`] a current owner streams to that node.
//! Completed transfers are a grow-only set, so gossip merges them by union;
//! once every move is complete the ring switches (see
//! [`super::ClusterState`]).

use super::ring::Ring;
use super::version::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One partition replica a change must copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Move {
    /// The partition.
    pub partition: usize,
    /// The node that enters its preference list.
    pub to: NodeId,
}

/// A change between the committed ring and the next one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// The ring once every move is complete.
    pub next: Ring,
    /// Members absent from the next ring; `true` for a dead member removed
    /// by another node (it cannot be a source: its data is rebuilt from the
    /// surviving replicas).
    pub leaving: BTreeMap<NodeId, bool>,
    /// Completed transfers: (partition, receiver, sender).
    pub done: BTreeSet<(usize, NodeId, NodeId)>,
}

/// The moves from `current` to `next` for `n` replicas, in partition order.
pub fn moves(current: &Ring, next: &Ring, n: usize) -> Vec<Move> {
    let mut out = Vec::new();
    // A walk for more nodes than the ring has would visit every partition.
    let (n_now, n_next) = (n.min(current.members().len()), n.min(next.members().len()));
    for p in 0..next.partitions() {
        let now = current.preference_list(p, n_now);
        for to in next.preference_list(p, n_next) {
            if !now.contains(&to) {
                out.push(Move { partition: p, to });
            }
        }
    }
    out
}

impl Transition {
    /// Whether `node` was removed while dead.
    pub fn is_dead_leaver(&self, node: &NodeId) -> bool {
        self.leaving.get(node).copied().unwrap_or(false)
    }

    /// The nodes that must each have sent partition `p` before a move of it
    /// is complete: normally any one live current owner, but when a current
    /// owner was removed dead, every surviving one (a write acknowledged by
    /// W replicas may survive on only one of them).
    fn needs_all_survivors(&self, current: &Ring, p: usize, n: usize) -> Option<Vec<NodeId>> {
        if self.leaving.values().all(|dead| !dead) {
            return None;
        }
        let owners = current.preference_list(p, n);
        if owners.iter().any(|o| self.is_dead_leaver(o)) {
            Some(
                owners
                    .into_iter()
                    .filter(|o| !self.is_dead_leaver(o))
                    .collect(),
            )
        } else {
            None
        }
    }

    /// Senders recorded per (partition, receiver).
    fn senders(&self) -> BTreeMap<(usize, &NodeId), BTreeSet<&NodeId>> {
        let mut out: BTreeMap<(usize, &NodeId), BTreeSet<&NodeId>> = BTreeMap::new();
        for (p, to, from) in &self.done {
            out.entry((*p, to)).or_default().insert(from);
        }
        out
    }

    fn complete_with(
        &self,
        senders: &BTreeMap<(usize, &NodeId), BTreeSet<&NodeId>>,
        current: &Ring,
        m: &Move,
        n: usize,
    ) -> bool {
        let Some(sent) = senders.get(&(m.partition, &m.to)) else {
            return false;
        };
        match self.needs_all_survivors(current, m.partition, n) {
            None => !sent.is_empty(),
            Some(all) => all.iter().all(|s| sent.contains(s)),
        }
    }

    /// Whether move `m` is complete.
    pub fn is_complete(&self, current: &Ring, m: &Move, n: usize) -> bool {
        self.complete_with(&self.senders(), current, m, n)
    }

    /// Moves not yet complete.
    pub fn pending(&self, current: &Ring, n: usize) -> Vec<Move> {
        let senders = self.senders();
        moves(current, &self.next, n)
            .into_iter()
            .filter(|m| !self.complete_with(&senders, current, m, n))
            .collect()
    }

    /// The moves `me` should send now: those whose source it is (the first
    /// current owner `is_up` says is reachable, or every surviving owner
    /// after a dead member's removal) and that it has not sent yet.
    pub fn moves_from(
        &self,
        current: &Ring,
        n: usize,
        me: &NodeId,
        is_up: impl Fn(&NodeId) -> bool,
    ) -> Vec<Move> {
        self.pending(current, n)
            .into_iter()
            .filter(|m| !self.done.contains(&(m.partition, m.to.clone(), me.clone())))
            .filter(
                |m| match self.needs_all_survivors(current, m.partition, n) {
                    Some(all) => all.contains(me),
                    None => current
                        .preference_list(m.partition, n)
                        .into_iter()
                        .find(|o| is_up(o))
                        .is_some_and(|o| &o == me),
                },
            )
            .collect()
    }

    /// Drops completed transfers that are no longer moves (after a replan).
    pub fn prune(&mut self, current: &Ring, n: usize) {
        let valid: BTreeSet<(usize, NodeId)> = moves(current, &self.next, n)
            .into_iter()
            .map(|m| (m.partition, m.to))
            .collect();
        self.done
            .retain(|(p, to, _)| valid.contains(&(*p, to.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(k: usize) -> Vec<NodeId> {
        (1..=k).map(|i| NodeId::new(&format!("n{i}"))).collect()
    }

    #[test]
    fn moves_are_the_new_preference_list_entries() {
        let current = Ring::new(64, &nodes(3), 3).expect("ring");
        let next = current.rebalance(&nodes(4), 3).expect("ring");
        let ms = moves(&current, &next, 3);
        assert!(!ms.is_empty());
        for m in &ms {
            assert!(next.preference_list(m.partition, 3).contains(&m.to));
            assert!(!current.preference_list(m.partition, 3).contains(&m.to));
        }
        // With 3 nodes and N = 3 every node holds everything: only n4 is new.
        assert!(ms.iter().all(|m| m.to == NodeId::new("n4")));
    }

    #[test]
    fn a_dead_owner_needs_every_survivor() {
        let current = Ring::new(64, &nodes(4), 3).expect("ring");
        let next = current.rebalance(&nodes(3), 3).expect("ring");
        let dead = NodeId::new("n4");
        let t = Transition {
            next,
            leaving: BTreeMap::from([(dead.clone(), true)]),
            done: BTreeSet::new(),
        };
        let pending = t.pending(&current, 3);
        let m = pending.first().expect("a move");
        let owners = current.preference_list(m.partition, 3);
        let survivors: Vec<&NodeId> = owners.iter().filter(|o| **o != dead).collect();
        assert_eq!(survivors.len(), 2);
        let mut t2 = t.clone();
        t2.done
            .insert((m.partition, m.to.clone(), survivors[0].clone()));
        assert!(!t2.is_complete(&current, m, 3));
        t2.done
            .insert((m.partition, m.to.clone(), survivors[1].clone()));
        assert!(t2.is_complete(&current, m, 3));
        // The dead node is never asked to send.
        assert!(t.moves_from(&current, 3, &dead, |_| true).is_empty());
    }
}
