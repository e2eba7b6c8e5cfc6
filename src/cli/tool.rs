//! What the operator's tools (`names`, `ping`, `status`, `cast`, `release`, `migrate-check`)
//! share: the client node, connecting with errors that say *which* thing went wrong,
//! calls through a BEAM node's `rex` server, term helpers and a small JSON writer.
//!
//! Every tool runs inside [`with_client`] (or [`with_connected_client`]): one place starts
//! the client node, connects, maps a failed connection to its exit code ([`Exit`]), and
//! stops the node however the tool ends.

use super::exit::Exit;
use super::node_args::NodeArgs;
use eetf::{Atom, FixInteger, List, Term, Tuple};
use rexi_node::client::{CallError, Client};
use rexi_node::net::ConnectError;
use rexi_node::process::gen;
use std::process::ExitCode;
use std::time::Duration;

/// Options every tool takes: who we are (a short-lived hidden node), the cookie, output.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ToolArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Print JSON (one object) instead of text, for scripts.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub call_timeout: u64,
}

impl ToolArgs {
    pub(crate) fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout.max(1))
    }
}

/// The name our client node takes: `--name`/`--sname` if given, else `<prefix>_<pid>` on a
/// host of the same kind as the target's (a long-name cluster refuses short names, and
/// the other way round). The client never listens, so the host is only a label.
pub(crate) fn client_name(args: &NodeArgs, prefix: &str, target: &str) -> Result<String, String> {
    if args.name.is_some() || args.sname.is_some() {
        return args.node_name(prefix);
    }
    let alive = format!("{prefix}_{}", std::process::id());
    let target_host = target.split_once('@').map(|(_, h)| h).unwrap_or("");
    if target_host.contains('.') || target_host.parse::<std::net::IpAddr>().is_ok() {
        let host = full_host_name()
            .filter(|h| h.contains('.'))
            .unwrap_or_else(|| "127.0.0.1".to_string());
        Ok(format!("{alive}@{host}"))
    } else {
        Ok(format!("{alive}@{}", super::node_args::short_host_name()))
    }
}

fn full_host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::Failure.with(&format!("cannot start the runtime: {e}")))
}

/// Starts the client node. `first_target` picks the kind of host name (see [`client_name`]).
async fn start_client(args: &ToolArgs, first_target: &str) -> Result<Client, ExitCode> {
    let name =
        client_name(&args.node, "rexi_cli", first_target).map_err(|e| Exit::Failure.with(&e))?;
    let cookie = args
        .node
        .load_cookie()
        .map_err(|e| Exit::Failure.with(&e))?;
    let tls = args.node.load_tls().map_err(|e| Exit::Failure.with(&e))?;
    Client::start_tls(name, cookie, tls)
        .await
        .map_err(|e| connect_failed(&e))
}

/// Prints why a connection could not be made and returns the matching exit code.
pub(crate) fn connect_failed(e: &ConnectError) -> ExitCode {
    Exit::for_connect(e).with(&e.to_string())
}

/// Runs `body` with a tool's client node (named for `first_target`, see [`client_name`])
/// on a fresh runtime, and stops the node whatever `body` returns, so no tool leaves a
/// half-closed connection behind on the peer.
pub(crate) fn with_client(
    args: &ToolArgs,
    first_target: &str,
    body: impl AsyncFnOnce(&mut Client) -> ExitCode,
) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let mut client = match start_client(args, first_target).await {
            Ok(c) => c,
            Err(code) => return code,
        };
        let code = body(&mut client).await;
        client.stop().await;
        code
    })
}

/// [`with_client`], connected to `node` before `body` runs. A node that cannot be reached
/// ends the tool with [`Exit::Unreachable`] and the reason, typed by `ConnectError`.
pub(crate) fn with_connected_client(
    args: &ToolArgs,
    node: &str,
    body: impl AsyncFnOnce(&mut Client) -> ExitCode,
) -> ExitCode {
    with_client(args, node, async |client: &mut Client| {
        match client.connect(node).await {
            Ok(()) => body(client).await,
            Err(e) => connect_failed(&e),
        }
    })
}

/// Why a call through `rex` failed.
#[derive(Debug)]
pub(crate) enum RexError {
    /// No `rex` server: the node is not a BEAM node (a rexi-node or another C-node).
    NoRex,
    /// `{badrpc, Reason}`: the function raised, or is undefined there.
    BadRpc(String),
    Call(CallError),
}

