//! `rexi-node run`: the daemon.

use super::node_args::NodeArgs;
use rexi_node::handlers;
use rexi_node::metrics::Metrics;
use rexi_node::net::NodeConfig;
use rexi_node::rexi::{Release, RexiConfig};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    pub node: NodeArgs,
    /// A node to connect to and stay connected with (repeatable). Reconnects with capped
    /// backoff after a drop or a restart of that node.
    #[arg(long = "connect", value_name = "NODE")]
    pub connect: Vec<String>,
    /// Join as a visible node (listed in nodes() of the BEAM nodes, like a normal erl node)
    /// instead of a hidden one: CouchDB 2.0+ coordinators count only visible nodes as up.
    /// rexi-node then answers global's sync so global:sync() stays immediate.
    #[arg(long)]
    pub visible: bool,
    /// Seconds of silence after which a peer is declared down (ticks go out every quarter).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub net_ticktime: u64,
    /// Distribution port to listen on (0: any free port, registered with epmd).
    #[arg(long, default_value_t = 0)]
    pub dist_port: u16,
    /// Most authenticated peers connected at once; sockets still in the handshake never
    /// take these slots. Beyond it a new peer's handshake is answered not_allowed.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Most incoming sockets in the handshake at once (not yet authenticated); beyond it a
    /// new socket is closed at once. Each must send its name within 2 s.
    #[arg(long, default_value_t = 128)]
    pub max_handshakes: usize,
    /// Most incoming sockets in the handshake from one address.
    #[arg(long, default_value_t = 16)]
    pub max_handshakes_per_address: usize,
    /// Largest send queue kept for a peer that does not read, in bytes; beyond it the
    /// connection is closed.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_outbox: usize,
    /// Largest total of all peers' send queues, in bytes; beyond it the connection with
    /// the largest queue is closed.
    #[arg(long, default_value_t = 1 << 30)]
    pub max_outbox_total: usize,
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
    /// Most memory the terms of one received frame may take, in bytes (a binary counts
    /// its bytes, a list or tuple 56 bytes per element). A frame over it closes that
    /// connection. The default takes a --max-frame binary or a 1,000,000-deep term.
    #[arg(long, default_value_t = rexi_node::etf::Limits::default().max_term_memory)]
    pub max_term_memory: usize,
    /// Most memory all frames being decoded at once (every connection) may take, in bytes.
    #[arg(long, default_value_t = rexi_node::etf::Limits::default().max_term_memory_total)]
    pub max_term_memory_total: usize,
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
    /// Most rexi jobs running at once for one peer node (the connection that sent the
    /// casts); beyond it that peer's casts are answered {rexi_EXIT, {overloaded, []}}.
    /// [default: a quarter of --max-jobs]
    #[arg(long, value_name = "N")]
    pub max_jobs_per_peer: Option<usize>,
    /// Most monitors the processes of one peer node may hold on this node; beyond it a
    /// monitor fires at once with reason system_limit.
    #[arg(long, default_value_t = rexi_node::process::PeerLimits::default().max_monitors)]
    pub max_monitors_per_peer: usize,
    /// Most links between processes of one peer node and this node; beyond it a link is
    /// answered with an exit signal, reason system_limit.
    #[arg(long, default_value_t = rexi_node::process::PeerLimits::default().max_links)]
    pub max_links_per_peer: usize,
    /// Seconds a job waits for a sync answer, a stream ack or stream2 START (rexi: 300).
    #[arg(long, default_value_t = 300)]
    pub worker_timeout: u64,
    /// Unacked rows a rexi:stream2 job sends before it waits for an ack: CouchDB's
    /// `[rexi] stream_limit` (5 since CouchDB 3.0; 10 in 2.x).
    #[arg(long, default_value_t = rexi_node::rexi::StreamLimits::default().stream2, value_name = "N")]
    pub stream2_limit: usize,
    /// Unacked rows a rexi:stream (v1) job sends before it waits for an ack (rexi: 10).
    #[arg(long, default_value_t = rexi_node::rexi::StreamLimits::default().stream, value_name = "N")]
    pub stream_limit: usize,
    /// Connection threads [default: one per CPU]. Each connection, and the jobs its
    /// casts start, runs on one of them (the least busy when it connects), so one peer's
    /// casts never wake a second thread; more threads serve more busy peers in parallel.
    /// Accepting, epmd and /metrics run on one more thread of their own.
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
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Stack of every thread that decodes terms (see `etf::DEFAULT_MAP_KEY_DEPTH`).
pub(crate) const WORKER_STACK: usize = rexi_node::net::threads::STACK_SIZE;

