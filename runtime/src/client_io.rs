//! The client socket as hyper sees it. Reads pass through the hygiene
//! [`Scanner`] before hyper parses them, and the socket is shared (an `Arc`)
//! so that once hyper gives up on a connection (a rejected head, a head that
//! arrived too slowly) the connection task can still answer 400/431/408
//! itself, as HAProxy does, instead of just closing.
//!
//! After a WebSocket upgrade request the scanner holds: the bytes behind it
//! wait, unread by hyper, until the answer is written. A 101 (the proxy set
//! [`ClientState::tunnel`]) turns the socket raw for the tunnel; any other
//! answer resumes scanning them as HTTP, so a refused upgrade cannot carry
//! a smuggled request past the scanner.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use std::future::Future;
use tokio::time::Sleep;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::hygiene::{Reject, Scanner};

/// What the connection task and the proxy learn from the client socket.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    /// Set once the scanner refused a request; hyper then sees the end of
    /// the stream.
    pub rejected: std::sync::Mutex<Option<Reject>>,
    /// True while a head is half-received.
    pub mid_head: AtomicBool,
    /// True while a request body is being received (the scanner's view).
    pub in_body: AtomicBool,
    /// The client stalled mid-body past `timeout client`.
    pub timed_out: AtomicBool,
    /// The proxy already answered the refused request itself (its body
    /// failed while being forwarded): the connection task must not answer
    /// a second time.
    pub answered: AtomicBool,
    /// The proxy is answering a held WebSocket upgrade with a 101: once it
    /// is written, the socket carries the tunnel's bytes unscanned.
    pub tunnel: AtomicBool,
    /// hyper was shown the end of the stream to make it let go of an idle
    /// keep-alive connection (see [`ClientIo::parking`]); the socket stays
    /// open for the next request.
    pub parked: AtomicBool,
    /// The client has sent bytes. Until it has, the connection waits for
    /// its first request, which a stop lets it send (as HAProxy does).
    pub heard: AtomicBool,
}

impl ClientState {
    pub fn rejection(&self) -> Option<Reject> {
        *self.rejected.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
pub(crate) struct ClientIo<S> {
    stream: Arc<S>,
    scanner: Scanner,
    /// A refusal found in the last read, reported on the next one (the good
    /// bytes before it were handed to hyper first).
    pending: Option<Reject>,
    /// Shared with the connection task and the proxy.
    pub state: Arc<ClientState>,
    /// `timeout client`: how long the client may stall while we wait for its
    /// request body or for it to take our response. Idle time between
    /// requests is hyper's header-read timeout instead.
    client_timeout: Duration,
    read_stall: Option<Pin<Box<Sleep>>>,
    write_stall: Option<Pin<Box<Sleep>>>,
    /// Bytes read behind a WebSocket upgrade request, not yet handed on.
    held: bytes::BytesMut,
    /// Between an upgrade request and its answer: reads wait (the waker of
    /// the read that waits is kept here).
    holding: Option<Option<std::task::Waker>>,
    /// A tunnel: bytes pass unscanned and without `timeout client` (the
    /// tunnel has its own idle timer).
    raw: bool,
    /// The process's open client connections, when idle keep-alive
    /// connections may be parked (see [`ClientIo::parking`]).
    park: Option<Arc<AtomicU64>>,
}

/// Open client connections above which idle keep-alive connections are
/// parked. Parking costs a new hyper connection for every request that
/// follows an idle wait: about 2.5 µs of CPU, 8% of a keep-alive request
/// (`bench/profile.sh --step ctx`). Below this, keeping every connection's
/// buffers costs at most 128 × 16 KiB = 2 MiB. The environment variable
/// `VAKT_PARK_IDLE_ABOVE` overrides it (0: park always).
const PARK_IDLE_ABOVE: u64 = 128;

fn park_idle_above() -> u64 {
    static ABOVE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ABOVE.get_or_init(|| match std::env::var("VAKT_PARK_IDLE_ABOVE") {
        Err(_) => PARK_IDLE_ABOVE,
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                "VAKT_PARK_IDLE_ABOVE={v:?} is not a whole number of connections; \
                 using {PARK_IDLE_ABOVE} (0 parks every idle connection)"
            );
            PARK_IDLE_ABOVE
        }),
    })
}

