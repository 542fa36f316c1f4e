//! One client connection: read what has arrived, run every complete request
//! in order, write all their replies with one write, repeat.
//!
//! Batching replies per read is what makes pipelining cheap: a client that
//! sends 16 commands at once gets 16 replies in one syscall.

use super::cmd::{COMMANDS, CommandSpec, dispatch, lookup_indexed};
use super::database::InDb;
use super::observe;
use super::pubsub::Subscriber;
use super::reply::Reply;
use super::request::{RequestDecoder, RequestError};
use super::session::{ServerState, Session};
use crate::kv::{Change, Kv, QueuedWrite};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Instant;
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
/// Anything else is handed back for [`dispatch`].
async fn queue_plain_set<K: Kv>(
    kv: &K,
    server: &ServerState,
    session: &mut Session,
    args: Vec<bytes::Bytes>,
    more_follow: bool,
) -> Result<Queued, Vec<bytes::Bytes>> {
    let [name, key, value] = args.as_slice() else {
        return Err(args);
    };
    // Inside MULTI the SET is queued by the transaction instead; under
    // CLIENT PAUSE the dispatcher holds it back; keyspace notifications are
    // emitted by the dispatcher once the write is done.
    if !session.authenticated
        || session.multi.is_some()
        || !name.eq_ignore_ascii_case(b"set")
        || server.notify.enabled()
        || server.current_pause().is_some()
    {
        return Err(args);
    }
    let change = Change::Write {
        data: value.clone(),
        expires_at_ms: None,
        flags: 0,
    };
    let started = Instant::now();
    let db = InDb::new(kv, session.db);
    // Queued under the atomic gate like any data command, so it cannot
    // land between two commands of a running EXEC or script.
    let shared = server.atomic_gate.read().await;
    let Some(queued) = db.overwrite_queued(key.clone(), change, more_follow).await else {
        return Err(args);
    };
    drop(shared);
    server.stats.record_command();
    session.last_command = "set";
    let (_, spec) = *SET;
    if server.obs.monitors.any() {
        observe::feed_monitors(server, session, spec, &args);
    }
    Ok(Queued {
        write: queued,
        started,
        args,
    })
}

/// SET's place in the command table (its statistics and histogram).
static SET: LazyLock<(usize, &'static CommandSpec)> =
    LazyLock::new(|| lookup_indexed(b"set").unwrap_or_else(|| (usize::MAX, &COMMANDS[0])));

/// A plain SET queued in storage, awaiting its commit.
struct Queued {
    write: QueuedWrite,
    /// When it was read: its duration runs to its commit.
    started: Instant,
    args: Vec<bytes::Bytes>,
}

/// Waits for queued SETs in order and writes their replies.
async fn finish_queued(
    pending: &mut Vec<Queued>,
    output: &mut BytesMut,
    server: &ServerState,
    session: &Session,
) {
    let (idx, spec) = *SET;
    for q in pending.drain(..) {
        let reply = match q.write.await {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::Error(e.to_string()),
        };
        observe::finished(server, session, idx, spec, &q.args, q.started, &reply);
        reply.encode(output, session.resp3);
    }
}

/// After MONITOR: streams every command any client runs until this client
/// leaves (or sends QUIT), falls too far behind, or the server stops.
async fn monitor<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    server: &ServerState,
    mut input: BytesMut,
    stop: &CancellationToken,
) {
    let mut lines = server.obs.monitors.attach();
    let mut decoder = RequestDecoder::default();
    loop {
        // Only QUIT means something now (as in Redis, other commands are
        // not served on a monitor connection).
        while let Ok(Some(args)) = decoder.decode(&mut input) {
            if args
                .first()
                .is_some_and(|n| n.eq_ignore_ascii_case(b"quit"))
            {
                let _ = send(stream, b"+OK\r\n").await;
                return;
            }
        }
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    // Whatever else is queued goes out in the same write.
                    let mut batch = BytesMut::from(&line[..]);
                    while batch.len() < FLUSH_THRESHOLD {
                        let Ok(more) = lines.try_recv() else { break };
                        batch.extend_from_slice(&more);
                    }
                    // A monitor that stops reading must not hold up shutdown.
                    tokio::select! {
                        written = send(stream, &batch) => if written.is_err() {
                            return;
                        },
                        _ = stop.cancelled() => return,
                    }
                    server.obs.net_output.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                None => return,
            },
            read = stream.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    server.obs.net_input.fetch_add(n as u64, Ordering::Relaxed);
                    if input.len() > 64 * 1024 {
                        input.clear();
                    }
                }
            },
            _ = stop.cancelled() => return,
        }
    }
}

/// Sends what `output` holds (counting it in INFO) and empties it;
/// false when the client is gone.
async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    output: &mut BytesMut,
    server: &ServerState,
) -> bool {
    if output.is_empty() {
        return true;
    }
    if send(stream, output).await.is_err() {
        return false;
    }
    server
        .obs
        .net_output
        .fetch_add(output.len() as u64, Ordering::Relaxed);
    output.clear();
    true
}

