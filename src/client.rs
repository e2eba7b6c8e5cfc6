//! A short-lived hidden node for tools (the CLI subcommands and the load generator): it
//! connects out, sends, makes gen_server calls and receives, like `erl_call` does.

use crate::etf;
use crate::net::connection::SendError;
use crate::net::tls::Tls;
use crate::net::{epmd, ConnectError, Cookie, Node, NodeConfig};
use crate::process::ProcId;
use crate::process::{gen, Mailbox, Process, Signal};
use eetf::{Pid, Term};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a call did not return a reply.
#[derive(Debug)]
pub enum CallError {
    /// The target name is not registered on that node (as `gen_server:call` says `noproc`).
    NoProc,
    /// The connection went down while waiting.
    NoConnection,
    Timeout,
    /// The process behind the name exited with this reason.
    Exit(String),
    Send(SendError),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NoProc => {
                f.write_str("noproc: no process is registered under that name there")
            }
            CallError::NoConnection => {
                f.write_str("the connection went down while waiting for the reply")
            }
            CallError::Timeout => f.write_str("no reply before the timeout"),
            CallError::Exit(r) => write!(f, "the process exited: {r}"),
            CallError::Send(e) => write!(f, "{e}"),
        }
    }
}

/// A hidden node with one process (its own mailbox) for a tool.
pub struct Client {
    node: Node,
    mailbox: Mailbox,
    /// Kept to route `DOWN`s of the monitors this client sets.
    me: Arc<dyn Process>,
    /// Signals that arrived during a [`Client::call`] and were not its reply: like
    /// `gen_server:call`'s selective receive, a call leaves them for the next `recv`.
    stash: std::collections::VecDeque<Signal>,
}

impl Client {
    /// Starts a client node named `name` (for example `rexi_cli_1234@127.0.0.1`).
    pub async fn start(name: String, cookie: Cookie) -> Result<Client, ConnectError> {
        Client::start_tls(name, cookie, None).await
    }

