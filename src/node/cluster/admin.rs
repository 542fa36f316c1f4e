//! Cluster administration over RESP (DYN.MEMBERS, DYN.RING, DYN.HINTS,
//! DYN.DEBUG, DYN.JOIN; DYN.LEAVE lives with the handoff), the `dynamo` section of INFO, and FLUSHALL on a
//! cluster.

use super::ClusterKv;
use crate::core::{
    ClusterState, Member, NodeId, Payload, Request, Response, WriteContext, split_db_key,
};
use crate::kv::{AdminCommand, AdminValue, InfoFields, KvError};
use crate::net::{RpcError, Transport};
use crate::node::env::NodeEnv;
use crate::node::local::object_value;
use crate::store::ReplicaStore;
use crate::store::hints::Hints;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys one node deletes concurrently during FLUSHALL.
const FLUSH_CONCURRENCY: usize = 64;

impl<E: NodeEnv> ClusterKv<E> {
    /// Answers one admin command.
    pub(crate) async fn run_admin(&self, cmd: AdminCommand) -> Result<AdminValue, KvError> {
        let bulk = |s: String| AdminValue::Bulk(Bytes::from(s));
        match cmd {
            AdminCommand::Members => {
                let state = self.membership.snapshot();
                let owned = state.ring.ownership();
                Ok(AdminValue::Array(
                    state
                        .members
                        .iter()
                        .map(|(id, m)| {
                            let status = if self.membership.is_up(id) {
                                "up"
                            } else {
                                "down"
                            };
                            AdminValue::Array(vec![
                                bulk(id.to_string()),
                                bulk(m.client_addr.clone()),
                                bulk(status.into()),
                                AdminValue::Int(owned.get(id).copied().unwrap_or(0) as i64),
                            ])
                        })
                        .collect(),
                ))
            }
            AdminCommand::Ring => {
                let n = self.effective_n();
                let ring = self.membership.with(|s| s.ring.clone());
                Ok(AdminValue::Array(
                    (0..ring.partitions())
                        .map(|p| {
                            AdminValue::Array(vec![
                                AdminValue::Int(p as i64),
                                AdminValue::Array(
                                    ring.preference_list(p, n)
                                        .into_iter()
                                        .map(|m| bulk(m.to_string()))
                                        .collect(),
                                ),
                            ])
                        })
                        .collect(),
                ))
            }
            AdminCommand::Hints => Ok(AdminValue::Array(
                self.hints
                    .counts()
                    .into_iter()
                    .map(|(t, c)| {
                        AdminValue::Array(vec![bulk(t.to_string()), AdminValue::Int(c as i64)])
                    })
                    .collect(),
            )),
            AdminCommand::LocalGet(key) => {
                let obj = self.local.local_get(&key)?;
                Ok(object_value(&obj, self.local.clock().now_ms()))
            }
            AdminCommand::Partition(names) => {
                let blocked = names
                    .iter()
                    .map(|n| NodeId::new(&String::from_utf8_lossy(n)))
                    .collect();
                self.blocklist.set(blocked);
                Ok(AdminValue::Status("OK".into()))
            }
            AdminCommand::Merkle(which) => self.merkle_debug(&which).map(bulk),
            AdminCommand::Join(target) => self.join_via(&target).await,
            AdminCommand::Leave(node) => self.leave(node).await,
        }
    }

    /// DYN.DEBUG MERKLE: a partition's root, or with ALL one hash over
    /// every partition's root (replicas holding the same partitions with
    /// the same data print the same line).
    fn merkle_debug(&self, which: &str) -> Result<String, KvError> {
        use crate::core::merkle::{combine_roots, to_hex};
        let partitions = self.membership.with(|s| s.ring.partitions());
        let alone = self.alone() && !self.merkle.is_ready();
        let not_ready = || {
            KvError::Admin(if alone {
                "this node has no peers, so it keeps no Merkle trees (they are built when one joins)".into()
            } else {
                "the Merkle trees are still being built".into()
            })
        };
        if which.eq_ignore_ascii_case("ALL") {
            let mut roots = Vec::with_capacity(partitions);
            for p in 0..partitions {
                roots.push((p as u32, self.merkle_root(p).ok_or_else(not_ready)?));
            }
            return Ok(to_hex(&combine_roots(roots)));
        }
        let p = which
            .parse::<usize>()
            .ok()
            .filter(|p| *p < partitions)
            .ok_or_else(|| {
                KvError::Admin(format!(
                    "partition must be ALL or between 0 and {}",
                    partitions.saturating_sub(1)
                ))
            })?;
        let root = self.merkle_root(p).ok_or_else(not_ready)?;
        Ok(to_hex(&root.hash))
    }

