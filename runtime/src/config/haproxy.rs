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

use super::*;
use crate::config::defaults::{self, Settings};
use crate::config::limits::{MAX_CONN, MAX_RETRIES, MAX_RISE_FALL, MAX_THREADS};
use crate::config::value::{parse_addr, parse_balance};

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
            .filter(|d| *d <= crate::config::reader::MAX_DURATION)
            .ok_or_else(|| format!("\"{s}\" is too large: at most 2147483647 (ms)"));
    }
    crate::config::reader::parse_duration(s)
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

/// What a `defaults` section gives to the proxies after it: the [`Settings`]
/// both front ends share, and what only haproxy.cfg has.
#[derive(Debug, Clone, Default)]
struct Defaults {
    settings: Settings,
    check_path: Option<String>,
    expect: Option<StatusExpect>,
    server_opts: ServerOpts,
    /// Whether `log global` was given: HAProxy logs nothing for a proxy
    /// without a log line.
    logs: bool,
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

/// Which page a deny rule guards: the stats page (`stats http-request`),
/// or the pages whose path matches (`path_beg` or `path`).
#[derive(Debug, Clone, PartialEq)]
enum DenyFor {
    Stats,
    PathBeg(String),
    Path(String),
}

/// Who a deny rule lets through: an acl by name, or `{ src ... }` inline.
#[derive(Debug, Clone)]
enum Allowed {
    Acl(String),
    Src(Vec<Cidr>),
}

/// One client-address deny rule, where it was written.
#[derive(Debug, Clone)]
struct Deny {
    page: DenyFor,
    allowed: Allowed,
    span: Range<usize>,
}

#[derive(Debug)]
struct Section {
    kind: Kind,
    name: String,
    span: Range<usize>,
    s: Defaults,
    bind: Vec<SocketAddr>,
    tls: Vec<TlsBind>,
    redirect_https: Option<u16>,
    hsts: Option<String>,
    forwarded_proto: bool,
    stats: Option<Stats>,
    stats_enabled: bool,
    metrics: Option<Metrics>,
    cookie: Option<Cookie>,
    servers: Vec<(Server, ServerOpts, Range<usize>)>,
    acls: HashMap<String, RouteRule>,
    /// `acl NAME src CIDR...`: client networks by acl name (lines with the
    /// same name add up, as in HAProxy).
    src_acls: HashMap<String, Vec<Cidr>>,
    /// `stats http-request deny unless ...` and `http-request deny if
    /// { path_beg P } !ACL`, resolved into the pages' allow lists once the
    /// section is read.
    denies: Vec<Deny>,
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
            tls: Vec::new(),
            redirect_https: None,
            hsts: None,
            forwarded_proto: false,
            stats: None,
            stats_enabled: false,
            metrics: None,
            cookie: None,
            servers: Vec::new(),
            acls: HashMap::new(),
            src_acls: HashMap::new(),
            denies: Vec::new(),
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
    let mut file = File::default();
    for line in &lines {
        file.line(src, &line.words, &mut d);
    }
    let mut global = file.global;
    global.log = file.global_log.unwrap_or(LogTarget::Off);
    let (backends, backend_index) = build_backends(src, &file.sections, &mut d);
    let frontends = build_frontends(src, &file.sections, &backend_index, &mut d);
    if frontends.is_empty() && !d.has_errors() {
        d.error_hint(
            src,
            None,
            "no `listen` or `frontend` section",
            "add `listen app` with `bind 0.0.0.0:80` and `server` lines",
        );
    }
    d.into_result(Config {
        global,
        frontends,
        backends,
    })
}

/// What the lines of a file have said so far, section by section.
#[derive(Default)]
struct File {
    global: Global,
    global_log: Option<LogTarget>,
    /// The last `defaults` section (a new one starts from scratch).
    defaults: Defaults,
    sections: Vec<Section>,
    /// The section the current line belongs to.
    kind: Option<Kind>,
    /// Read so that their lines are checked; nothing refers to them yet
    /// (vakt has no `http_auth` acl).
    userlists: HashMap<String, Vec<StatsUser>>,
    userlist: String,
}

impl File {
    /// One line: a section header, or a keyword of the current section.
    fn line(&mut self, src: &Source, w: &[Word], d: &mut Diagnostics) {
        let Some(first) = w.first() else { return };
        let kw = first.text.as_str();
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
            self.open(src, w, k, d);
            return;
        }
        let Some(k) = self.kind else {
            d.error_hint(
                src,
                Some(first.span.clone()),
                format!("`{kw}` outside of any section"),
                "start with `global`, `defaults`, `listen`, `frontend` or `backend`",
            );
            return;
        };
        match k {
            Kind::Global => global_kw(src, w, &mut self.global, &mut self.global_log, d),
            Kind::Userlist => self.userlist_kw(src, w, d),
            Kind::Defaults => {
                let mut scratch = Section::new(Kind::Defaults, "", 0..0, &self.defaults);
                proxy_kw(src, w, &mut scratch, d);
                self.defaults = scratch.s;
            }
            _ => {
                if let Some(sec) = self.sections.last_mut() {
                    proxy_kw(src, w, sec, d);
                }
            }
        }
    }

    /// A section header: `global`, `defaults`, `userlist NAME`, or a proxy
    /// (`listen`, `frontend`, `backend`) with its name.
    fn open(&mut self, src: &Source, w: &[Word], k: Kind, d: &mut Diagnostics) {
        let first = &w[0];
        let kw = first.text.as_str();
        let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
        let span = |i: usize| w.get(i).map_or(first.span.clone(), |x| x.span.clone());
        self.kind = Some(k);
        match k {
            Kind::Global => {}
            Kind::Defaults => self.defaults = Defaults::default(),
            Kind::Userlist => {
                self.userlist = arg(1).unwrap_or("").to_string();
                self.userlists.entry(self.userlist.clone()).or_default();
            }
            _ => {
                let Some(name) = arg(1) else {
                    d.error_hint(
                        src,
                        Some(first.span.clone()),
                        format!("`{kw}` needs a name"),
                        format!("{kw} app"),
                    );
                    return;
                };
                if self
                    .sections
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
                let mut sec = Section::new(k, name, whole, &self.defaults);
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
                self.sections.push(sec);
            }
        }
    }

