//! The process facade of the node: what the layers above use to register names, spawn
//! processes, send messages and monitor remote processes, and the global budget of the
//! send queues that every outgoing frame passes.

use super::{rlock, Node, Peer, Slot};
use crate::etf::{self, Owned};
use crate::net::connection::SendError;
use crate::net::message::{self, ctl};
use crate::process::{mailbox, Effect, Mailbox, ProcId, Process, Signal};
use eetf::{Atom, Pid, Term};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Node {
    pub fn register(
        &self,
        name: &str,
        p: Arc<dyn Process>,
    ) -> Result<(), crate::process::registry::AlreadyRegistered> {
        self.0.registry.register_name(name, p)
    }

    /// Removes a name as if its process ended with `reason` (monitors on it fire).
    pub fn unregister(&self, name: &str, reason: &Term) {
        let effects = self.0.registry.unregister_name(name, reason);
        self.apply(effects);
    }

    /// A new process with a pid of this node and a mailbox.
    pub fn spawn_mailbox(&self) -> Mailbox {
        loop {
            let pid = self.0.ids.next_pid();
            let (tx, mb) = mailbox::channel(pid.clone());
            if self.0.registry.register_pid(&pid, Arc::new(tx)) {
                return mb;
            }
        }
    }

    /// Registers a pid for a process that handles its signals itself.
    pub fn spawn_process(&self, make: impl Fn(Pid) -> Arc<dyn Process>) -> Pid {
        loop {
            let pid = self.0.ids.next_pid();
            if self.0.registry.register_pid(&pid, make(pid.clone())) {
                return pid;
            }
        }
    }

    /// A local process ended: monitors and links fire.
    pub fn exit_process(&self, pid: &Pid, reason: &Term) {
        let effects = self.0.registry.exit_pid(pid, reason);
        self.apply(effects);
    }

    pub fn make_ref(&self) -> eetf::Reference {
        self.0.ids.next_ref()
    }

    pub(super) fn apply(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::MonitorExit {
                    holder,
                    target,
                    reference,
                    reason,
                } => {
                    let node = holder.node.name.clone();
                    let c = Owned::new(ctl::monitor_p_exit(&target, &holder, &reference, reason));
                    self.send_control(&node, &c, None);
                }
                Effect::LinkExit { from, to, reason } => {
                    let node = to.node.name.clone();
                    let c = Owned::new(ctl::exit(&from, &to, reason));
                    self.send_control(&node, &c, None);
                }
            }
        }
    }

    /// Queues frames for `peer`. When all send queues together passed the global budget,
    /// the connection with the largest queue is closed (a peer that does not read, as a
    /// rule) and the push tried once more; if that is still over, `peer` is closed.
    pub(super) fn push(
        &self,
        peer: &Peer,
        fill: impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
    ) -> Result<(), SendError> {
        match peer.outbox.push(&fill) {
            Err(SendError::OverBudget) => {}
            r => return r,
        }
        let hog = rlock(&self.0.peers)
            .values()
            .filter_map(|s| match s {
                Slot::Up(p) => Some(p.clone()),
                Slot::Connecting(_) => None,
            })
            .max_by_key(|p| p.outbox.queued());
        if let Some(hog) = hog {
            tracing::warn!(
                peer = %hog.info.name,
                queued = hog.outbox.queued(),
                total = self.0.outbox_budget.used(),
                cap = self.0.config.max_outbox_total,
                "closing the connection with the largest send queue: the send queues of all peers passed --max-outbox-total"
            );
            self.0.net.closed_over_outbox_total();
            hog.outbox.abort();
        }
        match peer.outbox.push(&fill) {
            Err(SendError::OverBudget) => {
                self.0.net.closed_over_outbox_total();
                peer.outbox
                    .stats
                    .refused_outbox
                    .fetch_add(1, Ordering::Relaxed);
                peer.outbox.abort();
                Err(SendError::Overflow)
            }
            r => r,
        }
    }

    pub(super) fn send_control(&self, node: &str, control: &Term, payload: Option<&Term>) {
        if let Some(p) = self.peer(node) {
            if let Err(e) = self.push(&p, |b| message::write_frame(b, control, payload)) {
                tracing::debug!(peer = node, error = %e, "control message not sent");
            }
        }
    }

    /// Sends `message` to `to`. A local pid gets it directly (the message is moved there);
    /// a remote pid through its node's connection. Not connected: like `erlang:send/2`,
    /// the node is connected first and the message delivered then (see
    /// [`crate::net::pending`]); only a message that cannot be held is an error.
    pub fn send(&self, to: &Pid, message: impl Into<Owned>) -> Result<(), SendError> {
        let message = message.into();
        if self.0.ids.is_local(to) {
            if let Some(p) = self.0.registry.lookup_pid(to) {
                p.deliver(Signal::Message {
                    from: None,
                    message,
                });
            }
            return Ok(());
        }
        self.send_ref(to, &message)
    }

    /// Like [`Node::send`] for a remote pid, without taking the message.
    pub fn send_ref(&self, to: &Pid, message: &Term) -> Result<(), SendError> {
        self.send_frame(&to.node.name, |b| message::write_send(b, to, message))
    }

    /// Queues the frame `fill` writes on `node`'s connection (connecting first, like
    /// [`Node::send`], when there is none). `fill` may be called more than once.
    pub(crate) fn send_frame(
        &self,
        node: &str,
        fill: impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
    ) -> Result<(), SendError> {
        match self.peer(node) {
            Some(p) => self.push(&p, fill),
            None => self.send_connecting(node, fill),
        }
    }

    /// `{Name, Node} ! Message` from a local pid.
    pub fn reg_send(
        &self,
        from: &Pid,
        node: &str,
        name: &str,
        message: &Term,
    ) -> Result<(), SendError> {
        let c = ctl::reg_send(from, name);
        let fill = |b: &mut Vec<u8>| message::write_frame(b, &c, Some(message));
        match self.peer(node) {
            Some(p) => self.push(&p, fill),
            None => self.send_connecting(node, fill),
        }
    }

    /// Monitors a remote process on behalf of a local one (the holder gets `Signal::Down`).
    pub fn monitor_remote(
        &self,
        holder_pid: &Pid,
        holder: Arc<dyn Process>,
        node: &str,
        target: ProcId,
    ) -> Result<eetf::Reference, SendError> {
        let reference = self.make_ref();
        let object = match &target {
            ProcId::Pid(p) => Term::Pid(p.clone()),
            ProcId::Name(n) => Term::Tuple(eetf::Tuple::from(vec![
                Term::Atom(Atom::from(n.as_str())),
                Term::Atom(Atom::from(node)),
            ])),
        };
        let peer = self
            .peer(node)
            .ok_or_else(|| SendError::NotConnected(node.to_string()))?;
        self.0
            .registry
            .add_local_monitor(&reference, holder, object, node);
        let c = ctl::monitor_p(holder_pid, &target, &reference);
        self.push(&peer, |b| message::write_frame(b, &c, None))?;
        Ok(reference)
    }

    /// Cancels a monitor set with [`Node::monitor_remote`].
    pub fn demonitor_remote(
        &self,
        holder_pid: &Pid,
        node: &str,
        target: ProcId,
        reference: &eetf::Reference,
    ) -> Result<(), SendError> {
        self.0.registry.remove_local_monitor(reference);
        let peer = self
            .peer(node)
            .ok_or_else(|| SendError::NotConnected(node.to_string()))?;
        let c = ctl::demonitor_p(holder_pid, &target, reference);
        self.push(&peer, |b| message::write_frame(b, &c, None))
    }
}
