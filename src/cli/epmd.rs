//! `rexi-node epmd`: our epmd-compatible port mapper, for machines without Erlang.

use super::exit::Exit;
use rexi_node::net::epmd_server::Config;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Port to listen on [default: ERL_EPMD_PORT or 4369].
    #[arg(long)]
    pub port: Option<u16>,
    /// Most client sockets open at once, registered nodes included; beyond it new clients
    /// wait. Keep it below the open-file limit (ulimit -n).
    #[arg(long, default_value_t = Config::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a client has, from its connect, to send its request.
    #[arg(long, default_value_t = Config::default().request_timeout.as_secs(), value_name = "SECS")]
    pub request_timeout: u64,
    /// Serve ALIVE2 (register), DUMP, KILL and STOP to clients that are not on a loopback
    /// address (refused by default, as epmd refuses them from other hosts).
    #[arg(long)]
    pub allow_remote_commands: bool,
}

pub(crate) fn main(a: Args) -> ExitCode {
    super::run::init_logging(super::run::LogFormat::Text);
    let port = a.port.unwrap_or_else(rexi_node::net::epmd::default_port);
    let config = Config {
        max_connections: a.max_connections.max(1),
        request_timeout: Duration::from_secs(a.request_timeout.max(1)),
        allow_remote: a.allow_remote_commands,
    };
    let rt = match super::tool::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
            Ok(l) => l,
            Err(e) => {
                return super::fail(&format!(
                    "cannot listen on port {port}: {e} (is an epmd already running there?)"
                ))
            }
        };
        tracing::info!(port, ?config, "epmd listening");
        match rexi_node::net::epmd_server::serve(listener, config).await {
            Ok(()) => Exit::Success.into(),
            Err(e) => super::fail(&format!("epmd stopped: {e}")),
        }
    })
}
