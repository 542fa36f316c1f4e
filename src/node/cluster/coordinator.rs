//! Quorum reads and writes, driven by the pure [`GetCore`] / [`PutCore`].

use super::ClusterKv;
use crate::core::{
    GetCore, Member, NodeId, Object, Payload, PutCore, QuorumStatus, Request, Response,
    WriteContext, plan, ring_hash,
};
use crate::kv::{AdminValue, KvError};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::Instant;

fn failed(answered: usize, required: usize) -> KvError {
    KvError::Unavailable { answered, required }
}

impl ClusterKv {
    /// The key's ring walk (preference list first, then fallbacks).
    fn walk(&self, key: &[u8]) -> Vec<NodeId> {
        self.membership.with(|s| {
            let p = s.ring.partition_of(ring_hash(key));
            s.ring.walk_up_to(p, s.members.len())
        })
    }

    /// Reads `key` from its reachable preference-list replicas; returns the
    /// merge of the first `r` replies. The remaining replies are awaited in
    /// the background and every stale replica is repaired.
    pub async fn quorum_get(&self, key: Bytes, r: usize) -> Result<Object, KvError> {
        let n = self.effective_n();
        let walk = self.walk(&key);
        let replicas: Vec<NodeId> = walk
            .into_iter()
            .take(n)
            .filter(|node| self.membership.is_up(node))
            .collect();
        if replicas.len() == 1 && &replicas[0] == self.me() && r <= 1 {
            return self.local.local_get(&key);
        }
        let Some(this) = self.handle() else {
            return Err(KvError::Storage("node is shutting down".into()));
        };
        let mut core = GetCore::new(replicas.len(), r);
        if replicas.len() < r {
            self.count_quorum_failure();
            return Err(failed(replicas.len(), r));
        }
        let (tx, mut rx) = mpsc::channel(replicas.len().max(1));
        for node in &replicas {
            let (this, tx, node, key) = (this.clone(), tx.clone(), node.clone(), key.clone());
            tokio::spawn(async move {
                let result = if &node == this.me() {
                    this.local.local_get(&key).ok()
                } else {
                    match this.call(&node, Request::Get { key }).await {
                        Ok(Response::Object(obj)) => Some(obj),
                        _ => None,
                    }
                };
                let _ = tx.send((node, result)).await;
            });
        }
        drop(tx);
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((node, Some(obj)))) => {
                    if core.on_reply(node, obj) != QuorumStatus::Pending {
                        break core.status();
                    }
                }
                Ok(Some((node, None))) => {
                    if core.on_failure(node) != QuorumStatus::Pending {
                        break core.status();
                    }
                }
                Ok(None) | Err(_) => break core.timed_out(),
            }
        };
        match status {
            QuorumStatus::Reached => {
                let merged = core.merged().clone();
                tokio::spawn(finish_read(this, key, core, rx, deadline));
                Ok(merged)
            }
            other => {
                self.count_quorum_failure();
                Err(failed(answered_of(&other), r))
            }
        }
    }

    /// Writes a new version of `key`: forwarded to a preference-list node
    /// unless this node is one (or none is reachable).
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
        if !preferred.contains(self.me()) {
            for node in preferred.iter().filter(|p| self.membership.is_up(p)) {
                let req = Request::Coordinate {
                    key: key.clone(),
                    context: context.clone(),
                    payload: payload.clone(),
                    w: Some(w),
                };
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dynkv_forwarded_requests_total").increment(1);
                match self.call(node, req).await {
                    Ok(Response::Ack) => return Ok(()),
                    Ok(Response::Unavailable { answered, required }) => {
                        return Err(failed(answered, required));
                    }
                    Ok(Response::Error(e)) => return Err(KvError::Storage(e)),
                    // Unreachable: try the next one, then coordinate here.
                    Ok(_) | Err(_) => continue,
                }
            }
        }
        self.coordinate_on(walk, key, context, payload, w).await
    }

    /// Creates the version here and replicates it to the key's replicas
    /// (a forwarded write arriving from a peer).
    pub async fn coordinate(
        &self,
        key: Bytes,
        context: WriteContext,
        payload: Payload,
        w: usize,
    ) -> Result<(), KvError> {
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
        let object = self
            .local
            .coordinate_local(key.clone(), context, payload)
            .await?;
        let in_preference_list = walk.iter().take(n).any(|m| m == self.me());
        let plan = plan(&walk, n, |m| self.membership.is_up(m));
        let remote: Vec<_> = plan
            .targets
            .iter()
            .filter(|t| &t.node != self.me())
            .cloned()
            .collect();
        let contacted = remote.len() + usize::from(in_preference_list);
        let mut core = PutCore::new(contacted, w);
        if in_preference_list {
            core.on_ack(self.me().clone());
        }
        // A preference-list member with no fallback: keep its hint here (it
        // does not count toward W).
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
        let deadline = Instant::now() + self.timeout;
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

    fn count_quorum_failure(&self) {
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

    /// DYN.JOIN host:clusterport: this (lone) node asks that member to admit it.
    pub async fn join_via(&self, seed: &str) -> Result<AdminValue, KvError> {
        if self.membership.with(|s| s.members.len()) > 1 {
            return Err(KvError::Admin(
                "this node is already part of a multi-node cluster".into(),
            ));
        }
        let state = join_cluster(self, seed).await?;
        self.rpc.set_cluster(state.cluster_id.clone());
        self.membership.adopt(state);
        Ok(AdminValue::Status("OK".into()))
    }
}

fn answered_of(status: &QuorumStatus) -> usize {
    match status {
        QuorumStatus::Failed { answered, .. } => *answered,
        _ => 0,
    }
}

/// Asks the member at `seed` to admit this node; returns the new state.
pub async fn join_cluster(
    node: &ClusterKv,
    seed: &str,
) -> Result<crate::core::ClusterState, KvError> {
    let addr = tokio::net::lookup_host(seed)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| KvError::Admin(format!("cannot resolve {seed}")))?;
    let me = node.me().clone();
    let member: Member = node
        .membership
        .with(|s| s.members.get(&me).cloned())
        .ok_or_else(|| KvError::Admin("this node does not know its own addresses".into()))?;
    let seed_id = NodeId::new(seed);
    // A joining node has no cluster id yet; seeds accept an empty one.
    node.rpc.set_cluster(String::new());
    let reply = node
        .rpc
        .call(&seed_id, addr, Request::Join { node: me, member })
        .await;
    let current = node.membership.with(|s| s.cluster_id.clone());
    match reply {
        Ok(Response::State(state)) => Ok(state),
        Ok(Response::Error(e)) => {
            node.rpc.set_cluster(current);
            Err(KvError::Admin(format!("{seed} refused the join: {e}")))
        }
        Ok(_) => {
            node.rpc.set_cluster(current);
            Err(KvError::Admin(format!("{seed} gave an unexpected answer")))
        }
        Err(e) => {
            node.rpc.set_cluster(current);
            Err(KvError::Admin(format!("cannot reach {seed}: {e}")))
        }
    }
}

/// After the client has its answer: hear the remaining replicas, then send
/// the merged object to every replica whose copy lacks part of it.
async fn finish_read(
    this: Arc<ClusterKv>,
    key: Bytes,
    mut core: GetCore,
    mut rx: mpsc::Receiver<(NodeId, Option<Object>)>,
    deadline: Instant,
) {
    while let Ok(Some((node, result))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        match result {
            Some(obj) => core.on_reply(node, obj),
            None => core.on_failure(node),
        };
    }
    let merged = core.merged().clone();
    for stale in core.stale_replicas() {
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
