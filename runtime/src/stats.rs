//! The statistics page: renders a [`Snapshot`] of every frontend, backend and
//! server as HTML, HAProxy-compatible CSV (`;csv`) or JSON (`;json`), and
//! reads the page's drain/ready form ([`read_action`], guarded by a
//! [`csrf_token`]). The proxy takes the snapshot, checks credentials and
//! applies the action.

use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// Everything the stats page shows, read once from the live counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub pid: u32,
    pub version: String,
    /// Serialized as whole seconds, like HAProxy's `Uptime_sec`.
    #[serde(serialize_with = "whole_seconds")]
    pub uptime: Duration,
    /// Seconds since the Unix epoch when the snapshot was taken.
    pub now_unix: u64,
    pub process: ProcessStats,
    pub proxies: Vec<ProxyStats>,
}

/// Process-wide figures (HAProxy's `show info`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcessStats {
    /// Worker threads serving connections.
    pub threads: u64,
    /// Global `maxconn`.
    pub maxconn: u64,
    /// Client connections open now (HAProxy's `CurrConns`).
    pub current_connections: u64,
    /// Whether the process is stopping (graceful stop under way).
    pub stopping: bool,
    /// Log lines lost because the log target was full or failing.
    pub dropped_logs: u64,
}

fn whole_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// `hrsp` as `{"1xx": n, ..., "other": n}`, the names HAProxy's CSV uses.
fn response_classes<S: serde::Serializer>(h: &[u64; 6], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap as _;
    let mut m = s.serialize_map(Some(6))?;
    for (name, n) in RESPONSE_CLASSES.iter().zip(h) {
        m.serialize_entry(name, n)?;
    }
    m.end()
}

/// Response classes in `hrsp` order: HAProxy's CSV suffixes and the
/// Prometheus exporter's `code` label values.
pub const RESPONSE_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// One HAProxy "proxy": a frontend and/or backend of one name, with its servers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProxyStats {
    pub name: String,
    pub frontend: Option<FrontendRow>,
    pub backend: Option<BackendRow>,
    pub servers: Vec<ServerRow>,
}

