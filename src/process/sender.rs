//! Who sent a message to a registered name.

use eetf::{Atom, Pid};

/// The sender pid of a `REG_SEND`, borrowed from the frame when the distribution layer
/// read it in place (`NEW_PID_EXT` with a short UTF-8 node name, the one encoding OTP
/// writes), else decoded. A cast needs only its sender's node name (the connection checks
/// it, the rexi server ties the job to it); a decoded pid cost a node-name allocation per
/// cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender<'a> {
    InPlace {
        node: &'a str,
        id: u32,
        serial: u32,
        creation: u32,
    },
    Decoded(Pid),
}

impl Sender<'_> {
    /// The sender's node name.
    pub fn node(&self) -> &str {
        match self {
            Sender::InPlace { node, .. } => node,
            Sender::Decoded(p) => &p.node.name,
        }
    }

    /// The sender's pid as a term (for a message delivered whole).
    pub fn pid(self) -> Pid {
        match self {
            Sender::InPlace {
                node,
                id,
                serial,
                creation,
            } => Pid {
                node: Atom::from(node),
                id,
                serial,
                creation,
            },
            Sender::Decoded(p) => p,
        }
    }
}
