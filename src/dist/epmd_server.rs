//! An epmd-compatible name server of our own, run as `rexi-node epmd`.
//!
//! `erl` starts epmd itself when none answers; rexi-node must work on machines without
//! Erlang installed, so it carries this server and starts it the same way: detached, so
//! that BEAM nodes that register with it later keep their registration after the daemon
//! exits. It speaks what nodes and tools use: ALIVE2 (register, kept while the socket is
//! open), PORT_PLEASE2 (look up), NAMES (`epmd -names`), DUMP and KILL.
//!
//! It listens on every address, so anyone who can reach the port is a client. As the
//! real epmd, it therefore holds out against clients that misbehave:
//!
//! * **accept errors are survived**: running out of file descriptors (EMFILE) is logged
//!   once and retried with a backoff of up to a second, never the end of the process (and
//!   of every registration with it);
//! * **bounded clients**: at most [`Config::max_connections`] sockets at once (beyond it
//!   new clients wait in the kernel's queue), each request within
//!   [`Config::request_timeout`] of the connect and at most [`request::MAX_REQUEST`] bytes,
//!   read into a buffer of its declared size only once that size is known to be valid;
//! * **local administration**: ALIVE2, DUMP, KILL and STOP only from loopback addresses
//!   (unless [`Config::allow_remote`]); others are closed without a reply, as epmd does;
//! * **names and fields checked** before anything is stored (see [`request`]).
//!
//! The protocol itself (parsing, checks, replies) is in [`request`], as pure functions.

pub mod request;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use request::{Entry, Refusal, Request};

/// What a client may hold. The defaults suit a port mapper for one host.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sockets open at once, registrations included (each registered node keeps one).
    /// Keep it below the process's open-file limit.
    pub max_connections: usize,
    /// Time from the connect to the end of the request; then the socket is closed. Nodes
    /// send their request at once; this only frees slots held by idle clients.
    pub request_timeout: Duration,
    /// Serve ALIVE2, DUMP, KILL and STOP to non-loopback clients too.
    pub allow_remote: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 1000,
            request_timeout: Duration::from_secs(10),
            allow_remote: false,
        }
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, Registered>,
    creation: u32,
    next_conn: u64,
}

struct Registered {
    entry: Entry,
    /// The connection that holds the registration.
    conn: u64,
}

/// Starts `rexi-node epmd --port PORT` as a detached process (its own process group, no
/// stdio), so it outlives this daemon like erl's epmd does. Returns the child's pid.
pub fn spawn_detached(port: u16) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find our own executable to start epmd: {e}"))?;
    let child = std::process::Command::new(exe)
        .args(["epmd", "--port", &port.to_string()])
        // The port mapper needs no cookie; keep it out of its environment (/proc/PID/environ).
        .env_remove("REXI_NODE_COOKIE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start epmd: {e}"))?;
    tracing::info!(
        pid = child.id(),
        port,
        "no epmd answered: started rexi-node epmd (detached)"
    );
    Ok(child.id())
}

/// Serves until KILL_REQ (with no node registered) or the process is stopped. Returns
/// an error only if the listener itself cannot be used.
pub async fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let state = Arc::new(Mutex::new(State {
        creation: seed | 4,
        ..State::default()
    }));
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (kill_tx, mut kill_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut backoff = AcceptBackoff::default();
    // Whether the cap was hit since a slot was last free at once (logged once per episode).
    let mut capped = false;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                capped = false;
                p
            }
            Err(_) => {
                if !capped {
                    capped = true;
                    tracing::warn!(
                        max_connections = config.max_connections,
                        "epmd: connection cap reached; new clients wait until one closes"
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return Ok(()),
                    },
                    _ = kill_rx.recv() => return Ok(()),
                }
            }
        };
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff.succeeded();
                    x
                }
                Err(e) => {
                    backoff.failed(&e).await;
                    continue;
                }
            },
            _ = kill_rx.recv() => return Ok(()),
        };
        let ctx = Client {
            state: state.clone(),
            config: config.clone(),
            port,
            kill: kill_tx.clone(),
            peer,
            _slot: permit,
        };
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            ctx.serve(sock).await;
        });
    }
}

/// Retries a failing `accept` with a growing pause (10 ms to 1 s), logging the first
/// failure of a run and the recovery, not every attempt.
#[derive(Default)]
struct AcceptBackoff {
    failures: u64,
}

