//! Node-to-node RPC over real loopback TCP: multiplexing, timeouts, refusal,
//! reconnect, fault injection, garbage input, the in-flight bound, and
//! oversized messages failing only their own call.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dynkv::core::{ClusterSecret, NodeId};
use dynkv::net::{
    Blocklist, Handler, MAX_FRAME_LEN, RpcClient, RpcConfig, RpcError, Transport, serve,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Req {
    Echo(Vec<u8>),
    Sleep(u64),
    Add(u64, u64),
    /// Carries a blob (`Bytes` encodes as one byte string, so a huge one is
    /// cheap to build and encode).
    Blob(Bytes),
    /// Asks for a blob of this many bytes back.
    Give(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Resp {
    Echo(Vec<u8>),
    Slept,
    Sum(u64),
    Len(usize),
    Blob(Bytes),
}

struct TestHandler;

impl Handler<Req, Resp> for TestHandler {
    async fn handle(&self, _from: NodeId, req: Req) -> Resp {
        match req {
            Req::Echo(bytes) => Resp::Echo(bytes),
            Req::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Resp::Slept
            }
            Req::Add(a, b) => Resp::Sum(a + b),
            Req::Blob(bytes) => Resp::Len(bytes.len()),
            Req::Give(len) => Resp::Blob(Bytes::from(vec![7u8; len])),
        }
    }
}

type Client = RpcClient<Req, Resp>;

const CLUSTER: &str = "test-cluster";

fn secret() -> ClusterSecret {
    ClusterSecret::new("net-rpc-test-secret").expect("secret")
}

/// A raw connection that has passed the handshake, for sending hand-made
/// frames past it.
async fn authed(addr: SocketAddr) -> TcpStream {
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    dynkv::net::auth::client(&mut raw, &secret().handshake_key())
        .await
        .expect("handshake");
    raw
}

fn server_id() -> NodeId {
    NodeId::new("server")
}

fn client_id() -> NodeId {
    NodeId::new("client")
}

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
    blocklist: Arc<Blocklist>,
}

impl Server {
    async fn start(bind: &str, cluster: &str) -> Server {
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let stop = CancellationToken::new();
        let blocklist = Arc::new(Blocklist::new());
        let config = RpcConfig::new(cluster, server_id(), &secret());
        let task = tokio::spawn(serve::<Req, Resp, _>(
            listener,
            config,
            Arc::new(TestHandler),
            blocklist.clone(),
            stop.clone(),
        ));
        Server {
            addr,
            stop,
            task,
            blocklist,
        }
    }

    async fn kill(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve stops promptly")
            .expect("serve does not panic");
    }
}

fn client_with(cluster: &str, tweak: impl FnOnce(&mut RpcConfig)) -> Client {
    let mut config = RpcConfig::new(cluster, client_id(), &secret());
    tweak(&mut config);
    RpcClient::new(config, Arc::new(Blocklist::new()))
}

fn client() -> Client {
    client_with(CLUSTER, |_| {})
}

#[tokio::test]
async fn thousand_concurrent_calls_over_one_client() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = Arc::new(client_with(CLUSTER, |c| {
        c.request_timeout = Duration::from_secs(10);
    }));
    let mut calls = Vec::new();
    for i in 0..1000u64 {
        let client = client.clone();
        let addr = server.addr;
        calls.push(tokio::spawn(async move {
            let sum = client.call(&server_id(), addr, Req::Add(i, 1000)).await;
            let echo = client
                .call(&server_id(), addr, Req::Echo(i.to_le_bytes().to_vec()))
                .await;
            (i, sum, echo)
        }));
    }
    for call in calls {
        let (i, sum, echo) = call.await.expect("task");
        assert_eq!(sum, Ok(Resp::Sum(i + 1000)));
        assert_eq!(echo, Ok(Resp::Echo(i.to_le_bytes().to_vec())));
    }
    server.kill().await;
}

#[tokio::test]
async fn timeout_then_same_client_still_works() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client_with(CLUSTER, |c| {
        c.request_timeout = Duration::from_millis(200);
    });
    let started = Instant::now();
    let slow = client
        .call(&server_id(), server.addr, Req::Sleep(2000))
        .await;
    assert_eq!(slow, Err(RpcError::Timeout));
    assert!(started.elapsed() < Duration::from_millis(1500));
    let fast = client.call(&server_id(), server.addr, Req::Add(2, 3)).await;
    assert_eq!(fast, Ok(Resp::Sum(5)));
    server.kill().await;
}

