//! `rexi-node bench`: a load generator that is itself a hidden caller node.
//!
//! It casts `rexi_node:echo(<<Payload>>)` (or `sleep(Ms)`) doits at `{Server, Target}` the
//! way `rexi:cast` does and times each `{Ref, Reply}`. The doit frame is encoded once per
//! connection; each cast copies it into the connection's outbox and patches the two
//! reference words that carry its sequence number, so the generator spends its CPU on
//! sockets and not on encoding. Replies are handled on the connection's reader task (no
//! mailbox hop) and, in the closed-loop mode, the next cast goes out from there.
//!
//! Modes:
//! * closed loop (default): `--concurrency W` casts in flight for `--duration` seconds;
//! * fixed rate: `--rate R` casts per second, paced by a thread, latency measured from the
//!   moment each cast was due (no coordinated omission);
//! * `--hold N`: put N `rexi_node:sleep(--sleep-ms)` jobs in flight, wait until the target
//!   reports them running, print `READY`, and keep them for `--duration` seconds;
//! * `--peers N`: connect N idle hidden nodes (one process), print `READY`, hold.
//!
//! The last line is machine-readable: `BENCH key=value ...`.

use super::exit::Exit;
use super::node_args::NodeArgs;
use eetf::{Atom, Binary, FixInteger, List, Pid, Reference, Term, Tuple};
use rexi_node::client::Client;
use rexi_node::dist::node::Peer;
use rexi_node::dist::{message, ConnectError, Node};
use rexi_node::process::{Process, Signal};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node to load, NAME@HOST.
    #[arg(long, value_name = "NODE")]
    pub target: String,
    /// Our name and cookie. With --name/--sname, connection K takes that name with `_K`
    /// after its alive part; by default `rexi_bench_<pid>_K`.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Registered name the doits go to.
    #[arg(long, default_value = "rexi_server")]
    pub server: String,
    /// Casts in flight (closed loop), split over the connections.
    #[arg(long, short = 'w', default_value_t = 1000)]
    pub concurrency: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Fixed rate in casts per second (open loop, for latency); 0: closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Size of the binary echoed back, in bytes.
    #[arg(long, default_value_t = 16)]
    pub payload: usize,
    /// Caller nodes (one connection each) the load is spread over.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Runtime worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Put N rexi_node:sleep jobs in flight and hold them (memory measurement).
    #[arg(long, value_name = "N")]
    pub hold: Option<usize>,
    /// Milliseconds each held job sleeps.
    #[arg(long, default_value_t = 30_000)]
    pub sleep_ms: u32,
    /// Connect N idle hidden peer nodes and hold them (memory measurement).
    #[arg(long, value_name = "N")]
    pub peers: Option<usize>,
}

/// Marks our refs: the third word of every reference this generator makes.
const MAGIC: u32 = 0x0B_E4C4;
/// Placeholder words of the template ref, found and patched in the encoded frame.
const TPL: [u32; 3] = [0x0003_1415, 0x9265_3589, MAGIC];
const RING_BITS: u32 = 22;

// ---- latency histogram ---------------------------------------------------------------

