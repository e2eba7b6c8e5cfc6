//! The `rexi-node` binary: parse the command line, start logging, hand off to `cli::<subcommand>`.

mod cli;

use clap::Parser;
use cli::exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // The tools decode terms on this thread (current-thread runtimes): give it the same
    // stack as the daemon's workers, for map keys nested thousands of levels deep.
    let worker = std::thread::Builder::new()
        .name("rexi-node".into())
        .stack_size(cli::run::WORKER_STACK)
        .spawn(move || cli::dispatch(args));
    match worker.map(|h| h.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => {
            Exit::Failure.with("internal error (a panic); please report it with the command line")
        }
        Err(e) => Exit::Failure.with(&format!("cannot start the main thread: {e}")),
    }
}
