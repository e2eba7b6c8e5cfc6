//! The rexi layer: serving `rexi:cast` from Erlang callers through every release of the
//! migration to one `rexi_server` per remote node.
//!
//! * [`names`]: which `rexi_server*` names exist, registered for each peer before its
//!   first message is dispatched; the singleton follows the [`release`].
//! * [`protocol`]: the request shapes in and the reply shapes out (docs/design/protocol.md).
//! * [`wire`]: a doit read in place from the frame's bytes (the common request's fast path).
//! * [`server`]: the one job table behind every name; doit, kill, kill_all, the error ring.
//! * [`worker`]: a job's state, its pid, and the [`Ctx`] handlers use to answer.
//! * [`parked`]: the jobs that wait, polled together, one set per thread.
//! * [`handler`]: the table of Rust handlers by `{Module, Function, Arity}`.
//! * [`mon`]: `rexi_server_mon`: status, stats, and switching the release at runtime.
//! * [`outcome`]: how a job ended, as a rexi reply or a spawned process's exit reason.
//! * [`erpc`]: spawn requests (`erpc`, `rpc`, `spawn/4`) run as jobs of the same server.
//! * [`stats`]: the counters; [`durations`]: job durations by MFA.

pub mod durations;
pub mod erpc;
pub mod handler;
pub mod mon;
pub mod names;
pub mod outcome;
pub mod parked;
pub mod protocol;
pub mod release;
pub mod reply_to;
pub mod server;
pub mod stats;
pub mod wire;
pub mod worker;

pub use handler::{Args, Handlers};
pub use release::Release;
pub use server::{RexiConfig, RexiServer};
pub use worker::{Ctx, Failure, StreamLimits};

use crate::net::Node;
use crate::process::Process;
use std::sync::Arc;

/// Puts a rexi server on `node`: registers `rexi_server_mon`, the names for this node
/// itself and the singleton (per the release), and watches peers so that their names
/// exist before their first message. Call before [`Node::connect_configured`].
pub fn install(node: &Node, handlers: Handlers, config: RexiConfig) -> Arc<RexiServer> {
    let server = RexiServer::new(node.clone(), handlers, config);
    server.clone().attach();
    let mon: Arc<dyn Process> = Arc::new(mon::Mon {
        server: server.weak(),
    });
    if let Err(e) = node.register("rexi_server_mon", mon) {
        tracing::warn!("{e}");
    }
    node.set_spawn_service(Arc::new(erpc::ErpcService {
        server: server.weak(),
    }));
    server
}