/// Traffic counters shared by every row kind (HAProxy CSV column names).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counters {
    pub qcur: u64,
    pub qmax: u64,
    pub scur: u64,
    pub smax: u64,
    /// Session limit; 0 = none.
    pub slim: u64,
    pub stot: u64,
    pub bin: u64,
    pub bout: u64,
    pub dreq: u64,
    pub dresp: u64,
    pub ereq: u64,
    pub econ: u64,
    pub eresp: u64,
    pub wretr: u64,
    pub wredis: u64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx, other.
    #[serde(serialize_with = "response_classes")]
    pub hrsp: [u64; 6],
    pub req_tot: u64,
    /// Average queue, connect, response-head and total times in ms over the
    /// last 1024 answered requests, and their maxima (backends and servers).
    pub qtime: u64,
    pub ctime: u64,
    pub rtime: u64,
    pub ttime: u64,
    pub qtime_max: u64,
    pub ctime_max: u64,
    pub rtime_max: u64,
    pub ttime_max: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FrontendRow {
    pub counters: Counters,
    /// "OPEN" (or "STOP" while shutting down).
    pub status: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackendRow {
    pub counters: Counters,
    /// "UP" when at least one server can take traffic, else "DOWN".
    pub status: String,
    pub balance: String,
    /// Sum of the weights of usable servers.
    pub weight: u32,
    /// Active (non-backup) and backup servers that are UP.
    pub act: u32,
    pub bck: u32,
    pub chkdown: u64,
    /// Seconds since the last status change.
    pub lastchg: u64,
    pub downtime: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerRow {
    pub name: String,
    pub addr: String,
    pub cookie: Option<String>,
    pub counters: Counters,
    /// HAProxy wording: "UP", "DOWN", "UP 1/2" (going down), "DOWN 1/2"
    /// (going up), "MAINT", "DRAIN", "no check".
    pub status: String,
    pub weight: u32,
    pub backup: bool,
    /// Whether the server is health-checked (its status may say MAINT or
    /// DRAIN instead of "no check").
    pub checked: bool,
    /// Failed checks, and UP→DOWN transitions.
    pub chkfail: u64,
    pub chkdown: u64,
    /// Seconds since the last status change.
    pub lastchg: u64,
    /// Total seconds spent DOWN.
    pub downtime: u64,
    /// "L4OK", "L4CON", "L4TOUT", "L7OK", "L7STS", "L7TOUT", "L7RSP", or
    /// empty when the server is not checked.
    pub check_status: String,
    pub check_code: Option<u16>,
    pub check_duration_ms: Option<u64>,
}

/// HAProxy's CSV columns, in HAProxy's order, through `srv_abrt` (the first
/// 51). HAProxy only ever appends columns, so tools that read by position
/// and tools that read the header line's names both find these.
const COLUMNS: [&str; 51] = [
    "pxname",
    "svname",
    "qcur",
    "qmax",
    "scur",
    "smax",
    "slim",
    "stot",
    "bin",
    "bout",
    "dreq",
    "dresp",
    "ereq",
    "econ",
    "eresp",
    "wretr",
    "wredis",
    "status",
    "weight",
    "act",
    "bck",
    "chkfail",
    "chkdown",
    "lastchg",
    "downtime",
    "qlimit",
    "pid",
    "iid",
    "sid",
    "throttle",
    "lbtot",
    "tracked",
    "type",
    "rate",
    "rate_lim",
    "rate_max",
    "check_status",
    "check_code",
    "check_duration",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "hanafail",
    "req_rate",
    "req_rate_max",
    "req_tot",
    "cli_abrt",
    "srv_abrt",
];

/// CSV `type` column values.
const TYPE_FRONTEND: u8 = 0;
const TYPE_BACKEND: u8 = 1;
const TYPE_SERVER: u8 = 2;

/// HAProxy's `pid` column is the process number within one HAProxy
/// (1 unless `nbproc` > 1), not the OS pid; tools that add up several
/// processes key on it. vakt is always one process.
const CSV_PROCESS: u8 = 1;

/// One CSV line under construction: cells by column name. Cells left unset
/// stay empty, as HAProxy leaves the columns that do not apply to a row.
struct CsvRow {
    cells: [String; COLUMNS.len()],
}

impl CsvRow {
    fn new(pxname: &str, svname: &str, kind: u8, iid: usize, sid: usize) -> Self {
        let mut row = CsvRow {
            cells: std::array::from_fn(|_| String::new()),
        };
        row.set("pxname", pxname);
        row.set("svname", svname);
        row.set("type", kind);
        row.set("pid", CSV_PROCESS);
        row.set("iid", iid);
        row.set("sid", sid);
        row
    }

    fn set(&mut self, column: &str, value: impl fmt::Display) {
        match COLUMNS.iter().position(|c| *c == column) {
            Some(i) => {
                self.cells[i].clear();
                let _ = write!(self.cells[i], "{value}");
            }
            // Column names are literals in this file; the tests render every
            // row kind, so a misspelt one fails them.
            None => debug_assert!(false, "no CSV column {column}"),
        }
    }

    /// Session and traffic columns every row kind has.
    fn counters(&mut self, c: &Counters) {
        self.set("scur", c.scur);
        self.set("smax", c.smax);
        if c.slim > 0 {
            self.set("slim", c.slim);
        }
        self.set("stot", c.stot);
        self.set("bin", c.bin);
        self.set("bout", c.bout);
        self.set("dresp", c.dresp);
        for (class, n) in RESPONSE_CLASSES.into_iter().zip(c.hrsp) {
            self.set(&format!("hrsp_{class}"), n);
        }
        self.set("req_tot", c.req_tot);
    }

    /// Queue, connection and retry columns of backends and servers.
    fn server_side(&mut self, c: &Counters) {
        self.set("qcur", c.qcur);
        self.set("qmax", c.qmax);
        self.set("econ", c.econ);
        self.set("eresp", c.eresp);
        self.set("wretr", c.wretr);
        self.set("wredis", c.wredis);
    }

    fn write(&self, out: &mut String) {
        for cell in &self.cells {
            // HAProxy's CSV has no quoting: a comma or line break inside a
            // name would shift every later column, so it becomes `_`.
            out.extend(cell.chars().map(|ch| match ch {
                ',' | '\r' | '\n' => '_',
                ch => ch,
            }));
            out.push(',');
        }
        out.push('\n');
    }
}

/// The `;csv` page and the admin socket's `show stat`: HAProxy's header
/// line, then per proxy a FRONTEND row, one row per server and a BACKEND
/// row, with the cells HAProxy 2.6 fills for each (measured). Rates and
/// abort counters, which vakt does not track, stay empty.
pub fn render_csv(s: &Snapshot) -> String {
    let mut out = String::with_capacity(512 + 256 * s.proxies.len());
    out.push_str("# ");
    for c in COLUMNS {
        out.push_str(c);
        out.push(',');
    }
    out.push('\n');
    for (i, p) in s.proxies.iter().enumerate() {
        let iid = i + 1;
        if let Some(fe) = &p.frontend {
            let mut row = CsvRow::new(&p.name, "FRONTEND", TYPE_FRONTEND, iid, 0);
            row.counters(&fe.counters);
            row.set("dreq", fe.counters.dreq);
            row.set("ereq", fe.counters.ereq);
            row.set("status", &fe.status);
            row.write(&mut out);
        }
        for (j, sv) in p.servers.iter().enumerate() {
            let mut row = CsvRow::new(&p.name, &sv.name, TYPE_SERVER, iid, j + 1);
            row.counters(&sv.counters);
            row.server_side(&sv.counters);
            row.set("status", &sv.status);
            row.set("weight", sv.weight);
            // For a server these are flags: one of them is 1.
            row.set("act", u8::from(!sv.backup));
            row.set("bck", u8::from(sv.backup));
            // HAProxy leaves check counters empty for unchecked servers.
            if sv.status != "no check" {
                row.set("chkfail", sv.chkfail);
                row.set("chkdown", sv.chkdown);
                row.set("downtime", sv.downtime);
            }
            row.set("lastchg", sv.lastchg);
            row.set("lbtot", sv.counters.stot);
            if !sv.check_status.is_empty() {
                row.set("check_status", &sv.check_status);
            }
            if let Some(code) = sv.check_code {
                row.set("check_code", code);
            }
            if let Some(ms) = sv.check_duration_ms {
                row.set("check_duration", ms);
            }
            row.write(&mut out);
        }
        if let Some(be) = &p.backend {
            let mut row = CsvRow::new(&p.name, "BACKEND", TYPE_BACKEND, iid, 0);
            row.counters(&be.counters);
            row.server_side(&be.counters);
            row.set("dreq", be.counters.dreq);
            row.set("status", &be.status);
            row.set("weight", be.weight);
            // For a backend these are counts of usable servers.
            row.set("act", be.act);
            row.set("bck", be.bck);
            row.set("chkdown", be.chkdown);
            row.set("lastchg", be.lastchg);
            row.set("downtime", be.downtime);
            row.set("lbtot", be.counters.stot);
            row.write(&mut out);
        }
    }
    out
}

/// The `;json` page: the snapshot as it is (vakt's own layout, not
/// HAProxy's typed-field JSON).
pub fn render_json(s: &Snapshot) -> String {
    // Plain structs, strings and numbers: serialisation cannot fail, but an
    // error would still come out as valid JSON.
    serde_json::to_string_pretty(s)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

/// What the page's buttons ask of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Drain,
    Ready,
}

/// A form post from the page: `action` for `server` in `backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAction {
    pub backend: String,
    pub server: String,
    pub action: Action,
}

/// Why a form post was refused; its text is the 400 page's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error(
        "the stats page's form token is missing or stale (the proxy restarted, or the post \
         came from another site): reload the stats page and press the button again"
    )]
    Token,
    #[error("stats page form: field `{0}` is missing; post the page's own form")]
    Missing(&'static str),
    #[error("stats page form: unknown action `{0}`; use drain or ready")]
    UnknownAction(String),
    #[error("stats page form: server `{0}` is not `BACKEND/SERVER`")]
    Target(String),
}

