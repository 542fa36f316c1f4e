//! The RPC client: one multiplexed connection per peer address.
//!
//! Each peer address gets one lazily opened TCP connection, shared by all
//! concurrent calls: a call registers a oneshot under a fresh request id in
//! the connection's pending map, queues its frame on the connection's writer
//! task, and the connection's reader task routes each response to its id.
//! When the connection breaks every pending call fails at once and the next
//! call reconnects.

use crate::net::rpc::ClusterId;
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::core::NodeId;

use super::auth;
use super::frame::{self, Envelope, FrameError, PROTOCOL_VERSION, WireResponse};
use super::rpc::{Blocklist, RpcConfig, RpcError};
use super::stream::{FrameReader, write_loop};

/// Stands in for an unrepresentable deadline (about 30 years).
const NO_DEADLINE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

type Reply<Resp> = oneshot::Sender<Result<Resp, RpcError>>;

/// Calls sending `Req` and expecting `Resp`, to any number of peers.
///
/// Share it (`Arc<RpcClient>`); all methods take `&self`.
pub struct RpcClient<Req, Resp> {
    config: RpcConfig,
    /// Separate from `config` because a joining node learns it later.
    cluster: ClusterId,
    blocklist: Arc<Blocklist>,
    peers: Mutex<HashMap<SocketAddr, Arc<Peer<Resp>>>>,
    next_id: AtomicU64,
    /// `fn(Req)`: the client only consumes `Req`s, and this keeps it
    /// `Send + Sync` whatever `Req` is.
    _req: PhantomData<fn(Req)>,
}

impl<Req, Resp> RpcClient<Req, Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
{
    /// A client for node `config.node`; share `blocklist` with this node's
    /// [`serve`](super::rpc::serve) (see [`Blocklist`]). Connects nothing yet.
    pub fn new(config: RpcConfig, blocklist: Arc<Blocklist>) -> Self {
        Self {
            cluster: config.cluster.clone(),
            config,
            blocklist,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            _req: PhantomData,
        }
    }

    /// Changes the cluster id stamped on later calls (a joining node learns it
    /// from the seed).
    pub fn set_cluster(&self, cluster: String) {
        self.cluster.set(cluster);
    }

    /// The cluster id currently stamped on calls.
    pub fn cluster(&self) -> String {
        self.cluster.get()
    }

    /// Simulates a partition from the given peers (fault injection): replaces
    /// the shared [`Blocklist`], so it also affects this node's server.
    pub fn set_blocked(&self, peers: BTreeSet<NodeId>) {
        self.blocklist.set(peers);
    }

    /// The shared blocklist.
    pub fn blocklist(&self) -> &Arc<Blocklist> {
        &self.blocklist
    }

    /// Sends `req` to node `to` at `addr` and awaits its response, within
    /// the configured `request_timeout`; see [`call_with_timeout`](Self::call_with_timeout).
    pub async fn call(&self, to: &NodeId, addr: SocketAddr, req: Req) -> Result<Resp, RpcError> {
        self.call_with_timeout(to, addr, req, self.config.request_timeout)
            .await
    }

    /// Sends `req` to node `to` at `addr` and awaits its response.
    ///
    /// The whole call (waiting for an in-flight permit, connecting, sending,
    /// awaiting) is bounded by `timeout`. Dropping the returned future
    /// abandons the call cleanly.
    ///
    /// Failures that concern this call alone leave the shared connection and
    /// the other calls on it alone: a request that cannot be encoded or is
    /// larger than a frame fails with [`RpcError::Encode`] or
    /// [`RpcError::TooLarge`] before anything is written, and a call whose
    /// time runs out while it waits for an in-flight slot fails with
    /// [`RpcError::Overloaded`], not [`RpcError::Timeout`] (see
    /// [`RpcError::is_remote_failure`]).
    pub async fn call_with_timeout(
        &self,
        to: &NodeId,
        addr: SocketAddr,
        req: Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        crate::obs::catalog::handles().rpc_sent.increment(1);
        let result = self.call_inner(to, addr, req, timeout).await;
        if let Err(e) = &result {
            metrics::counter!("dynkv_rpc_failures_total", "kind" => e.kind()).increment(1);
            tracing::debug!(%to, %addr, error = %e, "rpc call failed");
        }
        result
    }

