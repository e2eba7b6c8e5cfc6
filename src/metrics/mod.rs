//! `--metrics-addr`: Prometheus figures and health endpoints over HTTP.
//!
//! * `/metrics`: every figure of [`families`], in OpenMetrics text when the scraper asks for
//!   it (Prometheus does) and in the classic Prometheus text format otherwise.
//! * `/healthz`: 200 while the process and its runtime answer (a fresh task runs).
//! * `/readyz`: 200 once the node is registered with epmd, accepts connections and serves
//!   rexi with its release set and its names registered; 503 with the missing conditions
//!   before that, while the epmd registration is lost, and from shutdown on.
//!
//! The endpoint is bound before the node starts, so a taken address stops the daemon before
//! it joins the cluster, and `/readyz` can say "not yet" while it joins.
//!
//! Crate: the Prometheus project's own `prometheus-client` writes the exposition (typed
//! families, histograms, correct escaping, OpenMetrics and classic text). We use only its
//! encoder, through a collector that reads our atomics at scrape time; its metric types
//! (a histogram takes a lock per observation) stay off the hot path. The HTTP side is
//! [`http`]: three GET routes do not need a web framework, and a small server of our own
//! states every limit it applies to the network.

pub mod families;
pub mod http;

use crate::net::Node;
use crate::rexi::RexiServer;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// What the endpoint reads; filled in as the daemon starts.
pub struct State {
    pub(crate) per_peer: bool,
    pub(crate) node: OnceLock<Node>,
    pub(crate) rexi: OnceLock<Arc<RexiServer>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("per_peer", &self.per_peer)
            .field("node", &self.node.get().map(|n| n.name().to_string()))
            .finish()
    }
}

/// The conditions of `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub epmd_registered: bool,
    pub accepting: bool,
    pub rexi_serving: bool,
    pub shutting_down: bool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.epmd_registered && self.accepting && self.rexi_serving && !self.shutting_down
    }

    /// One line per condition, for the response body.
    pub fn report(&self) -> String {
        let yn = |b: bool| if b { "yes" } else { "no" };
        format!(
            "{}\nepmd_registered: {}\naccepting: {}\nrexi_serving: {}\nshutting_down: {}\n",
            if self.ready() { "ready" } else { "not ready" },
            yn(self.epmd_registered),
            yn(self.accepting),
            yn(self.rexi_serving),
            yn(self.shutting_down),
        )
    }
}

/// The metrics endpoint of one daemon.
pub struct Metrics {
    state: Arc<State>,
    registry: Registry,
    addr: SocketAddr,
}

impl Metrics {
    /// Binds `addr` and starts serving. Fails, with an error naming the address and what to
    /// do, when the address is taken or not ours.
    pub async fn start(addr: SocketAddr, per_peer: bool) -> Result<Arc<Metrics>, String> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => "another process listens there: stop it, or choose a free address with --metrics-addr",
                std::io::ErrorKind::AddrNotAvailable => "no interface of this machine has that address: use 127.0.0.1 or 0.0.0.0 with --metrics-addr",
                std::io::ErrorKind::PermissionDenied => "ports below 1024 need privileges: choose a higher port with --metrics-addr",
                _ => "check --metrics-addr",
            };
            format!("cannot serve metrics on {addr}: {e}; {hint}")
        })?;
        let bound = listener.local_addr().unwrap_or(addr);
        let state = Arc::new(State {
            per_peer,
            node: OnceLock::new(),
            rexi: OnceLock::new(),
        });
        let mut registry = Registry::with_prefix(families::PREFIX);
        registry.register_collector(Box::new(families::Figures(state.clone())));
        let m = Arc::new(Metrics {
            state,
            registry,
            addr: bound,
        });
        tokio::spawn(http::serve(listener, m.clone(), http::Limits::default()));
        tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
        Ok(m)
    }

    /// The address actually bound (the port is known even when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node has started (registered with epmd, not yet accepting).
    pub fn set_node(&self, node: &Node) {
        let _ = self.state.node.set(node.clone());
    }

    /// The rexi server is installed: its release is set and its names are registered.
    /// Turns on its job timing, which only this endpoint shows.
    pub fn set_rexi(&self, rexi: &Arc<RexiServer>) {
        rexi.durations.enable();
        let _ = self.state.rexi.set(rexi.clone());
    }

    pub fn readiness(&self) -> Readiness {
        let node = self.state.node.get();
        let net = node.map(|n| n.net_stats());
        let rexi_serving = match (self.state.rexi.get(), node) {
            (Some(r), Some(n)) => r.names.missing(n, r.release().has_singleton()) == 0,
            _ => false,
        };
        Readiness {
            epmd_registered: net.is_some_and(|s| s.epmd_registered()),
            accepting: net.is_some_and(|s| s.accepting()),
            rexi_serving,
            shutting_down: node.is_some_and(|n| n.is_shutting_down()),
        }
    }

    /// The exposition: OpenMetrics text (ending in `# EOF`) or classic Prometheus text.
    pub fn render(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 << 10);
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }

    /// True when a fresh task runs on the runtime within `limit`.
    pub async fn runtime_answers(limit: Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, tokio::spawn(async {})).await,
            Ok(Ok(()))
        )
    }
}
