//! `erpc`, `rpc` and `spawn/4` callers, served by the same handlers as rexi casts.
//!
//! OTP 23 and later run `erpc:call(N, M, F, A)` (and `rpc:call`, `rpc:multicall`,
//! `erpc:multicall`, which OTP 25 builds on it) as a spawn request for
//! `erpc:execute_call(Res, M, F, A)` with a monitor: the new process applies `M:F(A...)`
//! and exits with `{Res, return, Value}`, `{Res, error, Reason, Stack}`, `{Res, exit,
//! Reason}` or `{Res, throw, Value}`, and the caller reads the result from its `'DOWN'`.
//! `erpc:cast` spawns `erpc:execute_cast(M, F, A)`; `spawn(N, M, F, A)` spawns `M:F(A...)`.
//!
//! Here each becomes a job of the rexi server (same table, same `--max-jobs` and per-peer
//! quota, cancelled at nodedown) running the handler registered for `{M, F, length(A)}`:
//!
//! * its value is the handler's first `reply` (`ok` if it never replies);
//! * a handler failure gives the error or exit that rexi would report;
//! * an MFA with no handler ends as a BEAM process calling an undefined function does:
//!   `{Res, error, undef, [{M, F, Args, []}]}` for erpc (so `erpc:call` raises
//!   `{exception, undef, [{M, F, Args, []}]}` and `rpc:call` returns
//!   `{badrpc, {'EXIT', {undef, [{M, F, Args, []}]}}}`), `{undef, [{M, F, Args, []}]}` for
//!   a plain spawn;
//! * rexi's caller-facing calls (`sync_reply`, streams) have no caller to talk to: they
//!   fail with `{badmatch, undefined}`, what rexi's own functions raise outside a rexi
//!   worker.

use super::handler::Args;
use super::outcome::{ExitShape, Outcome};
use super::protocol::list_elements;
use super::reply_to::ReplyTo;
use super::server::RexiServer;
use super::worker::JobState;
use crate::etf::Owned;
use crate::net::spawn::{SpawnRequest, SpawnService, Spawned, SpawnedJob};
use crate::net::Node;
use crate::process::{Process, RefKey, Signal};
use eetf::{Atom, List, Term, Tuple};
use std::sync::{Arc, Weak};

fn atom(n: &str) -> Term {
    Term::Atom(Atom::from(n))
}

fn tuple(v: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(v))
}

/// The rexi server as the node's [`SpawnService`].
pub struct ErpcService {
    pub(crate) server: Weak<RexiServer>,
}

/// What a spawn request asks to run, once `erpc`'s wrappers are taken off.
struct Target {
    shape: ExitShape,
    module: String,
    function: String,
    args: Vec<Term>,
}

/// `erpc:execute_call(Res, M, F, A)`, `erpc:execute_cast(M, F, A)` or `M:F(Args)`.
/// `None` when erpc's wrapper has arguments erpc never sends (a non-atom M, an improper A).
/// Every term stays in an [`Owned`] until it is taken, so none is dropped recursively.
fn target(module: String, function: String, args: Owned) -> Option<Target> {
    let args = list_elements(args.into_term()).map_err(Owned::new).ok()?;
    let mut args: Vec<Owned> = args.into_iter().map(Owned::new).collect();
    let atom_of = |t: Owned| match &*t {
        Term::Atom(a) => Some(a.name.clone()),
        _ => None,
    };
    let mfa = |args: &mut Vec<Owned>| -> Option<(String, String, Vec<Term>)> {
        let a = list_elements(args.pop()?.into_term())
            .map_err(Owned::new)
            .ok()?;
        let a = Owned::new(Term::List(List::from(a)));
        let f = atom_of(args.pop()?)?;
        let m = atom_of(args.pop()?)?;
        match a.into_term() {
            Term::List(l) => Some((m, f, l.elements)),
            _ => None,
        }
    };
    let (shape, (module, function, args)) = match (module.as_str(), function.as_str(), args.len()) {
        ("erpc", "execute_call", 4) => {
            let mfa = mfa(&mut args)?;
            (ExitShape::Call(args.pop()?), mfa)
        }
        ("erpc", "execute_cast", 3) => (ExitShape::Plain, mfa(&mut args)?),
        _ => (
            ExitShape::Plain,
            (
                module,
                function,
                args.into_iter().map(Owned::into_term).collect(),
            ),
        ),
    };
    Some(Target {
        shape,
        module,
        function,
        args,
    })
}

