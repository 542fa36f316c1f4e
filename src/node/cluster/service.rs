//! Answers peers: replica reads and merges, hints, coordinated writes,
//! joins, gossip, FLUSHALL, the tombstone purge, partition transfers and
//! anti-entropy comparisons.

use super::ClusterKv;
use crate::core::{NodeId, Request, Response};
use crate::kv::KvError;
use crate::net::Handler;
use crate::node::env::NodeEnv;
use std::sync::Arc;

/// The RPC handler of one node.
pub struct Service<E: NodeEnv>(pub Arc<ClusterKv<E>>);

impl<E: NodeEnv> Handler<Request, Response> for Service<E> {
    async fn handle(&self, from: NodeId, req: Request) -> Response {
        let node = &self.0;
        // Hearing from a peer is proof it is alive.
        node.membership.mark_up(&from);
        match req {
            Request::Ping => Response::Ack,
            Request::Get { key } => {
                if node.is_rebuilding() {
                    return Response::Rebuilding;
                }
                match node.replica_read(&key) {
                    Ok(obj) => Response::Object(obj),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::Put {
                key,
                object,
                hint_for,
            } => match hint_for {
                // A hint that reached its owner is just a replica write.
                Some(owner) if &owner != node.me() => {
                    node.local.clock().observe(object.max_timestamp());
                    // Acknowledged only once durable: the ack counts toward W.
                    if node.keep_hint(owner, key, object).await {
                        Response::Ack
                    } else {
                        Response::Error("hint not stored".into())
                    }
                }
                _ => match node.local.merge_local(key, object).await {
                    Ok(_) => Response::Ack,
                    Err(e) => Response::Error(e.to_string()),
                },
            },
            Request::PutMany { items } => {
                for (key, object) in items {
                    if let Err(e) = node.local.merge_local(key, object).await {
                        return Response::Error(e.to_string());
                    }
                }
                Response::Ack
            }
            Request::Coordinate {
                key,
                context,
                payload,
                w,
                hlc_ms,
            } => {
                node.local.clock().observe(hlc_ms);
                let w = w.unwrap_or(node.quorums.w).clamp(1, node.effective_n());
                match node.coordinate(key, context, payload, w).await {
                    Ok(()) => Response::Ack,
                    Err(KvError::Unavailable { answered, required }) => {
                        Response::Unavailable { answered, required }
                    }
                    Err(e @ KvError::ClockSkew(_)) => Response::Refused(e.to_string()),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::FlushAll => match node.flush_local_keys(None).await {
                Ok(()) => Response::Ack,
                Err(e) => Response::Error(e.to_string()),
            },
            Request::Command { payload } => match node.run_forwarded(payload).await {
                Some(reply) => Response::CommandReply(reply),
                None => Response::Refused("this node runs no forwarded commands".into()),
            },
            Request::FlushDb { db } => match node.flush_local_keys(Some(db)).await {
                Ok(()) => Response::Ack,
                Err(e) => Response::Error(e.to_string()),
            },
            Request::Join {
                node: joiner,
                member,
            } => {
                tracing::info!(node = %joiner, "admitting node to the cluster");
                let known_before = node.membership.with(|s| s.members.contains_key(&joiner));
                match node
                    .membership
                    .change(|current| current.with_member(joiner, member))
                {
                    Ok((state, changed)) => {
                        if changed {
                            node.save_membership().await;
                        }
                        Response::Admitted {
                            state,
                            known_before,
                        }
                    }
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            req @ (Request::Gossip { .. }
            | Request::GossipDigest { .. }
            | Request::GossipPush { .. }) => super::gossip::serve(&**node, req).await,
            Request::GcPush { items } => Response::GcReady(node.gc_prepare(items).await),
            Request::GcDelete { items } => Response::GcReady(node.gc_delete(items).await),
            Request::Handoff { partition, items } => node.receive_partition(partition, items).await,
            Request::AeRoots { roots } => node.ae_roots(roots),
            Request::AeLevel {
                partition,
                level,
                nodes,
            } => node.ae_level(partition, level, nodes),
            Request::AeLeaves {
                partition,
                leaves,
                entries,
            } => node.ae_leaves(partition, leaves, entries),
            Request::AeSummary {
                partitions,
                combined,
            } => node.ae_summary(&partitions, combined),
        }
    }
}
