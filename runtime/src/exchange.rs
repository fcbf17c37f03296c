//! One request's bookkeeping from the moment a server is chosen to the end of
//! its response body: the server slot it holds, the pooled connection it
//! borrowed, the counters it raised and the log line it owes. [`Exchange::finish`]
//! runs exactly once, when the body ends or is dropped, so a client that
//! vanishes mid-response still frees its slot and gets logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;
use tokio::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::log::LogRecord;
use crate::pool::Pool;
use crate::state::FrontendState;

/// HAProxy's four termination characters: who ended the session (`C`
/// client, `S` server, `P` proxy, `c`/`s` a client/server timeout), in which
/// phase (`R` request, `Q` queue, `C` connect, `H` response head, `D` data),
/// and the cookie's status on the request (`-` when no cookie is set up).
pub(crate) fn termination(who: u8, phase: u8, cookie: u8) -> [u8; 4] {
    [who, phase, cookie, b'-']
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
    pub bytes_out: u64,
    /// HAProxy's four termination-state characters.
    pub termination: [u8; 4],
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
            bytes_out: 0,
            termination: *b"----",
            retries: 0,
            redispatched: false,
            request_line: None,
            pseudo_server: None,
        }
    }

    pub fn add_bytes_out(&mut self, n: u64) {
        self.bytes_out += n;
    }

    /// The server's body ended in an error: `SD`, or `sD` when the server
    /// went silent for `timeout server`.
    pub fn server_aborted(&mut self, timed_out: bool) {
        if self.termination[0] == b'-' {
            self.termination[0] = if timed_out { b's' } else { b'S' };
            self.termination[1] = b'D';
        }
    }

    pub fn elapsed_ms(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }

    /// Closes the books. `complete` = the body was sent to its end.
    pub fn finish(mut self, complete: bool) {
        if !complete && self.termination[0] == b'-' {
            self.termination[0] = b'C';
            self.termination[1] = b'D';
        }
        // Logged first: HAProxy's connection counts include this request.
        if self.fe.conf.log.is_some() {
            self.log();
        }
        let fe = &self.fe;
        fe.counters.bout.fetch_add(self.bytes_out, Relaxed);
        if let Some(pool) = &self.pool {
            pool.counters.bout.fetch_add(self.bytes_out, Relaxed);
            if let Some(i) = self.server {
                let s = &pool.servers[i];
                s.rt.counters.bout.fetch_add(self.bytes_out, Relaxed);
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
            termination: self.termination,
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
