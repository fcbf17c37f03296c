//! One connection to a server, in the request's own task: [`ServerConn`]
//! writes a request head and body and reads the response head, with
//! `timeout server` as the longest silence between any two reads or writes;
//! the response body comes as an [`UpstreamBody`](super::UpstreamBody) that
//! owns the connection.
//!
//! Why not hyper's client: it drives each connection from a task of its own
//! and passes requests and responses over channels, which costs two task
//! wake-ups per request; here the client connection's task does all the IO.
//! It also keeps the request head after sending, so a request whose server
//! died before answering can be replayed without a copy made in advance.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use tokio::net::TcpStream;

use super::body::{Framing, UpstreamBody, framing, keeps_alive};
use super::idle::IdlePool;

const MAX_HEADERS: usize = 128;
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// One connection to a server.
#[derive(Debug)]
pub struct ServerConn {
    pub(super) stream: TcpStream,
    /// Bytes read but not used yet.
    pub(super) buf: BytesMut,
    /// Requests sent on it so far (0 = fresh).
    pub uses: u32,
    /// When it last went back to the idle pool.
    pub idle_since: tokio::time::Instant,
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
    /// The request asked for a WebSocket: a 101 is the server's yes, its
    /// body the connection itself ([`UpstreamBody::into_tunnel`]). Any
    /// other request's 101 is an invalid answer.
    pub upgrade: bool,
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
            idle_since: tokio::time::Instant::now(),
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
    pub async fn send<B>(
        &mut self,
        req: &mut Request<B>,
        close: bool,
        timeout: Duration,
    ) -> Result<Sent, SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
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
                f = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_frame(cx)) => f,
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
    pub(super) async fn write(
        &mut self,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Sent, SendError> {
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
        idle: Arc<IdlePool>,
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
                if code == 101 && limits.upgrade {
                    let mut r = Response::new(UpstreamBody::switched(self));
                    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    *r.headers_mut() = headers;
                    return Ok(r);
                }
                if (100..200).contains(&code) {
                    if code == 101 {
                        return Err((
                            SendError::Invalid("a 101 for a request that asked no upgrade"),
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
                let body = UpstreamBody::new(self, framing, keep.then_some(idle), limits.timeout);
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
pub(super) fn poll_fill(
    stream: &TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        match stream.try_read_buf(buf) {
            Ok(n) => {
                if n > 0 && buf.capacity() > buf.len() {
                    crate::readiness::drained(stream);
                }
                return Poll::Ready(Ok(n));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}
