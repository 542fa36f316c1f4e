//! TLS on the client port (`--tls-port`): a real dynkv process, a test CA
//! made here with rcgen, and tokio-rustls as the client speaking RESP.

mod common;

use common::{Server, free_ports};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const IO: Duration = Duration::from_secs(10);

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "dynkv test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write pem");
        };
        write("ca.crt", ca.pem());
        for (name, sans, usage) in [
            (
                "server",
                vec!["localhost".to_string(), "127.0.0.1".to_string()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(sans).expect("params");
            params
                .distinguished_name
                .push(DnType::CommonName, format!("dynkv test {name}"));
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca).expect("sign");
            write(&format!("{name}.crt"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        // A key that belongs to no certificate here.
        write(
            "other.key",
            KeyPair::generate().expect("other key").serialize_pem(),
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Starts dynkv with plain TCP on the harness port and TLS on another.
    fn server(&self, auth_clients: &str) -> (Server, u16) {
        let tls_port = free_ports(1)[0].to_string();
        let server = Server::start_with(&[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &self.arg("server.crt"),
            "--tls-key-file",
            &self.arg("server.key"),
            "--tls-ca-cert-file",
            &self.arg("ca.crt"),
            "--tls-auth-clients",
            auth_clients,
        ]);
        (server, tls_port.parse().expect("port"))
    }

    /// A client trusting the test CA, presenting the client certificate
    /// when `with_cert`.
    fn connector(&self, with_cert: bool) -> TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(self.path("ca.crt")).expect("ca") {
            roots.add(cert.expect("ca pem")).expect("add ca");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = if with_cert {
            let chain = CertificateDer::pem_file_iter(self.path("client.crt"))
                .expect("client cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("client pem");
            let key = PrivateKeyDer::from_pem_file(self.path("client.key")).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// Reads a status/error/integer line, or a bulk string's content.
async fn read_item<S: AsyncRead + Unpin>(conn: &mut BufReader<S>) -> std::io::Result<String> {
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end().to_string();
    match line.strip_prefix('$').map(str::parse::<usize>) {
        Some(Ok(len)) => {
            let mut body = vec![0; len + 2];
            conn.read_exact(&mut body).await?;
            body.truncate(len);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Ok(line),
    }
}

/// Writes one command.
async fn send_command<S: AsyncWrite + Unpin>(stream: &mut S, args: &[&str]) -> std::io::Result<()> {
    let mut out = format!("*{}\r\n", args.len());
    for a in args {
        out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

/// Reads one reply (an array of plain items comes back joined by newlines).
async fn read_reply<S: AsyncRead + Unpin>(conn: &mut BufReader<S>) -> std::io::Result<String> {
    tokio::time::timeout(IO, async {
        let first = read_item(conn).await?;
        match first.strip_prefix('*').map(str::parse::<usize>) {
            Some(Ok(n)) => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read_item(conn).await?);
                }
                Ok(items.join("\n"))
            }
            _ => Ok(first),
        }
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Sends one command and reads its reply. `Err` if the connection fails or
/// closes.
async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
    args: &[&str],
) -> std::io::Result<String> {
    send_command(conn.get_mut(), args).await?;
    read_reply(conn).await
}

type TlsConn = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

async fn tls_connect(connector: &TlsConnector, port: u16) -> std::io::Result<TlsConn> {
    tls_connect_with(connector, port, None).await
}

/// `recv_buffer`: a small socket receive buffer, so that the server's
/// writes block as soon as this client stops reading.
async fn tls_connect_with(
    connector: &TlsConnector,
    port: u16,
    recv_buffer: Option<u32>,
) -> std::io::Result<TlsConn> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    let tcp = socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    let name = ServerName::try_from("localhost").expect("server name");
    let tls = tokio::time::timeout(IO, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    Ok(BufReader::new(tls))
}

/// Polls INFO over `conn` until `connected_clients` is `want`.
async fn wait_connected<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut BufReader<S>, want: usize) {
    let deadline = Instant::now() + IO;
    loop {
        let info = call(conn, &["INFO", "clients"]).await.expect("INFO");
        let line = format!("connected_clients:{want}");
        if info.lines().any(|l| l.trim() == line) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {line} in:\n{info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tls_client_with_certificate_runs_commands_and_is_listed() {
    let pki = Pki::new();
    let (server, tls_port) = pki.server("yes");
    let mut tls = tls_connect(&pki.connector(true), tls_port)
        .await
        .expect("TLS connect with a client certificate");
    assert_eq!(call(&mut tls, &["PING"]).await.expect("PING"), "+PONG");
    assert_eq!(
        call(&mut tls, &["SET", "tls:k", "over tls"])
            .await
            .expect("SET"),
        "+OK"
    );
    assert_eq!(
        call(&mut tls, &["GET", "tls:k"]).await.expect("GET"),
        "over tls"
    );

    // A reply spanning many TLS records, and a pipeline answered in one
    // batch, arrive whole.
    let big = "x".repeat(1 << 20);
    assert_eq!(
        call(&mut tls, &["SET", "tls:big", &big])
            .await
            .expect("SET"),
        "+OK"
    );
    assert_eq!(
        call(&mut tls, &["GET", "tls:big"])
            .await
            .expect("GET")
            .len(),
        big.len()
    );
    // 8 MiB to a client with a small receive buffer that reads only after
    // a pause: the server's writes block part-way through the reply, and
    // all of it must still arrive without the client asking again.
    let mut slow = tls_connect_with(&pki.connector(true), tls_port, Some(4096))
        .await
        .expect("TLS connect");
    let mut mget = vec!["MGET"];
    mget.extend(["tls:big"; 8]);
    send_command(slow.get_mut(), &mget).await.expect("MGET");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let values = read_reply(&mut slow).await.expect("the whole MGET reply");
    assert_eq!(values.len(), 8 * big.len() + 7);
    drop(slow);
    let pipeline = "*1\r\n$4\r\nPING\r\n".repeat(500);
    tls.get_mut()
        .write_all(pipeline.as_bytes())
        .await
        .expect("pipeline");
    tls.get_mut().flush().await.expect("flush");
    for _ in 0..500 {
        let reply = tokio::time::timeout(IO, read_item(&mut tls)).await;
        assert_eq!(reply.expect("in time").expect("reply"), "+PONG");
    }

    // The plain port still works alongside and sees the same data.
    let mut plain = BufReader::new(
        TcpStream::connect(server.addr())
            .await
            .expect("plain connect"),
    );
    assert_eq!(
        call(&mut plain, &["GET", "tls:k"]).await.expect("GET"),
        "over tls"
    );

    // Both clients are counted and listed; the TLS one by its TLS port.
    wait_connected(&mut tls, 2).await;
    let list = call(&mut plain, &["CLIENT", "LIST"])
        .await
        .expect("CLIENT LIST");
    assert!(
        list.contains(&format!("laddr=127.0.0.1:{tls_port}")),
        "{list}"
    );
    let info = call(&mut tls, &["CLIENT", "INFO"]).await.expect("INFO");
    assert!(
        info.contains(&format!("laddr=127.0.0.1:{tls_port}")),
        "{info}"
    );

    let config = call(&mut plain, &["CONFIG", "GET", "tls-*"])
        .await
        .expect("CONFIG GET");
    for expected in [
        format!("tls-port\n{tls_port}"),
        "tls-auth-clients\nyes".to_string(),
        format!("tls-cert-file\n{}", pki.arg("server.crt")),
    ] {
        assert!(config.contains(&expected), "{expected:?} not in {config:?}");
    }
    drop(server);
}

#[tokio::test]
async fn tls_auth_clients_yes_refuses_a_client_without_certificate() {
    let pki = Pki::new();
    let (_server, tls_port) = pki.server("yes");
    // Under TLS 1.3 the client may finish its side before the server
    // rejects it, so the refusal shows at the latest on the first command.
    let refused = match tls_connect(&pki.connector(false), tls_port).await {
        Err(_) => true,
        Ok(mut conn) => call(&mut conn, &["PING"]).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    // The server is fine afterwards.
    let mut ok = tls_connect(&pki.connector(true), tls_port)
        .await
        .expect("TLS connect");
    assert_eq!(call(&mut ok, &["PING"]).await.expect("PING"), "+PONG");
}

#[tokio::test]
async fn tls_auth_clients_no_and_optional_serve_a_client_without_certificate() {
    let pki = Pki::new();
    for mode in ["no", "optional"] {
        let (_server, tls_port) = pki.server(mode);
        for with_cert in [false, true] {
            let mut conn = tls_connect(&pki.connector(with_cert), tls_port)
                .await
                .unwrap_or_else(|e| panic!("{mode}, client cert {with_cert}: {e}"));
            assert_eq!(call(&mut conn, &["PING"]).await.expect("PING"), "+PONG");
        }
    }
}

#[tokio::test]
async fn plain_text_on_the_tls_port_is_closed_and_a_silent_one_blocks_nobody() {
    let pki = Pki::new();
    let (server, tls_port) = pki.server("yes");
    // A client that connects and says nothing is still in its handshake;
    // it must not stop the port from accepting others.
    let _silent = TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .expect("connect");

    let mut plain_on_tls = BufReader::new(
        TcpStream::connect(("127.0.0.1", tls_port))
            .await
            .expect("connect"),
    );
    let answer = call(&mut plain_on_tls, &["PING"]).await;
    assert!(
        !matches!(&answer, Ok(reply) if reply.starts_with('+')),
        "plain RESP on the TLS port got {answer:?}"
    );
    // Closed, not left hanging: reading goes to EOF or a reset quickly.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(IO, plain_on_tls.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the server left the connection open");

    let mut tls = tls_connect(&pki.connector(true), tls_port)
        .await
        .expect("TLS connect");
    assert_eq!(call(&mut tls, &["PING"]).await.expect("PING"), "+PONG");
    let mut plain = BufReader::new(TcpStream::connect(server.addr()).await.expect("connect"));
    assert_eq!(call(&mut plain, &["PING"]).await.expect("PING"), "+PONG");
}

#[tokio::test]
async fn tls_clients_count_against_maxclients() {
    let pki = Pki::new();
    let tls_port = free_ports(1)[0];
    let server = Server::start_with(&[
        "--maxclients",
        "1",
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &pki.arg("server.crt"),
        "--tls-key-file",
        &pki.arg("server.key"),
        "--tls-auth-clients",
        "no",
    ]);
    // The harness's readiness probe may hold the one slot for a moment.
    let connector = pki.connector(false);
    let deadline = Instant::now() + IO;
    let mut tls = loop {
        if let Ok(mut conn) = tls_connect(&connector, tls_port).await
            && call(&mut conn, &["PING"]).await.is_ok_and(|r| r == "+PONG")
        {
            break conn;
        }
        assert!(
            Instant::now() < deadline,
            "the TLS client never got the slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut plain = BufReader::new(TcpStream::connect(server.addr()).await.expect("connect"));
    // The refusal is written on connect, before any request.
    let refused = tokio::time::timeout(IO, read_item(&mut plain))
        .await
        .expect("refused in time")
        .expect("a reply");
    assert!(refused.contains("max number of clients"), "{refused}");
    assert_eq!(call(&mut tls, &["PING"]).await.expect("PING"), "+PONG");
}

#[tokio::test]
async fn tls_only_with_port_zero() {
    let pki = Pki::new();
    let ports = free_ports(2);
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynkv"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--metrics-port", "0"])
        .args(["--tls-port", &ports[0].to_string()])
        .args(["--cluster-port", &ports[1].to_string()])
        .args(["--tls-cert-file", &pki.arg("server.crt")])
        .args(["--tls-key-file", &pki.arg("server.key")])
        .args(["--tls-auth-clients", "no"])
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dynkv");
    let connector = pki.connector(false);
    let deadline = Instant::now() + common::START_TIMEOUT;
    let mut conn = loop {
        if let Ok(mut conn) = tls_connect(&connector, ports[0]).await
            && call(&mut conn, &["PING"]).await.is_ok_and(|r| r == "+PONG")
        {
            break conn;
        }
        assert!(Instant::now() < deadline, "TLS-only node never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        call(&mut conn, &["CONFIG", "GET", "port"])
            .await
            .expect("CONFIG GET"),
        "port\n0"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs dynkv with these TLS flags and returns its exit status and stderr;
/// it must exit by itself, quickly.
fn startup_failure(tls_args: &[String]) -> (std::process::ExitStatus, String) {
    let ports = free_ports(2);
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dynkv"))
        .args(["--bind", "127.0.0.1", "--metrics-port", "0"])
        .args(["--port", &ports[0].to_string()])
        .args(["--tls-port", &ports[1].to_string()])
        .args(tls_args)
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dynkv");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dynkv kept running with {tls_args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}

#[test]
fn bad_certificate_or_key_files_fail_startup_with_one_clear_line() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.pem"), "this is not PEM\n").expect("write");
    let arg = |flag: &str, file: &Path| [flag.to_string(), file.display().to_string()];
    let cert = arg("--tls-cert-file", &pki.path("server.crt"));
    let key = arg("--tls-key-file", &pki.path("server.key"));
    let no_auth = ["--tls-auth-clients".to_string(), "no".to_string()];
    let missing = pki.path("missing.crt");
    let cases: Vec<(Vec<String>, PathBuf, &str)> = vec![
        (
            [
                arg("--tls-cert-file", &missing),
                key.clone(),
                no_auth.clone(),
            ]
            .concat(),
            missing.clone(),
            "cannot read",
        ),
        (
            [
                arg("--tls-cert-file", &pki.path("garbage.pem")),
                key.clone(),
                no_auth.clone(),
            ]
            .concat(),
            pki.path("garbage.pem"),
            "no PEM certificate",
        ),
        (
            [
                cert.clone(),
                arg("--tls-key-file", &pki.path("server.crt")),
                no_auth.clone(),
            ]
            .concat(),
            pki.path("server.crt"),
            "no PEM private key",
        ),
        (
            [
                cert.clone(),
                arg("--tls-key-file", &pki.path("other.key")),
                no_auth.clone(),
            ]
            .concat(),
            pki.path("other.key"),
            "does not belong to the certificate",
        ),
        (
            [
                cert.clone(),
                key.clone(),
                arg("--tls-ca-cert-file", &pki.path("garbage.pem")),
            ]
            .concat(),
            pki.path("garbage.pem"),
            "--tls-ca-cert-file",
        ),
    ];
    for (args, file, says) in cases {
        let (status, stderr) = startup_failure(&args);
        assert!(!status.success(), "{args:?} started: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("dynkv: "))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {stderr}"));
        assert!(
            line.contains(&file.display().to_string()) && line.contains(says),
            "{args:?}: {line}"
        );
    }
    // Settings that cannot work are refused before any file is read.
    let (status, stderr) = startup_failure(&cert);
    assert!(!status.success());
    assert!(stderr.contains("--tls-key-file"), "{stderr}");
}
