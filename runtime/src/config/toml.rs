//! The TOML front end: reads the proxy's TOML file into a [`Config`], checking
//! everything up front and reporting every problem with file:line:column.
//! `[defaults]` fills the shared [`Settings`], each `[[listen]]` overrides
//! it and becomes one frontend plus one backend of the same name. One reader
//! function per table; value parsers both front ends use are in `value`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::defaults::{self, Settings};
use crate::config::limits;
use crate::config::reader::{self, Fields};
use crate::config::value::{parse_addr, parse_balance};

/// Reads and checks a TOML config file.
pub fn load(path: &Path) -> Result<(Config, Diagnostics), Diagnostics> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diagnostics::new();
        let src = Source::new(name.clone(), "");
        d.error_hint(
            &src,
            None,
            format!("cannot read the config: {e}"),
            "check the path given to --config",
        );
        d
    })?;
    from_toml(&Source::new(name, text))
}

/// Checks a TOML config. On success also returns the warnings.
pub fn from_toml(src: &Source) -> Result<(Config, Diagnostics), Diagnostics> {
    let doc = reader::parse(src)?;
    let mut d = Diagnostics::new();
    let mut root = Fields::root(src, &doc);

    let global = match root.table("global", &mut d) {
        Some(mut g) => {
            let global = read_global(&mut g, &mut d);
            g.finish(&mut d);
            global
        }
        None => Global::default(),
    };

    let base = match root.table("defaults", &mut d) {
        Some(mut t) => {
            let s = read_settings(&mut t, &Settings::toml(), &mut d);
            t.finish(&mut d);
            s
        }
        None => Settings::toml(),
    };

    let mut frontends = Vec::new();
    let mut backends = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut binds: HashMap<SocketAddr, String> = HashMap::new();
    for mut l in root.tables("listen", &mut d) {
        let (fe, be) = read_listen(&mut l, &base, backends.len(), &mut d);
        if names.insert(fe.name.clone(), 0).is_some() {
            d.error(
                src,
                l.span(),
                format!("two [[listen]] sections are named `{}`", fe.name),
            );
        }
        for b in &fe.bind {
            if let Some(other) = binds.insert(*b, fe.name.clone()) {
                d.error_hint(
                    src,
                    l.span(),
                    format!("`{}` binds {b}, which `{other}` binds already", fe.name),
                    "give each listener its own address or port",
                );
            }
        }
        frontends.push(fe);
        backends.push(be);
        l.finish(&mut d);
    }
    if frontends.is_empty() && !d.has_errors() {
        d.error_hint(
            src,
            None,
            "no [[listen]] section",
            "add one: [[listen]] name = \"app\" bind = [\"0.0.0.0:80\"] ...",
        );
    }
    root.finish(&mut d);
    d.into_result(Config {
        global,
        frontends,
        backends,
    })
}

fn read_global(g: &mut Fields, d: &mut Diagnostics) -> Global {
    let src = g.source();
    let mut out = Global::default();
    if let Some(n) = g.int("maxconn", 1, limits::MAX_CONN as i64, d) {
        out.maxconn = n as usize;
    }
    let mut stdout_rfc3164 = false;
    if let Some((s, span)) = g.str("log", d) {
        match parse_log_target(s) {
            Ok(t) => {
                stdout_rfc3164 = s == "stdout-rfc3164";
                out.log = t;
            }
            Err(e) => d.error_hint(
                src,
                Some(span),
                format!("`global.log` = \"{s}\": {e}"),
                "use \"udp://127.0.0.1:514\", \"unix:///dev/log\", \"file:///var/log/vakt/access.log\", \"stdout\" or \"off\"",
            ),
        }
    }
    out.syslog_format = if stdout_rfc3164 {
        SyslogFormat::Rfc3164
    } else {
        SyslogFormat::default_for(&out.log)
    };
    if let Some((s, span)) = g.str("syslog_format", d) {
        match SyslogFormat::NAMES.iter().find(|(n, _)| *n == s) {
            Some((_, f)) => out.syslog_format = *f,
            None => d.error_hint(
                src,
                Some(span),
                format!("unknown syslog_format \"{s}\""),
                "one of raw, rfc3164, rfc5424",
            ),
        }
    }
    if let Some(b) = g.bool("log_anonymize", d) {
        out.log_anonymize = b;
    }
    if let Some((s, span)) = g.str("log_facility", d) {
        match FACILITIES.iter().position(|f| *f == s) {
            Some(i) => out.log_facility = i as u8,
            None => d.error_hint(
                src,
                Some(span),
                format!("unknown syslog facility \"{s}\""),
                format!("one of {}", FACILITIES.join(", ")),
            ),
        }
    }
    if let Some(n) = g.int("spread_checks", 0, 50, d) {
        out.spread_checks = n as u8;
    }
    if let Some(s) = g.string("admin_socket", d) {
        out.admin_socket = Some(s.into());
    }
    if let Some(n) = g.int("threads", 1, limits::MAX_THREADS as i64, d) {
        out.threads = Some(n as usize);
    }
    if let Some(n) = g.int("max_header_size", 1024, 1 << 20, d) {
        out.max_header_size = n as usize;
    }
    if let Some(t) = g.duration("stop_timeout", d) {
        out.stop_timeout = t;
    }
    out.user = g.string("user", d);
    out.group = g.string("group", d);
    out
}

