//! The HTTP/1.1 client side of the proxy, in the request's own task: a
//! [`ServerConn`] writes a request head and body to a server and reads the
//! response head; the response body is an [`UpstreamBody`] that decodes
//! framing (length, chunked, until close) while hyper's server side writes it
//! to the client, and hands the connection back to the idle pool at its end.
//!
//! Why not hyper's client: it drives each connection from a task of its own
//! and passes requests and responses over channels, which costs two task
//! wake-ups per request; here the client connection's task does all the IO.
//! It also keeps the request head after sending, so a request whose server
//! died before answering can be replayed without a copy made in advance.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::pool::ServerRuntime;

const MAX_HEADERS: usize = 128;
const READ_CHUNK: usize = 16 * 1024;

/// One connection to a server.
#[derive(Debug)]
pub struct ServerConn {
    stream: TcpStream,
    /// Bytes read but not used yet.
    buf: BytesMut,
    /// Requests sent on it so far (0 = fresh).
    pub uses: u32,
    /// When it last went back to the idle pool.
    pub idle_since: std::time::Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server closed or reset the connection before any byte of an
    /// answer: the request may be sent again elsewhere if idempotent.
    #[error("the server closed the connection before answering")]
    Closed,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the server sent an invalid response: {0}")]
    Invalid(&'static str),
    /// The server took nothing and said nothing for `timeout server`.
    #[error("the server was silent for `timeout server`")]
    Timeout,
    /// The client's request body failed (refused framing, client timeout,
    /// client gone): not the server's fault.
    #[error("client body: {0}")]
    Client(String),
}

/// How sending a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The whole request went out.
    Whole,
    /// The server answered before taking the whole body (a 413, a 401, a
    /// redirect): the rest is not sent and the connection is not reused.
    Early,
}

/// Limits the head reader applies to a server's answer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `timeout server`: the longest the server may stay silent, between
    /// any two reads or writes (HAProxy's meaning: inactivity, not a
    /// deadline on the whole exchange).
    pub timeout: Duration,
    /// The largest response head buffered (`max_header_size`).
    pub max_head: usize,
}

