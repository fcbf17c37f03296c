//! The haproxy.cfg front end: reads HAProxy's configuration language (the
//! keywords of the classic cluster, in their 1.4 and 2.x spellings) into the
//! same [`Config`] as the TOML front end. Every keyword or option vakt does
//! not implement is an error naming file, line and keyword: a silently
//! ignored `maxconn` or `timeout` is an outage waiting to happen.
//!
//! Syntax (HAProxy manual §2.2–2.3): words split on blanks; `\ `, `\#`,
//! `\\`, `\'`, `\"` escapes; "weak" double quotes expand `$VAR`/`${VAR}`;
//! 'strong' single quotes expand nothing; `#` starts a comment.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::limits::{MAX_CONN, MAX_RETRIES, MAX_RISE_FALL, MAX_THREADS};
use super::toml::{parse_addr, parse_balance};
use super::*;

/// Reads and checks a haproxy.cfg file; environment variables come from the
/// process environment.
pub fn load_haproxy(path: &Path) -> Result<(Config, Diagnostics), Diagnostics> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diagnostics::new();
        d.error_hint(
            &Source::new(name.clone(), ""),
            None,
            format!("cannot read the config: {e}"),
            "check the path given to -f",
        );
        d
    })?;
    from_haproxy(&Source::new(name, text), &|v| std::env::var(v).ok())
}

/// One word of a line, unquoted and unescaped, with its position.
#[derive(Debug, Clone)]
struct Word {
    text: String,
    span: Range<usize>,
}

#[derive(Debug)]
struct Line {
    words: Vec<Word>,
}

fn tokenize(src: &Source, env: &dyn Fn(&str) -> Option<String>, d: &mut Diagnostics) -> Vec<Line> {
    let text = src.text();
    let mut lines = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let base = offset;
        offset += raw.len();
        let bytes = raw.trim_end_matches(['\n', '\r']).as_bytes();
        let mut words = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'#' {
                break;
            }
            let start = i;
            let mut word: Vec<u8> = Vec::new();
            let mut quote: Option<u8> = None;
            while i < bytes.len() {
                let c = bytes[i];
                match quote {
                    None if c == b' ' || c == b'\t' || c == b'#' => break,
                    None | Some(b'"') if c == b'\\' && i + 1 < bytes.len() => {
                        let n = bytes[i + 1];
                        if matches!(n, b' ' | b'#' | b'\\' | b'\'' | b'"' | b'$') {
                            word.push(n);
                        } else {
                            word.extend_from_slice(&[c, n]);
                        }
                        i += 2;
                        continue;
                    }
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    Some(q) if c == q => quote = None,
                    Some(b'"') if c == b'$' => {
                        let (name, len) = var_name(&bytes[i + 1..]);
                        if name.is_empty() {
                            word.push(c);
                        } else {
                            match env(&name) {
                                Some(v) => word.extend_from_slice(v.as_bytes()),
                                None => d.error_hint(
                                    src,
                                    Some(base + i..base + i + 1 + len),
                                    format!("environment variable `{name}` is not set"),
                                    format!(
                                        "export {name}=... before starting, or write the value"
                                    ),
                                ),
                            }
                            i += 1 + len;
                            continue;
                        }
                    }
                    _ => word.push(c),
                }
                i += 1;
            }
            if quote.is_some() {
                d.error(src, Some(base + start..base + i), "unterminated quote");
            }
            words.push(Word {
                text: String::from_utf8_lossy(&word).into_owned(),
                span: base + start..base + i,
            });
        }
        lines.push(Line { words });
    }
    lines
}

/// `NAME` or `{NAME}` after a `$`; returns the name and bytes consumed.
fn var_name(b: &[u8]) -> (String, usize) {
    if b.first() == Some(&b'{') {
        if let Some(end) = b.iter().position(|&c| c == b'}') {
            return (String::from_utf8_lossy(&b[1..end]).into_owned(), end + 1);
        }
        return (String::new(), 0);
    }
    let n = b
        .iter()
        .enumerate()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if n == 0 || b[0].is_ascii_digit() {
        return (String::new(), 0);
    }
    (String::from_utf8_lossy(&b[..n]).into_owned(), n)
}

/// A HAProxy time: a number with an optional unit; no unit = milliseconds.
fn parse_time(s: &str) -> Result<Duration, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .map(Duration::from_millis)
            .filter(|d| *d <= super::reader::MAX_DURATION)
            .ok_or_else(|| format!("\"{s}\" is too large: at most 2147483647 (ms)"));
    }
    super::reader::parse_duration(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Global,
    Defaults,
    Listen,
    Frontend,
    Backend,
    Userlist,
}

