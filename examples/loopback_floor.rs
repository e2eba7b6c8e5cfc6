//! What one message costs a server on this machine before any Erlang or Rust work: the
//! floor under every "server CPU per cast" figure of scripts/bench.
//!
//! A blocking echo server thread (no tokio, no decoding: read what arrived, answer each
//! 4-byte-length frame with a 60-byte frame, one `send` per read) and a client thread that
//! sends 250-byte frames (about a rexi doit's size) one `send` each, on an absolute schedule
//! at a fixed rate, like the Erlang generator's open loop. The server thread's CPU
//! (`/proc/thread-self/schedstat`) and context switches over the measured window are divided
//! by the messages it answered in that window.
//!
//!     cargo run --release --example loopback_floor -- RATE SECONDS
//!
//! RATE 0 sends as fast as the socket takes it. Prints
//! `FLOOR rate=.. msgs=.. server_cpu_100k=.. server_cs_per_msg=..` (CPU seconds per 100k
//! messages, as scripts/bench reports servers).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REQUEST: usize = 250;
const REPLY: usize = 60;

/// This thread's CPU nanoseconds and context switches so far.
fn thread_figures() -> (u64, u64) {
    let cpu = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cs = std::fs::read_to_string("/proc/thread-self/status")
        .map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    (cpu, cs)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000.0);
    let secs: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4.0);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    let answered = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    let server = {
        let (answered, measuring, stop) = (answered.clone(), measuring.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            let mut buf = vec![0u8; 256 << 10];
            let mut have = 0;
            let mut out = Vec::with_capacity(64 << 10);
            let mut window: Option<(u64, u64, u64)> = None;
            let mut result = (0, 0, 0);
            loop {
                let n = match s.read(&mut buf[have..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                have += n;
                let mut at = 0;
                while have - at >= 4 {
                    let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
                        as usize;
                    if have - at < 4 + len {
                        break;
                    }
                    at += 4 + len;
                    out.extend_from_slice(&(REPLY as u32 - 4).to_be_bytes());
                    out.resize(out.len() + REPLY - 4, 7);
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                buf.copy_within(at..have, 0);
                have -= at;
                if !out.is_empty() {
                    if s.write_all(&out).is_err() {
                        break;
                    }
                    out.clear();
                }
                match (measuring.load(Ordering::Relaxed), window) {
                    (true, None) => {
                        let (c, x) = thread_figures();
                        window = Some((c, x, answered.load(Ordering::Relaxed)));
                    }
                    (false, Some((c0, x0, a0))) => {
                        let (c, x) = thread_figures();
                        result = (c - c0, x - x0, answered.load(Ordering::Relaxed) - a0);
                        window = None;
                    }
                    _ => {}
                }
                if stop.load(Ordering::Relaxed) && window.is_none() && result.2 > 0 {
                    break;
                }
            }
            result
        })
    };

    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut reader = c.try_clone().expect("clone");
    let drain = std::thread::spawn(move || {
        let mut b = vec![0u8; 64 << 10];
        while matches!(reader.read(&mut b), Ok(n) if n > 0) {}
    });
    let mut frame = (REQUEST as u32 - 4).to_be_bytes().to_vec();
    frame.resize(REQUEST, 1);
    let warm = Duration::from_secs(1);
    let total = warm + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut i: u64 = 0;
    loop {
        let now = t0.elapsed();
        if now >= total {
            break;
        }
        measuring.store(now >= warm, Ordering::Relaxed);
        if rate > 0.0 {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        c.write_all(&frame).expect("send");
        i += 1;
    }
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    // One more frame so the server wakes up and closes its window.
    let _ = c.write_all(&frame);
    let (cpu_ns, cs, msgs) = server.join().expect("server thread");
    let _ = c.shutdown(std::net::Shutdown::Both);
    let _ = drain.join();
    let per = |x: f64| if msgs > 0 { x / msgs as f64 } else { 0.0 };
    println!(
        "FLOOR rate={rate} msgs={msgs} server_cpu_100k={:.4} server_cs_per_msg={:.3}",
        per(cpu_ns as f64) * 100_000.0 / 1e9,
        per(cs as f64)
    );
}
