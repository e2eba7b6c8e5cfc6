//! One file per subcommand. Each returns the process exit code; errors are printed for an
//! operator (what happened, to which node, what to do) before returning a non-zero code.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod phash2;
pub mod server_id;

#[derive(Parser, Debug)]
#[command(
    name = "rexi-node",
    version,
    about = "A hidden Erlang C-node that serves rexi RPC"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print erlang:phash2(TERM) (or phash2(TERM, RANGE)), exactly as the BEAM computes it.
    Phash2(phash2::Args),
    /// Print the rexi server names a BEAM node uses for caller NODE.
    ServerId(server_id::Args),
}

pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Phash2(a) => phash2::main(a),
        Command::ServerId(a) => server_id::main(a),
    }
}
