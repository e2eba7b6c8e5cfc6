//! Routing: every control message a peer sends goes to the registered name or local pid
//! it names, after checking that the peer may speak for the sender pid it claims.

use super::{rlock, Node, Peer};
use crate::etf::Encoded;
use crate::etf::Owned;
use crate::net::global;
use crate::net::message::{self, ctl, Control, FrameError};
use crate::process::ids::key;
use crate::process::{gen, Effect, MonitorTarget, ProcId, Sender, Signal};
use eetf::Pid;

impl Node {
    /// Routes one control message that `peer` sent.
    ///
    /// # Who may speak for a pid
    ///
    /// Everything a peer makes this node remember (monitors, links) and every signal that
    /// can end a local process (exits) must come from a process of the sending node: a
    /// control message whose sender pid (`from` of REG_SEND, LINK, UNLINK, EXIT, EXIT2,
    /// MONITOR_P, DEMONITOR_P) names another node is **refused** (dropped, with a log line). A BEAM
    /// node treats such a message as invalid too (it tears the connection down); refusing
    /// the one message keeps the rest of that peer's work alive. Attributing it to the
    /// sender instead would keep state for a pid nobody could ever clean up: what a
    /// connection creates must be removable when that connection goes down, and nodedown
    /// only knows the connection's own node. (rexi jobs, whose caller pid is part of the
    /// message payload, not of the distribution header, are attributed to the sender
    /// instead: see the rexi server.)
    ///
    /// A registered name's message is decoded by the process behind the name (see
    /// [`crate::etf::Encoded`]); one that does not decode is returned as an
    /// error, and the connection closes as for any malformed frame.
    pub fn dispatch(&self, peer: &Peer, control: Control<'_>) -> Result<(), FrameError> {
        match control {
            Control::RegSend { from, to, message } => self.reg_send_in(peer, from, &to, message),
            other => {
                self.route(peer, other);
                Ok(())
            }
        }
    }

    /// `{Name, Node} ! Message` from `from`, a process of `peer`.
    fn reg_send_in(
        &self,
        peer: &Peer,
        from: Sender<'_>,
        to: &str,
        message: Encoded<'_>,
    ) -> Result<(), FrameError> {
        let after = message.offset();
        let bad = |e| message::payload_error(after, e);
        let sender = peer.info.name.as_str();
        if !speaks_for(sender, from.node(), "REG_SEND") {
            // Refused, but still a frame that must decode.
            message.decode().map_err(bad)?;
            return Ok(());
        }
        match self.0.registry.whereis(to) {
            Some(p) => p.deliver_encoded(from, message).map_err(bad),
            None if to == global::SERVER && self.0.config.visible => {
                self.global_sync(sender, &message.decode().map_err(bad)?);
                Ok(())
            }
            None => {
                // Dropped as a BEAM node drops it, once it decoded.
                message.decode().map_err(bad)?;
                self.0.unrouted_log.dropped(sender, to);
                if let Some(h) = rlock(&self.0.unrouted).as_ref() {
                    h(sender, to);
                }
                Ok(())
            }
        }
    }

