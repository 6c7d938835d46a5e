//! The gateway's listener, whose TCP connections close lingeringly: once the server is done
//! with a connection it half-closes it and reads (and discards) what the client still sends,
//! until the client closes or [`LINGER`] passes. Closing a socket with unread data makes the
//! kernel answer with a reset, which can destroy the last thing the server wrote before the
//! client reads it: the 1009 close frame after a refused 1 MB frame, or a 413 sent before the
//! request body was read.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;

/// How long a closed connection keeps draining what its client still sends.
const LINGER: Duration = Duration::from_secs(2);
/// Read size while draining: small, since thousands of sockets may close at once.
const DRAIN_CHUNK: usize = 2048;

/// A [`TcpListener`] whose connections close lingeringly.
pub(crate) struct LingeringListener(pub(crate) TcpListener);

impl Listener for LingeringListener {
    type Io = Lingering;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        (Lingering(Some(stream)), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The client's address, as handlers extract it with `ConnectInfo<Peer>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

impl Connected<IncomingStream<'_, LingeringListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, LingeringListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A TCP stream that drains on drop. The stream is only taken out by `Drop`.
pub(crate) struct Lingering(Option<TcpStream>);

impl Lingering {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.0.as_mut().expect("the stream is only taken on drop"))
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        // Outside a runtime (its shutdown) the stream simply closes.
        if let (Some(stream), Ok(runtime)) = (self.0.take(), Handle::try_current()) {
            runtime.spawn(drain(stream));
        }
    }
}

/// Half-closes `stream` (the client sees the end of what the server wrote), then discards
/// what the client still sends until it closes, for [`LINGER`] at most.
async fn drain(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut chunk = [0u8; DRAIN_CHUNK];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut chunk).await, Ok(read) if read > 0) {}
    })
    .await;
}
