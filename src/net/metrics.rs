//! The distribution layer's figures: connections, handshakes, nodeups and nodedowns, bytes
//! and frames, send queues.
//!
//! One source of truth: the connection and node code bump these atomics, and everything that
//! reports them (the `stats` call on `rexi_server_mon`, `rexi-node status --json`, the log
//! line at shutdown, `/metrics`) reads them through [`NetStats::snapshot`].
//!
//! The hot path touches only its own connection's [`ConnStats`] (relaxed atomic adds, once
//! per read batch on the reader side and once per queued message on the sender side): no
//! lock, and no cache line shared by every connection. Node-wide totals are summed at read
//! time over the live connections plus what closed connections left behind; a connection's
//! figures move into that remainder under the same lock the reader takes, so a total never
//! goes down.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One connection's counters. Lives in its [`super::connection::Outbox`].
#[derive(Default, Debug)]
pub struct ConnStats {
    pub bytes_in: AtomicU64,
    pub frames_in: AtomicU64,
    /// Bytes handed to the send queue (encoded frames, ticks included).
    pub bytes_queued: AtomicU64,
    /// Frames written to the socket (ticks included).
    pub frames_out: AtomicU64,
    /// Bytes the writer put on the socket.
    pub bytes_out: AtomicU64,
    /// Bytes that left the send queue: written, or dropped when the connection ended.
    pub bytes_left: AtomicU64,
    /// Sends refused because the peer's queue passed `--max-outbox` (or, for the peer closed
    /// over it, `--max-outbox-total`).
    pub refused_outbox: AtomicU64,
}