/// `global.log`: "off", "stdout", "stdout-rfc3164" (stdout with
/// `syslog_format = "rfc3164"`, the older spelling), "udp://IP[:PORT]",
/// "unix:///PATH" (a syslog daemon's socket) or "file:///PATH".
pub(crate) fn parse_log_target(s: &str) -> Result<LogTarget, String> {
    match s {
        "off" => Ok(LogTarget::Off),
        "stdout" | "stdout-rfc3164" => Ok(LogTarget::Stdout),
        _ => {
            if let Some(path) = s.strip_prefix("unix://") {
                return absolute(path).map(LogTarget::Unix);
            }
            if let Some(path) = s.strip_prefix("file://") {
                return absolute(path).map(LogTarget::File);
            }
            let Some(addr) = s.strip_prefix("udp://") else {
                return Err("unknown log target".into());
            };
            let addr = if addr.contains(':') {
                addr.to_string()
            } else {
                format!("{addr}:514")
            };
            addr.parse::<SocketAddr>()
                .map(LogTarget::Udp)
                .map_err(|_| format!("\"{addr}\" is not an IP address and port"))
        }
    }
}

fn absolute(path: &str) -> Result<PathBuf, String> {
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(format!(
            "\"{path}\" is not an absolute path (write three slashes: unix:///dev/log)"
        ))
    }
}

fn read_settings(t: &mut Fields, base: &Settings, d: &mut Diagnostics) -> Settings {
    let src = t.source();
    let mut s = base.clone();
    if let Some(n) = t.int("retries", 0, limits::MAX_RETRIES as i64, d) {
        s.retries = n as u32;
    }
    if let Some(b) = t.bool("redispatch", d) {
        s.redispatch = b;
    }
    if let Some(n) = t.int("maxconn", 1, limits::MAX_CONN as i64, d) {
        s.maxconn = n as usize;
    }
    if let Some(b) = t.bool("http_close", d) {
        s.http_close = b;
    }
    if let Some(b) = t.bool("forwardfor", d) {
        s.forwardfor = b;
    }
    if let Some(b) = t.bool("dontlognull", d) {
        s.dontlognull = b;
    }
    if let Some((v, span)) = t.str("log_format", d) {
        match v {
            "httplog" => s.log = Some(LogFormat::HttpLog),
            "off" => s.log = None,
            _ => d.error_hint(
                src,
                Some(span),
                format!("unknown log_format \"{v}\""),
                "use \"httplog\" or \"off\"",
            ),
        }
    }
    if let Some((v, span)) = t.str("balance", d) {
        match parse_balance(v) {
            Some(b) => s.balance = b,
            None => d.error_hint(
                src,
                Some(span),
                format!("unknown balance algorithm \"{v}\""),
                "use \"roundrobin\", \"leastconn\" or \"source\"",
            ),
        }
    }
    if let Some(mut to) = t.table("timeout", d) {
        if let Some(v) = to.duration("connect", d) {
            s.connect = v;
        }
        if let Some(v) = to.duration("client", d) {
            s.client = v;
        }
        if let Some(v) = to.duration("server", d) {
            s.server = v;
        }
        if let Some(v) = to.duration("queue", d) {
            s.queue = Some(v);
        }
        if let Some(v) = to.duration("http_request", d) {
            s.http_request = Some(v);
        }
        if let Some(v) = to.duration("tunnel", d) {
            s.tunnel = Some(v);
        }
        to.finish(d);
    }
    s
}