    /// `user NAME password HASH` / `user NAME insecure-password PASS`, `group`.
    fn userlist_kw(&mut self, src: &Source, w: &[Word], d: &mut Diagnostics) {
        let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
        let password = match (w[0].text.as_str(), arg(2), arg(3)) {
            ("user", Some("password"), Some(h)) => Password::Hash(h.into()),
            ("user", Some("insecure-password"), Some(p)) => Password::Plain(p.into()),
            ("group", ..) => return,
            _ => return unsupported(src, d, &w[0], "userlist"),
        };
        self.userlists
            .entry(self.userlist.clone())
            .or_default()
            .push(StatsUser {
                name: arg(1).unwrap_or("").into(),
                password,
            });
    }
}

/// The backends, from `listen` (with servers) and `backend` sections, and
/// their indexes by name.
fn build_backends(
    src: &Source,
    sections: &[Section],
    d: &mut Diagnostics,
) -> (Vec<Backend>, HashMap<String, usize>) {
    let mut backends = Vec::new();
    let mut backend_index: HashMap<String, usize> = HashMap::new();
    for sec in sections
        .iter()
        .filter(|s| matches!(s.kind, Kind::Listen | Kind::Backend))
    {
        if sec.kind == Kind::Listen && sec.servers.is_empty() {
            continue;
        }
        let servers = build_servers(src, sec, d);
        backend_index.insert(sec.name.clone(), backends.len());
        backends.push(
            sec.s
                .settings
                .backend(sec.name.clone(), sec.cookie.clone(), servers),
        );
    }
    (backends, backend_index)
}