    /// Every control message but `REG_SEND`.
    fn route(&self, peer: &Peer, control: Control<'_>) {
        let reg = &self.0.registry;
        let sender = peer.info.name.as_str();
        let speaks_for = |pid: &Pid, op: &str| speaks_for(sender, &pid.node.name, op);
        match control {
            Control::Send { from, to, message } => {
                match self
                    .0
                    .ids
                    .is_local(&to)
                    .then(|| reg.lookup_pid(&to))
                    .flatten()
                {
                    Some(p) => p.deliver(Signal::Message { from, message }),
                    None => {
                        tracing::debug!(peer = sender, pid = ?(to.id, to.serial, to.creation), "message to a pid that does not exist here: dropped");
                    }
                }
            }
            // Routed by `reg_send_in`.
            Control::RegSend { .. } => {}
            Control::SpawnRequest { from, .. } if !speaks_for(&from, "SPAWN_REQUEST") => {}
            Control::SpawnRequest {
                req_id,
                from,
                module,
                function,
                arity,
                options,
                args,
            } => self.spawn_requested(
                crate::net::spawn::SpawnRequest {
                    req_id,
                    from,
                    module,
                    function,
                    args,
                    link: false,
                    monitor: false,
                },
                arity,
                &options,
            ),
            Control::MonitorP {
                from,
                to,
                reference,
            } => {
                if !speaks_for(&from, "MONITOR_P") {
                    return;
                }
                let local = match &to {
                    ProcId::Name(n) => Some(MonitorTarget::Name(n.clone())),
                    ProcId::Pid(p) if self.0.ids.is_local(p) => Some(MonitorTarget::Pid(key(p))),
                    ProcId::Pid(_) => None,
                };
                let effect = match local {
                    Some(local) => reg.monitor(from, to, local, reference),
                    None => Some(Effect::MonitorExit {
                        holder: from,
                        target: to,
                        reference,
                        reason: gen::atom("noproc"),
                    }),
                };
                if let Some(e) = effect {
                    self.apply(vec![e]);
                }
            }
            Control::DemonitorP {
                from, reference, ..
            } => {
                if speaks_for(&from, "DEMONITOR_P") {
                    reg.demonitor(sender, &reference);
                }
            }
            Control::MonitorPExit {
                reference, reason, ..
            } => reg.monitor_exit(sender, reference, reason),
            Control::Link { from, to } => {
                if !speaks_for(&from, "LINK") {
                    return;
                }
                if let Some(e) = reg.link(&to, from) {
                    self.apply(vec![e]);
                }
            }
            Control::Unlink { from, to } => {
                if speaks_for(&from, "UNLINK") {
                    reg.unlink(&to, &from);
                }
            }
            Control::UnlinkId { id, from, to } => {
                if !speaks_for(&from, "UNLINK_ID") {
                    return;
                }
                reg.unlink(&to, &from);
                let c = Owned::new(ctl::unlink_id_ack(id.into_term(), &to, &from));
                self.send_control(sender, &c, None);
            }
            Control::UnlinkIdAck { .. } | Control::Ignored { .. } => {}
            Control::Exit { from, to, reason } => {
                if !speaks_for(&from, "EXIT") {
                    return;
                }
                reg.unlink(&to, &from);
                if let Some(p) = reg.lookup_pid(&to) {
                    p.deliver(Signal::Exit { from, reason });
                }
            }
            Control::Exit2 { from, to, reason } => {
                if !speaks_for(&from, "EXIT2") {
                    return;
                }
                if let Some(p) = reg.lookup_pid(&to) {
                    p.deliver(Signal::Exit { from, reason });
                }
            }
        }
    }

    /// `global`'s `init_connect` from `peer`: answer `in_sync` at once (see
    /// [`crate::net::global`]). Anything else global sends is dropped.
    fn global_sync(&self, peer: &str, message: &crate::etf::Owned) {
        match global::answer(message, peer, self.atom()) {
            Some(in_sync) => match self.reg_send(&self.0.global, peer, global::SERVER, &in_sync) {
                Ok(()) => tracing::info!(
                    peer,
                    "global in_sync sent: global:sync() on that node need not wait for this one"
                ),
                Err(e) => {
                    tracing::warn!(peer, error = %e, "global in_sync not sent: global:sync() on that node waits until it loses the connection to this one")
                }
            },
            None => tracing::debug!(
                peer,
                "message to global_name_server (not registered here): dropped"
            ),
        }
    }
}

/// Whether `claimed`, the node of the sender pid a control message `op` claims, is `sender`,
/// the peer whose connection carried it; if not, the message is refused with a log line
/// (see [`Node::dispatch`]).
fn speaks_for(sender: &str, claimed: &str, op: &str) -> bool {
    if claimed == sender {
        return true;
    }
    tracing::warn!(
        peer = sender,
        op,
        claimed,
        "control message refused: its sender pid belongs to another node"
    );
    false
}
