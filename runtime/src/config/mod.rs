//! The proxy's configuration: one typed [`Config`] that every front end
//! produces and the rest of the runtime consumes. Values here are resolved:
//! defaults are folded in, addresses parsed, password hashes checked for
//! form. Nothing in this module opens sockets.
//!
//! The model is HAProxy's: a [`Frontend`] accepts connections and picks a
//! [`Backend`]; a TOML `[[listen]]` is one of each under the same name.
//!
//! # Layout
//! Imports point down this list, never sideways between the front ends:
//! - `toml`, `haproxy`: the two front ends (TOML, haproxy.cfg).
//! - `emit`: a `Config` back out as proxy TOML (`vakt import`).
//! - `defaults`: `Settings`, the defaults model both front ends fill.
//! - `value`, `limits`: shared value parsers and numeric bounds.
//! - `reader` (spanned TOML walker, durations) over `diag` (`Diagnostics`).

mod defaults;
mod diag;
mod emit;
mod haproxy;
pub(crate) mod limits;
pub mod reader;
mod toml;
mod value;

pub use diag::{Diagnostic, Diagnostics, Severity, Source, closest};
pub use emit::to_toml;
pub use haproxy::{from_haproxy, load_haproxy};
pub use toml::{from_toml, load};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Syslog facility names by code (RFC 5424 §6.2.1, HAProxy's spelling).
pub(crate) const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2",
    "ftp", "ntp", "audit", "alert", "cron2", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub global: Global,
    pub frontends: Vec<Frontend>,
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// All client connections of the process together; past it, accept waits.
    pub maxconn: usize,
    pub log: LogTarget,
    /// The header before each line: `Raw` for stdout and files unless asked,
    /// RFC 3164 for syslog (HAProxy's defaults).
    pub syslog_format: SyslogFormat,
    /// Syslog facility code (local0 = 16).
    pub log_facility: u8,
    /// Client addresses in log lines cut to their /24 (IPv4) or /48 (IPv6)
    /// network (`log::anonymize`); what servers get in X-Forwarded-For is
    /// untouched.
    pub log_anonymize: bool,
    /// Percent of random jitter on check intervals (HAProxy `spread-checks`).
    pub spread_checks: u8,
    pub admin_socket: Option<PathBuf>,
    /// Worker threads; `None` = one per core.
    pub threads: Option<usize>,
    /// Largest request head (request line + headers) accepted, in bytes; past
    /// it the client gets 431.
    pub max_header_size: usize,
    /// How long a stopping process lets in-flight requests finish.
    pub stop_timeout: Duration,
    /// Drop privileges to this user/group after binding (haproxy.cfg `user`).
    pub user: Option<String>,
    pub group: Option<String>,
    /// Detach from the terminal (haproxy.cfg `daemon`, or `-D`).
    pub daemon: bool,
    /// Write the process id here (haproxy.cfg `pidfile`, or `-p`).
    pub pidfile: Option<PathBuf>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            maxconn: 4096,
            log: LogTarget::Stdout,
            syslog_format: SyslogFormat::Raw,
            log_facility: 16,
            log_anonymize: false,
            spread_checks: 0,
            admin_socket: None,
            threads: None,
            max_header_size: 16384,
            stop_timeout: Duration::from_secs(30),
            user: None,
            group: None,
            daemon: false,
            pidfile: None,
        }
    }
}

/// Where log lines go; [`SyslogFormat`] says what header they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Off,
    Stdout,
    /// A syslog daemon over UDP (haproxy.cfg `log 127.0.0.1:514 local0`).
    Udp(SocketAddr),
    /// A syslog daemon's unix datagram socket (`log /dev/log local0`).
    Unix(PathBuf),
    /// vakt's own file (mode 0640), appended to and reopened on reload, so
    /// logrotate's postrotate can move it away.
    File(PathBuf),
}

/// The header each log line carries (haproxy.cfg `log ... format F`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    /// The bare line.
    Raw,
    /// `<134>Dec  2 09:01:02 vakt[42]: ` (with the host name before the tag
    /// on stdout and in files, as HAProxy's `log stdout format rfc3164`):
    /// what `halog` and log shippers expect.
    Rfc3164,
    /// `<134>1 2026-12-02T09:01:02.123456+00:00 host vakt 42 - - `.
    Rfc5424,
}

