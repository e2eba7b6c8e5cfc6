//! `rexi-node run`: the daemon.

use rexi_node::dist::{cookie, Cookie, Node, NodeConfig};
use rexi_node::handlers;
use rexi_node::metrics::Metrics;
use rexi_node::rexi::{self, Release, RexiConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs,
    /// A node to connect to and stay connected with (repeatable). Reconnects with capped
    /// backoff after a drop or a restart of that node.
    #[arg(long = "connect", value_name = "NODE")]
    pub connect: Vec<String>,
    /// Seconds of silence after which a peer is declared down (ticks go out every quarter).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub net_ticktime: u64,
    /// Distribution port to listen on (0: any free port, registered with epmd).
    #[arg(long, default_value_t = 0)]
    pub dist_port: u16,
    /// Most connections accepted at once.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Largest distribution frame accepted, in bytes.
    #[arg(long, default_value_t = 128 << 20)]
    pub max_frame: usize,
    /// Deepest nesting accepted in a received term (every level costs heap, not stack).
    #[arg(long, default_value_t = rexi_node::etf::Limits::default().max_depth)]
    pub max_term_depth: usize,
    /// Deepest nesting accepted inside a map key. Keys are hashed by recursion: the
    /// default fits the 16 MiB worker stacks many times over in a release build.
    #[arg(long, default_value_t = rexi_node::etf::DEFAULT_MAP_KEY_DEPTH)]
    pub max_map_key_depth: usize,
    /// Largest bignum accepted, in bytes of magnitude.
    #[arg(long, default_value_t = rexi_node::etf::Limits::default().max_bignum_bytes)]
    pub max_bignum_bytes: usize,
    /// Largest size a compressed term may inflate to, in bytes.
    #[arg(long, default_value_t = rexi_node::etf::Limits::default().max_decompressed)]
    pub max_decompressed: usize,
    /// Do not start an epmd when none answers (fail instead).
    #[arg(long)]
    pub no_start_epmd: bool,
    /// rexi migration release 0..3: the singleton rexi_server exists at 0, 1 and 2 and is
    /// retired at 3; per-node names exist at every release. Change it at runtime with
    /// gen_server:call({rexi_server_mon, Node}, {set_release, N}) or `rexi-node release set`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=3))]
    pub release: u8,
    /// Most rexi jobs running at once; beyond it a cast is answered {rexi_EXIT, {overloaded, []}}.
    #[arg(long, default_value_t = 500_000)]
    pub max_jobs: usize,
    /// Seconds a job waits for a sync answer, a stream ack or stream2 START (rexi: 300).
    #[arg(long, default_value_t = 300)]
    pub worker_timeout: u64,
    /// Unacked rows allowed by stream2 (CouchDB 2.x: 10, 3.x: 5).
    #[arg(long, default_value_t = 10)]
    pub stream_limit: usize,
    /// Worker threads [default: one per CPU]. One thread spends less CPU per cast when a
    /// single busy connection carries the load (it stops hopping between threads); more
    /// threads serve many busy connections in parallel.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve Prometheus figures at /metrics, and /healthz and /readyz, on this address
    /// (e.g. 127.0.0.1:9568) [default: off]. Bound before the node starts: a taken address
    /// stops the daemon.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Also export per-peer series (one per connected node: mind the cardinality).
    #[arg(long, requires = "metrics_addr")]
    pub metrics_per_peer: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Name and cookie options, shared by every subcommand that joins the cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Long node name, NAME@HOST (like erl -name).
    #[arg(long, conflicts_with = "sname")]
    pub name: Option<String>,
    /// Short node name; the host part is this machine's short host name (like erl -sname).
    #[arg(long)]
    pub sname: Option<String>,
    /// The cookie. Prefer --cookie-file or REXI_NODE_COOKIE: a command line is visible in ps.
    #[arg(long, env = "REXI_NODE_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// File holding the cookie [default: $HOME/.erlang.cookie, created like erl does].
    #[arg(long)]
    pub cookie_file: Option<PathBuf>,
}

