//! One request's bookkeeping from the moment a server is chosen to the end of
//! its response body: the server slot it holds, the pooled connection it
//! borrowed, the counters it raised and the log line it owes. [`Exchange::finish`]
//! runs exactly once, when the body ends or is dropped, so a client that
//! vanishes mid-response still frees its slot and gets logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;
use tokio::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::log::LogRecord;
use crate::pool::Pool;
use crate::state::FrontendState;

/// Who ended a session: HAProxy's first termination character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// Ended normally (`-`).
    Nobody,
    /// The client aborted (`C`) or stalled past `timeout client` (`c`).
    Client,
    ClientTimeout,
    /// The server aborted or failed (`S`), or stalled past `timeout server`
    /// (`s`).
    Server,
    ServerTimeout,
    /// The proxy refused the request (`P`).
    Proxy,
    /// The proxy answered it itself, e.g. a redirect (`L`).
    Local,
}

/// The phase the session was in: HAProxy's second character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `-`: complete.
    Done,
    /// `R`: waiting for the request.
    Request,
    /// `Q`: in queue.
    Queue,
    /// `C`: connecting to a server.
    Connect,
    /// `H`: waiting for the response head.
    Headers,
    /// `D`: transferring data.
    Data,
}

/// HAProxy's four termination characters: who ended the session, in which
/// phase, and the persistence cookie's status on the request and what was
/// done with it (`-` when no cookie is set up; `N`, `I`, `D`, `V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Termination {
    pub who: Who,
    pub phase: Phase,
    pub cookie_seen: u8,
    pub cookie_action: u8,
}

impl Termination {
    pub const NORMAL: Termination = Termination {
        who: Who::Nobody,
        phase: Phase::Done,
        cookie_seen: b'-',
        cookie_action: b'-',
    };

    pub fn new(who: Who, phase: Phase, cookie_seen: u8) -> Self {
        Termination {
            who,
            phase,
            cookie_seen,
            cookie_action: b'-',
        }
    }

    /// As HAProxy writes it in a log line.
    pub fn bytes(self) -> [u8; 4] {
        let who = match self.who {
            Who::Nobody => b'-',
            Who::Client => b'C',
            Who::ClientTimeout => b'c',
            Who::Server => b'S',
            Who::ServerTimeout => b's',
            Who::Proxy => b'P',
            Who::Local => b'L',
        };
        let phase = match self.phase {
            Phase::Done => b'-',
            Phase::Request => b'R',
            Phase::Queue => b'Q',
            Phase::Connect => b'C',
            Phase::Headers => b'H',
            Phase::Data => b'D',
        };
        [who, phase, self.cookie_seen, self.cookie_action]
    }
}

/// Bytes of a request head as the client sent it: request line, fields,
/// blank line. Computed from the parsed head (hyper keeps no raw copy); it
/// differs from the wire only by optional whitespace around field values.
pub(crate) fn request_head_len<B>(req: &http::Request<B>) -> u64 {
    let uri = req.uri();
    let mut target = uri.path_and_query().map_or(1, |p| p.as_str().len());
    if let Some(a) = uri.authority() {
        target += a.as_str().len() + uri.scheme_str().map_or(0, |s| s.len() + 3);
    }
    // "METHOD SP target SP HTTP/1.1 CRLF" ... CRLF
    let line = req.method().as_str().len() + 1 + target + 1 + 8 + 2;
    (line + fields_len(req.headers()) + 2) as u64
}

/// Bytes of a response head as hyper writes it for `status` and `headers`:
/// status line, fields, the `date` and framing fields hyper adds when they
/// are missing (`content-length` for a body of known size, else chunked),
/// blank line.
pub(crate) fn response_head_len(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &http_body::SizeHint,
) -> u64 {
    use http::header;
    let reason = status.canonical_reason().map_or(0, str::len);
    let mut n = 9 + 3 + 1 + reason + 2 + fields_len(headers) + 2;
    if !headers.contains_key(header::DATE) {
        n += "date: Tue, 01 Dec 2026 15:04:41 GMT\r\n".len();
    }
    let bodiless = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    if !bodiless
        && !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.contains_key(header::TRANSFER_ENCODING)
    {
        n += match body.exact() {
            Some(len) => "content-length: \r\n".len() + decimal_digits(len),
            None => "transfer-encoding: chunked\r\n".len(),
        };
    }
    n as u64
}

