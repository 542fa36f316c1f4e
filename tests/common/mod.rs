//! Test harness shared by the integration tests: spawns a `dynkv` server
//! (or, with `DYNKV_TEST_AGAINST=redis`, a real `redis-server` so the
//! expectations themselves can be checked against the reference) on free
//! loopback ports, plus a tiny raw RESP client for byte-exact checks.
#![allow(dead_code)]

pub mod cluster;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first PING.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Read/write timeout on every test connection, so a hung server fails a
/// test instead of hanging the whole run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// True when the tests run against a real `redis-server`
/// (`DYNKV_TEST_AGAINST=redis`). Tests of dynkv-only behaviour return early.
pub fn is_real_redis() -> bool {
    std::env::var("DYNKV_TEST_AGAINST")
        .map(|v| v.eq_ignore_ascii_case("redis"))
        .unwrap_or(false)
}

/// Picks `n` distinct free loopback ports (all listeners are held until
/// every port is chosen, so they are distinct).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// A running server under test. Dropping it kills the process.
pub struct Server {
    child: Option<Child>,
    port: u16,
    cluster_port: u16,
    metrics_port: u16,
    memcache_port: u16,
    extra_args: Vec<String>,
    data_dir: tempfile::TempDir,
    log_dir: tempfile::TempDir,
    real_redis: bool,
    password: Option<String>,
}

impl Server {
    /// Starts a server with default options.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server with extra command-line flags (dynkv flags; against
    /// real Redis only `--requirepass PW`, `--fsync P` and
    /// `--proto-max-bulk-len N` are translated, the rest ignored).
    pub fn start_with(args: &[&str]) -> Server {
        let ports = free_ports(4);
        let password = args
            .iter()
            .position(|a| *a == "--requirepass")
            .and_then(|i| args.get(i + 1))
            .map(|s| s.to_string());
        let mut server = Server {
            child: None,
            port: ports[0],
            cluster_port: ports[1],
            metrics_port: ports[2],
            memcache_port: ports[3],
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            data_dir: tempfile::Builder::new()
                .prefix("dynkv-test-data")
                .tempdir()
                .expect("tempdir"),
            log_dir: tempfile::Builder::new()
                .prefix("dynkv-test-log")
                .tempdir()
                .expect("tempdir"),
            real_redis: is_real_redis(),
            password,
        };
        // A port free when chosen can be taken before the server binds it
        // (another test's outgoing connection): then retry on fresh ports.
        for attempt in 1.. {
            server.launch();
            match server.wait_ready() {
                Ok(()) => break,
                Err(e) if attempt < 5 && e.contains("Address already in use") => {
                    let ports = free_ports(4);
                    (
                        server.port,
                        server.cluster_port,
                        server.metrics_port,
                        server.memcache_port,
                    ) = (ports[0], ports[1], ports[2], ports[3]);
                    server.data_dir = tempfile::Builder::new()
                        .prefix("dynkv-test-data")
                        .tempdir()
                        .expect("tempdir");
                    server.log_dir = tempfile::Builder::new()
                        .prefix("dynkv-test-log")
                        .tempdir()
                        .expect("tempdir");
                }
                Err(e) => panic!("{e}"),
            }
        }
        server
    }

    fn stderr_path(&self) -> PathBuf {
        self.log_dir.path().join("stderr.log")
    }

    fn stdout_path(&self) -> PathBuf {
        self.log_dir.path().join("stdout.log")
    }

    /// Everything the server (all its incarnations) wrote to stderr.
    pub fn stderr(&self) -> String {
        let mut s = std::fs::read_to_string(self.stderr_path()).unwrap_or_default();
        let out = std::fs::read_to_string(self.stdout_path()).unwrap_or_default();
        if !out.is_empty() {
            s.push_str("\n--- stdout ---\n");
            s.push_str(&out);
        }
        // Keep panic messages readable.
        if s.len() > 20_000 {
            let cut = s.len() - 20_000;
            let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s = format!("[... {cut} bytes cut ...]{}", &s[cut..]);
        }
        s
    }

