//! Bringing a node up, the same way in production and in the simulation:
//! its version identity (actor and dot lease), its cluster state (saved,
//! joined, or founded), the [`ClusterKv`] and its background workers.

use super::admin::{JoinError, ask_to_join};
use super::membership::Membership;
use super::{
    ClusterKv, NodeParts, Quorums, REBUILDING_RECORD, Timeouts, anti_entropy, merkle_index, workers,
};
use crate::core::{ClusterState, Member, NodeId};
use crate::net::Transport;
use crate::node::clock::NodeClock;
use crate::node::env::{MetaStore, NodeEnv};
use crate::node::local::{DotIssuer, LeaseWriter, LocalKv};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Metadata record with the random id minted when the data dir was new.
pub const NODE_ID_RECORD: &str = "node.id";
/// Metadata record saying whether the last run ended cleanly.
pub const SHUTDOWN_RECORD: &str = "shutdown";
/// Metadata record with the end of the current dot lease.
pub const DOT_LEASE_RECORD: &str = "dots.lease";

/// What a node is told at start.
#[derive(Clone, Debug)]
pub struct BootSettings {
    /// `--node-name`.
    pub name: NodeId,
    /// Its addresses.
    pub member: Member,
    /// `--join`: a member to ask for admission when there is no saved state.
    pub join: Option<String>,
    /// Ring partitions of a cluster founded here.
    pub partitions: usize,
    /// N, R, W.
    pub quorums: Quorums,
    /// Deadlines.
    pub timeouts: Timeouts,
}

/// The actor this disk's versions are stamped with: the node name plus a
/// random id (`fresh_id` when a new one is minted).
///
/// The id is kept across restarts, so version vectors do not grow with
/// every restart, except in two cases where it is minted anew:
/// - the disk is new (empty data dir, e.g. a replaced disk);
/// - the last run did not shut down cleanly and writes were not fsynced
///   one by one (`--fsync everysec|no`). That run's last writes may be
///   gone from this disk while other replicas hold them; a later write
///   under the same actor would carry a version-vector entry that claims
///   to have seen them (an entry covers every counter below it) and would
///   silently supersede those copies. A new actor cannot.
pub fn actor_on_disk(
    meta: &dyn MetaStore,
    name: &NodeId,
    fresh_id: u64,
    fsync_always: bool,
) -> std::io::Result<NodeId> {
    let clean = meta.read(SHUTDOWN_RECORD).as_deref() == Some(b"clean".as_slice());
    let id = match meta.read(NODE_ID_RECORD) {
        Some(raw) if clean || fsync_always => String::from_utf8_lossy(&raw).trim().to_owned(),
        kept => {
            if kept.is_some() {
                tracing::warn!(
                    "the last run did not shut down cleanly and writes were not fsynced one by one: versions from now on use a new actor id"
                );
            }
            let id = format!("{:012x}", fresh_id & 0xffff_ffff_ffff);
            meta.write(NODE_ID_RECORD, id.as_bytes())?;
            id
        }
    };
    meta.write(SHUTDOWN_RECORD, b"running")?;
    Ok(NodeId::new(&format!("{name}#{id}")))
}

/// Records that this run ended cleanly (everything written is synced), so
/// the next start keeps the actor.
pub fn record_clean_shutdown(meta: &dyn MetaStore) -> std::io::Result<()> {
    meta.write(SHUTDOWN_RECORD, b"clean")
}

/// The dot issuer for `actor`, resuming after the lease saved in `meta`.
pub fn dot_issuer(meta: Arc<dyn MetaStore>, actor: NodeId) -> DotIssuer {
    let leased_to = meta
        .read(DOT_LEASE_RECORD)
        .and_then(|raw| String::from_utf8_lossy(&raw).trim().parse::<u64>().ok())
        .unwrap_or(0);
    let persist: LeaseWriter =
        Arc::new(move |to: u64| meta.write(DOT_LEASE_RECORD, to.to_string().as_bytes()));
    DotIssuer::new(actor, leased_to, persist)
}