fn read_check(
    t: &mut Fields,
    base: Option<&Check>,
    timeout: Duration,
    d: &mut Diagnostics,
) -> Check {
    let src = t.source();
    let mut c = base.cloned().unwrap_or_else(|| defaults::check(timeout));
    if let Some((p, span)) = t.str("path", d) {
        if !p.starts_with('/') {
            d.error_hint(
                src,
                Some(span),
                format!("check path \"{p}\" must start with /"),
                "for example \"/health\"",
            );
        }
        c.path = Some(p.to_string());
    }
    if let Some(v) = t.duration("interval", d) {
        if v < Duration::from_millis(10) {
            d.error(src, t.span(), "check interval must be at least 10ms");
        }
        c.interval = v;
    }
    if let Some(n) = t.int("rise", 1, limits::MAX_RISE_FALL as i64, d) {
        c.rise = n as u32;
    }
    if let Some(n) = t.int("fall", 1, limits::MAX_RISE_FALL as i64, d) {
        c.fall = n as u32;
    }
    if let Some((e, span)) = t.str("expect", d) {
        match StatusExpect::parse(e) {
            Ok(x) => c.expect = x,
            Err(msg) => d.error(src, Some(span), format!("check expect: {msg}")),
        }
    }
    c.timeout = timeout.min(c.interval);
    c
}

/// One `[[listen]]`: a frontend and a backend of the same name, both at
/// `index`.
fn read_listen(
    l: &mut Fields,
    base: &Settings,
    index: usize,
    d: &mut Diagnostics,
) -> (Frontend, Backend) {
    let name = read_listen_name(l, index, d);
    let s = read_settings(l, base, d);
    let bind = read_bind(l, &name, d);
    let cookie = l.table("cookie", d).map(|mut c| {
        let out = read_cookie(&mut c, d);
        c.finish(d);
        out
    });
    let check_timeout = s.check_timeout();
    let check = l.table("check", d).map(|mut c| {
        let out = read_check(&mut c, None, check_timeout, d);
        c.finish(d);
        out
    });
    let stats = l.table("stats", d).map(|mut t| {
        let out = read_stats(&mut t, &name, d);
        t.finish(d);
        out
    });
    let metrics = l.table("metrics", d).map(|mut t| {
        let out = read_metrics(&mut t, d);
        t.finish(d);
        out
    });
    let listener = Listener {
        name: &name,
        sticky: cookie.is_some(),
        check: check.as_ref(),
        check_timeout,
    };
    let servers = read_servers(l, &listener, d);
    if servers.is_empty() && stats.is_none() && metrics.is_none() {
        d.error_hint(
            l.source(),
            l.span(),
            format!("listener `{name}` has no servers"),
            "add a [[listen.server]] with name and addr",
        );
    }
    let mut bind = bind;
    let tls = l.table("tls", d).map(|mut t| {
        let out = read_tls(&mut t, &name, d);
        t.finish(d);
        out
    });
    let mut fe = Frontend {
        stats,
        metrics,
        default_backend: Some(index),
        ..s.frontend(name.clone(), Vec::new())
    };
    if let Some(t) = tls {
        bind.extend(t.binds.iter().map(|b| b.addr));
        fe.redirect_port = t.binds.first().map(|b| b.addr.port()).filter(|p| *p != 443);
        fe.tls = t.binds;
        fe.redirect_https = t.redirect.then_some(301);
        fe.hsts = t.hsts;
        fe.acme_thumbprint = t.acme_thumbprint;
        fe.forwarded_proto = true;
    }
    fe.bind = bind;
    let be = s.backend(name, cookie, servers);
    (fe, be)
}

