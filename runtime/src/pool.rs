//! Backend pools and their servers as the data path sees them: per-server
//! health and admin state, weights, limits and counters, all in atomics so
//! that requests never take a lock to read them. [`ServerRuntime`] outlives
//! reloads (matched by name and address), so health, counters and idle
//! connections survive a SIGHUP; [`Server`] is rebuilt from the config.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::balance::Balancer;
use crate::config;
use crate::stats;
use crate::upstream::IdlePool;

/// Traffic counters, named as in HAProxy's CSV.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub scur: AtomicU64,
    pub smax: AtomicU64,
    pub stot: AtomicU64,
    pub qcur: AtomicU64,
    pub qmax: AtomicU64,
    pub bin: AtomicU64,
    pub bout: AtomicU64,
    pub dreq: AtomicU64,
    pub ereq: AtomicU64,
    pub econ: AtomicU64,
    pub eresp: AtomicU64,
    pub wretr: AtomicU64,
    pub wredis: AtomicU64,
    pub hrsp: [AtomicU64; 6],
    pub req_tot: AtomicU64,
    /// Queue, connect, response-head and total times of requests a server
    /// answered (HAProxy's qtime, ctime, rtime, ttime); backends and servers.
    pub qtime: Timing,
    pub ctime: Timing,
    pub rtime: Timing,
    pub ttime: Timing,
}

/// HAProxy's sliding average over the last [`Timing::WINDOW`] samples
/// (`swrate_add_dynamic`/`swrate_avg` in freq_ctr.h, the same arithmetic,
/// so a scraper sees the numbers HAProxy would show), plus the maximum.
/// Lock-free: a compare-and-swap loop per sample, no allocation.
#[derive(Debug, Default)]
pub(crate) struct Timing {
    /// The running sum HAProxy keeps: about `WINDOW` times the average.
    sum: AtomicU64,
    /// Samples seen, up to `WINDOW` (the window grows with the first ones).
    samples: AtomicU64,
    max: AtomicU64,
}

impl Timing {
    /// HAProxy's `TIME_STATS_SAMPLES`.
    const WINDOW: u64 = 1024;

    pub fn add(&self, ms: u64) {
        let n = (self.samples.fetch_add(1, Relaxed) + 1).min(Self::WINDOW);
        if n == Self::WINDOW {
            // Keep the counter from growing without bound.
            self.samples.store(Self::WINDOW, Relaxed);
        }
        let _ = self
            .sum
            .fetch_update(Relaxed, Relaxed, |old| Some(old - old.div_ceil(n) + ms));
        self.max.fetch_max(ms, Relaxed);
    }

    /// The average in milliseconds (0 before the first sample).
    pub fn avg(&self) -> u64 {
        let n = self.samples.load(Relaxed).min(Self::WINDOW);
        if n == 0 {
            return 0;
        }
        self.sum.load(Relaxed).div_ceil(n)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }
}

impl Counters {
    /// One more current session; returns the new count.
    pub fn enter(&self) -> u64 {
        let n = self.scur.fetch_add(1, Relaxed) + 1;
        self.smax.fetch_max(n, Relaxed);
        self.stot.fetch_add(1, Relaxed);
        n
    }

    pub fn leave(&self) {
        self.scur.fetch_sub(1, Relaxed);
    }

    pub fn enqueue(&self) {
        let n = self.qcur.fetch_add(1, Relaxed) + 1;
        self.qmax.fetch_max(n, Relaxed);
    }

    pub fn dequeue(&self) {
        self.qcur.fetch_sub(1, Relaxed);
    }

    pub fn status(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.hrsp[i].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self, slim: u64) -> stats::Counters {
        let g = |a: &AtomicU64| a.load(Relaxed);
        stats::Counters {
            qcur: g(&self.qcur),
            qmax: g(&self.qmax),
            scur: g(&self.scur),
            smax: g(&self.smax),
            slim,
            stot: g(&self.stot),
            bin: g(&self.bin),
            bout: g(&self.bout),
            dreq: g(&self.dreq),
            dresp: 0,
            ereq: g(&self.ereq),
            econ: g(&self.econ),
            eresp: g(&self.eresp),
            wretr: g(&self.wretr),
            wredis: g(&self.wredis),
            hrsp: std::array::from_fn(|i| g(&self.hrsp[i])),
            req_tot: g(&self.req_tot),
            qtime: self.qtime.avg(),
            ctime: self.ctime.avg(),
            rtime: self.rtime.avg(),
            ttime: self.ttime.avg(),
            qtime_max: self.qtime.max(),
            ctime_max: self.ctime.max(),
            rtime_max: self.rtime.max(),
            ttime_max: self.ttime.max(),
        }
    }
}

