//! The memcached front end: the text protocol on its own port, over the
//! same [`Kv`] facade (and so the same replicated keyspace) as the RESP
//! front end.
//!
//! A memcached `set` is a Redis string (its client flags kept beside the
//! bytes); `incr` is the replicated counter INCR uses; `gets` hands out a
//! cas unique that is a fingerprint of the key's causal context, so a
//! `cas` succeeds exactly when nothing was written since (siblings
//! included: one cas covers them all, and a successful cas resolves them).

pub mod codec;
pub mod command;
pub mod conn;
pub mod exptime;
pub mod forward;
pub mod lease;
pub mod meta;
pub mod meta_ops;
pub mod ops;
pub mod state;
pub mod stats;

use crate::kv::Kv;
use state::MemcacheState;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What `version` answers: the memcached protocol level served, then this
/// server (clients parse the leading numbers).
pub const VERSION: &str = concat!("1.6.0-dynkv-", env!("CARGO_PKG_VERSION"));

/// The reply to a client refused by protected mode before it is closed.
pub const PROTECTED: &str = "SERVER_ERROR protected mode: without a password only loopback clients are accepted (see --protected-mode)\r\n";

/// Accepts memcached clients on `listener` until `stop` fires.
pub async fn run<K: Kv + 'static>(
    listener: TcpListener,
    kv: Arc<K>,
    state: Arc<MemcacheState>,
    stop: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let (mut stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("memcached accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if !state.admits(peer) {
            // The RESP port's protected mode holds here too: without a
            // password, only loopback clients.
            let _ = stream.write_all(PROTECTED.as_bytes()).await;
            continue;
        }
        let stats = &state.stats;
        if stats.curr_connections.load(Ordering::Relaxed) >= state.max_connections {
            let _ = stream
                .write_all(b"SERVER_ERROR Too many open connections\r\n")
                .await;
            continue;
        }
        stats.curr_connections.fetch_add(1, Ordering::Relaxed);
        stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let (kv, state, stop) = (kv.clone(), state.clone(), stop.clone());
        connections.spawn(async move {
            conn::serve(kv, state.clone(), stream, stop).await;
            state.stats.curr_connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
    while connections.join_next().await.is_some() {}
}
