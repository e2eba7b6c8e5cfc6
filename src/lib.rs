//! rexi-node: a hidden Erlang C-node that serves CouchDB-style `rexi` RPC.
//!
//! Data flows one way through the crate:
//!
//! ```text
//! socket -> net::connection (frames) -> net::message (guarded ETF decode, etf::)
//!        -> process::registry (registered name or pid) -> rexi::server (job table)
//!        -> rexi::worker (handler task with its own pid) -> reply -> net::connection
//! ```
//!
//! * [`etf`]: our own External Term Format codec (iterative, bounded, exact).
//! * [`phash2`]: `erlang:phash2/1,2`, bit for bit.
//! * [`term`]: Erlang term text syntax, for the CLI and for logs.
//! * [`net`]: epmd, handshakes, framing, connections, the local node.
//! * [`process`]: pids, refs, registered names, monitors and links of this node.
//! * [`rexi`]: the rexi server, its names across the migration, workers.
//! * [`handlers`]: the MFAs `rexi-node run` serves out of the box.
//! * [`metrics`]: `--metrics-addr`: Prometheus figures, `/healthz` and `/readyz`.
//! * [`log_limit`]: repeated warnings aggregated per source (one line per interval).
//! * [`migrate`]: which casts a mixed-release cluster loses (the logic of `migrate-check`).

pub mod client;
pub mod etf;
pub mod fast_hash;
pub mod handlers;
pub mod log_limit;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod phash2;
pub mod process;
pub mod rexi;
pub mod term;

pub use net::{Cookie, Node, NodeConfig};
pub use rexi::{Args, Ctx, Failure, Handlers, Release, RexiConfig, RexiServer};

/// Starts a node that serves rexi with `handlers`: registers with epmd, installs the rexi
/// server (its names exist before any peer's first message), then connects to
/// `config.connect`. The node runs until [`Node::shutdown`].
pub async fn serve(
    config: NodeConfig,
    handlers: Handlers,
    rexi_config: RexiConfig,
) -> Result<(Node, std::sync::Arc<RexiServer>), net::node::StartError> {
    let node = Node::start(config).await?;
    let server = rexi::install(&node, handlers, rexi_config);
    node.connect_configured();
    Ok((node, server))
}
