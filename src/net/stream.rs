//! A distribution connection's byte stream: plain TCP, or TCP wrapped in TLS
//! ([`super::tls`]). The handshake reads and writes it as one stream; a connection splits
//! it into a reader and a writer ([`super::connection`]), each kind its own way.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;

pub enum DistStream {
    Tcp(TcpStream),
    /// Boxed: the TLS state is large, and the enum is moved around during the handshake.
    Tls(Box<TlsStream<TcpStream>>),
}

impl DistStream {
    /// The TCP socket under either kind.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            DistStream::Tcp(s) => s,
            DistStream::Tls(s) => s.get_ref().0,
        }
    }
}

impl From<TcpStream> for DistStream {
    fn from(s: TcpStream) -> DistStream {
        DistStream::Tcp(s)
    }
}

impl From<TlsStream<TcpStream>> for DistStream {
    fn from(s: TlsStream<TcpStream>) -> DistStream {
        DistStream::Tls(Box::new(s))
    }
}

impl AsyncRead for DistStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DistStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DistStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            DistStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DistStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            DistStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            DistStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
