//! The tokio shell: opens storage, builds the [`crate::kv::Kv`] this node
//! serves, starts the RESP listener, metrics and background workers, and
//! shuts everything down in order on SIGINT/SIGTERM.

pub mod cluster;
pub mod local;

use crate::config::Config;
use crate::core::NodeId;
use crate::core::{ClusterState, DEFAULT_PARTITIONS, Member, Request, Response};
use crate::net::{Blocklist, RpcClient, RpcConfig};
use crate::resp::session::ServerState;
use crate::store::FsyncPolicy;
use crate::store::fjall_store::FjallStore;
use crate::store::hints::HintLimits;
use anyhow::Context as _;
use cluster::membership::Membership;
use cluster::service::Service;
use cluster::{ClusterKv, Quorums, workers};
use local::{LocalKv, wall_clock_ms};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs a node until SIGINT/SIGTERM or `stop` fires.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let store = Arc::new(
        FjallStore::open(&config.data_dir, config.fsync)
            .with_context(|| format!("opening storage in {}", config.data_dir.display()))?,
    );
    let hints = Arc::new(store.hints(HintLimits::default())?);
    let me = NodeId::new(&config.node_name);
    let client_addr = format!("{}:{}", config.bind, config.port);
    let cluster_addr = format!("{}:{}", config.bind, config.cluster_port);
    let incarnation = next_incarnation(&config.data_dir)?;
    let actor = NodeId::new(&format!("{}#{incarnation}", config.node_name));
    let local = Arc::new(LocalKv::new(store, actor).await?);

    // Bind both ports before joining: the seed gossips to us right away.
    let listener = TcpListener::bind(&client_addr)
        .await
        .with_context(|| format!("cannot listen on {client_addr} (is another server running?)"))?;
    let cluster_listener = TcpListener::bind(&cluster_addr)
        .await
        .with_context(|| format!("cannot listen on cluster port {cluster_addr}"))?;
    let member = Member {
        client_addr: client_addr.clone(),
        cluster_addr: cluster_addr.clone(),
    };
    let blocklist = Arc::new(Blocklist::new());
    let state = match Membership::load(&config.data_dir) {
        Some(state) => {
            tracing::info!(
                cluster = %state.cluster_id,
                members = state.members.len(),
                "rejoining the cluster from saved state"
            );
            state
        }
        None => match &config.join {
            Some(seed) => join(&me, &member, seed, blocklist.clone(), &stop).await?,
            None => ClusterState::founding(
                format!("{:016x}", rand::random::<u64>()),
                me.clone(),
                member.clone(),
                DEFAULT_PARTITIONS,
                config.n,
            )?,
        },
    };
    let membership = Arc::new(Membership::new(me.clone(), state.clone(), &config.data_dir));
    if state.members.get(&me) != Some(&member) {
        // Our addresses changed since the state was saved: tell the cluster.
        if let Ok(next) = state.with_member(me.clone(), member.clone()) {
            membership.adopt(next);
        }
    }
    let rpc_config = RpcConfig::new(state.cluster_id.clone(), me.clone());
    let rpc = RpcClient::new(rpc_config.clone(), blocklist.clone());
    let kv = ClusterKv::new(
        local.clone(),
        hints,
        membership,
        rpc,
        blocklist.clone(),
        Quorums {
            n: config.n,
            r: config.r,
            w: config.w,
        },
        Duration::from_secs(1),
    );

    if config.metrics_port != 0 {
        let metrics_addr: SocketAddr = format!("{}:{}", config.bind, config.metrics_port)
            .parse()
            .with_context(|| {
            format!(
                "bad metrics address {}:{}",
                config.bind, config.metrics_port
            )
        })?;
        if let Err(e) = metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(metrics_addr)
            .install()
        {
            tracing::warn!("Prometheus exporter not started on {metrics_addr}: {e}");
        }
    }
    let appendfsync = match config.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Everysec => "everysec",
        FsyncPolicy::No => "no",
    };
    let server = Arc::new(ServerState::new(
        config.requirepass.clone(),
        config.maxclients,
        config.port,
        config.data_dir.display().to_string(),
        appendfsync.into(),
        wall_clock_ms() / 1000,
        stop.clone(),
    ));
    tracing::info!(
        node = %config.node_name,
        cluster = %state.cluster_id,
        data_dir = %config.data_dir.display(),
        "dynkv ready to accept connections on {client_addr} (cluster port {cluster_addr})"
    );

    let mut workers = tokio::task::JoinSet::new();
    workers.spawn(local.clone().run_sweeper(stop.clone()));
    workers.spawn(crate::net::serve(
        cluster_listener,
        rpc_config,
        Arc::new(Service(kv.clone())),
        blocklist,
        stop.clone(),
    ));
    workers.spawn(workers::gossip(kv.clone(), stop.clone()));
    workers.spawn(workers::handoff(kv.clone(), stop.clone()));
    let signals = tokio::spawn(cancel_on_signal(stop.clone()));
    crate::resp::listener::run(listener, kv.clone(), server, stop.clone()).await;
    stop.cancel();
    while workers.join_next().await.is_some() {}
    signals.abort();
    crate::kv::Kv::sync(&*kv)
        .await
        .context("flushing storage at shutdown")?;
    tracing::info!("dynkv stopped; storage flushed");
    Ok(())
}

/// Bumps and durably records this node's incarnation number, so version
/// dots issued after a restart never repeat ones issued before a crash.
fn next_incarnation(data_dir: &std::path::Path) -> anyhow::Result<u64> {
    use std::io::Write as _;
    let path = data_dir.join("incarnation");
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let next = previous + 1;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(next.to_string().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(next)
}

/// Asks `seed` to admit this node, retrying until it answers (or `stop`).
async fn join(
    me: &NodeId,
    member: &Member,
    seed: &str,
    blocklist: Arc<Blocklist>,
    stop: &CancellationToken,
) -> anyhow::Result<ClusterState> {
    let rpc: RpcClient<Request, Response> =
        RpcClient::new(RpcConfig::new(String::new(), me.clone()), blocklist);
    let seed_id = NodeId::new(seed);
    loop {
        let addr = tokio::net::lookup_host(seed)
            .await
            .ok()
            .and_then(|mut a| a.next());
        if let Some(addr) = addr {
            let req = Request::Join {
                node: me.clone(),
                member: member.clone(),
            };
            match rpc.call(&seed_id, addr, req).await {
                Ok(Response::State(state)) => {
                    tracing::info!(cluster = %state.cluster_id, "joined the cluster through {seed}");
                    return Ok(state);
                }
                Ok(Response::Error(e)) => anyhow::bail!("{seed} refused to admit this node: {e}"),
                Ok(_) => anyhow::bail!("{seed} answered the join with something unexpected"),
                Err(e) => tracing::warn!("cannot reach seed {seed} yet: {e}; retrying"),
            }
        } else {
            tracing::warn!("cannot resolve seed {seed}; retrying");
        }
        tokio::select! {
            _ = stop.cancelled() => anyhow::bail!("stopped before joining"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn cancel_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                    _ = stop.cancelled() => return,
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
    stop.cancel();
}