impl SyslogFormat {
    pub const NAMES: [(&'static str, SyslogFormat); 3] = [
        ("raw", SyslogFormat::Raw),
        ("rfc3164", SyslogFormat::Rfc3164),
        ("rfc5424", SyslogFormat::Rfc5424),
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyslogFormat::Raw => "raw",
            SyslogFormat::Rfc3164 => "rfc3164",
            SyslogFormat::Rfc5424 => "rfc5424",
        }
    }

    /// The format a target gets when none is named: raw lines on stdout and
    /// in files, RFC 3164 to a syslog daemon (HAProxy's defaults).
    pub fn default_for(target: &LogTarget) -> SyslogFormat {
        match target {
            LogTarget::Udp(_) | LogTarget::Unix(_) => SyslogFormat::Rfc3164,
            _ => SyslogFormat::Raw,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    pub name: String,
    pub bind: Vec<SocketAddr>,
    /// Per-frontend connection limit.
    pub maxconn: usize,
    pub timeout_client: Duration,
    pub timeout_http_request: Duration,
    pub http_close: bool,
    pub forwardfor: bool,
    /// `None` = no request log for this frontend.
    pub log: Option<LogFormat>,
    pub dontlognull: bool,
    pub stats: Option<Stats>,
    /// The Prometheus page (haproxy.cfg's `use-service prometheus-exporter`).
    pub metrics: Option<Metrics>,
    /// First match wins; else `default_backend`.
    pub routes: Vec<Route>,
    /// Index into [`Config::backends`].
    pub default_backend: Option<usize>,
    /// The addresses of `bind` that speak TLS, and how.
    pub tls: Vec<TlsBind>,
    /// Plain-HTTP requests are redirected to https with this status
    /// (HAProxy `http-request redirect scheme https unless { ssl_fc }`).
    pub redirect_https: Option<u16>,
    /// The port the redirect names (a TOML listener whose TLS port is not
    /// 443); `None` keeps the Host as sent, as HAProxy does.
    pub redirect_port: Option<u16>,
    /// `Strict-Transport-Security` value added to every response.
    pub hsts: Option<String>,
    /// Servers get `X-Forwarded-Proto: https` or `http` (the client's own
    /// is replaced).
    pub forwarded_proto: bool,
    /// ACME HTTP-01 answered by the proxy itself, statelessly: a GET of
    /// `/.well-known/acme-challenge/TOKEN` gets `TOKEN.THUMBPRINT`, the key
    /// authorization of the account whose JWK thumbprint this is (RFC 8555
    /// §8.3). Every LB knows it, so whichever one the CA reaches answers.
    pub acme_thumbprint: Option<String>,
}

/// A TLS listening address: certificates (PEM files with chain and key, or
/// folders of them), ALPN protocols in order of preference, lowest version.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsBind {
    pub addr: SocketAddr,
    pub certs: Vec<PathBuf>,
    pub alpn: Vec<String>,
    pub min_version: TlsVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl Frontend {
    /// The TLS settings of one of its addresses, if it speaks TLS.
    pub fn tls_at(&self, addr: SocketAddr) -> Option<&TlsBind> {
        self.tls.iter().find(|t| t.addr == addr)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    HttpLog,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub rule: RouteRule,
    /// Index into [`Config::backends`].
    pub backend: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteRule {
    PathPrefix(Vec<String>),
    /// Host header equals one of these (lower case, port stripped).
    Host(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    pub name: String,
    pub balance: Balance,
    pub cookie: Option<Cookie>,
    /// Connection attempts after the first failure, per request.
    pub retries: u32,
    pub redispatch: bool,
    pub http_close: bool,
    pub forwardfor: bool,
    pub timeout_connect: Duration,
    pub timeout_server: Duration,
    pub timeout_queue: Duration,
    /// `timeout tunnel` (a WebSocket's longest silence both ways); `None`
    /// = the shorter of the frontend's `timeout client` and `timeout_server`.
    pub timeout_tunnel: Option<Duration>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
    Source,
}

impl Balance {
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "roundrobin",
            Balance::LeastConn => "leastconn",
            Balance::Source => "source",
        }
    }
}

/// `cookie NAME insert [indirect] [nocache]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub indirect: bool,
    pub nocache: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// HTTP GET of this path; `None` = plain TCP connect check.
    pub path: Option<String>,
    pub interval: Duration,
    pub rise: u32,
    pub fall: u32,
    pub expect: StatusExpect,
    /// A check must answer within this (timeout connect + timeout server,
    /// capped at the interval as HAProxy does with `timeout check` unset).
    pub timeout: Duration,
}

/// Which status codes pass an HTTP check: "2xx", "200", "2xx,3xx".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusExpect(pub Vec<StatusMatch>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Exact(u16),
    Class(u16),
}

impl StatusExpect {
    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|m| match *m {
            StatusMatch::Exact(s) => s == status,
            StatusMatch::Class(c) => status / 100 == c,
        })
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split([',', '|']).map(str::trim) {
            let b = part.as_bytes();
            if b.len() == 3 && (b"12345".contains(&b[0])) && &part[1..].to_ascii_lowercase() == "xx"
            {
                out.push(StatusMatch::Class(u16::from(b[0] - b'0')));
            } else if let Ok(n @ 100..=599) = part.parse::<u16>() {
                out.push(StatusMatch::Exact(n));
            } else {
                return Err(format!(
                    "\"{part}\" is not a status code (100-599) or class (\"2xx\")"
                ));
            }
        }
        if out.is_empty() {
            return Err("no status given".into());
        }
        Ok(StatusExpect(out))
    }
}