/// What a `defaults` section gives to the proxies after it.
#[derive(Debug, Clone)]
struct Defaults {
    retries: u32,
    redispatch: bool,
    maxconn: usize,
    http_close: bool,
    forwardfor: bool,
    log: Option<LogFormat>,
    dontlognull: bool,
    balance: Balance,
    connect: Duration,
    client: Duration,
    server: Duration,
    queue: Option<Duration>,
    http_request: Option<Duration>,
    check_path: Option<String>,
    expect: Option<StatusExpect>,
    server_opts: ServerOpts,
    /// Whether `log global` was given: HAProxy logs nothing for a proxy
    /// without a log line.
    logs: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
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
            check_path: None,
            expect: None,
            server_opts: ServerOpts::default(),
            logs: false,
        }
    }
}

/// `server` / `default-server` options.
#[derive(Debug, Clone, Default)]
struct ServerOpts {
    check: Option<bool>,
    inter: Option<Duration>,
    rise: Option<u32>,
    fall: Option<u32>,
    weight: Option<u32>,
    maxconn: Option<usize>,
    backup: Option<bool>,
    cookie: Option<String>,
}

#[derive(Debug)]
struct Section {
    kind: Kind,
    name: String,
    span: Range<usize>,
    s: Defaults,
    bind: Vec<SocketAddr>,
    stats: Option<Stats>,
    stats_enabled: bool,
    cookie: Option<Cookie>,
    servers: Vec<(Server, ServerOpts, Range<usize>)>,
    acls: HashMap<String, RouteRule>,
    use_backend: Vec<(String, String, Range<usize>)>,
    default_backend: Option<(String, Range<usize>)>,
}

impl Section {
    fn new(kind: Kind, name: &str, span: Range<usize>, defaults: &Defaults) -> Self {
        Section {
            kind,
            name: name.to_string(),
            span,
            s: defaults.clone(),
            bind: Vec::new(),
            stats: None,
            stats_enabled: false,
            cookie: None,
            servers: Vec::new(),
            acls: HashMap::new(),
            use_backend: Vec::new(),
            default_backend: None,
        }
    }
}