#[tokio::test]
async fn wrong_cluster_is_refused_naming_both_ids() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client_with("other-cluster", |_| {});
    let result = client.call(&server_id(), server.addr, Req::Add(1, 1)).await;
    match result {
        Err(RpcError::Refused(reason)) => {
            assert!(reason.contains(CLUSTER), "{reason}");
            assert!(reason.contains("other-cluster"), "{reason}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    // Learning the right cluster id later fixes it.
    client.set_cluster(CLUSTER.to_string());
    let result = client.call(&server_id(), server.addr, Req::Add(1, 1)).await;
    assert_eq!(result, Ok(Resp::Sum(2)));
    server.kill().await;
}

#[tokio::test]
async fn empty_cluster_is_accepted_for_joining_nodes() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client_with("", |_| {});
    let result = client.call(&server_id(), server.addr, Req::Add(4, 4)).await;
    assert_eq!(result, Ok(Resp::Sum(8)));
    server.kill().await;
}

#[tokio::test]
async fn server_restart_on_same_port_reconnects() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let addr = server.addr;
    let client = Arc::new(client_with(CLUSTER, |c| {
        c.request_timeout = Duration::from_secs(5);
    }));
    assert_eq!(
        client.call(&server_id(), addr, Req::Add(1, 2)).await,
        Ok(Resp::Sum(3))
    );

    // A call in flight while the server dies fails, and quickly.
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client.call(&server_id(), addr, Req::Sleep(3000)).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill().await;
    let (result, took) = in_flight.await.expect("task");
    assert!(
        matches!(result, Err(RpcError::Io(_)) | Err(RpcError::Connect(_))),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");

    // With nothing listening, calls fail fast too.
    let started = Instant::now();
    let result = client.call(&server_id(), addr, Req::Add(1, 2)).await;
    assert!(
        matches!(result, Err(RpcError::Io(_)) | Err(RpcError::Connect(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let server = Server::start(&addr.to_string(), CLUSTER).await;
    assert_eq!(server.addr, addr);
    assert_eq!(
        client.call(&server_id(), addr, Req::Add(2, 2)).await,
        Ok(Resp::Sum(4))
    );
    server.kill().await;
}

#[tokio::test]
async fn blocked_peer_is_partitioned_both_ways() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client();

    client.set_blocked(BTreeSet::from([server_id()]));
    let started = Instant::now();
    let result = client.call(&server_id(), server.addr, Req::Add(1, 1)).await;
    assert_eq!(result, Err(RpcError::Partitioned));
    assert!(started.elapsed() < Duration::from_millis(100));

    client.set_blocked(BTreeSet::new());
    let result = client.call(&server_id(), server.addr, Req::Add(1, 1)).await;
    assert_eq!(result, Ok(Resp::Sum(2)));

    // The server side drops requests from a peer it blocks: the call fails
    // (connection closed) or times out, but never hangs.
    server.blocklist.set(BTreeSet::from([client_id()]));
    let started = Instant::now();
    let result = client.call(&server_id(), server.addr, Req::Add(1, 1)).await;
    assert!(
        matches!(result, Err(RpcError::Io(_)) | Err(RpcError::Timeout)),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    server.blocklist.set(BTreeSet::new());
    let result = client.call(&server_id(), server.addr, Req::Add(1, 1)).await;
    assert_eq!(result, Ok(Resp::Sum(2)));
    server.kill().await;
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client();
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Add(1, 1)).await,
        Ok(Resp::Sum(2))
    );

    // A well-formed length prefix around bytes that are no envelope.
    let mut raw = authed(server.addr).await;
    let junk = [0xffu8; 16];
    raw.write_all(&(junk.len() as u32).to_be_bytes())
        .await
        .expect("write");
    raw.write_all(&junk).await.expect("write");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
        .await
        .expect("server closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "server must close without replying");

    // A length prefix beyond the frame limit.
    let mut raw = authed(server.addr).await;
    raw.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    let n = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
        .await
        .expect("server closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0);

    // The existing client connection and new ones are unaffected.
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Add(2, 2)).await,
        Ok(Resp::Sum(4))
    );
    assert_eq!(
        self::client()
            .call(&server_id(), server.addr, Req::Echo(b"hi".to_vec()))
            .await,
        Ok(Resp::Echo(b"hi".to_vec()))
    );
    server.kill().await;
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_and_nothing_is_served() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let other = ClusterSecret::new("another secret").expect("secret");
    let config = RpcConfig::new("", client_id(), &other);
    let intruder: Client = RpcClient::new(config, Arc::new(Blocklist::new()));
    let result = intruder
        .call(&server_id(), server.addr, Req::Add(1, 1))
        .await;
    match &result {
        Err(e @ RpcError::Auth(reason)) => {
            assert!(reason.contains("rejected the cluster secret"), "{reason}");
            assert!(e.surely_not_delivered());
            assert!(!e.is_remote_failure());
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    // A stranger that skips the handshake and sends a frame gets nothing.
    let mut raw = TcpStream::connect(server.addr).await.expect("connect");
    let frame = [0u8, 0, 0, 4, 1, 0, 0, 0];
    raw.write_all(&frame).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "server answered a stranger: {got:?}");
    // A peer that connects and says nothing is cut off (no slowloris).
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(15), idle.read(&mut [0u8; 8]))
        .await
        .expect("server closes an idle handshake")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // The right secret still works.
    assert_eq!(
        client()
            .call(&server_id(), server.addr, Req::Add(1, 1))
            .await,
        Ok(Resp::Sum(2))
    );
    server.kill().await;
}

#[tokio::test]
async fn in_flight_calls_are_bounded_per_peer() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = Arc::new(client_with(CLUSTER, |c| {
        c.max_in_flight_per_peer = 2;
        c.request_timeout = Duration::from_secs(1);
    }));
    let started = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            let addr = server.addr;
            tokio::spawn(async move {
                let r = client.call(&server_id(), addr, Req::Sleep(300)).await;
                (r, started.elapsed())
            })
        })
        .collect();
    let mut finished = Vec::new();
    for call in calls {
        let (result, at) = call.await.expect("task");
        assert_eq!(result, Ok(Resp::Slept));
        finished.push(at);
    }
    // Two run at once; the third waits for a permit, so it ends after about
    // two sleeps. Only the lower bound is asserted: upper bounds flake on a
    // busy machine.
    finished.sort();
    assert!(finished[2] >= Duration::from_millis(500), "{finished:?}");
    server.kill().await;
}

