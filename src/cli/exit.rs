//! The CLI's exit codes, one meaning each, so scripts can tell "the answer was no" from
//! "the question could not be asked".

use std::process::ExitCode;

use rexi_node::dist::ConnectError;

/// How a subcommand ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done, and the answer is yes (pong, a reply, a consistent cluster).
    Success = 0,
    /// 1: a negative answer (pang, a `rexi_EXIT`, a cluster that loses casts, a target that
    /// cannot serve the request), or a local failure (runtime, cookie file, client node).
    Failure = 1,
    /// 2: the command line is wrong (clap's own exit code for usage errors too).
    Usage = 2,
    /// 3: a node could not be reached or read (unknown node, epmd unreachable, wrong
    /// cookie, no answer in time).
    Unreachable = 3,
}

impl Exit {
    /// Prints `rexi-node: MSG` on stderr and returns this code.
    pub fn with(self, msg: &str) -> ExitCode {
        eprintln!("rexi-node: {msg}");
        self.into()
    }

    /// The code for a connection that could not be made: our own node failing to start is
    /// a local failure, everything else means the peer could not be reached.
    pub fn for_connect(e: &ConnectError) -> Exit {
        match e {
            ConnectError::NodeStart { .. } => Exit::Failure,
            _ => Exit::Unreachable,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
