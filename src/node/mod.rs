//! The tokio shell: opens storage, builds the [`crate::kv::Kv`] this node
//! serves, starts the RESP listener, metrics and background workers, and
//! shuts everything down in order on SIGINT/SIGTERM.

pub mod clock;
pub mod cluster;
pub mod env;
pub mod key_counts;
pub mod local;
pub mod secret;

use crate::config::Config;
use crate::core::{Member, NodeId};
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
use env::{DirMeta, MetaStore, Production, SystemClock};
use local::wall_clock_ms;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Test hook: shifts this process's clock (ms) so tests can run a node
/// whose wall clock is wrong. Not a user setting.
const CLOCK_SKEW_ENV: &str = "DYNKV_TEST_CLOCK_SKEW_MS";

/// The IP `--announce-ip` names (resolving a host name, e.g. a container's
/// own name, once); `None` when the flag is not given.
async fn announced_ip(config: &Config) -> anyhow::Result<Option<IpAddr>> {
    let Some(host) = config.announce_ip.as_deref() else {
        return Ok(None);
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let found = tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| format!("cannot resolve --announce-ip {host}"))?
        .map(|a| a.ip())
        .next();
    found
        .map(Some)
        .with_context(|| format!("--announce-ip {host} resolves to no address"))
}

/// Whether `bind` listens on every interface (and so names no one address).
fn is_wildcard(bind: &str) -> bool {
    bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

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
    // Peers dial what we advertise, so a wildcard bind needs `--announce-ip`.
    let announced = announced_ip(&config).await?;
    let advertise = |port: u16| match announced {
        Some(ip) => SocketAddr::new(ip, port).to_string(),
        None => format!("{}:{}", config.bind, port),
    };
    if announced.is_none() && is_wildcard(&config.bind) {
        tracing::warn!(
            "--bind {} is a wildcard and no --announce-ip is set: peers on other hosts cannot reach this node",
            config.bind
        );
    }
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
    check_key_layout(&*meta, &store)?;
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
    local.set_tombstone_grace_ms(config.tombstone_grace_secs.saturating_mul(1000));

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
    let memcache_listener = bind_memcache_port(&config).await?;
    let cluster_client_listener = match config.cluster_client_port {
        0 => None,
        port => Some(bind_client_port(&format!("{}:{port}", config.bind)).await?),
    };
    let cluster_listener = TcpListener::bind(&cluster_addr)
        .await
        .with_context(|| format!("cannot listen on cluster port {cluster_addr}"))?;
    let member = Member {
        client_addr: advertise(client_port),
        cluster_addr: advertise(config.cluster_port),
        cluster_client_addr: (config.cluster_client_port != 0)
            .then(|| advertise(config.cluster_client_port)),
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
        partitions: config.partitions,
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
    // Built even when this node's memcached port is off: other nodes hand
    // it the conditional memcached commands of the keys it serialises.
    let memcache = Arc::new(
        crate::memcache::state::MemcacheState::new(
            config.memcache_max_item_size,
            config.requirepass.clone(),
            memcache_listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map_or(0, |a| a.port()),
            config.maxclients as u64,
        )
        .with_admission({
            let server = server.clone();
            Box::new(move |peer| !crate::resp::protected::refuse(&server, peer))
        }),
    );
    let resp_runner = Arc::new(crate::resp::forward::ForwardedRunner::new(
        Arc::downgrade(&kv),
        server.clone(),
    ));
    kv.set_command_runner(Arc::new(crate::memcache::forward::Runner::new(
        resp_runner,
        Arc::downgrade(&kv),
        memcache.clone(),
    )));
    server.set_proto_max_bulk_len(config.proto_max_bulk_len);
    server.set_tls(config.tls.clone());
    server.set_protected_mode(config.protected_mode);
    server.set_read_repair(config.read_repair);
    server.set_timeout_secs(config.timeout_secs);
    server.notify.set_classes(config.notify_keyspace_events);
    server
        .databases
        .store(config.databases, std::sync::atomic::Ordering::Relaxed);
    server.tombstone_grace_secs.store(
        config.tombstone_grace_secs,
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::info!(
        node = %config.node_name,
        cluster = %cluster_id,
        data_dir = %config.data_dir.display(),
        tls_port = config.tls.port,
        advertised = %advertise(config.cluster_port),
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
    // Redis Cluster clients reach this port through the slot map: its
    // connections are told MOVED for keys served elsewhere.
    let cluster_clients = async {
        if let Some(listener) = cluster_client_listener {
            crate::resp::listener::run_redirecting(
                listener,
                kv.clone(),
                server.clone(),
                stop.clone(),
            )
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
    let memcached = async {
        if let Some(listener) = memcache_listener {
            crate::memcache::run(listener, kv.clone(), memcache.clone(), stop.clone()).await;
        }
    };
    tokio::join!(plain, tls, memcached, cluster_clients);
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

/// The memcached port: a busy default port only costs the memcached front
/// end (another memcached may well run there), a busy named one stops the
/// start like any other port.
async fn bind_memcache_port(config: &Config) -> anyhow::Result<Option<TcpListener>> {
    use crate::config::MemcachePort;
    match config.memcache {
        MemcachePort::Off => Ok(None),
        MemcachePort::Explicit(port) => Ok(Some(
            bind_client_port(&format!("{}:{port}", config.bind)).await?,
        )),
        MemcachePort::Default(port) => {
            match TcpListener::bind(format!("{}:{port}", config.bind)).await {
                Ok(listener) => Ok(Some(listener)),
                Err(e) => {
                    tracing::warn!(
                        "memcached port {port} is not available ({e}); running without the memcached protocol (set --memcache-port to choose another)"
                    );
                    Ok(None)
                }
            }
        }
    }
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

/// Metadata record naming how record keys are hashed onto the ring.
pub const KEY_LAYOUT_RECORD: &str = "key.layout";
/// Ring hash = Redis hash slot, then MD5 bits (see `core::key`).
const KEY_LAYOUT: &str = "slot14-md5";

/// Refuses a data dir written by a build that hashed keys differently:
/// its records would sit at other ring positions and read as missing.
fn check_key_layout(meta: &dyn MetaStore, store: &FjallStore) -> anyhow::Result<()> {
    use crate::store::ReplicaStore as _;
    match meta.read(KEY_LAYOUT_RECORD) {
        Some(raw) if raw == KEY_LAYOUT.as_bytes() => Ok(()),
        Some(raw) => anyhow::bail!(
            "this data dir uses key layout '{}', this build reads '{KEY_LAYOUT}': start it with the dynkv version that wrote it",
            String::from_utf8_lossy(&raw)
        ),
        None if store.approximate_len() > 0 => anyhow::bail!(
            "this data dir was written by an older dynkv that placed keys by MD5 only; this build places them by Redis hash slot: dump and reload the data, or start it with the version that wrote it"
        ),
        None => meta
            .write(KEY_LAYOUT_RECORD, KEY_LAYOUT.as_bytes())
            .context("cannot record the key layout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn config(args: &[&str]) -> Config {
        let cli = crate::config::Cli::try_parse_from(args).expect("flags parse");
        Config::resolve(cli).expect("config resolves")
    }

    #[tokio::test]
    async fn announce_ip_is_taken_as_given_or_resolved() {
        let plain = config(&["dynkv", "--bind", "0.0.0.0"]);
        assert_eq!(announced_ip(&plain).await.ok(), Some(None));
        assert!(is_wildcard(&plain.bind));
        assert!(!is_wildcard("127.0.0.1"));

        let ip = config(&["dynkv", "--bind", "0.0.0.0", "--announce-ip", "10.1.2.3"]);
        let expected: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(announced_ip(&ip).await.ok(), Some(Some(expected)));

        // A name (as a container's own host name) is resolved to its IP.
        let name = config(&["dynkv", "--announce-ip", "localhost"]);
        let resolved = announced_ip(&name).await.ok().flatten();
        assert!(resolved.is_some_and(|ip| ip.is_loopback()), "{resolved:?}");

        let bad = config(&["dynkv", "--announce-ip", "no-such-host.invalid"]);
        assert!(announced_ip(&bad).await.is_err());
    }
}
