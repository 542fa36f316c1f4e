//! The RPC server loop: accepts connections and runs a [`Handler`] per request.
//!
//! Per connection, one task reads frames and spawns the handler for each
//! request (concurrently, bounded by a semaphore), and one writer task sends
//! the responses in completion order; the client matches them by id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::auth;
use super::frame::{self, Envelope, FrameError, Header, PROTOCOL_VERSION, WireResponse};
use super::rpc::{Blocklist, Handler, RpcConfig};
use super::stream::{AbortOnDrop, FrameReader, write_loop};

/// Accept failures come in bursts (one per backoff while descriptors are
/// short): logged once per quiet window.
static ACCEPT_FAILED: crate::logging::RateLimit = crate::logging::RateLimit::new();

/// After an accept error (e.g. out of file descriptors), wait this long before
/// accepting again instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a refused connection gets to flush its refusal before closing.
const REFUSAL_FLUSH: Duration = Duration::from_secs(1);

/// Connections allowed to be in their handshake at once; more are closed
/// at once, so strangers opening sockets cannot pile up tasks.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// What every connection of one server shares.
struct Ctx<H> {
    config: RpcConfig,
    handler: Arc<H>,
    blocklist: Arc<Blocklist>,
    handshakes: Arc<Semaphore>,
    /// Peers failing the handshake are logged once per quiet window, so a
    /// peer retrying with the wrong secret cannot flood the log.
    auth_failures: crate::logging::RateLimit,
}

/// Serves RPC on `listener` until `stop` is cancelled; on return every
/// connection and in-flight handler of this server has been stopped.
///
/// Every connection first runs the handshake (see [`super::auth`]): a peer
/// that does not prove it holds the cluster secret within
/// [`auth::SERVER_HANDSHAKE_TIMEOUT`] is disconnected without being sent
/// anything else, and logged (rate-limited) if it got as far as a proof.
///
/// Admission, per request envelope from an authenticated peer:
/// - from a peer on `blocklist`: the connection is closed without a reply
///   (simulated partition, see [`Blocklist`]);
/// - other protocol version, or another cluster: replied
///   [`WireResponse::Refused`] naming both cluster ids, then closed;
/// - an envelope with an **empty** cluster is accepted: a node that has not
///   joined yet does not know the cluster id and must still reach a seed. A
///   server whose own `config.cluster` is empty likewise accepts any cluster,
///   since it has none to protect yet;
/// - an undecodable frame is logged and closes that connection.
pub async fn serve<Req, Resp, H>(
    listener: TcpListener,
    config: RpcConfig,
    handler: Arc<H>,
    blocklist: Arc<Blocklist>,
    stop: CancellationToken,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let ctx = Arc::new(Ctx {
        config,
        handler,
        blocklist,
        handshakes: Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES)),
        auth_failures: crate::logging::RateLimit::new(),
    });
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "rpc connection task panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    conns.spawn(serve_conn::<Req, Resp, H>(
                        stream,
                        addr,
                        ctx.clone(),
                        stop.child_token(),
                    ));
                }
                Err(e) => {
                    if let Some(more) = ACCEPT_FAILED.check() {
                        tracing::warn!(error = %e, "rpc accept failed{more}");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    // Abort and await, so a caller that restarts on the same port finds every
    // old connection closed.
    conns.shutdown().await;
}

/// How a connection's read loop ended.
enum End {
    /// Drop everything now.
    Abort,
    /// Let the writer flush what is queued (a refusal), then close.
    Flush,
}

async fn serve_conn<Req, Resp, H>(
    mut stream: TcpStream,
    addr: SocketAddr,
    ctx: Arc<Ctx<H>>,
    stop: CancellationToken,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %e, "rpc set_nodelay failed");
    }
    if !authenticate(&mut stream, addr, &ctx, &stop).await {
        return;
    }
    let (rd, wr) = stream.into_split();
    let max = ctx.config.max_in_flight_per_peer.max(1);
    let (tx, rx) = mpsc::channel::<Bytes>(max);
    let writer_stop = stop.child_token();
    let writer = AbortOnDrop(tokio::spawn(write_loop(wr, rx, writer_stop.clone())));
    let permits = Arc::new(Semaphore::new(max));
    let mut tasks = JoinSet::new();
    let mut reader = FrameReader::new(rd);

    let end = loop {
        // Take the permit before reading: at the limit, frames stay unread and
        // TCP pushes back on the client.
        let permit = tokio::select! {
            _ = stop.cancelled() => break End::Abort,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break End::Abort,
            },
        };
        let payload = tokio::select! {
            _ = stop.cancelled() => break End::Abort,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(%addr, error = %e, "rpc handler panicked");
                }
                continue;
            }
            read = reader.next() => match read {
                Ok(Some(payload)) => payload,
                Ok(None) => break End::Abort,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "rpc read failed, closing connection");
                    break End::Abort;
                }
            },
        };
        let (header, body) = match frame::decode_header(&payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "undecodable rpc frame, closing connection");
                break End::Abort;
            }
        };
        if ctx.blocklist.contains(&header.from) {
            tracing::debug!(%addr, from = %header.from, "dropping rpc from blocked peer");
            break End::Abort;
        }
        if let Some(reason) = refusal(&ctx.config, &header) {
            tracing::warn!(%addr, %reason, "refusing rpc connection");
            let refused: WireResponse<Resp> = WireResponse::Refused(reason);
            if let Ok(bytes) = reply_bytes(&ctx.config, header.id, &refused) {
                // The writer is alive unless the socket died; then there is
                // nobody to tell anyway.
                let _ = tx.send(bytes).await;
            }
            break End::Flush;
        }
        let req: Req = match frame::decode_body(body) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(%addr, from = %header.from, error = %e,
                    "undecodable rpc request, closing connection");
                break End::Abort;
            }
        };
        crate::obs::catalog::handles().rpc_served.increment(1);
        let ctx = ctx.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let resp = ctx.handler.handle(header.from, req).await;
            // A reply that cannot be encoded (too large for a frame) fails
            // this request only: the caller gets a refusal naming the cause
            // instead of waiting out its timeout, and the connection, shared
            // by every call from that peer, stays up.
            let bytes = reply_bytes(&ctx.config, header.id, &WireResponse::Ok(resp))
                .or_else(|e| {
                    let failed: WireResponse<Resp> = WireResponse::Refused(format!(
                        "{} could not encode its response: {e}",
                        ctx.config.node
                    ));
                    reply_bytes(&ctx.config, header.id, &failed)
                })
                .ok();
            if let Some(bytes) = bytes {
                // A send error means the connection is gone: nobody to answer.
                let _ = tx.send(bytes).await;
            }
        });
    };

    // Handlers still running would answer a connection we are closing.
    tasks.shutdown().await;
    drop(tx);
    match end {
        End::Abort => writer_stop.cancel(),
        End::Flush => {
            let mut writer = writer;
            if tokio::time::timeout(REFUSAL_FLUSH, &mut writer.0)
                .await
                .is_err()
            {
                tracing::debug!(%addr, "rpc refusal not flushed in time");
            }
        }
    }
}

