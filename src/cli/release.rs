//! `rexi-node release set N --node NODE` (and `release get --node NODE`): a running
//! rexi-node's migration release, through its `rexi_server_mon` (`{set_release, N}`,
//! `release`). Switching takes effect at once: at 3 the singleton `rexi_server` is
//! unregistered, below 3 it is registered again.

use super::exit::Exit;
use super::tool::{self, atom, int, is_atom, jobj, js, small_int, tuple, ToolArgs};
use rexi_node::client::CallError;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum Action {
    /// Change the release of a running rexi-node.
    Set {
        /// The new release, 0..3.
        #[arg(value_parser = clap::value_parser!(u8).range(0..=3))]
        release: u8,
        /// The rexi-node, NAME@HOST.
        #[arg(long)]
        node: String,
        #[command(flatten)]
        tool: ToolArgs,
    },
    /// Print the release of a running rexi-node.
    Get {
        #[arg(long)]
        node: String,
        #[command(flatten)]
        tool: ToolArgs,
    },
}

pub(crate) fn main(a: Args) -> ExitCode {
    let (node, tool, new) = match a.action {
        Action::Set {
            release,
            node,
            tool,
        } => (node, tool, Some(release)),
        Action::Get { node, tool } => (node, tool, None),
    };
    tool::with_connected_client(&tool, &node, async |client| {
        let timeout = tool.call_timeout();
        let before = client
            .call(&node, "rexi_server_mon", atom("release"), timeout)
            .await;
        let before = match before {
            Ok(t) => match small_int(&t) {
                Some(n) => n,
                // A BEAM rexi_server_mon answers unknown calls with `ignored`.
                None => {
                    return Exit::Failure.with(&format!(
                        "{node} is not a rexi-node: its rexi_server_mon answered {} to `release`; a BEAM node's release changes with its rexi code (application env `release` of app rexi and a restart), not with this command",
                        rexi_node::term::print(&t)
                    ))
                }
            },
            Err(CallError::NoProc) => {
                return Exit::Failure.with(&format!(
                    "{node} has no rexi_server_mon: it is not a rexi-node (or runs rexi at release 0)"
                ))
            }
            Err(e) => {
                return Exit::Unreachable
                    .with(&format!("rexi_server_mon on {node} did not answer: {e}"))
            }
        };
        let Some(n) = new else {
            if tool.json {
                println!(
                    "{}",
                    jobj(&[("node", js(&node)), ("release", before.to_string())])
                );
            } else {
                println!("{node}: release {before}");
            }
            return Exit::Success.into();
        };
        let r = client
            .call(
                &node,
                "rexi_server_mon",
                tuple(vec![atom("set_release"), int(n as i32)]),
                timeout,
            )
            .await;
        match r {
            Ok(t) if is_atom(&t, "ok") => {
                if tool.json {
                    println!(
                        "{}",
                        jobj(&[
                            ("node", js(&node)),
                            ("release", n.to_string()),
                            ("was", before.to_string())
                        ])
                    );
                } else {
                    println!("{node}: release {n} (was {before})");
                    if n == 3 {
                        println!("  the singleton rexi_server is retired: callers at release 0 or 1 now lose their casts to {node}");
                    }
                }
                Exit::Success.into()
            }
            Ok(t) => Exit::Failure.with(&format!(
                "{node} refused release {n}: {}",
                rexi_node::term::print(&t)
            )),
            Err(e) => {
                Exit::Unreachable.with(&format!("rexi_server_mon on {node} did not answer: {e}"))
            }
        }
    })
}
