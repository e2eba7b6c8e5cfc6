//! Connections: the accept loop (admission, handshake, the connection cap), dialling out
//! with backoff, the table of connected peers with the BEAM's rule for simultaneous
//! connects, and nodeup/nodedown towards the observers.

use super::{rlock, split_name, wlock, Counted, Direction, Node, NodeObserver, Peer, Slot};
use crate::etf::Limits;
use crate::log_limit;
use crate::net::admission::{Refused, Ticket};
use crate::net::connect_error::ConnectError;
use crate::net::connection::{self, DownReason, Outbox};
use crate::net::epmd;
use crate::net::handshake::{self, PeerInfo, Refusal};
use crate::net::message::Control;
use crate::net::metrics::{FrameLimit, HandshakeFailure};
use crate::net::stream::DistStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;

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
    fn dispatch(&self, control: Control<'_>) -> Result<(), crate::net::message::FrameError> {
        self.node.dispatch(self.peer, control)
    }
    fn frame_refused(&self, limit: FrameLimit) {
        self.node.net_stats().frame_refused(limit)
    }
}

impl Node {
    pub(super) async fn accept_loop(self, listener: TcpListener) {
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
                Ok(ticket) => self.place_incoming(stream, addr, ticket),
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

    /// Runs an accepted socket's handshake and connection on a connection thread (see
    /// [`crate::net::threads`]): the socket leaves this runtime and joins that thread's.
    fn place_incoming(&self, stream: TcpStream, addr: std::net::SocketAddr, ticket: Ticket) {
        let node = self.clone();
        if self.0.threads.is_empty() {
            tokio::spawn(async move { node.incoming(stream, addr, ticket).await });
            return;
        }
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "incoming connection dropped: its socket could not be handed to a connection thread");
                return;
            }
        };
        self.0.threads.spawn(move || async move {
            match TcpStream::from_std(std_stream) {
                Ok(stream) => node.incoming(stream, addr, ticket).await,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "incoming connection dropped: its connection thread could not take its socket")
                }
            }
        });
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
    pub(super) async fn flush_warnings(self) {
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
            cfg.tls.as_deref(),
            &self.0.name,
            self.creation(),
            &cfg.cookie,
            (cfg.first_message_timeout, cfg.handshake_timeout),
            cfg.visible,
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
        self.0.threads.spawn(move || async move {
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

    pub(super) async fn stay_connected(self, peer: String) {
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
                cfg.tls.as_deref(),
                host,
                &self.0.name,
                self.creation(),
                &cfg.cookie,
                cfg.handshake_timeout,
                cfg.visible,
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

    async fn serve(&self, stream: DistStream, info: PeerInfo, direction: Direction) {
        self.serve_then(stream, info, direction, None).await;
    }

    /// Registers the peer, tells observers, runs the connection, then cleans up.
    async fn serve_then(
        &self,
        stream: DistStream,
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
        // Messages held while the node was being connected go first, before the peer is
        // visible to other senders (see `pending`).
        let old = self.0.pending.deliver(&info.name, |held| {
            let mut peers = wlock(&self.0.peers);
            let old = peers.insert(info.name.clone(), Slot::Up(peer.clone()));
            let (winner, old) = match old {
                Some(Slot::Up(o)) if direction == Direction::Outgoing => {
                    // The peer connected to us meanwhile: keep that connection.
                    peers.insert(info.name.clone(), Slot::Up(o.clone()));
                    (o, None)
                }
                Some(Slot::Up(o)) => (peer.clone(), Some(Some(o))),
                _ => (peer.clone(), Some(None)),
            };
            drop(peers);
            if let Some(frames) = held {
                if let Err(e) = self.push(&winner, |b| {
                    b.extend_from_slice(&frames);
                    Ok(())
                }) {
                    tracing::warn!(peer = %info.name, bytes = frames.len(), error = %e, "messages held while connecting dropped: the connection's send queue refused them");
                }
            }
            old
        });
        let Some(old) = old else {
            if let Some(tx) = ready {
                let _ = tx.send(Ok(()));
            }
            return false;
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
        // Every line logged while this connection's reader or writer runs (decode errors,
        // refused frames, routing) carries the peer's name and the direction.
        let span = tracing::info_span!("connection", peer = %info.name, %direction);
        let reason = connection::run(
            &PeerLink {
                node: self,
                peer: &peer,
            },
            stream,
        )
        .instrument(span)
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

    pub(super) fn node_down(&self, peer: &Peer, reason: &DownReason) {
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