/// Opens the node's replica view over `store`.
pub async fn local_kv<E: NodeEnv>(
    store: Arc<E::Store>,
    meta: Arc<E::Meta>,
    name: &NodeId,
    fresh_id: u64,
    fsync_always: bool,
    clock: Arc<NodeClock>,
) -> anyhow::Result<LocalKv<E::Store>> {
    let actor =
        actor_on_disk(&*meta, name, fresh_id, fsync_always).context("cannot record the node id")?;
    let dots = dot_issuer(meta, actor);
    LocalKv::new(store, dots, clock)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Loads, joins or founds the cluster state and assembles the node.
pub async fn boot<E: NodeEnv>(
    parts: NodeParts<E>,
    settings: BootSettings,
    max_offset_ms: u64,
    cluster_id_seed: u64,
    stop: &CancellationToken,
) -> anyhow::Result<Arc<ClusterKv<E>>> {
    let me = settings.name.clone();
    let state = match Membership::load(&*parts.meta) {
        Some(state) => {
            tracing::info!(
                cluster = %state.cluster_id,
                members = state.members.len(),
                "rejoining the cluster from saved state"
            );
            state
        }
        None => match &settings.join {
            Some(seed) => {
                let (state, known_before) =
                    join(&parts.transport, &me, &settings.member, seed, stop).await?;
                if known_before {
                    // Same name, empty disk: this node lost data it had
                    // acknowledged. It must not vote in reads until rebuilt.
                    tracing::warn!(
                        "the cluster already knew a node named {me}: this disk was replaced, so the node stays out of read quorums until it is rebuilt"
                    );
                    let meta = parts.meta.clone();
                    E::offload(move || meta.write(REBUILDING_RECORD, b"1"))
                        .await
                        .context("cannot record the rebuilding state")?;
                }
                state
            }
            None => ClusterState::founding(
                format!("{cluster_id_seed:016x}"),
                me.clone(),
                settings.member.clone(),
                settings.partitions,
                settings.quorums.n,
            )?,
        },
    };
    parts.transport.set_cluster(state.cluster_id.clone());
    let meta: Arc<dyn MetaStore> = parts.meta.clone();
    let membership = Arc::new(Membership::new(
        me.clone(),
        state.clone(),
        meta,
        max_offset_ms,
    ));
    if state.members.get(&me) != Some(&settings.member) {
        // Our addresses changed since the state was saved: tell the cluster.
        if let Ok(next) = state.with_member(me.clone(), settings.member.clone()) {
            membership.adopt(next);
        }
    }
    let kv = ClusterKv::new(parts, membership, settings.quorums, settings.timeouts);
    kv.save_membership().await;
    Ok(kv)
}

/// Asks `seed` to admit this node, retrying until it answers (or `stop`).
async fn join<T: Transport<crate::core::Request, crate::core::Response>>(
    rpc: &T,
    me: &NodeId,
    member: &Member,
    seed: &str,
    stop: &CancellationToken,
) -> anyhow::Result<(ClusterState, bool)> {
    // A joining node has no cluster id yet; seeds accept an empty one.
    rpc.set_cluster(String::new());
    loop {
        match ask_to_join(rpc, me, member, seed).await {
            Ok(joined) => {
                tracing::info!(cluster = %joined.0.cluster_id, "joined the cluster through {seed}");
                return Ok(joined);
            }
            Err(JoinError::Refused(e)) => anyhow::bail!(e),
            Err(JoinError::Unreachable(e)) => tracing::warn!("{e}; retrying"),
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => anyhow::bail!("stopped before joining"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Starts the node's background workers: gossip, hinted handoff, the
/// expiry / tombstone sweeper, partition handoff, the Merkle folder and
/// anti-entropy.
pub fn spawn_workers<E: NodeEnv>(
    kv: &Arc<ClusterKv<E>>,
    stop: &CancellationToken,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    set.spawn(super::gc::sweeper(kv.clone(), stop.clone()));
    set.spawn(merkle_index::fold(kv.clone(), stop.clone()));
    set.spawn(anti_entropy::run(kv.clone(), stop.clone()));
    set.spawn(workers::gossip(kv.clone(), stop.clone()));
    set.spawn(workers::handoff(kv.clone(), stop.clone()));
    set.spawn(super::handoff::run(kv.clone(), stop.clone()));
    set
}