/// The server half of the handshake: true once the peer has proven it
/// holds the cluster secret. Until then nothing is read as an envelope and
/// nothing but the handshake's own challenge is written; on failure the
/// caller just drops the socket.
async fn authenticate<H>(
    stream: &mut TcpStream,
    addr: SocketAddr,
    ctx: &Ctx<H>,
    stop: &CancellationToken,
) -> bool {
    let Ok(_slot) = ctx.handshakes.clone().try_acquire_owned() else {
        tracing::debug!(%addr, "too many pending cluster handshakes, closing");
        return false;
    };
    let handshake = tokio::time::timeout(
        auth::SERVER_HANDSHAKE_TIMEOUT,
        auth::server(stream, &ctx.config.auth_key),
    );
    let result = tokio::select! {
        _ = stop.cancelled() => return false,
        r = handshake => r,
    };
    match result {
        Ok(Ok(())) => true,
        Ok(Err((auth::ServerStage::Proof, e))) => {
            metrics::counter!("dynkv_cluster_auth_failures_total").increment(1);
            if let Some(more) = ctx.auth_failures.check() {
                tracing::warn!(
                    "peer at {addr} failed authentication on the cluster port ({e}): it does not hold this cluster's secret; connection closed{more}"
                );
            }
            false
        }
        Ok(Err((auth::ServerStage::Hello, e))) => {
            tracing::debug!(%addr, error = %e, "cluster port: no valid handshake hello, closing");
            false
        }
        Err(_) => {
            tracing::debug!(%addr, "cluster port: handshake timed out, closing");
            false
        }
    }
}

/// Why a request must be refused, if it must.
fn refusal(config: &RpcConfig, header: &Header) -> Option<String> {
    if header.protocol != PROTOCOL_VERSION {
        return Some(format!(
            "protocol mismatch: {} speaks protocol {} (cluster {:?}), {} speaks {} (cluster {:?})",
            header.from,
            header.protocol,
            header.cluster,
            config.node,
            PROTOCOL_VERSION,
            config.cluster.get()
        ));
    }
    let ours = config.cluster.get();
    let accepted = header.cluster.is_empty() || ours.is_empty() || header.cluster == ours;
    (!accepted).then(|| {
        format!(
            "cluster mismatch: {} is in cluster {:?}, {} is in cluster {:?}",
            header.from, header.cluster, config.node, ours
        )
    })
}

/// Encodes a reply envelope; the error is logged here.
fn reply_bytes<Resp: Serialize>(
    config: &RpcConfig,
    id: u64,
    body: &WireResponse<Resp>,
) -> Result<Bytes, FrameError> {
    let envelope = Envelope {
        protocol: PROTOCOL_VERSION,
        cluster: config.cluster.get(),
        from: config.node.clone(),
        id,
        body,
    };
    frame::encode(&envelope)
        .inspect(|bytes| {
            crate::obs::catalog::handles()
                .rpc_reply_bytes
                .increment(bytes.len() as u64);
        })
        .inspect_err(|e| {
            tracing::error!(id, error = %e, "cannot encode rpc response");
        })
}
