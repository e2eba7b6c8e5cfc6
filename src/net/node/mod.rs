//! The local node: a cheap handle on everything the distribution layer keeps.
//!
//! The roles live in their own files, in the order a message meets them:
//!
//! * `registration`: binding the listener and registering with epmd, at start and again
//!   whenever the registration is lost (one loop for both).
//! * `peers`: the accept loop, dialling out with backoff, the table of connected peers,
//!   nodeup/nodedown. Peers are announced to observers (the rexi layer) with `node_up`
//!   *before* the first frame of the new connection is read, so a name the observer
//!   registers for that peer exists when the peer's first message is dispatched.
//! * `route`: every control message a peer sends, to the registered name or pid it names.
//! * `processes`: the process facade (register, spawn, send, monitor) used by the layers
//!   above, and the send queues' global budget.
//! * `connect_first`: sends to a node without a connection connect to it first.
//! * `spawn`: spawn requests (erpc, rpc), from `SPAWN_REQUEST` to `SPAWN_REPLY`.
//! * `net_kernel`: the one system process a BEAM peer expects (`net_adm:ping`).

mod connect_first;
mod net_kernel;
mod peers;
mod processes;
mod registration;
mod route;
mod spawn;

pub use registration::StartError;

use super::admission::Admission;
use super::connection::{Outbox, OutboxBudget};
use super::cookie::Cookie;
use super::epmd;
use super::handshake::{self, PeerInfo};
use super::metrics::NetStats;
use super::pending::Pending;
use super::spawn::SpawnService;
use super::threads::ConnectionThreads;
use super::tls::Tls;
use super::unrouted::Unrouted;
use crate::etf::Limits;
use crate::fast_hash::FastMap;
use crate::process::{Ids, PeerLimits, Process, Registry};
use eetf::{Atom, Pid};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Everything the distribution layer can be told.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `alive@host`.
    pub name: String,
    pub cookie: Cookie,
    /// Port to listen on for distribution connections; 0 picks a free one.
    pub dist_port: u16,
    pub epmd_port: u16,
    /// Start our own epmd when none answers, as erl does. Off by default: the launcher
    /// runs this program's own executable as `<exe> epmd --port N`, which only the
    /// `rexi-node` binary understands (`rexi-node run` turns it on). A program embedding
    /// the library starts epmd itself, or leaves it to the BEAM nodes.
    pub start_epmd: bool,
    pub net_ticktime: Duration,
    /// The whole handshake, like `net_setuptime`.
    pub handshake_timeout: Duration,
    /// How long an incoming socket has to send its name.
    pub first_message_timeout: Duration,
    /// Most authenticated peers at once; handshakes never take these slots.
    pub max_connections: usize,
    /// Most incoming sockets in the handshake at once (not yet authenticated).
    pub max_handshakes: usize,
    /// Most incoming sockets in the handshake from one address.
    pub max_handshakes_per_address: usize,
    /// Largest frame accepted from a peer. OTP sends big messages whole when FRAGMENTS is
    /// not negotiated, so this must be generous.
    pub max_frame: usize,
    /// Largest send queue kept for a peer that does not read.
    pub max_outbox: usize,
    /// Largest total of all peers' send queues.
    pub max_outbox_total: usize,
    pub limits: Limits,
    /// Caps on the monitors and links one peer may hold here.
    pub peer_limits: PeerLimits,
    /// Nodes to connect to and stay connected with.
    pub connect: Vec<String>,
    /// Listen and register with epmd. A short-lived client node (the CLI tools) only
    /// connects out, like `erl_call`, and needs neither.
    pub publish: bool,
    /// Join as a visible node (`DFLAG_PUBLISHED`: in the BEAM nodes' `nodes()`) rather than
    /// a hidden one, and answer `global`'s sync (see [`crate::net::global`]). Off by default.
    pub visible: bool,
    /// TLS distribution (like `-proto_dist inet_tls`) both ways; `None`: plain TCP.
    pub tls: Option<Arc<Tls>>,
    /// Threads of the node's own that run connections, each connection on one of them
    /// (see [`crate::net::threads`]); 0 (the default): connections run on the runtime of
    /// whoever starts them. `rexi-node run` uses one per CPU.
    pub connection_threads: usize,
}