/// "name: value\r\n" for every field.
fn fields_len(h: &http::HeaderMap) -> usize {
    h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}

fn decimal_digits(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

#[derive(Debug)]
pub(crate) struct Exchange {
    pub fe: Arc<FrontendState>,
    pub pool: Option<Arc<Pool>>,
    /// Index of the server in `pool.servers`, once one is chosen.
    pub server: Option<usize>,
    pub permit: Option<OwnedSemaphorePermit>,
    pub client: SocketAddr,
    pub accept_date: SystemTime,
    pub start: Instant,
    /// Milliseconds: waiting for the head, in queue, connecting, for the
    /// response head (-1 = not reached), as HAProxy's Tq/Tw/Tc/Tr.
    pub tq: i64,
    pub tw: i64,
    pub tc: i64,
    pub tr: i64,
    pub status: u16,
    /// Bytes from the client: the request head as received, plus the body
    /// bytes counted in `body_in` as they pass (HAProxy's `bin`).
    pub bytes_in: u64,
    /// Shared with the `RequestBody` forwarding
    /// the client's body; `None` for requests without a body.
    pub body_in: Option<Arc<AtomicU64>>,
    /// Bytes to the client, head included (HAProxy's `bout` and the log's
    /// bytes_read).
    pub bytes_out: u64,
    /// The client sent `Connection: close`: hyper then adds that field to
    /// the response, which the head's byte count must include.
    pub client_close: bool,
    pub termination: Termination,
    pub retries: u32,
    pub redispatched: bool,
    pub request_line: Option<String>,
    /// Special server name for the log (`<STATS>`, `<NOSRV>`).
    pub pseudo_server: Option<&'static str>,
}

impl Exchange {
    pub fn new(fe: Arc<FrontendState>, client: SocketAddr, start: Instant, tq: i64) -> Self {
        Exchange {
            fe,
            pool: None,
            server: None,
            permit: None,
            client,
            accept_date: SystemTime::now(),
            start,
            tq,
            tw: -1,
            tc: -1,
            tr: -1,
            status: 0,
            bytes_in: 0,
            body_in: None,
            bytes_out: 0,
            client_close: false,
            termination: Termination::NORMAL,
            retries: 0,
            redispatched: false,
            request_line: None,
            pseudo_server: None,
        }
    }

    /// Counts the response head in `bytes_out` (see [`response_head_len`]).
    pub fn count_head(
        &mut self,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &http_body::SizeHint,
    ) {
        let mut n = response_head_len(status, headers, body);
        if self.client_close && !headers.contains_key(http::header::CONNECTION) {
            n += "connection: close\r\n".len() as u64;
        }
        self.bytes_out += n;
    }

    pub fn add_bytes_out(&mut self, n: u64) {
        self.bytes_out += n;
    }

    /// The server's body ended in an error: `SD`, or `sD` when the server
    /// went silent for `timeout server`.
    pub fn server_aborted(&mut self, timed_out: bool) {
        if self.termination.who == Who::Nobody {
            self.termination.who = if timed_out {
                Who::ServerTimeout
            } else {
                Who::Server
            };
            self.termination.phase = Phase::Data;
        }
    }

    pub fn elapsed_ms(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }

    /// Closes the books. `complete` = the body was sent to its end.
    pub fn finish(mut self, complete: bool) {
        if !complete && self.termination.who == Who::Nobody {
            self.termination.who = Who::Client;
            self.termination.phase = Phase::Data;
        }
        if let Some(body) = &self.body_in {
            self.bytes_in += body.load(Relaxed);
        }
        // Logged first: HAProxy's connection counts include this request.
        if self.fe.conf.log.is_some() {
            self.log();
        }
        let fe = &self.fe;
        fe.counters.bin.fetch_add(self.bytes_in, Relaxed);
        fe.counters.bout.fetch_add(self.bytes_out, Relaxed);
        if let Some(pool) = &self.pool {
            pool.counters.bin.fetch_add(self.bytes_in, Relaxed);
            pool.counters.bout.fetch_add(self.bytes_out, Relaxed);
            if let Some(i) = self.server {
                let s = &pool.servers[i];
                s.rt.counters.bin.fetch_add(self.bytes_in, Relaxed);
                s.rt.counters.bout.fetch_add(self.bytes_out, Relaxed);
                // HAProxy averages the times of requests a server answered
                // (a response head arrived: Tr >= 0).
                if self.tr >= 0 {
                    let total = self.elapsed_ms() + self.tq.max(0);
                    for c in [&pool.counters, &s.rt.counters] {
                        c.qtime.add(self.tw.max(0) as u64);
                        c.ctime.add(self.tc.max(0) as u64);
                        c.rtime.add(self.tr as u64);
                        c.ttime.add(total.max(0) as u64);
                    }
                }
                s.rt.counters.leave();
            }
            pool.counters.leave();
            if self.permit.take().is_some() && pool.counters.qcur.load(Relaxed) > 0 {
                pool.slot_freed.notify_waiters();
            }
        }
    }

    fn log(&self) {
        let fe = &self.fe;
        let (backend, server): (&str, &str) = match (&self.pool, self.server) {
            (Some(p), Some(i)) => (&p.name, &p.servers[i].name),
            (Some(p), None) => (&p.name, self.pseudo_server.unwrap_or("<NOSRV>")),
            (None, _) => (&fe.name, self.pseudo_server.unwrap_or("<NOSRV>")),
        };
        let (srv_conn, srv_queue) = match (&self.pool, self.server) {
            (Some(p), Some(i)) => {
                let c = &p.servers[i].rt.counters;
                (c.scur.load(Relaxed), c.qcur.load(Relaxed))
            }
            _ => (0, 0),
        };
        let (beconn, be_queue) = match &self.pool {
            Some(p) => (p.counters.scur.load(Relaxed), p.counters.qcur.load(Relaxed)),
            None => (0, 0),
        };
        let record = LogRecord {
            client: self.client,
            accept_date: self.accept_date,
            frontend: &fe.name,
            backend,
            server,
            tq: self.tq,
            tw: self.tw,
            tc: self.tc,
            tr: self.tr,
            tt: self.elapsed_ms() + self.tq.max(0),
            status: self.status,
            bytes: self.bytes_out,
            termination: self.termination.bytes(),
            actconn: fe.global_conns.load(Relaxed),
            feconn: fe.counters.scur.load(Relaxed),
            beconn,
            srv_conn,
            retries: self.retries,
            redispatched: self.redispatched,
            srv_queue,
            backend_queue: be_queue,
            request_line: self.request_line.as_deref().unwrap_or("<BADREQ>"),
        };
        fe.logger.log(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_count_every_byte_of_the_wire_form() {
        let raw = "GET /cart?x=1 HTTP/1.1\r\nHost: shop\r\nUser-Agent: t\r\n\r\n";
        let req = http::Request::get("/cart?x=1")
            .header("host", "shop")
            .header("user-agent", "t")
            .body(())
            .unwrap();
        assert_eq!(request_head_len(&req), raw.len() as u64);
        let abs = http::Request::get("http://shop:8080/a").body(()).unwrap();
        assert_eq!(
            request_head_len(&abs),
            "GET http://shop:8080/a HTTP/1.1\r\n\r\n".len() as u64
        );
    }

    #[test]
    fn response_heads_include_what_hyper_adds() {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", http::HeaderValue::from_static("text/html"));
        let wire = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ndate: Tue, 01 Dec 2026 15:04:41 GMT\r\ncontent-length: 1234\r\n\r\n";
        let hint = http_body::SizeHint::with_exact(1234);
        assert_eq!(
            response_head_len(http::StatusCode::OK, &h, &hint),
            wire.len() as u64
        );
        let chunked = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ndate: Tue, 01 Dec 2026 15:04:41 GMT\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(
            response_head_len(http::StatusCode::OK, &h, &http_body::SizeHint::new()),
            chunked.len() as u64
        );
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(10), 2);
    }
}