/// The listener's `name`; without one, `listen{index}` stands in so later
/// messages still name something.
fn read_listen_name(l: &mut Fields, index: usize, d: &mut Diagnostics) -> String {
    let src = l.source();
    match l.str("name", d) {
        Some((n, span)) => {
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
            {
                d.error_hint(
                    src,
                    Some(span),
                    format!("listener name \"{n}\" is not valid"),
                    "use letters, digits, _ - . :",
                );
            }
            n.to_string()
        }
        None => {
            d.error_hint(
                src,
                l.span(),
                format!("`{}` has no name", l.path()),
                "add name = \"app\"",
            );
            format!("listen{index}")
        }
    }
}

fn read_bind(l: &mut Fields, name: &str, d: &mut Diagnostics) -> Vec<SocketAddr> {
    read_addrs(
        l,
        &format!("`{name}` bind"),
        &format!("listener `{name}` has no bind address"),
        "add bind = [\"0.0.0.0:80\"]",
        d,
    )
}

/// The `bind` list of a table: every address checked, each mistake
/// reported with `what` in front; none at all is an error with `hint`.
fn read_addrs(
    t: &mut Fields,
    what: &str,
    missing: &str,
    hint: &str,
    d: &mut Diagnostics,
) -> Vec<SocketAddr> {
    let src = t.source();
    let mut addrs = Vec::new();
    match t.strings("bind", d) {
        Some(list) if !list.is_empty() => {
            for (b, span) in list {
                match parse_addr(b) {
                    Ok(a) => addrs.push(a),
                    Err(e) => d.error(src, Some(span), format!("{what}: {e}")),
                }
            }
        }
        _ => d.error_hint(src, t.span(), missing.to_string(), hint),
    }
    addrs
}

/// What a listener's `tls` table says.
struct Tls {
    binds: Vec<TlsBind>,
    redirect: bool,
    hsts: Option<String>,
    acme_thumbprint: Option<String>,
}

/// The `tls` table: `bind` (the TLS addresses), `crt` (PEM files or
/// folders), `alpn`, `min_version`, `redirect` (plain HTTP to https,
/// default on), `hsts`, `acme_thumbprint` (answer ACME HTTP-01 challenges
/// for the account with this JWK thumbprint).
fn read_tls(t: &mut Fields, name: &str, d: &mut Diagnostics) -> Tls {
    let src = t.source();
    let addrs = read_addrs(
        t,
        &format!("`{name}` tls.bind"),
        &format!("`{name}` tls has no bind address"),
        "add bind = [\"0.0.0.0:443\"]",
        d,
    );
    let certs: Vec<PathBuf> = match t.strings("crt", d) {
        Some(list) if !list.is_empty() => list.iter().map(|(c, _)| PathBuf::from(c)).collect(),
        _ => {
            d.error_hint(
                src,
                t.span(),
                format!("`{name}` tls has no certificate"),
                "add crt = [\"/etc/vakt/tls/site.pem\"] (chain and key in one PEM file, or a folder of them)",
            );
            Vec::new()
        }
    };
    let alpn = match t.strings("alpn", d) {
        Some(list) => {
            let mut out = Vec::new();
            for (p, span) in list {
                if matches!(p, "h2" | "http/1.1") {
                    out.push(p.to_string());
                } else {
                    d.error_hint(
                        src,
                        Some(span),
                        format!("alpn protocol \"{p}\" is not supported"),
                        "use \"h2\" and/or \"http/1.1\"",
                    );
                }
            }
            out
        }
        None => vec!["h2".into(), "http/1.1".into()],
    };
    let min_version = match t.str("min_version", d) {
        None | Some(("1.2", _)) => TlsVersion::Tls12,
        Some(("1.3", _)) => TlsVersion::Tls13,
        Some((v, span)) => {
            d.error_hint(
                src,
                Some(span),
                format!("min_version \"{v}\" is not supported"),
                "TLS 1.0 and 1.1 are broken: use \"1.2\" or \"1.3\"",
            );
            TlsVersion::Tls12
        }
    };
    let redirect = t.bool("redirect", d).unwrap_or(true);
    let hsts = t.string("hsts", d);
    let acme_thumbprint = t.str("acme_thumbprint", d).and_then(|(v, span)| {
        // A JWK thumbprint is a SHA-256 digest in unpadded base64url
        // (RFC 7638): 43 characters.
        if v.len() == 43 && v.bytes().all(crate::acme::is_base64url) {
            Some(v.to_string())
        } else {
            d.error_hint(
                src,
                Some(span),
                format!("acme_thumbprint \"{v}\" is not a JWK thumbprint"),
                "use the account key's SHA-256 JWK thumbprint, 43 characters of base64url (vakt up renders it)",
            );
            None
        }
    });
    Tls {
        binds: addrs
            .into_iter()
            .map(|addr| TlsBind {
                addr,
                certs: certs.clone(),
                alpn: alpn.clone(),
                min_version,
            })
            .collect(),
        redirect,
        hsts,
        acme_thumbprint,
    }
}

