//! The tokio shell: opens storage, builds the [`crate::kv::Kv`] this node
//! serves, starts the RESP listener, metrics and background workers, and
//! shuts everything down in order on SIGINT/SIGTERM.

pub mod clock;
pub mod cluster;
pub mod env;
pub mod local;
pub mod secret;

use crate::config::Config;
use crate::core::{DEFAULT_PARTITIONS, Member, NodeId};
use crate::net::{Blocklist, RpcClient, RpcConfig};
use crate::resp::session::ServerState;
use crate::store::FsyncPolicy;
use crate::store::fjall_store::FjallStore;
use crate::store::hints::HintLimits;
use anyhow::Context as _;
use clock::NodeClock;
use cluster::boot::{BootSettings, boot, local_kv, spawn_workers};
use cluster::service::Service;
use cluster::{NodeParts, Quorums, Timeouts};
use env::{DirMeta, Production, SystemClock};
use local::wall_clock_ms;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Test hook: shifts this process's clock (ms) so tests can run a node
/// whose wall clock is wrong. Not a user setting.
const CLOCK_SKEW_ENV: &str = "DYNKV_TEST_CLOCK_SKEW_MS";

/// Runs a node until SIGINT/SIGTERM or `stop` fires.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    // First, so every metric handle made from here on reaches the exporter.
    if config.metrics_port != 0 {
        let metrics_addr: SocketAddr = format!("{}:{}", config.bind, config.metrics_port)
            .parse()
            .with_context(|| {
            format!(
                "bad metrics address {}:{}",
                config.bind, config.metrics_port
            )
        })?;
        if let Err(e) = crate::obs::start_exporter(metrics_addr, stop.clone()).await {
            tracing::warn!("Prometheus exporter not started on {metrics_addr}: {e:#}");
        }
    }
    // First, so a bad certificate or key fails before storage is touched.
    let tls_acceptor = match config.tls.port {
        0 => None,
        _ => Some(crate::resp::tls::acceptor(&config.tls)?),
    };
    let store = Arc::new(
        FjallStore::open_with_cached_files(
            &config.data_dir,
            config.fsync,
            config.storage_cached_files,
        )
        .with_context(|| format!("opening storage in {}", config.data_dir.display()))?,
    );
    let hint_limits = HintLimits {
        max_per_target: config.hint_max_per_target,
        ttl_ms: config.hint_ttl_secs.saturating_mul(1000),
    };
    let hints = Arc::new(store.hints(hint_limits)?);
    let me = NodeId::new(&config.node_name);
    // With plain TCP off (`--port 0`), the TLS port is the one announced.
    let client_port = match config.port {
        0 => config.tls.port,
        port => port,
    };
    let client_addr = format!("{}:{}", config.bind, client_port);
    let cluster_addr = format!("{}:{}", config.bind, config.cluster_port);
    let skew_ms = std::env::var(CLOCK_SKEW_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    if skew_ms != 0 {
        tracing::warn!("{CLOCK_SKEW_ENV}={skew_ms}: this node's clock is shifted (test hook)");
    }
    let clock = Arc::new(NodeClock::new(
        Arc::new(SystemClock::new(skew_ms)),
        config.max_offset_ms,
    ));
    let meta = Arc::new(DirMeta::new(config.data_dir.clone()));
    // Before anything is recorded: a node that cannot have the right secret
    // stops here with the reason, instead of joining nobody.
    let saved_state = cluster::membership::Membership::load(&*meta);
    let secret = secret::resolve(secret::SecretSources {
        given: config.cluster_secret.clone(),
        data_dir: &config.data_dir,
        join: config.join.is_some(),
        saved_state: saved_state.as_ref(),
    })?;
    let local = Arc::new(
        local_kv::<Production>(
            store,
            meta.clone(),
            &me,
            rand::random::<u64>(),
            config.fsync == FsyncPolicy::Always,
            clock,
        )
        .await?,
    );

    // Bind both ports before joining: the seed gossips to us right away.
    let listener = match config.port {
        0 => None,
        _ => Some(bind_client_port(&client_addr).await?),
    };
    let tls_listener = match &tls_acceptor {
        Some(acceptor) => {
            let addr = format!("{}:{}", config.bind, config.tls.port);
            Some((bind_client_port(&addr).await?, acceptor.clone()))
        }
        None => None,
    };
    let cluster_listener = TcpListener::bind(&cluster_addr)
        .await
        .with_context(|| format!("cannot listen on cluster port {cluster_addr}"))?;
    let member = Member {
        client_addr: client_addr.clone(),
        cluster_addr: cluster_addr.clone(),
    };
    let blocklist = Arc::new(Blocklist::new());
    let rpc_config = RpcConfig::new(String::new(), me.clone(), &secret);
    let rpc = RpcClient::new(rpc_config.clone(), blocklist.clone());
    let parts = NodeParts::<Production> {
        local: local.clone(),
        hints,
        transport: rpc,
        meta,
        blocklist: blocklist.clone(),
        seed: rand::random(),
    };
    let settings = BootSettings {
        name: me.clone(),
        member,
        join: config.join.clone(),
        partitions: DEFAULT_PARTITIONS,
        quorums: Quorums {
            n: config.n,
            r: config.r,
            w: config.w,
        },
        timeouts: Timeouts::from_quorum(Duration::from_secs(1)),
    };
    let kv = boot(parts, settings, config.max_offset_ms, rand::random(), &stop).await?;
    kv.set_read_repair(config.read_repair);
    kv.set_ae_interval(Duration::from_secs(config.anti_entropy_interval_secs));
    // The RPC server checks the same cluster id the client stamps.
    rpc_config
        .cluster
        .set(kv.membership().with(|s| s.cluster_id.clone()));
    let cluster_id = kv.membership().with(|s| s.cluster_id.clone());

    let appendfsync = match config.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Everysec => "everysec",
        FsyncPolicy::No => "no",
    };
    let server = Arc::new(
        ServerState::new(
            config.requirepass.clone(),
            config.maxclients,
            config.port,
            config.data_dir.display().to_string(),
            appendfsync.into(),
            wall_clock_ms() / 1000,
            stop.clone(),
        )
        .with_context_key(secret.context_key()),
    );
    server.set_proto_max_bulk_len(config.proto_max_bulk_len);
    server.set_tls(config.tls.clone());
    server.set_protected_mode(config.protected_mode);
    server.set_read_repair(config.read_repair);
    server.set_timeout_secs(config.timeout_secs);
    tracing::info!(
        node = %config.node_name,
        cluster = %cluster_id,
        data_dir = %config.data_dir.display(),
        tls_port = config.tls.port,
        "dynkv ready to accept connections on {client_addr} (cluster port {cluster_addr})"
    );

    let mut workers = spawn_workers(&kv, &stop);
    workers.spawn(crate::net::serve(
        cluster_listener,
        rpc_config,
        Arc::new(Service(kv.clone())),
        blocklist,
        stop.clone(),
    ));
    let signals = tokio::spawn(cancel_on_signal(stop.clone()));
    // Plain and TLS clients share one ServerState: one registry, so
    // CLIENT LIST, INFO and maxclients see both.
    let plain = async {
        if let Some(listener) = listener {
            crate::resp::listener::run(listener, None, kv.clone(), server.clone(), stop.clone())
                .await;
        }
    };
    let tls = async {
        if let Some((listener, acceptor)) = tls_listener {
            crate::resp::listener::run(
                listener,
                Some(acceptor),
                kv.clone(),
                server.clone(),
                stop.clone(),
            )
            .await;
        }
    };
    tokio::join!(plain, tls);
    stop.cancel();
    while workers.join_next().await.is_some() {}
    signals.abort();
    crate::kv::Kv::sync(&*kv)
        .await
        .context("flushing storage at shutdown")?;
    let meta = DirMeta::new(config.data_dir.clone());
    if let Err(e) = cluster::boot::record_clean_shutdown(&meta) {
        tracing::warn!("cannot record the clean shutdown: {e}");
    }
    tracing::info!("dynkv stopped; storage flushed");
    Ok(())
}

async fn bind_client_port(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another server running?)"))
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