impl ConnStats {
    /// `bytes` appended to the send queue (the caller holds the queue's lock, so this add
    /// never contends with another sender on this connection).
    pub fn count_queued(&self, bytes: usize) {
        self.bytes_queued.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `n` bytes the kernel took from the writer.
    pub fn count_written(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` queued bytes left the queue, written or dropped with the connection.
    pub fn count_left(&self, n: usize) {
        self.bytes_left.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A batch the writer put on the socket in full: its frames counted by walking their
    /// length prefixes (no per-frame cost on the senders' side).
    pub fn count_frames_written(&self, batch: &[u8]) {
        let mut frames = 0u64;
        let mut i = 0usize;
        while let Some(len) = batch.get(i..i + 4) {
            let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            i = i.saturating_add(4).saturating_add(n);
            frames += 1;
        }
        self.frames_out.fetch_add(frames, Ordering::Relaxed);
    }

    /// Bytes queued and neither written to the socket nor dropped yet.
    pub fn queued(&self) -> u64 {
        let left = self.bytes_left.load(Ordering::Relaxed);
        self.bytes_queued
            .load(Ordering::Relaxed)
            .saturating_sub(left)
    }

    fn totals(&self) -> ConnTotals {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnTotals {
            bytes_in: g(&self.bytes_in),
            frames_in: g(&self.frames_in),
            bytes_out: g(&self.bytes_out),
            frames_out: g(&self.frames_out),
            refused_outbox: g(&self.refused_outbox),
        }
    }
}

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTotals {
    pub bytes_in: u64,
    pub frames_in: u64,
    pub bytes_out: u64,
    pub frames_out: u64,
    pub refused_outbox: u64,
}

impl ConnTotals {
    fn add(&mut self, o: &ConnTotals) {
        self.bytes_in += o.bytes_in;
        self.frames_in += o.frames_in;
        self.bytes_out += o.bytes_out;
        self.frames_out += o.frames_out;
        self.refused_outbox += o.refused_outbox;
    }
}

/// Why a handshake failed, as an operator tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The digests did not match: the peer uses another cookie.
    WrongCookie,
    /// The peer did not finish within the handshake timeout.
    Timeout,
    /// One side refused: name not allowed, already connected, lost a simultaneous connect.
    Refused,
    /// Outgoing only: the peer's epmd or port could not be reached.
    Unreachable,
    /// TLS failed: a certificate refused (either way), or one side without TLS.
    Tls,
    /// A socket error or a protocol violation in the middle of the handshake.
    Other,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 6] = [
        HandshakeFailure::WrongCookie,
        HandshakeFailure::Timeout,
        HandshakeFailure::Refused,
        HandshakeFailure::Unreachable,
        HandshakeFailure::Tls,
        HandshakeFailure::Other,
    ];
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::WrongCookie => "wrong_cookie",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Refused => "refused",
            HandshakeFailure::Unreachable => "unreachable",
            HandshakeFailure::Tls => "tls",
            HandshakeFailure::Other => "other",
        }
    }
    /// Classifies a refusal from [`super::handshake`].
    pub fn of(r: &super::handshake::Refusal) -> HandshakeFailure {
        use super::handshake::Refusal;
        match r {
            // A BEAM node refuses a wrong cookie by closing the connection.
            Refusal::WrongCookie | Refusal::ClosedByPeer => HandshakeFailure::WrongCookie,
            Refusal::Timeout => HandshakeFailure::Timeout,
            Refusal::Simultaneous
            | Refusal::Alive
            | Refusal::NotAllowed(_)
            | Refusal::BadName(_) => HandshakeFailure::Refused,
            Refusal::Tls(_) => HandshakeFailure::Tls,
            Refusal::Other(_) => HandshakeFailure::Other,
        }
    }
}

/// Which limit refused a frame from a peer (the connection is closed then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameLimit {
    /// Longer than `--max-frame`.
    MaxFrame,
    /// Not a pass-through frame (atom cache and fragments are not negotiated).
    FrameType,
    /// The guarded term decoder refused it (a term limit, or malformed ETF).
    Term,
}

impl FrameLimit {
    pub const ALL: [FrameLimit; 3] = [
        FrameLimit::MaxFrame,
        FrameLimit::FrameType,
        FrameLimit::Term,
    ];
    pub fn label(self) -> &'static str {
        match self {
            FrameLimit::MaxFrame => "max_frame",
            FrameLimit::FrameType => "frame_type",
            FrameLimit::Term => "term",
        }
    }
}

/// The kinds of nodedown, fixed so the label set stays bounded.
pub const DOWN_REASONS: [&str; 8] = [
    "closed",
    "tick_timeout",
    "io",
    "bad_frame",
    "shutdown",
    "replaced",
    "write_queue_overflow",
    "write_stalled",
];

struct Live {
    id: u64,
    peer: String,
    stats: Arc<ConnStats>,
}

#[derive(Default)]
struct Conns {
    next: u64,
    live: Vec<Live>,
    /// What closed connections counted.
    retired: ConnTotals,
}

/// The node's figures. See the module doc.
#[derive(Default)]
pub struct NetStats {
    conns: Mutex<Conns>,
    handshaking: AtomicU64,
    nodeup: AtomicU64,
    nodedown: [AtomicU64; DOWN_REASONS.len()],
    handshake_failures: [AtomicU64; HandshakeFailure::ALL.len()],
    frames_refused: [AtomicU64; FrameLimit::ALL.len()],
    refused_max_connections: AtomicU64,
    refused_max_handshakes: AtomicU64,
    refused_max_handshakes_per_address: AtomicU64,
    closed_max_outbox_total: AtomicU64,
    epmd_registered: AtomicBool,
    accepting: AtomicBool,
}

/// Keeps one connection in the live set; moves its figures to the totals when dropped.
pub struct LiveGuard<'a> {
    net: &'a NetStats,
    id: u64,
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        let mut c = self.net.lock();
        if let Some(i) = c.live.iter().position(|l| l.id == self.id) {
            let gone = c.live.swap_remove(i);
            c.retired.add(&gone.stats.totals());
        }
    }
}

/// Counts a handshake in progress until dropped.
pub struct HandshakeGuard<'a>(&'a NetStats);

impl Drop for HandshakeGuard<'_> {
    fn drop(&mut self) {
        self.0.handshaking.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One peer's figures, for the per-peer series (`--metrics-per-peer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFigures {
    pub peer: String,
    pub totals: ConnTotals,
    pub queued: u64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl NetStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an established connection to `peer` to the live set.
    pub fn connection_up(&self, peer: &str, stats: &Arc<ConnStats>) -> LiveGuard<'_> {
        let mut c = self.lock();
        c.next += 1;
        let id = c.next;
        c.live.push(Live {
            id,
            peer: peer.to_string(),
            stats: stats.clone(),
        });
        LiveGuard { net: self, id }
    }

    pub fn handshake_started(&self) -> HandshakeGuard<'_> {
        bump(&self.handshaking);
        HandshakeGuard(self)
    }

    pub fn handshake_failed(&self, why: HandshakeFailure) {
        bump(&self.handshake_failures[why as usize]);
    }

    pub fn frame_refused(&self, limit: FrameLimit) {
        bump(&self.frames_refused[limit as usize]);
    }

    pub fn connection_refused_at_cap(&self) {
        bump(&self.refused_max_connections);
    }

    /// An incoming socket closed at once: `--max-handshakes` handshakes were in progress.
    pub fn handshake_refused_at_cap(&self) {
        bump(&self.refused_max_handshakes);
    }

    /// An incoming socket closed at once: its address had `--max-handshakes-per-address`
    /// handshakes in progress.
    pub fn handshake_refused_per_address(&self) {
        bump(&self.refused_max_handshakes_per_address);
    }

    /// A connection aborted because the send queues of all peers passed
    /// `--max-outbox-total`.
    pub fn closed_over_outbox_total(&self) {
        bump(&self.closed_max_outbox_total);
    }

    pub fn node_up(&self) {
        bump(&self.nodeup);
    }

    /// A nodedown, by the label of its reason (`DownReason::label`, one of [`DOWN_REASONS`]).
    pub fn node_down(&self, label: &str) {
        if let Some(i) = DOWN_REASONS.iter().position(|r| *r == label) {
            bump(&self.nodedown[i]);
        }
    }

    pub fn set_epmd_registered(&self, yes: bool) {
        self.epmd_registered.store(yes, Ordering::Release);
    }

    pub fn epmd_registered(&self) -> bool {
        self.epmd_registered.load(Ordering::Acquire)
    }

    pub fn set_accepting(&self, yes: bool) {
        self.accepting.store(yes, Ordering::Release);
    }

    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Each connected peer's figures, one entry per peer name (a connection being replaced
    /// and its successor are summed, so a name appears once).
    pub fn per_peer(&self) -> Vec<PeerFigures> {
        let c = self.lock();
        let mut out: Vec<PeerFigures> = Vec::with_capacity(c.live.len());
        for l in &c.live {
            let t = l.stats.totals();
            match out.iter_mut().find(|p| p.peer == l.peer) {
                Some(p) => {
                    p.totals.add(&t);
                    p.queued += l.stats.queued();
                }
                None => out.push(PeerFigures {
                    peer: l.peer.clone(),
                    totals: t,
                    queued: l.stats.queued(),
                }),
            }
        }
        out.sort_by(|a, b| a.peer.cmp(&b.peer));
        out
    }

    /// Every figure as `(key, value)`, in a fixed order with fixed keys; the keys are the
    /// ones `rexi_server_mon`'s `stats` answers and `/metrics` maps to metric names.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let (totals, up, queued, queued_max) = {
            let c = self.lock();
            let mut t = c.retired;
            let (mut q, mut qmax) = (0u64, 0u64);
            for l in &c.live {
                t.add(&l.stats.totals());
                let lq = l.stats.queued();
                q += lq;
                qmax = qmax.max(lq);
            }
            (t, c.live.len() as u64, q, qmax)
        };
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut v = vec![
            ("epmd_registered", self.epmd_registered() as u64),
            ("accepting", self.accepting() as u64),
            ("connections_handshaking", g(&self.handshaking)),
            ("connections_up", up),
            (
                "connections_refused_max_connections",
                g(&self.refused_max_connections),
            ),
            (
                "connections_refused_max_handshakes",
                g(&self.refused_max_handshakes),
            ),
            (
                "connections_refused_max_handshakes_per_address",
                g(&self.refused_max_handshakes_per_address),
            ),
            ("nodeup", g(&self.nodeup)),
        ];
        for (i, r) in DOWN_REASONS.iter().enumerate() {
            v.push((NODEDOWN_KEYS[i], g(&self.nodedown[i])));
            debug_assert!(NODEDOWN_KEYS[i].ends_with(r));
        }
        for h in HandshakeFailure::ALL {
            v.push((
                HANDSHAKE_KEYS[h as usize],
                g(&self.handshake_failures[h as usize]),
            ));
        }
        v.extend([
            ("dist_bytes_in", totals.bytes_in),
            ("dist_bytes_out", totals.bytes_out),
            ("dist_frames_in", totals.frames_in),
            ("dist_frames_out", totals.frames_out),
            ("outbox_bytes_queued", queued),
            ("outbox_bytes_queued_max_peer", queued_max),
        ]);
        for l in FrameLimit::ALL {
            v.push((FRAME_KEYS[l as usize], g(&self.frames_refused[l as usize])));
        }
        v.push(("frames_refused_max_outbox", totals.refused_outbox));
        v.push((
            "connections_closed_max_outbox_total",
            g(&self.closed_max_outbox_total),
        ));
        v
    }
}

