//! How a process is named in `MONITOR_P` and friends: a pid or a registered name.
//!
//! It lives with the processes (not with the wire format that carries it) because the
//! registry keys monitors by it; `net::message` re-exports it for the decoder.

use eetf::{Atom, Pid, Term};

/// A process identifier as it appears in `MONITOR_P` and friends: a pid or a registered name.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcId {
    Pid(Pid),
    Name(String),
}

impl ProcId {
    pub fn to_term(&self) -> Term {
        match self {
            ProcId::Pid(p) => Term::Pid(p.clone()),
            ProcId::Name(n) => Term::Atom(Atom::from(n.as_str())),
        }
    }
}
