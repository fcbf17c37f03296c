//! Accepting client connections: one accept loop per bound address, bounded by
//! the process-wide and per-frontend `maxconn` (past them accept waits and
//! the kernel backlog holds new clients), and one task per connection that
//! runs hyper's HTTP/1.1 server over [`ClientIo`]. A connection finishes its
//! in-flight request when the process stops or the listener goes away.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

use arc_swap::ArcSwap;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::client_io::{ClientIo, ClientState, Socket, TlsSocket};
use crate::exchange::{Exchange, Phase, Termination, Who};
use crate::proxy::{self, ConnInfo};
use crate::shared::Shared;
use crate::state::FrontendState;

/// One bound address and the frontend it currently serves. A reload swaps
/// the frontend; connections pick up the new one at their next request.
#[derive(Debug)]
pub(crate) struct Slot {
    pub addr: SocketAddr,
    pub fe: ArcSwap<FrontendState>,
    /// The listening socket, duplicated for `_getsocks` (binary upgrades).
    pub fd: Option<Arc<std::os::fd::OwnedFd>>,
}

/// Binds with SO_REUSEADDR so a restart does not wait for TIME_WAIT, and a
/// backlog as deep as `maxconn`. Not SO_REUSEPORT: a second process on the
/// same port would silently take half the traffic; binary upgrades take
/// the sockets over instead (`handoff`).
pub(crate) fn bind(addr: SocketAddr, backlog: usize) -> std::io::Result<TcpListener> {
    TcpListener::from_std(bind_std(addr, backlog)?)
}

/// [`bind`] without a runtime, for binding before daemonizing.
pub(crate) fn bind_std(addr: SocketAddr, backlog: usize) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.clamp(128, 65535) as i32)?;
    Ok(socket.into())
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let global = tokio::select! {
            p = shared.global_limit.clone().acquire_owned() => p,
            _ = stop.changed() => return,
        };
        let fe = slot.fe.load_full();
        let local = tokio::select! {
            p = fe.limit.clone().acquire_owned() => p,
            _ = stop.changed() => return,
        };
        // Neither semaphore is ever closed, so acquiring cannot fail.
        let (Ok(global), Ok(local)) = (global, local) else {
            return;
        };
        // A stop wins over a waiting connection: that one stays in the
        // shared backlog for the process that goes on (a binary upgrade).
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(addr = %slot.addr, cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Counted before its task first runs: a stopping process waits for
        // every connection it accepted, also one whose task has not started.
        shared.global_conns.fetch_add(1, Relaxed);
        // This loop runs on the runtime that serves what it accepts (each
        // worker accepts for itself), so the connection stays where it is.
        tokio::spawn(serve(
            stream,
            peer,
            slot.clone(),
            shared.clone(),
            [global, local],
        ));
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    _permits: [OwnedSemaphorePermit; 2],
) {
    let accepted = Instant::now();
    let fe = slot.fe.load_full();
    fe.counters.enter();
    let _ = stream.set_nodelay(true);
    match fe.tls.get(&slot.addr).cloned() {
        None => serve_h1(Arc::new(stream), peer, &slot, &shared, accepted, false).await,
        // Boxed: a plain connection's task does not carry the handshake's
        // and h2's state.
        Some(tls) => Box::pin(serve_tls(tls, stream, peer, &slot, &shared, accepted)).await,
    }
    fe.counters.leave();
    shared.global_conns.fetch_sub(1, Relaxed);
}

