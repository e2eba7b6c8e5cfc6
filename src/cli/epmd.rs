//! `rexi-node epmd`: our epmd-compatible port mapper, for machines without Erlang.

use super::exit::Exit;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port to listen on [default: ERL_EPMD_PORT or 4369].
    #[arg(long)]
    pub port: Option<u16>,
}

pub fn main(a: Args) -> ExitCode {
    super::run::init_logging(super::run::LogFormat::Text);
    let port = a.port.unwrap_or_else(rexi_node::dist::epmd::default_port);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail(&format!("cannot start the runtime: {e}")),
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
        tracing::info!(port, "epmd listening");
        match rexi_node::dist::epmd_server::serve(listener).await {
            Ok(()) => Exit::Success.into(),
            Err(e) => super::fail(&format!("epmd stopped: {e}")),
        }
    })
}