impl ServerConn {
    pub async fn connect(addr: std::net::SocketAddr, timeout: Duration) -> io::Result<ServerConn> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection to {addr} timed out"),
                ));
            }
            Ok(r) => r?,
        };
        let _ = stream.set_nodelay(true);
        Ok(ServerConn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            uses: 0,
            idle_since: std::time::Instant::now(),
        })
    }

    /// Whether an idle connection still looks usable: the reactor has seen
    /// nothing on it (an idle server connection that became readable has
    /// been closed or sent garbage). No system call.
    pub fn looks_alive(&self) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        self.buf.is_empty() && self.stream.poll_read_ready(&mut cx).is_pending()
    }

    /// Sends a request: head, then the body as the client sends it. Waiting
    /// for the client is not the server's silence: only writes the server
    /// does not take count against `timeout`, and the client's own stalls
    /// are `timeout client`'s (see `client_io`). Stops early when the server
    /// answers before taking the whole body.
    pub async fn send(
        &mut self,
        req: &mut Request<RequestBody>,
        close: bool,
        timeout: Duration,
    ) -> Result<Sent, SendError> {
        self.uses += 1;
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(req.method().as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(
            req.uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes(),
        );
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_length = false;
        for (k, v) in req.headers() {
            if k == CONTENT_LENGTH {
                has_length = true;
            }
            head.extend_from_slice(k.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        let body = req.body_mut();
        let chunked = !has_length && !body.is_end_stream();
        if chunked {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        if close && !req.headers().contains_key(CONNECTION) {
            head.extend_from_slice(b"connection: close\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let body = req.body_mut();
        // A failed head write is a dead connection (Closed: maybe replayed);
        // past the head, a failed write may mean the server answered and
        // closed, so the answer is read before anything is concluded.
        match self.write(&head, timeout).await? {
            Sent::Whole => {}
            Sent::Early => return Ok(Sent::Early),
        }
        if body.is_end_stream() {
            return Ok(Sent::Whole);
        }
        loop {
            let frame = tokio::select! {
                biased;
                r = self.stream.readable() => {
                    r?;
                    if self.server_spoke().await? {
                        return Ok(Sent::Early);
                    }
                    continue;
                }
                f = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)) => f,
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| SendError::Client(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            let step = if chunked {
                let mut framed = Vec::with_capacity(data.len() + 20);
                framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                framed.extend_from_slice(&data);
                framed.extend_from_slice(b"\r\n");
                self.write_body(&framed, timeout).await?
            } else {
                self.write_body(&data, timeout).await?
            };
            if step == Sent::Early {
                return Ok(Sent::Early);
            }
        }
        if chunked {
            return self.write_body(b"0\r\n\r\n", timeout).await;
        }
        Ok(Sent::Whole)
    }

    /// Writes the head: a write error is a dead connection.
    async fn write(&mut self, data: &[u8], timeout: Duration) -> Result<Sent, SendError> {
        match self.write_or_hear(data, timeout).await {
            Err(SendError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Err(SendError::Closed)
            }
            r => r,
        }
    }

    /// Writes body bytes: a write error after the head may hide an answer
    /// the server sent before closing (a 413 for an upload too large).
    async fn write_body(&mut self, data: &[u8], timeout: Duration) -> Result<Sent, SendError> {
        match self.write_or_hear(data, timeout).await {
            Err(SendError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(Sent::Early)
            }
            r => r,
        }
    }

    /// Writes `data`, unless the server speaks first; the server must take
    /// some of it every `timeout`.
    async fn write_or_hear(
        &mut self,
        mut data: &[u8],
        timeout: Duration,
    ) -> Result<Sent, SendError> {
        while !data.is_empty() {
            match self.stream.try_write(data) {
                Ok(n) => {
                    data = &data[n..];
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            tokio::select! {
                biased;
                r = self.stream.readable() => {
                    r?;
                    if self.server_spoke().await? {
                        return Ok(Sent::Early);
                    }
                }
                r = self.stream.writable() => r?,
                () = tokio::time::sleep(timeout) => return Err(SendError::Timeout),
            }
        }
        Ok(Sent::Whole)
    }

    /// The server sent something while we were still sending: reads it and
    /// drops interim 1xx answers (a `100 Continue` means go on). True when
    /// a final answer has begun, or the server closed: stop sending.
    async fn server_spoke(&mut self) -> Result<bool, SendError> {
        if self.fill().await? == 0 {
            return Ok(true);
        }
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len))
                    if resp
                        .code
                        .is_some_and(|c| (100..200).contains(&c) && c != 101) =>
                {
                    self.buf.advance(len);
                    if self.buf.is_empty() {
                        return Ok(false);
                    }
                }
                // A final answer, or the start of one: stop sending.
                _ => return Ok(true),
            }
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        std::future::poll_fn(|cx| poll_fill(&self.stream, &mut self.buf, cx)).await
    }

    /// Reads the response head (skipping 1xx interim answers); the body
    /// comes with it as an [`UpstreamBody`] that owns the connection. The
    /// bool in the error says whether the server had begun to answer.
    pub async fn response(
        mut self,
        method: &Method,
        rt: Arc<ServerRuntime>,
        reuse: bool,
        limits: Limits,
    ) -> Result<Response<UpstreamBody>, (SendError, bool)> {
        let mut answered = !self.buf.is_empty();
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                // The limit holds on what is buffered, however the bytes
                // arrived: a head must end within `max_head` bytes.
                let window = &self.buf[..self.buf.len().min(limits.max_head)];
                match resp.parse(window) {
                    Ok(httparse::Status::Complete(len)) => {
                        let code = resp.code.unwrap_or(0);
                        let version = resp.version.unwrap_or(1);
                        let mut map = HeaderMap::with_capacity(resp.headers.len());
                        for h in resp.headers.iter() {
                            let (Ok(n), Ok(v)) = (
                                HeaderName::from_bytes(h.name.as_bytes()),
                                HeaderValue::from_bytes(h.value),
                            ) else {
                                return Err((SendError::Invalid("bad header"), true));
                            };
                            map.append(n, v);
                        }
                        Some((len, code, version, map))
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err((SendError::Invalid("too many response headers"), true));
                    }
                    Err(_) => return Err((SendError::Invalid("unparsable head"), true)),
                }
            };
            if let Some((len, code, version, headers)) = parsed {
                self.buf.advance(len);
                if (100..200).contains(&code) {
                    if code == 101 {
                        return Err((
                            SendError::Invalid("protocol upgrades are not supported"),
                            true,
                        ));
                    }
                    answered = true;
                    continue;
                }
                let status = StatusCode::from_u16(code)
                    .map_err(|_| (SendError::Invalid("bad status"), true))?;
                let framing = framing(method, code, &headers).map_err(|e| (e, true))?;
                let mut headers = headers;
                if headers.contains_key(TRANSFER_ENCODING) {
                    // RFC 9112 §6.3: Transfer-Encoding overrides a length,
                    // which must not reach the client.
                    headers.remove(CONTENT_LENGTH);
                }
                let keep = reuse && framing != Framing::Close && keeps_alive(version, &headers);
                let body = UpstreamBody::new(self, framing, keep.then_some(rt), limits.timeout);
                let mut r = Response::new(body);
                *r.status_mut() = status;
                *r.version_mut() = Version::HTTP_11;
                *r.headers_mut() = headers;
                return Ok(r);
            }
            if self.buf.len() >= limits.max_head {
                return Err((SendError::Invalid("response head too large"), true));
            }
            match tokio::time::timeout(limits.timeout, self.fill()).await {
                Err(_) => return Err((SendError::Timeout, answered)),
                Ok(Ok(0)) => return Err((SendError::Closed, answered || !self.buf.is_empty())),
                Ok(Ok(_)) => answered = true,
                Ok(Err(e))
                    if !answered
                        && matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                        ) =>
                {
                    return Err((SendError::Closed, false));
                }
                Ok(Err(e)) => return Err((e.into(), true)),
            }
        }
    }
}

/// Reads what the socket has into `buf`, with the short-read readiness
/// shortcut of `client_io::drained`.
fn poll_fill(
    stream: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        match stream.try_read_buf(buf) {
            Ok(n) => {
                if n > 0 && buf.capacity() > buf.len() {
                    crate::client_io::drained(stream);
                }
                return Poll::Ready(Ok(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes (HTTP/1.0 style); the connection is not reused.
    Close,
}

/// RFC 9112 §6.3, for responses.
fn framing(method: &Method, code: u16, h: &HeaderMap) -> Result<Framing, SendError> {
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

fn keeps_alive(version: u8, h: &HeaderMap) -> bool {
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
    pool: Option<Arc<ServerRuntime>>,
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
    fn new(
        conn: ServerConn,
        framing: Framing,
        pool: Option<Arc<ServerRuntime>>,
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

    fn finish_if_done(&mut self) {
        if matches!(self.decode, Decode::Done)
            && let Some(conn) = self.conn.take()
            && let Some(rt) = self.pool.take()
            && conn.buf.is_empty()
        {
            let mut conn = conn;
            conn.idle_since = std::time::Instant::now();
            rt.idle.put(conn);
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
                    let d = ready!(this.poll_data(left, cx))?;
                    if d.is_empty() {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the body early",
                        ))));
                    }
                    let left = left - d.len() as u64;
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
                    let d = ready!(this.poll_data(left, cx))?;
                    if d.is_empty() {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the body early",
                        ))));
                    }
                    let left = left - d.len() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(5),
        max_head: 16384,
    };

    /// A server that reads one request head and answers `reply` raw.
    async fn server(reply: &'static [u8]) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(reply).await.unwrap();
            let _ = s.read(&mut buf).await;
        });
        addr
    }

    async fn get(reply: &'static [u8]) -> (Response<UpstreamBody>, Arc<ServerRuntime>) {
        let addr = server(reply).await;
        let rt = Arc::new(ServerRuntime::new(addr, 1));
        let mut conn = ServerConn::connect(addr, Duration::from_secs(1))
            .await
            .unwrap();
        // A request with no body to send: an empty client body stands in.
        let mut head = Vec::new();
        head.extend_from_slice(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n");
        conn.write(&head, LIMITS.timeout).await.unwrap();
        let r = conn
            .response(&Method::GET, rt.clone(), true, LIMITS)
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        (r, rt)
    }

    #[tokio::test]
    async fn chunked_wins_over_a_length_and_the_connection_is_reused() {
        let (r, rt) = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n").await;
        assert!(r.headers().get(CONTENT_LENGTH).is_none());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello world");
        assert!(
            rt.idle.take(Duration::from_secs(5)).is_some(),
            "back in the pool"
        );
    }

    #[tokio::test]
    async fn a_close_delimited_body_is_read_to_the_end_and_not_reused() {
        let (r, rt) = get(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it").await;
        let body = r.into_body().collect();
        // The test server waits for more input after replying; closing is
        // ours to detect only when it closes, so bound the wait.
        let body = tokio::time::timeout(Duration::from_millis(200), body).await;
        assert!(body.is_err() || body.unwrap().is_ok());
        assert!(
            rt.idle.take(Duration::from_secs(5)).is_none(),
            "never reused"
        );
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_lengths_respected() {
        let (r, rt) = get(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert_eq!(r.status(), 201);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"abc");
        assert!(rt.idle.take(Duration::from_secs(5)).is_some());
    }

    /// `timeout server` is inactivity on the body too (paused time: the
    /// 5 s pass at once, and exactly).
    #[tokio::test(start_paused = true)]
    async fn a_body_the_server_stops_sending_ends_in_a_server_timeout() {
        let (r, rt) = get(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789").await;
        let start = tokio::time::Instant::now();
        let mut body = r.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"0123456789");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(is_server_timeout(&err), "{err}");
        assert_eq!(start.elapsed().as_secs(), LIMITS.timeout.as_secs());
        assert!(
            rt.idle.take(Duration::from_secs(5)).is_none(),
            "never reused"
        );
    }

    #[tokio::test]
    async fn chunked_bodies_from_servers_follow_the_same_grammar() {
        let (r, _) =
            get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n")
                .await;
        assert!(r.into_body().collect().await.is_err());
        let (r, _) = get(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nno colon\r\n\r\n").await;
        assert!(r.into_body().collect().await.is_err());
    }
}
