//! One peer connection after the handshake: a reader, a writer, and the tick timer.
//!
//! * The reader parses every complete frame in its buffer and hands each message to the
//!   node's dispatcher before reading again, so routing happens on the reader task.
//! * The writer drains everything senders appended to the [`Outbox`] since its last turn
//!   in one `write_all`: no syscall per message, and senders never wait on the socket.
//! * Ticks: when nothing was written for `net_ticktime / 4` a 4-byte zero frame goes out; a
//!   peer we heard nothing from for a full `net_ticktime` is declared down, like the BEAM.

use super::message;
use super::metrics::{ConnStats, FrameLimit};
use super::node::Node;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Bytes queued for one peer. Senders append encoded frames under a short lock.
pub struct Outbox {
    buf: Mutex<Vec<u8>>,
    wake: Notify,
    closed: AtomicBool,
    /// Close the connection rather than queue more than this for a peer that does not read.
    max: usize,
    /// This connection's figures (see [`super::metrics`]).
    pub stats: Arc<ConnStats>,
}

/// Why a send did not go out.
#[derive(Debug)]
pub enum SendError {
    /// The connection is closing or closed.
    Closed,
    /// There is no connection to that node.
    NotConnected(String),
    /// The peer stopped reading and its queue passed the cap; the connection is being closed.
    Overflow,
    Encode(crate::etf::EncodeError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Closed => f.write_str("the connection is closed"),
            SendError::NotConnected(n) => write!(f, "not connected to {n}"),
            SendError::Overflow => f.write_str(
                "the peer does not read; its send queue is full and the connection is being closed",
            ),
            SendError::Encode(e) => write!(f, "{e}"),
        }
    }
}

impl Outbox {
    pub fn new(max: usize) -> Outbox {
        Outbox {
            buf: Mutex::new(Vec::with_capacity(64 << 10)),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            max,
            stats: Arc::default(),
        }
    }

    /// Appends one or more frames with `fill`, then wakes the writer.
    pub fn push(
        &self,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::etf::EncodeError>,
    ) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() > self.max {
            drop(buf);
            self.stats.refused_outbox.fetch_add(1, Ordering::Relaxed);
            self.close();
            return Err(SendError::Overflow);
        }
        let before = buf.len();
        fill(&mut buf).map_err(SendError::Encode)?;
        self.stats.count_queued(buf.len() - before);
        drop(buf);
        let was_empty = before == 0;
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn take(&self, spare: &mut Vec<u8>) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *buf, spare);
    }
}