/// Polls a stall timer, arming it on first use. Ready = the client stalled
/// for too long.
fn stalled(timer: &mut Option<Pin<Box<Sleep>>>, limit: Duration, cx: &mut Context<'_>) -> bool {
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    t.as_mut().poll(cx).is_ready()
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "client timeout")
}

impl<S: Socket> ClientIo<S> {
    /// One hyper connection's view of the client socket; `state` lives as
    /// long as the client connection, across parkings.
    pub fn new(
        stream: Arc<S>,
        max_head: usize,
        client_timeout: Duration,
        state: Arc<ClientState>,
    ) -> Self {
        ClientIo {
            stream,
            scanner: Scanner::new(max_head),
            pending: None,
            state,
            client_timeout,
            read_stall: None,
            write_stall: None,
            held: bytes::BytesMut::new(),
            holding: None,
            raw: false,
            park: None,
        }
    }

    /// Parks an idle keep-alive connection: when hyper, after a whole
    /// exchange, waits for the next request and the client has sent nothing
    /// more, it gets the end of the stream instead of waiting. An idle
    /// hyper connection is then done, and closes without an error; its
    /// buffers (16 KiB) and this scanner are freed, and the connection task
    /// waits for the socket itself ([`ClientState::parked`] tells it to).
    /// The next request gets a new hyper connection. hyper reads only after
    /// its response is flushed, so nothing is cut short. Only while more
    /// than [`PARK_IDLE_ABOVE`] client connections (`open`) are open.
    pub fn parking(mut self, open: Arc<AtomicU64>) -> Self {
        self.park = Some(open);
        self
    }

    fn may_park(&self) -> bool {
        self.park
            .as_ref()
            .is_some_and(|open| open.load(Relaxed) > park_idle_above())
            && self.scanner.between_requests()
    }

    /// Runs the scanner over `buf[before..]`, the bytes just read: cuts them
    /// at a refusal (reported on the next read when good bytes come first)
    /// or at the end of an upgrade request's head (the rest is held).
    fn scan(&mut self, buf: &mut ReadBuf<'_>, before: usize) {
        let res = self.scanner.feed(&buf.filled()[before..]);
        self.state.mid_head.store(self.scanner.mid_head(), Relaxed);
        self.state.in_body.store(self.scanner.in_body(), Relaxed);
        match res {
            Err((good, r)) => {
                buf.set_filled(before + good);
                if good == 0 {
                    self.refuse(r);
                } else {
                    self.pending = Some(r);
                }
            }
            Ok(()) => {
                if let Some(at) = self.scanner.take_hold() {
                    let rest = &buf.filled()[before + at..];
                    // Held bytes go in front of any held before (a refused
                    // upgrade's bytes may hold another upgrade request).
                    let mut held = bytes::BytesMut::from(rest);
                    held.extend_from_slice(&self.held);
                    self.held = held;
                    buf.set_filled(before + at);
                    self.holding = Some(None);
                }
            }
        }
    }

