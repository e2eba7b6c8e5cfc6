//! The stream the distribution handshake runs on.
//!
//! Over plain TCP, handshake messages carry a 2-byte length, and that is what erl_dist
//! reads and writes. Over TLS, OTP's `inet_tls_dist` sets the socket to 4-byte lengths
//! from the start, so the same messages arrive as `[Len:32, Message]`. This wrapper lets
//! erl_dist speak its 2-byte framing either way: with `packet4` on, each message it
//! writes goes out with a 4-byte length, and each message read is handed to it with a
//! 2-byte one.
//!
//! Over plain TCP it notes the first byte the peer sent: a TLS record there means the
//! peer runs TLS distribution and we do not, which deserves its own error rather than
//! erl_dist's "unexpected tag" or a timeout.
//!
//! Reads take exactly one message's bytes from the connection (the header, then the
//! body), never more, so whatever the peer sends right after the handshake is still in
//! the connection for its reader. Writes are held until erl_dist flushes, which it does
//! after every message.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::stream::DistStream;

/// The longest handshake message a peer may send (erl_dist refuses longer ones too): a
/// name is at most 255 bytes, so a message is far shorter.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// The first byte a plain-TCP peer sent, kept outside the handshake so that it can still
/// be read after a timeout dropped the handshake.
#[derive(Clone, Default)]
pub struct FirstByte(Arc<OnceLock<u8>>);

impl FirstByte {
    /// Whether the peer opened with a TLS record (0x16 a ClientHello, 0x15 an alert
    /// refusing what we sent): it runs TLS distribution.
    pub fn was_tls(&self) -> bool {
        matches!(self.0.get(), Some(0x15 | 0x16))
    }
}

pub struct HandshakeStream {
    inner: DistStream,
    packet4: bool,
    /// The first byte read from the peer (plain TCP only).
    first_byte: FirstByte,
    /// Reading: the 4-byte length being read, and how much of it is in.
    head: [u8; 4],
    head_have: usize,
    /// The 2-byte length handed to erl_dist, and how much of it it took.
    short: [u8; 2],
    short_given: usize,
    /// Body bytes of the current message still to pass through.
    body_left: usize,
    /// Writing: bytes erl_dist wrote (2-byte framing) not yet sent.
    written: Vec<u8>,
    /// Bytes converted to 4-byte framing, and how much of them went out.
    out: Vec<u8>,
    out_sent: usize,
}

impl HandshakeStream {
    /// `packet4`: the connection is TLS distribution (4-byte handshake lengths).
    /// `first_byte` learns the first byte the peer sends over plain TCP.
    pub fn new(inner: DistStream, packet4: bool, first_byte: &FirstByte) -> HandshakeStream {
        HandshakeStream {
            inner,
            packet4,
            first_byte: first_byte.clone(),
            head: [0; 4],
            head_have: 0,
            short: [0; 2],
            short_given: 2,
            body_left: 0,
            written: Vec::new(),
            out: Vec::new(),
            out_sent: 0,
        }
    }

    pub fn into_inner(self) -> DistStream {
        self.inner
    }

    /// Moves every complete message of `written` to `out` with a 4-byte length.
    fn convert(&mut self) {
        let mut at = 0;
        while self.written.len() - at >= 2 {
            let len = u16::from_be_bytes([self.written[at], self.written[at + 1]]) as usize;
            if self.written.len() - at - 2 < len {
                break;
            }
            self.out.extend_from_slice(&(len as u32).to_be_bytes());
            self.out
                .extend_from_slice(&self.written[at + 2..at + 2 + len]);
            at += 2 + len;
        }
        self.written.drain(..at);
    }
}

impl AsyncRead for HandshakeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.packet4 {
            let before = buf.filled().len();
            ready!(Pin::new(&mut me.inner).poll_read(cx, buf))?;
            if let Some(&b) = buf.filled().get(before) {
                let _ = me.first_byte.0.set(b);
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            if me.short_given < 2 {
                let n = (2 - me.short_given).min(buf.remaining());
                buf.put_slice(&me.short[me.short_given..me.short_given + n]);
                me.short_given += n;
                return Poll::Ready(Ok(()));
            }
            if me.body_left > 0 {
                let want = me.body_left.min(buf.remaining()).min(4096);
                let mut tmp = [0u8; 4096];
                let mut rb = ReadBuf::new(&mut tmp[..want]);
                ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(())); // end of stream mid-message: erl_dist sees EOF
                }
                buf.put_slice(rb.filled());
                me.body_left -= n;
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut me.head[me.head_have..]);
            ready!(Pin::new(&mut me.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            me.head_have += n;
            if me.head_have == 4 {
                me.head_have = 0;
                let len = u32::from_be_bytes(me.head) as usize;
                if len > MAX_MESSAGE {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("handshake message of {len} bytes (at most {MAX_MESSAGE})"),
                    )));
                }
                me.short = (len as u16).to_be_bytes();
                me.short_given = 0;
                me.body_left = len;
            }
        }
    }
}

impl AsyncWrite for HandshakeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if !me.packet4 {
            return Pin::new(&mut me.inner).poll_write(cx, buf);
        }
        if me.written.len() + buf.len() > 2 + MAX_MESSAGE {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "handshake message too long",
            )));
        }
        me.written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.packet4 {
            me.convert();
            while me.out_sent < me.out.len() {
                let n = ready!(Pin::new(&mut me.inner).poll_write(cx, &me.out[me.out_sent..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                me.out_sent += n;
            }
            me.out.clear();
            me.out_sent = 0;
        }
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn four_byte_lengths_on_the_wire_two_byte_lengths_for_erl_dist() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = l.accept().await.expect("accept");
        let mut hs = HandshakeStream::new(DistStream::Tcp(client), true, &FirstByte::default());
        // erl_dist writes [Len:16, Msg]; the wire carries [Len:32, Msg].
        hs.write_all(&[0, 3, b'a', b'b', b'c'])
            .await
            .expect("write");
        hs.flush().await.expect("flush");
        let mut wire = [0u8; 7];
        server.read_exact(&mut wire).await.expect("read");
        assert_eq!(wire, [0, 0, 0, 3, b'a', b'b', b'c']);
        // The peer's [Len:32, Msg] reads as [Len:16, Msg]; what follows stays unread.
        server
            .write_all(&[0, 0, 0, 2, b'o', b'k', 9, 9])
            .await
            .expect("write");
        let mut got = [0u8; 4];
        hs.read_exact(&mut got).await.expect("read");
        assert_eq!(got, [0, 2, b'o', b'k']);
        let mut rest = [0u8; 2];
        let mut inner = hs.into_inner();
        inner.read_exact(&mut rest).await.expect("rest");
        assert_eq!(rest, [9, 9]);
        // An oversized length is refused, not allocated.
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = l.accept().await.expect("accept");
        let mut hs = HandshakeStream::new(DistStream::Tcp(client), true, &FirstByte::default());
        server.write_all(&[0, 1, 0, 0]).await.expect("write");
        let mut b = [0u8; 8];
        let e = hs.read(&mut b).await.expect_err("too long");
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