impl AcceptBackoff {
    async fn failed(&mut self, e: &std::io::Error) {
        self.failures += 1;
        if self.failures == 1 {
            let hint = if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) {
                " (out of file descriptors: raise the open-file limit or lower --max-connections)"
            } else {
                ""
            };
            tracing::warn!(error = %e, "epmd: accept failed{hint}; retrying with backoff");
        }
        let exp = self.failures.min(7) as u32;
        let pause = Duration::from_millis(10 * (1u64 << exp)).min(Duration::from_secs(1));
        tokio::time::sleep(pause).await;
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failed_accepts = self.failures, "epmd: accepting again");
            self.failures = 0;
        }
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loopback only: 127.0.0.0/8, ::1 and IPv4-mapped loopback. (epmd also counts a client
/// connecting from the host's own address as local; nodes register over loopback.)
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// One client connection, holding its slot until it ends.
struct Client {
    state: Arc<Mutex<State>>,
    config: Arc<Config>,
    port: u16,
    kill: tokio::sync::mpsc::Sender<()>,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl Client {
    async fn serve(self, mut sock: TcpStream) {
        let limit = self.config.request_timeout;
        let req = match tokio::time::timeout(limit, read_request(&mut sock)).await {
            Ok(Ok(req)) => req,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "epmd: bad request, closed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "epmd: no complete request in {limit:?}, closed");
                return;
            }
        };
        let req = match request::parse(&req) {
            Ok(r) => r,
            Err(Refusal::Malformed(why)) => {
                tracing::debug!(peer = %self.peer, "epmd: malformed request ({why}), closed");
                return;
            }
            Err(Refusal::Alive2 { highest, reason }) => {
                if self.local_or_allowed() {
                    tracing::info!(peer = %self.peer, "epmd: registration refused: {reason}");
                    let reply = request::alive2_reply(false, request::REFUSED_CREATION, highest);
                    let _ = sock.write_all(&reply).await;
                }
                return;
            }
        };
        if req.is_privileged() && !self.local_or_allowed() {
            tracing::debug!(peer = %self.peer, "epmd: administrative request from a non-local address, closed");
            return;
        }
        if let Err(e) = self.answer(req, &mut sock).await {
            tracing::debug!(peer = %self.peer, error = %e, "epmd client");
        }
    }

    fn local_or_allowed(&self) -> bool {
        self.config.allow_remote || is_loopback(self.peer.ip())
    }

    async fn answer(&self, req: Request<'_>, sock: &mut TcpStream) -> std::io::Result<()> {
        match req {
            Request::Alive2(a) => {
                let registered = {
                    let mut st = lock(&self.state);
                    st.next_conn += 1;
                    let conn = st.next_conn;
                    if st.nodes.contains_key(a.name) {
                        None
                    } else {
                        st.creation = st.creation.wrapping_add(1).max(4);
                        let entry = Entry::of(&a);
                        st.nodes
                            .insert(a.name.to_string(), Registered { entry, conn });
                        Some((st.creation, conn))
                    }
                };
                let Some((creation, conn)) = registered else {
                    tracing::info!(peer = %self.peer, name = ?a.name, "epmd: registration refused: name already registered");
                    let reply = request::alive2_reply(false, request::REFUSED_CREATION, a.highest);
                    return sock.write_all(&reply).await;
                };
                tracing::debug!(name = ?a.name, port = a.port, "epmd: registered");
                let sent = sock
                    .write_all(&request::alive2_reply(true, creation, a.highest))
                    .await;
                if sent.is_ok() {
                    // The registration lives as long as this socket; what the node sends
                    // meanwhile is read and dropped.
                    let mut buf = [0u8; 64];
                    while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                }
                let mut st = lock(&self.state);
                if matches!(st.nodes.get(a.name), Some(r) if r.conn == conn) {
                    st.nodes.remove(a.name);
                }
                sent
            }
            Request::PortPlease2 { name } => {
                let reply = {
                    let st = lock(&self.state);
                    request::port2_reply(name, st.nodes.get(name).map(|r| &r.entry))
                };
                sock.write_all(&reply).await
            }
            Request::Names | Request::Dump => {
                let reply = {
                    let st = lock(&self.state);
                    let mut nodes: Vec<(&str, u16)> = st
                        .nodes
                        .iter()
                        .map(|(n, r)| (n.as_str(), r.entry.port))
                        .collect();
                    nodes.sort_unstable();
                    request::names_reply(self.port, nodes, matches!(req, Request::Dump))
                };
                sock.write_all(&reply).await
            }
            Request::Kill => {
                let empty = lock(&self.state).nodes.is_empty();
                sock.write_all(if empty { b"OK" } else { b"NO" }).await?;
                if empty {
                    tracing::info!(peer = %self.peer, "epmd: KILL with no node registered, stopping");
                    let _ = self.kill.send(()).await;
                }
                Ok(())
            }
            // epmd honours STOP only when started with -relaxed_command_check; neither do we.
            Request::Stop { .. } => Ok(()),
        }
    }
}

/// Reads `Length:16` and that many bytes. A length of 0 or above
/// [`request::MAX_REQUEST`] is refused before anything more is read or allocated.
async fn read_request(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    sock.read_exact(&mut len).await?;
    let len = u16::from_be_bytes(len) as usize;
    if len == 0 || len > request::MAX_REQUEST {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "request of {len} bytes (1 to {} accepted)",
                request::MAX_REQUEST
            ),
        ));
    }
    let mut req = vec![0u8; len];
    sock.read_exact(&mut req).await?;
    Ok(req)
}
