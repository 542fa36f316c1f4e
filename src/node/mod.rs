//! The tokio shell: opens storage, builds the [`crate::kv::Kv`] this node
//! serves, starts the RESP listener, metrics and background workers, and
//! shuts everything down in order on SIGINT/SIGTERM.

pub mod local;

use crate::config::Config;
use crate::core::NodeId;
use crate::resp::session::ServerState;
use crate::store::FsyncPolicy;
use crate::store::fjall_store::FjallStore;
use anyhow::Context as _;
use local::{LocalKv, wall_clock_ms};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Runs a node until SIGINT/SIGTERM or `stop` fires.
pub async fn run(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let store = Arc::new(
        FjallStore::open(&config.data_dir, config.fsync)
            .with_context(|| format!("opening storage in {}", config.data_dir.display()))?,
    );
    let client_addr = format!("{}:{}", config.bind, config.port);
    let kv = Arc::new(LocalKv::new(
        store,
        NodeId::new(&config.node_name),
        client_addr.clone(),
    )?);

    let listener = TcpListener::bind(&client_addr)
        .await
        .with_context(|| format!("cannot listen on {client_addr} (is another server running?)"))?;
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
        data_dir = %config.data_dir.display(),
        "dynkv ready to accept connections on {client_addr}"
    );

    let sweeper = tokio::spawn(kv.clone().run_sweeper(stop.clone()));
    let signals = tokio::spawn(cancel_on_signal(stop.clone()));
    crate::resp::listener::run(listener, kv.clone(), server, stop.clone()).await;
    stop.cancel();
    let _ = sweeper.await;
    signals.abort();
    crate::kv::Kv::sync(&*kv)
        .await
        .context("flushing storage at shutdown")?;
    tracing::info!("dynkv stopped; storage flushed");
    Ok(())
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