    async fn call_inner(
        &self,
        to: &NodeId,
        addr: SocketAddr,
        req: Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError> {
        if self.blocklist.contains(to) {
            return Err(RpcError::Partitioned);
        }
        // Taken before anything else so encoding a large request counts
        // against the caller's budget too. A timeout too long to represent
        // (Duration::MAX) means "no deadline", not a panic.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + NO_DEADLINE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let envelope = Envelope {
            protocol: PROTOCOL_VERSION,
            cluster: self.cluster(),
            from: self.config.node.clone(),
            id,
            body: req,
        };
        // Encoded here, before the call touches the peer's connection, so a
        // request that cannot go out fails alone.
        let payload = frame::encode(&envelope).map_err(|e| match e {
            FrameError::TooLarge(len) => RpcError::TooLarge(len),
            FrameError::Postcard(e) => RpcError::Encode(e.to_string()),
        })?;
        // The request's own copy can be large; free it before waiting.
        drop(envelope);
        crate::obs::catalog::handles()
            .rpc_request_bytes
            .increment(payload.len() as u64);
        let peer = self.peer(addr);
        // A call that never got a slot never reached the peer: that is this
        // node being overloaded, not the peer being slow.
        let _permit = tokio::time::timeout_at(deadline, peer.permits.acquire())
            .await
            .map_err(|_| RpcError::Overloaded)?
            .map_err(|_| RpcError::Io("peer semaphore closed".into()))?;
        tokio::time::timeout_at(deadline, self.exchange(&peer, addr, id, payload))
            .await
            .unwrap_or(Err(RpcError::Timeout))
    }

    fn peer(&self, addr: SocketAddr) -> Arc<Peer<Resp>> {
        self.peers
            .lock()
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(Peer {
                    permits: Semaphore::new(self.config.max_in_flight_per_peer.max(1)),
                    conn: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }

    async fn exchange(
        &self,
        peer: &Peer<Resp>,
        addr: SocketAddr,
        id: u64,
        payload: Bytes,
    ) -> Result<Resp, RpcError> {
        let conn = peer.connection(addr, &self.config).await?;
        let (reply, answer) = oneshot::channel();
        // Removes the pending entry however this future ends (timeout too).
        let _registered = conn.pending.register(id, reply)?;
        conn.tx
            .send(payload)
            .await
            .map_err(|_| RpcError::Io(format!("connection to {addr} closed")))?;
        answer
            .await
            .unwrap_or_else(|_| Err(RpcError::Io(format!("connection to {addr} closed"))))
    }
}

/// Per peer address: the in-flight bound and the current connection.
struct Peer<Resp> {
    permits: Semaphore,
    /// An async mutex so concurrent callers wait for one connect attempt
    /// instead of each opening a connection.
    conn: tokio::sync::Mutex<Option<Arc<Conn<Resp>>>>,
}

impl<Resp: DeserializeOwned + Send + 'static> Peer<Resp> {
    /// The live connection, opening a new one if there is none or it broke.
    async fn connection(
        &self,
        addr: SocketAddr,
        config: &RpcConfig,
    ) -> Result<Arc<Conn<Resp>>, RpcError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.closed.is_cancelled()
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let mut stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                RpcError::Connect(format!(
                    "{addr}: no connection within {:?}",
                    config.connect_timeout
                ))
            })?
            .map_err(|e| RpcError::Connect(format!("{addr}: {e}")))?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%addr, error = %e, "rpc set_nodelay failed");
        }
        authenticate(&mut stream, addr, config).await?;
        let conn = Arc::new(Conn::start(stream, addr, config.max_in_flight_per_peer));
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Runs the client half of the handshake (see [`auth`]) on a new connection.
///
/// A peer whose proof does not verify, or that closes the connection after
/// ours, does not share this node's secret: that is [`RpcError::Auth`],
/// which callers report as a rejected secret instead of retrying.
async fn authenticate(
    stream: &mut TcpStream,
    addr: SocketAddr,
    config: &RpcConfig,
) -> Result<(), RpcError> {
    let limit = config.connect_timeout.max(auth::SERVER_HANDSHAKE_TIMEOUT);
    match tokio::time::timeout(limit, auth::client(stream, &config.auth_key)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(auth::HandshakeError::BadProof | auth::HandshakeError::Rejected)) => {
            Err(RpcError::Auth(format!(
                "{addr} rejected the cluster secret: the peer's cluster secret differs from this node's (check --cluster-secret / --cluster-secret-file)"
            )))
        }
        Ok(Err(e)) => Err(RpcError::Connect(format!("{addr}: handshake failed: {e}"))),
        Err(_) => Err(RpcError::Connect(format!(
            "{addr}: no handshake within {limit:?}"
        ))),
    }
}

