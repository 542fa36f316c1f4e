//! This node's view of the cluster: the shared [`ClusterState`] (persisted
//! in the data dir so a restart rejoins with the same identity and ring) and
//! a local failure detector (who answers RPCs right now).

use crate::core::{ClusterState, NodeId};
use dashmap::DashMap;
use parking_lot::RwLock;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// File (in the data dir) holding the last known cluster state.
const STATE_FILE: &str = "cluster.state";

/// Shared state + persistence + reachability.
pub struct Membership {
    me: NodeId,
    state: RwLock<ClusterState>,
    path: PathBuf,
    /// Peers currently considered unreachable for routing.
    down: DashMap<NodeId, ()>,
}

impl Membership {
    /// The persisted state in `data_dir`, if any.
    pub fn load(data_dir: &Path) -> Option<ClusterState> {
        let raw = std::fs::read(data_dir.join(STATE_FILE)).ok()?;
        match postcard::from_bytes(&raw) {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::error!("ignoring unreadable {STATE_FILE}: {e}");
                None
            }
        }
    }

    /// Wraps `state` and persists it.
    pub fn new(me: NodeId, state: ClusterState, data_dir: &Path) -> Self {
        let m = Self {
            me,
            state: RwLock::new(state),
            path: data_dir.join(STATE_FILE),
            down: DashMap::new(),
        };
        m.persist(&m.snapshot());
        m
    }

    /// This node.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ClusterState {
        self.state.read().clone()
    }

    /// Runs `f` with the current state without copying it.
    pub fn with<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        f(&self.state.read())
    }

    /// Adopts `next` if it differs; persists it. Returns true if changed.
    pub fn adopt(&self, next: ClusterState) -> bool {
        {
            let mut state = self.state.write();
            if *state == next {
                return false;
            }
            tracing::info!(
                version = next.version,
                members = next.members.len(),
                "cluster state changed"
            );
            *state = next.clone();
        }
        self.persist(&next);
        true
    }

    /// Applies a change to the current state atomically (concurrent joins
    /// through this node must not overwrite each other); persists it.
    pub fn change<E>(
        &self,
        f: impl FnOnce(&ClusterState) -> Result<ClusterState, E>,
    ) -> Result<ClusterState, E> {
        let mut state = self.state.write();
        let next = f(&state)?;
        if *state != next {
            // Persisted under the lock so the file never goes backwards.
            self.persist(&next);
            *state = next.clone();
        }
        Ok(next)
    }

    /// Merges a state heard from a peer.
    pub fn merge(&self, heard: &ClusterState) -> bool {
        let before = self.snapshot();
        match self.change(|current| current.merge(heard)) {
            Ok(next) => {
                if next != before {
                    tracing::info!(
                        version = next.version,
                        members = next.members.len(),
                        "cluster state changed"
                    );
                }
                next != before
            }
            Err(e) => {
                tracing::warn!("cannot merge cluster state: {e}");
                false
            }
        }
    }

    fn persist(&self, state: &ClusterState) {
        let tmp = self.path.with_extension("tmp");
        let result = postcard::to_allocvec(state)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|raw| std::fs::write(&tmp, raw))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = result {
            tracing::error!(
                "cannot persist cluster state to {}: {e}",
                self.path.display()
            );
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

    /// Whether routing should use `node` now.
    pub fn is_up(&self, node: &NodeId) -> bool {
        node == &self.me || !self.down.contains_key(node)
    }

    /// `node` answered.
    pub fn mark_up(&self, node: &NodeId) {
        if self.down.remove(node).is_some() {
            tracing::info!(peer = %node, "peer is reachable again");
        }
    }

    /// `node` failed to answer.
    pub fn mark_down(&self, node: &NodeId) {
        if node != &self.me && self.down.insert(node.clone(), ()).is_none() {
            tracing::warn!(peer = %node, "peer unreachable; routing around it");
        }
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