    /// Sets the Prometheus gauges (called every gossip round and on INFO).
    pub(crate) fn publish_gauges(&self) {
        metrics::gauge!("dynkv_writer_queue_depth").set(self.local.store().queue_depth() as f64);
        metrics::gauge!("dynkv_suspected_peers").set(self.membership.suspected_peers() as f64);
        metrics::gauge!("dynkv_clock_offset_ms").set(self.membership.own_offset_ms() as f64);
        metrics::gauge!("dynkv_hints_pending").set(self.hints_pending() as f64);
        metrics::gauge!("dynkv_hint_store_dropped").set(self.hints.dropped() as f64);
    }

    /// The `dynamo` section of INFO.
    pub(crate) fn info(&self) -> InfoFields {
        self.publish_gauges();
        let (members, owned, moving) = self.membership.with(|s| {
            (
                s.member_ids(),
                s.ring.ownership().get(self.me()).copied().unwrap_or(0),
                s.pending_moves().len(),
            )
        });
        let up = members.iter().filter(|m| self.membership.is_up(m)).count();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let queue_depth = self.local.store().queue_depth();
        let suspected = self.membership.suspected_peers();
        let offset = self.membership.own_offset_ms();
        vec![
            ("node_name", self.me().to_string()),
            ("actor", self.local.dots().actor().to_string()),
            ("cluster_id", self.membership.with(|s| s.cluster_id.clone())),
            ("members_up", up.to_string()),
            ("members_down", (members.len() - up).to_string()),
            ("suspected_peers", suspected.to_string()),
            ("n", self.effective_n().to_string()),
            ("r", self.quorums.r.min(self.effective_n()).to_string()),
            ("w", self.quorums.w.min(self.effective_n()).to_string()),
            ("partitions_owned", owned.to_string()),
            ("partitions_moving", moving.to_string()),
            ("handoff_bytes_sent", load(&self.stats.handoff_bytes_sent)),
            (
                "handoff_bytes_received",
                load(&self.stats.handoff_bytes_received),
            ),
            ("handoff_keys_sent", load(&self.stats.handoff_keys_sent)),
            (
                "handoff_keys_dropped",
                load(&self.stats.handoff_keys_dropped),
            ),
            ("rebuilding", u8::from(self.is_rebuilding()).to_string()),
            ("hints_pending", self.hints_pending().to_string()),
            ("hints_stored", load(&self.stats.hints_stored)),
            ("hints_delivered", load(&self.stats.hints_delivered)),
            ("hints_dropped", self.hints.dropped().to_string()),
            ("read_repairs", load(&self.stats.read_repairs)),
            ("read_repairs_skipped", load(&self.stats.repairs_skipped)),
            ("ae_keys_repaired", load(&self.stats.ae_keys_repaired)),
            ("ae_keys_compared", load(&self.stats.ae_keys_compared)),
            ("ae_bytes_sent", load(&self.stats.ae_bytes_sent)),
            ("ae_bytes_received", load(&self.stats.ae_bytes_received)),
            ("ae_rounds", load(&self.stats.ae_rounds)),
            (
                "read_repair",
                if self.read_repair.load(Ordering::Relaxed) {
                    "on"
                } else {
                    "off"
                }
                .into(),
            ),
            ("gets_with_siblings", load(&self.stats.gets_with_siblings)),
            ("quorum_failures", load(&self.stats.quorum_failures)),
            ("forwarded_requests", load(&self.stats.forwarded)),
            ("clock_offset_ms", offset.to_string()),
            ("max_offset_ms", self.membership.max_offset_ms().to_string()),
            ("clock_refusals", load(&self.stats.clock_refusals)),
            ("writer_queue_depth", queue_depth.to_string()),
            ("keys_collected", self.local.keys_collected().to_string()),
            ("tombstones", self.local.tombstones().to_string()),
            (
                "tombstones_purged",
                self.local.tombstones_purged().to_string(),
            ),
            ("purge_rounds", load(&self.stats.purge_rounds)),
            (
                "storage_decode_errors",
                self.local.store().decode_errors().to_string(),
            ),
        ]
    }