    fn log_file(path: &Path) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open log file")
    }

    fn spawn(&mut self) {
        self.launch();
        if let Err(e) = self.wait_ready() {
            panic!("{e}");
        }
    }

    fn launch(&mut self) {
        let mut cmd;
        if self.real_redis {
            cmd = Command::new("redis-server");
            cmd.arg("--port")
                .arg(self.port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--save")
                .arg("")
                .arg("--dir")
                .arg(self.data_dir.path());
            if let Some(pw) = &self.password {
                cmd.arg("--requirepass").arg(pw);
            }
            // `--fsync P` turns on Redis's AOF with the same fsync policy, so
            // the durability tests can be checked against Redis too.
            match self
                .extra_args
                .iter()
                .position(|a| a == "--fsync")
                .and_then(|i| self.extra_args.get(i + 1))
            {
                Some(policy) => {
                    cmd.arg("--appendonly")
                        .arg("yes")
                        .arg("--appendfsync")
                        .arg(policy);
                }
                None => {
                    cmd.arg("--appendonly").arg("no");
                }
            }
            // Redis reads the same flag (and the same `32mb` forms).
            if let Some(bytes) = self
                .extra_args
                .iter()
                .position(|a| a == "--proto-max-bulk-len")
                .and_then(|i| self.extra_args.get(i + 1))
            {
                cmd.arg("--proto-max-bulk-len").arg(bytes);
            }
        } else {
            cmd = Command::new(env!("CARGO_BIN_EXE_dynkv"));
            cmd.arg("--bind")
                .arg("127.0.0.1")
                .arg("--port")
                .arg(self.port.to_string())
                .arg("--cluster-port")
                .arg(self.cluster_port.to_string())
                .arg("--metrics-port")
                .arg(self.metrics_port.to_string())
                .arg("--data-dir")
                .arg(self.data_dir.path());
            if !self.extra_args.iter().any(|a| a == "--memcache-port") {
                cmd.arg("--memcache-port")
                    .arg(self.memcache_port.to_string());
            }
            if !self.extra_args.iter().any(|a| a == "--node-name") {
                cmd.arg("--node-name").arg(format!("test-{}", self.port));
            }
            cmd.args(&self.extra_args);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(Self::log_file(&self.stdout_path())))
            .stderr(Stdio::from(Self::log_file(&self.stderr_path())));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot spawn {:?}: {e}",
                if self.real_redis {
                    "redis-server"
                } else {
                    env!("CARGO_BIN_EXE_dynkv")
                }
            )
        });
        self.child = Some(child);
    }

    /// Waits until the server answers PING with +PONG (or NOAUTH, for a
    /// server with `--requirepass`).
    /// Panics if it does not answer in time; `Err` (with its stderr) if it
    /// exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "server on port {} exited with {status} before answering PING\n--- stderr ---\n{}",
                    self.port,
                    self.stderr()
                ));
            }
            if self.try_ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "server on port {} did not answer PING within {:?}\n--- stderr ---\n{}",
                    self.port,
                    START_TIMEOUT,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
            return false;
        }
        // +PONG, or -NOAUTH on a server with --requirepass, means ready;
        // -LOADING (still replaying its data) and anything else means not yet.
        let mut line = String::new();
        if BufReader::new(s).read_line(&mut line).is_err() {
            return false;
        }
        line.starts_with('+') || line.starts_with("-NOAUTH")
    }

    /// The client (RESP) address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The memcached-protocol address (every test server gets a port).
    pub fn memcache_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.memcache_port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn cluster_port(&self) -> u16 {
        self.cluster_port
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// `redis://127.0.0.1:PORT/` (without credentials).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A redis-rs client for this server (credentials are not included;
    /// use [`Server::client_for`] to add query parameters or a password).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis::Client::open")
    }

    /// A client for `redis://[userinfo@]127.0.0.1:PORT/[suffix]`.
    pub fn client_for(&self, userinfo: &str, suffix: &str) -> redis::Client {
        let url = if userinfo.is_empty() {
            format!("redis://127.0.0.1:{}/{}", self.port, suffix)
        } else {
            format!("redis://{}@127.0.0.1:{}/{}", userinfo, self.port, suffix)
        };
        redis::Client::open(url).expect("redis::Client::open")
    }

    /// A RESP3 client.
    pub fn client_resp3(&self) -> redis::Client {
        self.client_for("", "?protocol=resp3")
    }

    /// A synchronous connection with I/O timeouts set.
    pub fn conn(&self) -> redis::Connection {
        connect(&self.client())
    }

    /// A multiplexed async connection (tokio).
    pub async fn async_conn(&self) -> redis::aio::MultiplexedConnection {
        tokio::time::timeout(IO_TIMEOUT, self.client().get_multiplexed_async_connection())
            .await
            .expect("async connect timed out")
            .expect("async connect")
    }

    /// A raw RESP connection for byte-exact checks.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.addr())
    }

    /// SIGKILL the server and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM the server and wait (up to 20 s) for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is not running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within 20 s of SIGTERM\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same ports and data dir (kills it
    /// first with SIGKILL if it is still running).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is not running").id()
    }

    /// Waits up to `within` for the process to exit on its own; its exit
    /// status, or None if it is still running (or was never started).
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Is the process still alive?
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Opens a synchronous connection with I/O timeouts.
pub fn connect(client: &redis::Client) -> redis::Connection {
    let con = client
        .get_connection_with_timeout(IO_TIMEOUT)
        .expect("connect");
    con.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    con
}

/// The full text of a server error, e.g. `ERR syntax error`.
pub fn err_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => format!("{e}"),
    }
}