impl NodeConfig {
    pub fn new(name: impl Into<String>, cookie: Cookie) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            cookie,
            dist_port: 0,
            epmd_port: epmd::default_port(),
            start_epmd: false,
            net_ticktime: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(7),
            first_message_timeout: handshake::FIRST_MESSAGE_TIMEOUT,
            max_connections: 4096,
            max_handshakes: 128,
            max_handshakes_per_address: 16,
            max_frame: 128 << 20,
            max_outbox: 256 << 20,
            max_outbox_total: 1 << 30,
            limits: Limits::default(),
            peer_limits: PeerLimits::default(),
            connect: Vec::new(),
            publish: true,
            visible: false,
            tls: None,
            connection_threads: 0,
        }
    }
}

/// Told about peers coming and going. `node_up` runs before the peer's first message is
/// dispatched; it must not block.
pub trait NodeObserver: Send + Sync {
    fn node_up(&self, node: &Node, peer: &PeerInfo);
    fn node_down(&self, node: &Node, peer: &str, reason: &str);
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        })
    }
}

/// A connected peer.
pub struct Peer {
    pub info: PeerInfo,
    pub direction: Direction,
    pub(crate) outbox: Outbox,
    conn_id: u64,
    pub(crate) replaced: AtomicBool,
}

enum Slot {
    /// Our own outgoing handshake is in progress.
    Connecting(u64),
    Up(Arc<Peer>),
}

struct Inner {
    config: NodeConfig,
    name: String,
    ids: Ids,
    registry: Registry,
    peers: RwLock<FastMap<String, Slot>>,
    observers: RwLock<Vec<Arc<dyn NodeObserver>>>,
    shutdown: watch::Sender<bool>,
    /// Every connection task, handshakes included (shutdown waits for them).
    connections: AtomicUsize,
    /// Authenticated connections (the `--max-connections` slots).
    established: AtomicUsize,
    admission: Arc<Admission>,
    outbox_budget: Arc<OutboxBudget>,
    next_conn: AtomicU64,
    listen_port: u16,
    unrouted: RwLock<Option<UnroutedHook>>,
    /// Logs messages to unregistered names once per name.
    unrouted_log: Unrouted,
    /// Bound and registered with epmd, not yet accepting (see `connect_configured`).
    listener: std::sync::Mutex<Option<TcpListener>>,
    net: NetStats,
    /// The sender of `global`'s `in_sync` answers (visible nodes only).
    global: Pid,
    /// What runs spawn requests; without one they are answered `notsup`.
    spawner: RwLock<Option<Arc<dyn SpawnService>>>,
    /// Messages for nodes being connected to (see [`super::pending`]).
    pending: Pending,
    /// Where connections run (see [`super::threads`]).
    threads: ConnectionThreads,
}

/// Called for a message sent to a name nobody registered here (it is then dropped, as a
/// BEAM node drops it): `(sender's node, name)`.
pub type UnroutedHook = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// A handle on the local node; cheap to clone.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

/// Waits for the node to shut down.
pub struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|v| *v).await;
    }
}
fn split_name(name: &str) -> Result<(&str, &str), StartError> {
    match name.split_once('@') {
        Some((a, h)) if !a.is_empty() && !h.is_empty() => Ok((a, h)),
        _ => Err(StartError::BadName {
            name: name.to_string(),
        }),
    }
}