    /// FLUSHALL on a cluster: every member deletes the keys it holds
    /// through the quorum path (versioned tombstones that supersede what it
    /// saw), so read repair and handoff cannot bring them back.
    pub(crate) async fn flush_cluster(&self, only: Option<u8>) -> Result<(), KvError> {
        let members = self.membership.with(|s| s.member_ids());
        let mut failures = Vec::new();
        let request = match only {
            Some(db) => Request::FlushDb { db },
            None => Request::FlushAll,
        };
        for member in &members {
            let result = if member == self.me() {
                self.flush_local_keys(only).await
            } else {
                match self
                    .call_within(member, request.clone(), self.timeouts.forward * 30)
                    .await
                {
                    Ok(Response::Ack) => Ok(()),
                    Ok(Response::Error(e)) => Err(KvError::Storage(e)),
                    Ok(_) => Err(KvError::Storage("unexpected answer".into())),
                    Err(e) => Err(KvError::Storage(e.to_string())),
                }
            };
            if let Err(e) = result {
                failures.push(format!("{member}: {e}"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(KvError::Admin(format!(
                "FLUSHALL reached {} of {} nodes ({})",
                members.len() - failures.len(),
                members.len(),
                failures.join("; ")
            )))
        }
    }

    /// Writes a tombstone, through the quorum path, for every live key
    /// stored here (this node's part of FLUSHALL).
    pub(crate) async fn flush_local_keys(&self, only: Option<u8>) -> Result<(), KvError> {
        let w = self.quorums.w.min(self.effective_n()).max(1);
        let mut cursor = 0u64;
        loop {
            let page = self
                .local
                .store()
                .scan(cursor, 1_000)
                .await
                .map_err(|e| KvError::Storage(e.to_string()))?;
            let Some((last, _, _)) = page.last() else {
                return Ok(());
            };
            let next = last.checked_add(1);
            let now = self.local.clock().now_ms();
            let live: Vec<(Bytes, crate::core::VersionVector)> = page
                .into_iter()
                .filter(|(_, key, obj)| {
                    !obj.is_dead(now) && only.is_none_or(|db| split_db_key(key).0 == db)
                })
                .map(|(_, key, obj)| (key, obj.context))
                .collect();
            for chunk in live.chunks(FLUSH_CONCURRENCY) {
                let deletes = chunk.iter().map(|(key, ctx)| {
                    self.write(
                        key.clone(),
                        WriteContext::Client(ctx.clone()),
                        Payload::Tombstone,
                        w,
                    )
                });
                for result in futures::future::join_all(deletes).await {
                    result?;
                }
            }
            match next {
                Some(n) => cursor = n,
                None => return Ok(()),
            }
        }
    }

    /// DYN.JOIN host:clusterport: this (lone) node asks that member to admit it.
    pub async fn join_via(&self, seed: &str) -> Result<AdminValue, KvError> {
        if self.membership.with(|s| s.members.len()) > 1 {
            return Err(KvError::Admin(
                "this node is already part of a multi-node cluster".into(),
            ));
        }
        let current = self.rpc.cluster();
        let me = self.me().clone();
        let member: Member = self
            .membership
            .with(|s| s.members.get(&me).cloned())
            .ok_or_else(|| KvError::Admin("this node does not know its own addresses".into()))?;
        // A joining node has no cluster id yet; seeds accept an empty one.
        self.rpc.set_cluster(String::new());
        match ask_to_join(&self.rpc, &me, &member, seed).await {
            Ok((state, _known)) => {
                self.rpc.set_cluster(state.cluster_id.clone());
                self.membership.adopt(state);
                self.save_membership().await;
                Ok(AdminValue::Status("OK".into()))
            }
            Err(e) => {
                self.rpc.set_cluster(current);
                Err(KvError::Admin(e.to_string()))
            }
        }
    }
}

/// Resolves `seed` (`host:port`) to a socket address.
pub async fn resolve(seed: &str) -> Option<SocketAddr> {
    if let Ok(addr) = seed.parse() {
        return Some(addr);
    }
    tokio::net::lookup_host(seed)
        .await
        .ok()
        .and_then(|mut a| a.next())
}

/// Why a join did not happen.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The seed answered no: asking again will not help.
    #[error("{0}")]
    Refused(String),
    /// The seed could not be reached (yet).
    #[error("{0}")]
    Unreachable(String),
}

/// Asks the member at `seed` to admit `me`; returns the new state and
/// whether the cluster already knew that name.
pub async fn ask_to_join<T: Transport<Request, Response>>(
    rpc: &T,
    me: &NodeId,
    member: &Member,
    seed: &str,
) -> Result<(ClusterState, bool), JoinError> {
    let addr = resolve(seed)
        .await
        .ok_or_else(|| JoinError::Unreachable(format!("cannot resolve {seed}")))?;
    let req = Request::Join {
        node: me.clone(),
        member: member.clone(),
    };
    match rpc
        .call(
            &NodeId::new(seed),
            addr,
            req,
            std::time::Duration::from_secs(2),
        )
        .await
    {
        Ok(Response::Admitted {
            state,
            known_before,
        }) => Ok((state, known_before)),
        Ok(Response::Error(e)) => Err(JoinError::Refused(format!("{seed} refused the join: {e}"))),
        Ok(_) => Err(JoinError::Refused(format!(
            "{seed} gave an unexpected answer"
        ))),
        // A seed that does not share our secret will not change its mind.
        Err(RpcError::Auth(e)) => Err(JoinError::Refused(format!(
            "cannot join through {seed}: {e}"
        ))),
        Err(e) => Err(JoinError::Unreachable(format!("cannot reach {seed}: {e}"))),
    }
}