/// The `cookie` table: the persistence cookie, insert mode only.
fn read_cookie(c: &mut Fields, d: &mut Diagnostics) -> Cookie {
    let src = c.source();
    let name = match c.str("name", d) {
        Some((n, span)) => {
            if n.is_empty() || n.contains([';', '=', ',', ' ']) {
                d.error(
                    src,
                    Some(span),
                    format!("cookie name \"{n}\" is not a valid cookie name"),
                );
            }
            n.to_string()
        }
        None => {
            d.error_hint(
                src,
                c.span(),
                "the cookie has no name",
                "add name = \"SERVERID\"",
            );
            String::new()
        }
    };
    if let Some((m, span)) = c.str("mode", d)
        && m != "insert"
    {
        d.error_hint(
            src,
            Some(span),
            format!("cookie mode \"{m}\" is not supported"),
            "vakt supports mode = \"insert\" (HAProxy's rewrite and prefix modes are not implemented)",
        );
    }
    Cookie {
        name,
        indirect: c.bool("indirect", d).unwrap_or(false),
        nocache: c.bool("nocache", d).unwrap_or(false),
    }
}

/// The `stats` table of listener `name`.
fn read_stats(t: &mut Fields, name: &str, d: &mut Diagnostics) -> Stats {
    let src = t.source();
    let uri = match t.str("uri", d) {
        Some((u, span)) => {
            if !u.starts_with('/') {
                d.error_hint(
                    src,
                    Some(span),
                    format!("stats uri \"{u}\" must start with /"),
                    "for example \"/haproxy?stats\"",
                );
            }
            u.to_string()
        }
        None => "/haproxy?stats".to_string(),
    };
    let realm = t
        .string("realm", d)
        .unwrap_or_else(|| "vakt statistics".into());
    let mut users = Vec::new();
    for (u, span) in t.strings("users", d).unwrap_or_default() {
        match parse_stats_user(u) {
            Ok(user) => users.push(user),
            Err(e) => d.error_hint(
                src,
                Some(span),
                e,
                "store a hash: run `vakt hash-password` and write \"user:$6$...\"",
            ),
        }
    }
    if users.is_empty() {
        d.warning(
            src,
            t.span(),
            format!("the stats page of `{name}` has no users: anyone can read it"),
            Some("add users = [\"admin:$6$...\"] (see `vakt hash-password`)".into()),
        );
    }
    let refresh = t.duration("refresh", d);
    let admin = t.bool("admin", d).unwrap_or(false);
    if admin && users.is_empty() {
        d.error_hint(
            src,
            t.span(),
            format!("the stats page of `{name}` has admin buttons but no users"),
            "add users = [\"admin:$6$...\"]: anyone could drain the servers",
        );
    }
    Stats {
        uri,
        realm,
        users,
        refresh,
        admin,
        allow: read_allow(t, d),
    }
}

/// A page's `allow` list of client networks (empty when absent).
fn read_allow(t: &mut Fields, d: &mut Diagnostics) -> Vec<Cidr> {
    let src = t.source();
    let mut out = Vec::new();
    for (v, span) in t.strings("allow", d).unwrap_or_default() {
        match Cidr::parse(v) {
            Some(c) => out.push(c),
            None => d.error_hint(
                src,
                Some(span),
                format!("\"{v}\" is not an address or network"),
                "write an address or address/prefix: \"192.0.2.7\", \"10.10.0.0/24\", \"2001:db8::/32\"",
            ),
        }
    }
    out
}

