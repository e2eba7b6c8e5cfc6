//! One peer connection after the handshake: a reader, a writer, and the tick timer.
//!
//! * The reader parses every complete frame in its buffer and hands each message to the
//!   node's dispatcher before reading again, so routing happens on the reader task.
//! * The writer drains everything senders appended to the [`Outbox`] since its last turn
//!   in one batch, written as fast as the socket takes it: no syscall per message, and
//!   senders never wait on the socket.
//! * Ticks: when nothing was written for `net_ticktime / 4` a 4-byte zero frame goes out; a
//!   peer we heard nothing from for a full `net_ticktime` is declared down, like the BEAM.
//! * A peer that stops reading is closed, not waited for: a write that makes no progress
//!   for `net_ticktime` ends the connection (a peer may keep ticking while it never reads),
//!   and so does a queue past the per-peer cap or the node's global budget. Queued bytes
//!   count from the moment they are appended until the kernel took them, so the bytes a
//!   blocked writer holds count too.

use super::message;
use super::metrics::{ConnStats, FrameLimit};
use super::stream::DistStream;
use crate::etf::Limits;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Bytes queued for all peers together (`--max-outbox-total`).
pub struct OutboxBudget {
    used: AtomicUsize,
    max: usize,
}

impl OutboxBudget {
    pub fn new(max: usize) -> Arc<OutboxBudget> {
        Arc::new(OutboxBudget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// Bytes queued for all peers now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn over(&self) -> bool {
        self.used() > self.max
    }
}

/// Bytes queued for one peer. Senders append encoded frames under a short lock.
pub struct Outbox {
    buf: Mutex<Vec<u8>>,
    wake: Notify,
    /// Fired when the queue is dropped for good (overflow, budget): the connection ends at
    /// once even while its writer is blocked on the socket.
    aborted: Notify,
    closed: AtomicBool,
    /// Close the connection rather than queue more than this for a peer that does not read.
    max: usize,
    /// Bytes appended and not yet taken by the kernel (the buffer plus the writer's batch).
    queued: AtomicUsize,
    budget: Arc<OutboxBudget>,
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
    /// The send queues of all peers together passed `--max-outbox-total`; nothing was queued.
    OverBudget,
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
            SendError::OverBudget => f.write_str(
                "the send queues of all peers passed --max-outbox-total; the message was not queued",
            ),
            SendError::Encode(e) => write!(f, "{e}"),
        }
    }
}

impl Outbox {
    pub fn new(max: usize, budget: Arc<OutboxBudget>) -> Outbox {
        Outbox {
            buf: Mutex::new(Vec::with_capacity(64 << 10)),
            wake: Notify::new(),
            aborted: Notify::new(),
            closed: AtomicBool::new(false),
            max,
            queued: AtomicUsize::new(0),
            budget,
            stats: Arc::default(),
        }
    }

    /// Appends one or more frames with `fill`, then wakes the writer. A peer whose queue
    /// passed the cap is aborted (its connection closes); when all queues together passed
    /// the global budget nothing is queued and the caller decides whom to close
    /// ([`SendError::OverBudget`]).
    pub fn push(
        &self,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), crate::etf::EncodeError>,
    ) -> Result<(), SendError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        if self.queued() > self.max {
            self.stats.refused_outbox.fetch_add(1, Ordering::Relaxed);
            self.abort();
            return Err(SendError::Overflow);
        }
        if self.budget.over() {
            return Err(SendError::OverBudget);
        }
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        if self.closed.load(Ordering::Acquire) {
            // Aborted meanwhile: the queue was freed, do not refill it.
            return Err(SendError::Closed);
        }
        let before = buf.len();
        fill(&mut buf).map_err(SendError::Encode)?;
        let added = buf.len() - before;
        // Counted under the lock, so `take` and `abort` never see bytes not yet counted.
        self.queued.fetch_add(added, Ordering::Relaxed);
        self.budget.used.fetch_add(added, Ordering::Relaxed);
        self.stats.count_queued(added);
        drop(buf);
        if before == 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Bytes queued for this peer and not yet taken by the kernel.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Closes after the writer flushed what is queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Closes at once and frees the queue: the connection ends even if its writer is
    /// blocked on a peer that does not read.
    pub fn abort(&self) {
        self.close();
        self.discard();
        self.aborted.notify_one();
    }

    /// Frees what is still queued (after the connection ended).
    fn discard(&self) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let n = buf.len();
        *buf = Vec::new();
        self.sent(n);
    }

    /// `n` queued bytes left us (written or dropped).
    fn sent(&self, n: usize) {
        self.stats.count_left(n);
        self.queued.fetch_sub(n, Ordering::Relaxed);
        self.budget.used.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn take(&self, spare: &mut Vec<u8>) {
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *buf, spare);
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // Whatever is still counted leaves the global budget with the queue.
        let n = *self.queued.get_mut();
        self.budget.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The writer's current batch: what the kernel has not taken yet stays counted in the
/// queue, and is uncounted when the batch is dropped (written, or the connection ended).
struct Batch<'a> {
    outbox: &'a Outbox,
    left: usize,
}

