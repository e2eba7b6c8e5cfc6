//! A minimal HTTP/1.1 responder for three GET routes, on tokio.
//!
//! It faces the network, so every resource it spends is capped: a connection beyond
//! [`Limits::max_connections`] is closed at once, a request head must arrive within
//! [`Limits::read_timeout`] and fit in [`Limits::max_request`] bytes, and every answer closes
//! the connection (no keep-alive, no request body, no chunked encoding: scrapers and probes
//! need none of it). Anything else gets a plain status code and a one-line reason.

use super::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// What one client may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes.
    pub max_request: usize,
    /// Time allowed to receive the request head, and to write the answer.
    pub read_timeout: Duration,
    /// Connections served at once; more are closed without an answer.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request: 8 << 10,
            read_timeout: Duration::from_secs(5),
            max_connections: 32,
        }
    }
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%addr, cap = limits.max_connections, "metrics endpoint: connection closed, at its connection cap");
            continue;
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = answer(stream, &m, limits).await {
                tracing::debug!(%addr, error = %e, "metrics endpoint: request not served");
            }
        });
    }
}

/// A request we understood.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    head_only: bool,
    path: String,
    openmetrics: bool,
}

/// A request we answer with an error status.
#[derive(Debug, PartialEq, Eq)]
struct Refused(&'static str, &'static str);

/// Parses a complete request head.
fn parse(head: &[u8]) -> Result<Request, Refused> {
    let text = std::str::from_utf8(head)
        .map_err(|_| Refused("400 Bad Request", "the request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused("400 Bad Request", "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Refused(
            "505 HTTP Version Not Supported",
            "only HTTP/1.x is served",
        ));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return Err(Refused(
                "405 Method Not Allowed",
                "only GET and HEAD are served",
            ))
        }
    };
    let path = target.split('?').next().unwrap_or_default().to_string();
    let openmetrics = lines.any(|h| {
        h.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("accept") && v.contains("application/openmetrics-text")
        })
    });
    Ok(Request {
        head_only,
        path,
        openmetrics,
    })
}

/// Reads the request head: up to the blank line, within the limits.
async fn read_head(stream: &mut TcpStream, limits: Limits) -> Result<Vec<u8>, Refused> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                buf.truncate(end);
                return Ok(());
            }
            if buf.len() > limits.max_request {
                return Err(Refused(
                    "431 Request Header Fields Too Large",
                    "the request head is too large",
                ));
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return Err(Refused("400 Bad Request", "the request ended early"))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    match tokio::time::timeout(limits.read_timeout, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(r)) => Err(r),
        Err(_) => Err(Refused(
            "408 Request Timeout",
            "the request head did not arrive in time",
        )),
    }
}

async fn answer(mut stream: TcpStream, m: &Metrics, limits: Limits) -> std::io::Result<()> {
    let (status, ctype, body, head_only) =
        match read_head(&mut stream, limits).await.and_then(|h| parse(&h)) {
            Err(Refused(status, why)) => (status, TEXT, format!("{why}\n"), false),
            Ok(req) => {
                let (status, ctype, body) = route(&req, m).await;
                (status, ctype, body, req.head_only)
            }
        };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(limits.read_timeout, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))?;
    // Closing with unread input makes the kernel reset the connection, which can destroy
    // the answer before the client reads it (a refused, oversized head): read and drop
    // what is still coming, briefly and boundedly, before closing.
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 4 * limits.max_request;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn route(req: &Request, m: &Metrics) -> (&'static str, &'static str, String) {
    match req.path.as_str() {
        "/metrics" => match m.render(req.openmetrics) {
            Ok(body) => (
                "200 OK",
                if req.openmetrics {
                    OPENMETRICS
                } else {
                    PROMETHEUS
                },
                body,
            ),
            Err(_) => (
                "500 Internal Server Error",
                TEXT,
                "the figures could not be encoded\n".into(),
            ),
        },
        "/healthz" => {
            if Metrics::runtime_answers(Duration::from_secs(2)).await {
                ("200 OK", TEXT, "ok\n".into())
            } else {
                (
                    "503 Service Unavailable",
                    TEXT,
                    "the runtime did not run a task within 2 s\n".into(),
                )
            }
        }
        "/readyz" => {
            let r = m.readiness();
            let status = if r.ready() {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, TEXT, r.report())
        }
        _ => (
            "404 Not Found",
            TEXT,
            "served: /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_scrapers_send() {
        let r = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5").unwrap();
        assert_eq!(
            r,
            Request {
                head_only: false,
                path: "/metrics".into(),
                openmetrics: true
            }
        );
        let r = parse(b"HEAD /readyz HTTP/1.0").unwrap();
        assert!(r.head_only && !r.openmetrics);
    }

    #[test]
    fn refuses_the_rest_with_a_status() {
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1").unwrap_err().0,
            "405 Method Not Allowed"
        );
        assert_eq!(
            parse(b"GET /metrics HTTP/2").unwrap_err().0,
            "505 HTTP Version Not Supported"
        );
        assert_eq!(parse(b"GET /metrics").unwrap_err().0, "400 Bad Request");
        assert_eq!(parse(b"\xff\xfe").unwrap_err().0, "400 Bad Request");
    }
}
