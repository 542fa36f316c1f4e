//! The cluster port admits only nodes holding the cluster secret, and
//! context tokens from clients are untrusted input. Real `dynkv` processes
//! on loopback; strangers are raw TCP sockets speaking exactly the frames a
//! node sends (dynkv's own `net::frame` encoding of the cluster messages).

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use common::cluster::{CONVERGE_TIMEOUT, Cluster, TEST_SECRET, assert_none, name, wait_for};
use common::{Reply, is_real_redis};
use dynkv::core::{
    ClusterSecret, Member, NodeId, Object, Payload, Request, Response, VersionVector, WriteContext,
};
use dynkv::net::frame::{self, Envelope, PROTOCOL_VERSION};
use dynkv::net::{Blocklist, RpcClient, RpcConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tests of this file each run a cluster; one at a time keeps them
/// within the machine's means.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn kvs(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}:{i}"), format!("{prefix}-value-{i}")))
        .collect()
}

fn cluster_id(c: &Cluster) -> String {
    c.info(0)
        .expect("INFO dynamo")
        .get("cluster_id")
        .cloned()
        .expect("cluster_id in INFO dynamo")
}

/// Sorted `name addr` of every member node `i` knows.
fn member_names(c: &Cluster, i: usize) -> Vec<String> {
    let mut m: Vec<String> = c
        .members(i)
        .expect("DYN.MEMBERS")
        .into_iter()
        .map(|m| format!("{} {}", m.name, m.addr))
        .collect();
    m.sort();
    m
}

/// One length-delimited frame, exactly as a node's RPC client writes it:
/// a postcard envelope behind a big-endian u32 length.
fn frame_bytes(id: u64, cluster: &str, body: Request) -> Vec<u8> {
    let envelope = Envelope {
        protocol: PROTOCOL_VERSION,
        cluster: cluster.to_string(),
        from: NodeId::new("stranger"),
        id,
        body,
    };
    let payload = frame::encode(&envelope).expect("encode envelope");
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// Sends `frames` to `port` without any handshake and returns every byte
/// the node sent back before it closed the connection (or 5 s passed).
fn stranger_sends(port: u16, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the cluster port");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for f in frames {
        if s.write_all(f).is_err() {
            break;
        }
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    got
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `dynkv` with `args` to its exit (killing it after `limit`) and
/// returns whether it exited on its own and its stderr.
fn run_to_exit(args: &[&str], limit: Duration) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynkv"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log.reopen().expect("reopen log")))
        .spawn()
        .expect("spawn dynkv");
    let started = Instant::now();
    let exited = loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(!status.success(), "the intruder exited with success");
            break true;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    (exited, text)
}

/// Flags for an extra node on fresh ports and data dir.
fn node_flags(name: &str, dir: &std::path::Path) -> Vec<String> {
    let ports = common::free_ports(3);
    vec![
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        ports[0].to_string(),
        "--cluster-port".into(),
        ports[1].to_string(),
        "--metrics-port".into(),
        ports[2].to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--node-name".into(),
        name.into(),
    ]
}

/// Finding: a stranger's RPC with an empty cluster id was answered (the
/// reply carried the real cluster id), could read every key and write one
/// clients then saw. Now the node sends it nothing and does nothing.
#[test]
fn a_stranger_on_the_cluster_port_learns_nothing_and_writes_nothing() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let c = Cluster::start(3);
    let data = kvs("sr", 50);
    assert_none(&c.set_many(0, &data), "SET through n1");
    let id = cluster_id(&c);
    assert!(!id.is_empty());

    let mut frames = Vec::new();
    for (i, (k, _)) in data.iter().enumerate() {
        frames.push(frame_bytes(
            i as u64 + 1,
            "",
            Request::Get {
                key: Bytes::from(k.clone()),
            },
        ));
    }
    let mut planted = Object::new();
    planted.update(
        &VersionVector::new(),
        &NodeId::new("stranger"),
        Payload::value("planted-by-stranger"),
        u64::MAX / 2,
    );
    frames.push(frame_bytes(
        999,
        "",
        Request::Put {
            key: Bytes::from("sr:planted"),
            object: planted,
            hint_for: None,
        },
    ));
    for node in 0..3 {
        let got = stranger_sends(c.nodes[node].cluster_port(), &frames);
        assert!(
            !contains(&got, id.as_bytes()),
            "{} revealed the cluster id to a stranger",
            name(node)
        );
        for (_, v) in &data {
            assert!(
                !contains(&got, v.as_bytes()),
                "{} sent a stranger the value {v}",
                name(node)
            );
        }
        assert!(
            got.len() <= 64,
            "{} sent a stranger {} bytes (a handshake challenge is 64)",
            name(node),
            got.len()
        );
    }
    for node in 0..3 {
        assert_eq!(
            c.q(node, &["GET", "sr:planted"]),
            Reply::Nil,
            "the stranger's write is visible on {}",
            name(node)
        );
        let local = c.local(node, "sr:planted");
        assert!(local.values.is_empty(), "{}: {local:?}", name(node));
    }
    assert_none(&c.check_gets(1, &data), "GET through n2 after the stranger");
}