impl std::fmt::Display for StatusExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match m {
                StatusMatch::Exact(s) => write!(f, "{s}")?,
                StatusMatch::Class(c) => write!(f, "{c}xx")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Requests whose path-and-query starts with this get the stats page.
    pub uri: String,
    pub realm: String,
    /// Empty = no authentication (HAProxy allows it; we warn).
    pub users: Vec<StatsUser>,
    pub refresh: Option<Duration>,
    /// The page's Drain/Ready buttons (HAProxy's `stats admin if TRUE`);
    /// only with users, off by default.
    pub admin: bool,
    /// Client networks that may see the page (HAProxy's `stats http-request
    /// deny unless { src ... }`); others get 403 before any login. Empty:
    /// every client.
    pub allow: Vec<Cidr>,
}

/// The Prometheus exporter page, with HAProxy's metric names.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Requests whose path is exactly this get the page (the query is
    /// ignored, as HAProxy's `path` fetch does).
    pub uri: String,
    /// Empty = no authentication (the usual setup: a listener on a private
    /// address); else Basic auth as for the stats page.
    pub users: Vec<StatsUser>,
    /// Client networks that may scrape (403 for others); empty: every client.
    pub allow: Vec<Cidr>,
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `192.0.2.1`, `2001:db8::/32`):
/// a page's allow list here, the inventory's `[firewall] admin` in the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d`, `a.b.c.d/n` or the IPv6 forms; `None` when malformed.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|n| *n <= max)?,
        };
        Some(Cidr { addr, prefix })
    }

    /// The network of exactly one address.
    pub fn host(addr: std::net::IpAddr) -> Cidr {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Cidr { addr, prefix }
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` lies in this network. An IPv4 client seen on an IPv6
    /// socket (`::ffff:a.b.c.d`) counts as its IPv4 address.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let bits = |a: std::net::IpAddr| -> (u128, u32) {
            match a.to_canonical() {
                std::net::IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                std::net::IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, width), (addr, w2)) = (bits(self.addr), bits(ip));
        if width != w2 {
            return false;
        }
        let host_bits = width - u32::from(self.prefix);
        // A /0 keeps no bits; checked_shr guards the shift by the full width.
        net.checked_shr(host_bits).unwrap_or(0) == addr.checked_shr(host_bits).unwrap_or(0)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether a page with allow list `allow` lets `client` in (empty: all).
pub fn allows(allow: &[Cidr], client: std::net::IpAddr) -> bool {
    allow.is_empty() || allow.iter().any(|c| c.contains(client))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsUser {
    pub name: String,
    pub password: Password,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// A crypt(3) hash: `$6$` (sha-512) or `$5$` (sha-256).
    Hash(String),
    /// Only from haproxy.cfg `stats auth user:pass`, where it is legal.
    Plain(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    /// Value of the persistence cookie that names this server.
    pub cookie: Option<String>,
    /// 0..=256; 0 = takes no new unpersisted traffic.
    pub weight: u32,
    /// 0 = no limit; else excess requests queue.
    pub maxconn: usize,
    /// `None` = not checked (always considered UP).
    pub check: Option<Check>,
    pub backup: bool,
}
