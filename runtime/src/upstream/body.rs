//! A server's response body: [`UpstreamBody`] decodes the framing (length,
//! chunked with [`crate::chunked`]'s grammar, until close) while hyper's
//! server side writes it to the client, cuts a server silent for `timeout
//! server`, and hands the connection back to its idle pool at the end.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method};
use http_body::{Body, Frame, SizeHint};

use super::conn::{READ_CHUNK, SendError, ServerConn, poll_fill};
use super::idle::IdlePool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes (HTTP/1.0 style); the connection is not reused.
    Close,
}

/// RFC 9112 §6.3, for responses.
pub(super) fn framing(method: &Method, code: u16, h: &HeaderMap) -> Result<Framing, SendError> {
    if method == Method::HEAD || code == 204 || code == 304 {
        return Ok(Framing::Empty);
    }
    if let Some(te) = h.get(TRANSFER_ENCODING) {
        let chunked = te
            .to_str()
            .ok()
            .and_then(|s| s.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut lens = h.get_all(CONTENT_LENGTH).iter();
    if let Some(v) = lens.next() {
        let n: u64 = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(SendError::Invalid("bad Content-Length"))?;
        if lens.any(|o| o != v) {
            return Err(SendError::Invalid("conflicting Content-Length"));
        }
        return Ok(if n == 0 {
            Framing::Empty
        } else {
            Framing::Length(n)
        });
    }
    Ok(Framing::Close)
}

pub(super) fn keeps_alive(version: u8, h: &HeaderMap) -> bool {
    let has = |token: &str| {
        h.get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if version == 1 {
        !has("close")
    } else {
        has("keep-alive")
    }
}

#[derive(Debug)]
enum Decode {
    Length(u64),
    /// Reading a chunk-size line.
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf,
    Trailers,
    UntilClose,
    Done,
}

/// A server's response body, decoded from its framing. At its end the
/// connection goes back to the server's idle pool when it may be reused.
/// The server must send something every `timeout` (`timeout server`), or
/// the body ends in an error (HAProxy's `sD`).
#[derive(Debug)]
pub struct UpstreamBody {
    conn: Option<ServerConn>,
    decode: Decode,
    /// Where the connection goes back when it can be reused.
    pool: Option<Arc<IdlePool>>,
    timeout: Duration,
    /// Armed while a read waits; reset, not reallocated, on the next wait.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
    /// Trailer bytes and fields so far.
    trailers: (usize, usize),
}

/// The error a body read ends in when the server went silent.
pub fn is_server_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

impl UpstreamBody {
    pub(super) fn new(
        conn: ServerConn,
        framing: Framing,
        pool: Option<Arc<IdlePool>>,
        timeout: Duration,
    ) -> Self {
        let decode = match framing {
            Framing::Empty => Decode::Done,
            Framing::Length(n) => Decode::Length(n),
            Framing::Chunked => Decode::ChunkSize,
            Framing::Close => Decode::UntilClose,
        };
        let mut b = UpstreamBody {
            conn: Some(conn),
            decode,
            pool,
            timeout,
            stall: None,
            armed: false,
            trailers: (0, 0),
        };
        b.finish_if_done();
        b
    }

    /// The body of a 101: no bytes, the connection kept for the tunnel.
    pub(super) fn switched(conn: ServerConn) -> Self {
        UpstreamBody {
            conn: Some(conn),
            decode: Decode::Done,
            pool: None,
            timeout: Duration::ZERO,
            stall: None,
            armed: false,
            trailers: (0, 0),
        }
    }

    /// After a 101: the server's socket and the bytes it sent behind the
    /// head (the tunnel's first bytes). `None` for any other body.
    pub fn into_tunnel(mut self) -> Option<(tokio::net::TcpStream, bytes::BytesMut)> {
        self.conn.take().map(|c| (c.stream, c.buf))
    }

    fn finish_if_done(&mut self) {
        if matches!(self.decode, Decode::Done)
            && let Some(conn) = self.conn.take()
            && let Some(idle) = self.pool.take()
            && conn.buf.is_empty()
        {
            let mut conn = conn;
            conn.idle_since = tokio::time::Instant::now();
            idle.put(conn);
        }
    }

    /// Reads more from the server, with `timeout server` as the longest
    /// silence.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        conn.buf.reserve(READ_CHUNK);
        match poll_fill(&conn.stream, &mut conn.buf, cx) {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let deadline = tokio::time::Instant::now() + self.timeout;
                let timer = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !self.armed {
                    timer.as_mut().reset(deadline);
                    self.armed = true;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    self.armed = false;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the server was silent for `timeout server`",
                    )));
                }
                Poll::Pending
            }
        }
    }

    /// Reads the next line (chunk size, chunk end or trailer) out of the
    /// buffer, at most `max` bytes long.
    fn poll_line(&mut self, max: usize, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            };
            if let Some(i) = conn.buf.iter().position(|&b| b == b'\n') {
                let line = conn.buf.split_to(i + 1).freeze();
                return Poll::Ready(Ok(line));
            }
            if conn.buf.len() > max {
                return Poll::Ready(Err(invalid("chunked framing line too long")));
            }
            if ready!(self.poll_more(cx))? == 0 {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Up to `max` bytes of body data (at least one, or EOF as 0 bytes).
    fn poll_data(&mut self, max: u64, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        let Some(conn) = self.conn.as_ref() else {
            return Poll::Ready(Ok(Bytes::new()));
        };
        if conn.buf.is_empty() && ready!(self.poll_more(cx))? == 0 {
            return Poll::Ready(Ok(Bytes::new()));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(Bytes::new()));
        };
        let n = (conn.buf.len() as u64).min(max) as usize;
        Poll::Ready(Ok(conn.buf.split_to(n).freeze()))
    }
}

