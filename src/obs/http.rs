//! The metrics HTTP endpoint: `GET /metrics` answers the Prometheus text,
//! every other path 404. (The exporter's built-in listener answers every
//! path with metrics, which makes probes and scanners look like scrapes.)

use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A request head larger than this is refused (a scrape sends ~200 bytes).
const MAX_HEAD: usize = 8 * 1024;
/// A client gets this long to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What to answer a request line with: status line and whether the body is
/// the metrics text. Pure so the routing is testable without sockets.
pub fn route(request_line: &str) -> (&'static str, bool) {
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return ("400 Bad Request", false);
    };
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => ("200 OK", true),
        (_, "/metrics") => ("405 Method Not Allowed", false),
        _ => ("404 Not Found", false),
    }
}

/// Serves scrapes on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, &handle)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "",
                false,
            )
            .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("");
    let (status, metrics) = route(line);
    let head_only = line.starts_with("HEAD ");
    if metrics {
        let body = handle.render();
        respond(&mut stream, status, &body, head_only).await
    } else {
        respond(&mut stream, status, status, head_only).await
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::route;

    #[test]
    fn only_metrics_path_serves_metrics() {
        assert_eq!(route("GET /metrics HTTP/1.1"), ("200 OK", true));
        assert_eq!(route("GET /metrics?x=1 HTTP/1.1"), ("200 OK", true));
        assert_eq!(route("GET / HTTP/1.1").0, "404 Not Found");
        assert_eq!(route("GET /metricsx HTTP/1.1").0, "404 Not Found");
        assert_eq!(route("POST /metrics HTTP/1.1").0, "405 Method Not Allowed");
        assert_eq!(route("garbage").0, "400 Bad Request");
    }
}
