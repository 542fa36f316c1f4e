//! One client connection: read what has arrived, run every complete request
//! in order, write all their replies with one write, repeat.
//!
//! Batching replies per read is what makes pipelining cheap: a client that
//! sends 16 commands at once gets 16 replies in one syscall.

use super::cmd::dispatch;
use super::reply::Reply;
use super::request::{RequestDecoder, RequestError};
use super::session::{ServerState, Session};
use crate::kv::{Change, Kv, QueuedWrite};
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

/// Replies buffered beyond this are written before running more requests,
/// so a huge pipeline does not hold all its replies in memory.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// How stale another connection's CLIENT LIST line may be.
const LIST_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Plain SETs queued ahead of their replies, at most (bounds memory).
const MAX_QUEUED: usize = 1024;

/// A pipeline's plain `SET key value` commands are queued in storage as
/// they are read (each waits for room in storage's queue, not for its
/// commit), so they share one commit; replies still go out in order.
async fn queue_plain_set<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    args: &[bytes::Bytes],
) -> Option<QueuedWrite> {
    let [name, key, value] = args else {
        return None;
    };
    if !session.authenticated || !name.eq_ignore_ascii_case(b"set") {
        return None;
    }
    let change = Change::Write {
        data: value.clone(),
        expires_at_ms: None,
    };
    let queued = kv.overwrite_queued(key.clone(), change).await?;
    server.stats.record_command();
    session.last_command = "set";
    Some(queued)
}

/// Waits for queued SETs in order and writes their replies.
async fn finish_queued(pending: &mut Vec<QueuedWrite>, output: &mut BytesMut, resp3: bool) {
    for write in pending.drain(..) {
        let reply = match write.await {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::Error(e.to_string()),
        };
        reply.encode(output, resp3);
    }
}

/// Resolves once the connection has been idle (waiting for a request) for
/// `timeout` seconds, Redis's setting; never while it is 0. Starts afresh
/// each time it is called (after every read), and follows CONFIG SET.
async fn idle_for_too_long(timeout: &mut tokio::sync::watch::Receiver<u64>) {
    let since = tokio::time::Instant::now();
    loop {
        let secs = *timeout.borrow_and_update();
        if secs == 0 {
            if timeout.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        }
        let deadline = since + std::time::Duration::from_secs(secs);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            changed = timeout.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            }
        }
    }
}

/// Serves one client until it quits, disconnects, sends garbage, or the
/// server shuts down.
pub async fn serve<K: Kv>(
    kv: Arc<K>,
    server: Arc<ServerState>,
    mut stream: TcpStream,
    mut session: Session,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut decoder = RequestDecoder::default();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut pending: Vec<QueuedWrite> = Vec::new();
    let mut timeout = server.watch_timeout();
    loop {
        loop {
            decoder.set_authenticated(session.authenticated);
            // Per request, so CONFIG SET proto-max-bulk-len reaches
            // connections that are already open.
            decoder.set_max_bulk_len(server.proto_max_bulk_len());
            match decoder.decode(&mut input) {
                Ok(Some(args)) => {
                    if let Some(write) = queue_plain_set(&*kv, &server, &mut session, &args).await {
                        pending.push(write);
                        if pending.len() >= MAX_QUEUED {
                            finish_queued(&mut pending, &mut output, session.resp3).await;
                        }
                        continue;
                    }
                    finish_queued(&mut pending, &mut output, session.resp3).await;
                    let reply = dispatch(&*kv, &server, &mut session, args).await;
                    reply.encode(&mut output, session.resp3);
                    if session.quit {
                        let _ = stream.write_all(&output).await;
                        return;
                    }
                    if output.len() >= FLUSH_THRESHOLD {
                        if stream.write_all(&output).await.is_err() {
                            return;
                        }
                        output.clear();
                    }
                }
                Ok(None) => {
                    finish_queued(&mut pending, &mut output, session.resp3).await;
                    break;
                }
                Err(RequestError::Io(_)) => return,
                Err(e) => {
                    finish_queued(&mut pending, &mut output, session.resp3).await;
                    server.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(client = %session.addr, "{e}");
                    // Through the reply encoder, which keeps it one line.
                    Reply::err(e).encode(&mut output, session.resp3);
                    let _ = stream.write_all(&output).await;
                    return;
                }
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
            // CLIENT LIST lines are refreshed lazily: formatting one per
            // reply batch would cost more than the command itself.
            if session.listed_at.elapsed() >= LIST_REFRESH {
                session.listed_at = std::time::Instant::now();
                server.clients.insert(session.id, session.describe());
            }
        }
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 * 1024);
        }
        tokio::select! {
            read = stream.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = idle_for_too_long(&mut timeout) => {
                server.stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %session.addr, "closing idle client");
                return;
            }
            _ = stop.cancelled() => return,
        }
    }
}