/// The CSRF token the page's forms carry for one set of credentials: a
/// SHA-256 of a per-process random secret and the `Authorization` header.
/// Another site can make a logged-in browser post to the page, but it
/// cannot read the page, so it cannot know the token; a token from another
/// user's login or an earlier process does not match.
pub fn csrf_token(authorization: &[u8]) -> String {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(rand::random);
    let mut h = Sha256::new();
    h.update(secret);
    h.update(authorization);
    h.finalize()
        .iter()
        .fold(String::with_capacity(64), |mut t, b| {
            let _ = write!(t, "{b:02x}");
            t
        })
}

/// Reads the page's form (`application/x-www-form-urlencoded`: `token`,
/// `s` = `BACKEND/SERVER`, `action` = drain or ready) and checks its token
/// against `token`, comparing in constant time.
pub fn read_action(body: &[u8], token: &str) -> Result<ServerAction, ActionError> {
    let (mut got_token, mut target, mut action) = (None, None, None);
    for pair in body.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let v = form_decode(v);
        match k {
            b"token" => got_token = Some(v),
            b"s" => target = Some(v),
            b"action" => action = Some(v),
            _ => {}
        }
    }
    let got = got_token.unwrap_or_default();
    let same = got.len() == token.len()
        && got
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err(ActionError::Token);
    }
    let target = target.ok_or(ActionError::Missing("s"))?;
    let action = match action.ok_or(ActionError::Missing("action"))?.as_str() {
        "drain" => Action::Drain,
        "ready" => Action::Ready,
        other => return Err(ActionError::UnknownAction(other.to_string())),
    };
    match target.split_once('/') {
        Some((backend, server)) if !backend.is_empty() && !server.is_empty() => Ok(ServerAction {
            backend: backend.to_string(),
            server: server.to_string(),
            action,
        }),
        _ => Err(ActionError::Target(target)),
    }
}

