//! Bad input over raw TCP: malformed RESP, huge
//! lengths, binary junk, slow and half-open clients get a clear error or a
//! closed connection, never a crash or a stall of other clients. Error texts
//! are Redis 7's.

mod common;

use common::{RawConn, Reply, Server, encode};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Small seeded PRNG (xorshift64*), so failures are reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize, crlf_every: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let r = self.next();
            if crlf_every > 0 && r.is_multiple_of(crlf_every) {
                out.extend_from_slice(b"\r\n");
            } else {
                out.push((r >> 32) as u8);
            }
        }
        out
    }
}

const PROTO_ERR_WAIT: Duration = Duration::from_secs(5);

/// Writes a sentinel key before the abuse.
fn put_sentinel(s: &Server) {
    let mut r = s.raw();
    assert_eq!(
        r.cmd_str(&["SET", "sentinel", "intact"]),
        Reply::Simple("OK".into())
    );
}

/// The server is alive, answers PING quickly and still has the sentinel.
fn assert_healthy(s: &mut Server) {
    assert!(
        s.is_running(),
        "server died\n--- stderr ---\n{}",
        s.stderr()
    );
    let mut r = s.raw();
    let t = Instant::now();
    assert_eq!(r.cmd_str(&["PING"]), Reply::Simple("PONG".into()));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "PING took {:?}",
        t.elapsed()
    );
    assert_eq!(
        r.cmd_str(&["GET", "sentinel"]),
        Reply::Bulk(b"intact".to_vec())
    );
}

