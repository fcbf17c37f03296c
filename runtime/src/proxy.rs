//! One request through the proxy: stats page or route → persistence cookie →
//! server choice (balancer, queue) → forward with retries and redispatch →
//! response rewriting (hop-by-hop headers, cookie insert, nocache) → body
//! streaming, whose end closes the [`Exchange`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::sync::OwnedSemaphorePermit;

use crate::body::{RequestBody, ResponseBody};
use crate::exchange::{Exchange, Phase, Termination, Who, request_head_len};
use crate::hygiene::is_websocket;
use crate::persist;
use crate::pool::{Pool, QueueFail};
use crate::state::{FrontendState, client_ip};
use crate::tunnel::Tunnel;
use crate::upstream::{Limits, SendError, Sent, ServerConn, UpstreamBody};

/// What a connection knows when a request arrives.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub client: SocketAddr,
    pub accepted: Instant,
    /// Requests served on this connection so far (Tq counts from accept for
    /// the first one only).
    pub requests: std::sync::atomic::AtomicU64,
    /// The client address as an X-Forwarded-For value, built once.
    pub xff: HeaderValue,
    pub shared: Arc<crate::shared::Shared>,
    /// What the client socket learnt (refusals, stalls), shared with it.
    pub client_state: Arc<crate::client_io::ClientState>,
    /// The connection came over TLS (HTTP/1.1 or h2).
    pub tls: bool,
    /// A WebSocket tunnel waiting for hyper to hand over the socket after
    /// its 101 is written; the connection task runs it (so the connection's
    /// `maxconn` slots stay held for the tunnel's life).
    pub tunnel: std::sync::Mutex<Option<Tunnel>>,
}

pub(crate) async fn handle(
    mut req: Request<Incoming>,
    fe: Arc<FrontendState>,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    let now = Instant::now();
    let tq = if conn.requests.fetch_add(1, Relaxed) == 0 {
        now.duration_since(conn.accepted).as_millis() as i64
    } else {
        0
    };
    fe.counters.req_tot.fetch_add(1, Relaxed);
    let mut ex = Exchange::new(fe.clone(), conn.client, now, tq);
    ex.bytes_in = request_head_len(&req);
    ex.client_close = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"));
    if fe.conf.log.is_some() {
        ex.request_line = Some(request_line(&req));
    }

    // CONNECT is refused, but for RFC 8441's extended CONNECT of a
    // WebSocket over h2 (hyper only lets it through when the listener
    // announced SETTINGS_ENABLE_CONNECT_PROTOCOL).
    if req.method() == Method::CONNECT && !is_h2_websocket(&req) {
        fe.counters.ereq.fetch_add(1, Relaxed);
        ex.termination = Termination::new(Who::Proxy, Phase::Request, b'-');
        return local(StatusCode::METHOD_NOT_ALLOWED, ex, true);
    }

    // Before the redirect: a CA validates over plain HTTP (RFC 8555 §8.3),
    // and the first certificate does not exist yet when it does.
    if let Some(thumbprint) = &fe.conf.acme_thumbprint
        && let Some(token) = req.uri().path().strip_prefix(crate::acme::CHALLENGE_PATH)
        && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        return match crate::acme::key_authorization(token, thumbprint) {
            Some(body) => page_response(body, "text/plain", ex),
            None => local(StatusCode::NOT_FOUND, ex, false),
        };
    }

    if !conn.tls
        && let Some(code) = fe.conf.redirect_https
    {
        return redirect_to_https(&req, code, fe.conf.redirect_port, ex);
    }

    if let Some(page) = &fe.metrics
        && req.uri().path() == page.conf.uri
    {
        return metrics_page(&req, ex, conn);
    }

    if let Some(page) = &fe.stats
        && let Some(pq) = req.uri().path_and_query()
        && pq.as_str().starts_with(page.conf.uri.as_str())
    {
        let rest = pq.as_str()[page.conf.uri.len()..].to_owned();
        return stats_page(req, &rest, ex, conn).await;
    }

    // RFC 9112 §3.2.2: with an absolute-form target the URI's authority is
    // the host; the Host header is replaced by it, for routing and for the
    // server (which gets the origin form).
    if let Some(authority) = req.uri().authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, v);
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let Some(pool) = fe.route(req.uri().path(), host).cloned() else {
        ex.termination = Termination::new(Who::Server, Phase::Connect, b'-');
        return local(StatusCode::SERVICE_UNAVAILABLE, ex, false);
    };
    ex.pool = Some(pool.clone());
    pool.counters.enter();
    pool.counters.req_tot.fetch_add(1, Relaxed);
    forward(req, pool, ex, conn).await
}