/// What an operator asked of a server (admin socket, `vakt drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminState {
    /// Normal traffic.
    Ready = 0,
    /// No new unpersisted traffic; sticky sessions are still served.
    Drain = 1,
    /// No traffic at all.
    Maint = 2,
}

impl AdminState {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => AdminState::Drain,
            2 => AdminState::Maint,
            _ => AdminState::Ready,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// Outcome of the last health check, packed for the stats page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum CheckResult {
    None = 0,
    L4Ok,
    L4Con,
    L4Tout,
    L7Ok,
    L7Sts,
    L7Tout,
    L7Rsp,
}

impl CheckResult {
    fn from_u8(v: u8) -> Self {
        use CheckResult::*;
        [None, L4Ok, L4Con, L4Tout, L7Ok, L7Sts, L7Tout, L7Rsp]
            .get(usize::from(v))
            .copied()
            .unwrap_or(None)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::None => "",
            CheckResult::L4Ok => "L4OK",
            CheckResult::L4Con => "L4CON",
            CheckResult::L4Tout => "L4TOUT",
            CheckResult::L7Ok => "L7OK",
            CheckResult::L7Sts => "L7STS",
            CheckResult::L7Tout => "L7TOUT",
            CheckResult::L7Rsp => "L7RSP",
        }
    }
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The part of a server that survives reloads.
#[derive(Debug)]
pub struct ServerRuntime {
    pub addr: SocketAddr,
    /// 1 = UP, 0 = DOWN. Servers start UP, like HAProxy; see the `health` module.
    up: AtomicU8,
    /// Whether a check has ever passed: until then one failure marks DOWN.
    confirmed: AtomicU8,
    admin: AtomicU8,
    weight: AtomicU32,
    /// The configured weight the runtime weight was last reset to.
    conf_weight: AtomicU32,
    /// Consecutive check successes (while DOWN) or failures (while UP).
    pub(crate) streak: AtomicU32,
    pub(crate) last_change: AtomicU64,
    pub(crate) down_since: AtomicU64,
    pub(crate) downtime: AtomicU64,
    pub(crate) chkfail: AtomicU64,
    pub(crate) chkdown: AtomicU64,
    /// `CheckResult as u64 | code << 8 | duration_ms << 24`.
    pub(crate) last_check: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) idle: Arc<IdlePool>,
}

impl ServerRuntime {
    pub fn new(addr: SocketAddr, weight: u32) -> Self {
        ServerRuntime {
            addr,
            up: AtomicU8::new(1),
            confirmed: AtomicU8::new(0),
            admin: AtomicU8::new(AdminState::Ready as u8),
            weight: AtomicU32::new(weight),
            conf_weight: AtomicU32::new(weight),
            streak: AtomicU32::new(0),
            last_change: AtomicU64::new(now_unix()),
            down_since: AtomicU64::new(0),
            downtime: AtomicU64::new(0),
            chkfail: AtomicU64::new(0),
            chkdown: AtomicU64::new(0),
            last_check: AtomicU64::new(0),
            counters: Counters::default(),
            idle: Arc::new(IdlePool::new()),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed) == 1
    }

    pub(crate) fn is_confirmed(&self) -> bool {
        self.confirmed.load(Relaxed) == 1
    }

    pub(crate) fn confirm(&self) {
        self.confirmed.store(1, Relaxed);
    }

    /// Flips UP/DOWN; returns whether the state changed.
    pub(crate) fn set_up(&self, up: bool) -> bool {
        let was = self.up.swap(u8::from(up), Relaxed) == 1;
        if was == up {
            return false;
        }
        let now = now_unix();
        self.last_change.store(now, Relaxed);
        if up {
            let since = self.down_since.swap(0, Relaxed);
            if since > 0 {
                self.downtime.fetch_add(now.saturating_sub(since), Relaxed);
            }
        } else {
            self.down_since.store(now, Relaxed);
            self.chkdown.fetch_add(1, Relaxed);
        }
        self.streak.store(0, Relaxed);
        true
    }

