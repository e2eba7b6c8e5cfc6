//! Feeds arbitrary bytes, as a peer's byte stream after the handshake, through the
//! control-message path: framing as the connection reader does it (4-byte length, the
//! frame cap, ticks, the `p` byte), `net::message::decode` (both terms charged to one
//! memory budget), then the routing decisions of `Node::dispatch` against a real
//! `process::Registry` holding a registered name, local pids, remote monitors, links and
//! a monitor held by a local process.
//!
//! What it does not cover: the sockets, and the `Node` around the registry (sending the
//! `Effect`s and `UNLINK_ID_ACK` back to the peer, the unrouted-name hook); `dispatch`
//! needs a running node with a connected peer, so `route` below mirrors its decisions
//! (which registry call each control message makes) call for call.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rexi_node::net::message::{self, Control, ProcId};
use rexi_node::etf::{self, Limits};
use rexi_node::process::ids::key;
use rexi_node::process::{Ids, MonitorTarget, Process, Registry, Signal};

/// A local process that frees what it receives, as a mailbox consumer would.
struct Sink;

impl Process for Sink {
    fn deliver(&self, signal: Signal) {
        match signal {
            Signal::Message { message, .. } => drop(message),
            Signal::Exit { reason, .. } => drop(reason),
            Signal::Down { object, reason, .. } => {
                etf::dispose(object); // a pid or name: shallow, but Term
                drop(reason);
            }
        }
    }
}

const NODE: &str = "fuzz@127.0.0.1";
/// The peer whose connection the frames arrive on (monitors are kept per sending node).
const SENDER: &str = "peer@127.0.0.1";
const CREATION: u32 = 0x5eed;
const MAX_FRAME: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // Small limits keep each execution fast; the checks are the same at any size.
    let limits = Limits {
        max_decompressed: 1 << 16,
        max_bignum_bytes: 1 << 12,
        max_term_memory: 1 << 22,
        ..Limits::default()
    };
    let ids = Ids::new(NODE, CREATION);
    let reg = Registry::new();
    let sink: Arc<dyn Process> = Arc::new(Sink);
    let _ = reg.register_name("rexi_server", sink.clone());
    for _ in 0..3 {
        let _ = reg.register_pid(&ids.next_pid(), sink.clone());
    }
    let r = ids.next_ref();
    reg.add_local_monitor(&r, sink.clone(), eetf::Term::Atom(eetf::Atom::from("x")), "peer@h");
    let mut rest = data;
    // As the reader: frames until one is refused (the connection would close).
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_FRAME {
            break;
        }
        let Some(frame) = rest.get(4..4 + len) else {
            break;
        };
        rest = &rest[4 + len..];
        if frame.is_empty() {
            continue; // tick
        }
        if frame[0] != b'p' {
            break;
        }
        match message::decode(&frame[1..], &limits) {
            Ok(ctl) => {
                if !route(&ids, &reg, ctl) {
                    break;
                }
            }
            Err(e) => {
                assert!(!e.0.is_empty());
                break;
            }
        }
    }
    reg.node_down("peer@h");
});

/// `Node::dispatch`'s decisions, without the node: which registry call each control
/// message makes; effects for the peer are dropped instead of sent. `false` when the
/// message did not decode where it was delivered (the connection would close).
fn route(ids: &Ids, reg: &Registry, control: Control) -> bool {
    match control {
        Control::Send { from, to, message } => {
            match ids.is_local(&to).then(|| reg.lookup_pid(&to)).flatten() {
                Some(p) => p.deliver(Signal::Message { from, message }),
                None => drop(message),
            }
        }
        // A registered name decodes its own messages; an unregistered name's are decoded
        // and dropped.
        Control::RegSend { from, to, message } => {
            return match reg.whereis(&to) {
                Some(p) => p.deliver_encoded(from, message).is_ok(),
                None => message.decode().is_ok(),
            }
        }
        Control::MonitorP {
            from,
            to,
            reference,
        } => {
            let local = match &to {
                ProcId::Name(n) => Some(MonitorTarget::Name(n.clone())),
                ProcId::Pid(p) if ids.is_local(p) => Some(MonitorTarget::Pid(key(p))),
                ProcId::Pid(_) => None,
            };
            if let Some(local) = local {
                drop(reg.monitor(from, to, local, reference));
            }
        }
        Control::DemonitorP { reference, .. } => reg.demonitor(SENDER, &reference),
        Control::MonitorPExit {
            reference, reason, ..
        } => reg.monitor_exit(SENDER, reference, reason),
        Control::Link { from, to } => drop(reg.link(&to, from)),
        Control::Unlink { from, to } => reg.unlink(&to, &from),
        Control::UnlinkId { id, from, to } => {
            reg.unlink(&to, &from);
            drop(id);
        }
        Control::UnlinkIdAck { id, .. } => drop(id),
        Control::Ignored { .. } => {}
        // The node answers a spawn request from its SpawnService; the decision needs one.
        Control::SpawnRequest { options, args, .. } => {
            drop(options);
            drop(args);
        }
        Control::Exit { from, to, reason } => {
            reg.unlink(&to, &from);
            match reg.lookup_pid(&to) {
                Some(p) => p.deliver(Signal::Exit { from, reason }),
                None => drop(reason),
            }
        }
        Control::Exit2 { from, to, reason } => match reg.lookup_pid(&to) {
            Some(p) => p.deliver(Signal::Exit { from, reason }),
            None => drop(reason),
        },
    }
    true
}