/// Finding: three forged Join messages for members at `127.0.0.1:1` made
/// 78 of 195 keys fail with UNAVAILABLE, also after restarts. Now they are
/// never read.
#[test]
fn forged_joins_change_nothing_even_after_restart() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let mut c = Cluster::start(3);
    let data = kvs("fj", 195);
    assert_none(&c.set_many(0, &data), "SET through n1");
    let before: Vec<Vec<String>> = (0..3).map(|i| member_names(&c, i)).collect();
    assert_eq!(before[0].len(), 3);

    let dead = "127.0.0.1:1".to_string();
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            frame_bytes(
                i + 1,
                "",
                Request::Join {
                    node: NodeId::new(&format!("forged{i}")),
                    member: Member {
                        client_addr: dead.clone(),
                        cluster_addr: dead.clone(),
                        cluster_client_addr: None,
                    },
                },
            )
        })
        .collect();
    for node in 0..3 {
        stranger_sends(c.nodes[node].cluster_port(), &frames);
    }
    // Gossip runs about once a second: give a forged member time to spread.
    std::thread::sleep(Duration::from_secs(3));
    for (i, expected) in before.iter().enumerate() {
        assert_eq!(&member_names(&c, i), expected, "members on {}", name(i));
    }
    for i in 0..3 {
        assert_none(&c.check_gets(i, &data), &format!("GET through {}", name(i)));
    }

    for i in 0..3 {
        let status = c.nodes[i].terminate();
        assert!(status.success(), "{} exited with {status}", name(i));
    }
    for i in 0..3 {
        c.restart(i);
    }
    c.wait_converged(&[0, 1, 2], CONVERGE_TIMEOUT);
    for (i, expected) in before.iter().enumerate() {
        assert_eq!(
            &member_names(&c, i),
            expected,
            "members on {} after restart",
            name(i)
        );
        assert_none(
            &c.check_gets(i, &data),
            &format!("GET through {} after restart", name(i)),
        );
    }
}

/// Finding: `dynkv --join` with no secret was admitted and served every
/// key on its own password-less port. Without a secret it now stops at
/// once with the remedy; with the wrong one both sides say why.
#[test]
fn an_intruder_join_without_or_with_the_wrong_secret_is_not_admitted() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let c = Cluster::start_with(2, (2, 1, 1), &["--fsync", "everysec"], |_| 0);
    c.wait_converged(&[0, 1], CONVERGE_TIMEOUT);
    let before = member_names(&c, 0);
    let seed = format!("127.0.0.1:{}", c.nodes[0].cluster_port());

    let dir = tempfile::tempdir().expect("tempdir");
    let mut flags = node_flags("intruder", dir.path());
    flags.extend(["--join".to_string(), seed.clone()]);
    let refs: Vec<&str> = flags.iter().map(|s| s.as_str()).collect();
    let (exited, log) = run_to_exit(&refs, Duration::from_secs(30));
    assert!(exited, "a --join without a secret must stop; log:\n{log}");
    assert!(
        log.contains("--join needs the cluster's secret") && log.contains("--cluster-secret"),
        "the joiner must say which flag is missing; log:\n{log}"
    );
    assert!(
        !dir.path().join("cluster.secret").exists(),
        "a joiner must not generate a secret of its own"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut flags = node_flags("intruder2", dir.path());
    flags.extend([
        "--join".to_string(),
        seed.clone(),
        "--cluster-secret".to_string(),
        "not-the-secret".to_string(),
    ]);
    let refs: Vec<&str> = flags.iter().map(|s| s.as_str()).collect();
    let (exited, log) = run_to_exit(&refs, Duration::from_secs(30));
    assert!(
        exited,
        "a --join with the wrong secret must stop; log:\n{log}"
    );
    assert!(
        log.contains("rejected the cluster secret"),
        "the joiner must say the seed rejected its secret; log:\n{log}"
    );
    wait_for(
        Duration::from_secs(10),
        "the seed logs the failed authentication",
        || {
            let seed_log = c.nodes[0].stderr();
            if seed_log.contains("failed authentication") {
                Ok(())
            } else {
                Err("no line yet".into())
            }
        },
    );
    for i in 0..2 {
        assert_eq!(member_names(&c, i), before, "members on {}", name(i));
    }
}

