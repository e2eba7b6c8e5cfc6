//! Reading what a node runs, for `status` and `migrate-check`.
//!
//! A BEAM node is read through its `rex` server (registered names, application env) plus a
//! call to its `rexi_server_mon`. A rexi-node has no `rex` (it is a C-node), which is how
//! the two are told apart; it answers `stats` and `release` on its `rexi_server_mon`
//! instead. rexi-node registers names per connected peer, so its names are probed by
//! calling them (a `noproc` means absent), for the names this very client would use.

use super::tool::{
    atom, atom_name, int_proplist, is_atom, list_items, rex_call, small_int, RexError,
};
use eetf::Term;
use rexi_node::client::{CallError, Client};
use rexi_node::migrate::{infer_beam_release, is_node_name_server, NodeKind, Releases};
use rexi_node::rexi::Release;
use std::time::Duration;

/// What was read from one node.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub node: String,
    pub kind: NodeKind,
    /// `None`: the node runs no rexi at all.
    pub release: Option<Releases>,
    /// Where the release came from, for the operator.
    pub release_source: &'static str,
    /// rexi names: for a BEAM node every registered `rexi_*` name; for a rexi-node the
    /// names a caller like this client would use, each with whether it exists.
    pub names: Vec<(String, bool)>,
    /// `rexi_server_mon`'s answer to `status`, printed, or `None` when it is not there.
    pub mon_status: Option<String>,
    /// Whether `status` answered `ok` (an absent monitor counts as ready: R0 has none and
    /// nothing waits on it).
    pub per_node_ready: bool,
    pub stats: Option<Vec<(String, i64)>>,
    /// Whether the node joined visible (it published itself in the handshake with this
    /// client); `None` when the connection was gone by the time it was asked.
    pub visible: Option<bool>,
    /// For a CouchDB node, its `nodes()` (whom its coordinators treat as up); else empty.
    pub visible_peers: Vec<String>,
}

fn print(t: &Term) -> String {
    rexi_node::term::print(t)
}

async fn mon_status(
    client: &mut Client,
    node: &str,
    timeout: Duration,
) -> Result<Option<(String, bool)>, String> {
    match client
        .call(node, "rexi_server_mon", atom("status"), timeout)
        .await
    {
        Ok(t) => Ok(Some((print(&t), is_atom(&t, "ok")))),
        Err(CallError::NoProc) => Ok(None),
        Err(e) => Err(format!(
            "rexi_server_mon on {node} did not answer status: {e}"
        )),
    }
}

/// Reads `node`, which must be connected.
pub(crate) async fn inspect(
    client: &mut Client,
    node: &str,
    timeout: Duration,
) -> Result<Report, String> {
    let mut report = match rex_call(client, node, "erlang", "registered", vec![], timeout).await {
        Ok(names) => inspect_beam(client, node, &names, timeout).await,
        Err(RexError::NoRex) => inspect_rexi_node(client, node, timeout).await,
        Err(e) => Err(format!(
            "cannot list the registered names of {node} through rex: {e}"
        )),
    }?;
    report.visible = client.node().peer(node).map(|p| p.info.published());
    Ok(report)
}

async fn inspect_beam(
    client: &mut Client,
    node: &str,
    registered: &Term,
    timeout: Duration,
) -> Result<Report, String> {
    let mut names: Vec<String> = list_items(registered)
        .ok_or_else(|| format!("{node}: erlang:registered() gave {}", print(registered)))?
        .iter()
        .filter_map(atom_name)
        .filter(|n| n.starts_with("rexi_"))
        .map(str::to_string)
        .collect();
    names.sort();
    let has = |n: &str| names.iter().any(|x| x == n);
    let has_singleton = has("rexi_server");
    let has_mon = has("rexi_server_mon");
    let has_per_node = names
        .iter()
        .any(|n| n.starts_with("rexi_server_") && n != "rexi_server_mon" && n != "rexi_server_sup");
    let (mon_status, per_node_ready) = match mon_status(client, node, timeout).await? {
        Some((s, ok)) => (Some(s), ok),
        None => (None, true),
    };
    // The erlang-interop rexi app (and anything that follows its convention) says its
    // release in its application env; older rexi does not, and then the names tell.
    let env = rex_call(
        client,
        node,
        "application",
        "get_env",
        vec![atom("rexi"), atom("release")],
        timeout,
    )
    .await
    .map_err(|e| format!("cannot read application env rexi/release of {node}: {e}"))?;
    let from_env = match &env {
        Term::Tuple(t) if t.elements.len() == 2 && is_atom(&t.elements[0], "ok") => {
            match small_int(&t.elements[1])
                .and_then(|n| u8::try_from(n).ok())
                .and_then(Release::new)
            {
                Some(r) => Some(r),
                None => {
                    return Err(format!(
                        "{node}: application env rexi/release is {}, not a release 0..3",
                        print(&t.elements[1])
                    ))
                }
            }
        }
        _ => None,
    };
    // CouchDB names its per-node servers after nodes and has no release env: it is not
    // one of the releases 0..3, and whom its coordinators use depends on its nodes().
    let couchdb = from_env.is_none() && names.iter().any(|n| is_node_name_server(n));
    let (kind, release, release_source, visible_peers) = match from_env {
        _ if couchdb => (
            NodeKind::CouchDb,
            Some(Releases::one_of(Vec::new())),
            "CouchDB-style: per-node servers named after nodes, no release env",
            visible_nodes(client, node, timeout).await?,
        ),
        Some(r) => (
            NodeKind::Beam,
            Some(Releases::known(r)),
            "application env rexi/release",
            Vec::new(),
        ),
        None => (
            NodeKind::Beam,
            infer_beam_release(has_singleton, has_mon, has_per_node),
            "inferred from its registered names",
            Vec::new(),
        ),
    };
    Ok(Report {
        node: node.to_string(),
        kind,
        release,
        release_source,
        names: names.into_iter().map(|n| (n, true)).collect(),
        mon_status,
        per_node_ready,
        stats: None,
        visible: None,
        visible_peers,
    })
}

