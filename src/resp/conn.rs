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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
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

/// Serves one accepted socket: directly, or over TLS once the handshake
/// (run here, in the connection's own task) has succeeded.
pub async fn serve_socket<K: Kv>(
    kv: Arc<K>,
    server: Arc<ServerState>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    session: Session,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve(kv, server, stream, session, stop).await,
        Some(acceptor) => {
            if let Some(stream) = super::tls::handshake(&acceptor, stream, &stop).await {
                serve(kv, server, stream, session, stop).await;
            }
        }
    }
}

/// Writes `output` and flushes it: a TLS stream may keep encrypted bytes
/// buffered after `write_all` (for a TCP stream the flush is free).
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, output: &[u8]) -> std::io::Result<()> {
    stream.write_all(output).await?;
    stream.flush().await
}

/// Serves one client until it quits, disconnects, sends garbage, or the
/// server shuts down. Generic (not boxed) over the stream, so plain TCP
/// pays nothing for TLS existing.
pub async fn serve<K: Kv, S: AsyncRead + AsyncWrite + Unpin>(
    kv: Arc<K>,
    server: Arc<ServerState>,
    mut stream: S,
    mut session: Session,
    stop: CancellationToken,
) {
    let mut decoder = RequestDecoder::default();
    let mut input = BytesMut::with_capacity(16 * 1024);
    let mut output = BytesMut::with_capacity(16 * 1024);
    let mut pending: Vec<QueuedWrite> = Vec::new();
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
                        let _ = send(&mut stream, &output).await;
                        return;
                    }
                    if output.len() >= FLUSH_THRESHOLD {
                        if send(&mut stream, &output).await.is_err() {
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
                    output.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                    let _ = send(&mut stream, &output).await;
                    return;
                }
            }
        }
        if !output.is_empty() {
            if send(&mut stream, &output).await.is_err() {
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
            _ = stop.cancelled() => return,
        }
    }
}