/// Two clusters with different secrets on one machine stay apart (DYN.JOIN
/// is refused with the reason on both sides), while a node with the right
/// secret joins.
#[test]
fn clusters_with_different_secrets_stay_apart_and_the_right_secret_joins() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let a = Cluster::start_with(2, (2, 1, 1), &["--fsync", "everysec"], |_| 0);
    a.wait_converged(&[0, 1], CONVERGE_TIMEOUT);
    let b = Cluster::start_with(
        1,
        (1, 1, 1),
        &["--fsync", "everysec", "--cluster-secret", "secret-of-b"],
        |_| 0,
    );
    let before = member_names(&a, 0);
    let seed_a = format!("127.0.0.1:{}", a.nodes[0].cluster_port());
    let r = b.q(0, &["DYN.JOIN", &seed_a]);
    match &r {
        Reply::Error(e) => assert!(e.contains("rejected the cluster secret"), "{e}"),
        other => panic!("DYN.JOIN across secrets answered {other:?}"),
    }
    wait_for(
        Duration::from_secs(10),
        "the seed logs the failed authentication",
        || {
            if a.nodes[0].stderr().contains("failed authentication") {
                Ok(())
            } else {
                Err("no line yet".into())
            }
        },
    );
    assert_eq!(member_names(&a, 0), before);
    assert_eq!(b.members(0).expect("DYN.MEMBERS").len(), 1);

    // The same node, restarted with cluster a's secret, joins it.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut flags = node_flags("n3", dir.path());
    flags.extend([
        "--join".to_string(),
        seed_a.clone(),
        "--cluster-secret".to_string(),
        TEST_SECRET.to_string(),
        "--n".into(),
        "2".into(),
        "--r".into(),
        "1".into(),
        "--w".into(),
        "1".into(),
    ]);
    let refs: Vec<&str> = flags.iter().map(|s| s.as_str()).collect();
    let mut joiner = Command::new(env!("CARGO_BIN_EXE_dynkv"))
        .args(&refs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn joiner");
    wait_for(Duration::from_secs(30), "n3 admitted to cluster a", || {
        let m = member_names(&a, 0);
        if m.iter().any(|l| l.starts_with("n3 ")) {
            Ok(())
        } else {
            Err(format!("{m:?}"))
        }
    });
    let _ = joiner.kill();
    let _ = joiner.wait();
}

/// The old, unsigned token encoding: what a forger crafts.
fn unsigned_token(vv: &VersionVector) -> String {
    URL_SAFE_NO_PAD.encode(postcard::to_allocvec(vv).expect("encode"))
}

/// The actors named in a DYN.GET token (its body is a postcard version
/// vector, whatever follows it).
fn actors_of(token: &str) -> Vec<NodeId> {
    let raw = URL_SAFE_NO_PAD.decode(token).expect("base64url token");
    let (vv, _rest) = postcard::take_from_bytes::<VersionVector>(&raw).expect("version vector");
    vv.entries().map(|(n, _)| n.clone()).collect()
}

/// A genuine token for `key` whose history names the actor of every node
/// (each node coordinated one write), so a forgery built from it reaches
/// whichever node coordinates.
fn token_naming_every_actor(c: &Cluster, key: &str) -> String {
    for i in 0..3 {
        assert_eq!(
            c.q(i, &["SET", key, &format!("v{i}")]),
            Reply::Simple("OK".into())
        );
    }
    let token = c.dyn_get(0, key, None).expect("DYN.GET").context;
    let actors = actors_of(&token);
    assert_eq!(actors.len(), 3, "{actors:?}");
    token
}

fn sets_then_gets(c: &Cluster, key: &str, n: usize) -> Vec<String> {
    let mut bad = Vec::new();
    for i in 0..n {
        let v = format!("after-{i}");
        let via = i % 3;
        let r = c.q(via, &["SET", key, &v]);
        if r != Reply::Simple("OK".into()) {
            bad.push(format!("SET #{i} via {}: {r:?}", name(via)));
            continue;
        }
        let got = c.q((via + 1) % 3, &["GET", key]);
        if got != Reply::Bulk(v.clone().into_bytes()) {
            bad.push(format!("GET after SET #{i}: {got:?}"));
        }
    }
    bad
}

