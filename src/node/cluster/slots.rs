//! The Redis Cluster view of this node's ring (CLUSTER SLOTS / SHARDS /
//! NODES) and the `MOVED` decision for cluster-aware clients.

use super::ClusterKv;
use crate::core::{NodeId, SLOTS, serving_order, slot_ranges, slot_start_hash};
use crate::kv::{ClusterMember, ClusterView};
use crate::node::env::NodeEnv;

impl<E: NodeEnv> ClusterKv<E> {
    /// Every member and every slot range's owners, as this node sees them.
    pub(crate) fn cluster_view_now(&self) -> ClusterView {
        let n = self.effective_n();
        let state = self.membership.snapshot();
        let members = state
            .members
            .iter()
            .map(|(name, m)| ClusterMember {
                name: name.clone(),
                client_addr: m.slot_map_addr().to_string(),
                cluster_addr: m.cluster_addr.clone(),
                up: self.membership.is_up(name),
            })
            .collect();
        ClusterView {
            me: self.me().clone(),
            members,
            ranges: slot_ranges(&state.ring, n, |m| self.membership.is_up(m)),
            epoch: state.version,
        }
    }

    /// Where a cluster-aware client should send keys of `slot`, when this
    /// node is in neither the slot's preference list nor (during a
    /// membership change) its next one.
    pub(crate) fn moved_target(&self, slot: u16) -> Option<String> {
        if usize::from(slot) >= SLOTS {
            return None;
        }
        let n = self.effective_n();
        let me = self.me().clone();
        let (owners, addrs) = self.membership.with(|s| {
            let p = s.ring.partition_of(slot_start_hash(slot));
            let owners = s.ring.preference_list(p, n);
            let serves_here = owners.contains(&me)
                || s.next_preference_list(p, n)
                    .is_some_and(|next| next.contains(&me));
            if serves_here {
                return (Vec::new(), Vec::new());
            }
            let addrs: Vec<(NodeId, String)> = owners
                .iter()
                .filter_map(|o| {
                    s.members
                        .get(o)
                        .map(|m| (o.clone(), m.slot_map_addr().to_string()))
                })
                .collect();
            (owners, addrs)
        });
        let master = serving_order(owners, |m| self.membership.is_up(m))
            .into_iter()
            .next()?;
        addrs
            .into_iter()
            .find(|(name, _)| *name == master)
            .map(|(_, addr)| addr)
    }
}
