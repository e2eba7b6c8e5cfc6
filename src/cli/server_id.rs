//! `rexi-node server-id`: the names a BEAM node's rexi uses for the server that handles
//! jobs from NODE.
//!
//! Releases of the rolling migration disagree on the name: one scheme registers
//! `rexi_server_<erlang:phash2(Node)>`, the form CouchDB shipped later registers
//! `rexi_server_<Node>`. Printing both lets an operator check, with `registered()` on a
//! peer, which one that peer is actually using.

use super::exit::Exit;
use std::process::ExitCode;

use eetf::Term;
use rexi_node::phash2::server_id;
use rexi_node::term::{self, MAX_ATOM_CHARS};

#[derive(clap::Args, Debug)]
#[command(after_help = "Example:\n  rexi-node server-id a@127.0.0.1\n  \
    rexi_server_41428801\n  rexi_server_a@127.0.0.1")]
pub(crate) struct Args {
    /// The caller's node name, e.g. couchdb@db1.example.com, bare or as a quoted Erlang
    /// atom ('couchdb@db1.example.com', with escapes).
    pub node: String,
}

/// The node name itself: a quoted atom is parsed with Erlang's escapes, anything else is
/// taken literally.
fn node_name(arg: &str) -> Result<String, String> {
    let arg = arg.trim();
    if !arg.starts_with('\'') {
        return Ok(arg.to_string());
    }
    match term::parse(arg) {
        Ok(Term::Atom(a)) => Ok(a.name),
        Ok(other) => Err(format!(
            "{arg} is not an atom but {}",
            term::print_truncated(&other, 60)
        )),
        Err(e) => Err(format!("{arg} is not a quoted atom: {e}")),
    }
}

pub(crate) fn main(a: Args) -> ExitCode {
    let name = match node_name(&a.node) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("rexi-node server-id: {e}");
            return Exit::Usage.into();
        }
    };
    if name.is_empty() {
        eprintln!("rexi-node server-id: the node name is empty");
        return Exit::Usage.into();
    }
    let chars = name.chars().count();
    if chars > MAX_ATOM_CHARS {
        eprintln!(
            "rexi-node server-id: '{name}' has {chars} characters; node names are atoms, which \
             hold at most {MAX_ATOM_CHARS}"
        );
        return Exit::Usage.into();
    }
    if !name.contains('@') {
        eprintln!("rexi-node server-id: warning: '{name}' has no '@'; Erlang node names look like name@host");
    }
    if chars + "rexi_server_".len() > MAX_ATOM_CHARS {
        eprintln!(
            "rexi-node server-id: warning: rexi_server_{name} is longer than {MAX_ATOM_CHARS} \
             characters, so no BEAM can register it under the node-name scheme"
        );
    }
    println!("{}", server_id(&name));
    println!("rexi_server_{name}");
    Exit::Success.into()
}