/// Finding: DYN.PUT with a context naming counter u64::MAX wrapped the
/// counter arithmetic, and 30 of 30 later acknowledged SETs of the key were
/// unreadable. Tokens are now signed (a forged one is refused with -ERR),
/// and even a peer holding the secret cannot make a counter wrap.
#[test]
fn a_forged_context_is_refused_and_later_sets_stay_readable() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let c = Cluster::start(3);
    let key = "fc:k";
    let token = token_naming_every_actor(&c, key);
    let actors = actors_of(&token);
    let max: VersionVector = actors.iter().map(|a| (a.clone(), u64::MAX)).collect();
    let forged = unsigned_token(&max);

    for via in 0..3 {
        let r = c.q(via, &["DYN.PUT", key, &forged, "evil"]);
        match &r {
            Reply::Error(e) => assert!(
                e.starts_with("ERR") && e.contains("not a token returned by DYN.GET"),
                "{e}"
            ),
            other => panic!("a forged context was accepted by {}: {other:?}", name(via)),
        }
    }
    // A genuine token from one node is good on every node.
    let r = c.q(2, &["DYN.PUT", key, &token, "v1"]);
    assert_eq!(
        r,
        Reply::Simple("OK".into()),
        "a genuine token from n1 on n3"
    );
    assert_none(&sets_then_gets(&c, key, 30), "SET then GET after forgeries");
}

/// The same attack through the cluster port by a peer that does hold the
/// secret: the coordinator refuses a context naming a counter it never
/// issued instead of letting its counter wrap.
#[test]
fn an_authenticated_peer_cannot_make_a_counter_wrap() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let c = Cluster::start(3);
    let key = "pc:k";
    let token = token_naming_every_actor(&c, key);
    // MAX_COUNTER is the largest counter that decodes at all (a u64::MAX
    // one makes the whole frame undecodable, and the connection is closed).
    let max: VersionVector = actors_of(&token)
        .into_iter()
        .map(|a| (a, dynkv::core::MAX_COUNTER))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let secret = ClusterSecret::new(TEST_SECRET).expect("secret");
    let mut config = RpcConfig::new("", NodeId::new("peer"), &secret);
    config.request_timeout = Duration::from_secs(10);
    let answers: Vec<Response> = rt.block_on(async {
        let rpc: RpcClient<Request, Response> = RpcClient::new(config, Arc::new(Blocklist::new()));
        let mut answers = Vec::new();
        for i in 0..3 {
            let addr = format!("127.0.0.1:{}", c.nodes[i].cluster_port())
                .parse()
                .expect("addr");
            let req = Request::Coordinate {
                key: Bytes::from(key),
                context: WriteContext::Client(max.clone()),
                payload: Payload::value("evil"),
                w: None,
                hlc_ms: 0,
            };
            answers.push(
                rpc.call(&NodeId::new(&name(i)), addr, req)
                    .await
                    .expect("an authenticated peer is answered"),
            );
        }
        answers
    });
    for (i, a) in answers.iter().enumerate() {
        match a {
            Response::Error(e) => assert!(e.contains("never issued"), "{}: {e}", name(i)),
            other => panic!("{} coordinated a wrapping write: {other:?}", name(i)),
        }
    }
    assert_none(&sets_then_gets(&c, key, 30), "SET then GET after the peer");
}

/// A node founding a cluster without a secret generates one, keeps it in
/// its data dir readable by its owner only, prints it once, and reuses it
/// on later starts; neither INFO nor CONFIG GET shows a secret.
#[test]
fn a_founding_node_generates_its_secret_once_and_never_shows_it() {
    if is_real_redis() {
        return;
    }
    let _g = serial();
    let mut s = common::Server::start_with(&["--node-name", "founder"]);
    let path = s.data_dir().join("cluster.secret");
    let secret = std::fs::read_to_string(&path).expect("cluster.secret in the data dir");
    let secret = secret.trim().to_string();
    assert!(secret.len() >= 32, "{secret:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let log = s.stderr();
    assert_eq!(log.matches(secret.as_str()).count(), 1, "{log}");
    assert!(log.contains("--cluster-secret-file"), "{log}");

    let status = s.terminate();
    assert!(status.success());
    s.restart();
    let again = std::fs::read_to_string(&path).expect("cluster.secret");
    assert_eq!(again.trim(), secret, "a restart must reuse the secret");
    let log = s.stderr();
    assert_eq!(
        log.matches(secret.as_str()).count(),
        1,
        "printed again on restart:\n{log}"
    );
    assert!(log.contains("using the cluster secret saved in"), "{log}");

    let mut conn = s.raw();
    for cmd in [
        vec!["CONFIG", "GET", "*"],
        vec!["INFO", "everything"],
        vec!["INFO"],
    ] {
        let r = conn.cmd_str(&cmd);
        let text = format!("{r:?}");
        assert!(!text.contains(&secret), "{cmd:?} shows the secret: {text}");
    }
    // Nor does a node given one on the command line.
    let given = common::Server::start_with(&["--cluster-secret", "given-secret-xyz"]);
    let mut conn = given.raw();
    for cmd in [vec!["CONFIG", "GET", "*"], vec!["INFO", "everything"]] {
        let text = format!("{:?}", conn.cmd_str(&cmd));
        assert!(!text.contains("given-secret-xyz"), "{cmd:?}: {text}");
    }
    assert!(!given.data_dir().join("cluster.secret").exists());
}