impl Batch<'_> {
    fn written(&mut self, n: usize) {
        self.left -= n;
        self.outbox.sent(n);
        self.outbox.stats.count_written(n);
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.outbox.sent(self.left);
    }
}

/// How the writer ended, when not asked to.
enum WriteEnd {
    Io(std::io::Error),
    /// No byte could be written for this long.
    Stalled(Duration),
}

/// The writing half of a connection. Plain TCP writes straight into the socket and arms
/// a timer only when the socket is full; TLS writes through rustls, which seals the bytes
/// into records and buffers what the socket did not take, so it is flushed after each
/// batch.
trait WriteHalf: Send {
    /// Writes some of `data` (at least one byte); gives up when nothing could be written
    /// for `stall`.
    fn write_some(
        &mut self,
        data: &[u8],
        stall: Duration,
    ) -> impl Future<Output = Result<usize, WriteEnd>> + Send;
    /// Pushes out what the transport holds back, under the same stall rule.
    fn flush(&mut self, stall: Duration) -> impl Future<Output = Result<(), WriteEnd>> + Send;
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

impl WriteHalf for OwnedWriteHalf {
    async fn write_some(&mut self, data: &[u8], stall: Duration) -> Result<usize, WriteEnd> {
        loop {
            match self.try_write(data) {
                Ok(0) => return Err(WriteEnd::Io(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(WriteEnd::Io(e)),
            }
            match tokio::time::timeout(stall, self.writable()).await {
                Err(_) => return Err(WriteEnd::Stalled(stall)),
                Ok(Err(e)) => return Err(WriteEnd::Io(e)),
                Ok(Ok(())) => {}
            }
        }
    }

    async fn flush(&mut self, _stall: Duration) -> Result<(), WriteEnd> {
        Ok(())
    }

    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

/// The TLS writer: bytes count as written once rustls took them (it holds at most its
/// buffer limit, 64 KiB by default, before the socket must take some).
impl<S: AsyncWrite + Send> WriteHalf for tokio::io::WriteHalf<S> {
    async fn write_some(&mut self, data: &[u8], stall: Duration) -> Result<usize, WriteEnd> {
        match tokio::time::timeout(stall, self.write(data)).await {
            Err(_) => Err(WriteEnd::Stalled(stall)),
            Ok(Ok(0)) => Err(WriteEnd::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(WriteEnd::Io(e)),
        }
    }

    async fn flush(&mut self, stall: Duration) -> Result<(), WriteEnd> {
        match tokio::time::timeout(stall, AsyncWriteExt::flush(self)).await {
            Err(_) => Err(WriteEnd::Stalled(stall)),
            Ok(r) => r.map_err(WriteEnd::Io),
        }
    }

    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

/// Writes `data`, giving up when no byte goes out for `stall`.
async fn write_with_progress(
    wr: &mut impl WriteHalf,
    data: &[u8],
    batch: &mut Batch<'_>,
    stall: Duration,
) -> Result<(), WriteEnd> {
    let mut off = 0;
    while off < data.len() {
        let n = wr.write_some(&data[off..], stall).await?;
        off += n;
        batch.written(n);
    }
    wr.flush(stall).await
}

/// Runs the writer until the outbox is closed, the socket fails or a write stalls.
async fn writer(
    mut wr: impl WriteHalf,
    outbox: &Outbox,
    tick_every: Duration,
    stall: Duration,
) -> Result<(), WriteEnd> {
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
            let mut batch = Batch {
                outbox,
                left: spare.len(),
            };
            write_with_progress(&mut wr, &spare, &mut batch, stall).await?;
            drop(batch);
            outbox.stats.count_frames_written(&spare);
            wrote_since_tick = true;
            // Give back a huge buffer rather than keep it for the life of the connection.
            if spare.capacity() > (8 << 20) {
                spare = Vec::with_capacity(64 << 10);
            } else {
                spare.clear();
            }
        }
        if outbox.is_closed() {
            wr.shutdown().await;
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
    /// The peer took no byte for this long.
    WriteStalled(Duration),
}

impl DownReason {
    /// A short label for metrics and logs (one of `metrics::DOWN_REASONS`).
    pub fn label(&self) -> &'static str {
        match self {
            DownReason::Closed => "closed",
            DownReason::TickTimeout => "tick_timeout",
            DownReason::Io(_) => "io",
            DownReason::BadFrame(_) => "bad_frame",
            DownReason::Shutdown => "shutdown",
            DownReason::Replaced => "replaced",
            DownReason::WriteQueueOverflow => "write_queue_overflow",
            DownReason::WriteStalled(_) => "write_stalled",
        }
    }
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
            DownReason::WriteQueueOverflow => f.write_str(
                "the peer stopped reading and its send queue overflowed \
                 (--max-outbox, --max-outbox-total): connection closed",
            ),
            DownReason::WriteStalled(d) => write!(
                f,
                "the peer stopped reading: no byte could be written to it for {} s \
                 (net_ticktime): connection closed",
                d.as_secs_f64()
            ),
        }
    }
}

/// What a connection needs from the node that runs it. A trait rather than the node itself
/// so that this file does not import `node` (which imports it): data flows from here into
/// the node only through [`Link::dispatch`].
pub trait Link: Sync {
    /// `net_ticktime`: ticks go out every quarter of it; silence for all of it is a down peer.
    fn ticktime(&self) -> Duration;
    /// The largest frame accepted (`--max-frame`).
    fn max_frame(&self) -> usize;
    /// Decode limits for every frame's control message and payload.
    fn limits(&self) -> &Limits;
    /// This peer's send queue.
    fn outbox(&self) -> &Outbox;
    /// The node took this peer's slot for a newer connection.
    fn replaced(&self) -> bool;
    fn is_shutting_down(&self) -> bool;
    /// Completes when the node shuts down.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
    /// Routes one decoded control message (runs on the reader task: must not block). A
    /// message payload that does not decode where it is delivered is an error.
    fn dispatch(&self, control: message::Control<'_>) -> Result<(), message::FrameError>;
    /// Counts a frame refused by a limit (for the node's metrics).
    fn frame_refused(&self, limit: FrameLimit);
}

/// Serves one established connection until it ends, and says why.
pub async fn run(link: &impl Link, stream: DistStream) -> DownReason {
    match stream {
        DistStream::Tcp(s) => {
            let (rd, wr) = s.into_split();
            run_halves(link, rd, wr).await
        }
        DistStream::Tls(s) => {
            let (rd, wr) = tokio::io::split(*s);
            run_halves(link, rd, wr).await
        }
    }
}

async fn run_halves(
    link: &impl Link,
    rd: impl AsyncRead + Unpin,
    wr: impl WriteHalf,
) -> DownReason {
    let ticktime = link.ticktime();
    let outbox = link.outbox();
    let write = writer(wr, outbox, ticktime / 4, ticktime);
    let read = reader(link, rd, ticktime, link.max_frame());
    tokio::pin!(write);
    tokio::pin!(read);
    let shutdown = link.shutdown();
    tokio::pin!(shutdown);
    let reason = tokio::select! {
        r = &mut read => r,
        w = &mut write => match w {
            Err(WriteEnd::Io(e)) => DownReason::Io(e.to_string()),
            Err(WriteEnd::Stalled(d)) => DownReason::WriteStalled(d),
            Ok(()) if link.replaced() => DownReason::Replaced,
            Ok(()) if link.is_shutting_down() => DownReason::Shutdown,
            Ok(()) => DownReason::WriteQueueOverflow,
        },
        _ = outbox.aborted.notified() => DownReason::WriteQueueOverflow,
        _ = &mut shutdown => DownReason::Shutdown,
    };
    outbox.close();
    if matches!(reason, DownReason::Shutdown) {
        // Let the writer flush what is queued (bounded), then close.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut write).await;
    }
    // Whoever still holds the peer cannot keep its queue alive.
    outbox.discard();
    reason
}

async fn reader(
    link: &impl Link,
    mut rd: impl AsyncRead + Unpin,
    ticktime: Duration,
    max_frame: usize,
) -> DownReason {
    let limits = link.limits().clone();
    let mut buf: Vec<u8> = Vec::with_capacity(256 << 10);
    let mut start = 0usize;
    let mut last_heard = Instant::now();
    let mut check = tokio::time::interval(ticktime / 4);
    check.tick().await;
    let stats = &link.outbox().stats;
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
                link.frame_refused(FrameLimit::MaxFrame);
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
                link.frame_refused(FrameLimit::FrameType);
                return DownReason::BadFrame(format!("frame type {} is not a pass-through frame ('p'); atom cache and fragments are not negotiated", frame[0]));
            }
            match message::decode(&frame[1..], &limits).and_then(|ctl| link.dispatch(ctl)) {
                Ok(()) => {}
                Err(e) => {
                    link.frame_refused(FrameLimit::Term);
                    return DownReason::BadFrame(e.0);
                }
            }
        }
        if frames > 0 {
            stats.frames_in.fetch_add(frames, Ordering::Relaxed);
            if link.outbox().queued() > 0 {
                // Let the writer send this batch's replies before the next read. The
                // reader does not return to the task while the socket has data, so
                // without this a caller that keeps the socket busy gets no reply until it
                // pauses: it and we then take turns instead of working at once.
                WriterTurn::default().await;
            }
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
                // A TLS peer that closes without close_notify (as the BEAM does when it
                // halts) has closed all the same.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return DownReason::Closed,
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

/// Pending once, with the task woken at once: the connection's other branches (its writer)
/// run before the reader goes on. Not `tokio::task::yield_now`: that defers the wake-up
/// until the runtime has polled its I/O driver, an `epoll_wait` more per batch, which at
/// low rates (one cast per wake-up) is one syscall more per cast.
#[derive(Default)]
struct WriterTurn {
    given: bool,
}

impl Future for WriterTurn {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        if self.given {
            return Poll::Ready(());
        }
        self.given = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(n: usize) -> impl Fn(&mut Vec<u8>) -> Result<(), crate::etf::EncodeError> {
        move |b: &mut Vec<u8>| {
            b.resize(b.len() + n, 0);
            Ok(())
        }
    }

    #[test]
    fn queued_bytes_count_until_written_or_dropped() {
        let budget = OutboxBudget::new(1000);
        let a = Outbox::new(500, budget.clone());
        let b = Outbox::new(500, budget.clone());
        a.push(fill(300)).expect("a");
        b.push(fill(300)).expect("b");
        assert_eq!(budget.used(), 600);
        // The writer's batch stays counted until the kernel takes it.
        let mut spare = Vec::new();
        a.take(&mut spare);
        let mut batch = Batch {
            outbox: &a,
            left: spare.len(),
        };
        assert_eq!(a.queued(), 300);
        batch.written(100);
        assert_eq!((a.queued(), budget.used()), (200, 500));
        drop(batch);
        assert_eq!((a.queued(), budget.used()), (0, 300));
        // Past the per-peer cap: the outbox is aborted and its queue freed.
        b.push(fill(300)).expect("b under the cap");
        assert!(matches!(b.push(fill(1)), Err(SendError::Overflow)));
        assert!(b.is_closed());
        assert_eq!(b.queued(), 0);
        assert_eq!(budget.used(), 0);
        assert!(matches!(b.push(fill(1)), Err(SendError::Closed)));
    }

    #[test]
    fn the_global_budget_refuses_before_queueing() {
        let budget = OutboxBudget::new(100);
        let a = Outbox::new(1000, budget.clone());
        a.push(fill(150))
            .expect("the first push may pass the budget");
        assert!(matches!(a.push(fill(1)), Err(SendError::OverBudget)));
        assert_eq!(budget.used(), 150);
        assert!(!a.is_closed(), "the node decides whom to close");
        drop(a);
        assert_eq!(budget.used(), 0, "a dropped outbox gives its bytes back");
    }
}
