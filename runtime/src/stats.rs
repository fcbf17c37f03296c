//! The statistics page: renders a [`Snapshot`] of every frontend, backend and
//! server as HTML, HAProxy-compatible CSV (`;csv`) or JSON (`;json`). This
//! module only renders; the proxy takes the snapshot and checks credentials.

use std::time::Duration;

/// Everything the stats page shows, read once from the live counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub pid: u32,
    pub version: String,
    pub uptime: Duration,
    /// Seconds since the Unix epoch when the snapshot was taken.
    pub now_unix: u64,
    pub proxies: Vec<ProxyStats>,
}

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
    pub hrsp: [u64; 6],
    pub req_tot: u64,
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

/// HAProxy's CSV columns, in order, as far as vakt fills them.
const CSV_COLUMNS: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,";

/// One CSV row: fields by column name; everything else stays empty, as
/// HAProxy leaves columns that do not apply.
fn csv_row(out: &mut String, fields: &[(&str, String)]) {
    for col in CSV_COLUMNS.trim_end_matches(',').split(',') {
        if let Some((_, v)) = fields.iter().find(|(k, _)| *k == col) {
            // Names are plain identifiers; commas would break the format.
            out.push_str(&v.replace(',', "_"));
        }
        out.push(',');
    }
    out.push('\n');
}

fn counter_fields(c: &Counters, with_queue: bool) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("scur", c.scur.to_string()),
        ("smax", c.smax.to_string()),
        (
            "slim",
            if c.slim > 0 {
                c.slim.to_string()
            } else {
                String::new()
            },
        ),
        ("stot", c.stot.to_string()),
        ("bin", c.bin.to_string()),
        ("bout", c.bout.to_string()),
        ("hrsp_1xx", c.hrsp[0].to_string()),
        ("hrsp_2xx", c.hrsp[1].to_string()),
        ("hrsp_3xx", c.hrsp[2].to_string()),
        ("hrsp_4xx", c.hrsp[3].to_string()),
        ("hrsp_5xx", c.hrsp[4].to_string()),
        ("hrsp_other", c.hrsp[5].to_string()),
        ("req_tot", c.req_tot.to_string()),
    ];
    if with_queue {
        f.push(("qcur", c.qcur.to_string()));
        f.push(("qmax", c.qmax.to_string()));
    }
    f
}

/// The `;csv` page and `show stat`: HAProxy's header line, then per proxy a
/// FRONTEND row, one row per server and a BACKEND row.
pub fn render_csv(s: &Snapshot) -> String {
    let mut out = format!("# {CSV_COLUMNS}\n");
    let pid = s.pid.to_string();
    for (iid, p) in s.proxies.iter().enumerate() {
        let iid = (iid + 1).to_string();
        if let Some(fe) = &p.frontend {
            let c = &fe.counters;
            let mut f = counter_fields(c, false);
            f.extend([
                ("pxname", p.name.clone()),
                ("svname", "FRONTEND".into()),
                ("dreq", c.dreq.to_string()),
                ("ereq", c.ereq.to_string()),
                ("status", fe.status.clone()),
                ("pid", pid.clone()),
                ("iid", iid.clone()),
                ("sid", "0".into()),
                ("type", "0".into()),
            ]);
            csv_row(&mut out, &f);
        }
        for (sid, sv) in p.servers.iter().enumerate() {
            let c = &sv.counters;
            let mut f = counter_fields(c, true);
            f.extend([
                ("pxname", p.name.clone()),
                ("svname", sv.name.clone()),
                ("econ", c.econ.to_string()),
                ("eresp", c.eresp.to_string()),
                ("wretr", c.wretr.to_string()),
                ("wredis", c.wredis.to_string()),
                ("status", sv.status.clone()),
                ("weight", sv.weight.to_string()),
                ("act", u8::from(!sv.backup).to_string()),
                ("bck", u8::from(sv.backup).to_string()),
                ("chkfail", sv.chkfail.to_string()),
                ("chkdown", sv.chkdown.to_string()),
                ("lastchg", sv.lastchg.to_string()),
                ("downtime", sv.downtime.to_string()),
                ("pid", pid.clone()),
                ("iid", iid.clone()),
                ("sid", (sid + 1).to_string()),
                ("lbtot", c.stot.to_string()),
                ("type", "2".into()),
                ("check_status", sv.check_status.clone()),
                (
                    "check_code",
                    sv.check_code.map(|c| c.to_string()).unwrap_or_default(),
                ),
                (
                    "check_duration",
                    sv.check_duration_ms
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                ),
            ]);
            csv_row(&mut out, &f);
        }
        if let Some(be) = &p.backend {
            let c = &be.counters;
            let mut f = counter_fields(c, true);
            f.extend([
                ("pxname", p.name.clone()),
                ("svname", "BACKEND".into()),
                ("econ", c.econ.to_string()),
                ("eresp", c.eresp.to_string()),
                ("wretr", c.wretr.to_string()),
                ("wredis", c.wredis.to_string()),
                ("status", be.status.clone()),
                ("weight", be.weight.to_string()),
                ("act", be.act.to_string()),
                ("bck", be.bck.to_string()),
                ("chkdown", be.chkdown.to_string()),
                ("lastchg", be.lastchg.to_string()),
                ("downtime", be.downtime.to_string()),
                ("pid", pid.clone()),
                ("iid", iid.clone()),
                ("sid", "0".into()),
                ("lbtot", c.stot.to_string()),
                ("type", "1".into()),
            ]);
            csv_row(&mut out, &f);
        }
    }
    out
}

