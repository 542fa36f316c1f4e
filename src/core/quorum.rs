//! Quorum bookkeeping without I/O: who a request goes to (sloppy quorum with
//! hinted fallbacks), when a GET or PUT has enough answers, and which
//! replicas a read must repair. The node drives these with real RPC replies;
//! the simulation drives them with a seeded schedule.

use super::object::Object;
use super::version::NodeId;
use std::collections::{BTreeSet, VecDeque};

/// One replica a write (or read) is sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Node that receives the request.
    pub node: NodeId,
    /// For a fallback standing in for an unreachable preference-list node:
    /// the node the data is meant for (the hint).
    pub hint_for: Option<NodeId>,
}

/// Where a key's replicas go right now.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    /// Reachable replicas, preference-list members first, then fallbacks
    /// carrying hints.
    pub targets: Vec<Target>,
    /// Preference-list members that are unreachable and for which no
    /// fallback exists: the coordinator keeps their hint itself.
    pub local_hints: Vec<NodeId>,
    /// During a membership change: the key's next preference list (empty
    /// otherwise). A write must reach W of them as well.
    pub next_owners: Vec<NodeId>,
    /// Reachable next owners that `targets` does not already reach: they
    /// are sent a replica write too.
    pub also: Vec<NodeId>,
    /// Size of the key's current preference list (fewer than N while the
    /// ring has fewer members, e.g. while a second node joins).
    pub owners: usize,
}

/// Plans a request for a key whose ring walk is `walk` (distinct nodes in
/// ring order; the first `n` are its preference list). Unreachable
/// preference-list members are replaced, in order, by the next reachable
/// nodes beyond the first `n` (Dynamo's sloppy quorum).
pub fn plan(walk: &[NodeId], n: usize, is_up: impl Fn(&NodeId) -> bool) -> Plan {
    let n = n.min(walk.len());
    let (preferred, rest) = walk.split_at(n);
    let mut fallbacks = rest.iter().filter(|node| is_up(node));
    let mut plan = Plan {
        owners: n,
        ..Plan::default()
    };
    let mut hinted = Vec::new();
    for node in preferred {
        if is_up(node) {
            plan.targets.push(Target {
                node: node.clone(),
                hint_for: None,
            });
        } else {
            hinted.push(node.clone());
        }
    }
    for owner in hinted {
        match fallbacks.next() {
            Some(fallback) => plan.targets.push(Target {
                node: fallback.clone(),
                hint_for: Some(owner),
            }),
            None => plan.local_hints.push(owner),
        }
    }
    plan
}

/// Plans a write during a membership change (Cassandra's pending ranges,
/// Garage's writes to both layouts): [`plan`] over the current walk, plus
/// the reachable nodes of the key's next preference list `next` that the
/// plan does not reach. Unreachable next owners that are not current owners
/// get a hint kept by the coordinator (`local_hints`).
pub fn plan_write(
    walk: &[NodeId],
    n: usize,
    next: &[NodeId],
    is_up: impl Fn(&NodeId) -> bool,
) -> Plan {
    let mut p = plan(walk, n, &is_up);
    let current: Vec<&NodeId> = walk.iter().take(n).collect();
    for node in next {
        if p.targets
            .iter()
            .any(|t| &t.node == node && t.hint_for.is_none())
        {
            continue;
        }
        if current.contains(&node) {
            // A current owner down: already covered by the plan's hints.
            continue;
        }
        if is_up(node) {
            p.also.push(node.clone());
        } else {
            p.local_hints.push(node.clone());
        }
    }
    p.next_owners = next.to_vec();
    p
}

/// Where a quorum request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumStatus {
    /// Still waiting.
    Pending,
    /// Enough replicas answered.
    Reached,
    /// Too many failed: it cannot be reached any more.
    Failed {
        /// Replicas that answered.
        answered: usize,
        /// Replicas required.
        required: usize,
    },
}

/// Counts answers against a quorum: shared by reads and writes.
#[derive(Clone, Debug)]
struct Tally {
    required: usize,
    contacted: usize,
}

impl Tally {
    fn status(&self, answered: usize, failed: usize) -> QuorumStatus {
        if answered >= self.required {
            QuorumStatus::Reached
        } else if self.contacted.saturating_sub(failed) < self.required {
            QuorumStatus::Failed {
                answered,
                required: self.required,
            }
        } else {
            QuorumStatus::Pending
        }
    }

