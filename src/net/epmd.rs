//! Talking to epmd: register this node (hidden or visible), look up peers, list names.
//!
//! erl_dist's `EpmdClient` does the wire work; this file adds timeouts, the port from
//! `ERL_EPMD_PORT` (as erl honours it), and errors an operator can act on.

use erl_dist::epmd::{EpmdClient, NodeEntry};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// epmd's well-known port, unless `ERL_EPMD_PORT` says otherwise.
pub fn default_port() -> u16 {
    std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4369)
}

const EPMD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum EpmdError {
    /// Nothing listens on the epmd port of that host.
    Unreachable {
        host: String,
        port: u16,
        detail: String,
    },
    /// epmd answered something we could not use.
    Protocol {
        host: String,
        port: u16,
        detail: String,
    },
}

impl std::fmt::Display for EpmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EpmdError::Unreachable { host, port, detail } => {
                write!(f, "epmd on {host}:{port} is unreachable ({detail}); is epmd running there, and is ERL_EPMD_PORT right?")
            }
            EpmdError::Protocol { host, port, detail } => {
                write!(f, "epmd on {host}:{port} gave an error: {detail}")
            }
        }
    }
}

impl std::error::Error for EpmdError {}

async fn open(host: &str, port: u16) -> Result<Compat<TcpStream>, EpmdError> {
    let unreachable = |detail: String| EpmdError::Unreachable {
        host: host.to_string(),
        port,
        detail,
    };
    let s = tokio::time::timeout(EPMD_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = s.set_nodelay(true);
    Ok(s.compat())
}

/// Registers `alive` as a hidden (or, `visible`, a normal) node listening on `listen_port`. The returned stream must
/// stay open for as long as the node lives: epmd unregisters the node when it closes.
pub async fn register(
    host: &str,
    port: u16,
    alive: &str,
    listen_port: u16,
    visible: bool,
) -> Result<(TcpStream, u32), EpmdError> {
    let conn = open(host, port).await?;
    let proto = |detail: String| EpmdError::Protocol {
        host: host.to_string(),
        port,
        detail,
    };
    let (stream, creation) = tokio::time::timeout(
        EPMD_TIMEOUT,
        EpmdClient::new(conn).register(if visible {
            NodeEntry::new(alive, listen_port)
        } else {
            NodeEntry::new_hidden(alive, listen_port)
        }),
    )
    .await
    .map_err(|_| proto("no answer to the registration".into()))?
    .map_err(|e| {
        proto(format!(
            "{e} (is a node named {alive} already registered there?)"
        ))
    })?;
    Ok((stream.into_inner(), creation.get()))
}

/// The port a node listens on, or `None` when epmd does not know it.
pub async fn lookup(host: &str, port: u16, alive: &str) -> Result<Option<NodeEntry>, EpmdError> {
    let conn = open(host, port).await?;
    let proto = |detail: String| EpmdError::Protocol {
        host: host.to_string(),
        port,
        detail,
    };
    tokio::time::timeout(EPMD_TIMEOUT, EpmdClient::new(conn).get_node(alive))
        .await
        .map_err(|_| proto("no answer to the lookup".into()))?
        .map_err(|e| proto(e.to_string()))
}

/// The names registered with epmd on `host`, with their ports.
pub async fn names(host: &str, port: u16) -> Result<Vec<(String, u16)>, EpmdError> {
    let conn = open(host, port).await?;
    let proto = |detail: String| EpmdError::Protocol {
        host: host.to_string(),
        port,
        detail,
    };
    tokio::time::timeout(EPMD_TIMEOUT, EpmdClient::new(conn).get_names())
        .await
        .map_err(|_| proto("no answer to NAMES".into()))?
        .map_err(|e| proto(e.to_string()))
}