/// Text logs escape control characters in every field (`\n`, `\u{1b}`): node names and
/// atoms come from peers, and a name with a newline or an ANSI escape must not forge or
/// hide a log line. JSON logs need no such care: the JSON encoder escapes them.
pub(crate) fn init_logging(format: LogFormat) {
    use tracing_subscriber::field::MakeExt;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => {
            let fields = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                use std::fmt::Write;
                if field.name() != "message" {
                    write!(w, "{}=", field.name())?;
                }
                write!(Escaped(w), "{value:?}")
            })
            .delimited(" ");
            b.fmt_fields(fields).try_init()
        }
    };
}

/// Writes through to `W`, showing control characters as Rust escapes.
struct Escaped<W>(W);

impl<W: std::fmt::Write> std::fmt::Write for Escaped<W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(char::is_control) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or(' ');
            write!(self.0, "{}", c.escape_debug())?;
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

pub(crate) fn main(a: Args) -> ExitCode {
    init_logging(a.log_format);
    let name = match a.node.node_name("rexi_node") {
        Ok(n) => n,
        Err(e) => return super::fail(&e),
    };
    let cookie = match a.node.load_cookie() {
        Ok(c) => c,
        Err(e) => return super::fail(&e),
    };
    let tls = match a.node.load_tls() {
        Ok(t) => t,
        Err(e) => return super::fail(&e),
    };
    if let Some(t) = &tls {
        tracing::info!("{}", t.summary());
    }
    let mut cfg = NodeConfig::new(name, cookie);
    cfg.tls = tls;
    cfg.connect = a.connect.clone();
    cfg.visible = a.visible;
    cfg.connection_threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    cfg.net_ticktime = Duration::from_secs(a.net_ticktime.max(1));
    cfg.dist_port = a.dist_port;
    cfg.max_connections = a.max_connections;
    cfg.max_handshakes = a.max_handshakes.max(1);
    cfg.max_handshakes_per_address = a.max_handshakes_per_address.max(1);
    cfg.max_outbox = a.max_outbox;
    cfg.max_outbox_total = a.max_outbox_total;
    cfg.max_frame = a.max_frame;
    cfg.start_epmd = !a.no_start_epmd;
    cfg.peer_limits = rexi_node::process::PeerLimits {
        max_monitors: a.max_monitors_per_peer,
        max_links: a.max_links_per_peer,
    };
    cfg.limits = rexi_node::etf::Limits {
        max_depth: a.max_term_depth,
        max_map_key_depth: a.max_map_key_depth,
        max_bignum_bytes: a.max_bignum_bytes,
        max_decompressed: a.max_decompressed,
        max_term_memory: a.max_term_memory,
        max_term_memory_total: a.max_term_memory_total,
    };
    // The runtime of this thread: accepting, epmd, /metrics. Connections run on the node's
    // connection threads (`NodeConfig::connection_threads`, see net::threads).
    let rt = match super::tool::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        // The endpoint binds first: a taken address stops `run` before it joins the cluster.
        let metrics = match a.metrics_addr {
            Some(addr) => match Metrics::start(addr, a.metrics_per_peer).await {
                Ok(m) => Some(m),
                Err(e) => return super::fail(&e),
            },
            None => None,
        };
        let rcfg = RexiConfig {
            release: Release::new(a.release).unwrap_or_default(),
            max_jobs: a.max_jobs,
            max_jobs_per_peer: a.max_jobs_per_peer.map_or(0, |n| n.max(1)),
            worker_timeout: Duration::from_secs(a.worker_timeout),
            stream_limits: rexi_node::rexi::StreamLimits {
                stream: a.stream_limit.max(1),
                stream2: a.stream2_limit.max(1),
            },
            ..RexiConfig::default()
        };
        let (node, rexi) = match rexi_node::serve(cfg, handlers::builtin(), rcfg).await {
            Ok(started) => started,
            Err(e) => return super::fail(&e.to_string()),
        };
        if let Some(m) = &metrics {
            m.set_node(&node);
            m.set_rexi(&rexi);
        }
        tracing::info!(node = %node.name(), release = a.release, "serving rexi");
        wait_for_signal().await;
        tracing::info!(node = %node.name(), "shutting down: closing connections and leaving epmd");
        node.shutdown().await;
        let stats: Vec<String> = rexi
            .stats_snapshot()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        tracing::info!(node = %node.name(), "stopped; {}", stats.join(" "));
        super::exit::Exit::Success.into()
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
