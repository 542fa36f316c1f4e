//! Failure detection by counted misses.
//!
//! One timed-out request is not proof that a peer is dead: a long GC-free
//! pause, one lost packet or a slow quorum elsewhere look the same. A peer
//! is *suspected* after its first miss (still used for routing, and shown in
//! INFO `suspected_peers`) and *down* after [`MISSES_BEFORE_DOWN`] misses in a
//! row with no success in between; any answer (or any message from it)
//! makes it up again. Only failures that say something about the peer count
//! as misses (timeouts, refused connections, broken connections); a request
//! this node could not even send (too large, no free slot) does not.
//!
//! This is the simple counted-miss detector; Cassandra's phi-accrual would
//! adapt to each link's latency history, which the quorum timeouts here do
//! not need.

use super::version::NodeId;
use std::collections::BTreeMap;

/// Consecutive misses that turn a suspected peer into a down one.
pub const MISSES_BEFORE_DOWN: u32 = 3;

/// How routing should treat a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Answered last time.
    Up,
    /// Missed at least once, not yet often enough to route around it.
    Suspected,
    /// Routed around until it answers again.
    Down,
}

/// Per-peer miss counters.
#[derive(Clone, Debug, Default)]
pub struct FailureDetector {
    misses: BTreeMap<NodeId, u32>,
}

impl FailureDetector {
    /// The peer answered: clears its misses. Returns true if it was down.
    pub fn on_success(&mut self, peer: &NodeId) -> bool {
        self.misses
            .remove(peer)
            .is_some_and(|m| m >= MISSES_BEFORE_DOWN)
    }

    /// The peer failed to answer. Returns true if this miss made it down.
    pub fn on_miss(&mut self, peer: &NodeId) -> bool {
        let m = self.misses.entry(peer.clone()).or_insert(0);
        *m = m.saturating_add(1);
        *m == MISSES_BEFORE_DOWN
    }

    /// Marks a peer down at once (it is known to be gone, e.g. its process
    /// refused the connection at a join).
    pub fn set_down(&mut self, peer: &NodeId) {
        self.misses.insert(peer.clone(), MISSES_BEFORE_DOWN);
    }

    /// The peer's state.
    pub fn liveness(&self, peer: &NodeId) -> Liveness {
        match self.misses.get(peer).copied().unwrap_or(0) {
            0 => Liveness::Up,
            m if m < MISSES_BEFORE_DOWN => Liveness::Suspected,
            _ => Liveness::Down,
        }
    }

    /// Peers with at least one miss (suspected or down).
    pub fn suspected(&self) -> impl Iterator<Item = &NodeId> {
        self.misses.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_only_after_repeated_misses_and_up_on_any_success() {
        let mut fd = FailureDetector::default();
        let p = NodeId::new("p");
        assert_eq!(fd.liveness(&p), Liveness::Up);
        assert!(!fd.on_miss(&p));
        assert_eq!(fd.liveness(&p), Liveness::Suspected);
        assert!(!fd.on_success(&p), "a suspected peer was never down");
        assert_eq!(fd.liveness(&p), Liveness::Up);
        for _ in 0..MISSES_BEFORE_DOWN - 1 {
            fd.on_miss(&p);
        }
        assert!(fd.on_miss(&p));
        assert_eq!(fd.liveness(&p), Liveness::Down);
        assert!(fd.on_success(&p));
        assert_eq!(fd.liveness(&p), Liveness::Up);
    }
}
