//! Connections to servers: dialing with `timeout connect`, the HTTP/1.1
//! handshake, and a small LIFO pool of idle keep-alive connections per
//! server. A connection goes back to the pool only once its response body has
//! been read to the end (see `proxy::Exchange`).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::RequestBody;

/// Idle connections kept per server. Past it, finished connections close.
const MAX_IDLE: usize = 256;

pub(crate) type Sender = SendRequest<RequestBody>;

#[derive(Debug)]
pub struct IdlePool {
    conns: Mutex<Vec<Sender>>,
}

impl IdlePool {
    pub fn new() -> Self {
        IdlePool {
            conns: Mutex::new(Vec::new()),
        }
    }

    /// The most recently used live connection, if any. Closed ones (the
    /// server hung up while idle) are dropped on the way. A connection may
    /// still be finishing its last response; the caller awaits `ready()`.
    pub(crate) fn take(&self) -> Option<Sender> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(c) = conns.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    pub(crate) fn put(&self, c: Sender) {
        if c.is_closed() {
            return;
        }
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() < MAX_IDLE {
            conns.push(c);
        }
    }
}

impl Default for IdlePool {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection to {0} timed out")]
    Timeout(SocketAddr),
    #[error("cannot connect to {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("HTTP handshake with {0} failed: {1}")]
    Handshake(SocketAddr, hyper::Error),
    #[error("{0} closed the connection without answering: {1}")]
    Lost(SocketAddr, hyper::Error),
}

/// Dials a server and spawns the task that drives the connection.
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Sender, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout(addr)),
        Ok(Err(e)) => return Err(ConnectError::Io(addr, e)),
        Ok(Ok(s)) => s,
    };
    // Small request/response writes must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .preserve_header_case(false)
        .handshake(TokioIo::new(ServerIo(stream)))
        .await
        .map_err(|e| ConnectError::Handshake(addr, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(server = %addr, cause = %e, "server connection ended");
        }
    });
    Ok(sender)
}

/// The server socket under hyper's client, with the same short-read
/// readiness shortcut as the client side (see `client_io::drained`).
struct ServerIo(TcpStream);

impl tokio::io::AsyncRead for ServerIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = r
            && buf.filled().len() > before
            && buf.remaining() > 0
        {
            crate::client_io::drained(&self.0);
        }
        r
    }
}

impl tokio::io::AsyncWrite for ServerIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