/// Runs the writer until the outbox is closed or the socket fails.
async fn writer(
    mut wr: OwnedWriteHalf,
    outbox: &Outbox,
    tick_every: Duration,
) -> std::io::Result<()> {
    let mut spare = Vec::with_capacity(64 << 10);
    let mut ticker = tokio::time::interval(tick_every);
    ticker.tick().await;
    let mut wrote_since_tick = false;
    loop {
        tokio::select! {
            _ = outbox.wake.notified() => {}
            _ = ticker.tick() => {
                if !wrote_since_tick {
                    outbox.push(|b| { b.extend_from_slice(&[0, 0, 0, 0]); Ok(()) }).ok();
                }
                wrote_since_tick = false;
            }
        }
        loop {
            outbox.take(&mut spare);
            if spare.is_empty() {
                break;
            }
            wr.write_all(&spare).await?;
            outbox.stats.count_written(&spare);
            wrote_since_tick = true;
            // Give back a huge buffer rather than keep it for the life of the connection.
            if spare.capacity() > (8 << 20) {
                spare = Vec::with_capacity(64 << 10);
            } else {
                spare.clear();
            }
        }
        if outbox.is_closed() {
            let _ = wr.shutdown().await;
            return Ok(());
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub enum DownReason {
    Closed,
    TickTimeout,
    Io(String),
    BadFrame(String),
    Shutdown,
    Replaced,
    WriteQueueOverflow,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::Closed => f.write_str("connection closed by peer"),
            DownReason::TickTimeout => {
                f.write_str("net_tick_timeout: nothing heard from the peer for a full net_ticktime")
            }
            DownReason::Io(e) => write!(f, "socket error: {e}"),
            DownReason::BadFrame(e) => write!(f, "malformed frame, connection closed: {e}"),
            DownReason::Shutdown => f.write_str("shutting down"),
            DownReason::Replaced => {
                f.write_str("replaced by a newer connection from the same node")
            }
            DownReason::WriteQueueOverflow => {
                f.write_str("the peer stopped reading and its send queue overflowed")
            }
        }
    }
}

/// Serves one established connection until it ends, and says why.
pub async fn run(node: &Node, peer: &super::node::Peer, stream: TcpStream) -> DownReason {
    let cfg = node.config();
    let ticktime = cfg.net_ticktime;
    let (rd, wr) = stream.into_split();
    let outbox = &peer.outbox;
    let write = writer(wr, outbox, ticktime / 4);
    let read = reader(node, peer, rd, ticktime, cfg.max_frame);
    tokio::pin!(write);
    tokio::pin!(read);
    let mut shutdown = node.shutdown_signal();
    let reason = tokio::select! {
        r = &mut read => r,
        w = &mut write => match w {
            Err(e) => DownReason::Io(e.to_string()),
            Ok(()) if peer.replaced.load(Ordering::Acquire) => DownReason::Replaced,
            Ok(()) if node.is_shutting_down() => DownReason::Shutdown,
            Ok(()) => DownReason::WriteQueueOverflow,
        },
        _ = shutdown.wait() => DownReason::Shutdown,
    };
    outbox.close();
    if matches!(reason, DownReason::Shutdown) {
        // Let the writer flush what is queued (bounded), then close.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut write).await;
    }
    reason
}

async fn reader(
    node: &Node,
    peer: &super::node::Peer,
    mut rd: OwnedReadHalf,
    ticktime: Duration,
    max_frame: usize,
) -> DownReason {
    let limits = node.config().limits.clone();
    let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
    let mut start = 0usize;
    let mut last_heard = Instant::now();
    let mut check = tokio::time::interval(ticktime / 4);
    check.tick().await;
    let stats = &peer.outbox.stats;
    loop {
        // Parse every complete frame already buffered; count them once per batch.
        let mut frames = 0u64;
        loop {
            let avail = &buf[start..];
            if avail.len() < 4 {
                break;
            }
            let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
            if len > max_frame {
                node.net_stats().frame_refused(FrameLimit::MaxFrame);
                return DownReason::BadFrame(format!(
                    "frame of {len} bytes exceeds the {max_frame}-byte cap (--max-frame)"
                ));
            }
            if avail.len() < 4 + len {
                // Make room for the whole frame once, instead of growing step by step.
                let need = 4 + len - avail.len();
                if buf.capacity() - buf.len() < need {
                    buf.drain(..start);
                    start = 0;
                    buf.reserve(need);
                }
                break;
            }
            let frame = &avail[4..4 + len];
            start += 4 + len;
            frames += 1;
            if len == 0 {
                continue; // tick
            }
            if frame[0] != b'p' {
                node.net_stats().frame_refused(FrameLimit::FrameType);
                return DownReason::BadFrame(format!("frame type {} is not a pass-through frame ('p'); atom cache and fragments are not negotiated", frame[0]));
            }
            match message::decode(&frame[1..], &limits) {
                Ok(ctl) => node.dispatch(peer, ctl),
                Err(e) => {
                    node.net_stats().frame_refused(FrameLimit::Term);
                    return DownReason::BadFrame(e.0);
                }
            }
        }
        if frames > 0 {
            stats.frames_in.fetch_add(frames, Ordering::Relaxed);
        }
        if start == buf.len() {
            buf.clear();
            start = 0;
        } else if start > buf.capacity() / 2 {
            buf.drain(..start);
            start = 0;
        }
        if buf.capacity() > (8 << 20) && buf.len() - start < (64 << 10) {
            buf.drain(..start);
            start = 0;
            buf.shrink_to(256 << 10);
        }
        if buf.capacity() == buf.len() {
            buf.reserve(64 << 10);
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => return DownReason::Closed,
                Ok(n) => {
                    stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    last_heard = Instant::now()
                }
                Err(e) => return DownReason::Io(e.to_string()),
            },
            _ = check.tick() => {
                if last_heard.elapsed() >= ticktime {
                    return DownReason::TickTimeout;
                }
            }
        }
    }
}