impl std::fmt::Display for RexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RexError::NoRex => f.write_str("it has no rex server (not a BEAM node)"),
            RexError::BadRpc(r) => write!(f, "badrpc: {r}"),
            RexError::Call(e) => write!(f, "{e}"),
        }
    }
}

/// `rpc:call(Node, M, F, A)` the way OTP's `rex` server takes it from a node that cannot
/// spawn remotely: `gen_server:call({rex, Node}, {call, M, F, A, user})`. `user` makes the
/// call's group leader the target's own `user` process (verified on OTP 25), so output of
/// the function stays on the target.
pub(crate) async fn rex_call(
    client: &mut Client,
    node: &str,
    m: &str,
    f: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Term, RexError> {
    let request = tuple(vec![
        atom("call"),
        atom(m),
        atom(f),
        list(args),
        atom("user"),
    ]);
    match client.call(node, "rex", request, timeout).await {
        Ok(Term::Tuple(t)) if t.elements.len() == 2 && is_atom(&t.elements[0], "badrpc") => {
            Err(RexError::BadRpc(rexi_node::term::print(&t.elements[1])))
        }
        Ok(v) => Ok(v),
        Err(CallError::NoProc) => Err(RexError::NoRex),
        Err(e) => Err(RexError::Call(e)),
    }
}

// ---- terms ---------------------------------------------------------------------------------

pub(crate) fn atom(name: &str) -> Term {
    gen::atom(name)
}

pub(crate) fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

pub(crate) fn list(v: Vec<Term>) -> Term {
    Term::List(List::from(v))
}

pub(crate) fn int(i: i32) -> Term {
    Term::FixInteger(FixInteger::from(i))
}

pub(crate) fn is_atom(t: &Term, name: &str) -> bool {
    matches!(t, Term::Atom(a) if a.name == name)
}

pub(crate) fn atom_name(t: &Term) -> Option<&str> {
    match t {
        Term::Atom(Atom { name }) => Some(name),
        _ => None,
    }
}

pub(crate) fn small_int(t: &Term) -> Option<i64> {
    match t {
        Term::FixInteger(i) => Some(i.value as i64),
        Term::BigInteger(b) => i64::try_from(&b.value).ok(),
        _ => None,
    }
}

/// The elements of a proper list (`[]` included). A list of small integers that arrived
/// as a string (`ByteList`) is not a list of atoms or tuples, which is all callers expect.
pub(crate) fn list_items(t: &Term) -> Option<&[Term]> {
    match t {
        Term::List(l) => Some(&l.elements),
        _ => None,
    }
}

/// `[{Key, Value}]` with atom keys and integer values, as `rexi_server_mon`'s `stats`.
pub(crate) fn int_proplist(t: &Term) -> Option<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for item in list_items(t)? {
        match item {
            Term::Tuple(kv) if kv.elements.len() == 2 => {
                out.push((
                    atom_name(&kv.elements[0])?.to_string(),
                    small_int(&kv.elements[1])?,
                ));
            }
            _ => return None,
        }
    }
    Some(out)
}

// ---- JSON ----------------------------------------------------------------------------------

/// A JSON string literal.
pub(crate) fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object from already-encoded values.
pub(crate) fn jobj(fields: &[(&str, String)]) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", js(k), v))
        .collect();
    format!("{{{}}}", inner.join(","))
}

pub(crate) fn jarr(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().collect();
    format!("[{}]", v.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes() {
        assert_eq!(js("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(
            jobj(&[("a", js("x")), ("b", "1".into())]),
            "{\"a\":\"x\",\"b\":1}"
        );
        assert_eq!(jarr(vec!["1".to_string(), "2".to_string()]), "[1,2]");
    }

    #[test]
    fn client_name_matches_the_target_kind() {
        let a = NodeArgs {
            name: None,
            sname: None,
            cookie: None,
            cookie_file: None,
            tls_cert: None,
            tls_key: None,
            tls_cacert: None,
            ssl_dist_optfile: None,
        };
        let long = client_name(&a, "rexi_cli", "x@127.0.0.1").unwrap_or_default();
        assert!(long.starts_with("rexi_cli_"), "{long}");
        let host = long.split_once('@').map(|(_, h)| h).unwrap_or("");
        assert!(host.contains('.'), "{long}");
        let short = client_name(&a, "rexi_cli", "x@somehost").unwrap_or_default();
        assert!(!short
            .split_once('@')
            .map(|(_, h)| h)
            .unwrap_or(".")
            .contains('.'));
    }
}
