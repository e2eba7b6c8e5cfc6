//! The distribution handshake, through erl_dist, with a deadline and operator-grade errors.
//!
//! erl_dist's handshakes work against OTP 25 (see docs/design/crates.md). Two of its
//! faults are avoided rather than patched: its client never answers an `alive` status (so
//! we treat `alive` as "try again later" and, as a server, never send it), and it has no
//! timeouts (every step here runs under one deadline, like `net_setuptime`).
//!
//! As a server, the peer's first message (its name) must come within a short deadline of
//! its own ([`FIRST_MESSAGE_TIMEOUT`]): a real node sends it at once, and a socket that
//! says nothing must not hold a handshake slot for the whole setup time. A name with
//! control characters, or our own name, is refused with `not_allowed` before any cookie
//! is checked.

use super::flags;
use super::handshake_stream::{FirstByte, HandshakeStream};
use super::stream::DistStream;
use super::tls::{self, Tls};
use crate::net::cookie::Cookie;
use erl_dist::handshake::{
    ClientSideHandshake, HandshakeError, HandshakeStatus, ServerSideHandshake,
};
use erl_dist::node::{Creation, LocalNode, NodeName};
use erl_dist::DistributionFlags;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// What we learnt about the peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub name: String,
    pub creation: u32,
    pub flags: DistributionFlags,
}

impl PeerInfo {
    /// Whether the peer joined as a visible node (`DFLAG_PUBLISHED`): a hidden one (a
    /// rexi-node on its defaults, a tool, `erl -hidden`) is in no BEAM node's `nodes()`.
    pub fn published(&self) -> bool {
        self.flags.contains(DistributionFlags::PUBLISHED)
    }
}

#[derive(Debug)]
pub enum Refusal {
    WrongCookie,
    Timeout,
    /// The peer (or we) chose the other of two simultaneous connections.
    Simultaneous,
    /// The peer still has a connection to us (status `alive`).
    Alive,
    NotAllowed(String),
    /// The peer closed the connection mid-handshake: how a BEAM node refuses a wrong cookie.
    ClosedByPeer,
    /// We refused the peer's name (control characters, or our own name).
    BadName(String),
    /// TLS failed: a certificate was refused, or one side does not speak TLS.
    Tls(String),
    Other(String),
}

/// How long a connecting peer has to send its name. A BEAM node sends it in its first
/// packet; two seconds leave room for a loaded host while freeing a silent socket's slot
/// well before the full setup time.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongCookie => f.write_str(
                "wrong cookie: both nodes must use the same cookie (--cookie / --cookie-file)",
            ),
            Refusal::Timeout => f.write_str("handshake timed out"),
            Refusal::Simultaneous => f.write_str("simultaneous connect: the other connection wins"),
            Refusal::Alive => {
                f.write_str("the peer still holds an old connection to us; it will be retried")
            }
            Refusal::NotAllowed(w) => write!(f, "not allowed: {w}"),
            Refusal::ClosedByPeer => f.write_str(
                "the peer closed the connection during the handshake: most likely a wrong cookie",
            ),
            Refusal::BadName(w) => write!(f, "peer name refused: {w}"),
            Refusal::Tls(w) => f.write_str(w),
            Refusal::Other(w) => f.write_str(w),
        }
    }
}

fn classify(e: HandshakeError) -> Refusal {
    match e {
        HandshakeError::CookieMismatch => Refusal::WrongCookie,
        HandshakeError::OngoingHandshake => Refusal::Simultaneous,
        HandshakeError::AlreadyActive => Refusal::Alive,
        HandshakeError::NotAllowed => Refusal::NotAllowed("the peer refused the connection".into()),
        // With TLS 1.3 a server checks the client's certificate after the client finished
        // its part, so its refusal arrives while the distribution handshake reads.
        HandshakeError::Io(e) if tls::is_tls_error(&e) => Refusal::Tls(tls::describe(&e)),
        // A BEAM node that rejects our challenge reply just closes the socket.
        HandshakeError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Refusal::ClosedByPeer
        }
        other => Refusal::Other(other.to_string()),
    }
}

