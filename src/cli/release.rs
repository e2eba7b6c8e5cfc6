//! `rexi-node release set N --node NODE` (and `release get --node NODE`): a running
//! rexi-node's migration release, through its `rexi_server_mon` (`{set_release, N}`,
//! `release`). Switching takes effect at once: at 3 the singleton `rexi_server` is
//! unregistered, below 3 it is registered again.

use super::tool::{self, atom, connect, int, is_atom, jobj, js, small_int, tuple, ToolArgs};
use rexi_node::client::CallError;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
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

pub fn main(a: Args) -> ExitCode {
    let rt = match tool::runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let (node, tool, new) = match a.action {
        Action::Set {
            release,
            node,
            tool,
        } => (node, tool, Some(release)),
        Action::Get { node, tool } => (node, tool, None),
    };
    rt.block_on(async move {
        let mut client = match tool::start_client(&tool, &node).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        if let Err(e) = connect(&client, &node).await {
            client.stop().await;
            return tool::unreachable(&e.to_string());
        }
        let timeout = tool.call_timeout();
        let before = client.call(&node, "rexi_server_mon", atom("release"), timeout).await;
        let before = match before {
            Ok(t) => match small_int(&t) {
                Some(n) => n,
                None => {
                    client.stop().await;
                    // A BEAM rexi_server_mon answers unknown calls with `ignored`.
                    return super::fail(&format!(
                        "{node} is not a rexi-node: its rexi_server_mon answered {} to `release`; a BEAM node's release changes with its rexi code (application env `release` of app rexi and a restart), not with this command",
                        rexi_node::term::print(&t)
                    ));
                }
            },
            Err(CallError::NoProc) => {
                client.stop().await;
                return super::fail(&format!(
                    "{node} has no rexi_server_mon: it is not a rexi-node (or runs rexi at release 0)"
                ));
            }
            Err(e) => {
                client.stop().await;
                return tool::unreachable(&format!("rexi_server_mon on {node} did not answer: {e}"));
            }
        };
        let Some(n) = new else {
            client.stop().await;
            if tool.json {
                println!("{}", jobj(&[("node", js(&node)), ("release", before.to_string())]));
            } else {
                println!("{node}: release {before}");
            }
            return ExitCode::SUCCESS;
        };
        let r = client
            .call(
                &node,
                "rexi_server_mon",
                tuple(vec![atom("set_release"), int(n as i32)]),
                timeout,
            )
            .await;
        client.stop().await;
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
                ExitCode::SUCCESS
            }
            Ok(t) => super::fail(&format!(
                "{node} refused release {n}: {}",
                rexi_node::term::print(&t)
            )),
            Err(e) => tool::unreachable(&format!("rexi_server_mon on {node} did not answer: {e}")),
        }
    })
}
