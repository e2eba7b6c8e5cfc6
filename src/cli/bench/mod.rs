//! `rexi-node bench`: a load generator that is itself a hidden caller node.
//!
//! It casts `rexi_node:echo(<<Payload>>)` (or `sleep(Ms)`) doits at `{Server, Target}` the
//! way `rexi:cast` does and times each `{Ref, Reply}` ([`lane`] says how it stays cheap).
//!
//! Modes, one file each:
//! * [`load`]: the closed loop (default, `--concurrency W` casts in flight for `--duration`
//!   seconds) and the fixed rate (`--rate R` casts per second);
//! * [`hold`]: `--hold N` sleep jobs kept in flight;
//! * [`peers`]: `--peers N` idle hidden nodes kept connected.
//!
//! The last line is machine-readable: `BENCH key=value ...`.

mod hist;
mod hold;
mod lane;
mod load;
mod peers;

use super::exit::Exit;
use super::node_args::NodeArgs;
use rexi_node::client::Client;
use rexi_node::net::tls::Tls;
use rexi_node::net::{ConnectError, Cookie};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node to load, NAME@HOST.
    #[arg(long, value_name = "NODE")]
    pub target: String,
    /// Our name and cookie. With --name/--sname, connection K takes that name with `_K`
    /// after its alive part; by default `rexi_bench_<pid>_K`.
    #[command(flatten)]
    pub node: NodeArgs,
    /// TLS distribution as --tls-*/--ssl-dist-optfile ask, read once at start.
    #[arg(skip)]
    pub tls: Option<Arc<Tls>>,
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

pub(crate) fn main(mut a: Args) -> ExitCode {
    let cookie = match a.node.load_cookie() {
        Ok(c) => c,
        Err(e) => return Exit::Failure.with(&e),
    };
    a.tls = match a.node.load_tls() {
        Ok(t) => t,
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
            return peers::run(&a, &base, cookie, n).await;
        }
        if let Some(n) = a.hold {
            return hold::run(&a, &base, cookie, n).await;
        }
        load::run(&a, &base, cookie).await
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    match r {
        Ok(()) => Exit::Success.into(),
        Err(BenchError::Connect(e)) => super::tool::connect_failed(&e),
        Err(BenchError::Run(e)) => Exit::Failure.with(&e),
    }
}

/// Why a benchmark run stopped early.
pub(super) enum BenchError {
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
pub(super) fn caller_name(base: &str, k: impl std::fmt::Display) -> String {
    match base.split_once('@') {
        Some((alive, host)) => format!("{alive}_{k}@{host}"),
        None => format!("{base}_{k}"),
    }
}

pub(super) async fn start_client(
    a: &Args,
    name: String,
    cookie: Cookie,
) -> Result<Client, BenchError> {
    let c = Client::start_tls(name, cookie, a.tls.clone())
        .await
        .map_err(BenchError::Connect)?;
    if let Err(e) = c.connect(&a.target).await {
        c.stop().await;
        return Err(BenchError::Connect(e));
    }
    Ok(c)
}
