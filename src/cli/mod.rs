//! One file per subcommand. Each returns the process exit code ([`exit::Exit`]); errors are
//! printed for an operator (what happened, to which node, what to do) before returning a
//! non-zero code. The tools share their client node handling in [`tool`], and every
//! subcommand that joins a cluster takes the same [`node_args::NodeArgs`].

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub(crate) mod bench;
pub(crate) mod cast;
pub(crate) mod epmd;
pub(crate) mod exit;
pub(crate) mod healthcheck;
pub(crate) mod inspect;
pub(crate) mod migrate_check;
pub(crate) mod names;
pub(crate) mod node_args;
pub(crate) mod phash2;
pub(crate) mod ping;
pub(crate) mod release;
pub(crate) mod run;
pub(crate) mod server_id;
pub(crate) mod status;

pub(crate) mod tool;

#[derive(Parser, Debug)]
#[command(
    name = "rexi-node",
    version,
    about = "A hidden Erlang C-node that serves rexi RPC"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the daemon: join the cluster as a hidden node and serve rexi.
    Run(run::Args),
    /// Run an epmd-compatible port mapper (started automatically by `run` when none answers).
    Epmd(epmd::Args),
    /// Print erlang:phash2(TERM) (or phash2(TERM, RANGE)), exactly as the BEAM computes it.
    Phash2(phash2::Args),
    /// Print the rexi server names a BEAM node uses for caller NODE.
    ServerId(server_id::Args),
    /// List the nodes registered with epmd on HOST: name, port, normal or hidden.
    Names(names::Args),
    /// Ping NODE (like net_adm:ping): pong with the round-trip time, or pang and why.
    Ping(ping::Args),
    /// Show NODE's rexi: release, rexi_server names, rexi_server_mon status (and stats).
    Status(status::Args),
    /// Run one rexi job on NODE through the singleton rexi_server and print what it sends.
    Cast(cast::Args),
    /// Read or change a running rexi-node's migration release.
    Release(release::Args),
    /// Check which nodes lose rexi casts now, and which may take their next release step.
    MigrateCheck(migrate_check::Args),
    /// Load a rexi server (rexi-node or BEAM) as a hidden caller node; print throughput and latency.
    Bench(bench::Args),
    /// Ask a daemon's --metrics-addr for /readyz (or --path): exit 0 on 200, 1 otherwise.
    Healthcheck(healthcheck::Args),
}

pub(crate) fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(a) => run::main(a),
        Command::Epmd(a) => epmd::main(a),
        Command::Phash2(a) => phash2::main(a),
        Command::ServerId(a) => server_id::main(a),
        Command::Names(a) => names::main(a),
        Command::Ping(a) => ping::main(a),
        Command::Status(a) => status::main(a),
        Command::Cast(a) => cast::main(a),
        Command::Release(a) => release::main(a),
        Command::MigrateCheck(a) => migrate_check::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Healthcheck(a) => healthcheck::main(a),
    }
}

/// Prints an operator-facing error and returns [`exit::Exit::Failure`].
pub(crate) fn fail(msg: &str) -> ExitCode {
    exit::Exit::Failure.with(msg)
}