/// The `metrics` table: the Prometheus page's path and, optionally, users
/// (same form as the stats page's).
fn read_metrics(t: &mut Fields, d: &mut Diagnostics) -> Metrics {
    let src = t.source();
    let uri = match t.str("uri", d) {
        Some((u, span)) => {
            if !u.starts_with('/') || u.contains('?') {
                d.error_hint(
                    src,
                    Some(span),
                    format!("metrics uri \"{u}\" must be a path starting with /"),
                    "for example \"/metrics\" (the query is not matched)",
                );
            }
            u.to_string()
        }
        None => "/metrics".to_string(),
    };
    let mut users = Vec::new();
    for (u, span) in t.strings("users", d).unwrap_or_default() {
        match parse_stats_user(u) {
            Ok(user) => users.push(user),
            Err(e) => d.error_hint(
                src,
                Some(span),
                e,
                "store a hash: run `vakt hash-password` and write \"user:$6$...\"",
            ),
        }
    }
    Metrics {
        uri,
        users,
        allow: read_allow(t, d),
    }
}

/// What a `[[listen.server]]` takes from its listener.
struct Listener<'a> {
    name: &'a str,
    /// The listener has a persistence cookie: servers need a value.
    sticky: bool,
    /// The listener's `check` table, every server's unless it says otherwise.
    check: Option<&'a Check>,
    check_timeout: Duration,
}

/// Every `[[listen.server]]`; names and cookie values are unique per listener.
fn read_servers(l: &mut Fields, listener: &Listener, d: &mut Diagnostics) -> Vec<Server> {
    let mut servers = Vec::new();
    let mut names: HashMap<String, ()> = HashMap::new();
    let mut cookies: HashMap<String, String> = HashMap::new();
    for mut sv in l.tables("server", d) {
        let server = read_server(&mut sv, listener, &mut names, &mut cookies, d);
        sv.finish(d);
        servers.extend(server);
    }
    servers
}

/// One server; `None` without a usable address (the error is recorded).
fn read_server(
    sv: &mut Fields,
    listener: &Listener,
    names: &mut HashMap<String, ()>,
    cookies: &mut HashMap<String, String>,
    d: &mut Diagnostics,
) -> Option<Server> {
    let src = sv.source();
    let name = listener.name;
    let sname = match sv.str("name", d) {
        Some((n, span)) => {
            if names.insert(n.to_string(), ()).is_some() {
                d.error(
                    src,
                    Some(span),
                    format!("`{name}` has two servers named `{n}`"),
                );
            }
            n.to_string()
        }
        None => {
            d.error_hint(
                src,
                sv.span(),
                format!("a server of `{name}` has no name"),
                "add name = \"web01\"",
            );
            String::new()
        }
    };
    let addr = match sv.str("addr", d) {
        Some((a, span)) => match parse_addr(a) {
            Ok(a) => Some(a),
            Err(e) => {
                d.error(src, Some(span), format!("server `{sname}` addr: {e}"));
                None
            }
        },
        None => {
            d.error_hint(
                src,
                sv.span(),
                format!("server `{sname}` has no addr"),
                "add addr = \"10.0.0.11:80\"",
            );
            None
        }
    };
    let scookie = sv.str("cookie", d).map(|(c, span)| {
        if c.is_empty() || c.contains([';', ',', ' ', '"']) {
            d.error(
                src,
                Some(span.clone()),
                format!("server `{sname}` cookie \"{c}\" is not a valid cookie value"),
            );
        }
        if let Some(other) = cookies.insert(c.to_string(), sname.clone()) {
            d.error_hint(
                src,
                Some(span),
                format!("servers `{other}` and `{sname}` share the cookie \"{c}\""),
                "give each server its own cookie value",
            );
        }
        c.to_string()
    });
    if listener.sticky && scookie.is_none() && !sname.is_empty() {
        d.warning(
            src,
            sv.span(),
            format!("server `{sname}` has no cookie value: its sessions will not stick"),
            Some("add cookie = \"w1\"".into()),
        );
    }
    let weight = sv.int("weight", 0, 256, d).unwrap_or(1) as u32;
    let maxconn = sv
        .int("maxconn", 0, limits::MAX_CONN as i64, d)
        .unwrap_or(0) as usize;
    let backup = sv.bool("backup", d).unwrap_or(false);
    let check = read_server_check(sv, listener, d);
    Some(Server {
        name: sname,
        addr: addr?,
        cookie: scookie,
        weight,
        maxconn,
        check,
        backup,
    })
}

