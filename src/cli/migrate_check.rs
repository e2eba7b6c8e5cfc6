//! `rexi-node migrate-check NODE... | --cluster SEED`: reads each node's rexi release,
//! prints which caller->target pairs deliver `rexi:cast`s today (docs/design/migration.md
//! §2), what the matrix would be after each node's next step, and a verdict per node. The
//! logic lives in [`rexi_node::migrate`]; this file only reads the nodes and prints.
//!
//! Exit codes: 0 no pair loses casts today; 1 some pair does; 3 a node could not be read
//! (the cluster cannot be judged then).

use super::exit::Exit;
use super::inspect::{hidden_nodes, inspect, visible_nodes, Report};
use super::status::report_json;
use super::tool::{self, jarr, jobj, js, ToolArgs};
use rexi_node::migrate::{assess, describe, warnings, Matrix, Member, NodeKind, Verdict};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The nodes to check, NAME@HOST (BEAM nodes and rexi-nodes).
    pub nodes: Vec<String>,
    /// Also check SEED and every node in its nodes() (the visible cluster), plus the
    /// rexi-nodes among its hidden connections.
    #[arg(long, value_name = "SEED_NODE")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub tool: ToolArgs,
}

const LEGEND: &str = "caller row -> target column. ok: delivered; ok*: delivered once the target's rexi_server_mon started the caller's server; WAIT: ok* but that server is not started yet, lost now; LOST: dropped silently; DOWN: a CouchDB caller treats this hidden rexi-node as down; -: a rexi-node never casts";

fn matrix_json(m: &Matrix) -> String {
    let mut cells = Vec::new();
    for (i, row) in m.rows.iter().enumerate() {
        for (j, c) in row.iter().enumerate() {
            cells.push(jobj(&[
                ("caller", js(&m.names[i])),
                ("target", js(&m.names[j])),
                ("delivery", js(c.label())),
                ("loses", c.loses().to_string()),
            ]));
        }
    }
    jarr(cells)
}