impl NodeArgs {
    /// The full node name, with `default_alive` when neither --name nor --sname is given.
    pub fn node_name(&self, default_alive: &str) -> Result<String, String> {
        if let Some(n) = &self.name {
            if !n.contains('@') {
                return Err(format!(
                    "--name {n}: a long name must be NAME@HOST, e.g. {n}@127.0.0.1"
                ));
            }
            return Ok(n.clone());
        }
        let alive = self
            .sname
            .clone()
            .unwrap_or_else(|| default_alive.to_string());
        if alive.contains('@') {
            return Ok(alive);
        }
        Ok(format!("{alive}@{}", short_host_name()))
    }

    pub fn load_cookie(&self) -> Result<Cookie, String> {
        if let Some(c) = &self.cookie {
            return Ok(Cookie::new(c.clone()));
        }
        let path = match &self.cookie_file {
            Some(p) => p.clone(),
            None => {
                cookie::default_path().ok_or("HOME is not set: pass --cookie-file or --cookie")?
            }
        };
        cookie::load_or_create(&path)
    }
}

/// This machine's host name up to the first dot, as `erl -sname` uses.
pub fn short_host_name() -> String {
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "localhost".into());
    let full = full.trim();
    let short = full.split('.').next().unwrap_or("localhost");
    if short.is_empty() {
        "localhost".into()
    } else {
        short.to_string()
    }
}

/// Stack of every thread that decodes terms (see `etf::DEFAULT_MAP_KEY_DEPTH`).
pub const WORKER_STACK: usize = 16 << 20;

pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

pub fn main(a: Args) -> ExitCode {
    init_logging(a.log_format);
    let name = match a.node.node_name("rexi_node") {
        Ok(n) => n,
        Err(e) => return super::fail(&e),
    };
    let cookie = match a.node.load_cookie() {
        Ok(c) => c,
        Err(e) => return super::fail(&e),
    };
    let mut cfg = NodeConfig::new(name, cookie);
    cfg.connect = a.connect.clone();
    cfg.net_ticktime = Duration::from_secs(a.net_ticktime.max(1));
    cfg.dist_port = a.dist_port;
    cfg.max_connections = a.max_connections;
    cfg.max_frame = a.max_frame;
    cfg.start_epmd = !a.no_start_epmd;
    cfg.limits = rexi_node::etf::Limits {
        max_depth: a.max_term_depth,
        max_map_key_depth: a.max_map_key_depth,
        max_bignum_bytes: a.max_bignum_bytes,
        max_decompressed: a.max_decompressed,
    };
    // 16 MiB stacks: map keys may nest etf::DEFAULT_MAP_KEY_DEPTH levels, and eetf hashes
    // them by recursion (about 1.5 MiB in a release build, 12 MiB in a debug build). The
    // stack is reserved address space; only what is used is ever touched.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.threads {
        builder.worker_threads(n.max(1));
    }
    let rt = match builder.thread_stack_size(WORKER_STACK).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return super::fail(&format!("cannot start the runtime: {e}")),
    };
    rt.block_on(async move {
        let metrics = match a.metrics_addr {
            Some(addr) => match Metrics::start(addr, a.metrics_per_peer).await {
                Ok(m) => Some(m),
                Err(e) => return super::fail(&e),
            },
            None => None,
        };
        let node = match Node::start(cfg).await {
            Ok(n) => n,
            Err(e) => return super::fail(&e.0),
        };
        if let Some(m) = &metrics {
            m.set_node(&node);
        }
        let rcfg = RexiConfig {
            release: Release::new(a.release).unwrap_or_default(),
            max_jobs: a.max_jobs,
            worker_timeout: Duration::from_secs(a.worker_timeout),
            stream_limit: a.stream_limit.max(1),
            ..RexiConfig::default()
        };
        let rexi = rexi::install(&node, handlers::builtin(), rcfg);
        if let Some(m) = &metrics {
            m.set_rexi(&rexi);
        }
        tracing::info!(node = %node.name(), release = a.release, "serving rexi");
        node.connect_configured();
        wait_for_signal().await;
        tracing::info!(node = %node.name(), "shutting down: closing connections and leaving epmd");
        node.shutdown().await;
        let stats: Vec<String> = rexi
            .stats_snapshot()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tracing::info!(node = %node.name(), "stopped; {}", stats.join(" "));
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
