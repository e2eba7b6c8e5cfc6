//! `rexi-node status NODE`: what rexi a node runs. For a BEAM node: its rexi release, the
//! `rexi_*` names it registers (read through its `rex` server) and its `rexi_server_mon`
//! status. For a rexi-node: its release, whether the names a caller uses exist, its
//! `rexi_server_mon` status and its `stats`. For either, whether it joined hidden or
//! visible (from the flags it sent in the handshake).

use super::exit::Exit;
use super::inspect::{inspect, Report};
use super::tool::{self, jarr, jobj, js, ToolArgs};
use rexi_node::migrate::NodeKind;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The node to read, NAME@HOST.
    pub node: String,
    #[command(flatten)]
    pub tool: ToolArgs,
}

pub(crate) fn report_json(r: &Report) -> String {
    let release = match &r.release {
        Some(rs) => match rs.exact() {
            Some(x) => x.get().to_string(),
            None => "null".into(),
        },
        None => "null".into(),
    };
    // A CouchDB node is at none of the releases 0..3.
    let release = if r.kind == NodeKind::CouchDb {
        "null".into()
    } else {
        release
    };
    let candidates = match &r.release {
        _ if r.kind == NodeKind::CouchDb => "[]".into(),
        Some(rs) => jarr(rs.candidates().iter().map(|x| x.get().to_string())),
        None => "[]".into(),
    };
    let mut fields = vec![
        ("node", js(&r.node)),
        ("kind", js(r.kind.label())),
        ("release", release),
        ("release_candidates", candidates),
        ("release_source", js(r.release_source)),
        (
            "names",
            jarr(
                r.names
                    .iter()
                    .map(|(n, p)| jobj(&[("name", js(n)), ("present", p.to_string())])),
            ),
        ),
        (
            "rexi_server_mon",
            r.mon_status
                .as_deref()
                .map(js)
                .unwrap_or_else(|| "null".into()),
        ),
        ("per_node_ready", r.per_node_ready.to_string()),
        (
            "visible",
            r.visible.map_or_else(|| "null".into(), |v| v.to_string()),
        ),
    ];
    if let Some(stats) = &r.stats {
        fields.push((
            "stats",
            jobj(
                &stats
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.to_string()))
                    .collect::<Vec<_>>(),
            ),
        ));
    }
    jobj(&fields)
}

pub(crate) fn report_text(r: &Report) -> String {
    let mut out = String::new();
    let kind = match r.kind {
        NodeKind::Beam => "BEAM node",
        NodeKind::RexiNode => match r.visible {
            Some(true) => "rexi-node (visible C-node)",
            Some(false) => "rexi-node (hidden C-node)",
            None => "rexi-node (C-node)",
        },
        NodeKind::CouchDb => "BEAM node with CouchDB's rexi",
    };
    match &r.release {
        _ if r.kind == NodeKind::CouchDb => {
            out.push_str(&format!("{}: {kind} ({})\n", r.node, r.release_source))
        }
        Some(rs) => out.push_str(&format!(
            "{}: {kind}, rexi release {rs} ({})\n",
            r.node, r.release_source
        )),
        None => out.push_str(&format!(
            "{}: {kind}, runs no rexi (no rexi_server* name)\n",
            r.node
        )),
    }
    let names: Vec<String> = r
        .names
        .iter()
        .map(|(n, present)| {
            if *present {
                n.clone()
            } else {
                format!("{n} (absent)")
            }
        })
        .collect();
    let what = match r.kind {
        NodeKind::Beam | NodeKind::CouchDb => "rexi names",
        NodeKind::RexiNode => "rexi names for this caller",
    };
    out.push_str(&format!(
        "  {what}: {}\n",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    ));
    out.push_str(&format!(
        "  rexi_server_mon status: {}\n",
        r.mon_status
            .as_deref()
            .unwrap_or("absent (no rexi_server_mon: release 0 or no rexi)")
    ));
    if let Some(stats) = &r.stats {
        let s: Vec<String> = stats.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("  stats: {}\n", s.join(" ")));
    }
    out
}

pub(crate) fn main(a: Args) -> ExitCode {
    tool::with_connected_client(&a.tool, &a.node, async |client| {
        match inspect(client, &a.node, a.tool.call_timeout()).await {
            Ok(r) => {
                if a.tool.json {
                    println!("{}", report_json(&r));
                } else {
                    print!("{}", report_text(&r));
                }
                Exit::Success.into()
            }
            Err(e) => Exit::Unreachable.with(&e),
        }
    })
}
