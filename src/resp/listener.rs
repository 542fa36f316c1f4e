//! The client port: accepts connections, enforces `maxclients`, and spawns
//! one task per connection. Connections end when the stop token fires.

use super::conn::serve_socket;
use super::session::{ConnectionHandle, ServerState, Session};
use crate::kv::Kv;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

static ACCEPT_FAILED: crate::logging::RateLimit = crate::logging::RateLimit::new();

/// Accepts clients on `listener` until `stop` fires, then waits for the
/// connections to finish their current request. With `tls`, each
/// connection first completes a TLS handshake in its own task.
pub async fn run<K: Kv + 'static>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    kv: Arc<K>,
    server: Arc<ServerState>,
    stop: CancellationToken,
) {
    serve(listener, tls, false, kv, server, stop).await;
}

/// [`run`] for the `--cluster-client-port`: every connection is a Redis
/// Cluster client that found this port in the slot map, so keys this node
/// does not serve are answered `MOVED`.
pub async fn run_redirecting<K: Kv + 'static>(
    listener: TcpListener,
    kv: Arc<K>,
    server: Arc<ServerState>,
    stop: CancellationToken,
) {
    serve(listener, None, true, kv, server, stop).await;
}

async fn serve<K: Kv + 'static>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    cluster_aware: bool,
    kv: Arc<K>,
    server: Arc<ServerState>,
    stop: CancellationToken,
) {
    let local = listener.local_addr().ok();
    let mut connections = JoinSet::new();
    let sampler = tokio::spawn(super::observe::run_sampler(server.clone(), stop.clone()));
    let announcer = tokio::spawn(super::blocking::announce_ready_keys(
        kv.clone(),
        server.clone(),
        stop.clone(),
    ));
    // Only the first listener (of the plain and TLS ports) gets the queue.
    let notifier = tokio::spawn(super::notify::deliver(
        kv.clone(),
        server.clone(),
        stop.clone(),
    ));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        // Reap finished connection tasks so the set does not grow forever.
        while connections.try_join_next().is_some() {}
        let (mut stream, addr) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and similar: back off briefly,
                // and log it once per quiet window, not per attempt.
                if let Some(more) = ACCEPT_FAILED.check() {
                    tracing::warn!("accept failed: {e}{more}");
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if super::protected::refuse(&server, addr) {
            let _ = stream.write_all(super::protected::DENIED.as_bytes()).await;
            continue;
        }
        server
            .stats
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        if server.clients.len() >= server.maxclients {
            server
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            continue;
        }
        let id = server.next_client_id();
        let local_addr = local.unwrap_or(addr);
        let mut session = Session::new(id, addr, local_addr, server.requirepass.is_some());
        session.cluster_aware = cluster_aware;
        server.clients.insert(id, session.describe());
        metrics::gauge!("dynkv_connected_clients").set(server.clients.len() as f64);
        // Its own token, so CLIENT KILL can close it alone.
        let kill = stop.child_token();
        server.connections.insert(
            id,
            ConnectionHandle {
                addr,
                local_addr,
                kill: kill.clone(),
            },
        );
        let (kv, server, tls) = (kv.clone(), server.clone(), tls.clone());
        connections.spawn(async move {
            serve_socket(kv, server.clone(), stream, tls, session, kill).await;
            server.connections.remove(&id);
            server.clients.remove(&id);
            server.pubsub.drop_client(id);
            metrics::gauge!("dynkv_connected_clients").set(server.clients.len() as f64);
        });
    }
    while connections.join_next().await.is_some() {}
    sampler.abort();
    announcer.abort();
    notifier.abort();
}
