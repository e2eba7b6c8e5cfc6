//! A raw distribution peer for hostile tests.
//!
//! It finds a node through epmd, performs a real handshake (erl_dist's client side) with a
//! name and cookie of the test's choosing, and then gives the test the socket: any frame,
//! well formed or not, can be sent as bytes, ticks sent or not, and frames read back with a
//! deadline. A test that wants a peer which stops reading simply stops calling
//! [`RawPeer::read_frame`] (the kernel buffers then fill up and the node's writes stall).
//!
//! [`etf`] builds terms as bytes by hand, so a test can send what no well-behaved encoder
//! would produce (e.g. a term nested a million deep) without recursion on the test side.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The distribution flags offered: the OTP 25 mandatory set plus the monitor flags, like the
/// daemon's own set (erl_dist names bit 36 as the OTP 25 digest bit; the real one is bit 26).
fn flags() -> erl_dist::DistributionFlags {
    use erl_dist::DistributionFlags as F;
    let f = F::default() | F::DIST_MONITOR | F::DIST_MONITOR_NAME;
    let bits = (f.bits() & !(1u64 << 36)) | 0x0400_0000;
    let never = F::PUBLISHED | F::DIST_HDR_ATOM_CACHE | F::FRAGMENTS | F::SPAWN | F::ALIAS;
    F::from_bits_truncate(bits & !never.bits())
}

/// One frame read from the node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// A 4-byte zero-length frame.
    Tick,
    /// The bytes after the length (for a pass-through frame: `p`, control, payload).
    Data(Vec<u8>),
}

/// An established distribution connection driven by hand.
pub(crate) struct RawPeer {
    stream: TcpStream,
    /// Our full node name, `alive@127.0.0.1`.
    pub name: String,
    /// The creation we announced; pids of this peer must carry it.
    pub creation: u32,
    /// The node we connected to.
    pub peer_name: String,
    buf: Vec<u8>,
    /// Answer every tick read with a tick, so the node never declares us down while we read.
    pub answer_ticks: bool,
}