async fn inspect_rexi_node(
    client: &mut Client,
    node: &str,
    timeout: Duration,
) -> Result<Report, String> {
    let stats = match client.call(node, "rexi_server_mon", atom("stats"), timeout).await {
        Ok(t) => int_proplist(&t)
            .ok_or_else(|| format!("{node}: rexi_server_mon stats gave {}", print(&t)))?,
        Err(CallError::NoProc) => {
            return Err(format!(
                "{node} is neither a BEAM node (it has no rex server) nor a rexi-node (it has no rexi_server_mon)"
            ))
        }
        Err(e) => return Err(format!("rexi_server_mon on {node} did not answer stats: {e}")),
    };
    let release = stats
        .iter()
        .find(|(k, _)| k == "release")
        .and_then(|(_, v)| u8::try_from(*v).ok())
        .and_then(Release::new)
        .ok_or_else(|| format!("{node}: rexi_server_mon stats carry no release 0..3"))?;
    let me = client.node().name().to_string();
    let mut names = Vec::new();
    for n in [
        "rexi_server".to_string(),
        rexi_node::phash2::server_id(&me),
        format!("rexi_server_{me}"),
    ] {
        // rexi servers answer unknown calls with `ignored`; only presence matters here.
        let present = match client
            .call(node, &n, atom("rexi_node_probe"), timeout)
            .await
        {
            Ok(_) => true,
            Err(CallError::NoProc) => false,
            Err(e) => return Err(format!("{n} on {node} did not answer: {e}")),
        };
        names.push((n, present));
    }
    let (mon_status, per_node_ready) = match mon_status(client, node, timeout).await? {
        Some((s, ok)) => (Some(s), ok),
        None => (None, true),
    };
    Ok(Report {
        node: node.to_string(),
        kind: NodeKind::RexiNode,
        release: Some(Releases::known(release)),
        release_source: "rexi_server_mon stats",
        names,
        mon_status,
        per_node_ready,
        stats: Some(stats),
        visible: None,
        visible_peers: Vec::new(),
    })
}

/// `nodes()` of `seed`, through rex: the visible members of its cluster.
pub(crate) async fn visible_nodes(
    client: &mut Client,
    seed: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    nodes_call(client, seed, vec![], timeout).await
}

/// `nodes(hidden)` of `seed`: where rexi-nodes (and tools like this one) are.
pub(crate) async fn hidden_nodes(
    client: &mut Client,
    seed: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    nodes_call(client, seed, vec![atom("hidden")], timeout).await
}

async fn nodes_call(
    client: &mut Client,
    seed: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let t = rex_call(client, seed, "erlang", "nodes", args, timeout)
        .await
        .map_err(|e| match e {
            RexError::NoRex => format!(
                "{seed} has no rex server: a cluster seed must be a BEAM node (a rexi-node is hidden and has no cluster view)"
            ),
            e => format!("cannot read nodes() of {seed}: {e}"),
        })?;
    let items = list_items(&t).ok_or_else(|| format!("{seed}: nodes() gave {}", print(&t)))?;
    Ok(items
        .iter()
        .filter_map(atom_name)
        .map(str::to_string)
        .collect())
}