fn request_line(req: &Request<Incoming>) -> String {
    let uri = req.uri();
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{} {} {:?}", req.method(), target, req.version())
}

/// Cookie status and action, HAProxy's 3rd and 4th termination characters.
#[derive(Clone, Copy)]
struct CookieLog {
    seen: u8,
    action: u8,
}

async fn forward(
    req: Request<Incoming>,
    pool: Arc<Pool>,
    mut ex: Exchange,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    let fe = ex.fe.clone();
    let (mut parts, body) = req.into_parts();
    let conf = &pool.conf;
    let http_close = fe.conf.http_close || conf.http_close;
    let (sticky, ck) = persistence(&pool, &mut parts.headers);
    let forwardfor = fe.conf.forwardfor || conf.forwardfor;
    let upgrade = websocket(&mut parts, &body);
    prepare_request(
        &mut parts.headers,
        forwardfor,
        fe.conf.forwarded_proto,
        conn,
        http_close,
    );
    if let Some(up) = &upgrade {
        // The upgrade's own hop-by-hop fields, as HAProxy sends them.
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        for v in &up.protocols {
            parts.headers.append(header::UPGRADE, v.clone());
        }
    }
    let method = parts.method.clone();
    let req = Request::from_parts(parts, RequestBody::new(body, &mut ex));

    // Choose a server, waiting in queue if all slots are taken.
    let queue_start = Instant::now();
    let ip = client_ip(conn.client);
    let deadline = queue_start + conf.timeout_queue;
    let (idx, permit) = match pool.acquire(sticky, ip, None, deadline).await {
        Ok(x) => x,
        Err(q) => {
            ex.tw = queue_start.elapsed().as_millis() as i64;
            ex.termination = if q == QueueFail::Timeout {
                Termination::new(Who::ServerTimeout, Phase::Queue, ck.seen)
            } else {
                Termination::new(Who::Server, Phase::Connect, ck.seen)
            };
            return local(StatusCode::SERVICE_UNAVAILABLE, ex, false);
        }
    };
    ex.tw = queue_start.elapsed().as_millis() as i64;
    enter_server(&pool, idx, &mut ex, permit);

    // A WebSocket goes on a connection of its own (never back to the idle
    // pool), as an `httpclose` request does.
    let one_off = http_close || upgrade.is_some();
    let limits = Limits {
        timeout: conf.timeout_server,
        max_head: fe.max_header_size,
        upgrade: upgrade.is_some(),
    };
    match dispatch(&pool, req, idx, ip, one_off, limits, &mut ex, ck.seen, conn).await {
        Ok((resp, idx)) => match upgrade {
            Some(up) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                switch(resp, &pool, idx, sticky, ck, up, ex, conn)
            }
            _ => respond(resp, &pool, idx, sticky, ck, &method, http_close, ex),
        },
        Err((status, close)) => local(status, ex, close),
    }
}

/// A WebSocket opening handshake that may become a tunnel.
struct Upgrade {
    /// The client stream's upgrade handle.
    on: OnUpgrade,
    /// The `Upgrade` values to send on.
    protocols: Vec<HeaderValue>,
    /// RFC 8441: an extended CONNECT on an h2 stream, sent to the server as
    /// an HTTP/1.1 upgrade, answered 200 and tunnelled on that stream.
    h2: bool,
}