impl RawPeer {
    /// Looks `target` (`alive@host`) up in the epmd on `epmd_port` and shakes hands as
    /// `alive@127.0.0.1` with `cookie`.
    pub(crate) fn connect(
        epmd_port: u16,
        target: &str,
        alive: &str,
        cookie: &str,
    ) -> Result<RawPeer, String> {
        let name = format!("{alive}@127.0.0.1");
        let creation = 0x5eed_0000 | (std::process::id() & 0xffff);
        let (target_alive, host) = target
            .split_once('@')
            .ok_or_else(|| format!("{target} is not alive@host"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let local_name = name.clone();
        let cookie = cookie.to_string();
        let host = host.to_string();
        let target_alive = target_alive.to_string();
        let std_stream = rt.block_on(async move {
            use erl_dist::epmd::EpmdClient;
            use erl_dist::handshake::{ClientSideHandshake, HandshakeStatus};
            use erl_dist::node::{Creation, LocalNode};
            use tokio_util::compat::TokioAsyncReadCompatExt;
            let limit = Duration::from_secs(10);
            let run = async {
                let e = tokio::net::TcpStream::connect((host.as_str(), epmd_port))
                    .await
                    .map_err(|e| format!("epmd: {e}"))?;
                let entry = EpmdClient::new(e.compat())
                    .get_node(&target_alive)
                    .await
                    .map_err(|e| format!("epmd lookup: {e}"))?
                    .ok_or_else(|| format!("{target_alive} is not registered in epmd"))?;
                let s = tokio::net::TcpStream::connect((host.as_str(), entry.port))
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_nodelay(true).ok();
                let mut local = LocalNode::new(
                    local_name.parse().map_err(|e| format!("name: {e}"))?,
                    Creation::new(creation),
                );
                local.flags = flags();
                let mut hs = ClientSideHandshake::new(s.compat(), local, &cookie);
                let status = hs
                    .execute_send_name(erl_dist::LOWEST_DISTRIBUTION_PROTOCOL_VERSION)
                    .await
                    .map_err(|e| format!("send_name: {e}"))?;
                if !matches!(
                    status,
                    HandshakeStatus::Ok | HandshakeStatus::OkSimultaneous
                ) {
                    return Err(format!("handshake status {status:?}"));
                }
                let (s, _peer) = hs
                    .execute_rest(true)
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                s.into_inner().into_std().map_err(|e| e.to_string())
            };
            tokio::time::timeout(limit, run)
                .await
                .map_err(|_| "handshake timed out".to_string())?
        })?;
        std_stream
            .set_nonblocking(false)
            .map_err(|e| e.to_string())?;
        Ok(RawPeer {
            stream: std_stream,
            name,
            creation,
            peer_name: target.to_string(),
            buf: Vec::new(),
            answer_ticks: true,
        })
    }

    /// Writes `bytes` as they are (no length prefix added).
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes one frame: a 4-byte length, then `body`.
    pub(crate) fn send_frame(&mut self, body: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        self.stream.write_all(&out)
    }

    /// Writes a pass-through frame (see [`pass_through`]).
    pub(crate) fn send_control(
        &mut self,
        control: &[u8],
        payload: Option<&[u8]>,
    ) -> std::io::Result<()> {
        let mut out = Vec::new();
        pass_through(&mut out, control, payload);
        self.stream.write_all(&out)
    }

    /// Sends a tick (a zero-length frame).
    pub(crate) fn tick(&mut self) -> std::io::Result<()> {
        self.stream.write_all(&[0, 0, 0, 0])
    }

    /// Reads one frame, ticks included (answered if [`RawPeer::answer_ticks`]). `Ok(None)`
    /// when nothing complete arrived before `limit`; an error when the node closed the
    /// connection (`UnexpectedEof`) or the socket failed.
    pub(crate) fn read_any(&mut self, limit: Duration) -> std::io::Result<Option<Frame>> {
        let deadline = Instant::now() + limit;
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if self.buf.len() >= 4 + len {
                    let body = self.buf[4..4 + len].to_vec();
                    self.buf.drain(..4 + len);
                    if len == 0 {
                        if self.answer_ticks {
                            self.tick()?;
                        }
                        return Ok(Some(Frame::Tick));
                    }
                    return Ok(Some(Frame::Data(body)));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(deadline - now))?;
            let mut chunk = [0u8; 64 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "the node closed the connection",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next data frame before `limit`, skipping (and answering) ticks.
    pub(crate) fn read_frame(&mut self, limit: Duration) -> std::io::Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_any(left)? {
                Some(Frame::Data(b)) => return Ok(Some(b)),
                Some(Frame::Tick) => continue,
                None => return Ok(None),
            }
        }
    }

    /// Waits until the node closes the connection (true) or `limit` passes (false).
    /// Frames read meanwhile are discarded.
    pub(crate) fn wait_closed(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_any(left) {
                Ok(_) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// A pid of this peer (NEW_PID_EXT, without the version byte).
    pub(crate) fn pid(&self, id: u32) -> Vec<u8> {
        etf::pid(&self.name, id, 0, self.creation)
    }

    /// A reference of this peer (NEWER_REFERENCE_EXT, without the version byte).
    pub(crate) fn reference(&self, ids: [u32; 3]) -> Vec<u8> {
        etf::reference(&self.name, self.creation, &ids)
    }

    /// The underlying socket, for tests that need more (e.g. shutting one direction).
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// Appends one pass-through frame to `out`: the length, `p`, the control term and the
/// payload if any. Both are complete external terms (starting with 131), as built by
/// [`etf::versioned`] or [`etf::compressed`]. Many frames appended to one buffer and sent
/// with [`RawPeer::send_raw`] arrive together, so the node routes them in one burst.
pub(crate) fn pass_through(out: &mut Vec<u8>, control: &[u8], payload: Option<&[u8]>) {
    let payload = payload.unwrap_or_default();
    out.extend_from_slice(&((1 + control.len() + payload.len()) as u32).to_be_bytes());
    out.push(b'p');
    out.extend_from_slice(control);
    out.extend_from_slice(payload);
}

/// External term format built by hand, as bytes. Every builder returns a term *without*
/// the version byte 131 so that they nest; [`etf::versioned`] or [`etf::compressed`] make
/// a complete external term of one.
pub(crate) mod etf {
    use std::io::Write;

    pub(crate) fn atom(name: &str) -> Vec<u8> {
        let b = name.as_bytes();
        let mut out = Vec::with_capacity(3 + b.len());
        if b.len() < 256 {
            out.push(119);
            out.push(b.len() as u8);
        } else {
            out.push(118);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(b);
        out
    }

    pub(crate) fn int(i: i32) -> Vec<u8> {
        if (0..256).contains(&i) {
            vec![97, i as u8]
        } else {
            let mut out = vec![98];
            out.extend_from_slice(&i.to_be_bytes());
            out
        }
    }

    pub(crate) fn nil() -> Vec<u8> {
        vec![106]
    }

    pub(crate) fn binary(b: &[u8]) -> Vec<u8> {
        let mut out = vec![109];
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
        out
    }

    pub(crate) fn tuple(elems: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        if elems.len() < 256 {
            out.push(104);
            out.push(elems.len() as u8);
        } else {
            out.push(105);
            out.extend_from_slice(&(elems.len() as u32).to_be_bytes());
        }
        for e in elems {
            out.extend_from_slice(e);
        }
        out
    }

    /// A proper list of `elems`.
    pub(crate) fn list(elems: &[Vec<u8>]) -> Vec<u8> {
        if elems.is_empty() {
            return nil();
        }
        let mut out = vec![108];
        out.extend_from_slice(&(elems.len() as u32).to_be_bytes());
        for e in elems {
            out.extend_from_slice(e);
        }
        out.push(106);
        out
    }

    /// NEW_PID_EXT.
    pub(crate) fn pid(node: &str, id: u32, serial: u32, creation: u32) -> Vec<u8> {
        let mut out = vec![88];
        out.extend_from_slice(&atom(node));
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&serial.to_be_bytes());
        out.extend_from_slice(&creation.to_be_bytes());
        out
    }

    /// NEWER_REFERENCE_EXT.
    pub(crate) fn reference(node: &str, creation: u32, ids: &[u32]) -> Vec<u8> {
        let mut out = vec![90];
        out.extend_from_slice(&(ids.len() as u16).to_be_bytes());
        out.extend_from_slice(&atom(node));
        out.extend_from_slice(&creation.to_be_bytes());
        for i in ids {
            out.extend_from_slice(&i.to_be_bytes());
        }
        out
    }

    /// `leaf` wrapped in `depth` 1-tuples: `{{{...leaf...}}}`. Built without recursion.
    pub(crate) fn deep_tuple(depth: usize, leaf: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 * depth + leaf.len());
        for _ in 0..depth {
            out.extend_from_slice(&[104, 1]);
        }
        out.extend_from_slice(leaf);
        out
    }

    /// `leaf` wrapped in `depth` one-element lists: `[[[...leaf...]]]`.
    pub(crate) fn deep_list(depth: usize, leaf: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 * depth + leaf.len());
        for _ in 0..depth {
            out.extend_from_slice(&[108, 0, 0, 0, 1]);
        }
        out.extend_from_slice(leaf);
        out.resize(out.len() + depth, 106);
        out
    }

    /// `131` + `term`.
    pub(crate) fn versioned(term: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + term.len());
        out.push(131);
        out.extend_from_slice(term);
        out
    }

    /// `131, 80, UncompressedSize:32, zlib(term)`: how `term_to_binary(T, [compressed])`
    /// writes it. A term nested a million deep compresses to about 2 KB.
    pub(crate) fn compressed(term: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(term).expect("zlib");
        let z = z.finish().expect("zlib");
        let mut out = Vec::with_capacity(6 + z.len());
        out.push(131);
        out.push(80);
        out.extend_from_slice(&(term.len() as u32).to_be_bytes());
        out.extend_from_slice(&z);
        out
    }
}