fn local_node(name: &str, creation: u32, visible: bool) -> Result<LocalNode, Refusal> {
    let name: NodeName = name
        .parse()
        .map_err(|e| Refusal::Other(format!("bad local node name {name}: {e}")))?;
    let mut local = LocalNode::new(name, Creation::new(creation));
    local.flags = flags::advertised(visible);
    Ok(local)
}

fn peer_info(p: erl_dist::node::PeerNode) -> PeerInfo {
    PeerInfo {
        name: p.name.to_string(),
        creation: p.creation.map(|c| c.get()).unwrap_or(0),
        flags: p.flags,
    }
}

/// Runs the client side on a fresh connection to a node on `host`: TLS first when
/// configured, then the distribution handshake, all within `deadline`. `visible`
/// publishes us (see [`flags::advertised`]).
pub async fn connect(
    tcp: TcpStream,
    tls: Option<&Tls>,
    host: &str,
    local: &str,
    creation: u32,
    cookie: &Cookie,
    deadline: Duration,
    visible: bool,
) -> Result<(DistStream, PeerInfo), Refusal> {
    let local = local_node(local, creation, visible)?;
    let first_byte = FirstByte::default();
    let run = async {
        let stream = match tls {
            Some(tls) => DistStream::from(tls.connect(host, tcp).await.map_err(Refusal::Tls)?),
            None => DistStream::Tcp(tcp),
        };
        let stream = HandshakeStream::new(stream, tls.is_some(), &first_byte);
        let mut hs = ClientSideHandshake::new(stream.compat(), local, cookie.expose());
        let status = hs
            .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
            .await
            .map_err(classify)?;
        match status {
            HandshakeStatus::Ok | HandshakeStatus::OkSimultaneous => {}
            HandshakeStatus::Nok => return Err(Refusal::Simultaneous),
            HandshakeStatus::Alive => return Err(Refusal::Alive),
            HandshakeStatus::NotAllowed => {
                return Err(Refusal::NotAllowed(
                    "the peer refused the connection".into(),
                ))
            }
            HandshakeStatus::Named { .. } => {
                return Err(Refusal::Other("unexpected 'named' status".into()))
            }
        }
        let (s, peer) = hs.execute_rest(true).await.map_err(classify)?;
        Ok((s.into_inner().into_inner(), peer_info(peer)))
    };
    tokio::time::timeout(deadline, run)
        .await
        .map_err(|_| Refusal::Timeout)
        .and_then(|r| r)
        .map_err(|e| plain_meets_tls(e, &first_byte))
}

/// Over plain TCP, a handshake that failed after the peer opened with a TLS record failed
/// because the peer runs TLS distribution.
fn plain_meets_tls(e: Refusal, first_byte: &FirstByte) -> Refusal {
    if first_byte.was_tls() {
        Refusal::Tls(
            "the peer speaks TLS: it runs TLS distribution (-proto_dist inet_tls) and this \
             node does not; give this node --tls-cert/--tls-key/--tls-cacert or \
             --ssl-dist-optfile"
                .into(),
        )
    } else {
        e
    }
}

/// The server side, in two steps, because the status we answer depends on the peer's name
/// (simultaneous connects) and that is only known after the first message.
pub struct Accepting {
    hs: ServerSideHandshake<tokio_util::compat::Compat<HandshakeStream>>,
    pub peer_name: String,
    deadline: tokio::time::Instant,
}