/// Runs `cmd`, asserts it fails with a server error and returns its text.
pub fn query_err(con: &mut redis::Connection, cmd: &redis::Cmd) -> String {
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!("expected an error reply, got {v:?}"),
        Err(e) => err_text(&e),
    }
}

/// Shorthand for `redis::cmd(name)` with arguments.
pub fn cmd(args: &[&str]) -> redis::Cmd {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// Runs `args` and decodes the reply; panics naming the command if it fails.
pub fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    cmd(args)
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs `args`, which must fail, and returns the error's text.
pub fn err(c: &mut redis::Connection, args: &[&str]) -> String {
    cmd(args)
        .query::<redis::Value>(c)
        .expect_err(&format!("{args:?} should fail"))
        .to_string()
}

// ---------------------------------------------------------------------------
// Raw RESP client
// ---------------------------------------------------------------------------

/// One RESP2/RESP3 reply, as decoded by [`read_reply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Nil,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Push(Vec<Reply>),
    Double(String),
    Bool(bool),
    BigNum(String),
    Verbatim(String, Vec<u8>),
}

impl Reply {
    /// Bulk/simple/verbatim content as a lossy string.
    pub fn as_str(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) | Reply::Double(s) | Reply::BigNum(s) => s.clone(),
            Reply::Bulk(b) | Reply::Verbatim(_, b) => String::from_utf8_lossy(b).into_owned(),
            Reply::Int(i) => i.to_string(),
            other => panic!("reply {other:?} is not a string"),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line without CRLF: {:?}", String::from_utf8_lossy(&line)),
        ));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn parse_num(s: &str) -> io::Result<i64> {
    s.parse::<i64>()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad number {s:?}: {e}")))
}

fn read_n<R: BufRead>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n + 2];
    r.read_exact(&mut buf)?;
    if &buf[n..] != b"\r\n" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bulk without CRLF",
        ));
    }
    buf.truncate(n);
    Ok(buf)
}

/// Reads one complete reply.
pub fn read_reply<R: BufRead>(r: &mut R) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(1.min(line.len()));
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(parse_num(rest)?),
        "$" => {
            let n = parse_num(rest)?;
            if n < 0 {
                Reply::Nil
            } else {
                Reply::Bulk(read_n(r, n as usize)?)
            }
        }
        "*" | "~" | ">" => {
            let n = parse_num(rest)?;
            if n < 0 {
                Reply::Nil
            } else {
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(read_reply(r)?);
                }
                match kind {
                    "*" => Reply::Array(items),
                    "~" => Reply::Set(items),
                    _ => Reply::Push(items),
                }
            }
        }
        "%" | "|" => {
            let n = parse_num(rest)?;
            let mut items = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let k = read_reply(r)?;
                let v = read_reply(r)?;
                items.push((k, v));
            }
            if kind == "|" {
                // Attribute: skip it, return the reply it annotates.
                return read_reply(r);
            }
            Reply::Map(items)
        }
        "_" => Reply::Nil,
        "," => Reply::Double(rest.to_string()),
        "#" => Reply::Bool(rest == "t"),
        "(" => Reply::BigNum(rest.to_string()),
        "!" => {
            let n = parse_num(rest)?;
            Reply::Error(String::from_utf8_lossy(&read_n(r, n as usize)?).into_owned())
        }
        "=" => {
            let n = parse_num(rest)?;
            let data = read_n(r, n as usize)?;
            let (fmt, body) = data.split_at(4.min(data.len()));
            Reply::Verbatim(
                String::from_utf8_lossy(&fmt[..3.min(fmt.len())]).into_owned(),
                body.to_vec(),
            )
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown reply type in line {line:?}"),
            ));
        }
    })
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A raw TCP connection speaking RESP, with read/write timeouts.
pub struct RawConn {
    pub reader: BufReader<TcpStream>,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("raw connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        RawConn {
            reader: BufReader::new(s),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.stream().set_read_timeout(Some(d)).expect("timeout");
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.reader.get_ref();
        s.write_all(bytes)?;
        s.flush()
    }

    /// Reads one reply.
    pub fn read(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    /// Sends a command (as a RESP array) and reads its reply.
    pub fn cmd(&mut self, args: &[&[u8]]) -> Reply {
        self.send(&encode(args)).expect("send");
        self.read().expect("read reply")
    }

    /// Like [`RawConn::cmd`] with string arguments.
    pub fn cmd_str(&mut self, args: &[&str]) -> Reply {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd(&v)
    }

    /// True if the server closed the connection (EOF or reset) within
    /// `within`; false if it is still open (read timed out) or sent data.
    pub fn is_closed_within(&mut self, within: Duration) -> bool {
        self.set_read_timeout(within);
        let mut buf = [0u8; 256];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue, // drain trailing data, then look for EOF
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }
}