/// The `;json` page.
pub fn render_json(s: &Snapshot) -> String {
    serde_json::to_string_pretty(s).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

fn status_class(status: &str) -> &'static str {
    match status.split(' ').next().unwrap_or("") {
        "UP" | "OPEN" if status.contains('/') => "going",
        "UP" | "OPEN" => "up",
        "DOWN" if status.contains('/') => "going",
        "DOWN" | "STOP" => "down",
        "DRAIN" => "drain",
        "MAINT" => "maint",
        _ => "nocheck",
    }
}

/// The HTML page: one table per proxy.
pub fn render_html(s: &Snapshot, realm: &str, refresh: Option<Duration>) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">");
    if let Some(r) = refresh {
        out.push_str(&format!(
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            r.as_secs().max(1)
        ));
    }
    out.push_str(&format!("<title>{} — vakt statistics</title>", esc(realm)));
    out.push_str("<style>body{font-family:sans-serif;font-size:13px;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #bbb;padding:2px 6px;text-align:right}th{background:#335;color:#fff}td:first-child{text-align:left}caption{text-align:left;font-weight:bold;font-size:15px;padding:4px 0}.up{background:#c0f0c0}.down{background:#f4a0a0}.going{background:#f8e08e}.drain{background:#a0c8f0}.maint{background:#c8a0f0}.nocheck{background:#e8e8e8}.be{font-weight:bold;background:#eef}</style></head><body>\n");
    out.push_str(&format!(
        "<h1>vakt statistics</h1><p>pid {} · version {} · uptime {} · <a href=\"?stats;csv\">CSV</a> · <a href=\"?stats;json\">JSON</a></p>\n",
        s.pid,
        esc(&s.version),
        ago(s.uptime.as_secs())
    ));
    let head = "<tr><th>name</th><th>status</th><th>weight</th><th>cur</th><th>max</th><th>limit</th><th>total</th><th>queue cur/max</th><th>bytes in</th><th>bytes out</th><th>req err</th><th>conn err</th><th>resp err</th><th>retr/redis</th><th>2xx</th><th>5xx</th><th>check</th><th>last change</th><th>downtime</th></tr>\n";
    for p in &s.proxies {
        out.push_str(&format!(
            "<table><caption>{}</caption>\n{head}",
            esc(&p.name)
        ));
        let row = |out: &mut String,
                   name: &str,
                   status: &str,
                   weight: String,
                   c: &Counters,
                   check: String,
                   lastchg: String,
                   downtime: String,
                   class: &str| {
            out.push_str(&format!(
                "<tr class=\"{class}\"><td>{}</td><td class=\"{}\">{}</td><td>{weight}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{check}</td><td>{lastchg}</td><td>{downtime}</td></tr>\n",
                esc(name), status_class(status), esc(status), c.scur, c.smax,
                if c.slim > 0 { c.slim.to_string() } else { "-".into() },
                c.stot, c.qcur, c.qmax, c.bin, c.bout, c.ereq, c.econ, c.eresp, c.wretr, c.wredis, c.hrsp[1], c.hrsp[4],
            ));
        };
        if let Some(fe) = &p.frontend {
            row(
                &mut out,
                "Frontend",
                &fe.status,
                String::new(),
                &fe.counters,
                String::new(),
                String::new(),
                String::new(),
                "fe",
            );
        }
        for sv in &p.servers {
            let check = if sv.check_status.is_empty() {
                String::new()
            } else {
                format!(
                    "{}{} in {}ms",
                    esc(&sv.check_status),
                    sv.check_code.map(|c| format!("/{c}")).unwrap_or_default(),
                    sv.check_duration_ms.unwrap_or(0)
                )
            };
            let name = format!("{}{}", sv.name, if sv.backup { " (backup)" } else { "" });
            row(
                &mut out,
                &name,
                &sv.status,
                sv.weight.to_string(),
                &sv.counters,
                check,
                ago(sv.lastchg),
                ago(sv.downtime),
                "",
            );
        }
        if let Some(be) = &p.backend {
            row(
                &mut out,
                "Backend",
                &be.status,
                be.weight.to_string(),
                &be.counters,
                String::new(),
                ago(be.lastchg),
                String::new(),
                "be",
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            pid: 7,
            version: "0.1.0".into(),
            uptime: Duration::from_secs(75),
            now_unix: 0,
            proxies: vec![ProxyStats {
                name: "app".into(),
                frontend: Some(FrontendRow {
                    counters: Counters {
                        stot: 3,
                        ..Default::default()
                    },
                    status: "OPEN".into(),
                }),
                backend: Some(BackendRow {
                    status: "UP".into(),
                    weight: 2,
                    act: 2,
                    ..Default::default()
                }),
                servers: vec![ServerRow {
                    name: "web<01>".into(),
                    status: "UP 1/3".into(),
                    weight: 1,
                    check_status: "L7OK".into(),
                    check_code: Some(200),
                    check_duration_ms: Some(1),
                    ..Default::default()
                }],
            }],
        }
    }

    #[test]
    fn csv_has_haproxys_header_and_columns() {
        let csv = render_csv(&snapshot());
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,"));
        let cols: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
        for line in lines {
            assert_eq!(line.split(',').count(), cols.len(), "{line}");
        }
        let server = csv.lines().find(|l| l.starts_with("app,web<01>,")).unwrap();
        let f: Vec<&str> = server.split(',').collect();
        let col = |n: &str| cols.iter().position(|c| *c == n).unwrap();
        assert_eq!(f[col("status")], "UP 1/3");
        assert_eq!(f[col("weight")], "1");
        assert_eq!(f[col("type")], "2");
        assert_eq!(f[col("check_status")], "L7OK");
        assert!(csv.lines().any(|l| l.starts_with("app,FRONTEND,")));
        assert!(csv.lines().any(|l| l.starts_with("app,BACKEND,")));
    }

    #[test]
    fn html_escapes_names_and_refreshes() {
        let html = render_html(
            &snapshot(),
            "Strictly <Private>",
            Some(Duration::from_secs(5)),
        );
        assert!(html.contains("web&lt;01&gt;") && !html.contains("web<01>"));
        assert!(html.contains("Strictly &lt;Private&gt;"));
        assert!(html.contains("http-equiv=\"refresh\" content=\"5\""));
    }
}
