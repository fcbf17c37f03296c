//! The client socket as hyper sees it. Reads pass through the hygiene
//! [`Scanner`] before hyper parses them, and the socket is shared (an `Arc`)
//! so that once hyper gives up on a connection (a rejected head, a head that
//! arrived too slowly) the connection task can still answer 400/431/408
//! itself, as HAProxy does, instead of just closing.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
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
}

impl ClientState {
    pub fn rejection(&self) -> Option<Reject> {
        *self.rejected.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug)]
pub(crate) struct ClientIo {
    stream: Arc<TcpStream>,
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

impl ClientIo {
    pub fn new(stream: Arc<TcpStream>, max_head: usize, client_timeout: Duration) -> Self {
        ClientIo {
            stream,
            scanner: Scanner::new(max_head),
            pending: None,
            state: Default::default(),
            client_timeout,
            read_stall: None,
            write_stall: None,
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

impl AsyncRead for ClientIo {
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
        loop {
            if this.stream.poll_read_ready(cx)?.is_pending() {
                if this.scanner.in_body() && stalled(&mut this.read_stall, this.client_timeout, cx)
                {
                    this.state.timed_out.store(true, Relaxed);
                    return Poll::Ready(Err(timed_out()));
                }
                return Poll::Pending;
            }
            this.read_stall = None;
            let before = buf.filled().len();
            match this.stream.try_read_buf(buf) {
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(n) => {
                    if buf.remaining() > 0 {
                        crate::readiness::drained(&this.stream);
                    }
                    let res = this.scanner.feed(&buf.filled()[before..before + n]);
                    this.state.mid_head.store(this.scanner.mid_head(), Relaxed);
                    this.state.in_body.store(this.scanner.in_body(), Relaxed);
                    if let Err((good, r)) = res {
                        buf.set_filled(before + good);
                        if good == 0 {
                            this.refuse(r);
                        } else {
                            this.pending = Some(r);
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl ClientIo {
    /// Ready to write, or Pending (with the stall timer running), or the
    /// client has not taken data for `timeout client`.
    fn write_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream.poll_write_ready(cx) {
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

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            ready!(this.write_ready(cx))?;
            match this.stream.try_write(data) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            ready!(this.write_ready(cx))?;
            match this.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // After a refusal the connection task still has an answer to write.
        if self.is_refused() {
            return Poll::Ready(Ok(()));
        }
        // Half-close our side so the client sees the end of the response.
        let r = socket2::SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
        Poll::Ready(match r {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        })
    }
}