    pub fn admin(&self) -> AdminState {
        AdminState::from_u8(self.admin.load(Relaxed))
    }

    pub fn set_admin(&self, s: AdminState) {
        if self.admin.swap(s as u8, Relaxed) != s as u8 {
            self.last_change.store(now_unix(), Relaxed);
        }
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    pub fn set_weight(&self, w: u32) {
        self.weight.store(w, Relaxed);
    }

    /// On reload: a changed configured weight replaces the runtime weight; an
    /// unchanged one keeps what an operator set through the admin socket.
    pub(crate) fn reconfigure_weight(&self, w: u32) {
        if self.conf_weight.swap(w, Relaxed) != w {
            self.weight.store(w, Relaxed);
        }
    }

    pub(crate) fn record_check(&self, r: CheckResult, code: u16, duration_ms: u64) {
        let packed = r as u64 | (u64::from(code) << 8) | (duration_ms.min(u32::MAX as u64) << 24);
        self.last_check.store(packed, Relaxed);
    }

    pub(crate) fn last_check(&self) -> (CheckResult, Option<u16>, Option<u64>) {
        let p = self.last_check.load(Relaxed);
        let r = CheckResult::from_u8((p & 0xff) as u8);
        if r == CheckResult::None {
            return (r, None, None);
        }
        let code = ((p >> 8) & 0xffff) as u16;
        (r, (code != 0).then_some(code), Some(p >> 24))
    }

    /// Total seconds DOWN, counting the current outage.
    pub(crate) fn downtime_now(&self) -> u64 {
        let since = self.down_since.load(Relaxed);
        let cur = if since > 0 {
            now_unix().saturating_sub(since)
        } else {
            0
        };
        self.downtime.load(Relaxed) + cur
    }
}

/// A server as configured, plus its runtime.
#[derive(Debug)]
pub struct Server {
    pub conf: config::Server,
    pub name: Arc<str>,
    /// `Set-Cookie` value naming this server, built once (`SERVERID=w1; path=/`).
    pub set_cookie: Option<HeaderValue>,
    /// `maxconn` slots; `None` = unlimited.
    pub limit: Option<Arc<Semaphore>>,
    pub rt: Arc<ServerRuntime>,
}

impl Server {
    /// Can take new, unpersisted traffic.
    pub fn usable(&self) -> bool {
        self.rt.is_up() && self.rt.admin() == AdminState::Ready && self.rt.weight() > 0
    }

    /// Can serve a request whose cookie names it (draining servers still do).
    pub fn can_persist(&self) -> bool {
        self.rt.is_up() && self.rt.admin() != AdminState::Maint
    }

