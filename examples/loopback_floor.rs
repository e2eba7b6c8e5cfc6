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
//!     cargo run --release --example loopback_floor -- RATE SECONDS [--tokio]
//!
//! RATE 0 sends as fast as the socket takes it. With `--tokio` the same echo runs on a
//! single-threaded tokio runtime, as rexi-node's connections do: the difference to the
//! blocking floor is what the readiness model (an `epoll_wait` per wake-up) and tokio's
//! scheduler cost before any work of ours. Prints
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

/// What the server thread shares with the client thread.
struct Shared {
    answered: Arc<AtomicU64>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// The server's side of one read: answers every complete frame in `buf[..have]` into
/// `out` and returns how many bytes they took.
fn answer(buf: &[u8], have: usize, out: &mut Vec<u8>, answered: &AtomicU64) -> usize {
    let mut at = 0;
    while have - at >= 4 {
        let len = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
        if have - at < 4 + len {
            break;
        }
        at += 4 + len;
        out.extend_from_slice(&(REPLY as u32 - 4).to_be_bytes());
        out.resize(out.len() + REPLY - 4, 7);
        answered.fetch_add(1, Ordering::Relaxed);
    }
    at
}

/// The measured window, opened and closed by the server thread itself (its own CPU is
/// what is measured) when the client says so.
#[derive(Default)]
struct Window {
    open: Option<(u64, u64, u64)>,
    /// CPU nanoseconds, context switches and messages of the closed window.
    result: (u64, u64, u64),
}

impl Window {
    /// After a read: opens or closes the window; true when the server should stop.
    fn step(&mut self, shared: &Shared) -> bool {
        let answered = shared.answered.load(Ordering::Relaxed);
        match (shared.measuring.load(Ordering::Relaxed), self.open) {
            (true, None) => {
                let (c, x) = thread_figures();
                self.open = Some((c, x, answered));
            }
            (false, Some((c0, x0, a0))) => {
                let (c, x) = thread_figures();
                self.result = (c - c0, x - x0, answered - a0);
                self.open = None;
            }
            _ => {}
        }
        shared.stop.load(Ordering::Relaxed) && self.open.is_none() && self.result.2 > 0
    }
}

/// The server's buffers: what was read and not yet answered, and the replies to send.
struct Echo {
    buf: Vec<u8>,
    have: usize,
    out: Vec<u8>,
}

impl Echo {
    fn new() -> Echo {
        Echo {
            buf: vec![0u8; 256 << 10],
            have: 0,
            out: Vec::with_capacity(64 << 10),
        }
    }

    /// Where the next read goes.
    fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.have..]
    }

    /// After a read of `n` bytes: answers every complete frame; the replies to send (empty
    /// if none), which stay until [`Echo::sent`].
    fn took(&mut self, n: usize, answered: &AtomicU64) -> &[u8] {
        self.have += n;
        let at = answer(&self.buf, self.have, &mut self.out, answered);
        self.buf.copy_within(at..self.have, 0);
        self.have -= at;
        &self.out
    }

    fn sent(&mut self) {
        self.out.clear();
    }
}

/// The floor itself: a blocking thread, one `recv` (which sleeps until data comes) and one
/// `send` per message at low rates.
fn serve_blocking(mut s: TcpStream, shared: Shared) -> (u64, u64, u64) {
    let mut echo = Echo::new();
    let mut window = Window::default();
    loop {
        let n = match s.read(echo.spare()) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let replies = echo.took(n, &shared.answered);
        if !replies.is_empty() && s.write_all(replies).is_err() {
            break;
        }
        echo.sent();
        if window.step(&shared) {
            break;
        }
    }
    window.result
}

/// The same server on a single-threaded tokio runtime (rexi-node's model: one runtime per
/// connection thread): the readiness model adds an `epoll_wait` per wake-up and tokio's
/// scheduler and I/O driver, with no decoding or rexi work at all.
fn serve_tokio(s: TcpStream, shared: Shared) -> (u64, u64, u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Built as rexi-node builds a connection thread's runtime (src/net/threads.rs).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        s.set_nonblocking(true).expect("nonblocking");
        let mut s = tokio::net::TcpStream::from_std(s).expect("tokio socket");
        let mut echo = Echo::new();
        let mut window = Window::default();
        loop {
            let n = match s.read(echo.spare()).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let replies = echo.took(n, &shared.answered);
            if !replies.is_empty() && s.write_all(replies).await.is_err() {
                break;
            }
            echo.sent();
            if window.step(&shared) {
                break;
            }
        }
        window.result
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tokio_mode = args.iter().any(|a| a == "--tokio");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--tokio").collect();
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000.0);
    let secs: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(4.0);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local address");
    let answered = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    let server = {
        let shared = Shared {
            answered: answered.clone(),
            measuring: measuring.clone(),
            stop: stop.clone(),
        };
        std::thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            if tokio_mode {
                serve_tokio(s, shared)
            } else {
                serve_blocking(s, shared)
            }
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
        "FLOOR model={} rate={rate} msgs={msgs} server_cpu_100k={:.4} server_cs_per_msg={:.3}",
        if tokio_mode { "tokio" } else { "blocking" },
        per(cpu_ns as f64) * 100_000.0 / 1e9,
        per(cs as f64)
    );
}
