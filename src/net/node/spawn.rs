//! Spawn requests (`SPAWN_REQUEST`, from erpc, rpc and `spawn/4`): checked here, run by
//! the node's [`SpawnService`], answered with `SPAWN_REPLY`.
//!
//! The order is what a BEAM caller relies on: the service registers the new pid; the link
//! and the monitor the caller asked for are set up on it; the reply goes out; only then
//! does the process start. So its exit (which fires that monitor and link) always follows
//! the reply on the connection, even when it ends at once.

use super::Node;
use crate::etf::Owned;
use crate::net::message::ctl;
use crate::net::spawn::{self, SpawnRequest, LINKED, MONITORED};
use crate::process::ids::key;
use crate::process::{MonitorTarget, ProcId};
use eetf::{Atom, Pid, Reference, Term};

fn atom(n: &str) -> Term {
    Term::Atom(Atom::from(n))
}

impl Node {
    /// Serves one spawn request (its sender already checked): `arity` is what the peer
    /// said the argument list holds, `options` the spawn options as sent.
    pub(super) fn spawn_requested(&self, mut request: SpawnRequest, arity: u64, options: &Term) {
        let req_id = request.req_id.clone();
        let from = request.from.clone();
        let proper = match &*request.args {
            Term::List(l) => l.elements.len() as u64 == arity,
            // A list of small integers travels as STRING_EXT.
            Term::ByteList(b) => b.bytes.len() as u64 == arity,
            _ => false,
        };
        let Some((link, monitor)) = spawn::options(options).filter(|_| proper) else {
            // What spawn_request itself would raise for such arguments.
            return self.spawn_reply(&req_id, &from, 0, atom("badarg"));
        };
        request.link = link;
        request.monitor = monitor;
        let service = super::rlock(&self.0.spawner).clone();
        let spawned = match service {
            Some(s) => s.spawn(request),
            None => Err("notsup"),
        };
        let spawned = match spawned {
            Ok(s) => s,
            Err(why) => return self.spawn_reply(&req_id, &from, 0, atom(why)),
        };
        let reg = &self.0.registry;
        let pid = spawned.pid.clone();
        let mut flags = 0;
        // The pid was just registered: only the caller's node's caps can refuse these.
        let mut refused = link && reg.link(&pid, from.clone()).is_some();
        if link && !refused {
            flags |= LINKED;
        }
        if monitor && !refused {
            let target = ProcId::Pid(pid.clone());
            let local = MonitorTarget::Pid(key(&pid));
            refused = reg
                .monitor(from.clone(), target, local, req_id.clone())
                .is_some();
            if refused && flags & LINKED != 0 {
                reg.unlink(&pid, &from);
            }
            if !refused {
                flags |= MONITORED;
            }
        }
        if refused {
            // The caller's node holds as many links or monitors here as it may (the
            // registry logged which): refuse the spawn rather than run it unwatched.
            spawned.job.abandon();
            self.exit_process(&pid, &atom("system_limit"));
            return self.spawn_reply(&req_id, &from, 0, atom("system_limit"));
        }
        self.spawn_reply(&req_id, &from, flags, Term::Pid(pid));
        spawned.job.start();
    }

    fn spawn_reply(&self, req_id: &Reference, to: &Pid, flags: i32, result: Term) {
        let c = Owned::new(ctl::spawn_reply(req_id, to, flags, result));
        self.send_control(&to.node.name, &c, None);
    }
}