/// A call that holds the peer connection busy for `ms`, so tests can check
/// that something else did not break that connection under it.
fn in_flight_sleep(
    client: &Arc<Client>,
    addr: SocketAddr,
    ms: u64,
) -> JoinHandle<Result<Resp, RpcError>> {
    let client = client.clone();
    tokio::spawn(async move {
        client
            .call_with_timeout(&server_id(), addr, Req::Sleep(ms), Duration::from_secs(30))
            .await
    })
}

#[tokio::test]
async fn oversized_request_fails_alone_before_touching_the_connection() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    // One in-flight slot, held by the sleeping call below: a request that
    // got as far as waiting for a slot would not come back before it.
    let client = Arc::new(client_with(CLUSTER, |c| {
        c.max_in_flight_per_peer = 1;
        c.request_timeout = Duration::from_secs(30);
    }));
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Add(1, 1)).await,
        Ok(Resp::Sum(2))
    );
    let slow = in_flight_sleep(&client, server.addr, 3000);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let big = Bytes::from(vec![0u8; MAX_FRAME_LEN]);
    let result = client.call(&server_id(), server.addr, Req::Blob(big)).await;
    match &result {
        Err(e @ RpcError::TooLarge(len)) => {
            assert!(*len > MAX_FRAME_LEN, "{len}");
            assert!(!e.is_remote_failure());
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        !slow.is_finished(),
        "the oversized call must fail without waiting for an in-flight slot"
    );
    // Had anything been written, or the connection been dropped, the
    // sleeping call would fail with Io.
    assert_eq!(slow.await.expect("task"), Ok(Resp::Slept));
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Add(2, 3)).await,
        Ok(Resp::Sum(5))
    );
    // Just under the limit is fine.
    let fits = Bytes::from(vec![0u8; MAX_FRAME_LEN - 1024]);
    assert_eq!(
        client
            .call(&server_id(), server.addr, Req::Blob(fits))
            .await,
        Ok(Resp::Len(MAX_FRAME_LEN - 1024))
    );
    server.kill().await;
}

#[tokio::test]
async fn oversized_reply_fails_only_that_request() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = Arc::new(client_with(CLUSTER, |c| {
        c.request_timeout = Duration::from_secs(30);
    }));
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Add(1, 1)).await,
        Ok(Resp::Sum(2))
    );
    let slow = in_flight_sleep(&client, server.addr, 1500);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let result = client
        .call(&server_id(), server.addr, Req::Give(MAX_FRAME_LEN))
        .await;
    match &result {
        Err(e @ RpcError::Refused(reason)) => {
            assert!(reason.contains("could not encode its response"), "{reason}");
            assert!(reason.contains("exceeds"), "{reason}");
            assert!(!e.is_remote_failure());
        }
        other => panic!("expected an error reply for the oversized response, got {other:?}"),
    }
    // Answered, not left to run into the 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(slow.await.expect("task"), Ok(Resp::Slept));
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Add(2, 2)).await,
        Ok(Resp::Sum(4))
    );
    assert_eq!(
        client.call(&server_id(), server.addr, Req::Give(10)).await,
        Ok(Resp::Blob(Bytes::from(vec![7u8; 10])))
    );
    server.kill().await;
}