/// One open connection: its writer queue, pending calls and closed flag.
struct Conn<Resp> {
    tx: mpsc::Sender<Bytes>,
    pending: Arc<Pending<Resp>>,
    /// Cancelled once the connection is unusable (either task ended, or the
    /// last handle was dropped); both tasks watch it.
    closed: CancellationToken,
}

impl<Resp: DeserializeOwned + Send + 'static> Conn<Resp> {
    fn start(stream: TcpStream, addr: SocketAddr, queue: usize) -> Self {
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(queue.max(1));
        let pending = Arc::new(Pending(Mutex::new(Some(HashMap::new()))));
        let closed = CancellationToken::new();
        // The tasks hold no `Conn`, so dropping the last `Conn` ends them.
        tokio::spawn(write_loop(wr, rx, closed.clone()));
        tokio::spawn(read_loop(rd, addr, pending.clone(), closed.clone()));
        Self {
            tx,
            pending,
            closed,
        }
    }
}

impl<Resp> Drop for Conn<Resp> {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// Routes responses to pending calls until the connection ends, then fails
/// every call still pending.
async fn read_loop<Resp: DeserializeOwned>(
    rd: OwnedReadHalf,
    addr: SocketAddr,
    pending: Arc<Pending<Resp>>,
    closed: CancellationToken,
) {
    let mut reader = FrameReader::new(rd);
    let reason = loop {
        let read = tokio::select! {
            _ = closed.cancelled() => break "connection closed".to_string(),
            read = reader.next() => read,
        };
        match read {
            Ok(Some(payload)) => {
                if let Err(reason) = deliver(&pending, &payload) {
                    tracing::warn!(%addr, %reason, "bad rpc response, closing connection");
                    break reason;
                }
            }
            Ok(None) => break "connection closed by peer".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    closed.cancel();
    pending.fail_all(&format!("{addr}: {reason}"));
}

/// Hands one response to its caller; `Err` means the connection is unusable.
fn deliver<Resp: DeserializeOwned>(pending: &Pending<Resp>, payload: &[u8]) -> Result<(), String> {
    let (header, body) = frame::decode_header(payload).map_err(|e| e.to_string())?;
    let decoded = frame::decode_body::<WireResponse<Resp>>(body);
    // Absent if the caller already gave up (timeout): drop the reply.
    let reply = pending.take(header.id);
    match decoded {
        Ok(body) => {
            let result = match body {
                WireResponse::Ok(resp) => Ok(resp),
                WireResponse::Refused(reason) => Err(RpcError::Refused(reason)),
            };
            if let Some(reply) = reply {
                // The caller may have just given up; nothing to do then.
                let _ = reply.send(result);
            }
            Ok(())
        }
        Err(e) => {
            let reason = e.to_string();
            if let Some(reply) = reply {
                let _ = reply.send(Err(RpcError::Decode(reason.clone())));
            }
            Err(reason)
        }
    }
}

/// Calls awaiting a response, by request id; `None` once the connection has
/// failed, so a late call cannot register on a dead connection and hang.
struct Pending<Resp>(Mutex<Option<HashMap<u64, Reply<Resp>>>>);

impl<Resp> Pending<Resp> {
    fn register(&self, id: u64, reply: Reply<Resp>) -> Result<Registered<'_, Resp>, RpcError> {
        match self.0.lock().as_mut() {
            Some(map) => {
                map.insert(id, reply);
                Ok(Registered { pending: self, id })
            }
            None => Err(RpcError::Io("connection closed".into())),
        }
    }

    fn take(&self, id: u64) -> Option<Reply<Resp>> {
        self.0.lock().as_mut().and_then(|map| map.remove(&id))
    }

    fn fail_all(&self, reason: &str) {
        let map = self.0.lock().take();
        for (_, reply) in map.into_iter().flatten() {
            let _ = reply.send(Err(RpcError::Io(reason.to_string())));
        }
    }
}

/// Removes a pending entry when the call ends, however it ends.
struct Registered<'a, Resp> {
    pending: &'a Pending<Resp>,
    id: u64,
}

impl<Resp> Drop for Registered<'_, Resp> {
    fn drop(&mut self) {
        drop(self.pending.take(self.id));
    }
}