const NODEDOWN_KEYS: [&str; DOWN_REASONS.len()] = [
    "nodedown_closed",
    "nodedown_tick_timeout",
    "nodedown_io",
    "nodedown_bad_frame",
    "nodedown_shutdown",
    "nodedown_replaced",
    "nodedown_write_queue_overflow",
    "nodedown_write_stalled",
];

const HANDSHAKE_KEYS: [&str; HandshakeFailure::ALL.len()] = [
    "handshake_failures_wrong_cookie",
    "handshake_failures_timeout",
    "handshake_failures_refused",
    "handshake_failures_unreachable",
    "handshake_failures_tls",
    "handshake_failures_other",
];

const FRAME_KEYS: [&str; FrameLimit::ALL.len()] = [
    "frames_refused_max_frame",
    "frames_refused_frame_type",
    "frames_refused_term",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_never_go_down_when_a_connection_closes() {
        let net = NetStats::default();
        let s = Arc::new(ConnStats::default());
        let guard = net.connection_up("a@h", &s);
        s.bytes_in.fetch_add(100, Ordering::Relaxed);
        s.bytes_queued.fetch_add(40, Ordering::Relaxed);
        s.count_written(30);
        s.count_left(30);
        let get = |v: &[(&str, u64)], k: &str| v.iter().find(|(n, _)| *n == k).map(|p| p.1);
        let before = net.snapshot();
        assert_eq!(get(&before, "dist_bytes_in"), Some(100));
        assert_eq!(get(&before, "outbox_bytes_queued"), Some(10));
        assert_eq!(get(&before, "connections_up"), Some(1));
        drop(guard);
        let after = net.snapshot();
        assert_eq!(get(&after, "dist_bytes_in"), Some(100));
        assert_eq!(get(&after, "dist_bytes_out"), Some(30));
        assert_eq!(get(&after, "connections_up"), Some(0));
        assert_eq!(get(&after, "outbox_bytes_queued"), Some(0));
    }

    #[test]
    fn written_frames_are_counted_by_their_length_prefixes() {
        let s = ConnStats::default();
        // a tick, a 3-byte frame, another tick
        s.count_frames_written(&[0, 0, 0, 0, 0, 0, 0, 3, b'p', 1, 2, 0, 0, 0, 0]);
        s.count_written(15);
        assert_eq!(s.frames_out.load(Ordering::Relaxed), 3);
        assert_eq!(s.bytes_out.load(Ordering::Relaxed), 15);
    }

    #[test]
    fn keys_are_unique_and_labels_match_keys() {
        let v = NetStats::default().snapshot();
        let mut keys: Vec<&str> = v.iter().map(|(k, _)| *k).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), v.len());
        for h in HandshakeFailure::ALL {
            assert!(HANDSHAKE_KEYS[h as usize].ends_with(h.label()));
        }
        for l in FrameLimit::ALL {
            assert!(FRAME_KEYS[l as usize].ends_with(l.label()));
        }
    }

    #[test]
    fn one_entry_per_peer_even_while_a_connection_is_replaced() {
        let net = NetStats::default();
        let (a, b) = (
            Arc::new(ConnStats::default()),
            Arc::new(ConnStats::default()),
        );
        a.frames_in.fetch_add(2, Ordering::Relaxed);
        b.frames_in.fetch_add(3, Ordering::Relaxed);
        let _ga = net.connection_up("p@h", &a);
        let _gb = net.connection_up("p@h", &b);
        let p = net.per_peer();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].totals.frames_in, 5);
    }
}