/// Whether `args` is a blocking list pop (checked by the first letter
/// first: this runs for every request).
fn blocks(args: &[Bytes]) -> bool {
    args.first().is_some_and(|name| {
        name.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'b'))
            && std::str::from_utf8(name)
                .is_ok_and(|n| super::blocking::is_blocking(&n.to_ascii_lowercase()))
    })
}

/// Awaits a blocking command's reply while watching the socket: a client
/// that disconnects (or is killed) while blocked stops waiting, as in
/// Redis. Whatever it pipelines meanwhile is kept for afterwards.
async fn until_answered_or_gone<S: AsyncRead + Unpin>(
    reply: impl std::future::Future<Output = Reply>,
    stream: &mut S,
    input: &mut BytesMut,
    stop: &CancellationToken,
) -> Option<Reply> {
    tokio::pin!(reply);
    loop {
        tokio::select! {
            reply = &mut reply => return Some(reply),
            read = stream.read_buf(input), if input.len() < MAX_PENDING_INPUT => match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
            _ = stop.cancelled() => return None,
        }
    }
}

/// The next Pub/Sub message for this connection; never, for a connection
/// that subscribes to nothing; `None` once it was evicted for falling
/// behind.
async fn next_delivery(subscriber: &mut Option<Subscriber>) -> Option<Reply> {
    let Some(sub) = subscriber else {
        return std::future::pending().await;
    };
    tokio::select! {
        frame = sub.rx.recv() => frame,
        _ = sub.evicted.cancelled() => None,
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

/// Input a blocked client may pipeline before it is no longer read.
const MAX_PENDING_INPUT: usize = 1 << 20;

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
    let mut pending: Vec<Queued> = Vec::new();
    let mut timeout = server.watch_timeout();
    loop {
        loop {
            decoder.set_authenticated(session.authenticated);
            // Per request, so CONFIG SET proto-max-bulk-len reaches
            // connections that are already open.
            decoder.set_max_bulk_len(server.proto_max_bulk_len());
            match decoder.decode(&mut input) {
                Ok(Some(args)) => {
                    // Bytes left in the buffer are the client's next
                    // commands (a pipeline).
                    let more_follow = !input.is_empty();
                    let args = match queue_plain_set(&*kv, &server, &mut session, args, more_follow)
                        .await
                    {
                        Ok(write) => {
                            pending.push(write);
                            if pending.len() >= MAX_QUEUED {
                                finish_queued(&mut pending, &mut output, &server, &session).await;
                            }
                            continue;
                        }
                        Err(args) => args,
                    };
                    finish_queued(&mut pending, &mut output, &server, &session).await;
                    let reply = if blocks(&args) {
                        // Output of earlier pipelined commands goes out
                        // before this one waits.
                        if !flush(&mut stream, &mut output, &server).await {
                            return;
                        }
                        match until_answered_or_gone(
                            dispatch(&*kv, &server, &mut session, args),
                            &mut stream,
                            &mut input,
                            &stop,
                        )
                        .await
                        {
                            Some(reply) => reply,
                            None => return,
                        }
                    } else {
                        dispatch(&*kv, &server, &mut session, args).await
                    };
                    reply.encode(&mut output, session.resp3);
                    if session.monitor {
                        if send(&mut stream, &output).await.is_err() {
                            return;
                        }
                        server.clients.insert(session.id, session.describe());
                        let rest = input.split();
                        monitor(&mut stream, &server, rest, &stop).await;
                        return;
                    }
                    if session.quit {
                        let _ = send(&mut stream, &output).await;
                        return;
                    }
                    if output.len() >= FLUSH_THRESHOLD
                        && !flush(&mut stream, &mut output, &server).await
                    {
                        return;
                    }
                }
                Ok(None) => {
                    finish_queued(&mut pending, &mut output, &server, &session).await;
                    break;
                }
                Err(RequestError::Io(_)) => return,
                Err(e) => {
                    finish_queued(&mut pending, &mut output, &server, &session).await;
                    server.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(client = %session.addr, "{e}");
                    // Through the reply encoder, which keeps it one line.
                    Reply::err(e).encode(&mut output, session.resp3);
                    let _ = send(&mut stream, &output).await;
                    return;
                }
            }
        }
        if !output.is_empty() {
            if !flush(&mut stream, &mut output, &server).await {
                return;
            }
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
                Ok(n) => {
                    server.obs.net_input.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            delivery = next_delivery(&mut session.subscriber) => match delivery {
                Some(frame) => {
                    frame.encode(&mut output, session.resp3);
                    // Whatever else is waiting goes out in the same write.
                    if let Some(sub) = session.subscriber.as_mut() {
                        while output.len() < FLUSH_THRESHOLD {
                            let Ok(more) = sub.rx.try_recv() else { break };
                            more.encode(&mut output, session.resp3);
                        }
                    }
                }
                // Too far behind its messages: closed, as Redis does.
                None => return,
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
