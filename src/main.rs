//! The `rexi-node` binary: parse the command line, start logging, hand off to `cli::<subcommand>`.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::dispatch(args)
}
