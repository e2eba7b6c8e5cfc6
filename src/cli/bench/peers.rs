//! `--peers N`: connects N idle hidden caller nodes (in one process), prints `READY` and
//! holds them for `--duration` seconds, so the target's memory per peer can be measured.

use super::{caller_name, start_client, Args, BenchError};
use rexi_node::net::Cookie;
use std::time::{Duration, Instant};

/// Handshakes in flight at once. All peers dial from one address, and the daemon admits at
/// most `--max-handshakes-per-address` (16 by default) unauthenticated sockets per address:
/// staying below it measures memory per peer, not the admission limit.
const DIAL_AT_ONCE: usize = 8;

pub(super) async fn run(a: &Args, base: &str, cookie: Cookie, n: usize) -> Result<(), BenchError> {
    let t = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + DIAL_AT_ONCE).min(n))
            .map(|k| start_client(a, caller_name(base, format!("p{k}")), cookie.clone()))
            .collect();
        for r in futures::future::join_all(batch).await {
            clients.push(r?);
        }
        i += DIAL_AT_ONCE;
    }
    println!(
        "READY peers={} connect_secs={:.2}",
        clients.len(),
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    println!("BENCH mode=peers peers={}", clients.len());
    Ok(())
}
