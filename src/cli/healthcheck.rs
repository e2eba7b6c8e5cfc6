//! `rexi-node healthcheck ADDR`: asks a daemon's metrics endpoint (`run --metrics-addr`) for
//! `/readyz` (or `--path`) and exits 0 on `200`, 1 otherwise. A probe for container images
//! that have no curl: docker-compose.yml's healthcheck runs it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The daemon's --metrics-addr, e.g. 127.0.0.1:9568.
    pub addr: SocketAddr,
    /// The path to ask: /readyz (ready to serve), /healthz (alive) or /metrics.
    #[arg(long, default_value = "/readyz")]
    pub path: String,
    /// Seconds allowed for the whole exchange.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    /// Print nothing; only the exit code tells.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Largest answer read: the figures of a big cluster with per-peer series fit.
const MAX_ANSWER: u64 = 16 << 20;

fn ask(a: &Args) -> Result<(u16, String), String> {
    let limit = Duration::from_secs(a.timeout.max(1));
    let mut s = TcpStream::connect_timeout(&a.addr, limit).map_err(|e| {
        format!(
            "cannot connect to {}: {e} (is rexi-node running with --metrics-addr {}?)",
            a.addr, a.addr
        )
    })?;
    let _ = s.set_read_timeout(Some(limit));
    let _ = s.set_write_timeout(Some(limit));
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        a.path, a.addr
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{}: cannot send the request: {e}", a.addr))?;
    let mut answer = Vec::new();
    s.take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|e| format!("{}: no complete answer: {e}", a.addr))?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("{} did not answer HTTP", a.addr))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

pub(crate) fn main(a: Args) -> ExitCode {
    match ask(&a) {
        Ok((200, body)) => {
            if !a.quiet {
                print!("{body}");
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            if !a.quiet {
                eprint!("rexi-node: {}{} answered {status}\n{body}", a.addr, a.path);
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            if !a.quiet {
                eprintln!("rexi-node: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
