//! The proxy settings a defaults block gives to the proxies after it and each
//! proxy may override: haproxy.cfg's `defaults` section and TOML's
//! `[defaults]` table fill the same [`Settings`], and [`Settings::frontend`]
//! and [`Settings::backend`] turn it into the typed parts, so a setting is
//! added in one place. Also the check a server gets when nothing says more.
//! How a setting is spelled stays with each front end.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    Backend, Balance, Check, Cookie, Frontend, LogFormat, Server, StatusExpect, StatusMatch,
};

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    pub retries: u32,
    pub redispatch: bool,
    pub maxconn: usize,
    pub http_close: bool,
    pub forwardfor: bool,
    /// The request log; haproxy.cfg also needs `log global` to log at all.
    pub log: Option<LogFormat>,
    pub dontlognull: bool,
    pub balance: Balance,
    pub connect: Duration,
    pub client: Duration,
    pub server: Duration,
    /// `None` = as long as `connect` (HAProxy, `timeout queue` unset).
    pub queue: Option<Duration>,
    /// `None` = as long as `client` (HAProxy, `timeout http-request` unset).
    pub http_request: Option<Duration>,
    /// `timeout tunnel`: the longest silence both ways in a WebSocket
    /// tunnel; `None` = `client` and `server` keep applying (HAProxy).
    pub tunnel: Option<Duration>,
}

/// HAProxy's values where haproxy.cfg says nothing (and vakt's timeouts where
/// HAProxy has none: it warns and waits forever).
impl Default for Settings {
    fn default() -> Self {
        Settings {
            retries: 3,
            redispatch: false,
            maxconn: 2000,
            http_close: false,
            forwardfor: false,
            log: None,
            dontlognull: false,
            balance: Balance::RoundRobin,
            connect: Duration::from_secs(5),
            client: Duration::from_secs(50),
            server: Duration::from_secs(50),
            queue: None,
            http_request: None,
            tunnel: None,
        }
    }
}

impl Settings {
    /// Where the TOML file says nothing: as haproxy.cfg, but a listener logs
    /// its requests, and the queue and request-head timeouts have values of
    /// their own (the `[defaults]` example in README).
    pub(crate) fn toml() -> Self {
        Settings {
            log: Some(LogFormat::HttpLog),
            queue: Some(Duration::from_secs(5)),
            http_request: Some(Duration::from_secs(10)),
            ..Settings::default()
        }
    }

    /// How long a health check may take: connect plus server timeout, capped
    /// later at the check's interval (HAProxy with `timeout check` unset).
    pub(crate) fn check_timeout(&self) -> Duration {
        self.connect + self.server
    }

    /// The frontend these settings make; routes, stats and the default
    /// backend are the caller's.
    pub(crate) fn frontend(&self, name: String, bind: Vec<SocketAddr>) -> Frontend {
        Frontend {
            name,
            bind,
            maxconn: self.maxconn,
            timeout_client: self.client,
            timeout_http_request: self.http_request.unwrap_or(self.client),
            http_close: self.http_close,
            forwardfor: self.forwardfor,
            log: self.log,
            dontlognull: self.dontlognull,
            stats: None,
            metrics: None,
            routes: Vec::new(),
            default_backend: None,
            tls: Vec::new(),
            redirect_https: None,
            redirect_port: None,
            hsts: None,
            forwarded_proto: false,
            acme_thumbprint: None,
        }
    }

    /// The backend these settings make for `servers`.
    pub(crate) fn backend(
        &self,
        name: String,
        cookie: Option<Cookie>,
        servers: Vec<Server>,
    ) -> Backend {
        Backend {
            name,
            balance: self.balance,
            cookie,
            retries: self.retries,
            redispatch: self.redispatch,
            http_close: self.http_close,
            forwardfor: self.forwardfor,
            timeout_connect: self.connect,
            timeout_server: self.server,
            timeout_queue: self.queue.unwrap_or(self.connect),
            timeout_tunnel: self.tunnel,
            servers,
        }
    }
}

/// Check interval, rise and fall when nothing sets them (HAProxy's `inter
/// 2s`, `rise 2`, `fall 3`).
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(2);
pub(crate) const CHECK_RISE: u32 = 2;
pub(crate) const CHECK_FALL: u32 = 3;

/// The statuses an HTTP check accepts when nothing says: 2xx and 3xx, as
/// HAProxy's `option httpchk` without `http-check expect`.
pub(crate) fn check_expect() -> StatusExpect {
    StatusExpect(vec![StatusMatch::Class(2), StatusMatch::Class(3)])
}

/// The check a server gets from a bare `check`, answering within `timeout`.
pub(crate) fn check(timeout: Duration) -> Check {
    Check {
        path: None,
        interval: CHECK_INTERVAL,
        rise: CHECK_RISE,
        fall: CHECK_FALL,
        expect: check_expect(),
        timeout,
    }
}