/// A server's `check`: absent = the listener's, `false` = none, `true` = the
/// listener's or the default one, a table = the listener's with overrides.
fn read_server_check(sv: &mut Fields, listener: &Listener, d: &mut Diagnostics) -> Option<Check> {
    let base = listener.check;
    match sv.get("check") {
        None => base.cloned(),
        Some(f) if f.item.as_bool().is_some() => {
            if f.item.as_bool() == Some(true) {
                Some(base.cloned().unwrap_or_else(|| {
                    defaults::check(listener.check_timeout.min(defaults::CHECK_INTERVAL))
                }))
            } else {
                None
            }
        }
        Some(f) => f.as_table(&sv.name("check"), d).map(|mut c| {
            let out = read_check(&mut c, base, listener.check_timeout, d);
            c.finish(d);
            out
        }),
    }
}

/// "user:$6$salt$hash". Plain passwords are refused in TOML.
pub(crate) fn parse_stats_user(s: &str) -> Result<StatsUser, String> {
    let Some((name, pass)) = s.split_once(':') else {
        return Err(format!("stats user \"{s}\" must be \"name:hash\""));
    };
    if name.is_empty() {
        return Err("stats user has an empty name".into());
    }
    if !(pass.starts_with("$6$") || pass.starts_with("$5$")) {
        return Err(format!(
            "the password of stats user `{name}` is not a sha-crypt hash ($6$ or $5$); plain-text passwords are refused"
        ));
    }
    Ok(StatsUser {
        name: name.to_string(),
        password: Password::Hash(pass.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(Config, Diagnostics), Diagnostics> {
        from_toml(&Source::new("proxy.toml", text))
    }

    #[test]
    fn a_listener_with_only_metrics_is_the_prometheus_listener() {
        let text = "[global]\nlog = \"stdout-rfc3164\"\n[[listen]]\nname = \"prometheus\"\nbind = [\"10.0.0.5:8405\"]\n[listen.metrics]\nuri = \"/metrics\"\nusers = [\"prom:$6$abc$def\"]\n";
        let (c, _) = check(text).unwrap();
        assert_eq!(
            (&c.global.log, c.global.syslog_format),
            (&LogTarget::Stdout, SyslogFormat::Rfc3164)
        );
        let m = c.frontends[0].metrics.as_ref().unwrap();
        assert_eq!(
            (m.uri.as_str(), m.users[0].name.as_str()),
            ("/metrics", "prom")
        );
        let back = check(&to_toml(&c, &|p| p.to_string()).unwrap()).unwrap().0;
        assert_eq!(
            back.frontends[0].metrics, c.frontends[0].metrics,
            "to_toml keeps it"
        );
        let e = check("[[listen]]\nname = \"m\"\nbind = [\"10.0.0.5:8405\"]\n[listen.metrics]\nuri = \"metrics?x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("proxy.toml:5:7: error: metrics uri \"metrics?x\" must be a path"),
            "{e}"
        );
    }

    #[test]
    fn log_targets_formats_and_anonymize_are_read_and_written_back() {
        let listen = "[[listen]]\nname = \"a\"\nbind = [\"127.0.0.1:80\"]\n[[listen.server]]\nname = \"s\"\naddr = \"10.0.0.1:80\"\n";
        for (global, target, format) in [
            (
                "log = \"udp://127.0.0.1:5140\"",
                LogTarget::Udp("127.0.0.1:5140".parse().unwrap()),
                SyslogFormat::Rfc3164,
            ),
            (
                "log = \"unix:///dev/log\"\nsyslog_format = \"rfc5424\"",
                LogTarget::Unix("/dev/log".into()),
                SyslogFormat::Rfc5424,
            ),
            (
                "log = \"file:///var/log/vakt/access.log\"\nlog_anonymize = true",
                LogTarget::File("/var/log/vakt/access.log".into()),
                SyslogFormat::Raw,
            ),
            (
                "log = \"stdout-rfc3164\"",
                LogTarget::Stdout,
                SyslogFormat::Rfc3164,
            ),
        ] {
            let (c, _) = check(&format!("[global]\n{global}\n{listen}")).unwrap();
            assert_eq!((&c.global.log, c.global.syslog_format), (&target, format));
            assert_eq!(c.global.log_anonymize, global.contains("anonymize"));
            let back = check(&to_toml(&c, &|p| p.to_string()).unwrap()).unwrap().0;
            assert_eq!(back.global, c.global, "to_toml keeps {global}");
        }
        let e = check(&format!(
            "[global]\nlog = \"unix://dev/log\"\nsyslog_format = \"short\"\n{listen}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("proxy.toml:2:7: error: `global.log` = \"unix://dev/log\": \"dev/log\" is not an absolute path"), "{e}");
        assert!(
            e.contains("proxy.toml:3:17: error: unknown syslog_format \"short\""),
            "{e}"
        );
    }

    const GOOD: &str = r#"
[global]
maxconn = 4096
log = "udp://127.0.0.1:514"
log_facility = "local0"
spread_checks = 5

[defaults]
retries = 3
redispatch = true
forwardfor = true
timeout = { connect = "5s", client = "50s", server = "50s", queue = "5s", http_request = "10s" }

[[listen]]
name = "app_frontend"
bind = ["0.0.0.0:80"]
balance = "roundrobin"
cookie = { name = "SERVERID", mode = "insert", indirect = true, nocache = true }
check = { path = "/health", interval = "2s", rise = 2, fall = 5, expect = "2xx" }

[[listen.server]]
name = "web01"
addr = "10.10.0.11:80"
cookie = "w1"

[[listen.server]]
name = "web02"
addr = "10.10.0.12:80"
cookie = "w2"
weight = 3
check = false
"#;

    #[test]
    fn the_contract_example_reads_into_one_frontend_and_backend() {
        let (c, warnings) = check(GOOD).unwrap();
        assert!(warnings.items.is_empty(), "{warnings}");
        assert_eq!(
            c.global.log,
            LogTarget::Udp("127.0.0.1:514".parse().unwrap())
        );
        assert_eq!(c.global.log_facility, 16);
        let be = &c.backends[0];
        assert_eq!(be.servers.len(), 2);
        assert_eq!(be.servers[0].check.as_ref().unwrap().fall, 5);
        assert!(be.servers[1].check.is_none());
        assert_eq!(be.servers[1].weight, 3);
        assert!(be.redispatch && be.forwardfor);
        assert_eq!(c.frontends[0].default_backend, Some(0));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_positions() {
        let bad = GOOD
            .replace("\"10.10.0.12:80\"", "\"10.10.0.300:80\"")
            .replace("balance = \"roundrobin\"", "balance = \"random\"")
            .replace("cookie = \"w2\"", "cookie = \"w1\"");
        let err = check(&bad).unwrap_err().to_string();
        assert!(
            err.contains("proxy.toml:17:11: error: unknown balance algorithm \"random\""),
            "{err}"
        );
        assert!(err.contains("proxy.toml:28:8: error: server `web02` addr: \"10.10.0.300:80\" is not an IP address"), "{err}");
        assert!(err.contains("share the cookie \"w1\""), "{err}");
    }

    #[test]
    fn plaintext_stats_passwords_are_refused_with_the_fix() {
        let text = GOOD.replace(
            "[[listen.server]]\nname = \"web01\"",
            "stats = { uri = \"/s\", users = [\"admin:secret\"] }\n[[listen.server]]\nname = \"web01\"",
        );
        let err = check(&text).unwrap_err().to_string();
        assert!(err.contains("plain-text passwords are refused"), "{err}");
        assert!(err.contains("vakt hash-password"), "{err}");
    }
}