    /// The answer to a held upgrade request is being written: a tunnel if
    /// the proxy said so, else HTTP again. The waiting read is woken.
    fn decide(&mut self) {
        if let Some(waker) = self.holding.take() {
            if self.state.tunnel.load(Relaxed) {
                self.raw = true;
            } else {
                self.scanner.resume();
            }
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Hands on held bytes: raw in a tunnel, through the scanner otherwise.
    fn give_held(&mut self, buf: &mut ReadBuf<'_>) {
        let n = self.held.len().min(buf.remaining());
        let chunk = self.held.split_to(n);
        let before = buf.filled().len();
        buf.put_slice(&chunk);
        if !self.raw {
            self.scan(buf, before);
        }
    }

    /// Records a refusal. hyper then sees the end of the stream: it finishes
    /// any request already read (with `half_close`) and returns, and the
    /// connection task answers the refused one.
    fn refuse(&mut self, r: Reject) {
        *self
            .state
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(r);
    }

    fn is_refused(&self) -> bool {
        self.state.rejection().is_some()
    }
}

impl<S: Socket> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(r) = this.pending.take() {
            this.refuse(r);
        }
        if this.is_refused() {
            return Poll::Ready(Ok(()));
        }
        if let Some(waker) = &mut this.holding {
            *waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if !this.held.is_empty() {
            this.give_held(buf);
            return Poll::Ready(Ok(()));
        }
        if this.raw {
            return this.stream.poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match this.stream.poll_read(cx, buf) {
            Poll::Pending => {
                if this.scanner.in_body() && stalled(&mut this.read_stall, this.client_timeout, cx)
                {
                    this.state.timed_out.store(true, Relaxed);
                    return Poll::Ready(Err(timed_out()));
                }
                if this.may_park() {
                    this.state.parked.store(true, Relaxed);
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                this.read_stall = None;
                if buf.filled().len() == before {
                    return Poll::Ready(Ok(()));
                }
                if !this.state.heard.load(Relaxed) {
                    this.state.heard.store(true, Relaxed);
                }
                this.scan(buf, before);
                if buf.filled().len() == before && this.holding.is_some() {
                    // Nothing before the hold to hand on: wait for the
                    // answer (an empty read would look like the end).
                    this.holding = Some(Some(cx.waker().clone()));
                    return Poll::Pending;
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<S: Socket> ClientIo<S> {
    /// A write's outcome, or the client's stall past `timeout client`.
    fn stall_checked<T>(
        &mut self,
        r: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        if self.raw {
            return r;
        }
        match r {
            Poll::Ready(r) => {
                self.write_stall = None;
                Poll::Ready(r)
            }
            Poll::Pending if stalled(&mut self.write_stall, self.client_timeout, cx) => {
                Poll::Ready(Err(timed_out()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Socket> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.decide();
        let r = this.stream.poll_write(cx, data);
        this.stall_checked(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.decide();
        let r = this.stream.poll_write_vectored(cx, bufs);
        this.stall_checked(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // After a refusal the connection task still has an answer to write;
        // a parked connection waits for its next request.
        if self.is_refused() || self.state.parked.load(Relaxed) {
            return Poll::Ready(Ok(()));
        }
        // Half-close our side so the client sees the end of the response.
        self.stream.poll_shutdown(cx)
    }
}

/// The client's socket as [`ClientIo`] and the connection task share it:
/// plain TCP (read straight from the socket, with the readiness shortcut),
/// or TLS (the session behind a mutex that is never held across an await).
pub(crate) trait Socket: Send + Sync + 'static {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>>;
    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ends our direction (a FIN; for TLS, close_notify first).
    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when the client's socket has bytes (or its end) to read.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Socket for TcpStream {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            match self.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 && buf.remaining() > 0 {
                        crate::readiness::drained(self);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_write_ready(cx))?;
            match self.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_write_ready(cx))?;
            match self.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(
            match socket2::SockRef::from(self).shutdown(std::net::Shutdown::Write) {
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                r => r,
            },
        )
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

/// A TLS session on a client socket.
#[derive(Debug)]
pub(crate) struct TlsSocket {
    session: std::sync::Mutex<tokio_rustls::server::TlsStream<TcpStream>>,
}

impl TlsSocket {
    pub fn new(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        TlsSocket {
            session: std::sync::Mutex::new(s),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut tokio_rustls::server::TlsStream<TcpStream>>) -> T,
    ) -> T {
        let mut s = self.session.lock().unwrap_or_else(|e| e.into_inner());
        f(Pin::new(&mut *s))
    }
}

impl Socket for TlsSocket {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_read(cx, buf))
    }

    fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write(cx, data))
    }

    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.with(|s| s.poll_write_vectored(cx, bufs))
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.poll_shutdown(cx))
    }

    /// The TCP socket's readiness: hyper parks a connection only after a
    /// read found no plaintext left in the session.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|s| s.get_ref().0.poll_read_ready(cx))
    }
}