/// Reads the peer's name (v6 `N` or the older `n` message) within `first_message`, and
/// refuses a name that is ours or has control characters; the whole handshake must end
/// within `deadline`. `visible` publishes us (see [`flags::advertised`]).
///
/// With TLS, the peer's first bytes (its ClientHello) must come within `first_message`,
/// the TLS handshake within `deadline`, and the name within `first_message` after it.
pub async fn accept(
    tcp: TcpStream,
    tls: Option<&Tls>,
    local: &str,
    creation: u32,
    cookie: &Cookie,
    (first_message, deadline): (Duration, Duration),
    visible: bool,
) -> Result<Accepting, Refusal> {
    let local_name = local;
    let local = local_node(local, creation, visible)?;
    let started = tokio::time::Instant::now();
    let deadline = started + deadline;
    let (stream, talking) = match tls {
        None => (DistStream::Tcp(tcp), started),
        Some(tls) => {
            let mut first = [0u8; 1];
            tokio::time::timeout_at(deadline.min(started + first_message), tcp.peek(&mut first))
                .await
                .map_err(|_| Refusal::Timeout)?
                .map_err(|e| Refusal::Other(format!("socket error: {e}")))?;
            let s = tokio::time::timeout_at(deadline, tls.accept(tcp))
                .await
                .map_err(|_| Refusal::Timeout)?
                .map_err(Refusal::Tls)?;
            (DistStream::from(s), tokio::time::Instant::now())
        }
    };
    let first_byte = FirstByte::default();
    let stream = HandshakeStream::new(stream, tls.is_some(), &first_byte);
    let mut hs = ServerSideHandshake::new(stream.compat(), local, cookie.expose());
    let name = tokio::time::timeout_at(
        deadline.min(talking + first_message),
        hs.execute_recv_name(),
    )
    .await
    .map_err(|_| Refusal::Timeout)
    .and_then(|r| r.map_err(classify))
    .map_err(|e| plain_meets_tls(e, &first_byte))?;
    let Some(n) = name else {
        return Err(Refusal::NotAllowed(
            "the peer asked for a dynamic name, which a hidden C-node does not hand out".into(),
        ));
    };
    let peer_name = n.to_string();
    if let Err(why) = check_peer_name(&peer_name, local_name) {
        // Tell the peer, as a BEAM node does, then give up on the connection.
        let _ =
            tokio::time::timeout_at(deadline, hs.execute_rest(HandshakeStatus::NotAllowed)).await;
        return Err(Refusal::BadName(why));
    }
    Ok(Accepting {
        hs,
        peer_name,
        deadline,
    })
}

/// A peer's name must be printable and must not be ours: a peer calling itself by our
/// name is a second instance of this node or a spoof, and control characters in a name
/// only serve to forge log lines or confuse tools.
pub fn check_peer_name(peer: &str, local: &str) -> Result<(), String> {
    if peer.chars().any(char::is_control) {
        return Err(format!("{peer:?} contains control characters"));
    }
    if peer == local {
        return Err(format!(
            "{peer} is this node's own name (another instance with the same name, or a spoof)"
        ));
    }
    Ok(())
}

impl Accepting {
    /// Answers `ok`, `ok_simultaneous` or `nok` and finishes the handshake.
    pub async fn finish(self, status: HandshakeStatus) -> Result<(DistStream, PeerInfo), Refusal> {
        let (s, peer) = tokio::time::timeout_at(self.deadline, self.hs.execute_rest(status))
            .await
            .map_err(|_| Refusal::Timeout)?
            .map_err(classify)?;
        Ok((s.into_inner().into_inner(), peer_info(peer)))
    }
}

#[cfg(test)]
mod tests {
    use super::check_peer_name;

    #[test]
    fn names_with_control_characters_or_our_own_are_refused() {
        let me = "rexi@host";
        assert!(check_peer_name("couch@host", me).is_ok());
        assert!(check_peer_name("rexi@host", me).is_err());
        let e = check_peer_name("a\n2024 INFO forged@host", me).expect_err("newline");
        assert!(!e.contains('\n'), "{e}");
        assert!(check_peer_name("a\u{1b}[2K@host", me).is_err());
    }
}