fn rlock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn wlock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    fn assemble(
        config: NodeConfig,
        creation: u32,
        listen_port: u16,
        threads: ConnectionThreads,
    ) -> Node {
        let (shutdown, _) = watch::channel(false);
        let ids = Ids::new(&config.name, creation);
        let global = ids.next_pid();
        let inner = Inner {
            name: config.name.clone(),
            ids,
            registry: Registry::with_limits(config.peer_limits),
            peers: RwLock::new(FastMap::default()),
            observers: RwLock::new(Vec::new()),
            shutdown,
            connections: AtomicUsize::new(0),
            established: AtomicUsize::new(0),
            admission: Admission::new(config.max_handshakes, config.max_handshakes_per_address),
            outbox_budget: OutboxBudget::new(config.max_outbox_total),
            next_conn: AtomicU64::new(1),
            listen_port,
            unrouted: RwLock::new(None),
            unrouted_log: Unrouted::default(),
            listener: std::sync::Mutex::new(None),
            net: NetStats::default(),
            global,
            spawner: RwLock::new(None),
            pending: Pending::default(),
            threads,
            config,
        };
        let node = Node(Arc::new(inner));
        let nk: Arc<dyn Process> = Arc::new(net_kernel::NetKernel::new(&node));
        let _ = node.register("net_kernel", nk);
        node.0
            .registry
            .register_pid(&node.0.global, Arc::new(super::global::GlobalSync));
        node
    }

    /// Starts accepting connections and one connect loop per `--connect` node. Call it
    /// after adding observers, so no peer can come up unobserved.
    pub fn connect_configured(&self) {
        let listener = self
            .0
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(l) = listener {
            tokio::spawn(self.clone().accept_loop(l));
            tokio::spawn(self.clone().flush_warnings());
        }
        for peer in self.0.config.connect.clone() {
            let node = self.clone();
            self.0.threads.spawn(move || node.stay_connected(peer));
        }
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn atom(&self) -> &Atom {
        self.0.ids.node()
    }

    pub fn creation(&self) -> u32 {
        self.0.ids.creation()
    }

    pub fn listen_port(&self) -> u16 {
        self.0.listen_port
    }

    pub fn config(&self) -> &NodeConfig {
        &self.0.config
    }

    pub fn ids(&self) -> &Ids {
        &self.0.ids
    }

    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// The distribution layer's figures (see [`super::metrics`]).
    pub fn net_stats(&self) -> &NetStats {
        &self.0.net
    }

    pub fn add_observer(&self, o: Arc<dyn NodeObserver>) {
        wlock(&self.0.observers).push(o);
    }

    pub fn set_unrouted_hook(&self, hook: UnroutedHook) {
        *wlock(&self.0.unrouted) = Some(hook);
    }

    /// Serves spawn requests (erpc, rpc, `spawn/4`) with `service`.
    pub fn set_spawn_service(&self, service: Arc<dyn SpawnService>) {
        *wlock(&self.0.spawner) = Some(service);
    }

    pub fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal(self.0.shutdown.subscribe())
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.0.shutdown.borrow()
    }

    /// Closes every connection and stops accepting; the epmd registration closes with it.
    pub async fn shutdown(&self) {
        let _ = self.0.shutdown.send(true);
        for _ in 0..40 {
            if self.0.connections.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Names of connected peers.
    pub fn peers(&self) -> Vec<String> {
        let mut v: Vec<String> = rlock(&self.0.peers)
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Up(_)))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    pub fn peer(&self, name: &str) -> Option<Arc<Peer>> {
        match rlock(&self.0.peers).get(name) {
            Some(Slot::Up(p)) => Some(p.clone()),
            _ => None,
        }
    }
}

/// A creation for a node that does not register with epmd (epmd hands out the others).
fn client_creation() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1);
    (t ^ std::process::id().rotate_left(16)) | 4
}

/// One unit of a node's counter, held while a connection lives: `connections` (every
/// connection task, for a clean shutdown) or `established` (authenticated peers, for
/// `--max-connections`).
struct Counted {
    node: Node,
    which: fn(&Inner) -> &AtomicUsize,
}

impl Counted {
    fn connection(n: &Node) -> Counted {
        Counted::new(n, |i| &i.connections)
    }

    fn established(n: &Node) -> Counted {
        Counted::new(n, |i| &i.established)
    }

    fn new(n: &Node, which: fn(&Inner) -> &AtomicUsize) -> Counted {
        which(&n.0).fetch_add(1, Ordering::AcqRel);
        Counted {
            node: n.clone(),
            which,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.which)(&self.node.0).fetch_sub(1, Ordering::AcqRel);
    }
}
