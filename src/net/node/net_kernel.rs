//! `net_kernel`, the one system process a BEAM peer talks to before anything else.

use super::{Inner, Node};
use crate::process::{gen, Process, Signal};
use eetf::Term;
use std::sync::{Arc, Weak};

/// `net_kernel`: answers `{is_auth, Node}` with `yes`, which is what `net_adm:ping` asks.
pub(super) struct NetKernel(Weak<Inner>);

impl NetKernel {
    pub(super) fn new(node: &Node) -> NetKernel {
        NetKernel(Arc::downgrade(&node.0))
    }
}

impl Process for NetKernel {
    fn deliver(&self, signal: Signal) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        let node = Node(inner);
        if let Signal::Message { message, .. } = signal {
            match gen::parse_call(message) {
                Ok(call) => {
                    let reply = match &*call.request {
                        Term::Tuple(t) if matches!(t.elements.first(), Some(Term::Atom(a)) if a.name == "is_auth") => {
                            gen::atom("yes")
                        }
                        _ => gen::atom("ignored"),
                    };
                    let _ = node.send(&call.from, gen::reply_message(call.tag, reply));
                }
                Err(_not_a_call) => {}
            }
        }
    }
}
