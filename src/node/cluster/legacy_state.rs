//! Cluster state records written by older builds, read by a node restarted
//! on this one: each old shape decodes into today's [`ClusterState`].
//!
//! - Members before `--cluster-client-port` had two addresses.
//! - Rings before the owner-table encoding were one owner per partition,
//!   and states had no transitions, generations or removals.

use crate::core::{ClusterState, Member, NodeId, Ring, Transition};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A member as recorded before it had a cluster-client address.
#[derive(Deserialize)]
struct TwoAddressMember {
    client_addr: String,
    cluster_addr: String,
}

impl From<TwoAddressMember> for Member {
    fn from(m: TwoAddressMember) -> Self {
        Member {
            client_addr: m.client_addr,
            cluster_addr: m.cluster_addr,
            cluster_client_addr: None,
        }
    }
}

fn upgrade_members(members: BTreeMap<NodeId, TwoAddressMember>) -> BTreeMap<NodeId, Member> {
    members.into_iter().map(|(n, m)| (n, m.into())).collect()
}

/// Today's state shape with two-address members.
#[derive(Deserialize)]
struct TwoAddressState {
    cluster_id: String,
    version: u64,
    members: BTreeMap<NodeId, TwoAddressMember>,
    ring: Ring,
    n: usize,
    generation: u64,
    transition: Option<Transition>,
    admitted: BTreeMap<NodeId, u64>,
    removed: BTreeMap<NodeId, u64>,
}

/// The state as written before rings were encoded as an owner table plus
/// an index per partition.
#[derive(Deserialize)]
struct OwnerListState {
    cluster_id: String,
    version: u64,
    members: BTreeMap<NodeId, TwoAddressMember>,
    ring: Vec<NodeId>,
    n: usize,
}

/// `raw` in one of the older shapes, as today's state: `Some(None)` when
/// it decodes but cannot be used (logged), `None` when it is none of them.
pub fn decode(raw: &[u8]) -> Option<Option<ClusterState>> {
    if let Ok(old) = postcard::from_bytes::<TwoAddressState>(raw) {
        return Some(Some(ClusterState {
            cluster_id: old.cluster_id,
            version: old.version,
            members: upgrade_members(old.members),
            ring: old.ring,
            n: old.n,
            generation: old.generation,
            transition: old.transition,
            admitted: old.admitted,
            removed: old.removed,
        }));
    }
    let old = postcard::from_bytes::<OwnerListState>(raw).ok()?;
    Some(match Ring::from_owners(&old.ring) {
        Ok(ring) => Some(ClusterState {
            cluster_id: old.cluster_id,
            admitted: old
                .members
                .keys()
                .map(|m| (m.clone(), old.version))
                .collect(),
            version: old.version,
            members: upgrade_members(old.members),
            ring,
            n: old.n,
            generation: 0,
            transition: None,
            removed: BTreeMap::new(),
        }),
        Err(e) => {
            tracing::error!(
                "ignoring unreadable {}: {e}",
                super::membership::STATE_RECORD
            );
            None
        }
    })
}
