//! A task's mailbox: a bounded queue of signals with a pid of this node.

use super::{Process, Signal};
use eetf::Pid;
use tokio::sync::mpsc;

/// How many signals may wait in one mailbox. Jobs receive a handful (acks, sync answers);
/// a peer that floods a pid beyond this loses the excess, with a log line, instead of
/// growing the daemon's memory without bound.
pub const MAILBOX_CAPACITY: usize = 1024;

/// The receiving end, owned by the task. When it is dropped the registry must be told
/// (the owner calls `Node::exit_process`), so monitors and links fire.
pub struct Mailbox {
    pub pid: Pid,
    pub rx: mpsc::Receiver<Signal>,
}

/// The sending end, stored in the registry.
pub struct MailboxSender {
    pub pid: Pid,
    pub tx: mpsc::Sender<Signal>,
}

impl Process for MailboxSender {
    fn deliver(&self, signal: Signal) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(signal) {
            tracing::warn!(pid = ?(self.pid.id, self.pid.serial), "mailbox full ({MAILBOX_CAPACITY} signals): signal dropped");
        }
    }
}

pub fn channel(pid: Pid) -> (MailboxSender, Mailbox) {
    let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
    (
        MailboxSender {
            pid: pid.clone(),
            tx,
        },
        Mailbox { pid, rx },
    )
}
