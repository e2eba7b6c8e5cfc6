//! The two measuring modes: the closed loop (`--concurrency W` casts in flight, each reply
//! sends the next) for throughput, and the fixed rate (`--rate R`, paced by a thread,
//! latency counted from the moment each cast was due, so no coordinated omission).

use super::lane::{self, echo_mfa, Lanes};
use super::{Args, BenchError};
use rexi_node::dist::Cookie;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(super) async fn run(a: &Args, base: &str, cookie: Cookie) -> Result<(), BenchError> {
    let closed_loop = a.rate <= 0.0;
    let Lanes {
        shared,
        lanes,
        clients,
    } = lane::open(a, base, cookie, echo_mfa(a.payload), closed_loop).await?;
    let conns = lanes.len();
    let cpu0 = self_cpu();

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
        return Err(BenchError::Run(format!(
            "{} of {sent} casts got no reply",
            sent - replies
        )));
    }
    Ok(())
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
