//! A membership change in progress: the ring being moved to, who leaves,
//! and which partition replicas have already been copied to their new
//! owners.
//!
//! A change does not switch the ring at once (a joining node holds nothing,
//! so reads it answered would miss keys). Instead the state carries the
//! *next* ring beside the committed one, and each partition whose
//! preference list changes yields [`Move`]s: copies that must land before
//! the switch. Completed transfers are a grow-only set, so gossip merges
//! them by union; once every move is complete the ring switches (see
//! [`super::ClusterState`]).
//!
//! Which node sends matters. A write acknowledged by W of the current
//! owners may live on exactly those W, so an owner that drops out of the
//! list must hand *its* copy over: each displaced owner is paired with one
//! added owner and is that move's designated source. Copying from some
//! other owner instead would let the switch silently lower the number of
//! copies of a write. When a list shrinks (fewer members than N), an owner
//! without a replacement for each dropped owner, every dropped owner sends
//! to every owner of the next list.

use super::ring::Ring;
use super::version::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One partition replica a change must copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Move {
    /// The partition.
    pub partition: usize,
    /// The node that receives it: an owner entering the preference list, or
    /// (when the list shrinks) one that stays and absorbs a dropped owner.
    pub to: NodeId,
    /// Owners leaving the list whose copy must reach `to`; empty when the
    /// list grows past its old length and any current owner will do.
    pub sources: Vec<NodeId>,
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

/// The preference lists of partition `p` before and after, for `n` replicas.
fn lists(current: &Ring, next: &Ring, n: usize, p: usize) -> (Vec<NodeId>, Vec<NodeId>) {
    // A walk for more nodes than the ring has would visit every partition.
    let (n_now, n_next) = (n.min(current.member_count()), n.min(next.member_count()));
    (
        current.preference_list(p, n_now),
        next.preference_list(p, n_next),
    )
}

/// The moves of partition `p` from `current` to `next`.
fn partition_moves(current: &Ring, next: &Ring, n: usize, p: usize) -> Vec<Move> {
    let (now, after) = lists(current, next, n, p);
    let added: Vec<&NodeId> = after.iter().filter(|o| !now.contains(o)).collect();
    let displaced: Vec<&NodeId> = now.iter().filter(|o| !after.contains(o)).collect();
    if displaced.len() > added.len() {
        // The list shrinks: every owner of the next list takes every dropped
        // owner's copy (a write may live only on dropped owners).
        let sources: Vec<NodeId> = displaced.iter().map(|d| (*d).clone()).collect();
        let mut out: Vec<Move> = after
            .iter()
            .map(|to| Move {
                partition: p,
                to: to.clone(),
                sources: sources.clone(),
            })
            .collect();
        out.sort();
        return out;
    }
    let mut out: Vec<Move> = added
        .iter()
        .enumerate()
        .map(|(k, to)| Move {
            partition: p,
            to: (*to).clone(),
            sources: displaced
                .get(k)
                .map(|d| vec![(*d).clone()])
                .unwrap_or_default(),
        })
        .collect();
    out.sort();
    out
}

/// The moves from `current` to `next` for `n` replicas, in partition order.
pub fn moves(current: &Ring, next: &Ring, n: usize) -> Vec<Move> {
    (0..next.partitions())
        .flat_map(|p| partition_moves(current, next, n, p))
        .collect()
}

impl Transition {
    /// Whether `node` was removed while dead.
    pub fn is_dead_leaver(&self, node: &NodeId) -> bool {
        self.leaving.get(node).copied().unwrap_or(false)
    }

    /// Current owners of `m`'s partition that can send it: alive as far as
    /// the cluster knows (not removed dead) and not the receiver itself.
    fn possible_senders(&self, current: &Ring, m: &Move, n: usize) -> Vec<NodeId> {
        current
            .preference_list(m.partition, n.min(current.member_count()))
            .into_iter()
            .filter(|o| *o != m.to && !self.is_dead_leaver(o))
            .collect()
    }

    /// Whether a current owner of `m`'s partition was removed dead: then
    /// every surviving owner must send (a write acknowledged by W replicas
    /// may survive on only one of them).
    fn lost_an_owner(&self, current: &Ring, m: &Move, n: usize) -> bool {
        self.leaving.values().any(|dead| *dead)
            && current
                .preference_list(m.partition, n.min(current.member_count()))
                .iter()
                .any(|o| self.is_dead_leaver(o))
    }

    /// Senders recorded per (partition, receiver).
    fn senders(&self) -> BTreeMap<(usize, &NodeId), BTreeSet<&NodeId>> {
        let mut out: BTreeMap<(usize, &NodeId), BTreeSet<&NodeId>> = BTreeMap::new();
        for (p, to, from) in &self.done {
            out.entry((*p, to)).or_default().insert(from);
        }
        out
    }

    /// A move is complete when its designated sources have all sent, or —
    /// when one of them cannot (it is down) — when every other possible
    /// sender has: together they hold every write W acknowledged unless W
    /// was 1 and the copy lived only on the missing source.
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
        let possible = self.possible_senders(current, m, n);
        if self.lost_an_owner(current, m, n) {
            return possible.iter().all(|s| sent.contains(s));
        }
        if m.sources.is_empty() {
            return !sent.is_empty();
        }
        if m.sources.iter().all(|s| sent.contains(s)) {
            return true;
        }
        let others: Vec<&NodeId> = possible.iter().filter(|o| !m.sources.contains(o)).collect();
        !others.is_empty() && others.iter().all(|s| sent.contains(*s))
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

    /// The moves `me` should send now and has not sent yet: those it is a
    /// designated source of; every pending one of its partitions when an
    /// owner was removed dead or a designated source is down (`is_up`); and,
    /// for a list that grows, those where it is the first owner that is up.
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
            .filter(|m| {
                let possible = self.possible_senders(current, m, n);
                if !possible.contains(me) {
                    return false;
                }
                if self.lost_an_owner(current, m, n) || m.sources.contains(me) {
                    return true;
                }
                if m.sources.is_empty() {
                    return possible.iter().find(|o| is_up(o)) == Some(me);
                }
                // A designated source that is down and has not sent: every
                // other possible sender steps in (the fallback of `is_complete`).
                m.sources.iter().any(|s| {
                    !self.done.contains(&(m.partition, m.to.clone(), s.clone())) && !is_up(s)
                })
            })
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

    fn transition(next: Ring, leaving: &[(&str, bool)]) -> Transition {
        Transition {
            next,
            leaving: leaving
                .iter()
                .map(|(m, dead)| (NodeId::new(m), *dead))
                .collect(),
            done: BTreeSet::new(),
        }
    }

    #[test]
    fn a_join_moves_each_displaced_owners_copy_to_the_new_owner() {
        let current = Ring::new(64, &nodes(4), 3).expect("ring");
        let next = current.rebalance(&nodes(5), 3).expect("ring");
        let ms = moves(&current, &next, 3);
        assert!(!ms.is_empty());
        for m in &ms {
            let (now, after) = (
                current.preference_list(m.partition, 3),
                next.preference_list(m.partition, 3),
            );
            assert!(after.contains(&m.to) && !now.contains(&m.to));
            assert_eq!(m.sources.len(), 1, "{m:?}");
            assert!(now.contains(&m.sources[0]) && !after.contains(&m.sources[0]));
        }
        assert!(ms.iter().all(|m| m.to == NodeId::new("n5")));
        // Only the displaced owner sends while it is up.
        let t = transition(next, &[]);
        let m = &ms[0];
        for o in current.preference_list(m.partition, 3) {
            let mine = t.moves_from(&current, 3, &o, |_| true);
            assert_eq!(mine.contains(m), m.sources.contains(&o), "{o}");
        }
    }

    #[test]
    fn a_down_source_is_replaced_by_every_other_owner() {
        let current = Ring::new(64, &nodes(4), 3).expect("ring");
        let next = current.rebalance(&nodes(5), 3).expect("ring");
        let mut t = transition(next, &[]);
        let m = t.pending(&current, 3)[0].clone();
        let source = m.sources[0].clone();
        let others: Vec<NodeId> = current
            .preference_list(m.partition, 3)
            .into_iter()
            .filter(|o| *o != source)
            .collect();
        let down = |o: &NodeId| *o != source;
        for o in &others {
            assert!(t.moves_from(&current, 3, o, down).contains(&m));
        }
        t.done
            .insert((m.partition, m.to.clone(), others[0].clone()));
        assert!(!t.is_complete(&current, &m, 3));
        t.done
            .insert((m.partition, m.to.clone(), others[1].clone()));
        assert!(t.is_complete(&current, &m, 3));
    }

    #[test]
    fn a_shrinking_list_merges_the_leavers_copy_into_every_remaining_owner() {
        let current = Ring::new(64, &nodes(3), 3).expect("ring");
        let next = current.rebalance(&nodes(2), 3).expect("ring");
        let t = transition(next, &[("n3", false)]);
        let ms = t.pending(&current, 3);
        // Every partition: n3 sends to n1 and to n2.
        assert_eq!(ms.len(), 2 * 64);
        let leaver = NodeId::new("n3");
        assert!(ms.iter().all(|m| m.sources == vec![leaver.clone()]));
        assert_eq!(t.moves_from(&current, 3, &leaver, |_| true).len(), 2 * 64);
        assert!(
            t.moves_from(&current, 3, &NodeId::new("n1"), |_| true)
                .is_empty()
        );
    }

    #[test]
    fn a_dead_owner_needs_every_survivor() {
        let current = Ring::new(64, &nodes(4), 3).expect("ring");
        let next = current.rebalance(&nodes(3), 3).expect("ring");
        let dead = NodeId::new("n4");
        let t = transition(next, &[("n4", true)]);
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

    /// For joins and leaves of up to two nodes at once, a write held by any
    /// W current owners is held by at least min(W, list length) owners of
    /// the next ring once the designated sources have sent.
    #[test]
    fn designated_sources_keep_every_writes_copy_count() {
        let n = 3;
        for (before, after) in [
            (3, 4),
            (4, 5),
            (4, 6),
            (5, 4),
            (6, 4),
            (3, 2),
            (4, 2),
            (2, 3),
            (1, 3),
        ] {
            let current = Ring::new(64, &nodes(before), n).expect("ring");
            let next = current.rebalance(&nodes(after), n).expect("ring");
            for p in 0..64 {
                let (now, later) = lists(&current, &next, n, p);
                let ms = partition_moves(&current, &next, n, p);
                for mask in 1u32..(1 << now.len()) {
                    let holders: BTreeSet<&NodeId> = now
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, o)| o)
                        .collect();
                    let mut has: BTreeSet<&NodeId> = holders.clone();
                    for m in &ms {
                        let gets = if m.sources.is_empty() {
                            // Any owner: the worst case is one without it.
                            now.iter().all(|o| holders.contains(o))
                        } else {
                            m.sources.iter().any(|s| holders.contains(s))
                        };
                        if gets {
                            has.insert(&m.to);
                        }
                    }
                    let copies = later.iter().filter(|o| has.contains(o)).count();
                    assert!(
                        copies >= holders.len().min(later.len()),
                        "{before}->{after} p{p} holders {holders:?}: {copies} copies in {later:?}"
                    );
                }
            }
        }
    }
}