/// Log-linear histogram of nanoseconds: exact below 2,048 ns, 0.1% buckets above.
struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            counts: vec![0; 2048 + 54 * 1024],
            n: 0,
            max: 0,
        }
    }
    fn index(v: u64) -> usize {
        if v < 2048 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // >= 11
        let shift = e - 10;
        2048 + (e - 11) * 1024 + ((v >> shift) as usize - 1024)
    }
    fn value(i: usize) -> u64 {
        if i < 2048 {
            return i as u64;
        }
        let e = (i - 2048) / 1024 + 11;
        let m = ((i - 2048) % 1024 + 1024) as u64;
        let shift = e - 10;
        (m << shift) + (1 << shift) / 2
    }
    fn record(&mut self, v: u64) {
        let i = Self::index(v).min(self.counts.len() - 1);
        self.counts[i] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }
    fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let want = ((self.n as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

// ---- shared state --------------------------------------------------------------------

struct Shared {
    t0: Instant,
    /// When each in-flight cast was sent (or due), ns since t0, +1 (0: free).
    sent_at: Vec<AtomicU64>,
    next_seq: AtomicU64,
    recording: AtomicBool,
    stop: AtomicBool,
    closed_loop: bool,
    hist: Mutex<Hist>,
    /// Replies while recording.
    measured: AtomicU64,
    replies: AtomicU64,
    errors: AtomicU64,
    send_failures: AtomicU64,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

/// One caller connection: its frame template and outbox.
struct Lane {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    frame: Vec<u8>,
    /// Offset of the first patched ref word in `frame`.
    ref_at: usize,
}

impl Lane {
    /// Sends one cast stamped `at` (ns since t0).
    fn cast(&self, at: u64) {
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let slot = (seq & ((1 << RING_BITS) - 1)) as usize;
        self.shared.sent_at[slot].store(at + 1, Ordering::Relaxed);
        let w0 = (seq & 0x3FFFF) as u32;
        let w1 = (seq >> 18) as u32;
        let r = self.peer.outbox.push(|b| {
            let s = b.len();
            b.extend_from_slice(&self.frame);
            let p = s + self.ref_at;
            b[p..p + 4].copy_from_slice(&w0.to_be_bytes());
            b[p + 4..p + 8].copy_from_slice(&w1.to_be_bytes());
            Ok(())
        });
        if r.is_err() {
            self.shared.send_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The caller process: replies are handled right where the connection routes them.
struct Sink {
    lane: OnceLock<Arc<Lane>>,
}

impl Process for Sink {
    fn deliver(&self, signal: Signal) {
        let Some(lane) = self.lane.get() else { return };
        let sh = &lane.shared;
        let Signal::Message { message, .. } = signal else {
            return;
        };
        let mut seq = None;
        let mut ok = false;
        if let Term::Tuple(t) = &*message {
            if t.elements.len() == 2 {
                if let Term::Reference(r) = &t.elements[0] {
                    if r.id.len() == 3 && r.id[2] == MAGIC {
                        seq = Some(r.id[0] as u64 | ((r.id[1] as u64) << 18));
                        ok = !matches!(&t.elements[1], Term::Tuple(x) if matches!(x.elements.first(), Some(Term::Atom(a)) if a.name == "rexi_EXIT"));
                    }
                }
            }
        }
        drop(message);
        let Some(seq) = seq else { return };
        let now = sh.now_ns();
        let slot = (seq & ((1 << RING_BITS) - 1)) as usize;
        let at = sh.sent_at[slot].swap(0, Ordering::Relaxed);
        sh.replies.fetch_add(1, Ordering::Relaxed);
        if !ok {
            sh.errors.fetch_add(1, Ordering::Relaxed);
        }
        if at > 0 && sh.recording.load(Ordering::Relaxed) {
            sh.measured.fetch_add(1, Ordering::Relaxed);
            let mut h = sh.hist.lock().unwrap_or_else(|p| p.into_inner());
            h.record(now.saturating_sub(at - 1));
        }
        if sh.closed_loop && !sh.stop.load(Ordering::Relaxed) {
            lane.cast(sh.now_ns());
        }
    }
}

fn atom(s: &str) -> Term {
    Term::Atom(Atom::from(s))
}
fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

/// The whole REG_SEND frame of one doit from `from`, with the template ref.
fn doit_frame(
    node: &Node,
    from: &Pid,
    server: &str,
    mfa: Term,
) -> Result<(Vec<u8>, usize), String> {
    let r = Reference {
        node: node.atom().clone(),
        id: TPL.to_vec(),
        creation: node.creation(),
    };
    let msg = tuple(vec![
        atom("$gen_cast"),
        tuple(vec![
            atom("doit"),
            tuple(vec![Term::Pid(from.clone()), Term::Reference(Box::new(r))]),
            atom("undefined"),
            mfa,
        ]),
    ]);
    let ctl = message::ctl::reg_send(from, server);
    let mut frame = Vec::new();
    message::write_frame(&mut frame, &ctl, Some(&msg)).map_err(|e| e.to_string())?;
    let mut pat = Vec::new();
    for w in TPL {
        pat.extend_from_slice(&w.to_be_bytes());
    }
    let at = frame
        .windows(pat.len())
        .position(|w| w == pat.as_slice())
        .ok_or("cannot find the reference in the encoded doit")?;
    Ok((frame, at))
}

fn echo_mfa(payload: usize) -> Term {
    tuple(vec![
        atom("rexi_node"),
        atom("echo"),
        Term::List(List::from(vec![Term::Binary(Binary::from(vec![
            b'x';
            payload
        ]))])),
    ])
}

fn sleep_mfa(ms: u32) -> Term {
    tuple(vec![
        atom("rexi_node"),
        atom("sleep"),
        Term::List(List::from(vec![Term::FixInteger(FixInteger::from(
            ms as i32,
        ))])),
    ])
}

/// utime+stime of this process, seconds.
fn self_cpu() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let k: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (u + k) / tick
}

pub fn main(a: Args) -> ExitCode {
    let cookie = match a.node.load_cookie() {
        Ok(c) => c,
        Err(e) => return Exit::Failure.with(&e),
    };
    let base = match super::tool::client_name(&a.node, "rexi_bench", &a.target) {
        Ok(n) => n,
        Err(e) => return Exit::Usage.with(&e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Exit::Failure.with(&format!("cannot start the runtime: {e}")),
    };
    let r = rt.block_on(async move {
        if let Some(n) = a.peers {
            return peers(&a, &base, cookie, n).await;
        }
        load(&a, &base, cookie).await
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    match r {
        Ok(()) => Exit::Success.into(),
        Err(BenchError::Connect(e)) => super::tool::connect_failed(&e),
        Err(BenchError::Run(e)) => Exit::Failure.with(&e),
    }
}

/// Why a benchmark run stopped early.
enum BenchError {
    /// A caller node could not start or reach the target.
    Connect(ConnectError),
    Run(String),
}

impl From<String> for BenchError {
    fn from(e: String) -> BenchError {
        BenchError::Run(e)
    }
}

impl From<&str> for BenchError {
    fn from(e: &str) -> BenchError {
        BenchError::Run(e.to_string())
    }
}

/// Caller node `k`: the base name with `_k` after its alive part.
fn caller_name(base: &str, k: impl std::fmt::Display) -> String {
    match base.split_once('@') {
        Some((alive, host)) => format!("{alive}_{k}@{host}"),
        None => format!("{base}_{k}"),
    }
}

async fn start_client(
    name: String,
    cookie: rexi_node::dist::Cookie,
    target: &str,
) -> Result<Client, BenchError> {
    let c = Client::start(name, cookie)
        .await
        .map_err(BenchError::Connect)?;
    if let Err(e) = c.connect(target).await {
        c.stop().await;
        return Err(BenchError::Connect(e));
    }
    Ok(c)
}

async fn peers(
    a: &Args,
    base: &str,
    cookie: rexi_node::dist::Cookie,
    n: usize,
) -> Result<(), BenchError> {
    let t = Instant::now();
    let mut clients = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 50).min(n))
            .map(|k| start_client(caller_name(base, format!("p{k}")), cookie.clone(), &a.target))
            .collect();
        for r in futures::future::join_all(batch).await {
            clients.push(r?);
        }
        i += 50;
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

fn prop(t: &Term, key: &str) -> Option<u64> {
    if let Term::List(l) = t {
        for e in &l.elements {
            if let Term::Tuple(kv) = e {
                if kv.elements.len() == 2
                    && matches!(&kv.elements[0], Term::Atom(k) if k.name == key)
                {
                    if let Term::FixInteger(v) = &kv.elements[1] {
                        return Some(v.value.max(0) as u64);
                    }
                }
            }
        }
    }
    None
}

/// Jobs running on the target: rexi-node's `rexi_server_mon` stats, else a BEAM rexi
/// server's `jobs` introspection call.
async fn jobs_running(c: &mut Client, target: &str) -> Option<u64> {
    if let Ok(t) = c
        .call(
            target,
            "rexi_server_mon",
            atom("stats"),
            Duration::from_secs(10),
        )
        .await
    {
        if let Some(v) = prop(&t, "jobs_running") {
            return Some(v);
        }
    }
    match c
        .call(target, "rexi_server", atom("jobs"), Duration::from_secs(10))
        .await
    {
        Ok(Term::FixInteger(v)) => Some(v.value.max(0) as u64),
        _ => None,
    }
}

async fn load(a: &Args, base: &str, cookie: rexi_node::dist::Cookie) -> Result<(), BenchError> {
    let conns = a.connections.max(1);
    let closed_loop = a.rate <= 0.0 && a.hold.is_none();
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        sent_at: (0..1usize << RING_BITS)
            .map(|_| AtomicU64::new(0))
            .collect(),
        next_seq: AtomicU64::new(0),
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        closed_loop,
        hist: Mutex::new(Hist::new()),
        measured: AtomicU64::new(0),
        replies: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
    });
    let mfa = match a.hold {
        Some(_) => sleep_mfa(a.sleep_ms),
        None => echo_mfa(a.payload),
    };
    let mut clients = Vec::new();
    let mut lanes = Vec::new();
    for i in 0..conns {
        let c = start_client(caller_name(base, i), cookie.clone(), &a.target).await?;
        let node = c.node().clone();
        let sink = Arc::new(Sink {
            lane: OnceLock::new(),
        });
        let s2 = sink.clone();
        let pid = node.spawn_process(move |_| s2.clone() as Arc<dyn Process>);
        let (frame, ref_at) = doit_frame(&node, &pid, &a.server, mfa.clone())?;
        let peer = node
            .peer(&a.target)
            .ok_or("the connection to the target dropped")?;
        let lane = Arc::new(Lane {
            shared: shared.clone(),
            peer,
            frame,
            ref_at,
        });
        let _ = sink.lane.set(lane.clone());
        lanes.push(lane);
        clients.push(c);
    }
    let cpu0 = self_cpu();

    if let Some(n) = a.hold {
        let t = Instant::now();
        for k in 0..n {
            lanes[k % conns].cast(shared.now_ns());
            if k % 2000 == 1999 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let mut running = 0;
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250)).await;
            match jobs_running(&mut clients[0], &a.target).await {
                Some(v) => {
                    running = v;
                    if v as usize >= n {
                        break;
                    }
                }
                None => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    break;
                }
            }
        }
        println!(
            "READY jobs={running} sent={n} secs={:.2}",
            t.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
        println!(
            "BENCH mode=hold sent={n} jobs={running} early_replies={}",
            shared.replies.load(Ordering::Relaxed)
        );
        return Ok(());
    }

    let warm = Duration::from_secs_f64(a.warmup);
    let dur = Duration::from_secs_f64(a.duration);
    let mut pacer = None;
    if closed_loop {
        for k in 0..a.concurrency.max(1) {
            lanes[k % conns].cast(shared.now_ns());
        }
    } else {
        // Open loop: a thread sends each cast when it is due, stamped with that moment.
        let lanes2 = lanes.clone();
        let sh = shared.clone();
        let rate = a.rate;
        let total = warm + dur;
        pacer = Some(std::thread::spawn(move || {
            let start = sh.now_ns();
            let period = 1e9 / rate;
            let end = start + total.as_nanos() as u64;
            let mut k: u64 = 0;
            loop {
                let due = start + (k as f64 * period) as u64;
                if due >= end || sh.stop.load(Ordering::Relaxed) {
                    break;
                }
                let now = sh.now_ns();
                if now < due {
                    std::thread::sleep(Duration::from_nanos(due - now));
                    continue;
                }
                lanes2[(k as usize) % lanes2.len()].cast(due);
                k += 1;
            }
        }));
    }
    tokio::time::sleep(warm).await;
    let m0 = shared.replies.load(Ordering::Relaxed);
    let t_rec = Instant::now();
    shared.recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(dur).await;
    shared.recording.store(false, Ordering::Relaxed);
    let secs = t_rec.elapsed().as_secs_f64();
    let m1 = shared.replies.load(Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(p) = pacer {
        let _ = p.join();
    }
    // Let what is in flight come back, so CPU per cast is over complete casts.
    let drain_until = Instant::now() + Duration::from_secs(5);
    while shared.replies.load(Ordering::Relaxed) < shared.next_seq.load(Ordering::Relaxed)
        && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = self_cpu() - cpu0;
    let sent = shared.next_seq.load(Ordering::Relaxed);
    let replies = shared.replies.load(Ordering::Relaxed);
    {
        let h = shared.hist.lock().unwrap_or_else(|p| p.into_inner());
        let thr = (m1 - m0) as f64 / secs;
        let us = |v: u64| v as f64 / 1000.0;
        let mode = if closed_loop { "closed" } else { "rate" };
        println!(
        "rexi-node bench -> {} ({mode}, {} conn, W={}, rate={}, payload={} B): {:.0} casts/s; latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us; {} sent, {} replies, {} errors, {} send failures; generator CPU {:.2} s",
        a.target, conns, a.concurrency, a.rate, a.payload, thr,
        us(h.quantile(0.50)), us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max),
        sent, replies, shared.errors.load(Ordering::Relaxed), shared.send_failures.load(Ordering::Relaxed), cpu
    );
        println!(
        "BENCH mode={mode} throughput={thr:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} measured={} sent={sent} replies={replies} errors={} gen_cpu_s={cpu:.3}",
        us(h.quantile(0.50)), us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max),
        h.n, shared.errors.load(Ordering::Relaxed)
    );
    }
    for c in clients {
        c.stop().await;
    }
    if replies < sent {
        return Err(BenchError::Run(format!("{} of {sent} casts got no reply", sent - replies)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Hist;

    #[test]
    fn histogram_buckets_are_within_a_tenth_of_a_percent() {
        for v in [
            0u64,
            1,
            2047,
            2048,
            2049,
            10_000,
            123_456,
            9_999_999,
            60_000_000_000,
        ] {
            let back = Hist::value(Hist::index(v));
            let err = (back as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 0.001, "{v} -> {back}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Hist::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.002, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.002, "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
    }
}