    pub fn status_text(&self) -> String {
        let rt = &self.rt;
        match rt.admin() {
            AdminState::Maint => return "MAINT".into(),
            AdminState::Drain if rt.is_up() => return "DRAIN".into(),
            _ => {}
        }
        let Some(check) = &self.conf.check else {
            return "no check".into();
        };
        let streak = rt.streak.load(Relaxed);
        if rt.is_up() {
            if streak > 0 && rt.is_confirmed() {
                format!("UP {streak}/{}", check.fall)
            } else {
                "UP".into()
            }
        } else if streak > 0 {
            format!("DOWN {streak}/{}", check.rise)
        } else {
            "DOWN".into()
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueFail {
    /// No server can take the request at all.
    NoServer,
    /// Servers exist but stayed full until `timeout queue`.
    Timeout,
}

/// A backend: its servers, balancer and queue.
#[derive(Debug)]
pub struct Pool {
    pub conf: config::Backend,
    pub name: Arc<str>,
    pub servers: Vec<Server>,
    /// Indices of active (non-backup) servers, then of backups.
    pub balancer: Balancer,
    pub backup_balancer: Balancer,
    pub counters: Arc<Counters>,
    /// Woken whenever a server slot frees up, for requests waiting in queue.
    pub slot_freed: Arc<Notify>,
    /// Set-Cookie / Cookie header name prefix `NAME=`, built once.
    pub cookie_prefix: Option<String>,
}

impl Pool {
    /// A server for the request and its `maxconn` slot: the sticky one if any,
    /// else the balancer's pick among usable servers with a free slot (backups
    /// only when no active server is usable), waiting in queue while all are full.
    pub(crate) async fn acquire(
        &self,
        sticky: Option<usize>,
        ip: std::net::IpAddr,
        exclude: Option<usize>,
        deadline: Instant,
    ) -> Result<(usize, Option<OwnedSemaphorePermit>), QueueFail> {
        if let Some(i) = sticky {
            let s = &self.servers[i];
            let Some(sem) = &s.limit else {
                return Ok((i, None));
            };
            if let Ok(p) = sem.clone().try_acquire_owned() {
                return Ok((i, Some(p)));
            }
            s.rt.counters.enqueue();
            let r = tokio::time::timeout_at(deadline, sem.clone().acquire_owned()).await;
            s.rt.counters.dequeue();
            return match r {
                // The semaphore is never closed, so acquire cannot fail.
                Ok(Ok(p)) => Ok((i, Some(p))),
                _ => Err(QueueFail::Timeout),
            };
        }
        let servers = &self.servers;
        let free = |i: usize| {
            servers[i]
                .limit
                .as_ref()
                .is_none_or(|s| s.available_permits() > 0)
        };
        let usable = |i: usize| Some(i) != exclude && servers[i].usable();
        let mut queued = false;
        let result = loop {
            let notified = self.slot_freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let any_active = servers
                .iter()
                .enumerate()
                .any(|(i, s)| !s.conf.backup && usable(i));
            let balancer = if any_active {
                &self.balancer
            } else {
                &self.backup_balancer
            };
            if let Some(i) = balancer.select(servers, ip, |i| usable(i) && free(i)) {
                match &servers[i].limit {
                    None => break Ok((i, None)),
                    Some(sem) => {
                        if let Ok(p) = sem.clone().try_acquire_owned() {
                            break Ok((i, Some(p)));
                        }
                        continue;
                    }
                }
            }
            if balancer.select(servers, ip, usable).is_none() {
                break Err(QueueFail::NoServer);
            }
            if !queued {
                self.counters.enqueue();
                queued = true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break Err(QueueFail::Timeout);
            }
        };
        if queued {
            self.counters.dequeue();
        }
        result
    }

    pub fn find(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| &*s.name == name)
    }

    /// The server a persistence cookie value names.
    pub fn by_cookie(&self, value: &str) -> Option<usize> {
        self.servers
            .iter()
            .position(|s| s.conf.cookie.as_deref() == Some(value))
    }

    pub fn snapshot(&self) -> (stats::BackendRow, Vec<stats::ServerRow>) {
        let now = now_unix();
        let mut rows = Vec::with_capacity(self.servers.len());
        let (mut act, mut bck, mut weight) = (0, 0, 0);
        let mut chkdown = 0;
        let mut lastchg = u64::MAX;
        for s in &self.servers {
            let rt = &s.rt;
            if s.usable() {
                weight += rt.weight();
                if s.conf.backup {
                    bck += 1;
                } else {
                    act += 1;
                }
            }
            chkdown += rt.chkdown.load(Relaxed);
            let since = now.saturating_sub(rt.last_change.load(Relaxed));
            lastchg = lastchg.min(since);
            let (res, code, dur) = rt.last_check();
            rows.push(stats::ServerRow {
                name: s.name.to_string(),
                addr: rt.addr.to_string(),
                cookie: s.conf.cookie.clone(),
                counters: rt.counters.snapshot(s.conf.maxconn as u64),
                status: s.status_text(),
                weight: rt.weight(),
                backup: s.conf.backup,
                checked: s.conf.check.is_some(),
                chkfail: rt.chkfail.load(Relaxed),
                chkdown: rt.chkdown.load(Relaxed),
                lastchg: since,
                downtime: rt.downtime_now(),
                check_status: res.as_str().to_string(),
                check_code: code,
                check_duration_ms: dur,
            });
        }
        let row = stats::BackendRow {
            counters: self.counters.snapshot(0),
            status: if act + bck > 0 { "UP" } else { "DOWN" }.into(),
            balance: self.conf.balance.as_str().into(),
            weight,
            act,
            bck,
            chkdown,
            lastchg: if lastchg == u64::MAX { 0 } else { lastchg },
            downtime: 0,
        };
        (row, rows)
    }
}

impl crate::balance::Candidate for Server {
    fn weight(&self) -> u32 {
        self.rt.weight()
    }

    fn active(&self) -> u64 {
        self.rt.counters.scur.load(Relaxed)
    }
}
