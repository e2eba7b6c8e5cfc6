//! `rexi-node ping NODE`: like `net_adm:ping/1`, from a short-lived hidden node: connect,
//! then ask the peer's `net_kernel` `{is_auth, Us}`. Prints pong with the round-trip time
//! of that call (and how long the connection took), or pang with the reason.

use super::exit::Exit;
use super::tool::{self, atom, is_atom, jobj, js, tuple, ToolArgs};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node to ping, NAME@HOST.
    pub node: String,
    #[command(flatten)]
    pub tool: ToolArgs,
}

pub(crate) fn main(a: Args) -> ExitCode {
    // Not `with_connected_client`: a node that cannot be reached is an answer here (pang,
    // exit 1), as with net_adm:ping/1.
    tool::with_client(&a.tool, &a.node, async |client| {
        let t0 = Instant::now();
        let result = match client.connect(&a.node).await {
            Err(e) => Err(e.to_string()),
            Ok(()) => {
                let connect_ms = t0.elapsed().as_secs_f64() * 1e3;
                let me = atom(client.node().name());
                let t1 = Instant::now();
                let r = client
                    .call(
                        &a.node,
                        "net_kernel",
                        tuple(vec![atom("is_auth"), me]),
                        a.tool.call_timeout(),
                    )
                    .await;
                let rtt_ms = t1.elapsed().as_secs_f64() * 1e3;
                match r {
                    Ok(t) if is_atom(&t, "yes") => Ok((connect_ms, rtt_ms)),
                    Ok(t) => Err(format!(
                        "net_kernel answered {}",
                        rexi_node::term::print(&t)
                    )),
                    Err(e) => Err(format!("net_kernel did not answer: {e}")),
                }
            }
        };
        match result {
            Ok((connect_ms, rtt_ms)) => {
                if a.tool.json {
                    println!(
                        "{}",
                        jobj(&[
                            ("node", js(&a.node)),
                            ("result", js("pong")),
                            ("rtt_ms", format!("{rtt_ms:.3}")),
                            ("connect_ms", format!("{connect_ms:.3}")),
                        ])
                    );
                } else {
                    println!(
                        "pong from {} in {rtt_ms:.3} ms (connected in {connect_ms:.3} ms)",
                        a.node
                    );
                }
                Exit::Success.into()
            }
            Err(why) => {
                if a.tool.json {
                    println!(
                        "{}",
                        jobj(&[
                            ("node", js(&a.node)),
                            ("result", js("pang")),
                            ("error", js(&why))
                        ])
                    );
                } else {
                    println!("pang from {}", a.node);
                }
                Exit::Failure.with(&why)
            }
        }
    })
}
