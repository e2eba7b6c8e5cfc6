//! The processes of this node: pids and refs it mints, registered names, monitors and links.
//!
//! A "process" here is anything that can receive a [`Signal`]: a long-lived server such as
//! `rexi_server` (which handles messages right on the connection's reader task, so routing
//! is a lookup and not a hop), or a task with a [`mailbox::Mailbox`] such as a rexi job.
//! This layer knows nothing of sockets: the distribution layer feeds it signals and
//! carries out the [`Effect`]s it returns (monitor exits, link exits to remote pids).

pub mod gen;
pub mod ids;
pub mod mailbox;
pub mod proc_id;
pub mod refkey;
pub mod registry;
pub mod sender;

pub use ids::Ids;
pub use mailbox::Mailbox;
pub use proc_id::ProcId;
pub use refkey::RefKey;
pub use registry::{Effect, MonitorTarget, PeerLimits, Registry};
pub use sender::Sender;

use crate::etf::{DecodeError, Encoded, Owned};
use eetf::{Pid, Reference, Term};

/// What a process can be sent. Every term in a signal may come from a peer, so each is an
/// [`Owned`]: a signal dropped anywhere (a full mailbox, a process that is gone) frees its
/// terms without recursion.
#[derive(Debug)]
pub enum Signal {
    /// An ordinary message. `from` is known for `REG_SEND` and `SEND_SENDER` only.
    Message { from: Option<Pid>, message: Owned },
    /// An exit signal: a linked process ended, `erlang:exit(Pid, Reason)` was called on us,
    /// or the connection to a linked process's node went down (`noconnection`).
    Exit { from: Pid, reason: Owned },
    /// A monitor this process holds on a remote process fired.
    Down {
        reference: Reference,
        object: Term,
        reason: Owned,
    },
}

/// A receiver of signals. `deliver` runs on the task that routes the signal (usually a
/// connection's reader): it must not block.
pub trait Process: Send + Sync {
    fn deliver(&self, signal: Signal);

    /// A message a peer sent to this process's registered name, still encoded (see
    /// [`Encoded`]). By default it is decoded whole and delivered as [`Signal::Message`];
    /// a process that expects one shape may read it in place. A message that does not
    /// decode is an error: the connection that sent it closes.
    fn deliver_encoded(&self, from: Sender<'_>, message: Encoded<'_>) -> Result<(), DecodeError> {
        deliver_whole(self, from, message)
    }
}

/// What [`Process::deliver_encoded`] does by default: decodes the message whole and
/// delivers it as [`Signal::Message`]; for a process that reads some shapes in place and
/// leaves the others to this.
pub fn deliver_whole<P: Process + ?Sized>(
    process: &P,
    from: Sender<'_>,
    message: Encoded<'_>,
) -> Result<(), DecodeError> {
    let message = message.decode()?;
    process.deliver(Signal::Message {
        from: Some(from.pid()),
        message,
    });
    Ok(())
}