    /// Starts a client node that dials over TLS distribution when `tls` is given.
    pub async fn start_tls(
        name: String,
        cookie: Cookie,
        tls: Option<Arc<Tls>>,
    ) -> Result<Client, ConnectError> {
        let mut cfg = NodeConfig::new(name, cookie);
        cfg.publish = false;
        cfg.tls = tls;
        let node = Node::start(cfg)
            .await
            .map_err(|e| ConnectError::NodeStart {
                reason: e.to_string(),
            })?;
        let mailbox = node.spawn_mailbox();
        // DOWNs of the monitors this client sets go straight to its own mailbox. Holding
        // the mailbox's sending end (not the node) keeps the node free to be dropped.
        let me =
            node.registry()
                .lookup_pid(&mailbox.pid)
                .ok_or_else(|| ConnectError::NodeStart {
                    reason: "the client's own process vanished at start".into(),
                })?;
        Ok(Client {
            node,
            mailbox,
            me,
            stash: std::collections::VecDeque::new(),
        })
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn pid(&self) -> &Pid {
        &self.mailbox.pid
    }

    /// Connects to `peer`. When epmd does not know it, the error lists the nodes epmd
    /// does know on that host, since a typo is the usual cause.
    pub async fn connect(&self, peer: &str) -> Result<(), ConnectError> {
        match self.node.connect(peer).await {
            Err(ConnectError::UnknownNode {
                node,
                host,
                registered: None,
            }) => {
                let registered = epmd::names(&host, self.node.config().epmd_port)
                    .await
                    .ok()
                    .map(|v| v.into_iter().map(|(n, _)| format!("{n}@{host}")).collect());
                Err(ConnectError::UnknownNode {
                    node,
                    host,
                    registered,
                })
            }
            other => other,
        }
    }

    /// `{Name, Node} ! Message` from this client's pid.
    pub fn send_named(&self, node: &str, name: &str, message: &Term) -> Result<(), SendError> {
        self.node.reg_send(&self.mailbox.pid, node, name, message)
    }

    pub fn send(&self, to: &Pid, message: Term) -> Result<(), SendError> {
        self.node.send(to, message)
    }

    /// The next signal, or `None` after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Signal> {
        if let Some(sig) = self.stash.pop_front() {
            return Some(sig);
        }
        tokio::time::timeout(timeout, self.mailbox.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// `gen_server:call({Name, Node}, Request, Timeout)`: monitors the name first, so an
    /// unknown name fails at once with `noproc`, as against a BEAM node.
    pub async fn call(
        &mut self,
        node: &str,
        name: &str,
        request: Term,
        timeout: Duration,
    ) -> Result<Term, CallError> {
        let mref = self
            .node
            .monitor_remote(
                &self.mailbox.pid,
                self.me.clone(),
                node,
                ProcId::Name(name.to_string()),
            )
            .map_err(CallError::Send)?;
        let from = Term::Tuple(eetf::Tuple::from(vec![
            Term::Pid(self.mailbox.pid.clone()),
            Term::Reference(Box::new(mref.clone())),
        ]));
        let msg = Term::Tuple(eetf::Tuple::from(vec![
            gen::atom("$gen_call"),
            from,
            request,
        ]));
        let sent = self.send_named(node, name, &msg);
        etf::dispose(msg);
        sent.map_err(CallError::Send)?;
        let until = Instant::now() + timeout;
        // Read the mailbox itself, not the stash: stashed signals are never a reply to
        // this call (its reference is new).
        let mut others = Vec::new();
        let result = loop {
            let left = until.saturating_duration_since(Instant::now());
            let Some(sig) = tokio::time::timeout(left, self.mailbox.rx.recv())
                .await
                .ok()
                .flatten()
            else {
                break Err(CallError::Timeout);
            };
            match sig {
                Signal::Message { mut message, .. }
                    if matches!(&*message, Term::Tuple(t) if t.elements.len() == 2
                    && matches!(&t.elements[0], Term::Reference(r) if r.id == mref.id)) =>
                {
                    let Term::Tuple(t) = &mut *message else {
                        continue;
                    };
                    break Ok(std::mem::replace(
                        &mut t.elements[1],
                        gen::atom("undefined"),
                    ));
                }
                Signal::Down {
                    reference, reason, ..
                } if reference.id == mref.id => {
                    break Err(match &*reason {
                        Term::Atom(a) if a.name == "noproc" => CallError::NoProc,
                        Term::Atom(a) if a.name == "noconnection" => CallError::NoConnection,
                        other => CallError::Exit(crate::term::print(other)),
                    });
                }
                other => others.push(other),
            }
        };
        self.stash.extend(others);
        if self.node.registry().remove_local_monitor(&mref) {
            let _ = self.node.demonitor_remote(
                &self.mailbox.pid,
                node,
                ProcId::Name(name.to_string()),
                &mref,
            );
        }
        result
    }

    /// A fresh reference of this client node, e.g. a rexi job's `Ref`.
    pub fn make_ref(&self) -> eetf::Reference {
        self.node.make_ref()
    }

    /// `erlang:monitor(process, Target)` on `node` from this client's pid. The `DOWN`
    /// (`noproc` at once when the name is not registered there, `noconnection` when the
    /// node goes away) arrives through [`Client::recv`] as a [`Signal::Down`]. Tools use it
    /// to fail fast instead of waiting on a message that was dropped.
    pub fn monitor(&self, node: &str, target: ProcId) -> Result<eetf::Reference, SendError> {
        self.node
            .monitor_remote(&self.mailbox.pid, self.me.clone(), node, target)
    }

    /// Cancels a monitor set with [`Client::monitor`].
    pub fn demonitor(
        &self,
        node: &str,
        target: ProcId,
        reference: &eetf::Reference,
    ) -> Result<(), SendError> {
        self.node
            .demonitor_remote(&self.mailbox.pid, node, target, reference)
    }

    pub async fn stop(self) {
        self.node.shutdown().await;
    }
}