#[test]
fn only_remote_failures_count_against_a_peer() {
    let remote = [
        RpcError::Timeout,
        RpcError::Connect("refused".into()),
        RpcError::Io("reset".into()),
        RpcError::Partitioned,
    ];
    let local = [
        RpcError::Refused("cluster mismatch".into()),
        RpcError::Decode("bad".into()),
        RpcError::Encode("bad".into()),
        RpcError::TooLarge(MAX_FRAME_LEN + 1),
        RpcError::Overloaded,
        RpcError::Auth("bad secret".into()),
    ];
    for e in &remote {
        assert!(e.is_remote_failure(), "{e:?} is a remote failure");
    }
    for e in &local {
        assert!(!e.is_remote_failure(), "{e:?} is not a remote failure");
    }
    // Distinct metric labels, so the kinds can be told apart.
    let kinds: BTreeSet<&str> = remote.iter().chain(&local).map(|e| e.kind()).collect();
    assert_eq!(kinds.len(), remote.len() + local.len());
}

#[tokio::test]
async fn call_with_timeout_overrides_the_default_both_ways() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client_with(CLUSTER, |c| {
        c.request_timeout = Duration::from_secs(1);
    });
    // Shorter than the default.
    let started = Instant::now();
    let short = client
        .call_with_timeout(
            &server_id(),
            server.addr,
            Req::Sleep(3000),
            Duration::from_millis(100),
        )
        .await;
    assert_eq!(short, Err(RpcError::Timeout));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_millis(900), "{took:?}");

    // Longer than the default: the same call times out under `call`...
    let default = client
        .call(&server_id(), server.addr, Req::Sleep(1500))
        .await;
    assert_eq!(default, Err(RpcError::Timeout));
    // ...and succeeds with a longer per-call timeout.
    let long = client
        .call_with_timeout(
            &server_id(),
            server.addr,
            Req::Sleep(1500),
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(long, Ok(Resp::Slept));
    // An unrepresentable deadline means none, not a panic.
    let forever = client
        .call_with_timeout(&server_id(), server.addr, Req::Add(1, 2), Duration::MAX)
        .await;
    assert_eq!(forever, Ok(Resp::Sum(3)));
    server.kill().await;
}

#[tokio::test]
async fn waiting_for_an_in_flight_slot_is_overloaded_not_timeout() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = Arc::new(client_with(CLUSTER, |c| {
        c.max_in_flight_per_peer = 1;
    }));
    let slow = in_flight_sleep(&client, server.addr, 1500);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let result = client
        .call_with_timeout(
            &server_id(),
            server.addr,
            Req::Add(1, 1),
            Duration::from_millis(200),
        )
        .await;
    assert_eq!(result, Err(RpcError::Overloaded));
    assert!(!RpcError::Overloaded.is_remote_failure());
    assert_eq!(slow.await.expect("task"), Ok(Resp::Slept));
    // A call that gets its slot and then runs out of time is a Timeout.
    let result = client
        .call_with_timeout(
            &server_id(),
            server.addr,
            Req::Sleep(2000),
            Duration::from_millis(200),
        )
        .await;
    assert_eq!(result, Err(RpcError::Timeout));
    server.kill().await;
}

/// Drives any [`Transport`], as the node's cluster code will.
async fn add_via<T: Transport<Req, Resp>>(
    transport: &T,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Resp, RpcError> {
    transport
        .call(&server_id(), addr, Req::Add(20, 22), timeout)
        .await
}

#[tokio::test]
async fn rpc_client_is_a_transport() {
    let server = Server::start("127.0.0.1:0", CLUSTER).await;
    let client = client_with("other-cluster", |_| {});
    assert_eq!(Transport::cluster(&client), "other-cluster");
    assert!(matches!(
        add_via(&client, server.addr, Duration::from_secs(5)).await,
        Err(RpcError::Refused(_))
    ));
    Transport::set_cluster(&client, CLUSTER.to_string());
    assert_eq!(Transport::cluster(&client), CLUSTER);
    assert_eq!(
        add_via(&client, server.addr, Duration::from_secs(5)).await,
        Ok(Resp::Sum(42))
    );
    // The trait's timeout is the call's timeout.
    let slow = Transport::call(
        &client,
        &server_id(),
        server.addr,
        Req::Sleep(2000),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(slow, Err(RpcError::Timeout));
    server.kill().await;
}
