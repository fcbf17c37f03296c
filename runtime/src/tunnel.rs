//! WebSocket tunnels: after a server's 101, [`Tunnel::run`] splices the
//! client's socket (hyper's `Upgraded`) and the server's both ways until
//! both ends have closed, either side fails, or neither sends a byte for the
//! idle limit (`timeout tunnel`). It finishes the request's [`Exchange`]
//! once, at the end, with the tunnel's bytes and HAProxy's termination
//! state, so the request is logged when the tunnel ends. No HTTP here.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::exchange::{Exchange, Phase, Who};

/// A tunnel waiting for the client socket: what the proxy learnt from the
/// server's 101.
#[derive(Debug)]
pub(crate) struct Tunnel {
    /// Resolves to the client socket once hyper has written the 101.
    pub upgrade: hyper::upgrade::OnUpgrade,
    pub server: TcpStream,
    /// What the server sent right behind its 101 head.
    pub early: BytesMut,
    /// The longest silence both ways.
    pub idle: Duration,
    pub ex: Exchange,
}

impl Tunnel {
    pub async fn run(self) {
        let Tunnel {
            upgrade,
            server,
            early,
            idle,
            mut ex,
        } = self;
        let client = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                // The client left before the 101 was written.
                tracing::debug!(client = %ex.client, cause = %e, "WebSocket upgrade not completed");
                ex.finish(false);
                return;
            }
        };
        let done = splice(client, server, &early, idle).await;
        ex.bytes_in += done.up;
        ex.add_bytes_out(done.down);
        // HAProxy's states for a tunnel: `--` when both ends closed, `cD`
        // when `timeout tunnel` struck, `CD`/`SD` when a side failed.
        let who = match done.end {
            End::Closed => None,
            End::Idle => Some(Who::ClientTimeout),
            End::Client => Some(Who::Client),
            End::Server => Some(Who::Server),
        };
        if let Some(who) = who {
            ex.termination.who = who;
            ex.termination.phase = Phase::Data;
        }
        ex.finish(true);
    }
}

/// How a splice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Both sides closed their direction.
    Closed,
    /// Neither side sent a byte for the idle limit.
    Idle,
    /// The client's socket failed (reset, TLS error).
    Client,
    /// The server's socket failed.
    Server,
}

#[derive(Debug)]
pub(crate) struct Spliced {
    /// Bytes from the client to the server.
    pub up: u64,
    /// Bytes from the server to the client, `early` included.
    pub down: u64,
    pub end: End,
}

/// Copies both ways until both directions have ended (a side's end of
/// stream becomes a shutdown of the other's write side), a side fails, or
/// nothing moved for `idle`. `early` goes to the client first.
pub(crate) async fn splice<C, S>(client: C, server: S, early: &[u8], idle: Duration) -> Spliced
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let base = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut c = Side::new(client, &last, base);
    let mut s = Side::new(server, &last, base);
    let end = tokio::select! {
        r = async {
            c.write_all(early).await?;
            tokio::io::copy_bidirectional(&mut c, &mut s).await
        } => match r {
            Ok(_) => End::Closed,
            Err(e) => {
                tracing::debug!(cause = %e, "tunnel ended in an error");
                if s.failed && !c.failed { End::Server } else { End::Client }
            }
        },
        () = idle_for(&last, base, idle) => End::Idle,
    };
    Spliced {
        up: c.read,
        down: s.read + early.len() as u64,
        end,
    }
}

/// Returns once no byte moved for `idle` (`last` is the last move, in ms
/// after `base`).
async fn idle_for(last: &AtomicU64, base: Instant, idle: Duration) {
    loop {
        let deadline = base + Duration::from_millis(last.load(Relaxed)) + idle;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// One end of the splice: counts what it reads, notes activity and
/// whether its own IO failed (to tell `CD` from `SD`).
struct Side<T> {
    io: T,
    last: Arc<AtomicU64>,
    base: Instant,
    read: u64,
    failed: bool,
}

impl<T> Side<T> {
    fn new(io: T, last: &Arc<AtomicU64>, base: Instant) -> Self {
        Side {
            io,
            last: last.clone(),
            base,
            read: 0,
            failed: false,
        }
    }

    fn moved(&self) {
        self.last
            .store(self.base.elapsed().as_millis() as u64, Relaxed);
    }

    fn note<R>(&mut self, r: &Poll<io::Result<R>>) {
        if let Poll::Ready(Err(_)) = r {
            self.failed = true;
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Side<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        this.note(&r);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            this.read += n;
            this.moved();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Side<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, data);
        this.note(&r);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.moved();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.note(&r);
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_shutdown(cx);
        this.note(&r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, duplex};

    #[tokio::test]
    async fn bytes_flow_both_ways_and_both_closes_end_it_normally() {
        let (client, mut c_peer) = duplex(1024);
        let (server, mut s_peer) = duplex(1024);
        let run =
            tokio::spawn(
                async move { splice(client, server, b"early", Duration::from_secs(5)).await },
            );
        let mut buf = [0u8; 5];
        c_peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"early");
        c_peer.write_all(b"ping").await.unwrap();
        let mut p = [0u8; 4];
        s_peer.read_exact(&mut p).await.unwrap();
        assert_eq!(&p, b"ping");
        s_peer.write_all(b"pong!").await.unwrap();
        c_peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong!");
        c_peer.shutdown().await.unwrap();
        // The client's end reaches the server as an end of stream.
        assert_eq!(s_peer.read(&mut p).await.unwrap(), 0);
        s_peer.shutdown().await.unwrap();
        let done = run.await.unwrap();
        assert_eq!((done.up, done.down, done.end), (4, 10, End::Closed));
    }

    /// Paused time: the idle limit passes at once, and not before.
    #[tokio::test(start_paused = true)]
    async fn a_tunnel_silent_both_ways_ends_at_the_idle_limit() {
        let (client, mut c_peer) = duplex(1024);
        let (server, _s_peer) = duplex(1024);
        let start = Instant::now();
        let run =
            tokio::spawn(
                async move { splice(client, server, b"", Duration::from_millis(300)).await },
            );
        tokio::time::sleep(Duration::from_millis(200)).await;
        c_peer.write_all(b"x").await.unwrap();
        let done = run.await.unwrap();
        assert_eq!(done.end, End::Idle);
        // 200 ms, a byte, then 300 ms of silence.
        assert_eq!(start.elapsed().as_millis() / 100, 5);
    }
}