    fn timed_out(&self, answered: usize, failed: usize) -> QuorumStatus {
        match self.status(answered, failed) {
            QuorumStatus::Reached => QuorumStatus::Reached,
            _ => QuorumStatus::Failed {
                answered,
                required: self.required,
            },
        }
    }
}

/// A write waiting for W acknowledgements (during a membership change: W
/// among the current targets and W among the next owners).
#[derive(Clone, Debug)]
pub struct PutCore {
    tally: Tally,
    /// The nodes whose acks count toward `tally` (None: every node).
    first: Option<BTreeSet<NodeId>>,
    /// The next owners contacted and the acks required among them.
    second: Option<(BTreeSet<NodeId>, Tally)>,
    acked: BTreeSet<NodeId>,
    failed: BTreeSet<NodeId>,
}

impl PutCore {
    /// A write sent to `contacted` replicas that needs `required` acks.
    pub fn new(contacted: usize, required: usize) -> Self {
        Self {
            tally: Tally {
                required,
                contacted,
            },
            first: None,
            second: None,
            acked: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    /// A write sent as `plan` says, needing `w` acks: among the plan's
    /// targets, and also among the next owners while a change runs (W
    /// clamped to their number).
    pub fn for_plan(plan: &Plan, w: usize) -> Self {
        if plan.next_owners.is_empty() {
            return Self::new(plan.targets.len(), w);
        }
        let first: BTreeSet<NodeId> = plan.targets.iter().map(|t| t.node.clone()).collect();
        let contacted: BTreeSet<NodeId> = plan
            .next_owners
            .iter()
            .filter(|o| first.contains(*o) || plan.also.contains(*o))
            .cloned()
            .collect();
        let second = Tally {
            required: w.min(plan.next_owners.len()),
            contacted: contacted.len(),
        };
        Self {
            tally: Tally {
                required: w.min(plan.owners).max(1),
                contacted: first.len(),
            },
            first: Some(first),
            second: Some((contacted, second)),
            acked: BTreeSet::new(),
            failed: BTreeSet::new(),
        }
    }

    fn counted(&self, set: Option<&BTreeSet<NodeId>>) -> (usize, usize) {
        match set {
            None => (self.acked.len(), self.failed.len()),
            Some(set) => (
                self.acked.intersection(set).count(),
                self.failed.intersection(set).count(),
            ),
        }
    }

    fn combine(&self, f: impl Fn(&Tally, usize, usize) -> QuorumStatus) -> QuorumStatus {
        let (a, x) = self.counted(self.first.as_ref());
        let first = f(&self.tally, a, x);
        let Some((set, tally)) = &self.second else {
            return first;
        };
        let (a, x) = self.counted(Some(set));
        let second = f(tally, a, x);
        match (first, second) {
            (QuorumStatus::Reached, QuorumStatus::Reached) => QuorumStatus::Reached,
            (failed @ QuorumStatus::Failed { .. }, _)
            | (_, failed @ QuorumStatus::Failed { .. }) => failed,
            _ => QuorumStatus::Pending,
        }
    }

    /// A replica stored the write.
    pub fn on_ack(&mut self, from: NodeId) -> QuorumStatus {
        if !self.failed.contains(&from) {
            self.acked.insert(from);
        }
        self.status()
    }

    /// A replica failed or timed out.
    pub fn on_failure(&mut self, from: NodeId) -> QuorumStatus {
        if !self.acked.contains(&from) {
            self.failed.insert(from);
        }
        self.status()
    }

    /// Current status.
    pub fn status(&self) -> QuorumStatus {
        self.combine(Tally::status)
    }

    /// The failure to report when time runs out.
    pub fn timed_out(&self) -> QuorumStatus {
        self.combine(Tally::timed_out)
    }
}

/// A read waiting for R replies, merging what it hears.
///
/// Reads are sloppy, as in Dynamo: they go to the first N *reachable* nodes
/// of the key's ring walk, so a fallback that holds hinted writes for a down
/// owner is read too, and R + W > N overlaps the latest acknowledged write
/// whenever reader and writer agree on who is reachable. When a contacted
/// node fails, the next reachable node of the walk is asked instead.
#[derive(Clone, Debug)]
pub struct GetCore {
    tally: Tally,
    owners: BTreeSet<NodeId>,
    reserve: VecDeque<NodeId>,
    replies: Vec<(NodeId, Object)>,
    failed: BTreeSet<NodeId>,
    rebuilding: BTreeSet<NodeId>,
    merged: Object,
}

impl GetCore {
    /// A read of a key whose ring walk is `walk` (its first `n` nodes are
    /// the preference list) that needs `r` replies. Returns the core and
    /// the nodes to ask first.
    pub fn new(
        walk: &[NodeId],
        n: usize,
        r: usize,
        is_up: impl Fn(&NodeId) -> bool,
    ) -> (Self, Vec<NodeId>) {
        let n = n.min(walk.len());
        let owners = walk.iter().take(n).cloned().collect();
        let mut reachable: VecDeque<NodeId> = walk.iter().filter(|m| is_up(m)).cloned().collect();
        let first: Vec<NodeId> = reachable.drain(..n.min(reachable.len())).collect();
        let core = Self {
            tally: Tally {
                required: r,
                contacted: first.len(),
            },
            owners,
            reserve: reachable,
            replies: Vec::new(),
            failed: BTreeSet::new(),
            rebuilding: BTreeSet::new(),
            merged: Object::new(),
        };
        (core, first)
    }

    fn answered(&self, from: &NodeId) -> bool {
        self.replies.iter().any(|(n, _)| n == from)
            || self.failed.contains(from)
            || self.rebuilding.contains(from)
    }

    /// A replica answered with its copy (empty object if it has none).
    pub fn on_reply(&mut self, from: NodeId, object: Object) -> QuorumStatus {
        if !self.answered(&from) {
            self.merged.merge(&object);
            self.replies.push((from, object));
        }
        self.status()
    }

    /// A replica failed or timed out; returns the node to ask instead, if
    /// any is left.
    pub fn on_failure(&mut self, from: NodeId) -> (QuorumStatus, Option<NodeId>) {
        if self.answered(&from) {
            return (self.status(), None);
        }
        self.failed.insert(from);
        self.replace()
    }

    /// A replica is rebuilding after losing its data: it does not count
    /// toward R, but the read's repair will reach it.
    pub fn on_rebuilding(&mut self, from: NodeId) -> (QuorumStatus, Option<NodeId>) {
        if self.answered(&from) {
            return (self.status(), None);
        }
        self.rebuilding.insert(from);
        self.replace()
    }

    fn replace(&mut self) -> (QuorumStatus, Option<NodeId>) {
        let next = if self.status() == QuorumStatus::Reached {
            None
        } else {
            self.reserve.pop_front()
        };
        if next.is_some() {
            self.tally.contacted += 1;
        }
        (self.status(), next)
    }

    fn unanswered_failures(&self) -> usize {
        self.failed.len() + self.rebuilding.len()
    }

    /// Current status.
    pub fn status(&self) -> QuorumStatus {
        self.tally
            .status(self.replies.len(), self.unanswered_failures())
    }

    /// The failure to report when time runs out.
    pub fn timed_out(&self) -> QuorumStatus {
        self.tally
            .timed_out(self.replies.len(), self.unanswered_failures())
    }

    /// Everything heard so far, merged (the reply to the client).
    pub fn merged(&self) -> &Object {
        &self.merged
    }

    /// Preference-list replicas that must be sent the merged object: those
    /// whose copy lacks part of it, and those rebuilding. Fallbacks are not
    /// repaired: their hints reach the owners through handoff.
    pub fn repairs(&self) -> Vec<NodeId> {
        let stale = self
            .replies
            .iter()
            .filter(|(n, obj)| self.owners.contains(n) && !obj.descends(&self.merged))
            .map(|(n, _)| n.clone());
        stale.chain(self.rebuilding.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Payload, VersionVector};

    fn n(s: &str) -> NodeId {
        NodeId::new(s)
    }

    #[test]
    fn sloppy_plan_uses_fallbacks_then_local_hints() {
        let walk = vec![n("a"), n("b"), n("c"), n("d")];
        let p = plan(&walk, 3, |x| x != &n("b"));
        assert_eq!(p.targets.len(), 3);
        assert_eq!(p.targets[2].node, n("d"));
        assert_eq!(p.targets[2].hint_for, Some(n("b")));
        let p = plan(&walk, 3, |x| x == &n("a"));
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.local_hints, vec![n("b"), n("c")]);
    }

    #[test]
    fn a_write_during_a_change_needs_w_in_both_sets() {
        let walk = vec![n("a"), n("b"), n("c"), n("d")];
        let next = vec![n("a"), n("d"), n("c")];
        let p = plan_write(&walk, 3, &next, |_| true);
        assert_eq!(p.targets.len(), 3);
        assert_eq!(p.also, vec![n("d")]);
        let mut put = PutCore::for_plan(&p, 2);
        assert_eq!(put.on_ack(n("a")), QuorumStatus::Pending);
        assert_eq!(put.on_ack(n("b")), QuorumStatus::Pending);
        // Two current owners, but only one next owner so far.
        assert_eq!(put.on_ack(n("d")), QuorumStatus::Reached);
        let mut put = PutCore::for_plan(&p, 2);
        put.on_ack(n("a"));
        put.on_failure(n("c"));
        assert!(matches!(
            put.on_failure(n("d")),
            QuorumStatus::Failed { .. }
        ));
        // A next owner that is down gets a hint kept by the coordinator.
        let p = plan_write(&walk, 3, &next, |x| x != &n("d"));
        assert!(p.also.is_empty());
        assert_eq!(p.local_hints, vec![n("d")]);
        // No change running: the plain plan.
        assert_eq!(
            plan_write(&walk, 3, &[], |_| true),
            plan(&walk, 3, |_| true)
        );
    }

    #[test]
    fn put_quorum_reached_or_failed() {
        let mut put = PutCore::new(3, 2);
        assert_eq!(put.on_ack(n("a")), QuorumStatus::Pending);
        assert_eq!(put.on_failure(n("b")), QuorumStatus::Pending);
        assert_eq!(put.on_ack(n("c")), QuorumStatus::Reached);
        let mut put = PutCore::new(3, 2);
        put.on_failure(n("b"));
        assert_eq!(
            put.on_failure(n("c")),
            QuorumStatus::Failed {
                answered: 0,
                required: 2
            }
        );
    }

    #[test]
    fn get_merges_and_finds_stale_replicas() {
        let mut fresh = Object::new();
        fresh.update(&VersionVector::new(), &n("a"), Payload::value("v"), 1);
        let walk = vec![n("a"), n("b"), n("c")];
        let (mut get, first) = GetCore::new(&walk, 3, 2, |_| true);
        assert_eq!(first, walk);
        assert_eq!(get.on_reply(n("a"), fresh.clone()), QuorumStatus::Pending);
        assert_eq!(get.on_reply(n("b"), Object::new()), QuorumStatus::Reached);
        assert_eq!(get.merged(), &fresh);
        assert_eq!(get.repairs(), vec![n("b")]);
    }

    #[test]
    fn sloppy_read_reaches_the_fallback_and_asks_the_next_node() {
        let walk = vec![n("a"), n("b"), n("c"), n("d"), n("e")];
        // b is down: the read goes to a, c and the fallback d.
        let (mut get, first) = GetCore::new(&walk, 3, 2, |x| x != &n("b"));
        assert_eq!(first, vec![n("a"), n("c"), n("d")]);
        // a fails: e is asked instead.
        let (status, next) = get.on_failure(n("a"));
        assert_eq!(status, QuorumStatus::Pending);
        assert_eq!(next, Some(n("e")));
        // c is rebuilding: it does not vote, nothing is left to ask.
        let (_, next) = get.on_rebuilding(n("c"));
        assert_eq!(next, None);
        let mut hinted = Object::new();
        hinted.update(&VersionVector::new(), &n("x"), Payload::value("v"), 1);
        assert_eq!(get.on_reply(n("d"), hinted.clone()), QuorumStatus::Pending);
        assert_eq!(get.on_reply(n("e"), Object::new()), QuorumStatus::Reached);
        assert_eq!(get.merged(), &hinted);
        // Only the rebuilding owner is repaired: d and e are fallbacks.
        assert_eq!(get.repairs(), vec![n("c")]);
    }
}
