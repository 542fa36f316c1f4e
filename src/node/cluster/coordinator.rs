//! Quorum reads and writes: the tokio shell around the pure [`GetCore`] and
//! [`PutCore`]. The cores decide (who to ask, when a quorum is reached,
//! who to ask next, who needs repair); this file only moves messages and
//! keeps the deadlines.

use super::ClusterKv;
use crate::core::{
    GetCore, NodeId, Object, Payload, PutCore, QuorumStatus, Request, Response, Target,
    WriteContext, plan_write, ring_hash,
};
use crate::kv::KvError;
use crate::node::env::NodeEnv;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::Instant;

fn failed(answered: usize, required: usize) -> KvError {
    KvError::Unavailable { answered, required }
}

/// What one replica said to a read.
enum ReadReply {
    Object(Object),
    Rebuilding,
    Failed,
}

impl<E: NodeEnv> ClusterKv<E> {
    /// The key's ring walk (preference list first, then fallbacks).
    pub(crate) fn walk(&self, key: &[u8]) -> Vec<NodeId> {
        self.membership.with(|s| {
            let p = s.ring.partition_of(ring_hash(key));
            s.ring.walk_up_to(p, s.members.len())
        })
    }

    /// The key's next preference list while a membership change runs
    /// (empty otherwise): writes reach W of these as well.
    pub(crate) fn next_owners(&self, key: &[u8]) -> Vec<NodeId> {
        let n = self.effective_n();
        self.membership.with(|s| {
            let p = s.ring.partition_of(ring_hash(key));
            s.next_preference_list(p, n).unwrap_or_default()
        })
    }

    /// This node's answer to a read of `key`, as a replica.
    fn read_here(&self, key: &[u8]) -> ReadReply {
        if self.is_rebuilding() {
            return ReadReply::Rebuilding;
        }
        match self.replica_read(key) {
            Ok(obj) => ReadReply::Object(obj),
            Err(_) => ReadReply::Failed,
        }
    }

    fn spawn_read(
        this: &Arc<Self>,
        node: NodeId,
        key: Bytes,
        tx: mpsc::UnboundedSender<(NodeId, ReadReply)>,
    ) {
        let this = this.clone();
        tokio::spawn(async move {
            let reply = if &node == this.me() {
                this.read_here(&key)
            } else {
                match this.call(&node, Request::Get { key }).await {
                    Ok(Response::Object(obj)) => {
                        this.local.clock().observe(obj.max_timestamp());
                        ReadReply::Object(obj)
                    }
                    Ok(Response::Rebuilding) => ReadReply::Rebuilding,
                    _ => ReadReply::Failed,
                }
            };
            let _ = tx.send((node, reply));
        });
    }

