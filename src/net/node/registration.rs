//! Starting the node: binding the distribution listener and registering with epmd, and
//! keeping that registration for the node's life.
//!
//! epmd forgets a node when the registration's TCP connection closes, so the node holds
//! that connection open and watches it: when epmd goes away (stopped, restarted), the same
//! loop that registered at start registers again, with backoff, starting an epmd when the
//! configuration allows it.

use super::{client_creation, split_name, Node, NodeConfig};
use crate::net::threads::{self, ConnectionThreads};
use crate::net::{epmd, epmd_server};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Why the node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The node name is not `alive@host`.
    BadName { name: String },
    /// The distribution port could not be bound.
    Listen { port: u16, source: std::io::Error },
    /// epmd refused or could not be reached.
    Epmd {
        node: String,
        source: epmd::EpmdError,
    },
    /// No epmd answered, and starting one failed.
    EpmdLaunch { port: u16, reason: String },
    /// The connection threads (`NodeConfig::connection_threads`) could not be started.
    Threads {
        count: usize,
        source: std::io::Error,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::BadName { name } => {
                write!(f, "node name {name:?} must look like alive@host")
            }
            StartError::Listen { port, source } => write!(
                f,
                "cannot listen on port {port}: {source} (choose another --dist-port, or 0 for any)"
            ),
            StartError::Epmd { node, source } => {
                write!(f, "cannot register {node} with epmd: {source}")
            }
            StartError::EpmdLaunch { port, reason } => write!(
                f,
                "no epmd answers on port {port} and starting one failed: {reason} (start epmd, or `rexi-node epmd --port {port}`)"
            ),
            StartError::Threads { count, source } => write!(
                f,
                "cannot start {count} connection threads: {source} (lower --threads, or raise the process's thread limit)"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Listen { source, .. } => Some(source),
            StartError::Epmd { source, .. } => Some(source),
            StartError::Threads { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// How long a freshly started epmd gets to answer (50 tries, 100 ms apart).
const EPMD_START_TRIES: u32 = 50;

/// The longest wait between two attempts to register again.
const MAX_REREGISTER_DELAY: Duration = Duration::from_secs(5);

impl Node {
    /// Binds the listening socket and registers with epmd (starting one when none
    /// answers and the config allows it). Nothing is accepted or dialled yet: add the
    /// observers (the rexi layer), then call [`Node::connect_configured`], so that every
    /// peer's names exist before its first message.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        split_name(&config.name)?;
        let threads = match config.connection_threads {
            0 => ConnectionThreads::none(),
            n => ConnectionThreads::start(n, "rexi-conn", threads::STACK_SIZE)
                .map_err(|source| StartError::Threads { count: n, source })?,
        };
        if !config.publish {
            return Ok(Node::assemble(config, client_creation(), 0, threads));
        }
        let listener = TcpListener::bind(("0.0.0.0", config.dist_port))
            .await
            .map_err(|source| StartError::Listen {
                port: config.dist_port,
                source,
            })?;
        let listen_port = listener
            .local_addr()
            .map_err(|source| StartError::Listen {
                port: config.dist_port,
                source,
            })?
            .port();
        let (epmd_stream, creation) = register(&config, listen_port).await?;

        let node = Node::assemble(config, creation, listen_port, threads);
        node.0.net.set_epmd_registered(true);
        let kind = if node.0.config.visible {
            "a visible node"
        } else {
            "a hidden node"
        };
        tracing::info!(node = %node.name(), port = listen_port, creation, "registered with epmd as {kind}");
        tokio::spawn(node.clone().keep_epmd(epmd_stream));
        // Accepting starts in `connect_configured`, once observers (the rexi layer) are in
        // place: a peer that connects now waits in the listen backlog, and its names are
        // registered before its first message.
        *node.0.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
        Ok(node)
    }

    /// Holds the registration open; when epmd closes it, registers again with backoff
    /// until it succeeds or the node shuts down.
    async fn keep_epmd(self, mut stream: TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut shutdown = self.shutdown_signal();
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                // Dropping the stream unregisters us.
                _ = shutdown.wait() => return self.0.net.set_epmd_registered(false),
                r = stream.read(&mut byte) => if matches!(r, Ok(n) if n > 0) { continue },
            }
            self.0.net.set_epmd_registered(false);
            tracing::warn!(node = %self.name(), "lost the epmd registration (epmd stopped?); registering again");
            let mut delay = Duration::from_millis(200);
            loop {
                if self.is_shutting_down() {
                    return;
                }
                match register(&self.0.config, self.0.listen_port).await {
                    Ok((s, _)) => {
                        stream = s;
                        self.0.net.set_epmd_registered(true);
                        tracing::info!(node = %self.name(), "registered with epmd again");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(node = %self.name(), error = %e, retry_in_ms = delay.as_millis() as u64, "epmd registration failed; retrying")
                    }
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(MAX_REREGISTER_DELAY);
            }
        }
    }
}

/// Registers `config.name` on `port` with the local epmd. When none answers and
/// `config.start_epmd` allows it, starts one and waits for it to answer.
async fn register(config: &NodeConfig, port: u16) -> Result<(TcpStream, u32), StartError> {
    let (alive, _host) = split_name(&config.name)?;
    let epmd_err = |source| StartError::Epmd {
        node: config.name.clone(),
        source,
    };
    match epmd::register("127.0.0.1", config.epmd_port, alive, port, config.visible).await {
        Ok(r) => return Ok(r),
        Err(epmd::EpmdError::Unreachable { .. }) if config.start_epmd => {}
        Err(e) => return Err(epmd_err(e)),
    }
    epmd_server::spawn_detached(config.epmd_port).map_err(|reason| StartError::EpmdLaunch {
        port: config.epmd_port,
        reason,
    })?;
    let mut last = None;
    for _ in 0..EPMD_START_TRIES {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match epmd::register("127.0.0.1", config.epmd_port, alive, port, config.visible).await {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => epmd_err(e),
        None => StartError::EpmdLaunch {
            port: config.epmd_port,
            reason: "it never answered".into(),
        },
    })
}