impl UpstreamBody {
    /// The next bytes of a run of `left` bytes (a whole body by length, or
    /// one chunk) and what is left of it; the server closing first is an
    /// error.
    fn poll_run(&mut self, left: u64, cx: &mut Context<'_>) -> Poll<io::Result<(Bytes, u64)>> {
        let d = ready!(self.poll_data(left, cx))?;
        if d.is_empty() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the body early",
            )));
        }
        let rest = left - d.len() as u64;
        Poll::Ready(Ok((d, rest)))
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        loop {
            match this.decode {
                Decode::Done => return Poll::Ready(None),
                Decode::Length(left) => {
                    let (d, left) = ready!(this.poll_run(left, cx))?;
                    this.decode = if left == 0 {
                        Decode::Done
                    } else {
                        Decode::Length(left)
                    };
                    this.finish_if_done();
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Decode::UntilClose => {
                    let d = ready!(this.poll_data(u64::MAX, cx))?;
                    if d.is_empty() {
                        this.decode = Decode::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Decode::ChunkSize => {
                    let line = ready!(this.poll_line(crate::chunked::MAX_LINE, cx))?;
                    let (n, _) = crate::chunked::size_line(&line).map_err(invalid)?;
                    this.decode = if n == 0 {
                        Decode::Trailers
                    } else {
                        Decode::ChunkData(n)
                    };
                }
                Decode::ChunkData(left) => {
                    let (d, left) = ready!(this.poll_run(left, cx))?;
                    this.decode = if left == 0 {
                        Decode::ChunkCrlf
                    } else {
                        Decode::ChunkData(left)
                    };
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Decode::ChunkCrlf => {
                    let line = ready!(this.poll_line(2, cx))?;
                    if line.as_ref() != b"\r\n" {
                        return Poll::Ready(Some(Err(invalid("chunk longer than its size"))));
                    }
                    this.decode = Decode::ChunkSize;
                }
                Decode::Trailers => {
                    // Trailers are checked and dropped: few servers send them
                    // and HTTP/1.1 clients behind a proxy rarely use them.
                    let line = ready!(this.poll_line(crate::chunked::MAX_TRAILERS, cx))?;
                    if line.as_ref() == b"\r\n" {
                        this.decode = Decode::Done;
                        this.finish_if_done();
                        return Poll::Ready(None);
                    }
                    crate::chunked::trailer_line(&line).map_err(invalid)?;
                    this.trailers.0 += line.len();
                    this.trailers.1 += 1;
                    if this.trailers.0 > crate::chunked::MAX_TRAILERS
                        || this.trailers.1 > crate::chunked::MAX_TRAILER_FIELDS
                    {
                        return Poll::Ready(Some(Err(invalid("trailers too large"))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decode, Decode::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.decode {
            Decode::Done => SizeHint::with_exact(0),
            Decode::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
