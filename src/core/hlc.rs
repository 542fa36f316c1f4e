//! Hybrid logical clock and clock-offset bookkeeping.
//!
//! Last-writer-wins picks the sibling with the latest timestamp, and expiry
//! and tombstone collection compare timestamps with "now". If one node's
//! wall clock runs behind, its writes would lose to older ones and its
//! deadlines would already be past on its peers. A hybrid logical clock
//! (CockroachDB's `hlc`) never goes below any timestamp the node has seen,
//! so a write that causally follows another always carries a later
//! timestamp. Timestamps from a peer that is further ahead than
//! `max_offset_ms` are not adopted: one runaway clock must not drag the
//! whole cluster into the future.
//!
//! The node measures each peer's offset over gossip ([`OffsetTable`]) and
//! refuses to coordinate writes while its own clock is off by more than the
//! maximum offset (see `Membership`).
//!
//! Time is always an argument: nothing here reads a clock.

use super::version::NodeId;
use std::collections::BTreeMap;

/// A millisecond hybrid logical clock. Ties between equal timestamps are
/// broken by the version's dot, so no logical counter is needed.
#[derive(Clone, Debug)]
pub struct Hlc {
    last_ms: u64,
    max_offset_ms: u64,
}

impl Hlc {
    /// A clock that adopts remote timestamps at most `max_offset_ms` ahead
    /// of the local physical clock.
    pub fn new(max_offset_ms: u64) -> Self {
        Self {
            last_ms: 0,
            max_offset_ms,
        }
    }

    /// The clock's reading given the physical time `physical_ms`: never
    /// below any earlier reading or adopted remote timestamp.
    pub fn now(&mut self, physical_ms: u64) -> u64 {
        self.last_ms = self.last_ms.max(physical_ms);
        self.last_ms
    }

    /// Folds in a timestamp heard from a peer. Returns false (and ignores
    /// it) when it is further ahead of `physical_ms` than the maximum offset.
    pub fn observe(&mut self, remote_ms: u64, physical_ms: u64) -> bool {
        if remote_ms > physical_ms.saturating_add(self.max_offset_ms) {
            return false;
        }
        self.last_ms = self.last_ms.max(remote_ms);
        true
    }

    /// The largest timestamp seen so far.
    pub fn last(&self) -> u64 {
        self.last_ms
    }
}

/// Estimates of each peer's clock offset (peer minus us, in ms), from the
/// gossip round trip: `offset = peer_clock - (sent + rtt / 2)`.
#[derive(Clone, Debug, Default)]
pub struct OffsetTable {
    offsets: BTreeMap<NodeId, i64>,
}

impl OffsetTable {
    /// Records one measurement: we sent at `sent_ms`, the peer stamped
    /// `peer_ms`, we received the answer at `received_ms` (all local clocks
    /// except `peer_ms`).
    pub fn record(&mut self, peer: NodeId, sent_ms: u64, peer_ms: u64, received_ms: u64) {
        let midpoint = sent_ms as i128 + (received_ms.saturating_sub(sent_ms) as i128) / 2;
        let offset = (peer_ms as i128 - midpoint).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        self.offsets.insert(peer, offset);
    }

    /// Forgets a peer (it left).
    pub fn forget(&mut self, peer: &NodeId) {
        self.offsets.remove(peer);
    }

    /// Every peer's last measured offset.
    pub fn offsets(&self) -> &BTreeMap<NodeId, i64> {
        &self.offsets
    }

    /// How far this node is from the rest of the cluster: the negated
    /// median of the peers' offsets (positive = we are ahead). With peers
    /// that agree with each other, a skewed node sees them all off by the
    /// same amount, while a healthy node sees at most a minority off.
    pub fn own_offset(&self) -> i64 {
        let mut all: Vec<i64> = self.offsets.values().copied().collect();
        if all.is_empty() {
            return 0;
        }
        all.sort_unstable();
        let median = all.get(all.len() / 2).copied().unwrap_or(0);
        median.saturating_neg()
    }

    /// True when this node's clock is further off than `max_offset_ms`
    /// from a majority of the peers measured.
    pub fn is_skewed(&self, max_offset_ms: u64) -> bool {
        let total = self.offsets.len();
        let off = self
            .offsets
            .values()
            .filter(|o| o.unsigned_abs() > max_offset_ms)
            .count();
        total > 0 && off * 2 > total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_back_and_adopts_peers_within_the_offset() {
        let mut hlc = Hlc::new(500);
        assert_eq!(hlc.now(1_000), 1_000);
        assert_eq!(hlc.now(900), 1_000, "physical clock stepped back");
        assert!(hlc.observe(1_400, 1_000));
        assert_eq!(hlc.now(1_001), 1_400);
        assert!(!hlc.observe(5_000, 1_001), "runaway peer is not adopted");
        assert_eq!(hlc.now(1_002), 1_400);
    }

    #[test]
    fn offsets_find_the_skewed_node() {
        let mut t = OffsetTable::default();
        // Both peers are an hour ahead of us: we are the skewed one.
        t.record(NodeId::new("a"), 0, 3_600_010, 20);
        t.record(NodeId::new("b"), 0, 3_600_000, 0);
        assert!(t.is_skewed(500));
        assert!(t.own_offset() < -3_599_000);
        // One of two peers off: we cannot blame ourselves.
        let mut t = OffsetTable::default();
        t.record(NodeId::new("a"), 0, 10, 20);
        t.record(NodeId::new("b"), 0, 3_600_000, 0);
        assert!(!t.is_skewed(500));
    }
}