/// A TLS connection: the handshake, then h2 or HTTP/1.1 by ALPN.
async fn serve_tls(
    tls: Arc<rustls::ServerConfig>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: &Arc<Slot>,
    shared: &Arc<Shared>,
    accepted: Instant,
) {
    let fe = slot.fe.load_full();
    // A client that opens TCP and never finishes the handshake is
    // closed at `timeout http_request`, like a silent plain client.
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let handshake = acceptor.accept(stream);
    match tokio::time::timeout(fe.conf.timeout_http_request, handshake).await {
        Ok(Ok(session)) => {
            if session.get_ref().1.alpn_protocol() == Some(b"h2") {
                serve_h2(session, peer, slot, shared, accepted).await;
            } else {
                let socket = Arc::new(TlsSocket::new(session));
                serve_h1(socket, peer, slot, shared, accepted, true).await;
            }
        }
        Ok(Err(e)) => tracing::debug!(client = %peer, cause = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(client = %peer, "TLS handshake too slow"),
    }
}

fn conn_info(
    peer: SocketAddr,
    accepted: Instant,
    shared: &Arc<Shared>,
    client_state: Arc<ClientState>,
    tls: bool,
) -> Arc<ConnInfo> {
    Arc::new(ConnInfo {
        client: peer,
        accepted,
        requests: Default::default(),
        xff: http::HeaderValue::from_str(&crate::state::client_ip(peer).to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown")),
        shared: shared.clone(),
        client_state,
        tls,
        tunnel: Default::default(),
    })
}

/// HTTP/2 over TLS (ALPN `h2`): hyper's h2 server with limits that hold
/// under hostile clients; hyper and the h2 crate bound rapid resets
/// (CVE-2023-44487) and CONTINUATION floods (CVE-2024-27316).
async fn serve_h2(
    session: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    slot: &Arc<Slot>,
    shared: &Arc<Shared>,
    accepted: Instant,
) {
    let fe = slot.fe.load_full();
    let info = conn_info(peer, accepted, shared, Default::default(), true);
    let svc_slot = slot.clone();
    let service = service_fn(move |req| {
        let fe = svc_slot.fe.load_full();
        let info = info.clone();
        serve_request(req, fe, info)
    });
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        // RFC 8441: WebSockets over h2 (extended CONNECT).
        .enable_connect_protocol()
        .max_header_list_size(u32::try_from(fe.max_header_size).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(MAX_H2_STREAMS as usize))
        .max_local_error_reset_streams(Some(1024))
        .keep_alive_interval(Some(fe.conf.timeout_client))
        .keep_alive_timeout(fe.conf.timeout_http_request);
    let conn = builder.serve_connection(TokioIo::new(session), service);
    tokio::pin!(conn);
    let mut stop = shared.stop_signal();
    let result = tokio::select! {
        biased;
        r = conn.as_mut() => r,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer, cause = %e, "h2 connection ended");
    }
}

/// One request for hyper's service, h1 or h2. `proxy::handle`'s state
/// (forwarding, retries, the log line: several KiB) is boxed, so that it
/// lives on the heap only while its request does: hyper keeps a connection's
/// request future for the connection's life and h2 spawns a task per stream,
/// and both would otherwise hold (and copy as it moves) the whole state.
async fn serve_request(
    req: hyper::Request<hyper::body::Incoming>,
    fe: Arc<FrontendState>,
    info: Arc<ConnInfo>,
) -> Result<hyper::Response<crate::body::ResponseBody>, Infallible> {
    Ok(Box::pin(proxy::handle(req, fe, &info)).await)
}

/// Streams one h2 connection may have open at once.
const MAX_H2_STREAMS: u32 = 100;

/// HTTP/1.1 on a plain or TLS socket, every byte through the hygiene
/// scanner (`ClientIo`); answers what hyper could not (400/431/408).
///
/// An idle keep-alive connection is parked between requests: its hyper
/// connection ends (see [`ClientIo::parking`]) and the task waits for the
/// socket alone, so that thousands of idle browsers do not each hold
/// hyper's buffers. The next request's first byte gets a new one.
async fn serve_h1<S: Socket>(
    stream: Arc<S>,
    peer: SocketAddr,
    slot: &Arc<Slot>,
    shared: &Arc<Shared>,
    accepted: Instant,
    tls: bool,
) {
    let fe = slot.fe.load_full();
    let client_state = Arc::new(ClientState::default());
    let info = conn_info(peer, accepted, shared, client_state.clone(), tls);
    let result = loop {
        let result = run_h1(&stream, slot, shared, &fe, &info).await;
        if result.is_err() || !client_state.parked.swap(false, Relaxed) {
            break result;
        }
        // Between requests: an idle keep-alive connection closes quietly
        // when `timeout http-request` passes or the proxy stops, as it did
        // in hyper.
        if !next_request(&*stream, fe.conf.timeout_http_request, shared).await {
            return;
        }
    };
    // A WebSocket: the connection became a tunnel, which runs here so this
    // connection's slots and counts last as long as it does. A stop lets it
    // run to its end (or the stop timeout).
    let tunnel = info.tunnel.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = tunnel {
        Box::pin(t.run()).await;
        return;
    }
    Box::pin(after_h1(
        result,
        stream,
        peer,
        fe,
        info,
        client_state,
        accepted,
    ))
    .await;
}

/// One hyper HTTP/1.1 connection on the client socket: until the client
/// or hyper ends it, the proxy stops, or it parks (idle keep-alive).
async fn run_h1<S: Socket>(
    stream: &Arc<S>,
    slot: &Arc<Slot>,
    shared: &Arc<Shared>,
    fe: &FrontendState,
    info: &Arc<ConnInfo>,
) -> Result<(), hyper::Error> {
    let mut io = ClientIo::new(
        stream.clone(),
        fe.max_header_size,
        fe.conf.timeout_client,
        info.client_state.clone(),
    );
    if !fe.conf.http_close {
        io = io.parking(shared.global_conns.clone());
    }
    let svc_slot = slot.clone();
    let svc_info = info.clone();
    let service = service_fn(move |req| {
        let fe = svc_slot.fe.load_full();
        let info = svc_info.clone();
        serve_request(req, fe, info)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(fe.conf.timeout_http_request)
        .half_close(true)
        .keep_alive(!fe.conf.http_close);
    // Boxed: the connection task, parked, keeps none of hyper's state.
    let mut conn = Box::pin(
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades(),
    );
    let mut stop = shared.stop_signal();
    // The connection first: bytes that already came are read as a request
    // (which a stop then finishes with `Connection: close`) rather than
    // dropped with the socket.
    tokio::select! {
        biased;
        r = conn.as_mut() => return r,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {}
    }
    // Stopping. hyper closes a connection that has not read a byte at once;
    // one the client opened before the stop is waiting for its first
    // request, which is answered (hyper's `timeout http-request` bounds the
    // wait). Idle keep-alive connections close.
    let heard = &info.client_state.heard;
    if !heard.load(Relaxed) {
        let first = std::future::poll_fn(|cx| match conn.as_mut().poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending if heard.load(Relaxed) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        });
        if let Some(r) = first.await {
            return r;
        }
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Waits, parked, for the next request on a keep-alive connection: true
/// when the client sends bytes (or closes: the next hyper connection sees
/// the end), false when `idle` passes or the proxy stops.
async fn next_request<S: Socket>(stream: &S, idle: Duration, shared: &Shared) -> bool {
    let mut stop = shared.stop_signal();
    let readable = std::future::poll_fn(|cx| stream.poll_read_ready(cx));
    // Readable first: a request that came as the proxy stops is served.
    tokio::select! {
        biased;
        r = tokio::time::timeout(idle, readable) => matches!(r, Ok(Ok(()))),
        _ = async { let _ = stop.wait_for(|s| *s).await; } => false,
    }
}

/// What a client connection gets after hyper is done with it: the 400/431/
/// 408 hyper could not send (logged like any exchange), or a lingering
/// close when we answered before the request's end.
async fn after_h1<S: Socket>(
    result: Result<(), hyper::Error>,
    stream: Arc<S>,
    peer: SocketAddr,
    fe: Arc<FrontendState>,
    info: Arc<ConnInfo>,
    client_state: Arc<ClientState>,
    accepted: Instant,
) {
    let reject = client_state.rejection();
    let answered = client_state.answered.load(Relaxed);
    // A connection that never carried a request and timed out gets a 408,
    // as HAProxy answers it; an idle keep-alive connection just closes.
    let first = info.requests.load(Relaxed) == 0;
    let answer = match (&result, reject) {
        (_, Some(_)) if answered => None,
        (_, Some(r)) => Some((r.status, Termination::new(Who::Proxy, Phase::Request, b'-'))),
        (Err(e), None) if e.is_timeout() && (first || client_state.mid_head.load(Relaxed)) => {
            Some((
                408,
                Termination::new(Who::ClientTimeout, Phase::Request, b'-'),
            ))
        }
        (Err(e), None) => {
            tracing::debug!(client = %peer, cause = %e, "client connection ended");
            None
        }
        (Ok(()), None) => None,
    };
    if answer.is_none() && (answered || client_state.in_body.load(Relaxed)) {
        // We answered before reading the whole request body (the server
        // answered early, or the body was refused): closing now with unread
        // bytes would reset the connection and could destroy the answer.
        linger(&*stream).await;
    }
    if let Some((status, term)) = answer {
        let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
        fe.counters.ereq.fetch_add(1, Relaxed);
        fe.counters.status(status);
        let body = proxy::error_body(code);
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n",
            status,
            code.canonical_reason().unwrap_or(""),
            body.len()
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(&body);
        if write_all(&*stream, &out).await.is_ok() {
            linger(&*stream).await;
        }
        let mut ex = Exchange::new(
            fe.clone(),
            peer,
            accepted,
            accepted.elapsed().as_millis() as i64,
        );
        ex.status = status;
        ex.termination = term;
        ex.bytes_out = out.len() as u64;
        ex.finish(true);
    }
}

/// Closes our side and reads what the client still sends for a moment, so
/// that closing with unread data does not reset the connection and destroy
/// the answer we just wrote (the "lingering close" of RFC 9112 §9.6).
async fn linger<S: Socket>(stream: &S) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = tokio::time::timeout_at(
        deadline,
        std::future::poll_fn(|cx| stream.poll_shutdown(cx)),
    )
    .await;
    let mut buf = [0u8; 4096];
    loop {
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        let read = std::future::poll_fn(|cx| stream.poll_read(cx, &mut rb));
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(())) if !rb.filled().is_empty() => {}
            _ => return,
        }
    }
}

async fn write_all<S: Socket>(stream: &S, mut data: &[u8]) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !data.is_empty() {
        let n = tokio::time::timeout_at(
            deadline,
            std::future::poll_fn(|cx| stream.poll_write(cx, data)),
        )
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    tokio::time::timeout_at(deadline, std::future::poll_fn(|cx| stream.poll_flush(cx)))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)?
}