    /// Reads `key` from the first N reachable nodes of its walk; returns the
    /// merge of the first `r` replies. The remaining replies are awaited in
    /// the background and stale or rebuilding owners are repaired.
    pub async fn quorum_get(&self, key: Bytes, r: usize) -> Result<Object, KvError> {
        let n = self.effective_n();
        let walk = self.walk(&key);
        // While a second node joins, the committed ring has fewer than N
        // members: R counts among those.
        let r = r.min(n.min(walk.len())).max(1);
        let (mut core, first) = GetCore::new(&walk, n, r, |m| self.membership.is_up(m));
        if first.len() == 1 && &first[0] == self.me() && r <= 1 && !self.is_rebuilding() {
            return self.replica_read(&key);
        }
        let Some(this) = self.handle() else {
            return Err(KvError::Storage("node is shutting down".into()));
        };
        if let QuorumStatus::Failed { answered, required } = core.status() {
            self.count_quorum_failure();
            return Err(failed(answered, required));
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        for node in first {
            Self::spawn_read(&this, node, key.clone(), tx.clone());
        }
        let deadline = Instant::now() + self.timeouts.quorum;
        let status = loop {
            let status = core.status();
            if status != QuorumStatus::Pending {
                break status;
            }
            let next = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((node, ReadReply::Object(obj)))) => {
                    core.on_reply(node, obj);
                    None
                }
                Ok(Some((node, ReadReply::Rebuilding))) => core.on_rebuilding(node).1,
                Ok(Some((node, ReadReply::Failed))) => core.on_failure(node).1,
                Ok(None) | Err(_) => break core.timed_out(),
            };
            if let Some(next) = next {
                Self::spawn_read(&this, next, key.clone(), tx.clone());
            }
        };
        drop(tx);
        match status {
            QuorumStatus::Reached => {
                let merged = core.merged().clone();
                match self.repairs_in_flight.clone().try_acquire_owned() {
                    Ok(permit) => {
                        tokio::spawn(async move {
                            finish_read(this, key, core, rx, deadline).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        self.stats.repairs_skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(merged)
            }
            other => {
                self.count_quorum_failure();
                Err(failed(answered_of(&other), r))
            }
        }
    }

    /// Writes a new version of `key`: forwarded to a preference-list node
    /// unless this node is one (or none answers). A node whose clock is off
    /// never coordinates.
    pub async fn write(
        &self,
        key: Bytes,
        context: WriteContext,
        payload: Payload,
        w: usize,
    ) -> Result<(), KvError> {
        let n = self.effective_n();
        let walk = self.walk(&key);
        let preferred: Vec<NodeId> = walk.iter().take(n).cloned().collect();
        let skewed = self.membership.clock_is_skewed();
        if !preferred.contains(self.me()) || skewed {
            let others = preferred
                .iter()
                .filter(|p| *p != self.me() && self.membership.is_up(p));
            for node in others {
                let req = Request::Coordinate {
                    key: key.clone(),
                    context: context.clone(),
                    payload: payload.clone(),
                    w: Some(w),
                    hlc_ms: self.local.clock().now_ms(),
                };
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                crate::obs::catalog::handles().forwarded.increment(1);
                let allowance = super::transfer_allowance(key.len() + payload_len(&payload));
                match self
                    .call_within(node, req, self.timeouts.forward + allowance * 3)
                    .await
                {
                    Ok(Response::Ack) => return Ok(()),
                    Ok(Response::Unavailable { answered, required }) => {
                        return Err(failed(answered, required));
                    }
                    Ok(Response::Error(e)) => return Err(KvError::Storage(e)),
                    // Not carried out there: ask the next one.
                    Ok(Response::Refused(_)) => continue,
                    Ok(_) => continue,
                    Err(e) if e.surely_not_delivered() => continue,
                    // The coordinator may have written it: writing again
                    // elsewhere would create a duplicate sibling.
                    Err(e) => {
                        self.count_quorum_failure();
                        return Err(KvError::Timeout(format!(
                            "coordinator {node} did not answer ({e}); the write may or may not have been applied"
                        )));
                    }
                }
            }
            if skewed {
                self.stats.clock_refusals.fetch_add(1, Ordering::Relaxed);
                return Err(KvError::ClockSkew(self.membership.own_offset_ms()));
            }
        }
        self.coordinate_on(walk, key, context, payload, w).await
    }

    /// Creates the version here and replicates it (a forwarded write
    /// arriving from a peer).
    pub async fn coordinate(
        &self,
        key: Bytes,
        context: WriteContext,
        payload: Payload,
        w: usize,
    ) -> Result<(), KvError> {
        if self.membership.clock_is_skewed() {
            self.stats.clock_refusals.fetch_add(1, Ordering::Relaxed);
            return Err(KvError::ClockSkew(self.membership.own_offset_ms()));
        }
        let walk = self.walk(&key);
        self.coordinate_on(walk, key, context, payload, w).await
    }

    /// [`ClusterKv::coordinate`] for a key whose ring walk is known.
    async fn coordinate_on(
        &self,
        walk: Vec<NodeId>,
        key: Bytes,
        context: WriteContext,
        payload: Payload,
        w: usize,
    ) -> Result<(), KvError> {
        let n = self.effective_n();
        let next = self.next_owners(&key);
        let in_preference_list =
            walk.iter().take(n).any(|m| m == self.me()) || next.contains(self.me());
        let object = if in_preference_list {
            self.local
                .coordinate_local(key.clone(), context, payload)
                .await?
        } else {
            // Not a replica: the version lives only in hints (below), built
            // on whatever this node knows of the key.
            let base = self.replica_read(&key)?;
            self.local.coordinate_detached(base, context, payload)?
        };
        let plan = plan_write(&walk, n, &next, |m| self.membership.is_up(m));
        let mut core = PutCore::for_plan(&plan, w);
        let mut remote = Vec::new();
        let also = plan.also.iter().map(|node| Target {
            node: node.clone(),
            hint_for: None,
        });
        let targets: Vec<Target> = plan.targets.iter().cloned().chain(also).collect();
        for target in targets {
            if &target.node != self.me() {
                remote.push(target);
            } else if target.hint_for.is_none() {
                core.on_ack(self.me().clone());
            } else {
                // This node is the fallback standing in for a down owner:
                // the hint counts once it is durable.
                let owner = target.hint_for.clone().unwrap_or_else(|| self.me().clone());
                if self.keep_hint(owner, key.clone(), object.clone()).await {
                    core.on_ack(self.me().clone());
                } else {
                    core.on_failure(self.me().clone());
                }
            }
        }
        // Preference-list members with no fallback: keep their hints here
        // (they do not count toward W).
        for owner in plan.local_hints.iter().filter(|o| *o != self.me()) {
            self.keep_hint(owner.clone(), key.clone(), object.clone())
                .await;
        }
        if remote.is_empty() {
            return self.conclude(core.timed_out());
        }
        let Some(this) = self.handle() else {
            return Err(KvError::Storage("node is shutting down".into()));
        };
        let (tx, mut rx) = mpsc::channel(remote.len());
        for target in remote {
            let (this, tx, key, object) = (this.clone(), tx.clone(), key.clone(), object.clone());
            tokio::spawn(async move {
                let req = Request::Put {
                    key: key.clone(),
                    object: object.clone(),
                    hint_for: target.hint_for.clone(),
                };
                let ok = matches!(this.call(&target.node, req).await, Ok(Response::Ack));
                if !ok {
                    // The replica missed it: keep a hint so it catches up.
                    let owner = target.hint_for.clone().unwrap_or(target.node.clone());
                    this.keep_hint(owner, key, object).await;
                }
                let _ = tx.send((target.node, ok)).await;
            });
        }
        drop(tx);
        let deadline = Instant::now()
            + self.timeouts.quorum
            + super::transfer_allowance(key.len() + super::object_bytes(&object));
        let status = loop {
            let status = core.status();
            if status != QuorumStatus::Pending {
                break status;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((node, true))) => {
                    core.on_ack(node);
                }
                Ok(Some((node, false))) => {
                    core.on_failure(node);
                }
                Ok(None) | Err(_) => break core.timed_out(),
            }
        };
        self.conclude(status)
    }

    pub(crate) fn count_quorum_failure(&self) {
        self.stats.quorum_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dynkv_quorum_failures_total").increment(1);
    }

    fn conclude(&self, status: QuorumStatus) -> Result<(), KvError> {
        match status {
            QuorumStatus::Reached => Ok(()),
            QuorumStatus::Failed { answered, required } => {
                self.count_quorum_failure();
                Err(failed(answered, required))
            }
            QuorumStatus::Pending => Err(failed(0, 0)),
        }
    }
}

fn payload_len(payload: &Payload) -> usize {
    payload.approx_len()
}

fn answered_of(status: &QuorumStatus) -> usize {
    match status {
        QuorumStatus::Failed { answered, .. } => *answered,
        _ => 0,
    }
}

/// After the client has its answer: hear the remaining replicas, then send
/// the merged object to every owner whose copy lacks part of it.
async fn finish_read<E: NodeEnv>(
    this: Arc<ClusterKv<E>>,
    key: Bytes,
    mut core: GetCore,
    mut rx: mpsc::UnboundedReceiver<(NodeId, ReadReply)>,
    deadline: Instant,
) {
    while let Ok(Some((node, reply))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match reply {
            ReadReply::Object(obj) => {
                core.on_reply(node, obj);
            }
            ReadReply::Rebuilding => {
                core.on_rebuilding(node);
            }
            ReadReply::Failed => {
                core.on_failure(node);
            }
        }
    }
    if !this.read_repair.load(Ordering::Relaxed) {
        // --read-repair off: stale replicas wait for anti-entropy.
        return;
    }
    let merged = core.merged().clone();
    for stale in core.repairs() {
        let repaired = if &stale == this.me() {
            this.local
                .merge_local(key.clone(), merged.clone())
                .await
                .is_ok()
        } else {
            let req = Request::Put {
                key: key.clone(),
                object: merged.clone(),
                hint_for: None,
            };
            matches!(this.call(&stale, req).await, Ok(Response::Ack))
        };
        if repaired {
            this.stats.read_repairs.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("dynkv_read_repairs_total").increment(1);
        }
    }
}
