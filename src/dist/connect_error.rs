//! Why dialing a node failed, as a type: the CLI turns each case into its own advice and
//! exit code, so it must not have to read the words of a message to tell them apart.

use std::fmt;

use super::epmd::EpmdError;
use super::handshake::Refusal;

/// Why a connection to `node` could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// The local node (a tool's client node) could not start.
    NodeStart { reason: String },
    /// `node` is not `NAME@HOST`.
    BadName { node: String },
    /// Nothing answers on the epmd port of the node's host.
    EpmdUnreachable {
        node: String,
        host: String,
        port: u16,
        detail: String,
    },
    /// epmd answered, but not in a way we could use.
    Epmd { node: String, detail: String },
    /// epmd on `host` does not know the node. `registered` lists the nodes it does know,
    /// once someone looked them up (`Client::connect` does; `None`: not looked up).
    UnknownNode {
        node: String,
        host: String,
        registered: Option<Vec<String>>,
    },
    /// epmd gave a port, but the TCP connection to it failed or timed out.
    Unreachable { node: String, detail: String },
    /// The handshake was refused over the cookie. `certain` is false when the peer just
    /// closed the connection after our challenge answer, which is how a BEAM node refuses
    /// a wrong cookie without saying so.
    WrongCookie { node: String, certain: bool },
    /// The handshake failed for another reason (timeout, refusal, protocol error).
    Handshake { node: String, reason: String },
    /// Another attempt to connect to the node is under way.
    InProgress { node: String },
}

impl ConnectError {
    /// The error for a handshake with `node` that ended in `refusal`.
    pub fn from_refusal(node: &str, refusal: Refusal) -> ConnectError {
        let node = node.to_string();
        match refusal {
            Refusal::WrongCookie => ConnectError::WrongCookie {
                node,
                certain: true,
            },
            Refusal::ClosedByPeer => ConnectError::WrongCookie {
                node,
                certain: false,
            },
            other => ConnectError::Handshake {
                node,
                reason: other.to_string(),
            },
        }
    }

    /// The error for an epmd lookup of `node` that failed.
    pub fn from_epmd(node: &str, e: EpmdError) -> ConnectError {
        match e {
            EpmdError::Unreachable { host, port, detail } => ConnectError::EpmdUnreachable {
                node: node.to_string(),
                host,
                port,
                detail,
            },
            other => ConnectError::Epmd {
                node: node.to_string(),
                detail: other.to_string(),
            },
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NodeStart { reason } => {
                write!(f, "cannot start the local node: {reason}")
            }
            ConnectError::BadName { node } => {
                write!(f, "{node:?} is not a node name: write it as NAME@HOST")
            }
            ConnectError::EpmdUnreachable {
                node,
                host,
                port,
                detail,
            } => write!(
                f,
                "epmd unreachable: nothing answers on {host}:{port} ({detail}) while looking up \
                 {node}; is epmd running there, and is ERL_EPMD_PORT right?"
            ),
            ConnectError::Epmd { node, detail } => write!(f, "looking up {node}: {detail}"),
            ConnectError::UnknownNode {
                node,
                host,
                registered,
            } => {
                write!(
                    f,
                    "unknown node {node}: epmd on {host} does not know it (not started, or a typo)"
                )?;
                match registered.as_deref() {
                    None => Ok(()),
                    Some([]) => write!(f, "; no node is registered there"),
                    Some(names) => write!(f, "; registered there: {}", names.join(", ")),
                }
            }
            ConnectError::Unreachable { node, detail } => {
                write!(f, "cannot connect to {node}: {detail}")
            }
            ConnectError::WrongCookie { node, certain } => {
                if *certain {
                    write!(f, "wrong cookie: {node} refused our handshake")?;
                } else {
                    write!(
                        f,
                        "wrong cookie, most likely: {node} closed the connection during the handshake, \
                         as a BEAM node does when the cookies differ"
                    )?;
                }
                f.write_str(
                    "; pass the cookie it uses (--cookie, --cookie-file or REXI_NODE_COOKIE)",
                )
            }
            ConnectError::Handshake { node, reason } => {
                write!(f, "handshake with {node}: {reason}")
            }
            ConnectError::InProgress { node } => {
                write!(f, "a connection attempt to {node} is already in progress")
            }
        }
    }
}

impl std::error::Error for ConnectError {}