/// Decodes one form value: `+` is a space, `%XX` a byte; a malformed escape
/// stays as it is (it then names no server and is refused as such).
fn form_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < v.len() => match (hex_digit(v[i + 1]), hex_digit(v[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The page's `Content-Security-Policy`: nothing but its own inline style
/// and `data:` images; no script, no frames, and forms only post back here.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Inline CSS (the CSP allows nothing else). Row colours are HAProxy 2.6's
/// own (its stats page's `.active_up`, `.maintain`, `.backup_draining`, …),
/// so people who know that page read this one at a glance. Below 700 px the
/// table scrolls sideways under a sticky name column that also shows the
/// status, which otherwise sits off screen at the far right.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;font-size:13px;margin:1em;color:#222}\
h1{font-size:20px;margin:0 0 .2em}\
p.info{margin:0 0 1em;color:#555}\
a{color:#2050a0}\
.wrap{overflow-x:auto;margin-bottom:1.5em}\
table{border-collapse:collapse}\
caption{text-align:left;font-weight:bold;font-size:15px;padding:4px 0}\
th,td{border:1px solid #bbb;padding:2px 5px;text-align:right;white-space:nowrap}\
th{background:#335;color:#fff;font-weight:normal;text-align:center}\
td.name{text-align:left;font-weight:bold}\
td.name,th.name{position:sticky;left:0}\
td.name{background:inherit}\
td.status,td.act{text-align:center}\
td.act{padding:0 3px}form{margin:0}button{font:inherit;padding:0 6px}\
.st{display:none;font-weight:normal}\
tr.fe,tr.be{background:#e8e8d0}\
.up{background:#c0ffc0}\
.going-down{background:#ffffa0}\
.going-up{background:#ffd020}\
.down{background:#ff9090}\
.drain{background:#20a0ff}\
.maint{background:#c07820}\
.nocheck{background:#e0e0e0}\
.backup.up{background:#b0d0ff}\
.backup.going-down{background:#c060ff}\
.backup.going-up{background:#ff80ff}\
.backup.drain{background:#cc9900}\
.legend span{display:inline-block;padding:1px 6px;margin:0 4px 4px 0;border:1px solid #bbb}\
@media (max-width:700px){body{margin:.5em}.st{display:inline}}";

/// Column groups and their columns; every row has exactly these cells.
const HEAD: [(&str, &[&str]); 8] = [
    ("", &["Name"]),
    ("Queue", &["Cur", "Max"]),
    ("Sessions", &["Cur", "Max", "Limit", "Total"]),
    ("Bytes", &["In", "Out"]),
    ("Errors", &["Req", "Conn", "Resp"]),
    ("Warnings", &["Retr", "Redis"]),
    ("Responses", &["2xx", "5xx"]),
    (
        "Server",
        &[
            "Status", "LastChg", "Check", "Wght", "Act", "Bck", "Chk", "Dwn", "Dwntme",
        ],
    ),
];

/// The HTML page: a header line (pid, version, uptime), then one table per
/// proxy with its frontend, servers and backend. Self-contained: inline CSS,
/// no script, nothing fetched. `uri` is the configured stats URI, used for
/// the CSV and JSON links and as the forms' target; with a `token` (see
/// [`csrf_token`]) each server row gets a drain or ready button. Every name
/// is HTML-escaped.
pub fn render_html_at(
    s: &Snapshot,
    realm_title: &str,
    refresh: Option<Duration>,
    uri: &str,
    token: Option<&str>,
) -> String {
    let mut out = String::with_capacity(4096 + 2048 * s.proxies.len());
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    );
    if let Some(r) = refresh {
        let _ = write!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            r.as_secs().max(1)
        );
    }
    out.push_str("<title>");
    push_esc(&mut out, realm_title);
    out.push_str(" · vakt statistics</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<h1>");
    push_esc(&mut out, realm_title);
    out.push_str("</h1>\n<p class=\"info\">vakt ");
    push_esc(&mut out, &s.version);
    let _ = write!(
        out,
        " · pid {} · uptime {}",
        s.pid,
        human(s.uptime.as_secs())
    );
    if let Some(t) = i64::try_from(s.now_unix)
        .ok()
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
    {
        let _ = write!(out, " · {}", t.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    if let Some(r) = refresh {
        let _ = write!(out, " · refreshes every {}", human(r.as_secs().max(1)));
    }
    for (label, suffix) in [("CSV", ";csv"), ("JSON", ";json")] {
        out.push_str(" · <a href=\"");
        push_esc(&mut out, uri);
        let _ = write!(out, "{suffix}\">{label}</a>");
    }
    out.push_str("</p>\n<p class=\"legend\">");
    for (class, label) in [
        ("up", "UP"),
        ("backup up", "backup UP"),
        ("going-down", "UP, going down"),
        ("going-up", "DOWN, going up"),
        ("backup going-down", "backup UP, going down"),
        ("backup going-up", "backup DOWN, going up"),
        ("down", "DOWN"),
        ("drain", "DRAIN"),
        ("backup drain", "backup DRAIN"),
        ("maint", "MAINT"),
        ("nocheck", "not checked"),
    ] {
        let _ = write!(out, "<span class=\"{class}\">{label}</span>");
    }
    out.push_str("</p>\n");
    if s.proxies.is_empty() {
        out.push_str("<p>No listeners.</p>\n");
    }
    let forms = token.map(|token| Forms { uri, token });
    for p in &s.proxies {
        proxy_table(&mut out, p, forms.as_ref());
    }
    out.push_str("</body></html>\n");
    out
}

/// Where the rows' buttons post, with what token.
struct Forms<'a> {
    uri: &'a str,
    token: &'a str,
}

fn proxy_table(out: &mut String, p: &ProxyStats, forms: Option<&Forms>) {
    out.push_str("<div class=\"wrap\"><table><caption>");
    push_esc(out, &p.name);
    if let Some(be) = &p.backend
        && !be.balance.is_empty()
    {
        out.push_str(" <small>(");
        push_esc(out, &be.balance);
        out.push_str(")</small>");
    }
    out.push_str("</caption>\n<tr>");
    for (group, cols) in HEAD {
        if group.is_empty() {
            out.push_str("<th rowspan=\"2\" class=\"name\">Name</th>");
        } else {
            let _ = write!(out, "<th colspan=\"{}\">{group}</th>", cols.len());
        }
    }
    if forms.is_some() {
        out.push_str("<th rowspan=\"2\">Action</th>");
    }
    out.push_str("</tr>\n<tr>");
    for (group, cols) in HEAD {
        if !group.is_empty() {
            for c in cols {
                let _ = write!(out, "<th>{c}</th>");
            }
        }
    }
    out.push_str("</tr>\n");

    if let Some(fe) = &p.frontend {
        let c = &fe.counters;
        let mut tr = Tr::open(out, "fe");
        tr.name("Frontend", None, &fe.status);
        tr.blank(2);
        tr.sessions(c);
        tr.num(c.ereq);
        tr.blank(4);
        tr.responses(c);
        tr.status(&fe.status, status_class(&fe.status));
        tr.blank(8 + usize::from(forms.is_some()));
        tr.close();
    }
    for sv in &p.servers {
        let c = &sv.counters;
        let class = status_class(&sv.status);
        let row_class = if sv.backup {
            format!("backup {class}")
        } else {
            class.to_string()
        };
        let mut title = format!("address {}", sv.addr);
        if let Some(cookie) = &sv.cookie {
            let _ = write!(title, ", cookie {cookie}");
        }
        let checked = sv.status != "no check";
        let mut tr = Tr::open(out, &row_class);
        tr.name(&sv.name, Some(&title), &sv.status);
        tr.num(c.qcur);
        tr.num(c.qmax);
        tr.sessions(c);
        tr.blank(1);
        tr.num(c.econ);
        tr.num(c.eresp);
        tr.num(c.wretr);
        tr.num(c.wredis);
        tr.responses(c);
        tr.status(&sv.status, "");
        tr.text(&human(sv.lastchg));
        tr.text(&check_text(sv));
        tr.num(u64::from(sv.weight));
        tr.text(if sv.backup { "-" } else { "Y" });
        tr.text(if sv.backup { "Y" } else { "-" });
        if checked {
            tr.num(sv.chkfail);
            tr.num(sv.chkdown);
            tr.text(&human(sv.downtime));
        } else {
            tr.blank(3);
        }
        if let Some(f) = forms {
            tr.button(f, &p.name, sv);
        }
        tr.close();
    }
    if let Some(be) = &p.backend {
        let c = &be.counters;
        let mut tr = Tr::open(out, "be");
        tr.name("Backend", None, &be.status);
        tr.num(c.qcur);
        tr.num(c.qmax);
        tr.sessions(c);
        tr.blank(1);
        tr.num(c.econ);
        tr.num(c.eresp);
        tr.num(c.wretr);
        tr.num(c.wredis);
        tr.responses(c);
        tr.status(&be.status, status_class(&be.status));
        tr.text(&human(be.lastchg));
        tr.blank(1);
        tr.num(u64::from(be.weight));
        tr.num(u64::from(be.act));
        tr.num(u64::from(be.bck));
        tr.blank(1);
        tr.num(be.chkdown);
        tr.text(&human(be.downtime));
        if forms.is_some() {
            tr.blank(1);
        }
        tr.close();
    }
    out.push_str("</table></div>\n");
}

/// Writes one table row cell by cell.
struct Tr<'a> {
    out: &'a mut String,
}

impl<'a> Tr<'a> {
    fn open(out: &'a mut String, class: &str) -> Self {
        out.push_str("<tr class=\"");
        push_esc(out, class);
        out.push_str("\">");
        Tr { out }
    }

    /// The name cell; `status` is repeated in it for narrow screens (shown
    /// by the style's media query only).
    fn name(&mut self, name: &str, title: Option<&str>, status: &str) {
        self.out.push_str("<td class=\"name\"");
        if let Some(t) = title {
            self.out.push_str(" title=\"");
            push_esc(self.out, t);
            self.out.push('"');
        }
        self.out.push('>');
        push_esc(self.out, name);
        self.out.push_str("<span class=\"st\"> ");
        push_esc(self.out, status);
        self.out.push_str("</span></td>");
    }

    fn num(&mut self, n: u64) {
        let _ = write!(self.out, "<td>{n}</td>");
    }

    fn text(&mut self, s: &str) {
        self.out.push_str("<td>");
        push_esc(self.out, s);
        self.out.push_str("</td>");
    }

    fn blank(&mut self, n: usize) {
        for _ in 0..n {
            self.out.push_str("<td></td>");
        }
    }

    /// The action cell: a form posting `token`, `s` = `proxy/server` and
    /// the one action that changes the server's state (ready when drained
    /// or in maintenance, else drain).
    fn button(&mut self, f: &Forms, proxy: &str, sv: &ServerRow) {
        let (action, label) = match sv.status.split(' ').next().unwrap_or_default() {
            "DRAIN" | "MAINT" => ("ready", "Ready"),
            _ => ("drain", "Drain"),
        };
        self.out
            .push_str("<td class=\"act\"><form method=\"post\" action=\"");
        push_esc(self.out, f.uri);
        self.out
            .push_str("\"><input type=\"hidden\" name=\"token\" value=\"");
        push_esc(self.out, f.token);
        self.out
            .push_str("\"><input type=\"hidden\" name=\"s\" value=\"");
        push_esc(self.out, proxy);
        self.out.push('/');
        push_esc(self.out, &sv.name);
        let _ = write!(
            self.out,
            "\"><button name=\"action\" value=\"{action}\">{label}</button></form></td>"
        );
    }

    /// A status cell, coloured by `class` (server rows colour the whole row).
    fn status(&mut self, status: &str, class: &str) {
        self.out.push_str("<td class=\"status");
        if !class.is_empty() {
            self.out.push(' ');
            self.out.push_str(class);
        }
        self.out.push_str("\">");
        push_esc(self.out, status);
        self.out.push_str("</td>");
    }

    /// Sessions (cur, max, limit, total) and bytes (in, out).
    fn sessions(&mut self, c: &Counters) {
        self.num(c.scur);
        self.num(c.smax);
        if c.slim > 0 {
            self.num(c.slim);
        } else {
            self.text("-");
        }
        self.num(c.stot);
        self.num(c.bin);
        self.num(c.bout);
    }

    fn responses(&mut self, c: &Counters) {
        self.num(c.hrsp[1]);
        self.num(c.hrsp[4]);
    }

    fn close(self) {
        self.out.push_str("</tr>\n");
    }
}

/// "L7OK 200 in 3ms", "L4CON in 1ms", or empty when unchecked.
fn check_text(sv: &ServerRow) -> String {
    let mut t = sv.check_status.clone();
    if t.is_empty() {
        return t;
    }
    if let Some(code) = sv.check_code {
        let _ = write!(t, " {code}");
    }
    if let Some(ms) = sv.check_duration_ms {
        let _ = write!(t, " in {ms}ms");
    }
    t
}

/// The CSS class for a status, in HAProxy's colours: "UP 1/3" is an UP
/// server failing checks (going down), "DOWN 1/2" a DOWN one passing them
/// (going up).
fn status_class(status: &str) -> &'static str {
    let transitional = status.contains('/');
    match status.split(' ').next().unwrap_or_default() {
        "UP" if transitional => "going-down",
        "DOWN" if transitional => "going-up",
        "UP" | "OPEN" => "up",
        "DOWN" | "STOP" => "down",
        "DRAIN" => "drain",
        "MAINT" => "maint",
        _ => "nocheck",
    }
}

/// Escapes text for HTML content and quoted attribute values.
fn push_esc(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
}

/// Seconds for people: "45s", "2m13s", "3h05m", "2d4h".
fn human(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HAProxy 2.6.12 `;csv` rows (first 51 columns), measured on `listen
    /// app` with web01 (checked, weight 3), web02 (backup, unchecked, port
    /// closed) and web03 (checked, port closed), after a few requests.
    const HAPROXY_FRONTEND: &str = "app,FRONTEND,,,1,1,9985,3,216,333,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,2,0,2,,,,0,1,0,0,1,0,,2,2,3,,,";
    const HAPROXY_WEB01: &str = "app,web01,0,0,0,1,,1,92,116,,0,,0,0,0,0,UP,3,1,0,1,1,2,4,,1,2,1,,1,,2,1,,1,L7OK,200,1,0,1,0,0,0,0,,,,1,0,0,";
    const HAPROXY_WEB02: &str = "app,web02,0,0,0,1,,4,124,217,,0,,1,0,3,0,no check,1,0,1,,,6,,,1,2,2,,1,,2,1,,1,,,,0,0,0,0,0,0,,,,0,0,0,";
    const HAPROXY_WEB03: &str = "app,web03,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,5,5,,1,2,3,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,";
    const HAPROXY_BACKEND: &str = "app,BACKEND,0,0,0,1,999,2,216,333,0,0,,1,0,3,0,UP,3,1,1,,0,6,0,,1,2,0,,2,,1,1,,1,,,,0,1,0,0,1,0,,,,2,0,0,";

    /// The same state as vakt's snapshot.
    fn measured() -> Snapshot {
        let server = |name: &str, status: &str| ServerRow {
            name: name.into(),
            addr: "127.0.0.1:45581".into(),
            status: status.into(),
            weight: 1,
            ..Default::default()
        };
        Snapshot {
            pid: 4242,
            version: "0.1.0".into(),
            uptime: Duration::from_secs(75),
            now_unix: 1_800_000_000,
            process: ProcessStats::default(),
            proxies: vec![ProxyStats {
                name: "app".into(),
                frontend: Some(FrontendRow {
                    counters: Counters {
                        scur: 1,
                        smax: 1,
                        slim: 9985,
                        stot: 3,
                        bin: 216,
                        bout: 333,
                        hrsp: [0, 1, 0, 0, 1, 0],
                        req_tot: 3,
                        ..Default::default()
                    },
                    status: "OPEN".into(),
                }),
                servers: vec![
                    ServerRow {
                        counters: Counters {
                            smax: 1,
                            stot: 1,
                            bin: 92,
                            bout: 116,
                            hrsp: [0, 1, 0, 0, 0, 0],
                            req_tot: 1,
                            ..Default::default()
                        },
                        weight: 3,
                        chkfail: 1,
                        chkdown: 1,
                        lastchg: 2,
                        downtime: 4,
                        check_status: "L7OK".into(),
                        check_code: Some(200),
                        check_duration_ms: Some(1),
                        cookie: Some("w1".into()),
                        ..server("web01", "UP")
                    },
                    ServerRow {
                        counters: Counters {
                            smax: 1,
                            stot: 4,
                            bin: 124,
                            bout: 217,
                            econ: 1,
                            wretr: 3,
                            ..Default::default()
                        },
                        backup: true,
                        lastchg: 6,
                        ..server("web02", "no check")
                    },
                    ServerRow {
                        chkfail: 1,
                        chkdown: 1,
                        lastchg: 5,
                        downtime: 5,
                        check_status: "L4CON".into(),
                        check_duration_ms: Some(0),
                        ..server("web03", "DOWN")
                    },
                ],
                backend: Some(BackendRow {
                    counters: Counters {
                        smax: 1,
                        slim: 999,
                        stot: 2,
                        bin: 216,
                        bout: 333,
                        econ: 1,
                        wretr: 3,
                        hrsp: [0, 1, 0, 0, 1, 0],
                        req_tot: 2,
                        ..Default::default()
                    },
                    status: "UP".into(),
                    balance: "roundrobin".into(),
                    weight: 3,
                    act: 1,
                    bck: 1,
                    lastchg: 6,
                    ..Default::default()
                }),
            }],
        }
    }

    fn col(name: &str) -> usize {
        COLUMNS.iter().position(|c| *c == name).unwrap()
    }

    fn row<'a>(csv: &'a str, svname: &str) -> Vec<&'a str> {
        let prefix = format!("app,{svname},");
        let line = csv.lines().find(|l| l.starts_with(&prefix)).unwrap();
        line.split(',').collect()
    }

    #[test]
    fn csv_header_is_haproxys() {
        let csv = render_csv(&Snapshot::default());
        assert_eq!(
            csv,
            "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,\n"
        );
    }

    #[test]
    fn csv_rows_come_in_haproxys_order_with_the_same_field_count() {
        let csv = render_csv(&measured());
        let lines: Vec<&str> = csv.lines().collect();
        let names: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(names, ["FRONTEND", "web01", "web02", "web03", "BACKEND"]);
        for l in &lines {
            assert!(l.ends_with(','), "{l}");
            assert_eq!(l.split(',').count(), COLUMNS.len() + 1, "{l}");
        }
    }

    #[test]
    fn csv_rows_match_haproxy_except_what_vakt_does_not_track() {
        let csv = render_csv(&measured());
        // Rates and aborts are not tracked (left empty); iid is HAProxy's
        // internal proxy number; HAProxy's lbtot for web02 excludes retries.
        let untracked = [
            "rate",
            "rate_lim",
            "rate_max",
            "req_rate",
            "req_rate_max",
            "cli_abrt",
            "srv_abrt",
        ];
        for (svname, haproxy) in [
            ("FRONTEND", HAPROXY_FRONTEND),
            ("web01", HAPROXY_WEB01),
            ("web02", HAPROXY_WEB02),
            ("web03", HAPROXY_WEB03),
            ("BACKEND", HAPROXY_BACKEND),
        ] {
            let ours = row(&csv, svname);
            let theirs: Vec<&str> = haproxy.split(',').collect();
            assert_eq!(ours.len(), theirs.len(), "{svname}");
            for (i, name) in COLUMNS.iter().enumerate() {
                if untracked.contains(name) {
                    assert_eq!(ours[i], "", "{svname}.{name} is not tracked");
                } else if *name == "iid" || (svname == "web02" && *name == "lbtot") {
                    continue;
                } else {
                    assert_eq!(ours[i], theirs[i], "{svname}.{name}");
                }
            }
        }
    }

    #[test]
    fn csv_server_status_and_weight_sit_where_tools_read_them() {
        let csv = render_csv(&measured());
        let web01 = row(&csv, "web01");
        // Positions from HAProxy's management guide, section 9.1.
        assert_eq!(web01[17], "UP");
        assert_eq!(web01[18], "3");
        assert_eq!((web01[19], web01[20]), ("1", "0"));
        assert_eq!(web01[32], "2");
        assert_eq!(web01[36], "L7OK");
        assert_eq!(row(&csv, "web02")[col("bck")], "1");
        let fe = row(&csv, "FRONTEND");
        assert_eq!((fe[col("type")], fe[col("sid")]), ("0", "0"));
        let be = row(&csv, "BACKEND");
        assert_eq!(
            (be[col("type")], be[col("act")], be[col("bck")]),
            ("1", "1", "1")
        );
    }

    #[test]
    fn csv_names_cannot_shift_columns() {
        let mut s = measured();
        s.proxies[0].servers[0].name = "a,b\nc".into();
        let csv = render_csv(&s);
        assert!(csv.lines().any(|l| l.starts_with("app,a_b_c,")), "{csv}");
        for l in csv.lines() {
            assert_eq!(l.split(',').count(), COLUMNS.len() + 1, "{l}");
        }
    }

    #[test]
    fn json_is_the_snapshot() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&measured())).unwrap();
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["uptime"], 75, "whole seconds");
        let web01 = &v["proxies"][0]["servers"][0]["counters"];
        assert_eq!(web01["hrsp"]["2xx"], 1, "classes by name");
        assert_eq!(web01["hrsp"]["other"], 0);
        assert_eq!(web01["bin"], 92);
        assert_eq!(v["proxies"][0]["servers"][0]["name"], "web01");
        assert_eq!(v["proxies"][0]["backend"]["act"], 1);
    }

    #[test]
    fn html_has_one_table_per_proxy_with_every_row_complete() {
        let mut s = measured();
        s.proxies.push(ProxyStats {
            name: "api".into(),
            backend: Some(BackendRow::default()),
            ..Default::default()
        });
        let html = render_html_at(&s, "Strictly Private", None, "/haproxy?stats", None);
        assert_eq!(html.matches("<table>").count(), 2);
        let cells: usize = HEAD.iter().map(|(_, cols)| cols.len()).sum();
        let rows: Vec<&str> = html
            .split("<tr class=")
            .skip(1)
            .map(|r| r.split("</tr>").next().unwrap())
            .collect();
        assert_eq!(rows.len(), 6, "frontend, 3 servers, 2 backends");
        for r in rows {
            assert_eq!(r.matches("<td").count(), cells, "{r}");
        }
        assert!(!html.contains("http-equiv"));
        assert!(html.contains("<a href=\"/haproxy?stats;csv\">CSV</a>"));
        assert!(html.contains("<a href=\"/haproxy?stats;json\">JSON</a>"));
        assert!(html.contains("pid 4242") && html.contains("uptime 1m15s"));
        assert!(html.contains("2027-01-15 08:00:00 UTC"), "now_unix");
        // Self-contained: nothing fetched, nothing run.
        for needle in ["<script", "src=", "http://", "https://", "@import"] {
            assert!(!html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn html_colours_rows_by_server_state() {
        let html = render_html_at(&measured(), "x", None, "/haproxy?stats", None);
        assert!(html.contains("<tr class=\"up\"><td class=\"name\" title=\"address 127.0.0.1:45581, cookie w1\">web01<span class=\"st\"> UP</span></td>"));
        assert!(html.contains("<tr class=\"backup nocheck\"><td class=\"name\""));
        assert!(html.contains("<tr class=\"down\"><td class=\"name\""));
        assert!(html.contains("<td>L7OK 200 in 1ms</td>"));
        assert_eq!(status_class("UP 1/3"), "going-down");
        assert_eq!(status_class("DOWN 1/2"), "going-up");
        assert_eq!(status_class("DRAIN"), "drain");
        assert_eq!(status_class("MAINT"), "maint");
        assert_eq!(status_class("no check"), "nocheck");
        assert_eq!(status_class("OPEN"), "up");
    }

    #[test]
    fn html_escapes_every_name_and_refreshes() {
        let mut s = measured();
        s.proxies[0].name = "<app>".into();
        s.proxies[0].servers[0].name = "web<01>\"'&".into();
        s.proxies[0].servers[0].status = "<UP>".into();
        s.version = "<v>".into();
        let html = render_html_at(
            &s,
            "Strictly <Private>",
            Some(Duration::from_secs(5)),
            "/st\"ats",
            None,
        );
        assert!(html.contains("web&lt;01&gt;&quot;&#39;&amp;"));
        assert!(html.contains("&lt;app&gt;") && html.contains("&lt;UP&gt;"));
        assert!(html.contains("<title>Strictly &lt;Private&gt; · vakt statistics</title>"));
        assert!(html.contains("vakt &lt;v&gt;"));
        assert!(html.contains("href=\"/st&quot;ats;csv\""));
        for raw in ["<app>", "web<01>", "<Private>", "<UP>", "<v>"] {
            assert!(!html.contains(raw), "{raw}");
        }
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    }

    #[test]
    fn html_buttons_post_the_token_and_the_action_that_changes_state() {
        let mut s = measured();
        s.proxies[0].servers[1].status = "DRAIN".into();
        let html = render_html_at(&s, "x", None, "/haproxy?stats", Some("t0k"));
        assert!(html.contains(
            "<td class=\"act\"><form method=\"post\" action=\"/haproxy?stats\">\
             <input type=\"hidden\" name=\"token\" value=\"t0k\">\
             <input type=\"hidden\" name=\"s\" value=\"app/web01\">\
             <button name=\"action\" value=\"drain\">Drain</button></form></td>"
        ));
        assert!(html.contains("value=\"app/web02\"><button name=\"action\" value=\"ready\">"));
        assert_eq!(html.matches("<form").count(), 3, "one per server");
        // Every row still has as many cells as the header announces.
        let cells: usize = HEAD.iter().map(|(_, cols)| cols.len()).sum::<usize>() + 1;
        for r in html.split("<tr class=").skip(1) {
            let r = r.split("</tr>").next().unwrap();
            assert_eq!(r.matches("<td").count(), cells, "{r}");
        }
        assert!(!render_html_at(&s, "x", None, "/s", None).contains("<form"));
    }

    #[test]
    fn form_posts_are_read_only_with_the_right_token() {
        let token = csrf_token(b"Basic YWRtaW46cw==");
        assert_eq!(token.len(), 64);
        assert_eq!(
            token,
            csrf_token(b"Basic YWRtaW46cw=="),
            "stable per process"
        );
        assert_ne!(
            token,
            csrf_token(b"Basic b3RoZXI6cw=="),
            "tied to the login"
        );
        let body = format!("token={token}&s=my+app%2Fweb%3C1%3E&action=drain");
        assert_eq!(
            read_action(body.as_bytes(), &token),
            Ok(ServerAction {
                backend: "my app".into(),
                server: "web<1>".into(),
                action: Action::Drain,
            })
        );
        let ready = format!("action=ready&s=app/web01&token={token}");
        assert_eq!(
            read_action(ready.as_bytes(), &token).map(|a| a.action),
            Ok(Action::Ready)
        );
        for (body, err) in [
            ("s=app/web01&action=drain".to_string(), ActionError::Token),
            (
                format!("token={}&s=app/web01&action=drain", &token[1..]),
                ActionError::Token,
            ),
            (
                format!("token={token}&action=drain"),
                ActionError::Missing("s"),
            ),
            (
                format!("token={token}&s=app/web01"),
                ActionError::Missing("action"),
            ),
            (
                format!("token={token}&s=app/web01&action=maint"),
                ActionError::UnknownAction("maint".into()),
            ),
            (
                format!("token={token}&s=web01&action=drain"),
                ActionError::Target("web01".into()),
            ),
            (
                format!("token={token}&s=%zz/&action=drain"),
                ActionError::Target("%zz/".into()),
            ),
        ] {
            assert_eq!(read_action(body.as_bytes(), &token), Err(err), "{body}");
        }
        assert!(
            ActionError::Token
                .to_string()
                .contains("reload the stats page")
        );
    }

    #[test]
    fn durations_read_like_haproxys() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(133), "2m13s");
        assert_eq!(human(3 * 3600 + 5 * 60 + 9), "3h05m");
        assert_eq!(human(2 * 86400 + 4 * 3600), "2d4h");
    }
}
