//! The local node: epmd registration, the accept loop, connections out with backoff, the
//! table of connected peers, and the routing of every incoming control message.
//!
//! Peers are announced to observers (the rexi layer) with `node_up` *before* the first
//! frame of the new connection is read, so a name the observer registers for that peer
//! exists when the peer's first message is dispatched.

use super::admission::{Admission, Refused, Ticket};
use super::connect_error::ConnectError;
use super::connection::{self, DownReason, Outbox, OutboxBudget, SendError};
use super::cookie::Cookie;
use super::handshake::{self, PeerInfo, Refusal};
use super::message::{self, ctl, Control, ProcId};
use super::metrics::{HandshakeFailure, NetStats};
use super::{epmd, epmd_server};
use crate::etf::{self, Limits, Owned};
use crate::log_limit;
use crate::process::ids::key;
use crate::process::{
    gen, mailbox, Effect, Ids, Mailbox, MonitorTarget, PeerLimits, Process, Registry, Signal,
};
use eetf::{Atom, Pid, Term};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
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
    /// Start our own epmd (`rexi-node epmd`, detached) when none answers, as erl does.
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
}

impl NodeConfig {
    pub fn new(name: impl Into<String>, cookie: Cookie) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            cookie,
            dist_port: 0,
            epmd_port: epmd::default_port(),
            start_epmd: true,
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
    pub outbox: Outbox,
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
    peers: RwLock<HashMap<String, Slot>>,
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
    /// Bound and registered with epmd, not yet accepting (see `connect_configured`).
    listener: std::sync::Mutex<Option<TcpListener>>,
    net: NetStats,
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

/// A connection's view of its node and peer (see [`connection::Link`]).
struct PeerLink<'a> {
    node: &'a Node,
    peer: &'a Peer,
}

impl connection::Link for PeerLink<'_> {
    fn ticktime(&self) -> Duration {
        self.node.config().net_ticktime
    }
    fn max_frame(&self) -> usize {
        self.node.config().max_frame
    }
    fn limits(&self) -> &Limits {
        &self.node.config().limits
    }
    fn outbox(&self) -> &Outbox {
        &self.peer.outbox
    }
    fn replaced(&self) -> bool {
        self.peer.replaced.load(Ordering::Acquire)
    }
    fn is_shutting_down(&self) -> bool {
        self.node.is_shutting_down()
    }
    fn shutdown(&self) -> impl std::future::Future<Output = ()> + Send {
        let mut signal = self.node.shutdown_signal();
        async move { signal.wait().await }
    }
    fn dispatch(&self, control: Control) {
        self.node.dispatch(self.peer, control)
    }
    fn frame_refused(&self, limit: super::metrics::FrameLimit) {
        self.node.net_stats().frame_refused(limit)
    }
}

/// Why the node could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn split_name(name: &str) -> Result<(&str, &str), StartError> {
    match name.split_once('@') {
        Some((a, h)) if !a.is_empty() && !h.is_empty() => Ok((a, h)),
        _ => Err(StartError(format!(
            "node name {name:?} must look like alive@host"
        ))),
    }
}

