//! `SPAWN_REQUEST` and `SPAWN_REPLY` (`DFLAG_SPAWN`): how `erpc`, `rpc` (OTP 23 and later run
//! both on spawn requests) and `spawn/4` reach this node.
//!
//! A peer asks for a process running `{Module, Function, Arity}` with an argument list, and
//! may ask for a link and a monitor set up with it (the monitor's reference is the request
//! id). The node (its routing) answers with the new pid, or with an error atom, and the
//! flags of what was set up. What the process runs is not this layer's business: a
//! [`SpawnService`] (the rexi layer's, see `rexi::erpc`) decides and registers the pid; the
//! node starts the work only once the reply is queued, so the caller never sees the process
//! end before it sees it begin.

use crate::etf::Owned;
use eetf::{Pid, Reference, Term};

/// `SPAWN_REPLY` flag: a link between the caller and the new process was set up.
pub const LINKED: i32 = 1;
/// `SPAWN_REPLY` flag: a monitor from the caller on the new process was set up.
pub const MONITORED: i32 = 2;

/// One `SPAWN_REQUEST`, checked: `from` is a process of the sending node.
#[derive(Debug)]
pub struct SpawnRequest {
    /// The request id; also the monitor's reference when a monitor is asked for.
    pub req_id: Reference,
    /// The spawning process (the new process's parent).
    pub from: Pid,
    pub module: String,
    pub function: String,
    /// The argument list, as sent (a list whose length the peer claims is the arity).
    pub args: Owned,
    /// `link` among the options.
    pub link: bool,
    /// `monitor` (or `{monitor, Opts}`) among the options.
    pub monitor: bool,
}

/// A process the service registered and has not started yet.
pub struct Spawned {
    pub pid: Pid,
    pub job: Box<dyn SpawnedJob>,
}

/// The work of a spawned process, started once the caller has its reply.
pub trait SpawnedJob: Send {
    /// Runs it (it may end at once; its exit then fires the monitor and the link).
    fn start(self: Box<Self>);
    /// It will never run (the spawn was refused after all): forget it. The distribution
    /// layer removes the pid.
    fn abandon(self: Box<Self>);
}

/// Decides what a spawn request runs. `Err(atom)` refuses it with that reason in the
/// `SPAWN_REPLY` (`system_limit`, `badarg`, ...).
pub trait SpawnService: Send + Sync {
    fn spawn(&self, request: SpawnRequest) -> Result<Spawned, &'static str>;
}

/// The options of a `SPAWN_REQUEST` that this node acts on: `link` and `monitor` (a
/// `{monitor, Opts}` asks for one too; its options are the caller's node's business).
/// Everything else (priority, heap sizes, ...) means nothing here and is ignored.
/// `None` when the options are not a list.
pub fn options(opts: &Term) -> Option<(bool, bool)> {
    let Term::List(l) = opts else {
        return None;
    };
    let (mut link, mut monitor) = (false, false);
    for o in &l.elements {
        match o {
            Term::Atom(a) if a.name == "link" => link = true,
            Term::Atom(a) if a.name == "monitor" => monitor = true,
            Term::Tuple(t)
                if t.elements.len() == 2
                    && matches!(&t.elements[0], Term::Atom(a) if a.name == "monitor") =>
            {
                monitor = true
            }
            _ => {}
        }
    }
    Some((link, monitor))
}

#[cfg(test)]
mod tests {
    use super::options;
    use eetf::{Atom, List, Term, Tuple};

    fn a(n: &str) -> Term {
        Term::Atom(Atom::from(n))
    }

    #[test]
    fn link_and_monitor_options() {
        let l = |v: Vec<Term>| Term::List(List::from(v));
        assert_eq!(options(&l(vec![])), Some((false, false)));
        assert_eq!(
            options(&l(vec![a("link"), a("monitor")])),
            Some((true, true))
        );
        let tagged = Term::Tuple(Tuple::from(vec![a("monitor"), l(vec![])]));
        assert_eq!(
            options(&l(vec![tagged, a("priority")])),
            Some((false, true))
        );
        assert_eq!(options(&a("link")), None);
    }
}