/// A section's servers with their checks resolved (`option httpchk` and
/// `http-check expect` of the section, `inter`/`rise`/`fall` of the line).
fn build_servers(src: &Source, sec: &Section, d: &mut Diagnostics) -> Vec<Server> {
    let s = &sec.s;
    let check_timeout = s.settings.check_timeout();
    let mut servers = Vec::new();
    for (srv, o, span) in &sec.servers {
        let mut srv = srv.clone();
        if o.check == Some(true) {
            let interval = o.inter.unwrap_or(defaults::CHECK_INTERVAL);
            srv.check = Some(Check {
                path: s.check_path.clone(),
                interval,
                rise: o.rise.unwrap_or(defaults::CHECK_RISE),
                fall: o.fall.unwrap_or(defaults::CHECK_FALL),
                expect: s.expect.clone().unwrap_or_else(defaults::check_expect),
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
    servers
}

/// The frontends, from `listen` and `frontend` sections, with their routes
/// resolved against `backend_index`.
fn build_frontends(
    src: &Source,
    sections: &[Section],
    backend_index: &HashMap<String, usize>,
    d: &mut Diagnostics,
) -> Vec<Frontend> {
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
        let routes = build_routes(src, sec, backend_index, d);
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
        let mut stats = build_stats(src, sec, d);
        let mut metrics = sec.metrics.clone();
        apply_denies(src, sec, stats.as_mut(), metrics.as_mut(), d);
        if default_backend.is_none()
            && routes.is_empty()
            && stats.is_none()
            && sec.metrics.is_none()
        {
            d.error_hint(
                src,
                Some(sec.span.clone()),
                format!("`{}` has no servers and no backend", sec.name),
                "add `server` lines or `default_backend NAME`",
            );
        }
        let s = &sec.s;
        frontends.push(Frontend {
            log: if s.logs {
                s.settings.log.or(Some(LogFormat::HttpLog))
            } else {
                None
            },
            stats,
            metrics,
            routes,
            default_backend,
            tls: sec.tls.clone(),
            redirect_https: sec.redirect_https,
            redirect_port: None,
            hsts: sec.hsts.clone(),
            forwarded_proto: sec.forwarded_proto,
            ..s.settings.frontend(sec.name.clone(), sec.bind.clone())
        });
    }
    frontends
}

/// `use_backend NAME if ACL` lines, in order, as routes.
fn build_routes(
    src: &Source,
    sec: &Section,
    backend_index: &HashMap<String, usize>,
    d: &mut Diagnostics,
) -> Vec<Route> {
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
            None if sec.src_acls.contains_key(acl) => d.error_hint(
                src,
                Some(span.clone()),
                format!("use_backend: acl `{acl}` matches the client's address (src)"),
                "vakt routes by path_beg and hdr(host) only; src acls guard the stats and metrics pages",
            ),
            None => d.error(
                src,
                Some(span.clone()),
                format!("use_backend: no acl named `{acl}` in `{}`", sec.name),
            ),
        }
    }
    routes
}

/// The networks a deny rule lets through, or an error at its line.
fn allowed_nets(
    src: &Source,
    sec: &Section,
    deny: &Deny,
    d: &mut Diagnostics,
) -> Option<Vec<Cidr>> {
    match &deny.allowed {
        Allowed::Src(nets) => Some(nets.clone()),
        Allowed::Acl(name) => match sec.src_acls.get(name) {
            Some(nets) => Some(nets.clone()),
            None => {
                let hint = if sec.acls.contains_key(name) {
                    format!(
                        "acl `{name}` is not a `src` acl: write `acl {name} src 10.0.0.0/8 ...`"
                    )
                } else {
                    format!("add `acl {name} src 10.0.0.0/8 ...` to `{}`", sec.name)
                };
                d.error_hint(
                    src,
                    Some(deny.span.clone()),
                    format!("no acl named `{name}` in `{}`", sec.name),
                    hint,
                );
                None
            }
        },
    }
}

/// Puts each deny rule's networks on the page it guards: `stats
/// http-request` on the stats page; `http-request deny if { path_beg P }
/// !ACL` on every page whose path matches P. A rule that guards no page,
/// or a second rule on a page, is an error at its line (vakt filters its
/// own pages by client address, nothing else).
fn apply_denies(
    src: &Source,
    sec: &Section,
    mut stats: Option<&mut Stats>,
    mut metrics: Option<&mut Metrics>,
    d: &mut Diagnostics,
) {
    // The stats page's path without its query (`/haproxy?stats` → `/haproxy`).
    let stats_path = stats
        .as_ref()
        .map(|s| s.uri.split('?').next().unwrap_or("").to_string());
    let set = |allow: &mut Vec<Cidr>,
               nets: &[Cidr],
               page: &str,
               span: &Range<usize>,
               d: &mut Diagnostics| {
        if allow.is_empty() {
            allow.extend_from_slice(nets);
        } else {
            d.error_hint(
                src,
                Some(span.clone()),
                format!("a second client-address rule for the {page} page"),
                "vakt takes one deny rule per page: list every allowed network in one acl",
            );
        }
    };
    for deny in &sec.denies {
        let Some(nets) = allowed_nets(src, sec, deny, d) else {
            continue;
        };
        let (on_stats, on_metrics) = match &deny.page {
            DenyFor::Stats => (true, false),
            DenyFor::PathBeg(p) => (
                stats
                    .as_ref()
                    .is_some_and(|s| s.uri.starts_with(p.as_str())),
                metrics
                    .as_ref()
                    .is_some_and(|m| m.uri.starts_with(p.as_str())),
            ),
            DenyFor::Path(p) => (
                stats_path.as_deref() == Some(p.as_str()),
                metrics.as_ref().is_some_and(|m| &m.uri == p),
            ),
        };
        if deny.page == DenyFor::Stats && stats.is_none() {
            d.error_hint(
                src,
                Some(deny.span.clone()),
                format!("`{}` has no stats page for this rule to guard", sec.name),
                "add `stats enable` and `stats uri /haproxy?stats`",
            );
            continue;
        }
        if !on_stats && !on_metrics {
            d.error_hint(
                src,
                Some(deny.span.clone()),
                "vakt denies by client address only on its stats and metrics pages, and this rule's path matches neither",
                "match the page's path: `http-request deny if { path_beg /haproxy } !admin` for `stats uri /haproxy?stats`",
            );
            continue;
        }
        if on_stats && let Some(st) = stats.as_deref_mut() {
            set(&mut st.allow, &nets, "stats", &deny.span, d);
        }
        if on_metrics && let Some(m) = metrics.as_deref_mut() {
            set(&mut m.allow, &nets, "metrics", &deny.span, d);
        }
    }
}

/// The networks of `{ src A B ... }` starting at word `at` (`{`), with the
/// index after `}`; an error at the bad word otherwise.
fn src_block(
    src: &Source,
    w: &[Word],
    at: usize,
    d: &mut Diagnostics,
) -> Option<(Vec<Cidr>, usize)> {
    let text = |i: usize| w.get(i).map(|x| x.text.as_str());
    if text(at) != Some("{") || text(at + 1) != Some("src") {
        return None;
    }
    let mut nets = Vec::new();
    let mut i = at + 2;
    while let Some(t) = text(i) {
        if t == "}" {
            if nets.is_empty() {
                d.error(src, Some(w[i].span.clone()), "`{ src }` lists no address");
                return None;
            }
            return Some((nets, i + 1));
        }
        match Cidr::parse(t) {
            Some(c) => nets.push(c),
            None => {
                d.error_hint(
                    src,
                    Some(w[i].span.clone()),
                    format!("\"{t}\" is not an address or network"),
                    "write an address or address/prefix: 192.0.2.7, 10.0.0.0/8",
                );
                return None;
            }
        }
        i += 1;
    }
    d.error(
        src,
        Some(w[at].span.clone()),
        "`{ src ...` has no closing `}`",
    );
    None
}

/// `deny unless { src ... }` or `deny unless ACL` from word `at` (`deny`):
/// who the rule lets through, or `None` (the caller reports the form).
fn deny_unless(src: &Source, w: &[Word], at: usize, d: &mut Diagnostics) -> Option<Allowed> {
    let text = |i: usize| w.get(i).map(|x| x.text.as_str());
    if text(at) != Some("deny") || text(at + 1) != Some("unless") {
        return None;
    }
    if let Some((nets, end)) = src_block(src, w, at + 2, d) {
        return (end == w.len()).then_some(Allowed::Src(nets));
    }
    match (text(at + 2), w.len() == at + 3) {
        (Some(name), true) if name != "{" && !name.starts_with('!') => {
            Some(Allowed::Acl(name.to_string()))
        }
        _ => None,
    }
}

/// The stats page of a section with `stats enable` or any `stats` line;
/// plain-text passwords are read but warned about.
fn build_stats(src: &Source, sec: &Section, d: &mut Diagnostics) -> Option<Stats> {
    if !sec.stats_enabled && sec.stats.is_none() {
        return None;
    }
    let mut st = sec.stats.clone().unwrap_or(Stats {
        uri: "/haproxy?stats".into(),
        realm: "HAProxy Statistics".into(),
        users: Vec::new(),
        refresh: None,
        admin: false,
        allow: Vec::new(),
    });
    for u in &st.users {
        if let Password::Plain(_) = u.password {
            d.warning(
                src,
                Some(sec.span.clone()),
                format!("`stats auth {}:...` stores the password in plain text", u.name),
                Some("run `vakt hash-password` and use a userlist with `user NAME password $6$...`, or `vakt import` to move to TOML".into()),
            );
        }
    }
    if st.realm.is_empty() {
        st.realm = "HAProxy Statistics".into();
    }
    Some(st)
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
            // log <address> [len <n>] [format <f>] <facility> [<level> [<minlevel>]]
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
                a if a.starts_with('/') || a.starts_with("unix@") => {
                    Ok(LogTarget::Unix(a.strip_prefix("unix@").unwrap_or(a).into()))
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
            let target = target.map_err(|e| d.error(src, Some(addr.span.clone()), e));
            let mut format = Ok(None);
            let mut i = 2;
            while let Some(opt) = w.get(i).filter(|x| x.text == "len" || x.text == "format") {
                if opt.text == "format" {
                    format = log_format(src, d, w.get(i + 1), opt).map(Some);
                }
                i += 2;
            }
            if let (Ok(t), Ok(f)) = (target, format) {
                g.syslog_format = f.unwrap_or_else(|| SyslogFormat::default_for(&t));
                *log = Some(t);
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

/// `log ... format F`: `raw`, `rfc3164` (HAProxy's default for syslog) and
/// `rfc5424` are what vakt writes, to any target.
fn log_format(
    src: &Source,
    d: &mut Diagnostics,
    format: Option<&Word>,
    opt: &Word,
) -> Result<SyslogFormat, ()> {
    let Some(f) = format else {
        d.error_hint(
            src,
            Some(opt.span.clone()),
            "`format` needs a value",
            "write `format rfc3164`, `format rfc5424` or `format raw`",
        );
        return Err(());
    };
    match SyslogFormat::NAMES.iter().find(|(n, _)| *n == f.text) {
        Some((_, format)) => Ok(*format),
        None => {
            d.error_hint(
                src,
                Some(f.span.clone()),
                format!("log format `{}` is not supported", f.text),
                "vakt writes `rfc3164`, `rfc5424` and `raw`",
            );
            Err(())
        }
    }
}

/// One keyword of a `defaults`, `listen`, `frontend` or `backend` section.
/// Keywords that need a proxy (bind, cookie, server, acl, routing) are
/// refused in `defaults` by the last arm.
fn proxy_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let kw = w[0].text.as_str();
    let in_defaults = sec.kind == Kind::Defaults;
    match kw {
        "mode" => match w.get(1) {
            Some(m) if m.text == "http" => {}
            Some(m) => d.error_hint(
                src,
                Some(m.span.clone()),
                format!("mode {} is not supported", m.text),
                "vakt proxies HTTP only: use `mode http`",
            ),
            None => d.error(src, Some(w[0].span.clone()), "`mode` needs a value"),
        },
        "log" => match w.get(1) {
            Some(x) if x.text == "global" => sec.s.logs = true,
            _ => unsupported(
                src,
                d,
                &w[0],
                "a proxy (only `log global` is supported here)",
            ),
        },
        "option" => option_kw(src, w, &mut sec.s, d),
        // HAProxy's own exporter example ends with `no log`.
        "no" if w.get(1).is_some_and(|x| x.text == "log") => sec.s.logs = false,
        "no" if w.get(1).is_some_and(|x| x.text == "option") => {
            no_option_kw(src, w, &mut sec.s.settings, d)
        }
        "http-check" => http_check_kw(src, w, &mut sec.s, d),
        "retries" => {
            if let Some(n) = number(src, d, w, 1, kw, 0..=MAX_RETRIES) {
                sec.s.settings.retries = n;
            }
        }
        "maxconn" => {
            if let Some(n) = number(src, d, w, 1, kw, 1..=MAX_CONN) {
                sec.s.settings.maxconn = n;
            }
        }
        "contimeout" | "clitimeout" | "srvtimeout" => {
            legacy_timeout_kw(src, w, &mut sec.s.settings, d)
        }
        "timeout" => timeout_kw(src, w, &mut sec.s.settings, d),
        "balance" => match w.get(1).and_then(|x| parse_balance(&x.text)) {
            Some(b) => sec.s.settings.balance = b,
            None => d.error_hint(
                src,
                Some(w.get(1).unwrap_or(&w[0]).span.clone()),
                format!(
                    "balance \"{}\" is not supported",
                    w.get(1).map_or("", |x| x.text.as_str())
                ),
                "use roundrobin, leastconn or source",
            ),
        },
        "bind" if !in_defaults => bind_kw(src, w, sec, d),
        "http-request" if !in_defaults => http_request_kw(src, w, sec, d),
        "http-response" if !in_defaults => http_response_kw(src, w, sec, d),
        "stats" => stats_kw(src, w, sec, d),
        "cookie" if !in_defaults => cookie_kw(src, w, sec, d),
        "server" | "default-server" => server_kw(src, w, sec, d),
        "acl" if !in_defaults => acl_kw(src, w, sec, d),
        "use_backend" if !in_defaults => use_backend_kw(src, w, sec, d),
        "default_backend" if !in_defaults => match w.get(1) {
            Some(be) => sec.default_backend = Some((be.text.clone(), be.span.clone())),
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

/// `http-request use-service prometheus-exporter if { path /metrics }`:
/// the Prometheus page at that path.
fn use_service_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    const FORM: &str = "http-request use-service prometheus-exporter if { path /metrics }";
    let text: Vec<&str> = w.iter().map(|x| x.text.as_str()).collect();
    let at = |i: usize| w.get(i).unwrap_or(&w[w.len() - 1]).span.clone();
    match text.as_slice() {
        [
            _,
            "use-service",
            "prometheus-exporter",
            "if",
            "{",
            "path",
            p,
            "}",
        ] => {
            if !p.starts_with('/') {
                d.error_hint(
                    src,
                    Some(at(6)),
                    format!("\"{p}\" is not a path"),
                    format!("write `{FORM}`"),
                );
                return;
            }
            sec.metrics = Some(Metrics {
                uri: p.to_string(),
                users: Vec::new(),
                allow: Vec::new(),
            });
        }
        [_, "use-service", "prometheus-exporter", ..] => d.error_hint(
            src,
            Some(at(3)),
            "vakt serves the Prometheus exporter on one exact path only",
            format!("write `{FORM}`"),
        ),
        [_, "use-service", ..] => d.error_hint(
            src,
            Some(at(2)),
            format!(
                "service `{}` is not supported",
                text.get(2).copied().unwrap_or("")
            ),
            format!("vakt has the Prometheus exporter only: `{FORM}`"),
        ),
        _ => unsupported_http_request(src, w, d),
    }
}

/// `http-request deny if { path_beg P } !ACL` (or `{ path P }`, terms in
/// either order): a client-address guard on the stats or metrics page at P.
/// Other deny rules are errors: vakt denies only on its own pages.
fn deny_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    const FORM: &str =
        "http-request deny if { path_beg /haproxy } !admin (with `acl admin src 10.0.0.0/8 ...`)";
    let text: Vec<&str> = w.iter().map(|x| x.text.as_str()).collect();
    let page = |kind: &str, p: &str| match kind {
        "path_beg" => Some(DenyFor::PathBeg(p.to_string())),
        "path" => Some(DenyFor::Path(p.to_string())),
        _ => None,
    };
    let parsed = match text.as_slice() {
        [_, "deny", "if", "{", kind, p, "}", acl] | [_, "deny", "if", acl, "{", kind, p, "}"] => {
            acl.strip_prefix('!')
                .filter(|a| !a.is_empty())
                .zip(page(kind, p))
        }
        _ => None,
    };
    match parsed {
        Some((acl, page)) => sec.denies.push(Deny {
            page,
            allowed: Allowed::Acl(acl.to_string()),
            span: w[0].span.clone(),
        }),
        None => d.error_hint(
            src,
            Some(w[1].span.clone()),
            "vakt has `http-request deny` only as a client-address guard on its stats or metrics page",
            format!("write `{FORM}`, or `stats http-request deny unless {{ src ... }}`"),
        ),
    }
}

/// Any other `http-request` rule: an error listing the ones vakt has.
fn unsupported_http_request(src: &Source, w: &[Word], d: &mut Diagnostics) {
    d.error_hint(
        src,
        Some(w.get(1).unwrap_or(&w[0]).span.clone()),
        format!(
            "`http-request {}` is not supported by vakt",
            w.get(1).map_or("", |x| x.text.as_str())
        ),
        "vakt has `use-service prometheus-exporter if { path /metrics }`, \
         `deny if { path_beg /haproxy } !ACL` (an `acl ACL src ...`), \
         `redirect scheme https [code N] unless { ssl_fc }` and \
         `set-header X-Forwarded-Proto https if { ssl_fc }`",
    );
}

/// `option NAME ...`.
fn option_kw(src: &Source, w: &[Word], p: &mut Defaults, d: &mut Diagnostics) {
    let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
    let Some(o) = w.get(1) else {
        d.error(src, Some(w[0].span.clone()), "`option` needs a name");
        return;
    };
    let s = &mut p.settings;
    match o.text.as_str() {
        "httplog" => s.log = Some(LogFormat::HttpLog),
        "dontlognull" => s.dontlognull = true,
        "redispatch" => s.redispatch = true,
        "httpclose" | "forceclose" => s.http_close = true,
        "http-keep-alive" => s.http_close = false,
        "forwardfor" => {
            s.forwardfor = true;
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
            p.check_path = Some(uri.to_string());
        }
        _ => unsupported(src, d, o, "option"),
    }
}

/// `no option NAME`.
fn no_option_kw(src: &Source, w: &[Word], s: &mut Settings, d: &mut Diagnostics) {
    match w.get(2).map(|x| x.text.as_str()) {
        Some("redispatch") => s.redispatch = false,
        Some("httpclose") => s.http_close = false,
        Some("forwardfor") => s.forwardfor = false,
        Some("dontlognull") => s.dontlognull = false,
        _ => unsupported(src, d, w.get(2).unwrap_or(&w[0]), "no option"),
    }
}

/// `http-check expect status CODES`, the only form vakt implements.
fn http_check_kw(src: &Source, w: &[Word], p: &mut Defaults, d: &mut Diagnostics) {
    let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
    match (arg(1), arg(2), arg(3)) {
        (Some("expect"), Some("status"), Some(code)) => match StatusExpect::parse(code) {
            Ok(e) => p.expect = Some(e),
            Err(e) => d.error(src, Some(w[3].span.clone()), e),
        },
        _ => unsupported(
            src,
            d,
            w.get(1).unwrap_or(&w[0]),
            "http-check (only `expect status N`)",
        ),
    }
}

/// HAProxy 1.4 spellings, removed in 2.1; vakt still reads them, with a
/// warning that names the modern one.
fn legacy_timeout_kw(src: &Source, w: &[Word], s: &mut Settings, d: &mut Diagnostics) {
    let kw = w[0].text.as_str();
    let modern = match kw {
        "contimeout" => "timeout connect",
        "clitimeout" => "timeout client",
        _ => "timeout server",
    };
    d.warning(
        src,
        Some(w[0].span.clone()),
        format!("`{kw}` is HAProxy 1.4's spelling of `{modern}` (removed in HAProxy 2.1)"),
        Some(format!(
            "write `{modern} {}`",
            w.get(1).map_or("...", |x| x.text.as_str())
        )),
    );
    if let Some(t) = time(src, d, w, 1, kw) {
        match kw {
            "contimeout" => s.connect = t,
            "clitimeout" => s.client = t,
            _ => s.server = t,
        }
    }
}

/// `timeout NAME TIME`.
fn timeout_kw(src: &Source, w: &[Word], s: &mut Settings, d: &mut Diagnostics) {
    let Some(which) = w.get(1) else {
        d.error(src, Some(w[0].span.clone()), "`timeout` needs a name");
        return;
    };
    let Some(t) = time(src, d, w, 2, &format!("timeout {}", which.text)) else {
        return;
    };
    match which.text.as_str() {
        "connect" => s.connect = t,
        "client" => s.client = t,
        "server" => s.server = t,
        "queue" => s.queue = Some(t),
        "http-request" => s.http_request = Some(t),
        "tunnel" => s.tunnel = Some(t),
        _ => unsupported(src, d, which, "timeout"),
    }
}

/// `bind ADDR[,ADDR...] [ssl crt FILE|DIR [crt ...]] [alpn h2,http/1.1]
/// [ssl-min-ver TLSv1.2|TLSv1.3]`; other bind options are refused.
fn bind_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let mut addrs = Vec::new();
    if let Some(x) = w.get(1) {
        for a in x.text.split(',') {
            match parse_bind(a) {
                Ok(b) => addrs.push(b),
                Err(e) => d.error(src, Some(x.span.clone()), e),
            }
        }
    }
    let (mut ssl, mut certs, mut alpn, mut min) = (false, Vec::new(), None, TlsVersion::Tls12);
    let mut i = 2;
    while let Some(x) = w.get(i) {
        let value = w.get(i + 1);
        match x.text.as_str() {
            "ssl" => {
                ssl = true;
                i += 1;
                continue;
            }
            "crt" | "alpn" | "ssl-min-ver" if value.is_none() => {
                d.error(
                    src,
                    Some(x.span.clone()),
                    format!("`{}` needs a value", x.text),
                );
                break;
            }
            "crt" => certs.push(PathBuf::from(&value.map_or("", |v| v.text.as_str()))),
            "alpn" => {
                let list: Vec<String> = value
                    .map_or("", |v| v.text.as_str())
                    .split(',')
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = list
                    .iter()
                    .find(|p| !matches!(p.as_str(), "h2" | "http/1.1"))
                {
                    d.error_hint(
                        src,
                        value.map(|v| v.span.clone()),
                        format!("alpn protocol \"{bad}\" is not supported"),
                        "write `alpn h2,http/1.1` (or one of them)",
                    );
                }
                alpn = Some(list);
            }
            "ssl-min-ver" => match value.map_or("", |v| v.text.as_str()) {
                "TLSv1.2" => min = TlsVersion::Tls12,
                "TLSv1.3" => min = TlsVersion::Tls13,
                other => d.error_hint(
                    src,
                    value.map(|v| v.span.clone()),
                    format!("ssl-min-ver {other} is not supported"),
                    "TLS 1.0 and 1.1 are broken: write `ssl-min-ver TLSv1.2` or `TLSv1.3`",
                ),
            },
            _ => {
                unsupported(src, d, x, "bind options (ssl, crt, alpn, ssl-min-ver)");
                break;
            }
        }
        i += 2;
    }
    if ssl && certs.is_empty() {
        d.error_hint(
            src,
            Some(w[0].span.clone()),
            "`bind ... ssl` needs a certificate",
            "add `crt /etc/haproxy/certs/site.pem` (chain and key in one PEM file, or a folder of them)",
        );
    } else if !ssl && !certs.is_empty() {
        d.error_hint(
            src,
            Some(w[0].span.clone()),
            "`crt` without `ssl`",
            "add `ssl` before `crt`",
        );
    }
    for addr in addrs {
        if ssl {
            sec.tls.push(TlsBind {
                addr,
                certs: certs.clone(),
                // HAProxy without `alpn` negotiates no ALPN: HTTP/1.1 only.
                alpn: alpn.clone().unwrap_or_else(|| vec!["http/1.1".into()]),
                min_version: min,
            });
        }
        sec.bind.push(addr);
    }
}

/// `http-request`: `redirect scheme https [code N] unless { ssl_fc }` and
/// `set-header X-Forwarded-Proto https if { ssl_fc }` (what HTTPS
/// deployments write), `use-service prometheus-exporter`; others are
/// refused.
fn http_request_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let words: Vec<&str> = w.iter().map(|x| x.text.as_str()).collect();
    match words.as_slice() {
        [_, "use-service", ..] => use_service_kw(src, w, sec, d),
        [_, "deny", ..] => deny_kw(src, w, sec, d),
        ["http-request", "redirect", "scheme", "https", rest @ ..] => {
            let (code, cond) = match rest {
                ["code", c, cond @ ..] => (c.parse::<u16>().ok(), cond),
                cond => (Some(302), cond),
            };
            let Some(code @ (301 | 302 | 303 | 307 | 308)) = code else {
                d.error_hint(
                    src,
                    Some(w[0].span.clone()),
                    "redirect code must be 301, 302, 303, 307 or 308",
                    "write `code 301` (or leave it out for HAProxy's 302)",
                );
                return;
            };
            if !matches!(
                cond,
                ["unless", "{", "ssl_fc", "}"] | ["unless", "{ssl_fc}"]
            ) {
                d.error_hint(
                    src,
                    Some(w[0].span.clone()),
                    "only `unless { ssl_fc }` is supported as the redirect's condition",
                    "write `http-request redirect scheme https unless { ssl_fc }`",
                );
                return;
            }
            sec.redirect_https = Some(code);
        }
        [
            "http-request",
            "set-header",
            name,
            "https",
            "if",
            "{",
            "ssl_fc",
            "}",
        ] if name.eq_ignore_ascii_case("x-forwarded-proto") => {
            sec.forwarded_proto = true;
        }
        _ => unsupported_http_request(src, w, d),
    }
}

/// `http-response set-header Strict-Transport-Security "VALUE"`.
fn http_response_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    match (w.get(1), w.get(2), w.get(3), w.get(4)) {
        (Some(a), Some(n), Some(v), None)
            if a.text == "set-header"
                && n.text.eq_ignore_ascii_case("strict-transport-security") =>
        {
            sec.hsts = Some(v.text.clone());
        }
        _ => unsupported(
            src,
            d,
            w.get(1).unwrap_or(&w[0]),
            "http-response (only `set-header Strict-Transport-Security \"max-age=...\"`)",
        ),
    }
}

/// `stats enable|uri|realm|auth|refresh|...`; any `stats` line turns the
/// page on, as in HAProxy.
fn stats_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
    let st = sec.stats.get_or_insert(Stats {
        uri: "/haproxy?stats".into(),
        realm: String::new(),
        users: Vec::new(),
        refresh: None,
        admin: false,
        allow: Vec::new(),
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
        // vakt has no ACLs on the client's address yet: only the always-true
        // condition turns the page's buttons on.
        Some("admin") => match (arg(2), arg(3), arg(4)) {
            (Some("if"), Some("TRUE"), None) => st.admin = true,
            _ => d.error_hint(
                src,
                Some(w[0].span.clone()),
                "only `stats admin if TRUE` is supported",
                "write `stats admin if TRUE` (the buttons need `stats auth` users too)",
            ),
        },
        Some("hide-version") | Some("show-legends") | Some("show-node") => {}
        Some("http-request") => match deny_unless(src, w, 2, d) {
            Some(allowed) => sec.denies.push(Deny {
                page: DenyFor::Stats,
                allowed,
                span: w[0].span.clone(),
            }),
            None => d.error_hint(
                src,
                Some(w[1].span.clone()),
                "only `stats http-request deny unless { src ADDR... }` (or `unless ACL` of an `acl ACL src ...`) is supported",
                "write `stats http-request deny unless { src 10.0.0.0/8 192.0.2.1 }`",
            ),
        },
        _ => unsupported(src, d, w.get(1).unwrap_or(&w[0]), "stats"),
    }
}

/// `cookie NAME insert [indirect] [nocache]`.
fn cookie_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let Some(name) = w.get(1) else {
        d.error(src, Some(w[0].span.clone()), "`cookie` needs a name");
        return;
    };
    let mut c = Cookie {
        name: name.text.clone(),
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

/// `server NAME ADDR [options]` or `default-server [options]`.
fn server_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let is_default = w[0].text == "default-server";
    let first_opt = if is_default { 1 } else { 3 };
    let o = server_opts(src, w, first_opt, sec.s.server_opts.clone(), d);
    if is_default {
        sec.s.server_opts = o;
        return;
    }
    if sec.kind == Kind::Defaults {
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

/// The options of a server line from word `i` on, over `o` (the section's
/// `default-server` ones).
fn server_opts(
    src: &Source,
    w: &[Word],
    mut i: usize,
    mut o: ServerOpts,
    d: &mut Diagnostics,
) -> ServerOpts {
    while i < w.len() {
        let x = &w[i];
        match x.text.as_str() {
            "check" => o.check = Some(true),
            "backup" => o.backup = Some(true),
            "cookie" => {
                o.cookie = w.get(i + 1).map(|x| x.text.clone());
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
    o
}

/// `acl NAME path_beg /a /b` or `acl NAME hdr(host) [-i] a b`.
fn acl_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let (Some(name), Some(crit)) = (w.get(1), w.get(2)) else {
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
    if crit.text == "src" {
        let mut nets = Vec::new();
        for x in &w[3..] {
            match Cidr::parse(&x.text) {
                Some(c) => nets.push(c),
                None => d.error_hint(
                    src,
                    Some(x.span.clone()),
                    format!(
                        "acl `{}`: \"{}\" is not an address or network",
                        name.text, x.text
                    ),
                    "write an address or address/prefix: 192.0.2.7, 10.0.0.0/8",
                ),
            }
        }
        if w.len() == 3 {
            d.error(
                src,
                Some(crit.span.clone()),
                "`acl NAME src` lists no address",
            );
        }
        sec.src_acls
            .entry(name.text.clone())
            .or_default()
            .extend(nets);
        return;
    }
    let rule = match crit.text.as_str() {
        "path_beg" => RouteRule::PathPrefix(values),
        "hdr(host)" | "hdr(Host)" | "req.hdr(host)" => {
            RouteRule::Host(values.iter().map(|v| v.to_ascii_lowercase()).collect())
        }
        _ => {
            unsupported(
                src,
                d,
                crit,
                "acl (vakt implements path_beg, hdr(host) and src)",
            );
            return;
        }
    };
    sec.acls.insert(name.text.clone(), rule);
}

/// `use_backend NAME if ACL`, one acl per line.
fn use_backend_kw(src: &Source, w: &[Word], sec: &mut Section, d: &mut Diagnostics) {
    let arg = |i: usize| w.get(i).map(|x| x.text.as_str());
    match (arg(1), arg(2), arg(3), w.len()) {
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
            ("defaults\n  timeout tarpit 1h\n", "`tarpit`"),
            ("defaults\n  compression algo gzip\n", "`compression`"),
            (
                "frontend f\n  bind :80 ssl crt /x.pem verify required\n",
                "`verify`",
            ),
            ("frontend f\n  bind :80 ssl-min-ver TLSv1.0\n", "TLSv1.0"),
            ("frontend f\n  http-request deny\n", "`http-request deny`"),
            (
                "frontend f\n  http-response del-header Server\n",
                "`del-header`",
            ),
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
    fn the_prometheus_exporter_rule_and_rfc3164_stdout_log_are_read() {
        let text = "global\n  log stdout format rfc3164 local0\ndefaults\n  mode http\n  log global\nfrontend prometheus\n  bind 127.0.0.1:8405\n  http-request use-service prometheus-exporter if { path /metrics }\n  no log\n";
        let (c, _) = read(text).unwrap();
        assert_eq!(
            (c.global.log, c.global.syslog_format),
            (LogTarget::Stdout, SyslogFormat::Rfc3164)
        );
        assert_eq!(c.global.log_facility, 16);
        let fe = &c.frontends[0];
        assert_eq!(
            fe.metrics,
            Some(Metrics {
                uri: "/metrics".into(),
                users: Vec::new(),
                allow: Vec::new()
            })
        );
        assert_eq!(fe.log, None, "`no log`");
        let raw = read("global\n  log stdout format raw daemon\nlisten a\n  bind :80\n  server s 10.0.0.1:80\n").unwrap().0;
        assert_eq!(
            (
                raw.global.log,
                raw.global.syslog_format,
                raw.global.log_facility
            ),
            (LogTarget::Stdout, SyslogFormat::Raw, 3)
        );
        for (text, what) in [
            (
                "global\n  log stdout format short local0\n",
                "log format `short` is not supported",
            ),
            (
                "frontend f\n  http-request use-service prometheus-exporter\n",
                "one exact path",
            ),
            (
                "frontend f\n  http-request use-service lua.hello if { path / }\n",
                "service `lua.hello` is not supported",
            ),
        ] {
            let e = read(text).unwrap_err().to_string();
            let line = e
                .lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("{text:?}: {e}"));
            assert!(line.starts_with("haproxy.cfg:2:"), "{text:?}: {e}");
        }
    }

    #[test]
    fn syslog_over_udp_and_unix_sockets_in_both_formats_is_read() {
        let listen = "listen a\n  bind :80\n  server s 10.0.0.1:80\n";
        for (log, target, format) in [
            (
                "log 127.0.0.1:514 local0",
                LogTarget::Udp("127.0.0.1:514".parse().unwrap()),
                SyslogFormat::Rfc3164,
            ),
            (
                "log udp@192.0.2.7 len 1024 format rfc5424 local0",
                LogTarget::Udp("192.0.2.7:514".parse().unwrap()),
                SyslogFormat::Rfc5424,
            ),
            (
                "log /dev/log local0 info",
                LogTarget::Unix("/dev/log".into()),
                SyslogFormat::Rfc3164,
            ),
            (
                "log unix@/run/syslog.sock format rfc5424 local0",
                LogTarget::Unix("/run/syslog.sock".into()),
                SyslogFormat::Rfc5424,
            ),
            (
                "log stdout format rfc5424 local0",
                LogTarget::Stdout,
                SyslogFormat::Rfc5424,
            ),
        ] {
            let c = read(&format!("global\n  {log}\n{listen}")).unwrap().0;
            assert_eq!(
                (c.global.log, c.global.syslog_format),
                (target, format),
                "{log}"
            );
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

    #[test]
    fn client_address_guards_land_on_the_page_they_guard_and_others_are_errors() {
        let base = "listen a\n  bind 127.0.0.1:80\n  server w 127.0.0.1:81\n  stats enable\n  stats uri /haproxy?stats\n  http-request use-service prometheus-exporter if { path /metrics }\n";
        let (c, _) = read(&format!(
            "{base}  acl admin src 10.0.0.0/8\n  acl admin src 192.0.2.1\n  http-request deny if !admin {{ path /metrics }}\n  stats http-request deny unless {{ src 198.51.100.0/24 }}\n"
        ))
        .unwrap();
        let fe = &c.frontends[0];
        let nets = |v: &[Cidr]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(nets(&fe.stats.as_ref().unwrap().allow), ["198.51.100.0/24"]);
        assert_eq!(
            nets(&fe.metrics.as_ref().unwrap().allow),
            ["10.0.0.0/8", "192.0.2.1/32"]
        );
        for (extra, line, expect) in [
            (
                "  http-request deny if { path_beg /api } !admin\n  acl admin src 10.0.0.0/8\n",
                7,
                "matches neither",
            ),
            (
                "  stats http-request deny unless nobody\n",
                7,
                "no acl named `nobody`",
            ),
            (
                "  stats http-request allow if TRUE\n",
                7,
                "only `stats http-request deny unless",
            ),
            (
                "  acl admin src 10.0.0.300\n",
                7,
                "\"10.0.0.300\" is not an address",
            ),
            (
                "  http-request deny if { src 10.0.0.1 }\n",
                7,
                "only as a client-address guard",
            ),
            (
                "  stats http-request deny unless { src 10.0.0.1 }\n  stats http-request deny unless { src 10.0.0.2 }\n",
                8,
                "a second client-address rule for the stats page",
            ),
        ] {
            let e = read(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(
                e.contains(&format!("haproxy.cfg:{line}:")) && e.contains(expect),
                "{extra}: {e}"
            );
        }
    }

    #[test]
    fn stats_admin_buttons_are_opt_in_as_in_haproxy() {
        let base = "listen a\n  bind 127.0.0.1:80\n  server w 127.0.0.1:81\n  stats enable\n  stats auth u:$6$x$y\n";
        let (c, _) = read(base).unwrap();
        assert!(!c.frontends[0].stats.as_ref().unwrap().admin);
        let (c, _) = read(&format!("{base}  stats admin if TRUE\n")).unwrap();
        assert!(c.frontends[0].stats.as_ref().unwrap().admin);
        let e = read(&format!("{base}  stats admin if LOCALHOST\n")).unwrap_err();
        assert!(e.to_string().contains("stats admin if TRUE"), "{e}");
    }
}