fn rlock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn wlock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Node {
    /// Binds the listening socket and registers with epmd (starting one when none
    /// answers and the config allows it). Nothing is accepted or dialled yet: add the
    /// observers (the rexi layer), then call [`Node::connect_configured`], so that every
    /// peer's names exist before its first message.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        let (alive, _host) = split_name(&config.name)?;
        if !config.publish {
            return Ok(Node::assemble(config, client_creation(), 0));
        }
        let listener = TcpListener::bind(("0.0.0.0", config.dist_port))
            .await
            .map_err(|e| StartError(format!("cannot listen on port {}: {e}", config.dist_port)))?;
        let listen_port = listener
            .local_addr()
            .map_err(|e| StartError(e.to_string()))?
            .port();

        let (epmd_stream, creation) =
            match epmd::register("127.0.0.1", config.epmd_port, alive, listen_port).await {
                Ok(r) => r,
                Err(epmd::EpmdError::Unreachable { .. }) if config.start_epmd => {
                    epmd_server::spawn_detached(config.epmd_port).map_err(StartError)?;
                    let mut last = None;
                    let mut got = None;
                    for _ in 0..50 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        match epmd::register("127.0.0.1", config.epmd_port, alive, listen_port)
                            .await
                        {
                            Ok(r) => {
                                got = Some(r);
                                break;
                            }
                            Err(e) => last = Some(e),
                        }
                    }
                    match got {
                        Some(r) => r,
                        None => {
                            return Err(StartError(format!(
                                "started an epmd, but still cannot register: {}",
                                last.map(|e| e.to_string()).unwrap_or_default()
                            )))
                        }
                    }
                }
                Err(e) => {
                    return Err(StartError(format!(
                        "cannot register {} with epmd: {e}",
                        config.name
                    )))
                }
            };

        let node = Node::assemble(config, creation, listen_port);
        node.0.net.set_epmd_registered(true);
        tracing::info!(node = %node.name(), port = listen_port, creation, "registered with epmd as a hidden node");
        tokio::spawn(node.clone().keep_epmd(epmd_stream));
        // Accepting starts in `connect_configured`, once observers (the rexi layer) are in
        // place: a peer that connects now waits in the listen backlog, and its names are
        // registered before its first message.
        *node.0.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
        Ok(node)
    }

    fn assemble(config: NodeConfig, creation: u32, listen_port: u16) -> Node {
        let (shutdown, _) = watch::channel(false);
        let inner = Inner {
            name: config.name.clone(),
            ids: Ids::new(&config.name, creation),
            registry: Registry::with_limits(config.peer_limits),
            peers: RwLock::new(HashMap::new()),
            observers: RwLock::new(Vec::new()),
            shutdown,
            connections: AtomicUsize::new(0),
            established: AtomicUsize::new(0),
            admission: Admission::new(config.max_handshakes, config.max_handshakes_per_address),
            outbox_budget: OutboxBudget::new(config.max_outbox_total),
            next_conn: AtomicU64::new(1),
            listen_port,
            unrouted: RwLock::new(None),
            listener: std::sync::Mutex::new(None),
            net: NetStats::default(),
            config,
        };
        let node = Node(Arc::new(inner));
        let nk: Arc<dyn Process> = Arc::new(NetKernel(Arc::downgrade(&node.0)));
        let _ = node.register("net_kernel", nk);
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
            tokio::spawn(self.clone().stay_connected(peer));
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

    // ---- processes ---------------------------------------------------------------------

    pub fn register(
        &self,
        name: &str,
        p: Arc<dyn Process>,
    ) -> Result<(), crate::process::registry::AlreadyRegistered> {
        self.0.registry.register_name(name, p)
    }

    /// Removes a name as if its process ended with `reason` (monitors on it fire).
    pub fn unregister(&self, name: &str, reason: &Term) {
        let effects = self.0.registry.unregister_name(name, reason);
        self.apply(effects);
    }

    /// A new process with a pid of this node and a mailbox.
    pub fn spawn_mailbox(&self) -> Mailbox {
        loop {
            let pid = self.0.ids.next_pid();
            let (tx, mb) = mailbox::channel(pid.clone());
            if self.0.registry.register_pid(&pid, Arc::new(tx)) {
                return mb;
            }
        }
    }

    /// Registers a pid for a process that handles its signals itself.
    pub fn spawn_process(&self, make: impl Fn(Pid) -> Arc<dyn Process>) -> Pid {
        loop {
            let pid = self.0.ids.next_pid();
            if self.0.registry.register_pid(&pid, make(pid.clone())) {
                return pid;
            }
        }
    }

    /// A local process ended: monitors and links fire.
    pub fn exit_process(&self, pid: &Pid, reason: &Term) {
        let effects = self.0.registry.exit_pid(pid, reason);
        self.apply(effects);
    }

    pub fn make_ref(&self) -> eetf::Reference {
        self.0.ids.next_ref()
    }

    fn apply(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::MonitorExit {
                    holder,
                    target,
                    reference,
                    reason,
                } => {
                    let node = holder.node.name.clone();
                    let c = Owned::new(ctl::monitor_p_exit(&target, &holder, &reference, reason));
                    self.send_control(&node, &c, None);
                }
                Effect::LinkExit { from, to, reason } => {
                    let node = to.node.name.clone();
                    let c = Owned::new(ctl::exit(&from, &to, reason));
                    self.send_control(&node, &c, None);
                }
            }
        }
    }

    /// Queues frames for `peer`. When all send queues together passed the global budget,
    /// the connection with the largest queue is closed (a peer that does not read, as a
    /// rule) and the push tried once more; if that is still over, `peer` is closed.
    fn push(
        &self,
        peer: &Peer,
        fill: impl Fn(&mut Vec<u8>) -> Result<(), etf::EncodeError>,
    ) -> Result<(), SendError> {
        match peer.outbox.push(&fill) {
            Err(SendError::OverBudget) => {}
            r => return r,
        }
        let hog = rlock(&self.0.peers)
            .values()
            .filter_map(|s| match s {
                Slot::Up(p) => Some(p.clone()),
                Slot::Connecting(_) => None,
            })
            .max_by_key(|p| p.outbox.queued());
        if let Some(hog) = hog {
            tracing::warn!(
                peer = %hog.info.name,
                queued = hog.outbox.queued(),
                total = self.0.outbox_budget.used(),
                cap = self.0.config.max_outbox_total,
                "closing the connection with the largest send queue: the send queues of all peers passed --max-outbox-total"
            );
            self.0.net.closed_over_outbox_total();
            hog.outbox.abort();
        }
        match peer.outbox.push(&fill) {
            Err(SendError::OverBudget) => {
                self.0.net.closed_over_outbox_total();
                peer.outbox
                    .stats
                    .refused_outbox
                    .fetch_add(1, Ordering::Relaxed);
                peer.outbox.abort();
                Err(SendError::Overflow)
            }
            r => r,
        }
    }

    fn send_control(&self, node: &str, control: &Term, payload: Option<&Term>) {
        if let Some(p) = self.peer(node) {
            if let Err(e) = self.push(&p, |b| message::write_frame(b, control, payload)) {
                tracing::debug!(peer = node, error = %e, "control message not sent");
            }
        }
    }

    /// Sends `message` to `to`. A local pid gets it directly (the message is moved there);
    /// a remote pid through its node's connection. Not connected: an error, and like the
    /// BEAM's `noconnect` send the message is dropped.
    pub fn send(&self, to: &Pid, message: impl Into<Owned>) -> Result<(), SendError> {
        let message = message.into();
        if self.0.ids.is_local(to) {
            if let Some(p) = self.0.registry.lookup_pid(to) {
                p.deliver(Signal::Message {
                    from: None,
                    message,
                });
            }
            return Ok(());
        }
        self.send_ref(to, &message)
    }

    /// Like [`Node::send`] for a remote pid, without taking the message.
    pub fn send_ref(&self, to: &Pid, message: &Term) -> Result<(), SendError> {
        match self.peer(&to.node.name) {
            Some(p) => self.push(&p, |b| message::write_send(b, to, message)),
            None => Err(SendError::NotConnected(to.node.name.clone())),
        }
    }

    /// `{Name, Node} ! Message` from a local pid.
    pub fn reg_send(
        &self,
        from: &Pid,
        node: &str,
        name: &str,
        message: &Term,
    ) -> Result<(), SendError> {
        match self.peer(node) {
            Some(p) => {
                let c = ctl::reg_send(from, name);

                self.push(&p, |b| message::write_frame(b, &c, Some(message)))
            }
            None => Err(SendError::NotConnected(node.to_string())),
        }
    }

    /// Monitors a remote process on behalf of a local one (the holder gets `Signal::Down`).
    pub fn monitor_remote(
        &self,
        holder_pid: &Pid,
        holder: Arc<dyn Process>,
        node: &str,
        target: ProcId,
    ) -> Result<eetf::Reference, SendError> {
        let reference = self.make_ref();
        let object = match &target {
            ProcId::Pid(p) => Term::Pid(p.clone()),
            ProcId::Name(n) => Term::Tuple(eetf::Tuple::from(vec![
                Term::Atom(Atom::from(n.as_str())),
                Term::Atom(Atom::from(node)),
            ])),
        };
        let peer = self
            .peer(node)
            .ok_or_else(|| SendError::NotConnected(node.to_string()))?;
        self.0
            .registry
            .add_local_monitor(&reference, holder, object, node);
        let c = ctl::monitor_p(holder_pid, &target, &reference);
        self.push(&peer, |b| message::write_frame(b, &c, None))?;
        Ok(reference)
    }

    /// Cancels a monitor set with [`Node::monitor_remote`].
    pub fn demonitor_remote(
        &self,
        holder_pid: &Pid,
        node: &str,
        target: ProcId,
        reference: &eetf::Reference,
    ) -> Result<(), SendError> {
        self.0.registry.remove_local_monitor(reference);
        let peer = self
            .peer(node)
            .ok_or_else(|| SendError::NotConnected(node.to_string()))?;
        let c = ctl::demonitor_p(holder_pid, &target, reference);
        self.push(&peer, |b| message::write_frame(b, &c, None))
    }

    // ---- incoming ----------------------------------------------------------------------

    /// Routes one control message that `peer` sent.
    ///
    /// # Who may speak for a pid
    ///
    /// Everything a peer makes this node remember (monitors, links) and every signal that
    /// can end a local process (exits) must come from a process of the sending node: a
    /// control message whose sender pid (`from` of REG_SEND, LINK, UNLINK, EXIT, EXIT2,
    /// MONITOR_P, DEMONITOR_P) names another node is **refused** (dropped, with a log line). A BEAM
    /// node treats such a message as invalid too (it tears the connection down); refusing
    /// the one message keeps the rest of that peer's work alive. Attributing it to the
    /// sender instead would keep state for a pid nobody could ever clean up: what a
    /// connection creates must be removable when that connection goes down, and nodedown
    /// only knows the connection's own node. (rexi jobs, whose caller pid is part of the
    /// message payload, not of the distribution header, are attributed to the sender
    /// instead: see the rexi server.)
    pub fn dispatch(&self, peer: &Peer, control: Control) {
        let reg = &self.0.registry;
        let sender = peer.info.name.as_str();
        let speaks_for = |pid: &Pid, op: &str| -> bool {
            if pid.node.name == sender {
                return true;
            }
            tracing::warn!(peer = sender, op, claimed = %pid.node.name, "control message refused: its sender pid belongs to another node");
            false
        };
        match control {
            Control::Send { from, to, message } => {
                match self
                    .0
                    .ids
                    .is_local(&to)
                    .then(|| reg.lookup_pid(&to))
                    .flatten()
                {
                    Some(p) => p.deliver(Signal::Message { from, message }),
                    None => {
                        tracing::debug!(peer = sender, pid = ?(to.id, to.serial, to.creation), "message to a pid that does not exist here: dropped");
                    }
                }
            }
            Control::RegSend { from, .. } if !speaks_for(&from, "REG_SEND") => {}
            Control::RegSend { from, to, message } => match reg.whereis(&to) {
                Some(p) => p.deliver(Signal::Message {
                    from: Some(from),
                    message,
                }),
                None => {
                    tracing::debug!(peer = sender, name = %to, "message to a name not registered here: dropped, as a BEAM node would");
                    if let Some(h) = rlock(&self.0.unrouted).as_ref() {
                        h(sender, &to);
                    }
                }
            },
            Control::MonitorP {
                from,
                to,
                reference,
            } => {
                if !speaks_for(&from, "MONITOR_P") {
                    return;
                }
                let local = match &to {
                    ProcId::Name(n) => Some(MonitorTarget::Name(n.clone())),
                    ProcId::Pid(p) if self.0.ids.is_local(p) => Some(MonitorTarget::Pid(key(p))),
                    ProcId::Pid(_) => None,
                };
                let effect = match local {
                    Some(local) => reg.monitor(from, to, local, reference),
                    None => Some(Effect::MonitorExit {
                        holder: from,
                        target: to,
                        reference,
                        reason: gen::atom("noproc"),
                    }),
                };
                if let Some(e) = effect {
                    self.apply(vec![e]);
                }
            }
            Control::DemonitorP {
                from, reference, ..
            } => {
                if speaks_for(&from, "DEMONITOR_P") {
                    reg.demonitor(sender, &reference);
                }
            }
            Control::MonitorPExit {
                reference, reason, ..
            } => reg.monitor_exit(sender, reference, reason),
            Control::Link { from, to } => {
                if !speaks_for(&from, "LINK") {
                    return;
                }
                if let Some(e) = reg.link(&to, from) {
                    self.apply(vec![e]);
                }
            }
            Control::Unlink { from, to } => {
                if speaks_for(&from, "UNLINK") {
                    reg.unlink(&to, &from);
                }
            }
            Control::UnlinkId { id, from, to } => {
                if !speaks_for(&from, "UNLINK_ID") {
                    return;
                }
                reg.unlink(&to, &from);
                let c = Owned::new(ctl::unlink_id_ack(id.into_term(), &to, &from));
                self.send_control(sender, &c, None);
            }
            Control::UnlinkIdAck { .. } | Control::Ignored { .. } => {}
            Control::Exit { from, to, reason } => {
                if !speaks_for(&from, "EXIT") {
                    return;
                }
                reg.unlink(&to, &from);
                if let Some(p) = reg.lookup_pid(&to) {
                    p.deliver(Signal::Exit { from, reason });
                }
            }
            Control::Exit2 { from, to, reason } => {
                if !speaks_for(&from, "EXIT2") {
                    return;
                }
                if let Some(p) = reg.lookup_pid(&to) {
                    p.deliver(Signal::Exit { from, reason });
                }
            }
        }
    }

    // ---- connections -------------------------------------------------------------------

    async fn keep_epmd(self, mut stream: TcpStream) {
        use tokio::io::AsyncReadExt;
        let mut shutdown = self.shutdown_signal();
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                _ = shutdown.wait() => return self.0.net.set_epmd_registered(false), // dropping the stream unregisters us
                r = stream.read(&mut byte) => {
                    if matches!(r, Ok(n) if n > 0) { continue; }
                    self.0.net.set_epmd_registered(false);
                    tracing::warn!(node = %self.name(), "lost the epmd registration (epmd stopped?); registering again");
                    let (alive, _) = match split_name(self.name()) { Ok(v) => v, Err(_) => return };
                    let mut delay = Duration::from_millis(200);
                    loop {
                        if self.is_shutting_down() { return; }
                        match epmd::register("127.0.0.1", self.0.config.epmd_port, alive, self.0.listen_port).await {
                            Ok((s, _)) => { stream = s; self.0.net.set_epmd_registered(true); tracing::info!(node = %self.name(), "registered with epmd again"); break; }
                            Err(epmd::EpmdError::Unreachable { .. }) if self.0.config.start_epmd => {
                                let _ = epmd_server::spawn_detached(self.0.config.epmd_port);
                            }
                            Err(e) => tracing::warn!(error = %e, "epmd registration failed"),
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }

    async fn accept_loop(self, listener: TcpListener) {
        let mut shutdown = self.shutdown_signal();
        self.0.net.set_accepting(true);
        loop {
            let (stream, addr) = tokio::select! {
                _ = shutdown.wait() => return self.0.net.set_accepting(false),
                r = listener.accept() => match r {
                    Ok(v) => v,
                    Err(e) => {
                        // EMFILE and the like: wait for descriptors to come back.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // Sockets in the handshake have their own budget, and each address a share of
            // it: a client holding idle sockets locks out neither other addresses nor the
            // slots of authenticated peers.
            match self.0.admission.enter(addr.ip()) {
                Ok(ticket) => {
                    let node = self.clone();
                    tokio::spawn(async move { node.incoming(stream, addr, ticket).await });
                }
                Err(Refused::Budget) => {
                    drop(stream);
                    self.0.net.handshake_refused_at_cap();
                    self.warn_source(
                        "incoming connection refused: too many handshakes in progress (the handshake cap, --max-handshakes)",
                        addr,
                        None,
                        &self.0.config.max_handshakes,
                    );
                }
                Err(Refused::PerAddress) => {
                    drop(stream);
                    self.0.net.handshake_refused_per_address();
                    self.warn_source(
                        "incoming connection refused: too many handshakes in progress from this address (--max-handshakes-per-address)",
                        addr,
                        None,
                        &self.0.config.max_handshakes_per_address,
                    );
                }
            }
        }
    }

    /// Logs a warning about `addr`, at most one line per address and kind per interval
    /// ([`log_limit::global`]); the rest are counted and reported by `flush_warnings`.
    fn warn_source(
        &self,
        kind: &'static str,
        addr: std::net::SocketAddr,
        peer: Option<&str>,
        detail: &dyn std::fmt::Display,
    ) {
        let ip = addr.ip().to_string();
        if let Some(suppressed) = log_limit::global().admit(kind, &ip) {
            match peer {
                Some(peer) => {
                    tracing::warn!(%addr, peer, detail = %detail, suppressed, "{kind}")
                }
                None => tracing::warn!(%addr, detail = %detail, suppressed, "{kind}"),
            }
        }
    }

    /// Once per interval, one line per source whose warnings were held back (by this
    /// node or any other module using [`log_limit::global`]).
    async fn flush_warnings(self) {
        let warnings = log_limit::global();
        let mut shutdown = self.shutdown_signal();
        let mut every = tokio::time::interval(warnings.interval());
        every.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = every.tick() => {}
            }
            let secs = warnings.interval().as_secs();
            for s in warnings.flush() {
                tracing::warn!(
                    source = %s.source,
                    suppressed = s.count,
                    "{} (repeated {} times from this source in the last {secs} s)",
                    s.kind,
                    s.count
                );
            }
        }
    }

    async fn incoming(self, stream: TcpStream, addr: std::net::SocketAddr, ticket: Ticket) {
        let _guard = Counted::connection(&self);
        let _ = stream.set_nodelay(true);
        let cfg = &self.0.config;
        let handshaking = self.0.net.handshake_started();
        // An address that sent wrong cookies waits its turn, so guesses are slow.
        let wait = self.0.admission.turn(addr.ip());
        if !wait.is_zero() {
            self.warn_source(
                "incoming handshake delayed: this address sent wrong cookies",
                addr,
                None,
                &format_args!("{} ms", wait.as_millis()),
            );
            let mut shutdown = self.shutdown_signal();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => return,
            }
        }
        let acc = match handshake::accept(
            stream,
            &self.0.name,
            self.creation(),
            &cfg.cookie,
            cfg.first_message_timeout,
            cfg.handshake_timeout,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                self.0.net.handshake_failed(HandshakeFailure::of(&e));
                self.warn_source("incoming handshake failed", addr, None, &e);
                return;
            }
        };
        let peer_name = acc.peer_name.clone();
        // Slots for authenticated peers: a node already connected may reconnect (it
        // replaces its old connection), a new one needs a free slot.
        if self.0.established.load(Ordering::Acquire) >= cfg.max_connections
            && self.peer(&peer_name).is_none()
        {
            self.0.net.connection_refused_at_cap();
            self.warn_source(
                "connection refused: at the connection cap (--max-connections)",
                addr,
                Some(&peer_name),
                &cfg.max_connections,
            );
            let _ = acc
                .finish(erl_dist::handshake::HandshakeStatus::NotAllowed)
                .await;
            return;
        }
        // Decide the status as the BEAM does: a pending outgoing attempt to the same node
        // loses when the other node's name is greater; an existing connection is replaced
        // (the peer restarted or lost it without us noticing).
        let status = {
            let peers = rlock(&self.0.peers);
            match peers.get(&peer_name) {
                Some(Slot::Connecting(_)) if peer_name.as_str() > self.0.name.as_str() => {
                    erl_dist::handshake::HandshakeStatus::OkSimultaneous
                }
                Some(Slot::Connecting(_)) => erl_dist::handshake::HandshakeStatus::Nok,
                _ => erl_dist::handshake::HandshakeStatus::Ok,
            }
        };
        if status != erl_dist::handshake::HandshakeStatus::Ok {
            tracing::info!(peer = %peer_name, ?status, "simultaneous connect: both nodes dialed each other; the greater name's connection wins");
        }
        let finished = acc.finish(status).await;
        drop(handshaking);
        if let Err(e) = &finished {
            if !matches!(e, Refusal::Simultaneous) {
                self.0.net.handshake_failed(HandshakeFailure::of(e));
            }
        }
        match finished {
            Ok((stream, info)) => {
                self.0.admission.authenticated(addr.ip());
                drop(ticket);
                self.serve(stream, info, Direction::Incoming).await
            }
            Err(Refusal::Simultaneous) => {
                tracing::debug!(peer = %peer_name, "simultaneous connect: keeping our own connection")
            }
            Err(Refusal::WrongCookie) => {
                let delay = self.0.admission.wrong_cookie(addr.ip());
                self.warn_source(
                    "connection refused: wrong cookie (the peer must use this node's cookie); this address's next handshake is delayed",
                    addr,
                    Some(&peer_name),
                    &format_args!("{} ms", delay.as_millis()),
                );
            }
            Err(e) => self.warn_source("incoming handshake failed", addr, Some(&peer_name), &e),
        }
    }

    /// One attempt to connect to `peer`. Returns once the connection is up (it keeps
    /// running in its own task) or failed.
    pub async fn connect(&self, peer: &str) -> Result<(), ConnectError> {
        if self.peer(peer).is_some() {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let node = self.clone();
        let name = peer.to_string();
        tokio::spawn(async move {
            let r = node.dial(&name, Some(tx)).await;
            if let Err(e) = r {
                tracing::debug!(peer = %name, error = %e, "connect failed");
            }
        });
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Handshake {
                node: peer.to_string(),
                reason: "the connection attempt ended without a result".into(),
            }),
        }
    }

    async fn stay_connected(self, peer: String) {
        let mut delay = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut last_err = String::new();
        while !self.is_shutting_down() {
            if self.peer(&peer).is_some() {
                // Connected (perhaps by the peer): check again shortly.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            match self.dial(&peer, None).await {
                Ok(served) => {
                    if served {
                        delay = Duration::from_millis(100);
                        last_err.clear();
                    }
                }
                Err(e) => {
                    let e = e.to_string();
                    if e != last_err {
                        tracing::warn!(peer = %peer, error = %e, retry_in_ms = delay.as_millis() as u64, "cannot connect; retrying with backoff");
                        last_err = e;
                    }
                    let mut s = self.shutdown_signal();
                    tokio::select! { _ = tokio::time::sleep(delay) => {}, _ = s.wait() => return }
                    delay = (delay * 2).min(max);
                }
            }
        }
    }

    /// Dials `peer` and serves the connection until it ends. `Ok(true)` when a connection
    /// was served, `Ok(false)` when another connection to the peer won.
    async fn dial(
        &self,
        peer: &str,
        ready: Option<tokio::sync::oneshot::Sender<Result<(), ConnectError>>>,
    ) -> Result<bool, ConnectError> {
        let mut ready = ready;
        let r = self.dial_inner(peer, &mut ready).await;
        if let Some(tx) = ready.take() {
            let _ = tx.send(match &r {
                Ok(_) => Ok(()),
                Err(e) => Err(e.clone()),
            });
        }
        r
    }

    async fn dial_inner(
        &self,
        peer: &str,
        ready: &mut Option<tokio::sync::oneshot::Sender<Result<(), ConnectError>>>,
    ) -> Result<bool, ConnectError> {
        let (alive, host) = split_name(peer).map_err(|_| ConnectError::BadName {
            node: peer.to_string(),
        })?;
        let conn_id = self.0.next_conn.fetch_add(1, Ordering::Relaxed);
        {
            let mut peers = wlock(&self.0.peers);
            match peers.get(peer) {
                Some(Slot::Up(_)) => return Ok(false),
                Some(Slot::Connecting(_)) => {
                    return Err(ConnectError::InProgress {
                        node: peer.to_string(),
                    })
                }
                None => {
                    peers.insert(peer.to_string(), Slot::Connecting(conn_id));
                }
            }
        }
        let clear = |node: &Node| {
            let mut peers = wlock(&node.0.peers);
            if matches!(peers.get(peer), Some(Slot::Connecting(id)) if *id == conn_id) {
                peers.remove(peer);
            }
        };
        let cfg = &self.0.config;
        let handshaking = self.0.net.handshake_started();
        let attempt = async {
            let entry = epmd::lookup(host, cfg.epmd_port, alive)
                .await
                .map_err(|e| ConnectError::from_epmd(peer, e))?;
            let entry = entry.ok_or_else(|| ConnectError::UnknownNode {
                node: peer.to_string(),
                host: host.to_string(),
                registered: None,
            })?;
            let unreachable = |detail: String| ConnectError::Unreachable {
                node: peer.to_string(),
                detail,
            };
            let stream = tokio::time::timeout(
                cfg.handshake_timeout,
                TcpStream::connect((host, entry.port)),
            )
            .await
            .map_err(|_| unreachable(format!("{host}:{} timed out", entry.port)))?
            .map_err(|e| unreachable(format!("{host}:{}: {e}", entry.port)))?;
            let _ = stream.set_nodelay(true);
            handshake::connect(
                stream,
                &self.0.name,
                self.creation(),
                &cfg.cookie,
                cfg.handshake_timeout,
            )
            .await
            .map_err(|e| {
                if !matches!(e, Refusal::Simultaneous) {
                    self.0.net.handshake_failed(HandshakeFailure::of(&e));
                }
                ConnectError::from_refusal(peer, e)
            })
        };
        let result = attempt.await;
        drop(handshaking);
        clear(self);
        let (stream, info) = result.inspect_err(|e| {
            // Handshake refusals were counted above; these never reached the handshake.
            if matches!(
                e,
                ConnectError::EpmdUnreachable { .. }
                    | ConnectError::Epmd { .. }
                    | ConnectError::UnknownNode { .. }
                    | ConnectError::Unreachable { .. }
            ) {
                self.0.net.handshake_failed(HandshakeFailure::Unreachable);
            }
        })?;
        let _guard = Counted::connection(self);
        if let Some(tx) = ready.take() {
            // Announce readiness only after `serve` registered the peer: hand the sender on.
            return Ok(self
                .serve_then(stream, info, Direction::Outgoing, Some(tx))
                .await);
        }
        Ok(self
            .serve_then(stream, info, Direction::Outgoing, None)
            .await)
    }

    async fn serve(&self, stream: TcpStream, info: PeerInfo, direction: Direction) {
        self.serve_then(stream, info, direction, None).await;
    }

    /// Registers the peer, tells observers, runs the connection, then cleans up.
    async fn serve_then(
        &self,
        stream: TcpStream,
        info: PeerInfo,
        direction: Direction,
        ready: Option<tokio::sync::oneshot::Sender<Result<(), ConnectError>>>,
    ) -> bool {
        let conn_id = self.0.next_conn.fetch_add(1, Ordering::Relaxed);
        let peer = Arc::new(Peer {
            info: info.clone(),
            direction,
            outbox: Outbox::new(self.0.config.max_outbox, self.0.outbox_budget.clone()),
            conn_id,
            replaced: AtomicBool::new(false),
        });
        let old = {
            let mut peers = wlock(&self.0.peers);
            let old = peers.insert(info.name.clone(), Slot::Up(peer.clone()));
            match old {
                Some(Slot::Up(o)) if direction == Direction::Outgoing => {
                    // The peer connected to us meanwhile: keep that connection.
                    peers.insert(info.name.clone(), Slot::Up(o));
                    drop(peers);
                    if let Some(tx) = ready {
                        let _ = tx.send(Ok(()));
                    }
                    return false;
                }
                Some(Slot::Up(o)) => Some(o),
                _ => None,
            }
        };
        if let Some(o) = old {
            o.replaced.store(true, Ordering::Release);
            o.outbox.close();
            self.node_down(&o, &DownReason::Replaced);
        }
        let _live = self.0.net.connection_up(&info.name, &peer.outbox.stats);
        let _established = Counted::established(self);
        let observers: Vec<Arc<dyn NodeObserver>> = rlock(&self.0.observers).clone();
        for o in &observers {
            o.node_up(self, &info);
        }
        self.0.net.node_up();
        tracing::info!(peer = %info.name, %direction, creation = info.creation, "nodeup");
        if let Some(tx) = ready {
            let _ = tx.send(Ok(()));
        }
        let reason = connection::run(
            &PeerLink {
                node: self,
                peer: &peer,
            },
            stream,
        )
        .await;
        let still_ours = {
            let mut peers = wlock(&self.0.peers);
            match peers.get(&info.name) {
                Some(Slot::Up(p)) if p.conn_id == conn_id => {
                    peers.remove(&info.name);
                    true
                }
                _ => false,
            }
        };
        if still_ours {
            self.node_down(&peer, &reason);
        }
        true
    }

    fn node_down(&self, peer: &Peer, reason: &DownReason) {
        let name = &peer.info.name;
        self.0.net.node_down(reason.label());
        match reason {
            DownReason::BadFrame(_)
            | DownReason::WriteQueueOverflow
            | DownReason::WriteStalled(_) => {
                tracing::warn!(peer = %name, direction = %peer.direction, reason = %reason, "nodedown")
            }
            _ => {
                tracing::info!(peer = %name, direction = %peer.direction, reason = %reason, "nodedown")
            }
        }
        self.0.registry.node_down(name);
        let observers: Vec<Arc<dyn NodeObserver>> = rlock(&self.0.observers).clone();
        let why = reason.to_string();
        for o in &observers {
            o.node_down(self, name, &why);
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

/// `net_kernel`: answers `{is_auth, Node}` with `yes`, which is what `net_adm:ping` asks.
struct NetKernel(Weak<Inner>);

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
