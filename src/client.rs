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

/// A message to a registered name on one peer, encoded once and sent many times with a
/// few bytes patched in each time: a load generator's cast, whose reference alone changes
/// from one send to the next, costs one copy instead of an encode.
pub struct FrameTemplate {
    peer: Arc<crate::net::node::Peer>,
    frame: Vec<u8>,
    patch_at: usize,
    patch_len: usize,
}

/// Why a [`FrameTemplate`] could not be made.
#[derive(Debug)]
pub enum TemplateError {
    /// No connection to that node.
    NotConnected(String),
    Encode(etf::EncodeError),
    /// The marker bytes are not (exactly once) in the encoded message.
    Marker,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::NotConnected(n) => write!(f, "not connected to {n}"),
            TemplateError::Encode(e) => write!(f, "cannot encode the message: {e}"),
            TemplateError::Marker => {
                f.write_str("the marker occurs not exactly once in the encoded message")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

impl FrameTemplate {
    /// `{name, node} ! message` from `from`, with the bytes `marker` (which must occur
    /// exactly once in the encoded frame, e.g. the words of a placeholder reference) as the
    /// part [`FrameTemplate::send`] replaces.
    pub fn reg_send(
        local: &Node,
        from: &Pid,
        node: &str,
        name: &str,
        message: &Term,
        marker: &[u8],
    ) -> Result<FrameTemplate, TemplateError> {
        let peer = local
            .peer(node)
            .ok_or_else(|| TemplateError::NotConnected(node.to_string()))?;
        let mut frame = Vec::new();
        let ctl = crate::net::message::ctl::reg_send(from, name);
        crate::net::message::write_frame(&mut frame, &ctl, Some(message))
            .map_err(TemplateError::Encode)?;
        let mut at = frame
            .windows(marker.len().max(1))
            .enumerate()
            .filter(|(_, w)| *w == marker)
            .map(|(i, _)| i);
        let (Some(patch_at), None) = (at.next(), at.next()) else {
            return Err(TemplateError::Marker);
        };
        Ok(FrameTemplate {
            peer,
            frame,
            patch_at,
            patch_len: marker.len(),
        })
    }

    /// Queues the frame with `patch` (as long as the marker) in the marker's place.
    pub fn send(&self, patch: &[u8]) -> Result<(), SendError> {
        if patch.len() != self.patch_len {
            return Err(SendError::Encode(etf::EncodeError(format!(
                "a patch of {} bytes for a marker of {}",
                patch.len(),
                self.patch_len
            ))));
        }
        self.peer.outbox.push(|b| {
            let p = b.len() + self.patch_at;
            b.extend_from_slice(&self.frame);
            b[p..p + patch.len()].copy_from_slice(patch);
            Ok(())
        })
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
