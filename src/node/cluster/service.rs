//! Answers peers: replica reads and merges, hints, coordinated writes,
//! joins and gossip.

use super::ClusterKv;
use crate::core::{NodeId, Request, Response};
use crate::kv::KvError;
use crate::net::Handler;
use std::sync::Arc;

/// The RPC handler of one node.
pub struct Service(pub Arc<ClusterKv>);

impl Handler<Request, Response> for Service {
    async fn handle(&self, from: NodeId, req: Request) -> Response {
        let node = &self.0;
        // Hearing from a peer is proof it is alive.
        node.membership.mark_up(&from);
        match req {
            Request::Ping => Response::Ack,
            Request::Get { key } => match node.local.local_get(&key) {
                Ok(obj) => Response::Object(obj),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::Put {
                key,
                object,
                hint_for: None,
            } => match node.local.merge_local(key, object).await {
                Ok(_) => Response::Ack,
                Err(e) => Response::Error(e.to_string()),
            },
            Request::Put {
                key,
                object,
                hint_for: Some(owner),
            } => {
                if &owner == node.me() {
                    // A hint that reached its owner is just a replica write.
                    return match node.local.merge_local(key, object).await {
                        Ok(_) => Response::Ack,
                        Err(e) => Response::Error(e.to_string()),
                    };
                }
                node.keep_hint(owner, key, object).await;
                Response::Ack
            }
            Request::Coordinate {
                key,
                context,
                payload,
                w,
            } => {
                let w = w.unwrap_or(node.quorums.w).clamp(1, node.effective_n());
                match node.coordinate(key, context, payload, w).await {
                    Ok(()) => Response::Ack,
                    Err(KvError::Unavailable { answered, required }) => {
                        Response::Unavailable { answered, required }
                    }
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::Join {
                node: joiner,
                member,
            } => {
                tracing::info!(node = %joiner, "admitting node to the cluster");
                match node
                    .membership
                    .change(|current| current.with_member(joiner, member))
                {
                    Ok(next) => Response::State(next),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::Gossip { state } => {
                node.membership.merge(&state);
                Response::State(node.membership.snapshot())
            }
        }
    }
}