/// Reads a haproxy.cfg text.
pub fn from_haproxy(
    src: &Source,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Diagnostics), Diagnostics> {
    let mut d = Diagnostics::new();
    let lines = tokenize(src, env, &mut d);
    let mut global = Global::default();
    let mut global_log: Option<LogTarget> = None;
    let mut defaults = Defaults::default();
    let mut sections: Vec<Section> = Vec::new();
    let mut kind = None::<Kind>;
    let mut userlists: HashMap<String, Vec<StatsUser>> = HashMap::new();
    let mut cur_userlist = String::new();

    for line in &lines {
        let w = &line.words;
        let Some(first) = w.first() else { continue };
        let kw = first.text.as_str();
        let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
        let span = |i: usize| w.get(i).map_or(first.span.clone(), |x| x.span.clone());

        // Section headers.
        let header = match kw {
            "global" => Some(Kind::Global),
            "defaults" => Some(Kind::Defaults),
            "listen" => Some(Kind::Listen),
            "frontend" => Some(Kind::Frontend),
            "backend" => Some(Kind::Backend),
            "userlist" => Some(Kind::Userlist),
            _ => None,
        };
        if let Some(k) = header {
            kind = Some(k);
            match k {
                Kind::Global => {}
                Kind::Defaults => defaults = Defaults::default(),
                Kind::Userlist => {
                    cur_userlist = arg(1).unwrap_or("").to_string();
                    userlists.entry(cur_userlist.clone()).or_default();
                }
                _ => {
                    let Some(name) = arg(1) else {
                        d.error_hint(
                            src,
                            Some(first.span.clone()),
                            format!("`{kw}` needs a name"),
                            format!("{kw} app"),
                        );
                        continue;
                    };
                    if sections
                        .iter()
                        .any(|s| s.name == name && s.kind != Kind::Frontend && k != Kind::Frontend)
                    {
                        d.error(
                            src,
                            Some(span(1)),
                            format!("a proxy named `{name}` is defined twice"),
                        );
                    }
                    let whole = first.span.start..w.last().map_or(first.span.end, |x| x.span.end);
                    let mut sec = Section::new(k, name, whole, &defaults);
                    // HAProxy 1.4: `listen NAME ADDR:PORT`.
                    if let Some(addr) = arg(2) {
                        if k == Kind::Listen {
                            d.warning(
                                src,
                                Some(span(2)),
                                format!("`listen {name} {addr}` is HAProxy 1.4 syntax; HAProxy 2.x needs a `bind` line"),
                                Some(format!("write `listen {name}` and `bind {addr}`")),
                            );
                        }
                        if k == Kind::Backend {
                            d.error(src, Some(span(2)), "a backend has no address");
                        }
                        for a in addr.split(',') {
                            match parse_bind(a) {
                                Ok(x) => sec.bind.push(x),
                                Err(e) => d.error(src, Some(span(2)), e),
                            }
                        }
                    }
                    sections.push(sec);
                }
            }
            continue;
        }

        let Some(k) = kind else {
            d.error_hint(
                src,
                Some(first.span.clone()),
                format!("`{kw}` outside of any section"),
                "start with `global`, `defaults`, `listen`, `frontend` or `backend`",
            );
            continue;
        };
        match k {
            Kind::Global => global_kw(src, w, &mut global, &mut global_log, &mut d),
            Kind::Userlist => match (kw, arg(2), arg(3)) {
                ("user", Some("password"), Some(h)) => userlists
                    .entry(cur_userlist.clone())
                    .or_default()
                    .push(StatsUser {
                        name: arg(1).unwrap_or("").into(),
                        password: Password::Hash(h.into()),
                    }),
                ("user", Some("insecure-password"), Some(p)) => userlists
                    .entry(cur_userlist.clone())
                    .or_default()
                    .push(StatsUser {
                        name: arg(1).unwrap_or("").into(),
                        password: Password::Plain(p.into()),
                    }),
                ("group", ..) => {}
                _ => unsupported(src, &mut d, first, "userlist"),
            },
            Kind::Defaults => {
                let mut scratch = Section::new(Kind::Defaults, "", 0..0, &defaults);
                proxy_kw(src, w, &mut scratch, &mut d);
                defaults = scratch.s;
            }
            _ => {
                let Some(sec) = sections.last_mut() else {
                    continue;
                };
                proxy_kw(src, w, sec, &mut d);
            }
        }
    }

    if let Some(t) = global_log {
        global.log = t;
    } else {
        global.log = LogTarget::Off;
    }

    // Build backends (listen + backend) then frontends (listen + frontend).
    let mut backends = Vec::new();
    let mut backend_index: HashMap<String, usize> = HashMap::new();
    for sec in sections
        .iter()
        .filter(|s| matches!(s.kind, Kind::Listen | Kind::Backend))
    {
        if sec.kind == Kind::Listen && sec.servers.is_empty() {
            continue;
        }
        let s = &sec.s;
        let check_timeout = s.connect + s.server;
        let mut servers = Vec::new();
        for (srv, o, span) in &sec.servers {
            let mut srv = srv.clone();
            if o.check == Some(true) {
                let interval = o.inter.unwrap_or(Duration::from_secs(2));
                srv.check = Some(Check {
                    path: s.check_path.clone(),
                    interval,
                    rise: o.rise.unwrap_or(2),
                    fall: o.fall.unwrap_or(3),
                    expect: s.expect.clone().unwrap_or(StatusExpect(vec![
                        StatusMatch::Class(2),
                        StatusMatch::Class(3),
                    ])),
                    timeout: check_timeout.min(interval),
                });
            }
            if sec.cookie.is_some() && srv.cookie.is_none() {
                d.warning(
                    src,
                    Some(span.clone()),
                    format!(
                        "server `{}` has no cookie value: its sessions will not stick",
                        srv.name
                    ),
                    Some("add `cookie w1` to the server line".into()),
                );
            }
            servers.push(srv);
        }
        backend_index.insert(sec.name.clone(), backends.len());
        backends.push(Backend {
            name: sec.name.clone(),
            balance: s.balance,
            cookie: sec.cookie.clone(),
            retries: s.retries,
            redispatch: s.redispatch,
            http_close: s.http_close,
            forwardfor: s.forwardfor,
            timeout_connect: s.connect,
            timeout_server: s.server,
            timeout_queue: s.queue.unwrap_or(s.connect),
            servers,
        });
    }
    let mut frontends = Vec::new();
    for sec in sections
        .iter()
        .filter(|s| matches!(s.kind, Kind::Listen | Kind::Frontend))
    {
        if sec.bind.is_empty() {
            d.error_hint(
                src,
                Some(sec.span.clone()),
                format!("`{}` has no address to listen on", sec.name),
                "add `bind 0.0.0.0:80`",
            );
            continue;
        }
        let mut routes = Vec::new();
        for (be, acl, span) in &sec.use_backend {
            let Some(&bi) = backend_index.get(be) else {
                d.error(
                    src,
                    Some(span.clone()),
                    format!("use_backend: no backend named `{be}`"),
                );
                continue;
            };
            match sec.acls.get(acl) {
                Some(rule) => routes.push(Route {
                    rule: rule.clone(),
                    backend: bi,
                }),
                None => d.error(
                    src,
                    Some(span.clone()),
                    format!("use_backend: no acl named `{acl}` in `{}`", sec.name),
                ),
            }
        }
        let default_backend = match &sec.default_backend {
            Some((be, span)) => match backend_index.get(be) {
                Some(&i) => Some(i),
                None => {
                    d.error(
                        src,
                        Some(span.clone()),
                        format!("default_backend: no backend named `{be}`"),
                    );
                    None
                }
            },
            None => backend_index
                .get(&sec.name)
                .copied()
                .filter(|_| sec.kind == Kind::Listen),
        };
        let stats = if sec.stats_enabled || sec.stats.is_some() {
            let mut st = sec.stats.clone().unwrap_or(Stats {
                uri: "/haproxy?stats".into(),
                realm: "HAProxy Statistics".into(),
                users: Vec::new(),
                refresh: None,
            });
            for u in &st.users {
                if let Password::Plain(_) = u.password {
                    d.warning(src, Some(sec.span.clone()), format!("`stats auth {}:...` stores the password in plain text", u.name), Some("run `vakt hash-password` and use a userlist with `user NAME password $6$...`, or `vakt import` to move to TOML".into()));
                }
            }
            if st.realm.is_empty() {
                st.realm = "HAProxy Statistics".into();
            }
            Some(st)
        } else {
            None
        };
        if default_backend.is_none() && routes.is_empty() && stats.is_none() {
            d.error_hint(
                src,
                Some(sec.span.clone()),
                format!("`{}` has no servers and no backend", sec.name),
                "add `server` lines or `default_backend NAME`",
            );
        }
        let s = &sec.s;
        frontends.push(Frontend {
            name: sec.name.clone(),
            bind: sec.bind.clone(),
            maxconn: s.maxconn,
            timeout_client: s.client,
            timeout_http_request: s.http_request.unwrap_or(s.client),
            http_close: s.http_close,
            forwardfor: s.forwardfor,
            log: if s.logs {
                s.log.or(Some(LogFormat::HttpLog))
            } else {
                None
            },
            dontlognull: s.dontlognull,
            stats,
            routes,
            default_backend,
        });
    }
    if frontends.is_empty() && !d.has_errors() {
        d.error_hint(
            src,
            None,
            "no `listen` or `frontend` section",
            "add `listen app` with `bind 0.0.0.0:80` and `server` lines",
        );
    }
    d.sort();
    if d.has_errors() {
        return Err(d);
    }
    let _ = userlists;
    Ok((
        Config {
            global,
            frontends,
            backends,
        },
        d,
    ))
}

