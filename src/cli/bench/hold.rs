//! `--hold N`: puts N `rexi_node:sleep(--sleep-ms)` jobs in flight, waits until the target
//! reports them running, prints `READY` and keeps them for `--duration` seconds, so the
//! target's memory per held job can be measured from outside.

use super::lane::{self, sleep_mfa, Lanes};
use super::{Args, BenchError};
use eetf::{Atom, Term};
use rexi_node::client::Client;
use rexi_node::dist::Cookie;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(super) async fn run(a: &Args, base: &str, cookie: Cookie, n: usize) -> Result<(), BenchError> {
    let Lanes {
        shared,
        lanes,
        mut clients,
    } = lane::open(a, base, cookie, sleep_mfa(a.sleep_ms), false).await?;
    let conns = lanes.len();
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
    for c in clients {
        c.stop().await;
    }
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

fn atom(s: &str) -> Term {
    Term::Atom(Atom::from(s))
}
