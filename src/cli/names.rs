//! `rexi-node names [HOST]`: the nodes registered with epmd on HOST, with their ports and
//! their type. epmd's NAMES answer has names and ports only; the type comes from one
//! PORT_PLEASE2 per node (77 normal, 72 hidden), which is how a C-node such as rexi-node
//! shows up apart from the BEAM nodes of the cluster.

use super::exit::Exit;
use super::tool::{jarr, jobj, js};
use erl_dist::epmd::NodeType;
use rexi_node::net::epmd;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Host whose epmd to ask.
    #[arg(default_value = "127.0.0.1")]
    pub host: String,
    /// epmd port [default: ERL_EPMD_PORT or 4369].
    #[arg(long)]
    pub epmd_port: Option<u16>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

struct Row {
    name: String,
    port: u16,
    kind: String,
}

fn kind_label(t: NodeType) -> String {
    match t {
        NodeType::Normal => "normal".into(),
        NodeType::Hidden => "hidden".into(),
        other => format!("unknown type {}", u8::from(other)),
    }
}

pub(crate) fn main(a: Args) -> ExitCode {
    let rt = match super::tool::runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let port = a.epmd_port.unwrap_or_else(epmd::default_port);
    let host = a.host.clone();
    let rows = rt.block_on(async move {
        let names = epmd::names(&host, port).await?;
        let mut rows = Vec::with_capacity(names.len());
        for (name, p) in names {
            // A node may leave between NAMES and PORT_PLEASE2; say so instead of failing.
            let kind = match epmd::lookup(&host, port, &name).await {
                Ok(Some(e)) => kind_label(e.node_type),
                Ok(None) => "gone".into(),
                Err(e) => format!("unknown ({e})"),
            };
            rows.push(Row {
                name,
                port: p,
                kind,
            });
        }
        rows.sort_by(|x, y| x.name.cmp(&y.name));
        Ok::<_, epmd::EpmdError>(rows)
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return Exit::Unreachable.with(&e.to_string()),
    };
    if a.json {
        let items = rows.iter().map(|r| {
            jobj(&[
                ("name", js(&r.name)),
                ("node", js(&format!("{}@{}", r.name, a.host))),
                ("port", r.port.to_string()),
                ("type", js(&r.kind)),
            ])
        });
        println!(
            "{}",
            jobj(&[
                ("host", js(&a.host)),
                ("epmd_port", port.to_string()),
                ("nodes", jarr(items))
            ])
        );
    } else if rows.is_empty() {
        println!("epmd on {}:{port}: no nodes registered", a.host);
    } else {
        println!("epmd on {}:{port}:", a.host);
        let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &rows {
            println!("  {:<w$}  port {:<5}  {}", r.name, r.port, r.kind);
        }
    }
    Exit::Success.into()
}