/// Sends `bytes`, expects exactly the error `expected` and then a close.
fn expect_proto_error_and_close(s: &Server, bytes: &[u8], expected: &str) {
    let mut r = s.raw();
    // The server may close before reading everything we send.
    let _ = r.send(bytes);
    r.set_read_timeout(PROTO_ERR_WAIT);
    match r.read() {
        Ok(reply) => assert_eq!(
            reply,
            Reply::Error(expected.into()),
            "input {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        ),
        Err(e) => panic!(
            "expected {expected:?} for input {:?}, got no reply: {e}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        ),
    }
    assert!(
        r.is_closed_within(PROTO_ERR_WAIT),
        "connection not closed after {expected:?}"
    );
}

#[test]
fn huge_multibulk_length() {
    let mut s = Server::start();
    put_sentinel(&s);
    // Redis 7.0 accepts up to INT_MAX elements (6.x capped at 1M, and dynkv
    // may cap lower): *2147483647 gets either the error and a close, or is
    // left waiting for elements; either way the server stays healthy.
    {
        let mut r = s.raw();
        r.send(b"*2147483647\r\n").unwrap();
        r.set_read_timeout(Duration::from_secs(1));
        match r.read() {
            Ok(reply) => {
                assert_eq!(
                    reply,
                    Reply::Error("ERR Protocol error: invalid multibulk length".into())
                );
                assert!(r.is_closed_within(PROTO_ERR_WAIT), "not closed");
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "*2147483647: {e}"
            ),
        }
    }
    // Beyond INT_MAX it is an error everywhere.
    expect_proto_error_and_close(
        &s,
        b"*2147483648\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*4294967296\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*99999999999999999999999\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*abc\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
    assert_healthy(&mut s);
}

#[test]
fn huge_bulk_length() {
    let mut s = Server::start();
    put_sentinel(&s);
    // 1 GiB > proto-max-bulk-len (dynkv 32 MiB, Redis 512 MiB).
    expect_proto_error_and_close(
        &s,
        b"*1\r\n$1073741824\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*2\r\n$3\r\nGET\r\n$1073741824\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*1\r\n$-5\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*1\r\n$xyz\r\n",
        "ERR Protocol error: invalid bulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*1\r\nfoo\r\n",
        "ERR Protocol error: expected '$', got 'f'",
    );
    assert_healthy(&mut s);
}

const MIB: usize = 1024 * 1024;

/// The start of `SET over <value>` announcing a value of `len` bytes. Tests
/// send only this: a server that refuses the header closes the connection,
/// and data still arriving then would make the kernel reset it, which can
/// discard the error reply before the test reads it.
fn set_header(len: usize) -> Vec<u8> {
    format!("*3\r\n$3\r\nSET\r\n$4\r\nover\r\n${len}\r\n").into_bytes()
}

#[test]
fn bulk_over_proto_max_bulk_len_closes_only_that_connection() {
    let mut s = Server::start_with(&["--proto-max-bulk-len", "2mb"]);
    put_sentinel(&s);
    // Connected throughout; must not notice anything.
    let mut bystander = s.raw();
    assert_eq!(bystander.cmd_str(&["PING"]), Reply::Simple("PONG".into()));

    expect_proto_error_and_close(
        &s,
        &set_header(2 * MIB + 1),
        "ERR Protocol error: invalid bulk length",
    );
    // Pipelined behind a good command: that one is answered first.
    let mut r = s.raw();
    let mut input = encode(&[b"PING"]);
    input.extend_from_slice(&set_header(3 * MIB));
    r.send(&input).unwrap();
    assert_eq!(r.read().unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(
        r.read().unwrap(),
        Reply::Error("ERR Protocol error: invalid bulk length".into())
    );
    assert!(r.is_closed_within(PROTO_ERR_WAIT), "not closed");

    // At the limit and just under it, values round-trip.
    for len in [2 * MIB, 2 * MIB - 1] {
        let value = vec![b'v'; len];
        assert_eq!(
            bystander.cmd(&[b"SET", b"big", &value]),
            Reply::Simple("OK".into())
        );
        assert_eq!(bystander.cmd(&[b"GET", b"big"]), Reply::Bulk(value));
    }
    assert_eq!(bystander.cmd_str(&["EXISTS", "over"]), Reply::Int(0));
    assert_healthy(&mut s);
}

#[test]
fn config_set_proto_max_bulk_len_applies_to_new_requests() {
    let mut s = Server::start();
    put_sentinel(&s);
    let mut admin = s.raw();
    // Opened before the change, idle while it happens.
    let mut early = s.raw();
    assert_eq!(early.cmd_str(&["PING"]), Reply::Simple("PONG".into()));

    let stored = vec![b'a'; MIB + 1];
    assert_eq!(
        admin.cmd(&[b"SET", b"stored", &stored]),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        admin.cmd_str(&["CONFIG", "SET", "proto-max-bulk-len", "1mb"]),
        Reply::Simple("OK".into())
    );
    expect_proto_error_and_close(
        &s,
        &set_header(MIB + 1),
        "ERR Protocol error: invalid bulk length",
    );
    early.send(&set_header(MIB + 1)).unwrap();
    assert_eq!(
        early.read().unwrap(),
        Reply::Error("ERR Protocol error: invalid bulk length".into())
    );
    assert!(early.is_closed_within(PROTO_ERR_WAIT), "not closed");

    // The limit is on requests: a value stored before can still be read.
    assert_eq!(
        admin.cmd_str(&["STRLEN", "stored"]),
        Reply::Int(MIB as i64 + 1)
    );
    assert_eq!(admin.cmd(&[b"GET", b"stored"]), Reply::Bulk(stored));
    let at_limit = vec![b'b'; MIB];
    assert_eq!(
        admin.cmd(&[b"SET", b"at-limit", &at_limit]),
        Reply::Simple("OK".into())
    );
    // Raising it again lets the same size through.
    assert_eq!(
        admin.cmd_str(&["CONFIG", "SET", "proto-max-bulk-len", "2mb"]),
        Reply::Simple("OK".into())
    );
    let over_old = vec![b'c'; MIB + 1];
    assert_eq!(
        s.raw().cmd(&[b"SET", b"over-old", &over_old]),
        Reply::Simple("OK".into())
    );
    assert_healthy(&mut s);
}

#[test]
fn oversized_lines_without_newline() {
    let mut s = Server::start();
    put_sentinel(&s);
    let inline = vec![b'a'; 70 * 1024];
    expect_proto_error_and_close(&s, &inline, "ERR Protocol error: too big inline request");
    expect_proto_error_and_close(
        &s,
        &[b"*".as_slice(), &[b'1'; 70 * 1024]].concat(),
        "ERR Protocol error: too big mbulk count string",
    );
    expect_proto_error_and_close(
        &s,
        &[b"*1\r\n$".as_slice(), &[b'1'; 70 * 1024]].concat(),
        "ERR Protocol error: too big bulk count string",
    );
    assert_healthy(&mut s);
}

#[test]
fn unbalanced_quotes_inline() {
    let mut s = Server::start();
    put_sentinel(&s);
    expect_proto_error_and_close(
        &s,
        b"SET \"foo bar\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    );
    expect_proto_error_and_close(
        &s,
        b"SET 'foo\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    );
    // Balanced quotes and escapes work.
    let mut r = s.raw();
    r.send(b"SET \"quoted key\" \"a\\x41\\n\"\r\n").unwrap();
    assert_eq!(r.read().unwrap(), Reply::Simple("OK".into()));
    assert_eq!(
        r.cmd_str(&["GET", "quoted key"]),
        Reply::Bulk(b"aA\n".to_vec())
    );
    assert_healthy(&mut s);
}

#[test]
fn empty_and_negative_multibulk_are_ignored() {
    let mut s = Server::start();
    put_sentinel(&s);
    let mut r = s.raw();
    r.send(b"*0\r\n*-1\r\n\r\n*1\r\n$4\r\nPING\r\n").unwrap();
    assert_eq!(r.read().unwrap(), Reply::Simple("PONG".into()));
    assert_healthy(&mut s);
}

#[test]
fn unauthenticated_clients_cannot_send_big_frames() {
    let mut s = Server::start_with(&["--requirepass", "pw"]);
    {
        let mut r = s.raw();
        assert_eq!(r.cmd_str(&["AUTH", "pw"]), Reply::Simple("OK".into()));
        assert_eq!(
            r.cmd_str(&["SET", "sentinel", "intact"]),
            Reply::Simple("OK".into())
        );
    }
    expect_proto_error_and_close(
        &s,
        b"*100\r\n",
        "ERR Protocol error: unauthenticated multibulk length",
    );
    expect_proto_error_and_close(
        &s,
        b"*1\r\n$100000\r\n",
        "ERR Protocol error: unauthenticated bulk length",
    );
    assert!(s.is_running());
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["AUTH", "pw"]), Reply::Simple("OK".into()));
    assert_eq!(
        r.cmd_str(&["GET", "sentinel"]),
        Reply::Bulk(b"intact".to_vec())
    );
}

#[test]
fn random_junk_after_star_gets_protocol_error() {
    let mut s = Server::start();
    put_sentinel(&s);
    for seed in 0..20u64 {
        let mut rng = Rng::new(seed);
        // "*x<junk without NUL/CR/LF>\r\n<any junk>": the header line is
        // certainly not a number.
        let mut junk = vec![b'*', b'x'];
        junk.extend(
            rng.bytes(64, 0)
                .into_iter()
                .filter(|b| !matches!(b, 0 | b'\r' | b'\n')),
        );
        junk.extend_from_slice(b"\r\n");
        junk.extend(rng.bytes(4096, 16));
        let mut r = s.raw();
        let _ = r.send(&junk);
        r.set_read_timeout(PROTO_ERR_WAIT);
        match r.read() {
            Ok(Reply::Error(msg)) => assert!(
                msg.starts_with("ERR Protocol error"),
                "seed {seed}: unexpected error {msg:?}"
            ),
            Ok(other) => panic!("seed {seed}: junk got a non-error reply {other:?}"),
            Err(e) => panic!("seed {seed}: no reply to junk: {e}"),
        }
        assert!(
            r.is_closed_within(PROTO_ERR_WAIT),
            "seed {seed}: not closed after protocol error"
        );
    }
    assert_healthy(&mut s);
}

#[test]
fn random_binary_junk_never_crashes() {
    let mut s = Server::start();
    put_sentinel(&s);
    for seed in 0..40u64 {
        let mut rng = Rng::new(1000 + seed);
        let junk = rng.bytes(8192, if seed % 2 == 0 { 0 } else { 40 });
        let Ok(mut stream) = TcpStream::connect(s.addr()) else {
            panic!("seed {seed}: cannot connect\n{}", s.stderr());
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let _ = stream.write_all(&junk);
        // Whatever comes back must be errors (each line starting with '-')
        // or nothing; drain until EOF or quiet.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        if !got.is_empty() {
            let text = String::from_utf8_lossy(&got);
            for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                assert!(
                    line.starts_with('-'),
                    "seed {seed}: non-error reply line to junk: {line:?}"
                );
            }
        }
    }
    // The same junk split into tiny writes.
    for seed in 0..5u64 {
        let mut rng = Rng::new(5000 + seed);
        let junk = rng.bytes(2048, 30);
        let mut stream = TcpStream::connect(s.addr()).unwrap();
        for chunk in junk.chunks(7) {
            if stream.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    }
    assert_healthy(&mut s);
}

#[test]
fn truncated_frames_then_close_execute_nothing() {
    let mut s = Server::start();
    put_sentinel(&s);
    let full = encode(&[b"SET", b"trunc", b"value"]);
    for cut in 1..full.len() {
        let mut stream = TcpStream::connect(s.addr()).unwrap();
        stream.write_all(&full[..cut]).unwrap();
        // Half-close, then full close.
        let _ = stream.shutdown(Shutdown::Write);
        drop(stream);
    }
    // A truncated frame after a complete one: the complete one runs.
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    let mut bytes = encode(&[b"SET", b"complete", b"yes"]);
    bytes.extend_from_slice(&full[..full.len() - 3]);
    stream.write_all(&bytes).unwrap();
    let mut r = RawConn {
        reader: std::io::BufReader::new(stream),
    };
    assert_eq!(r.read().unwrap(), Reply::Simple("OK".into()));
    drop(r);
    std::thread::sleep(Duration::from_millis(200));
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["EXISTS", "trunc"]), Reply::Int(0));
    assert_eq!(
        r.cmd_str(&["GET", "complete"]),
        Reply::Bulk(b"yes".to_vec())
    );
    assert_healthy(&mut s);
}

#[test]
fn slow_and_half_open_clients_do_not_stall_others() {
    let mut s = Server::start();
    put_sentinel(&s);
    let addr = s.addr();
    // 50 half-open clients, each stuck in the middle of a frame.
    let mut idle = Vec::new();
    for i in 0..50 {
        let mut st = TcpStream::connect(addr).unwrap();
        let partial = match i % 3 {
            0 => b"*3\r\n$3\r\nSET\r\n$3\r\nab".to_vec(),
            1 => b"*2\r\n$3\r\nGET".to_vec(),
            _ => b"GET inline-without-newline".to_vec(),
        };
        st.write_all(&partial).unwrap();
        idle.push(st);
    }
    // One client dribbles a valid command one byte per second.
    let cmd = encode(&[b"SET", b"slow", b"dribbled"]);
    let slow = std::thread::spawn(move || {
        let mut st = TcpStream::connect(addr).unwrap();
        st.set_nodelay(true).unwrap();
        st.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let dribble = 5;
        for b in &cmd[..dribble] {
            st.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        }
        st.write_all(&cmd[dribble..]).unwrap();
        let mut r = RawConn {
            reader: std::io::BufReader::new(st),
        };
        r.read().unwrap()
    });
    // Meanwhile, a normal client keeps working with low latency.
    let mut r = s.raw();
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    let mut ops = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        let k = format!("fast{}", ops % 100);
        assert_eq!(
            r.cmd_str(&["SET", &k, &ops.to_string()]),
            Reply::Simple("OK".into())
        );
        assert_eq!(
            r.cmd_str(&["GET", &k]),
            Reply::Bulk(ops.to_string().into_bytes())
        );
        worst = worst.max(t.elapsed());
        ops += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(ops > 100, "only {ops} SET+GET rounds in 5 s");
    assert!(
        worst < Duration::from_millis(500),
        "a SET+GET round took {worst:?} while slow clients were connected"
    );
    assert_eq!(slow.join().unwrap(), Reply::Simple("OK".into()));
    assert_eq!(
        r.cmd_str(&["GET", "slow"]),
        Reply::Bulk(b"dribbled".to_vec())
    );
    // The half-open clients' partial frames did nothing.
    assert_eq!(r.cmd_str(&["EXISTS", "ab"]), Reply::Int(0));
    drop(idle);
    assert_healthy(&mut s);
}

/// Resident memory of a process in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

#[test]
fn declared_big_bulks_do_not_allocate_up_front() {
    let mut s = Server::start();
    put_sentinel(&s);
    let pid = s.pid();
    let before = rss_kib(pid);
    // 8 clients each announce a value just under dynkv's 32 MiB
    // proto-max-bulk-len (256 MiB in all) and send only 256 KiB of it, then
    // sit there.
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut st = TcpStream::connect(s.addr()).unwrap();
        st.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$33554000\r\n")
            .unwrap();
        st.write_all(&vec![b'z'; 256 * 1024]).unwrap();
        clients.push(st);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let after = rss_kib(pid);
    assert!(
        after.saturating_sub(before) < 100 * 1024,
        "RSS grew from {before} KiB to {after} KiB for 2 MiB of received data"
    );
    drop(clients);
    std::thread::sleep(Duration::from_millis(200));
    let mut r = s.raw();
    assert_eq!(r.cmd_str(&["EXISTS", "big"]), Reply::Int(0));
    assert_healthy(&mut s);
}