fn parse_bind(a: &str) -> Result<SocketAddr, String> {
    // HAProxy accepts `:80` and `*:80` for all addresses.
    let a = a.strip_prefix('*').unwrap_or(a);
    let a = if a.starts_with(':') {
        format!("0.0.0.0{a}")
    } else {
        a.to_string()
    };
    parse_addr(&a)
}

fn unsupported(src: &Source, d: &mut Diagnostics, w: &Word, section: &str) {
    d.error_hint(
        src,
        Some(w.span.clone()),
        format!("`{}` is not supported by vakt (in {section})", w.text),
        "remove it or see README (haproxy.cfg compatibility) for what vakt implements; unsupported keywords are errors so nothing is silently ignored",
    );
}

/// A whole number within `range`; anything else is an error naming the
/// keyword and the bounds (a number too large would otherwise size a
/// semaphore or a thread pool and panic).
fn number<T: TryFrom<u64>>(
    src: &Source,
    d: &mut Diagnostics,
    w: &[Word],
    i: usize,
    what: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Option<T> {
    let Some(x) = w.get(i) else {
        d.error(
            src,
            Some(w[0].span.clone()),
            format!("`{what}` needs a number"),
        );
        return None;
    };
    let digits = !x.text.is_empty() && x.text.bytes().all(|b| b.is_ascii_digit());
    let n = x.text.parse::<u64>().ok().filter(|n| range.contains(n));
    match n.and_then(|n| T::try_from(n).ok()) {
        Some(n) => Some(n),
        None if digits => {
            d.error(
                src,
                Some(x.span.clone()),
                format!(
                    "`{what}` {} is out of range: use {} to {}",
                    x.text,
                    range.start(),
                    range.end()
                ),
            );
            None
        }
        None => {
            d.error(
                src,
                Some(x.span.clone()),
                format!("`{what}` needs a number, found \"{}\"", x.text),
            );
            None
        }
    }
}

fn time(src: &Source, d: &mut Diagnostics, w: &[Word], i: usize, what: &str) -> Option<Duration> {
    let Some(x) = w.get(i) else {
        d.error(
            src,
            Some(w[0].span.clone()),
            format!("`{what}` needs a time"),
        );
        return None;
    };
    match parse_time(&x.text) {
        Ok(t) => Some(t),
        Err(e) => {
            d.error(src, Some(x.span.clone()), format!("`{what}`: {e}"));
            None
        }
    }
}

fn global_kw(
    src: &Source,
    w: &[Word],
    g: &mut Global,
    log: &mut Option<LogTarget>,
    d: &mut Diagnostics,
) {
    let kw = w[0].text.as_str();
    match kw {
        "log" => {
            // log <address> [len <n>] <facility> [<level> [<minlevel>]]
            let Some(addr) = w.get(1) else {
                d.error(
                    src,
                    Some(w[0].span.clone()),
                    "`log` needs an address and a facility",
                );
                return;
            };
            let target = match addr.text.as_str() {
                "stdout" => Ok(LogTarget::Stdout),
                a if a.starts_with('/') => {
                    Err("logging to a Unix socket is not supported; use a UDP address".to_string())
                }
                a => {
                    let a = a.strip_prefix("udp@").unwrap_or(a);
                    let a = if a.contains(':') {
                        a.to_string()
                    } else {
                        format!("{a}:514")
                    };
                    a.parse::<SocketAddr>()
                        .map(LogTarget::Udp)
                        .map_err(|_| format!("\"{}\" is not an IP address", addr.text))
                }
            };
            match target {
                Ok(t) => *log = Some(t),
                Err(e) => d.error(src, Some(addr.span.clone()), e),
            }
            let mut i = 2;
            if w.get(i).is_some_and(|x| x.text == "len") {
                i += 2;
            }
            match w.get(i) {
                Some(f) => match FACILITIES.iter().position(|x| *x == f.text) {
                    Some(n) => g.log_facility = n as u8,
                    None => d.error(
                        src,
                        Some(f.span.clone()),
                        format!("unknown syslog facility \"{}\"", f.text),
                    ),
                },
                None => d.error(
                    src,
                    Some(addr.span.clone()),
                    "`log` needs a facility (e.g. local0)",
                ),
            }
        }
        "maxconn" => {
            if let Some(n) = number::<usize>(src, d, w, 1, "maxconn", 1..=MAX_CONN) {
                g.maxconn = n;
            }
        }
        "user" => g.user = w.get(1).map(|x| x.text.clone()),
        "group" => g.group = w.get(1).map(|x| x.text.clone()),
        "daemon" => g.daemon = true,
        "spread-checks" => {
            // HAProxy's own bound: 0 to 50 percent.
            if let Some(n) = number::<u8>(src, d, w, 1, "spread-checks", 0..=50) {
                g.spread_checks = n;
            }
        }
        "nbthread" => g.threads = number::<usize>(src, d, w, 1, "nbthread", 1..=MAX_THREADS),
        "pidfile" => g.pidfile = w.get(1).map(|x| x.text.clone().into()),
        "stats" if w.get(1).is_some_and(|x| x.text == "socket") => {
            g.admin_socket = w.get(2).map(|x| x.text.clone().into());
            let mut i = 3;
            while i < w.len() {
                match w[i].text.as_str() {
                    "mode" | "level" | "expose-fd" => i += 2,
                    _ => {
                        unsupported(src, d, &w[i], "stats socket");
                        i += 1;
                    }
                }
            }
        }
        "hard-stop-after" => {
            if let Some(t) = time(src, d, w, 1, kw) {
                g.stop_timeout = t;
            }
        }
        _ => unsupported(src, d, &w[0], "global"),
    }
}

fn proxy_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let kw = w[0].text.as_str();
    let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
    let in_defaults = sec.kind == Kind::Defaults;
    match kw {
        "mode" => match arg(1) {
            Some("http") => {}
            Some(_) => d.error_hint(
                src,
                Some(w[1].span.clone()),
                format!("mode {} is not supported", w[1].text),
                "vakt proxies HTTP only: use `mode http`",
            ),
            None => d.error(src, Some(w[0].span.clone()), "`mode` needs a value"),
        },
        "log" => match arg(1) {
            Some("global") => sec.s.logs = true,
            _ => unsupported(
                src,
                d,
                &w[0],
                "a proxy (only `log global` is supported here)",
            ),
        },
        "option" => {
            let Some(o) = w.get(1) else {
                d.error(src, Some(w[0].span.clone()), "`option` needs a name");
                return;
            };
            match o.text.as_str() {
                "httplog" => sec.s.log = Some(LogFormat::HttpLog),
                "dontlognull" => sec.s.dontlognull = true,
                "redispatch" => sec.s.redispatch = true,
                "httpclose" | "forceclose" => sec.s.http_close = true,
                "http-keep-alive" => sec.s.http_close = false,
                "forwardfor" => {
                    sec.s.forwardfor = true;
                    if w.len() > 2 {
                        unsupported(src, d, &w[2], "option forwardfor");
                    }
                }
                "httpchk" => {
                    // option httpchk [<method>] <uri> [<version>]
                    let (method, uri) = match (arg(2), arg(3)) {
                        (Some(m), Some(u)) => (m, u),
                        (Some(u), None) => ("OPTIONS", u),
                        _ => ("OPTIONS", "/"),
                    };
                    if method != "GET" && method != "OPTIONS" && method != "HEAD" {
                        d.error(
                            src,
                            Some(w[2].span.clone()),
                            format!("check method {method} is not supported; use GET"),
                        );
                    }
                    if w.len() > 4 {
                        unsupported(src, d, &w[4], "option httpchk (HTTP version and headers)");
                    }
                    sec.s.check_path = Some(uri.to_string());
                }
                _ => unsupported(src, d, o, "option"),
            }
        }
        "no" if arg(1) == Some("option") => match arg(2) {
            Some("redispatch") => sec.s.redispatch = false,
            Some("httpclose") => sec.s.http_close = false,
            Some("forwardfor") => sec.s.forwardfor = false,
            Some("dontlognull") => sec.s.dontlognull = false,
            _ => unsupported(src, d, w.get(2).unwrap_or(&w[0]), "no option"),
        },
        "http-check" => match (arg(1), arg(2), arg(3)) {
            (Some("expect"), Some("status"), Some(code)) => match StatusExpect::parse(code) {
                Ok(e) => sec.s.expect = Some(e),
                Err(e) => d.error(src, Some(w[3].span.clone()), e),
            },
            _ => unsupported(
                src,
                d,
                w.get(1).unwrap_or(&w[0]),
                "http-check (only `expect status N`)",
            ),
        },
        "retries" => {
            if let Some(n) = number(src, d, w, 1, kw, 0..=MAX_RETRIES) {
                sec.s.retries = n;
            }
        }
        "maxconn" => {
            if let Some(n) = number(src, d, w, 1, kw, 1..=MAX_CONN) {
                sec.s.maxconn = n;
            }
        }
        // HAProxy 1.4 spellings, removed in 2.1; vakt still reads them.
        "contimeout" | "clitimeout" | "srvtimeout" => {
            let modern = match kw {
                "contimeout" => "timeout connect",
                "clitimeout" => "timeout client",
                _ => "timeout server",
            };
            d.warning(
                src,
                Some(w[0].span.clone()),
                format!("`{kw}` is HAProxy 1.4's spelling of `{modern}` (removed in HAProxy 2.1)"),
                Some(format!("write `{modern} {}`", arg(1).unwrap_or("..."))),
            );
            if let Some(t) = time(src, d, w, 1, kw) {
                match kw {
                    "contimeout" => sec.s.connect = t,
                    "clitimeout" => sec.s.client = t,
                    _ => sec.s.server = t,
                }
            }
        }
        "timeout" => {
            let Some(which) = w.get(1) else {
                d.error(src, Some(w[0].span.clone()), "`timeout` needs a name");
                return;
            };
            let Some(t) = time(src, d, w, 2, &format!("timeout {}", which.text)) else {
                return;
            };
            match which.text.as_str() {
                "connect" => sec.s.connect = t,
                "client" => sec.s.client = t,
                "server" => sec.s.server = t,
                "queue" => sec.s.queue = Some(t),
                "http-request" => sec.s.http_request = Some(t),
                _ => unsupported(src, d, which, "timeout"),
            }
        }
        "balance" => match arg(1).and_then(parse_balance) {
            Some(b) => sec.s.balance = b,
            None => d.error_hint(
                src,
                Some(w.get(1).unwrap_or(&w[0]).span.clone()),
                format!("balance \"{}\" is not supported", arg(1).unwrap_or("")),
                "use roundrobin, leastconn or source",
            ),
        },
        "bind" if !in_defaults => {
            for (i, x) in w.iter().enumerate().skip(1) {
                if i == 1 {
                    for a in x.text.split(',') {
                        match parse_bind(a) {
                            Ok(b) => sec.bind.push(b),
                            Err(e) => d.error(src, Some(x.span.clone()), e),
                        }
                    }
                } else {
                    unsupported(src, d, x, "bind options");
                    break;
                }
            }
        }
        "stats" => {
            let st = sec.stats.get_or_insert(Stats {
                uri: "/haproxy?stats".into(),
                realm: String::new(),
                users: Vec::new(),
                refresh: None,
            });
            match arg(1) {
                Some("enable") => sec.stats_enabled = true,
                Some("uri") => st.uri = arg(2).unwrap_or("/").to_string(),
                Some("realm") => {
                    st.realm = w[2..]
                        .iter()
                        .map(|x| x.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
                Some("auth") => match arg(2).and_then(|a| a.split_once(':')) {
                    Some((u, p)) => st.users.push(StatsUser {
                        name: u.into(),
                        password: if p.starts_with("$6$") || p.starts_with("$5$") {
                            Password::Hash(p.into())
                        } else {
                            Password::Plain(p.into())
                        },
                    }),
                    None => d.error(
                        src,
                        Some(w[0].span.clone()),
                        "`stats auth` needs user:password",
                    ),
                },
                Some("refresh") => st.refresh = time(src, d, w, 2, "stats refresh"),
                Some("hide-version") | Some("show-legends") | Some("show-node") => {}
                _ => unsupported(src, d, w.get(1).unwrap_or(&w[0]), "stats"),
            }
        }
        "cookie" if !in_defaults => {
            let Some(name) = arg(1) else {
                d.error(src, Some(w[0].span.clone()), "`cookie` needs a name");
                return;
            };
            let mut c = Cookie {
                name: name.into(),
                indirect: false,
                nocache: false,
            };
            let mut insert = false;
            for x in &w[2..] {
                match x.text.as_str() {
                    "insert" => insert = true,
                    "indirect" => c.indirect = true,
                    "nocache" => c.nocache = true,
                    _ => unsupported(
                        src,
                        d,
                        x,
                        "cookie (vakt implements insert, indirect, nocache)",
                    ),
                }
            }
            if !insert {
                d.error_hint(
                    src,
                    Some(w[0].span.clone()),
                    "only `cookie NAME insert` is supported",
                    "add `insert`",
                );
            }
            sec.cookie = Some(c);
        }
        "server" | "default-server" => {
            let is_default = kw == "default-server";
            let first_opt = if is_default { 1 } else { 3 };
            let mut o = sec.s.server_opts.clone();
            let mut i = first_opt;
            while i < w.len() {
                let x = &w[i];
                match x.text.as_str() {
                    "check" => o.check = Some(true),
                    "backup" => o.backup = Some(true),
                    "cookie" => {
                        o.cookie = arg(i + 1).map(str::to_string);
                        i += 1;
                    }
                    "inter" => {
                        o.inter = time(src, d, w, i + 1, "inter");
                        i += 1;
                    }
                    "rise" => {
                        o.rise = number(src, d, w, i + 1, "rise", 1..=MAX_RISE_FALL);
                        i += 1;
                    }
                    "fall" => {
                        o.fall = number(src, d, w, i + 1, "fall", 1..=MAX_RISE_FALL);
                        i += 1;
                    }
                    "weight" => {
                        o.weight = number(src, d, w, i + 1, "weight", 0..=256);
                        i += 1;
                    }
                    "maxconn" => {
                        o.maxconn = number(src, d, w, i + 1, "maxconn", 0..=MAX_CONN);
                        i += 1;
                    }
                    _ => unsupported(src, d, x, "server options"),
                }
                i += 1;
            }
            if is_default {
                sec.s.server_opts = o;
                return;
            }
            if in_defaults {
                d.error(
                    src,
                    Some(w[0].span.clone()),
                    "`server` is not allowed in defaults",
                );
                return;
            }
            let (Some(name), Some(addr)) = (w.get(1), w.get(2)) else {
                d.error_hint(
                    src,
                    Some(w[0].span.clone()),
                    "`server` needs a name and an address",
                    "server web01 10.0.0.11:80 check",
                );
                return;
            };
            let addr = match parse_addr(&addr.text) {
                Ok(a) => a,
                Err(e) => {
                    d.error(
                        src,
                        Some(addr.span.clone()),
                        format!("server `{}`: {e}", name.text),
                    );
                    return;
                }
            };
            if sec.servers.iter().any(|(s, _, _)| s.name == name.text) {
                d.error(
                    src,
                    Some(name.span.clone()),
                    format!("two servers named `{}`", name.text),
                );
            }
            let server = Server {
                name: name.text.clone(),
                addr,
                cookie: o.cookie.clone(),
                weight: o.weight.unwrap_or(1),
                maxconn: o.maxconn.unwrap_or(0),
                check: None,
                backup: o.backup.unwrap_or(false),
            };
            let span = w[0].span.start..w.last().map_or(w[0].span.end, |x| x.span.end);
            sec.servers.push((server, o, span));
        }
        "acl" if !in_defaults => {
            // acl NAME path_beg /a /b | acl NAME hdr(host) -i a b
            let (Some(name), Some(crit)) = (arg(1), arg(2)) else {
                d.error(
                    src,
                    Some(w[0].span.clone()),
                    "`acl` needs a name and a criterion",
                );
                return;
            };
            let values: Vec<String> = w[3..]
                .iter()
                .map(|x| x.text.clone())
                .filter(|v| v != "-i")
                .collect();
            let rule = match crit {
                "path_beg" => RouteRule::PathPrefix(values),
                "hdr(host)" | "hdr(Host)" | "req.hdr(host)" => {
                    RouteRule::Host(values.iter().map(|v| v.to_ascii_lowercase()).collect())
                }
                _ => {
                    unsupported(
                        src,
                        d,
                        &w[2],
                        "acl (vakt implements path_beg and hdr(host))",
                    );
                    return;
                }
            };
            sec.acls.insert(name.to_string(), rule);
        }
        "use_backend" if !in_defaults => match (arg(1), arg(2), arg(3), w.len()) {
            (Some(be), Some("if"), Some(acl), 4) => {
                sec.use_backend
                    .push((be.into(), acl.into(), w[0].span.clone()))
            }
            _ => d.error_hint(
                src,
                Some(w[0].span.clone()),
                "only `use_backend NAME if ACL` (one acl) is supported",
                "combine conditions into one acl",
            ),
        },
        "default_backend" if !in_defaults => match arg(1) {
            Some(be) => sec.default_backend = Some((be.into(), w[1].span.clone())),
            None => d.error(
                src,
                Some(w[0].span.clone()),
                "`default_backend` needs a name",
            ),
        },
        _ => unsupported(
            src,
            d,
            &w[0],
            if in_defaults {
                "defaults"
            } else {
                "a proxy section"
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<(Config, Diagnostics), Diagnostics> {
        from_haproxy(&Source::new("haproxy.cfg", text), &|v| {
            (v == "PORT").then(|| "8081".to_string())
        })
    }

    const TUTORIAL: &str = include_str!("../../../tests/data/tutorial-haproxy.cfg");

    #[test]
    fn the_2011_tutorial_config_reads_as_is() {
        let (c, warnings) = read(TUTORIAL).unwrap();
        assert_eq!(c.global.maxconn, 4096);
        assert_eq!(c.global.spread_checks, 5);
        assert!(c.global.daemon);
        let fe = &c.frontends[0];
        assert_eq!(fe.bind, vec!["0.0.0.0:80".parse().unwrap()]);
        assert!(fe.http_close && fe.forwardfor);
        let st = fe.stats.as_ref().unwrap();
        assert_eq!(st.uri, "/haproxy?stats");
        assert_eq!(st.realm, "Strictly Private");
        assert_eq!(
            st.users[0].password,
            Password::Plain("SuperSecretPassword123".into())
        );
        let be = &c.backends[0];
        assert_eq!(be.timeout_connect, Duration::from_millis(5000));
        assert_eq!(be.timeout_server, Duration::from_millis(50000));
        assert!(be.redispatch);
        assert_eq!(be.retries, 3);
        let web01 = &be.servers[0];
        assert_eq!(web01.cookie.as_deref(), Some("w1"));
        let check = web01.check.as_ref().unwrap();
        assert_eq!(
            (check.interval, check.rise, check.fall),
            (Duration::from_secs(2), 2, 5)
        );
        assert!(warnings.to_string().contains("plain text"), "{warnings}");
    }

    #[test]
    fn quoting_escapes_and_environment_variables() {
        let (c, _) = read("listen a\n  bind \"127.0.0.1:${PORT}\"\n  stats enable\n  stats realm My\\ Realm 'x y'\n").unwrap();
        assert_eq!(c.frontends[0].bind[0].port(), 8081);
        assert_eq!(c.frontends[0].stats.as_ref().unwrap().realm, "My Realm x y");
        let e = read("listen a\n  bind \"127.0.0.1:${NOPE}\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("haproxy.cfg:2:19: error: environment variable `NOPE` is not set"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_keywords_are_errors_with_line_numbers() {
        let cases = [
            ("global\n  chroot /var/lib/haproxy\n", "`chroot`"),
            (
                "global\n  tune.ssl.default-dh-param 2048\n",
                "`tune.ssl.default-dh-param`",
            ),
            ("global\n  ulimit-n 65536\n", "`ulimit-n`"),
            (
                "defaults\n  option http-server-close\n",
                "`http-server-close`",
            ),
            ("defaults\n  option tcplog\n", "`tcplog`"),
            ("defaults\n  timeout tunnel 1h\n", "`tunnel`"),
            ("defaults\n  compression algo gzip\n", "`compression`"),
            ("frontend f\n  bind :80 ssl crt /x.pem\n", "`ssl`"),
            ("frontend f\n  http-request deny\n", "`http-request`"),
            ("backend b\n  server a 10.0.0.1:80 check ssl\n", "`ssl`"),
            (
                "backend b\n  stick-table type ip size 1m\n",
                "`stick-table`",
            ),
            ("backend b\n  balance uri\n", "balance \"uri\""),
        ];
        for (text, what) in cases {
            let e = read(text).unwrap_err().to_string();
            let line = e
                .lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("{text:?}: {e}"));
            assert!(line.starts_with("haproxy.cfg:2:"), "{text:?}: {e}");
        }
    }

    #[test]
    fn frontends_route_to_backends_with_acls() {
        let text = "frontend f\n  bind 127.0.0.1:80\n  acl api path_beg /api\n  acl shop hdr(host) -i Shop.example\n  use_backend b_api if api\n  use_backend b_shop if shop\n  default_backend b_web\nbackend b_api\n  server a 10.0.0.1:80\nbackend b_shop\n  server s 10.0.0.3:80\nbackend b_web\n  server w 10.0.0.2:80\n";
        let (c, _) = read(text).unwrap();
        let fe = &c.frontends[0];
        assert_eq!(fe.routes.len(), 2);
        assert_eq!(
            fe.routes[0].rule,
            RouteRule::PathPrefix(vec!["/api".into()])
        );
        assert_eq!(
            fe.routes[1].rule,
            RouteRule::Host(vec!["shop.example".into()])
        );
        assert_eq!(c.backends[fe.default_backend.unwrap()].name, "b_web");
    }
}
