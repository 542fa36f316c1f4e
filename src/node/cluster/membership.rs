//! This node's view of the cluster: the shared [`ClusterState`] (persisted
//! so a restart rejoins with the same identity and ring), the local failure
//! detector (who answers RPCs right now) and the peers' clock offsets.

use crate::core::{ClusterState, FailureDetector, Liveness, NodeId, OffsetTable, StateDigest};
use crate::node::env::MetaStore;
use parking_lot::{Mutex, RwLock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::peer_log::PeerLog;

/// Metadata record holding the last known cluster state.
pub const STATE_RECORD: &str = "cluster.state";

/// Shared state + persistence + reachability.
pub struct Membership {
    me: NodeId,
    state: RwLock<ClusterState>,
    /// Digest of `state`, updated under its write lock: every gossip round
    /// sends it, and computing it encodes and hashes the whole state.
    digest: Mutex<StateDigest>,
    meta: Arc<dyn MetaStore>,
    /// Serialises saves so the record never goes backwards, without holding
    /// the state lock (which every request reads) during the fsync.
    save_lock: Mutex<()>,
    detector: Mutex<FailureDetector>,
    offsets: Mutex<OffsetTable>,
    max_offset_ms: u64,
    /// Keeps a flapping peer from logging a line per flip.
    peer_log: Mutex<PeerLog>,
}

impl Membership {
    /// The persisted state, if any.
    pub fn load(meta: &dyn MetaStore) -> Option<ClusterState> {
        let raw = meta.read(STATE_RECORD)?;
        match postcard::from_bytes(&raw) {
            Ok(state) => Some(state),
            Err(e) => match super::legacy_state::decode(&raw) {
                Some(upgraded) => upgraded,
                None => {
                    tracing::error!("ignoring unreadable {STATE_RECORD}: {e}");
                    None
                }
            },
        }
    }

    /// Wraps `state` (call [`Membership::save`] to persist it).
    pub fn new(
        me: NodeId,
        state: ClusterState,
        meta: Arc<dyn MetaStore>,
        max_offset_ms: u64,
    ) -> Self {
        Self {
            me,
            digest: Mutex::new(StateDigest::of(&state)),
            state: RwLock::new(state),
            meta,
            save_lock: Mutex::new(()),
            detector: Mutex::new(FailureDetector::default()),
            offsets: Mutex::new(OffsetTable::default()),
            max_offset_ms,
            peer_log: Mutex::new(PeerLog::new(crate::logging::QUIET_WINDOW)),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ClusterState {
        self.state.read().clone()
    }

    /// The digest of the current state (cached).
    pub fn digest(&self) -> StateDigest {
        *self.digest.lock()
    }

    /// Runs `f` with the current state without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        f(&self.state.read())
    }

    /// Adopts `next` if it differs. Returns true if changed (then save).
    pub fn adopt(&self, next: ClusterState) -> bool {
        let mut state = self.state.write();
        if *state == next {
            return false;
        }
        tracing::info!(
            version = next.version,
            members = next.members.len(),
            "cluster state changed"
        );
        *self.digest.lock() = StateDigest::of(&next);
        *state = next;
        true
    }

    /// Applies a change to the current state atomically (concurrent joins
    /// through this node must not overwrite each other). Returns the new
    /// state and whether it changed (then save).
    pub fn change<E>(
        &self,
        f: impl FnOnce(&ClusterState) -> Result<ClusterState, E>,
    ) -> Result<(ClusterState, bool), E> {
        let mut state = self.state.write();
        let next = f(&state)?;
        let changed = *state != next;
        if changed {
            *self.digest.lock() = StateDigest::of(&next);
            *state = next.clone();
        }
        Ok((next, changed))
    }

    /// Merges a state heard from a peer. Returns true if ours changed.
    pub fn merge(&self, heard: &ClusterState) -> bool {
        match self.change(|current| current.merge(heard)) {
            Ok((next, changed)) => {
                if changed {
                    tracing::info!(
                        version = next.version,
                        members = next.members.len(),
                        "cluster state changed"
                    );
                }
                changed
            }
            Err(e) => {
                tracing::warn!("cannot merge cluster state: {e}");
                false
            }
        }
    }

    /// Writes the current state durably (blocking: run it off the async
    /// workers). Saves are serialised and always write the newest state, so
    /// the record never goes backwards.
    pub fn save(&self) {
        let _guard = self.save_lock.lock();
        let state = self.snapshot();
        let result = postcard::to_allocvec(&state)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|raw| self.meta.write(STATE_RECORD, &raw));
        if let Err(e) = result {
            tracing::error!("cannot persist cluster state: {e}");
        }
    }

    /// The node-to-node address of a member.
    pub fn cluster_addr(&self, node: &NodeId) -> Option<SocketAddr> {
        self.with(|s| {
            s.members
                .get(node)
                .and_then(|m| m.cluster_addr.parse().ok())
        })
    }

    /// Whether routing should use `node` now (suspected peers still are).
    pub fn is_up(&self, node: &NodeId) -> bool {
        node == &self.me || self.detector.lock().liveness(node) != Liveness::Down
    }

    /// Whether `node` missed a request since it last answered (suspected
    /// or down).
    pub fn is_suspected(&self, node: &NodeId) -> bool {
        node != &self.me && self.detector.lock().liveness(node) != Liveness::Up
    }

    /// `node` answered (or sent us something).
    pub fn mark_up(&self, node: &NodeId) {
        if self.detector.lock().on_success(node) {
            self.peer_changed(node, true);
        }
    }

    /// `node` failed to answer.
    pub fn record_miss(&self, node: &NodeId) {
        if node != &self.me && self.detector.lock().on_miss(node) {
            self.peer_changed(node, false);
        }
    }

    fn peer_changed(&self, node: &NodeId, up: bool) {
        let mut log = self.peer_log.lock();
        if let Some(event) = log.change(node, up, Instant::now()) {
            event.log(log.window());
        }
    }

    /// Logs the state peers settled in after changes that were held back
    /// (called every gossip round).
    pub fn settle_peer_log(&self) {
        let mut log = self.peer_log.lock();
        for event in log.settle(Instant::now()) {
            event.log(log.window());
        }
    }

    /// Peers that missed at least one request since they last answered.
    pub fn suspected_peers(&self) -> usize {
        self.detector.lock().suspected().count()
    }

    /// Records a clock-offset measurement from a gossip round trip.
    pub fn record_offset(&self, peer: NodeId, sent_ms: u64, peer_ms: u64, received_ms: u64) {
        self.offsets
            .lock()
            .record(peer, sent_ms, peer_ms, received_ms);
    }

    /// This node's estimated clock offset from the cluster (ms, + = ahead).
    pub fn own_offset_ms(&self) -> i64 {
        self.offsets.lock().own_offset()
    }

    /// Peers' measured offsets.
    pub fn peer_offsets(&self) -> Vec<(NodeId, i64)> {
        self.offsets
            .lock()
            .offsets()
            .iter()
            .map(|(n, o)| (n.clone(), *o))
            .collect()
    }

    /// True while this node's clock is off by more than `--max-offset`
    /// from most of its peers: it must not coordinate writes.
    pub fn clock_is_skewed(&self) -> bool {
        self.offsets.lock().is_skewed(self.max_offset_ms)
    }

    /// The configured maximum clock offset.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// Members other than this node.
    pub fn peers(&self) -> Vec<NodeId> {
        self.with(|s| {
            s.members
                .keys()
                .filter(|n| **n != self.me)
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Member, Ring};
    use crate::node::env::MemMeta;
    use std::collections::BTreeMap;

    /// A record written before the owner-table ring encoding still loads,
    /// as the same cluster state.
    #[test]
    fn a_state_record_in_the_old_ring_encoding_loads() {
        #[derive(serde::Serialize)]
        struct OldMember {
            client_addr: String,
            cluster_addr: String,
        }
        #[derive(serde::Serialize)]
        struct OldState<'a> {
            cluster_id: &'a str,
            version: u64,
            members: BTreeMap<NodeId, OldMember>,
            ring: Vec<NodeId>,
            n: usize,
        }
        let member = |port: u16| Member {
            client_addr: format!("127.0.0.1:{port}"),
            cluster_addr: format!("127.0.0.1:{}", port + 10000),
            cluster_client_addr: None,
        };
        let state = ClusterState::founding("c".into(), NodeId::new("a"), member(1), 64, 3)
            .and_then(|s| s.with_member(NodeId::new("b"), member(2)))
            .and_then(|s| s.with_member(NodeId::new("c"), member(3)))
            .expect("state");
        let old = OldState {
            cluster_id: &state.cluster_id,
            version: state.version,
            members: state
                .members
                .iter()
                .map(|(n, m)| {
                    let old = OldMember {
                        client_addr: m.client_addr.clone(),
                        cluster_addr: m.cluster_addr.clone(),
                    };
                    (n.clone(), old)
                })
                .collect(),
            ring: (0..64).map(|p| state.ring.owner(p).clone()).collect(),
            n: state.n,
        };
        let meta = MemMeta::default();
        meta.write(STATE_RECORD, &postcard::to_allocvec(&old).expect("encode"))
            .expect("write");
        // The old format knew no transitions: the upgrade keeps its ring as
        // the committed one.
        let loaded = Membership::load(&meta).expect("loads");
        assert_eq!(loaded.cluster_id, state.cluster_id);
        assert_eq!(loaded.version, state.version);
        assert_eq!(loaded.members, state.members);
        assert_eq!(loaded.ring, state.ring);
        assert_eq!(loaded.n, state.n);
        assert!(loaded.transition.is_none());
        // Today's shape written with two-address members loads too.
        #[derive(serde::Serialize)]
        struct TwoAddressState<'a> {
            cluster_id: &'a str,
            version: u64,
            members: &'a BTreeMap<NodeId, OldMember>,
            ring: &'a Ring,
            n: usize,
            generation: u64,
            transition: &'a Option<crate::core::Transition>,
            admitted: &'a BTreeMap<NodeId, u64>,
            removed: &'a BTreeMap<NodeId, u64>,
        }
        let two = TwoAddressState {
            cluster_id: &state.cluster_id,
            version: state.version,
            members: &old.members,
            ring: &state.ring,
            n: state.n,
            generation: state.generation,
            transition: &state.transition,
            admitted: &state.admitted,
            removed: &state.removed,
        };
        meta.write(STATE_RECORD, &postcard::to_allocvec(&two).expect("encode"))
            .expect("write");
        assert_eq!(Membership::load(&meta).as_ref(), Some(&state));
        // And the current encoding reads back as itself.
        meta.write(
            STATE_RECORD,
            &postcard::to_allocvec(&state).expect("encode"),
        )
        .expect("write");
        assert_eq!(Membership::load(&meta), Some(state));
    }
}