impl SpawnService for ErpcService {
    fn spawn(&self, request: SpawnRequest) -> Result<Spawned, &'static str> {
        let server = self.server.upgrade().ok_or("notsup")?;
        let node = server.node();
        let SpawnRequest {
            req_id,
            from,
            module,
            function,
            args,
            ..
        } = request;
        // Arguments erpc never sends are dropped without recursion on every path.
        let Some(t) = target(module, function, args) else {
            return Err("badarg");
        };
        // Never `None` for what the decoder yields (see `ReplyTo::new`).
        let Some(to) = ReplyTo::new(&from, &req_id) else {
            drop(Owned::new(Term::List(List::from(t.args))));
            return Err("badarg");
        };
        let mfa = (t.module, t.function, t.args.len());
        let owner = from.node.name.clone();
        let key = RefKey::of(&req_id);
        let Some(handler) = server.handler(&mfa) else {
            // No handler: the process starts and dies of undef, as on a BEAM node.
            let args = Owned::new(Term::List(List::from(t.args)));
            let undef = tuple(vec![
                atom("undef"),
                super::protocol::stack(&mfa.0, &mfa.1, args.into_term()),
            ]);
            let reason = t.shape.exit_reason(Outcome::Error(Owned::new(undef)), None);
            let pid = node.spawn_process(|_| Arc::new(Inert));
            return Ok(Spawned {
                pid: pid.clone(),
                job: Box::new(Undefined {
                    node: node.clone(),
                    pid,
                    reason,
                }),
            });
        };
        if let Err((which, cap)) = server.admit(&owner) {
            super::stats::bump(&server.stats.overloaded);
            tracing::debug!(caller = %owner, cap, "overloaded ({which}): spawn request refused with system_limit");
            drop(Owned::new(Term::List(List::from(t.args))));
            return Err("system_limit");
        }
        let weak = self.server.clone();
        let pid = node.spawn_process(|_| {
            Arc::new(SpawnedProc {
                server: weak.clone(),
                key,
            })
        });
        let state = Arc::new(JobState::spawned(to, pid.clone(), t.shape));
        server.enter(key, &state);
        Ok(Spawned {
            pid,
            job: Box::new(Job {
                server,
                state,
                key,
                handler,
                args: Args::new(t.args),
            }),
        })
    }
}

/// A spawned job waiting for its start.
struct Job {
    server: Arc<RexiServer>,
    state: Arc<JobState>,
    key: RefKey,
    handler: (super::handler::HandlerFn, usize),
    args: Args,
}

impl SpawnedJob for Job {
    fn start(self: Box<Self>) {
        let j = *self;
        j.server.launch(j.state, j.key, j.handler, j.args);
    }
    fn abandon(self: Box<Self>) {
        self.server.forget(&self.key, &self.state);
    }
}

/// A spawn of an MFA with no handler: it exits with `undef` as soon as it starts.
struct Undefined {
    node: Node,
    pid: eetf::Pid,
    reason: Owned,
}

impl SpawnedJob for Undefined {
    fn start(self: Box<Self>) {
        self.node.exit_process(&self.pid, &self.reason);
    }
    fn abandon(self: Box<Self>) {}
}

/// A process that lives for an instant and receives nothing.
struct Inert;

impl Process for Inert {
    fn deliver(&self, _signal: Signal) {}
}

/// The pid of a spawned job. Messages to it are dropped (a handler has no mailbox over
/// erpc); an exit signal other than `normal` ends the job with that reason (`kill` as
/// `killed`), as it would end a process that does not trap exits.
struct SpawnedProc {
    server: Weak<RexiServer>,
    key: RefKey,
}

impl Process for SpawnedProc {
    fn deliver(&self, signal: Signal) {
        let Signal::Exit { reason, .. } = signal else {
            return;
        };
        let reason = match &*reason {
            Term::Atom(a) if a.name == "normal" => return,
            Term::Atom(a) if a.name == "kill" => Owned::new(atom("killed")),
            _ => reason,
        };
        if let Some(s) = self.server.upgrade() {
            s.end_job(&self.key, None, &reason);
        }
    }
}