/// An extended CONNECT (RFC 8441 §4) whose `:protocol` is `websocket`.
fn is_h2_websocket<B>(req: &Request<B>) -> bool {
    req.method() == Method::CONNECT
        && req.version() == http::Version::HTTP_2
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// A WebSocket opening handshake that may become a tunnel. Over HTTP/1.1
/// only requests the hygiene scanner held for their answer qualify (the
/// same [`is_websocket`] test, and no body). Over h2, an extended CONNECT
/// becomes the HTTP/1.1 GET the server expects (RFC 8441 §5: the
/// server gets its own `Sec-WebSocket-Key`, the h2 client never sees the
/// `Sec-WebSocket-Accept`).
fn websocket(parts: &mut http::request::Parts, body: &Incoming) -> Option<Upgrade> {
    if parts.method == Method::CONNECT {
        let on = parts.extensions.remove::<OnUpgrade>()?;
        parts.method = Method::GET;
        parts.extensions.remove::<hyper::ext::Protocol>();
        let key: [u8; 16] = rand::random();
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
        parts.headers.insert(
            HeaderName::from_static("sec-websocket-key"),
            HeaderValue::from_str(&key).ok()?,
        );
        return Some(Upgrade {
            on,
            protocols: vec![HeaderValue::from_static("websocket")],
            h2: true,
        });
    }
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    if !body.is_end_stream()
        || !is_websocket(
            parts.method.as_str(),
            parts.version == http::Version::HTTP_11,
            headers,
        )
    {
        return None;
    }
    let protocols = parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .cloned()
        .collect();
    let on = parts.extensions.remove::<OnUpgrade>()?;
    Some(Upgrade {
        on,
        protocols,
        h2: false,
    })
}

/// Persistence: a cookie naming a server that may serve it pins the
/// request. Strips the cookie for `indirect`.
fn persistence(pool: &Pool, headers: &mut HeaderMap) -> (Option<usize>, CookieLog) {
    let mut ck = CookieLog {
        seen: b'-',
        action: b'-',
    };
    let mut sticky = None;
    if let Some(c) = &pool.conf.cookie {
        ck = CookieLog {
            seen: b'N',
            action: b'N',
        };
        if let Some(v) = persist::find(headers, &c.name) {
            match pool.by_cookie(v) {
                Some(i) if pool.servers[i].can_persist() => {
                    sticky = Some(i);
                    ck.seen = b'V';
                }
                Some(_) => ck.seen = b'D',
                None => ck.seen = b'I',
            }
        }
        if c.indirect {
            persist::strip(headers, &c.name);
        }
    }

    (sticky, ck)
}

/// The request as the server gets it: hop-by-hop fields out, our
/// X-Forwarded-For in, `Connection: close` for `httpclose`.
fn prepare_request(
    headers: &mut HeaderMap,
    forwardfor: bool,
    forwarded_proto: bool,
    conn: &ConnInfo,
    http_close: bool,
) {
    if forwarded_proto {
        // The client's own value is replaced: servers trust this one.
        let proto = if conn.tls { "https" } else { "http" };
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(proto),
        );
    }
    strip_hop_by_hop(headers);
    if forwardfor {
        // HAProxy adds its own header line rather than editing an existing
        // one, so servers see every hop.
        headers.append(HeaderName::from_static("x-forwarded-for"), conn.xff.clone());
    }
    if http_close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Connects and sends, with retries; the last retry may go elsewhere. On
/// success, the response and the server that gave it; on failure, the
/// status the proxy answers (the exchange carries the termination state).
#[allow(clippy::too_many_arguments)] // one request's context, used once
async fn dispatch(
    pool: &Pool,
    mut req: Request<RequestBody>,
    mut idx: usize,
    ip: std::net::IpAddr,
    http_close: bool,
    limits: Limits,
    ex: &mut Exchange,
    cookie_seen: u8,
    conn: &ConnInfo,
) -> Result<(Response<UpstreamBody>, usize), (StatusCode, bool)> {
    let fe = ex.fe.clone();
    let conf = &pool.conf;
    let connect_start = Instant::now();
    let mut attempts = 0u32;
    let mut moved_after_drop = false;
    loop {
        let server = &pool.servers[idx];
        match send(server, req, conf.timeout_connect, limits, http_close).await {
            Attempt::Ok(resp, tc) => {
                ex.tc = tc;
                ex.tr = connect_start.elapsed().as_millis() as i64 - ex.tc.max(0);
                return Ok((resp, idx));
            }
            Attempt::ConnectFailed(back, err) => {
                tracing::debug!(server = %server.name, cause = %err, "connect failed");
                server.rt.counters.econ.fetch_add(1, Relaxed);
                pool.counters.econ.fetch_add(1, Relaxed);
                req = back;
                if attempts >= conf.retries {
                    ex.tc = connect_start.elapsed().as_millis() as i64;
                    ex.termination = Termination::new(Who::Server, Phase::Connect, cookie_seen);
                    return Err((StatusCode::SERVICE_UNAVAILABLE, false));
                }
                attempts += 1;
                ex.retries = attempts;
                server.rt.counters.wretr.fetch_add(1, Relaxed);
                pool.counters.wretr.fetch_add(1, Relaxed);
                let last = attempts == conf.retries;
                if conf.redispatch && last {
                    // Redispatch: give up the pinned server for any other.
                    let deadline = Instant::now() + conf.timeout_queue;
                    if let Ok((other, permit)) = pool.acquire(None, ip, Some(idx), deadline).await {
                        leave_server(pool, idx, ex);
                        idx = other;
                        enter_server(pool, idx, ex, permit);
                        ex.redispatched = true;
                        pool.counters.wredis.fetch_add(1, Relaxed);
                        pool.servers[idx].rt.counters.wredis.fetch_add(1, Relaxed);
                        continue;
                    }
                }
                // HAProxy's turn-around timer before retrying the same server.
                tokio::time::sleep(conf.timeout_connect.min(Duration::from_secs(1))).await;
            }
            Attempt::Dropped(back, err) => {
                // The server took a replayable request and closed without a
                // byte. It may be the request that kills it (a "query of
                // death"): never again on this server, and at most once on
                // another, at once.
                tracing::debug!(server = %server.name, cause = %err, "server closed without answering");
                server.rt.counters.eresp.fetch_add(1, Relaxed);
                pool.counters.eresp.fetch_add(1, Relaxed);
                req = back;
                let deadline = Instant::now() + conf.timeout_queue;
                let other = if moved_after_drop {
                    None
                } else {
                    pool.acquire(None, ip, Some(idx), deadline).await.ok()
                };
                let Some((other, permit)) = other else {
                    ex.termination = Termination::new(Who::Server, Phase::Headers, cookie_seen);
                    return Err((StatusCode::BAD_GATEWAY, false));
                };
                moved_after_drop = true;
                leave_server(pool, idx, ex);
                idx = other;
                enter_server(pool, idx, ex, permit);
                attempts += 1;
                ex.retries = attempts;
                ex.redispatched = true;
                pool.counters.wredis.fetch_add(1, Relaxed);
                pool.servers[idx].rt.counters.wredis.fetch_add(1, Relaxed);
            }
            Attempt::Timeout => {
                server.rt.counters.eresp.fetch_add(1, Relaxed);
                pool.counters.eresp.fetch_add(1, Relaxed);
                ex.termination = Termination::new(Who::ServerTimeout, Phase::Headers, cookie_seen);
                return Err((StatusCode::GATEWAY_TIMEOUT, false));
            }
            Attempt::Failed(err) => {
                tracing::debug!(server = %server.name, cause = %err, "server failed before answering");
                server.rt.counters.eresp.fetch_add(1, Relaxed);
                pool.counters.eresp.fetch_add(1, Relaxed);
                ex.termination = Termination::new(Who::Server, Phase::Headers, cookie_seen);
                return Err((StatusCode::BAD_GATEWAY, false));
            }
            Attempt::Client(err) => {
                // The client's body failed while being forwarded: the answer
                // is the client's (one answer per request), never a 502.
                tracing::debug!(client = %conn.client, cause = %err, "client body failed");
                let state = &conn.client_state;
                let (status, term) = if let Some(r) = state.rejection() {
                    state.answered.store(true, Relaxed);
                    fe.counters.ereq.fetch_add(1, Relaxed);
                    (
                        r.status,
                        Termination::new(Who::Proxy, Phase::Request, cookie_seen),
                    )
                } else if state.timed_out.load(Relaxed) {
                    (
                        408,
                        Termination::new(Who::ClientTimeout, Phase::Data, cookie_seen),
                    )
                } else {
                    (400, Termination::new(Who::Client, Phase::Data, cookie_seen))
                };
                ex.termination = term;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
                return Err((status, true));
            }
        }
    }
}

/// The server's response as the client gets it: our version, hop-by-hop
/// fields out, the persistence cookie (re)inserted, counters raised.
#[allow(clippy::too_many_arguments)] // one request's context, used once
fn respond(
    resp: Response<UpstreamBody>,
    pool: &Pool,
    idx: usize,
    sticky: Option<usize>,
    ck: CookieLog,
    method: &Method,
    http_close: bool,
    mut ex: Exchange,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    rewrite_head(
        &mut parts, pool, idx, sticky, ck, method, http_close, &mut ex,
    );
    ex.count_head(parts.status, &parts.headers, &body.size_hint());
    Response::from_parts(parts, ResponseBody::upstream(body, ex))
}

/// A server's 101 to a WebSocket request: the head goes to the client like
/// any response's (cookie inserted, counters raised) with the upgrade's
/// fields put back, and the [`Tunnel`] waits in `conn` for hyper to hand
/// over the client socket once the 101 is written.
#[allow(clippy::too_many_arguments)] // one request's context, used once
fn switch(
    resp: Response<UpstreamBody>,
    pool: &Pool,
    idx: usize,
    sticky: Option<usize>,
    ck: CookieLog,
    upgrade: Upgrade,
    mut ex: Exchange,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    let (mut parts, body) = resp.into_parts();
    let protocols: Vec<HeaderValue> = parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .cloned()
        .collect();
    rewrite_head(
        &mut parts,
        pool,
        idx,
        sticky,
        ck,
        &Method::GET,
        false,
        &mut ex,
    );
    if upgrade.h2 {
        // RFC 8441 §5: a 2xx opens the tunnel on the stream; h2 has no
        // connection-specific fields, and the accept value was ours.
        parts.status = StatusCode::OK;
        parts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
    } else {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        for v in protocols {
            parts.headers.append(header::UPGRADE, v);
        }
    }
    ex.count_head(
        parts.status,
        &parts.headers,
        &http_body::SizeHint::with_exact(0),
    );
    // `switched` bodies always hold their connection.
    let Some((server, early)) = body.into_tunnel() else {
        ex.termination = Termination::new(Who::Server, Phase::Headers, ck.seen);
        return local(StatusCode::BAD_GATEWAY, ex, true);
    };
    // HAProxy: without `timeout tunnel`, `timeout client` and `timeout
    // server` keep applying; the tunnel ends at the shorter of the two.
    let idle = pool
        .conf
        .timeout_tunnel
        .unwrap_or(ex.fe.conf.timeout_client.min(pool.conf.timeout_server));
    let tunnel = Tunnel {
        upgrade: upgrade.on,
        server,
        early,
        idle,
        ex,
    };
    if upgrade.h2 {
        // One stream of many: the tunnel runs beside the connection, which
        // stays open (and counted) while the stream is.
        tokio::spawn(tunnel.run());
    } else {
        conn.client_state.tunnel.store(true, Relaxed);
        *conn.tunnel.lock().unwrap_or_else(|e| e.into_inner()) = Some(tunnel);
    }
    Response::from_parts(parts, ResponseBody::full(Bytes::new(), None))
}

/// The response head as the client gets it: our version, hop-by-hop fields
/// out, the persistence cookie (re)inserted, counters raised.
#[allow(clippy::too_many_arguments)] // one request's context, used once
fn rewrite_head(
    parts: &mut http::response::Parts,
    pool: &Pool,
    idx: usize,
    sticky: Option<usize>,
    mut ck: CookieLog,
    method: &Method,
    http_close: bool,
    ex: &mut Exchange,
) {
    let fe = ex.fe.clone();
    let conf = &pool.conf;
    // The client talks to us, not to the server: our version, whatever the
    // server spoke (hyper answers an HTTP/1.0 client in kind).
    parts.version = http::Version::HTTP_11;
    let status = parts.status.as_u16();
    ex.status = status;
    strip_hop_by_hop(&mut parts.headers);
    let server = &pool.servers[idx];
    if let (Some(c), Some(prefix)) = (&conf.cookie, &pool.cookie_prefix) {
        if persist::strip_set_cookie(&mut parts.headers, prefix) {
            ck.action = b'D';
        }
        // Insert unless the client already holds a valid cookie for this
        // very server and `indirect` says not to repeat it.
        let valid_for_this = sticky == Some(idx) && ck.seen == b'V';
        if !(c.indirect && valid_for_this)
            && let Some(set) = &server.set_cookie
        {
            parts.headers.append(header::SET_COOKIE, set.clone());
            ck.action = b'I';
            if c.nocache && persist::is_cacheable(method, status, &parts.headers) {
                parts
                    .headers
                    .append(header::CACHE_CONTROL, HeaderValue::from_static("private"));
            }
        }
        ex.termination.cookie_seen = ck.seen;
        ex.termination.cookie_action = ck.action;
    }
    if http_close {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    add_hsts(&fe, &mut parts.headers);
    server.rt.counters.status(status);
    pool.counters.status(status);
    fe.counters.status(status);
}

fn enter_server(pool: &Pool, idx: usize, ex: &mut Exchange, permit: Option<OwnedSemaphorePermit>) {
    let s = &pool.servers[idx];
    s.rt.counters.enter();
    s.rt.counters.req_tot.fetch_add(1, Relaxed);
    ex.server = Some(idx);
    ex.permit = permit;
}

fn leave_server(pool: &Pool, idx: usize, ex: &mut Exchange) {
    pool.servers[idx].rt.counters.leave();
    ex.server = None;
    ex.permit = None;
}

enum Attempt {
    Ok(Response<UpstreamBody>, i64),
    /// Nothing reached the server: the request comes back for a retry.
    ConnectFailed(Request<RequestBody>, String),
    /// The server took a request that may be sent again and closed without
    /// a byte of answer: it comes back to try another server.
    Dropped(Request<RequestBody>, String),
    /// The server was silent for `timeout server`.
    Timeout,
    /// The server took the request and failed before answering.
    Failed(String),
    /// The client's request body failed while being forwarded.
    Client(String),
}

/// One attempt on one server: a pooled connection if one is idle (sending
/// again on a fresh one if it turns out dead before answering), else a new
/// connection. The client connection's task does all the IO (see `h1`).
async fn send(
    server: &crate::pool::Server,
    mut req: Request<RequestBody>,
    connect_timeout: Duration,
    limits: Limits,
    http_close: bool,
) -> Attempt {
    let start = Instant::now();
    // Without a body, a request is still whole after sending: it can go
    // again if the server closes without a word (the keep-alive race, or a
    // server that died), as HAProxy's `retry-on empty-response` does for
    // idempotent methods.
    let replayable = req.body().is_end_stream() && is_idempotent(req.method());
    // Other requests avoid connections idle long enough to meet a server's
    // keep-alive timeout (Apache's default is 5 s) while in flight.
    let max_idle = if replayable {
        Duration::from_secs(3600)
    } else {
        Duration::from_secs(2)
    };
    let mut pooled = if http_close {
        None
    } else {
        server.rt.idle.take(max_idle)
    };
    let method = req.method().clone();
    loop {
        let reused = pooled.is_some();
        let conn = match pooled.take() {
            Some(c) => c,
            None => match ServerConn::connect(server.rt.addr, connect_timeout).await {
                Ok(c) => c,
                Err(e) => {
                    return Attempt::ConnectFailed(
                        req,
                        format!("cannot connect to {}: {e}", server.rt.addr),
                    );
                }
            },
        };
        let tc = start.elapsed().as_millis() as i64;
        let idle = server.rt.idle.clone();
        let exchange = async {
            let mut conn = conn;
            let sent = conn
                .send(&mut req, http_close, limits.timeout)
                .await
                .map_err(|e| (e, false))?;
            // After an early answer the rest of the body was not sent: the
            // connection cannot carry another request.
            let reuse = !http_close && sent == Sent::Whole;
            conn.response(&method, idle, reuse, limits).await
        };
        match exchange.await {
            Ok(resp) => return Attempt::Ok(resp, tc),
            Err((SendError::Closed, false)) if replayable => {
                if reused {
                    tracing::debug!(server = %server.name, "idle connection was closed; sending again on a fresh one");
                    continue;
                }
                return Attempt::Dropped(
                    req,
                    format!("{} closed the connection without answering", server.rt.addr),
                );
            }
            Err((SendError::Timeout, _)) => return Attempt::Timeout,
            Err((SendError::Client(e), _)) => return Attempt::Client(e),
            Err((e, _)) => return Attempt::Failed(e.to_string()),
        }
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed list, and the
/// fields a `Connection` header names, except the end-to-end fields that
/// define the request or response ([`is_end_to_end`]).
///
/// Honouring every name lets any client delete fields the server relies on
/// (`Connection: Host` made the server see an HTTP/1.1 request without
/// Host; `Connection: Authorization` or `Cookie` drops credentials or the
/// persistence cookie; `Connection: X-Forwarded-For` what a proxy in front
/// added): the "hop-by-hop header abuse" that has bypassed access rules
/// behind other proxies. HAProxy keeps every named field; vakt still drops
/// names that are really hop-by-hop (a custom `X-Secret` meant for us only).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !is_end_to_end(n))
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// Fields a `Connection` header may name but never removes: they define the
/// message or who sent it, end to end.
fn is_end_to_end(n: &HeaderName) -> bool {
    matches!(
        n.as_str(),
        "host"
            | "authorization"
            | "cookie"
            | "set-cookie"
            | "content-length"
            | "content-type"
            | "content-encoding"
            | "cache-control"
            | "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-real-ip"
    )
}

/// `Strict-Transport-Security`, when the frontend sets it (HAProxy's
/// `http-response set-header`: on every response, the server's value
/// replaced).
fn add_hsts(fe: &FrontendState, h: &mut HeaderMap) {
    if let Some(v) = &fe.conf.hsts
        && let Ok(v) = HeaderValue::from_str(v)
    {
        h.insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
}

/// Plain HTTP sent to https: same host, path and query. A configured 301
/// becomes 308 for methods other than GET and HEAD, so that a POST stays a
/// POST with its body (RFC 9110 §15.4.9).
fn redirect_to_https(
    req: &Request<Incoming>,
    code: u16,
    tls_port: Option<u16>,
    mut ex: Exchange,
) -> Response<ResponseBody> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    // The Host as sent, but a plain `:80`; with `tls_port` (a TOML
    // listener whose TLS port is not 443), the host's name and that port, so
    // https lands where the proxy speaks it. haproxy.cfg keeps HAProxy's
    // behaviour (no port added).
    let host = match tls_port {
        None => host.strip_suffix(":80").unwrap_or(host).to_string(),
        Some(p) => {
            let name = match host.rsplit_once(':') {
                Some((h, port))
                    if !port.is_empty()
                        && port.bytes().all(|b| b.is_ascii_digit())
                        && (!h.contains(':') || h.ends_with(']')) =>
                {
                    h
                }
                _ => host,
            };
            format!("{name}:{p}")
        }
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let code = match code {
        301 if !matches!(*req.method(), Method::GET | Method::HEAD) => 308,
        c => c,
    };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    ex.termination = Termination::new(Who::Local, Phase::Request, b'-');
    ex.pseudo_server = Some("<NOSRV>");
    ex.status = code;
    ex.fe.counters.status(code);
    let mut h = HeaderMap::new();
    add_hsts(&ex.fe, &mut h);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(loc) = HeaderValue::from_str(&format!("https://{host}{target}")) {
        h.insert(header::LOCATION, loc);
    }
    full_response(status, h, Bytes::new(), ex)
}

/// A response the proxy makes itself, HAProxy-style.
pub(crate) fn local(status: StatusCode, mut ex: Exchange, close: bool) -> Response<ResponseBody> {
    let body = error_body(status);
    ex.status = status.as_u16();
    ex.fe.counters.status(status.as_u16());
    if let Some(p) = &ex.pool {
        p.counters.status(status.as_u16());
    }
    let mut h = HeaderMap::new();
    add_hsts(&ex.fe, &mut h);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    full_response(status, h, body, ex)
}

/// A response made here with a body in memory; its head counts in the
/// exchange's bytes out.
fn full_response(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    mut ex: Exchange,
) -> Response<ResponseBody> {
    let hint = http_body::SizeHint::with_exact(body.len() as u64);
    ex.count_head(status, &headers, &hint);
    let mut r = Response::new(ResponseBody::full(body, Some(ex)));
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

pub(crate) fn error_body(status: StatusCode) -> Bytes {
    let text = match status.as_u16() {
        400 => "Your browser sent an invalid request.",
        401 => "You need a valid user and password to access this content.",
        403 => "Request forbidden by administrative rules.",
        405 => "Method not allowed.",
        408 => "Your browser didn't send a complete request in time.",
        431 => "Your browser sent a request with headers that are too large.",
        502 => "The server returned an invalid or incomplete response.",
        503 => "No server is available to handle this request.",
        504 => "The server didn't respond in time.",
        _ => "",
    };
    Bytes::from(format!(
        "<html><body><h1>{} {}</h1>\n{text}\n</body></html>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    ))
}

/// Whether a page's Basic-auth login lets the request in (pages without
/// users are open).
fn logged_in(
    has_users: bool,
    credentials: &crate::auth::Credentials,
    req: &Request<Incoming>,
) -> bool {
    !has_users
        || credentials
            .check(req.headers().get(header::AUTHORIZATION))
            .is_some()
}

/// The 403 for a client outside a page's `allow` networks, as HAProxy's
/// `http-request deny` gives it (before any login; logged as `PR`).
fn refuse_client(mut ex: Exchange) -> Response<ResponseBody> {
    ex.termination = Termination::new(Who::Proxy, Phase::Request, b'-');
    local(StatusCode::FORBIDDEN, ex, false)
}

/// The 401 for a page's login, logged as HAProxy's `PR`.
fn refuse_login(mut ex: Exchange, challenge: &HeaderValue) -> Response<ResponseBody> {
    ex.termination = Termination::new(Who::Proxy, Phase::Request, b'-');
    unauthorized(ex, challenge.clone())
}

async fn stats_page(
    req: Request<Incoming>,
    rest: &str,
    mut ex: Exchange,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    ex.pseudo_server = Some("<STATS>");
    let fe = ex.fe.clone();
    let Some(page) = &fe.stats else {
        return local(StatusCode::NOT_FOUND, ex, false);
    };
    if !crate::config::allows(&page.conf.allow, conn.client.ip()) {
        return refuse_client(ex);
    }
    if !logged_in(!page.conf.users.is_empty(), &page.credentials, &req) {
        return refuse_login(ex, &page.challenge);
    }
    // The page's buttons exist only when the config asks for them (HAProxy's
    // `stats admin`) and only behind a login: their CSRF token is tied to
    // the credentials.
    let token = (page.conf.admin && !page.conf.users.is_empty()).then(|| {
        let auth = req.headers().get(header::AUTHORIZATION);
        crate::stats::csrf_token(auth.map_or(&b""[..], |v| v.as_bytes()))
    });
    if req.method() == Method::POST {
        return stats_action(req, token, ex, conn).await;
    }
    let snap = conn.shared.snapshot();
    let (body, ctype) = if rest.contains(";csv") {
        (crate::stats::render_csv(&snap), "text/plain")
    } else if rest.contains(";json") {
        (crate::stats::render_json(&snap), "application/json")
    } else {
        (
            crate::stats::render_html_at(
                &snap,
                &page.conf.realm,
                page.conf.refresh,
                &page.conf.uri,
                token.as_deref(),
            ),
            "text/html; charset=utf-8",
        )
    };
    let mut resp = page_response(body, ctype, ex);
    // The page is self-contained (inline CSS, no script): the browser is told
    // so, and loads or runs nothing else even if a name slipped past escaping.
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::stats::CSP),
    );
    resp
}

/// A drain/ready button of the stats page: the form is read (at most 4 KiB,
/// within 10 s, so a slow or huge post cannot hold the task), its token
/// checked, the server's admin state set as `set server ... state` on the
/// admin socket does, and the browser sent back to the page (303, so a
/// reload does not post again). Refusals are 400/403 with the reason.
async fn stats_action(
    req: Request<Incoming>,
    token: Option<String>,
    mut ex: Exchange,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    use http_body_util::BodyExt as _;
    let uri = ex
        .fe
        .stats
        .as_ref()
        .map_or_else(String::new, |p| p.conf.uri.clone());
    let body = http_body_util::Limited::new(req.into_body(), 4096).collect();
    let Ok(Ok(body)) = tokio::time::timeout(Duration::from_secs(10), body).await else {
        return local(StatusCode::BAD_REQUEST, ex, true);
    };
    let (status, text) = match token {
        None => (
            StatusCode::FORBIDDEN,
            "the stats page has no users, so it takes no actions: add users to its \
             `stats` settings, or use the admin socket"
                .to_string(),
        ),
        Some(token) => match crate::stats::read_action(&body.to_bytes(), &token) {
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
            Ok(a) => {
                let state = conn.shared.state.load();
                match state.pool(&a.backend).and_then(|p| p.find(&a.server)) {
                    None => (
                        StatusCode::BAD_REQUEST,
                        format!(
                            "no server `{}/{}` (a reload changed the servers?): reload the \
                             stats page",
                            a.backend, a.server
                        ),
                    ),
                    Some(srv) => {
                        srv.rt.set_admin(match a.action {
                            crate::stats::Action::Drain => crate::pool::AdminState::Drain,
                            crate::stats::Action::Ready => crate::pool::AdminState::Ready,
                        });
                        (StatusCode::SEE_OTHER, String::new())
                    }
                }
            }
        },
    };
    ex.status = status.as_u16();
    ex.fe.counters.status(status.as_u16());
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::stats::CSP),
    );
    if status == StatusCode::SEE_OTHER
        && let Ok(v) = HeaderValue::from_str(&uri)
    {
        h.insert(header::LOCATION, v);
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    full_response(status, h, Bytes::from(text), ex)
}

/// The Prometheus page, rendered from a snapshot taken now.
fn metrics_page(
    req: &Request<Incoming>,
    mut ex: Exchange,
    conn: &ConnInfo,
) -> Response<ResponseBody> {
    // HAProxy logs its exporter's requests under this pseudo-server.
    ex.pseudo_server = Some("<PROMEX>");
    // Locally processed, in the request phase: HAProxy's `LR`, with the
    // zero timers HAProxy logs for its exporter (halog counts -1 as an error).
    ex.termination = Termination::new(Who::Local, Phase::Request, b'-');
    (ex.tw, ex.tc, ex.tr) = (0, 0, 0);
    let fe = ex.fe.clone();
    let Some(page) = &fe.metrics else {
        return local(StatusCode::NOT_FOUND, ex, false);
    };
    if !crate::config::allows(&page.conf.allow, conn.client.ip()) {
        return refuse_client(ex);
    }
    if !logged_in(!page.conf.users.is_empty(), &page.credentials, req) {
        return refuse_login(ex, &page.challenge);
    }
    let body = crate::metrics::render(&conn.shared.snapshot());
    page_response(body, "text/plain; version=0.0.4", ex)
}

/// A 200 with a page the proxy rendered (stats, metrics).
fn page_response(body: String, ctype: &'static str, mut ex: Exchange) -> Response<ResponseBody> {
    ex.status = 200;
    ex.fe.counters.status(200);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    full_response(StatusCode::OK, h, Bytes::from(body), ex)
}

/// 401 with the page's Basic challenge.
fn unauthorized(mut ex: Exchange, challenge: HeaderValue) -> Response<ResponseBody> {
    let status = StatusCode::UNAUTHORIZED;
    ex.status = status.as_u16();
    ex.fe.counters.status(status.as_u16());
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    h.insert(header::WWW_AUTHENTICATE, challenge);
    full_response(status, h, error_body(status), ex)
}
