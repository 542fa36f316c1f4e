//! Running on a shared network: replies that echo client bytes stay one
//! line, idle clients cannot take the descriptors storage needs, failures
//! that repeat are logged once per window, protected mode, the idle
//! `timeout`, slowed-down password guessing, and ACL WHOAMI/LIST.
//!
//! `DYNKV_FD_TEST_MB` (default 150) sets how many MiB the descriptor test
//! writes while its clients hold every descriptor they may.

mod common;

use common::{RawConn, Reply, Server, encode, free_ports};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A dynkv process started through `bash -c 'ulimit -n N; exec dynkv ...'`
/// so it runs under a descriptor limit, with its own `--bind`.
struct Proc {
    child: Child,
    port: u16,
    cluster_port: u16,
    memcache_port: u16,
    log: PathBuf,
    _data: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

impl Proc {
    fn start(fd_limit: Option<u64>, bind: &str, extra: &[&str]) -> Proc {
        let ports = free_ports(3);
        let data = tempfile::tempdir().expect("tempdir");
        let logs = tempfile::tempdir().expect("tempdir");
        let log = logs.path().join("stderr.log");
        let script = match fd_limit {
            Some(n) => format!("ulimit -n {n} || exit 97; exec \"$0\" \"$@\""),
            None => "exec \"$0\" \"$@\"".to_string(),
        };
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_dynkv"))
            .args(["--bind", bind, "--port", &ports[0].to_string()])
            .args([
                "--cluster-port",
                &ports[1].to_string(),
                "--metrics-port",
                "0",
                "--memcache-port",
                &ports[2].to_string(),
            ])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--node-name", &format!("h{}", ports[0])])
            // One secret for every node these tests start, so they can form clusters.
            .args(["--cluster-secret", "hardening-test"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn bash");
        let mut p = Proc {
            child,
            port: ports[0],
            cluster_port: ports[1],
            memcache_port: ports[2],
            log,
            _data: data,
            _logs: logs,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + common::START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dynkv exited with {status}\n{}", self.stderr());
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
            {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                if s.write_all(&encode(&[b"PING"])).is_ok()
                    && BufReader::new(s).read_line(&mut line).is_ok()
                    && (line.starts_with('+') || line.starts_with("-NOAUTH"))
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "dynkv not ready\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn raw(&self) -> RawConn {
        RawConn::connect(self.addr())
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `field:value` from an INFO text.
fn info_field(info: &str, field: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{info}"))
        .trim()
        .to_string()
}

fn info(conn: &mut RawConn, section: &str) -> String {
    conn.cmd_str(&["INFO", section]).as_str()
}

// ---------------------------------------------------------------------------
// 1. Reply injection
// ---------------------------------------------------------------------------

#[test]
fn line_breaks_in_an_echoed_argument_cannot_inject_a_reply() {
    let server = Server::start();
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd_str(&["SET", "k", "real"]),
        Reply::Simple("OK".into())
    );
    let mut batch = encode(&[b"NOSUCH", b"x\r\n+INJECTED"]);
    batch.extend(encode(&[b"GET", b"k"]));
    batch.extend(encode(&[b"GET", b"k"]));
    raw.send(&batch).expect("send");
    let replies: Vec<Reply> = (0..3).map(|_| raw.read().expect("reply")).collect();
    match &replies[0] {
        Reply::Error(e) => {
            assert!(e.starts_with("ERR unknown command 'NOSUCH'"), "{e}");
            assert!(
                e.contains("'x  +INJECTED'"),
                "line breaks become spaces: {e}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(replies[1], Reply::Bulk(b"real".to_vec()));
    assert_eq!(replies[2], Reply::Bulk(b"real".to_vec()));
    assert_eq!(raw.cmd_str(&["PING"]), Reply::Simple("PONG".into()));

    // The same through redis-rs's pipeline, and with a bare "\n".
    let mut con = server.conn();
    let results: Vec<redis::RedisResult<Option<String>>> = redis::pipe()
        .cmd("NOSUCH")
        .arg("a\nb\r")
        .cmd("GET")
        .arg("k")
        .cmd("GET")
        .arg("k")
        .ignore_errors()
        .query(&mut con)
        .expect("pipeline");
    assert!(results[0].is_err(), "{results:?}");
    assert_eq!(results[1].as_ref().ok(), Some(&Some("real".to_string())));
    assert_eq!(results[2].as_ref().ok(), Some(&Some("real".to_string())));

    // Long arguments are cut as Redis cuts them.
    let long = "y".repeat(10_000);
    match raw.cmd_str(&["NOSUCH", &long, &long]) {
        Reply::Error(e) => assert!(e.len() < 400, "{} bytes", e.len()),
        other => panic!("expected an error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// 2. File descriptors
// ---------------------------------------------------------------------------

/// MiB the descriptor tests write (`DYNKV_FD_TEST_MB`, default 150).
fn fd_test_mb() -> usize {
    std::env::var("DYNKV_FD_TEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

/// The 1 MiB value stored under `big:{i}`.
fn big_value(i: usize) -> Vec<u8> {
    let mut v = vec![b'a' + (i % 26) as u8; 1 << 20];
    v[..8].copy_from_slice(&(i as u64).to_be_bytes());
    v
}

/// SETs `big:0..mb`, four per round trip; every one must be acknowledged.
fn write_mib(conn: &mut RawConn, mb: usize, p: &Proc) {
    for chunk in (0..mb).collect::<Vec<_>>().chunks(4) {
        let mut batch = Vec::new();
        for &i in chunk {
            batch.extend(encode(&[
                b"SET",
                format!("big:{i}").as_bytes(),
                &big_value(i),
            ]));
        }
        conn.send(&batch).expect("send");
        for &i in chunk {
            let reply = conn.read().expect("SET reply");
            assert_eq!(
                reply,
                Reply::Simple("OK".into()),
                "SET big:{i} failed\n{}",
                p.stderr()
            );
        }
    }
}

/// Reads `big:0..mb` back and compares.
fn read_mib(conn: &mut RawConn, mb: usize) {
    for i in 0..mb {
        match conn.cmd(&[b"GET", format!("big:{i}").as_bytes()]) {
            Reply::Bulk(v) => assert!(v == big_value(i), "big:{i} reads back different"),
            other => panic!("GET big:{i}: {other:?}"),
        }
    }
}

/// Opens `n` client connections and leaves them idle.
fn idle_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect()
}

#[test]
fn idle_clients_at_a_256_descriptor_limit_cannot_stop_writes() {
    let mb = fd_test_mb();
    let p = Proc::start(Some(256), "127.0.0.1", &[]);
    let mut writer = p.raw();
    let maxclients: usize = info_field(&info(&mut writer, "clients"), "maxclients")
        .parse()
        .expect("maxclients");

    // Far more idle clients than the limit allows; the ones beyond
    // maxclients are told so and closed.
    let mut idle = idle_clients(p.addr(), 300);
    std::thread::sleep(Duration::from_millis(500));
    let last = idle.last_mut().expect("idle clients");
    last.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut refusal = String::new();
    let _ = last.read_to_string(&mut refusal);

    // Write `mb` MiB through the connection that got in.
    let started = Instant::now();
    write_mib(&mut writer, mb, &p);
    let wrote = started.elapsed();
    read_mib(&mut writer, mb);
    // The limit was shared out at start, and said so.
    assert!(
        maxclients < 200,
        "maxclients {maxclients} leaves storage too few of 256 descriptors"
    );
    let log = p.stderr();
    assert!(
        log.contains(&format!("maxclients lowered to {maxclients}")),
        "{log}"
    );
    assert_eq!(refusal, "-ERR max number of clients reached\r\n");
    let stats = info(&mut writer, "stats");
    assert!(
        info_field(&stats, "rejected_connections")
            .parse::<usize>()
            .expect("n")
            > 0
    );
    drop(idle);
    let mut fresh = p.raw();
    assert_eq!(fresh.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
    eprintln!(
        "wrote {mb} MiB in {wrote:?} beside {} idle clients (maxclients {maxclients})",
        300
    );
}

#[test]
fn a_three_node_cluster_at_a_256_descriptor_limit_keeps_replicating() {
    let mb = (fd_test_mb() / 5).max(1);
    let seed = Proc::start(
        Some(256),
        "127.0.0.1",
        &["--n", "3", "--r", "2", "--w", "2"],
    );
    let join = format!("127.0.0.1:{}", seed.cluster_port);
    let nodes: Vec<Proc> = (0..2)
        .map(|_| {
            Proc::start(
                Some(256),
                "127.0.0.1",
                &["--n", "3", "--r", "2", "--w", "2", "--join", &join],
            )
        })
        .collect();
    common::cluster::wait_for(Duration::from_secs(30), "3 members up", || {
        let members = common::cluster::parse_members(&seed.raw().cmd_str(&["DYN.MEMBERS"]))?;
        let up = members.iter().filter(|m| m.status == "up").count();
        if up == 3 {
            Ok(())
        } else {
            Err(format!("{members:?}"))
        }
    });
    // Every node's clients are at their cap while a write goes through
    // the seed and replicates to the others.
    let mut writer = seed.raw();
    let mut reader = nodes[1].raw();
    let _idle: Vec<Vec<TcpStream>> = [&seed, &nodes[0], &nodes[1]]
        .iter()
        .map(|p| idle_clients(p.addr(), 300))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    write_mib(&mut writer, mb, &seed);
    read_mib(&mut reader, mb);
    for p in [&seed, &nodes[0], &nodes[1]] {
        assert!(
            !p.stderr().contains("Too many open files"),
            "{}",
            p.stderr()
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Logs
// ---------------------------------------------------------------------------

#[test]
fn accept_failures_are_logged_once_per_window_and_recover() {
    let p = Proc::start(Some(256), "127.0.0.1", &[]);
    // Below what the server already holds: every accept now fails (EMFILE)
    // for as long as clients wait in the backlog.
    rlimit::prlimit(p.pid(), rlimit::Resource::NOFILE, Some((8, 256)), None).expect("prlimit");
    let waiting: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect_timeout(&p.addr(), Duration::from_secs(2)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let lines = p
        .stderr()
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} accept-failure lines in 3 s\n{}",
        p.stderr()
    );
    // Descriptors come back: the waiting clients are served, no restart.
    rlimit::prlimit(p.pid(), rlimit::Resource::NOFILE, Some((256, 256)), None).expect("prlimit");
    for s in waiting {
        let mut c = RawConn {
            reader: BufReader::new(s),
        };
        c.set_read_timeout(Duration::from_secs(10));
        assert_eq!(c.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
    }
}

#[test]
fn a_flapping_peer_is_logged_once_per_window_ending_with_its_state() {
    let a = Proc::start(None, "127.0.0.1", &["--n", "2", "--r", "1", "--w", "1"]);
    let join = format!("127.0.0.1:{}", a.cluster_port);
    let b = Proc::start(
        None,
        "127.0.0.1",
        &["--n", "2", "--r", "1", "--w", "1", "--join", &join],
    );
    let peer_lines = || {
        a.stderr()
            .lines()
            .filter(|l| l.contains("peer unreachable") || l.contains("peer is reachable again"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &b.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    };
    let a_name = format!("h{}", a.port);
    let b_status = || -> String {
        common::cluster::parse_members(&a.raw().cmd_str(&["DYN.MEMBERS"]))
            .ok()
            .and_then(|m| m.into_iter().find(|m| m.name != a_name).map(|m| m.status))
            .unwrap_or_default()
    };
    common::cluster::wait_until(Duration::from_secs(30), "the peer up", || {
        b_status() == "up"
    });
    // Frozen until the seed calls it down, thawed until it is back, twice.
    let started = Instant::now();
    for _ in 0..2 {
        signal("-STOP");
        common::cluster::wait_until(Duration::from_secs(20), "the peer down", || {
            b_status() == "down"
        });
        signal("-CONT");
        common::cluster::wait_until(Duration::from_secs(20), "the peer up", || {
            b_status() == "up"
        });
    }
    let during = peer_lines();
    // Then it stays up: the last line about it must say so.
    common::cluster::wait_until(
        Duration::from_secs(15),
        "a line saying the peer is back",
        || {
            peer_lines()
                .last()
                .is_some_and(|l| l.contains("reachable again"))
        },
    );
    let lines = peer_lines();
    assert!(
        during.len() <= 2 && lines.len() <= 3,
        "{} lines while flapping for {:?}:\n{}",
        during.len(),
        started.elapsed(),
        lines.join("\n")
    );
    drop(b);
}

// ---------------------------------------------------------------------------
// 4. Protected mode
// ---------------------------------------------------------------------------

/// An address of this machine that is not loopback (the one used to reach
/// the outside), if it has one.
fn non_loopback_address() -> Option<IpAddr> {
    ["8.8.8.8:53", "192.0.2.1:9", "172.17.0.2:9"]
        .iter()
        .find_map(|target| {
            let s = UdpSocket::bind("0.0.0.0:0").ok()?;
            s.connect(target).ok()?;
            let ip = s.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}

/// What a client at `ip` reads from the server at `port` after a PING,
/// until the server closes or 5 s pass.
fn ping_from(ip: IpAddr, port: u16) -> String {
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(5))
        .expect("connect over the non-loopback address");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(&encode(&[b"PING"]));
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.starts_with(b"+PONG\r\n") || got.starts_with(b"-NOAUTH") && got.ends_with(b"\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn protected_mode_refuses_remote_clients_without_a_password() {
    let Some(ip) = non_loopback_address() else {
        eprintln!("no non-loopback address on this machine; the decision is unit-tested");
        return;
    };
    let p = Proc::start(None, "0.0.0.0", &[]);
    let denied = ping_from(ip, p.port);
    assert!(
        denied.starts_with(
            "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface."
        ) && denied.ends_with("\r\n")
            && denied.matches("\r\n").count() == 1,
        "{denied:?}"
    );
    // The memcached port beside it refuses the same clients.
    let mut mc = TcpStream::connect_timeout(
        &SocketAddr::new(ip, p.memcache_port),
        Duration::from_secs(5),
    )
    .expect("connect to the memcached port over the non-loopback address");
    mc.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = mc.write_all(b"version\r\n");
    let mut refused = String::new();
    let _ = mc.read_to_string(&mut refused);
    assert!(
        refused.starts_with("SERVER_ERROR protected mode"),
        "{refused:?}"
    );
    let mut local = p.raw();
    assert_eq!(local.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
    let get = |c: &mut RawConn| match c.cmd_str(&["CONFIG", "GET", "protected-mode"]) {
        Reply::Array(v) => v[1].as_str(),
        other => panic!("{other:?}"),
    };
    assert_eq!(get(&mut local), "yes");
    assert!(
        local
            .cmd_str(&["CONFIG", "SET", "protected-mode", "maybe"])
            .is_error()
    );
    assert_eq!(
        local.cmd_str(&["CONFIG", "SET", "protected-mode", "no"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(ping_from(ip, p.port), "+PONG\r\n");
    local.cmd_str(&["CONFIG", "SET", "protected-mode", "yes"]);
    assert!(ping_from(ip, p.port).starts_with("-DENIED"));
    // Two RESP refusals and the memcached one.
    assert_eq!(
        info_field(&info(&mut local, "stats"), "protected_mode_denied"),
        "3"
    );

    // A password lifts it; the flag sets it.
    let p = Proc::start(None, "0.0.0.0", &["--requirepass", "pw"]);
    assert!(ping_from(ip, p.port).starts_with("-NOAUTH"));
    let p = Proc::start(None, "0.0.0.0", &["--protected-mode", "no"]);
    assert_eq!(ping_from(ip, p.port), "+PONG\r\n");
    assert_eq!(get(&mut p.raw()), "no");
}

// ---------------------------------------------------------------------------
// 5. Idle timeout
// ---------------------------------------------------------------------------

#[test]
fn idle_clients_are_closed_after_timeout() {
    if common::is_real_redis() {
        return; // dynkv flags and texts
    }
    let server = Server::start_with(&["--timeout", "1"]);
    let mut idle = server.raw();
    let mut busy = server.raw();
    assert_eq!(
        idle.cmd_str(&["CONFIG", "GET", "timeout"]),
        Reply::Array(vec![
            Reply::Bulk(b"timeout".to_vec()),
            Reply::Bulk(b"1".to_vec())
        ])
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        idle.is_closed_within(Duration::from_millis(100)),
        "idle client still open"
    );

    // Default 0: never; CONFIG SET reaches a client that is already idle.
    let server = Server::start();
    let mut waiting = server.raw();
    let mut admin = server.raw();
    assert!(!waiting.is_closed_within(Duration::from_millis(1500)));
    assert_eq!(
        admin.cmd_str(&["CONFIG", "SET", "timeout", "1"]),
        Reply::Simple("OK".into())
    );
    assert!(waiting.is_closed_within(Duration::from_secs(3)));
    assert!(
        admin
            .cmd_str(&["CONFIG", "SET", "timeout", "-1"])
            .is_error()
    );
}

// ---------------------------------------------------------------------------
// 6. AUTH guessing
// ---------------------------------------------------------------------------

/// A connection to `server` from the loopback address `from` (any of
/// 127/8 works on Linux), so tests can play several source addresses.
fn connect_from(from: [u8; 4], server: SocketAddr) -> RawConn {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("bind source address");
        socket.connect(server).await.expect("connect")
    });
    let stream = stream.into_std().expect("into_std");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(common::IO_TIMEOUT))
        .expect("timeout");
    RawConn {
        reader: BufReader::new(stream),
    }
}

#[test]
fn wrong_passwords_are_slowed_down_and_the_right_one_still_works() {
    if common::is_real_redis() {
        return; // dynkv flags and texts
    }
    let server = Server::start_with(&["--requirepass", "right"]);
    let wrongpass = |r: &Reply| matches!(r, Reply::Error(e) if e.starts_with("WRONGPASS"));

    // A patient guesser (waits for each reply) is paced, not refused.
    let mut patient = connect_from([127, 0, 0, 2], server.addr());
    let started = Instant::now();
    for i in 0..8 {
        let reply = patient.cmd_str(&["AUTH", &format!("guess-{i}")]);
        assert!(wrongpass(&reply), "{reply:?}");
    }
    let paced = started.elapsed();
    assert!(
        paced >= Duration::from_millis(1200),
        "8 wrong passwords answered in {paced:?}"
    );

    // 8 connections from another address guess as fast as they are
    // answered for 2 s: few guesses are checked.
    let mut logged_in = server.raw();
    assert_eq!(
        logged_in.cmd_str(&["AUTH", "right"]),
        Reply::Simple("OK".into())
    );
    let started = Instant::now();
    let guessers: Vec<_> = (0..8)
        .map(|t| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut c = RawConn::connect(addr);
                let mut replies = Vec::new();
                while started.elapsed() < Duration::from_secs(2) {
                    let guess = format!("guess-{t}-{}", replies.len());
                    replies.push(c.cmd_str(&["AUTH", &guess]));
                }
                replies
            })
        })
        .collect();
    // Meanwhile a logged-in client is not slowed.
    let mut slowest = Duration::ZERO;
    while !guessers.iter().all(|g| g.is_finished()) && started.elapsed() < Duration::from_secs(15) {
        let t = Instant::now();
        assert_eq!(logged_in.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let replies: Vec<Reply> = guessers
        .into_iter()
        .flat_map(|g| g.join().expect("guesser"))
        .collect();
    let flood = started.elapsed();
    let wrong = replies.iter().filter(|r| wrongpass(r)).count();
    let refused = replies
        .iter()
        .filter(|r| matches!(r, Reply::Error(e) if e.contains("too many failed AUTH")))
        .count();
    assert_eq!(wrong + refused, replies.len(), "{replies:?}");
    assert!(
        wrong <= 30,
        "{wrong} of {} guesses were checked in {flood:?}",
        replies.len()
    );
    assert!(refused > 0 && flood < Duration::from_secs(5), "{flood:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "PING took {slowest:?}"
    );

    // A third address logs in at once; the flooding one once its lock ends.
    let mut other = connect_from([127, 0, 0, 3], server.addr());
    assert_eq!(
        other.cmd_str(&["AUTH", "right"]),
        Reply::Simple("OK".into())
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = server.raw();
    loop {
        match c.cmd_str(&["AUTH", "right"]) {
            Reply::Simple(ok) if ok == "OK" => break,
            other => {
                assert!(Instant::now() < deadline, "AUTH right: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let stats = info(&mut logged_in, "stats");
    assert_eq!(
        info_field(&stats, "acl_access_denied_auth"),
        (8 + wrong).to_string()
    );
    assert_eq!(info_field(&stats, "auth_rate_limited"), refused.to_string());
    eprintln!(
        "8 patient guesses took {paced:?}; flood: {wrong} checked, {refused} refused, in {flood:?}"
    );
}

// ---------------------------------------------------------------------------
// 7. ACL
// ---------------------------------------------------------------------------

#[test]
fn acl_whoami_and_list_describe_the_default_user() {
    if common::is_real_redis() {
        return; // dynkv flags and texts
    }
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(
        c.cmd_str(&["ACL", "WHOAMI"]),
        Reply::Bulk(b"default".to_vec())
    );
    assert_eq!(
        c.cmd_str(&["ACL", "LIST"]),
        Reply::Array(vec![Reply::Bulk(
            b"user default on nopass ~* &* +@all".to_vec()
        )])
    );
    assert_eq!(
        c.cmd_str(&["ACL", "NOPE"]),
        Reply::Error("ERR unknown subcommand 'NOPE'. Try ACL HELP.".into())
    );
    match c.cmd_str(&["ACL", "SETUSER", "bob", "on"]) {
        Reply::Error(e) => assert!(e.starts_with("ERR ACL SETUSER is not supported"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(c.cmd_str(&["ACL"]).is_error());
    match c.cmd_str(&["COMMAND", "INFO", "acl"]) {
        Reply::Array(v) => match &v[0] {
            Reply::Array(info) => assert_eq!(info[1], Reply::Int(-2)),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }

    let server = Server::start_with(&["--requirepass", "pw"]);
    let mut c = server.raw();
    assert!(c.cmd_str(&["ACL", "WHOAMI"]).is_error(), "needs AUTH first");
    c.cmd_str(&["AUTH", "pw"]);
    // The SHA-256 of "pw", as redis-server 7 prints it.
    assert_eq!(
        c.cmd_str(&["ACL", "LIST"]),
        Reply::Array(vec![Reply::Bulk(
            b"user default on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~* &* +@all"
                .to_vec()
        )])
    );
}