pub(crate) fn main(a: Args) -> ExitCode {
    if a.nodes.is_empty() && a.cluster.is_none() {
        return Exit::Usage
            .with("name the nodes to check, or a seed node with --cluster SEED_NODE");
    }
    let first = a
        .cluster
        .clone()
        .or_else(|| a.nodes.first().cloned())
        .unwrap_or_default();
    // Not `with_connected_client`: the tool connects to many nodes, and one that cannot be
    // read is reported with the others.
    tool::with_client(&a.tool, &first, async |client| {
        let timeout = a.tool.call_timeout();
        let mut targets: Vec<String> = a.nodes.clone();
        let mut hidden: Vec<String> = Vec::new();
        if let Some(seed) = &a.cluster {
            if let Err(e) = client.connect(seed).await {
                return Exit::for_connect(&e).with(&format!("cluster seed: {e}"));
            }
            let listed = match visible_nodes(client, seed, timeout).await {
                Ok(v) => v,
                Err(e) => return Exit::Unreachable.with(&e),
            };
            targets.push(seed.clone());
            targets.extend(listed);
            match hidden_nodes(client, seed, timeout).await {
                Ok(v) => hidden = v,
                Err(e) => {
                    eprintln!("rexi-node: warning: {e}; rexi-nodes of the cluster are not checked")
                }
            }
        }
        let me = client.node().name().to_string();
        hidden.retain(|h| *h != me && !targets.contains(h));
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));

        let mut reports: Vec<Report> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        for t in &targets {
            match client.connect(t).await {
                Err(e) => failures.push(e.to_string()),
                Ok(()) => match inspect(client, t, timeout).await {
                    Ok(r) => reports.push(r),
                    Err(e) => failures.push(e),
                },
            }
        }
        // Hidden peers of the seed: only rexi-nodes are cluster members for rexi (others are
        // shells and tools).
        for h in &hidden {
            if client.connect(h).await.is_ok() {
                if let Ok(r) = inspect(client, h, timeout).await {
                    if r.kind == NodeKind::RexiNode {
                        reports.push(r);
                    }
                }
            }
        }
        if !failures.is_empty() {
            for f in &failures {
                eprintln!("rexi-node: {f}");
            }
            return Exit::Unreachable
                .with("cannot judge the migration: some nodes could not be read (see above)");
        }
        let (without, with): (Vec<Report>, Vec<Report>) =
            reports.into_iter().partition(|r| r.release.is_none());
        let members: Vec<Member> = with
            .iter()
            .filter_map(|r| {
                Some(Member {
                    name: r.node.clone(),
                    kind: r.kind,
                    release: r.release.clone()?,
                    per_node_ready: r.per_node_ready,
                    visible_peers: r.visible_peers.clone(),
                })
            })
            .collect();
        let result = assess(&members);
        let consistent = result.consistent();
        let warned = warnings(&members);
        if a.tool.json {
            let steps = result.steps.iter().map(|s| {
                let (node, to, safe) = match &s.verdict {
                    Verdict::CanMove { node, to } => (*node, to.get().to_string(), "true"),
                    Verdict::NotYet { node, to, .. } => (*node, to.get().to_string(), "false"),
                    Verdict::Done { node } => (*node, "null".into(), "null"),
                    Verdict::Unknown { node } | Verdict::NotInPlan { node } => {
                        (*node, "null".into(), "null")
                    }
                };
                jobj(&[
                    ("node", js(&members[node].name)),
                    ("to", to),
                    ("safe", safe.into()),
                    ("verdict", js(&describe(&members, &s.verdict))),
                    (
                        "matrix",
                        s.matrix
                            .as_ref()
                            .map(matrix_json)
                            .unwrap_or_else(|| "null".into()),
                    ),
                ])
            });
            println!(
                "{}",
                jobj(&[
                    ("consistent", consistent.to_string()),
                    ("nodes", jarr(with.iter().map(report_json))),
                    ("without_rexi", jarr(without.iter().map(|r| js(&r.node)))),
                    ("matrix", matrix_json(&result.now)),
                    ("steps", jarr(steps)),
                    ("warnings", jarr(warned.iter().map(|w| js(w)))),
                ])
            );
        } else {
            println!("nodes:");
            let w = members.iter().map(|m| m.name.len()).max().unwrap_or(0);
            for r in &with {
                println!(
                    "  {:<w$}  {:<9}  release {}  ({}; rexi_server_mon: {})",
                    r.node,
                    r.kind.label(),
                    match (r.kind, &r.release) {
                        (NodeKind::CouchDb, _) => "-".to_string(),
                        (_, Some(x)) => x.to_string(),
                        (_, None) => String::new(),
                    },
                    r.release_source,
                    r.mon_status.as_deref().unwrap_or("absent"),
                );
            }
            for r in &without {
                println!("  {:<w$}  runs no rexi: left out", r.node);
            }
            println!("\ndelivery of rexi casts now ({LEGEND}):");
            print!("{}", result.now.render());
            if consistent {
                println!("consistent: no pair loses casts today");
            } else {
                println!("NOT consistent: casts are lost today:");
                for (c, t, cell) in result.now.losses() {
                    println!(
                        "  {} (release {}) -> {} (release {}): {}",
                        members[c].name,
                        members[c].release_label(),
                        members[t].name,
                        members[t].release_label(),
                        cell.label()
                    );
                }
            }
            for w in &warned {
                println!("warning: {w}");
            }
            println!("\nnext steps (one node at a time, to its release + 1):");
            for s in &result.steps {
                println!("  {}", describe(&members, &s.verdict));
                if let Some(m) = &s.matrix {
                    for line in m.render().lines() {
                        println!("    {line}");
                    }
                }
            }
        }
        if consistent {
            Exit::Success.into()
        } else {
            Exit::Failure.into()
        }
    })
}
