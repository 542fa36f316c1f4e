//! Node-to-node RPC over real loopback TCP: multiplexing, timeouts, refusal,
//! reconnect, fault injection, garbage input and the in-flight bound.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynkv::core::NodeId;
use dynkv::net::{Blocklist, Handler, RpcClient, RpcConfig, RpcError, serve};
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Resp {
    Echo(Vec<u8>),
    Slept,
    Sum(u64),
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
        }
    }
}

type Client = RpcClient<Req, Resp>;

const CLUSTER: &str = "test-cluster";

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
        let config = RpcConfig::new(cluster, server_id());
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
    let mut config = RpcConfig::new(cluster, client_id());
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
    let mut raw = TcpStream::connect(server.addr).await.expect("connect");
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
    let mut raw = TcpStream::connect(server.addr).await.expect("connect");
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
