//! `vakt audit`: where the personal data of a cluster lives, with evidence
//! an auditor can follow. Every data-bearing subject (role db, `data =
//! true`, a host discovered listening on a database port, a `[[backups]]`
//! target) gets its evidence — declared location, GeoIP of its public
//! address, round-trip time from a trusted probe, what it listens on — and a
//! verdict under the inventory's `[policy]`. Gathering touches hosts
//! (read-only); judging and the report are pure.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::inventory::{Host, Inventory, Location, LogsTo, Policy, Role};
use crate::target::Target;
use crate::transport::sh;

/// The EEA states (EU plus Iceland, Liechtenstein, Norway), for the policy
/// group "EEA".
pub const EEA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Light in fibre covers about 200 km per millisecond one way, so a round
/// trip of r ms bounds the distance by r × 100 km.
pub const KM_PER_RTT_MS: f64 = 100.0;

/// Whether the policy lets personal data live in `country`.
pub fn allowed(policy: &Policy, country: &str) -> bool {
    policy
        .data_countries
        .iter()
        .any(|c| c == country || (c == "EEA" && EEA.contains(&country)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Compliant,
    Violation,
    Unverified,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Compliant => "compliant",
            Verdict::Violation => "violation",
            Verdict::Unverified => "unverified",
        })
    }
}

/// One piece of evidence: `agrees` is `Some(true)` when it supports the
/// policy, `Some(false)` when it contradicts it, `None` when it cannot decide.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// declared, geoip, latency, discovery.
    pub kind: String,
    pub agrees: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    pub name: String,
    /// host or backup.
    pub kind: String,
    /// Why it counts as data-bearing.
    pub why: String,
    pub location: Option<Location>,
    pub public_ip: Option<Ipv4Addr>,
    pub evidence: Vec<Evidence>,
    pub verdict: Verdict,
    /// Plain-language reasons for a violation or an unverified verdict.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UTC, `YYYY-MM-DD HH:MM UTC` (SOURCE_DATE_EPOCH when set).
    pub date: String,
    /// The vakt that wrote the report, with its git revision.
    pub version: String,
    /// Gathered with `--offline`: no host was asked, so the report rests on
    /// declarations and GeoIP alone.
    pub offline: bool,
    pub inventory: String,
    pub inventory_sha256: String,
    pub cluster: String,
    pub policy: Policy,
    pub subjects: Vec<Subject>,
    /// The hosts that hold no personal data, each with why (negative
    /// evidence: an auditor asks about every host, not only the data ones).
    pub others: Vec<Other>,
}

/// A host the report judges free of personal data, and the evidence for it.
#[derive(Debug, Clone, Serialize)]
pub struct Other {
    pub name: String,
    pub roles: Vec<String>,
    pub why: Vec<String>,
}

impl Report {
    pub fn compliant(&self) -> bool {
        self.subjects
            .iter()
            .all(|s| s.verdict == Verdict::Compliant)
    }

    pub fn violations(&self) -> impl Iterator<Item = (&Subject, &String)> {
        self.subjects
            .iter()
            .filter(|s| s.verdict != Verdict::Compliant)
            .flat_map(|s| s.reasons.iter().map(move |r| (s, r)))
    }
}

/// What gathering found on the hosts, by host name.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `--offline`: nothing below was read from a host.
    pub offline: bool,
    /// Data ports each host listens on (`ss -ltn`); `Err` when unreadable.
    pub listening: Vec<(String, Result<Vec<u16>, String>)>,
    /// Median TCP connect time from the probe host; `Err` when unmeasured.
    pub rtt: Vec<(String, Result<Duration, String>)>,
    /// GeoIP country of each public address (`Ok(None)`: not in the database).
    pub geoip: Vec<(String, Result<Option<String>, String>)>,
    /// With `[firewall]`: who reaches each data port of a data-bearing host
    /// (`Err`: its rules could not be read).
    pub reach: Vec<(String, Result<Vec<Reach>, String>)>,
    /// With `[logs] to = "file"`: the age in days of each LB's oldest
    /// request log file (`Ok(None)`: none yet).
    pub log_age: Vec<(String, Result<Option<u64>, String>)>,
    /// Each dump target's newest dump as its host reports it, by target
    /// name (`Ok(None)`: no dump yet).
    pub dumps: Vec<(String, Result<Option<crate::backup::Dumped>, String>)>,
    /// Each MariaDB host's datadir and its size in bytes (`du -sb`), by
    /// host name (`Ok(None)`: no datadir yet).
    pub datadir: Vec<(String, Result<Option<u64>, String>)>,
}

/// Who may and who does reach one data port: the accept rules for it in
/// the host's `table inet vakt`, and probes from the other hosts and from
/// the operator's machine (`here`).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    pub port: u16,
    pub rules: Vec<String>,
    /// (from, reached).
    pub probes: Vec<(String, bool)>,
}

/// The sources an nft rule line admits (`ip saddr X` or `ip saddr { X, Y }`);
/// `None`: the rule names none, so anyone.
fn rule_sources(rule: &str) -> Option<Vec<String>> {
    let rest = rule.split_once("saddr ")?.1.trim_start();
    Some(match rest.strip_prefix('{') {
        Some(set) => set
            .split('}')
            .next()
            .unwrap_or("")
            .split(',')
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        None => rest
            .split_whitespace()
            .next()
            .map(str::to_string)
            .into_iter()
            .collect(),
    })
}

/// The "reach" evidence: only the web hosts may reach a data port, by the
/// rules and by the probes; anything more is a violation.
fn reach(inv: &Inventory, host: &Host, obs: &Observed) -> Option<Evidence> {
    let (_, r) = obs.reach.iter().find(|(n, _)| *n == host.name)?;
    let ports = match r {
        Err(e) => {
            return Some(Evidence {
                kind: "reach".into(),
                agrees: None,
                detail: format!("who reaches its data ports is unknown: {e}"),
            });
        }
        Ok(p) => p,
    };
    if ports.is_empty() {
        // No data port at all (a backup host: its data are files, which
        // SSH guards as on any host).
        return Some(Evidence {
            kind: "reach".into(),
            agrees: Some(true),
            detail: "it has no data port for anyone to reach".into(),
        });
    }
    let webs: Vec<&Host> = inv.webs().collect();
    // The hosts that dump this DB reach it too (`[[backups]]`): by their
    // own rule, and they hold the data anyway (judged as backups).
    let dumpers = crate::topology::dumpers_of(inv, host);
    let is_web_ip = |a: &str| {
        webs.iter().any(|w| w.private_ip.to_string() == a)
            || dumpers.iter().any(|d| d.to_string() == a)
    };
    // Without dump targets the messages say what they always said.
    let (allowed, allowed_pl) = if dumpers.is_empty() {
        ("web host", "the web hosts")
    } else {
        ("web or backup host", "the web and backup hosts")
    };
    let is_dumper = |name: &str| {
        inv.hosts
            .iter()
            .any(|h| h.name == name && dumpers.contains(&h.private_ip))
    };
    let mut wrong = Vec::new();
    let mut parts = Vec::new();
    for p in ports {
        for rule in &p.rules {
            match rule_sources(rule) {
                None => wrong.push(format!("port {} is open to anyone by `{rule}`", p.port)),
                Some(src) => {
                    let beyond: Vec<&String> = src.iter().filter(|a| !is_web_ip(a)).collect();
                    if !beyond.is_empty() {
                        wrong.push(format!(
                            "port {} admits {} beyond {allowed_pl} by `{rule}`",
                            p.port,
                            beyond
                                .iter()
                                .map(|a| a.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
        let from = |reached: bool| -> Vec<&str> {
            p.probes
                .iter()
                .filter(|(_, r)| *r == reached)
                .map(|(f, _)| f.as_str())
                .collect()
        };
        for f in from(true) {
            if !webs.iter().any(|w| w.name == f) && !is_dumper(f) {
                wrong.push(format!(
                    "port {} is reachable from {f}, which is no {allowed}",
                    p.port
                ));
            }
        }
        let rules = if p.rules.is_empty() {
            "no accept rule".to_string()
        } else {
            p.rules
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        parts.push(format!(
            "port {}: {rules}; reached from [{}], closed from [{}]",
            p.port,
            from(true).join(", "),
            from(false).join(", ")
        ));
    }
    Some(if wrong.is_empty() {
        Evidence {
            kind: "reach".into(),
            agrees: Some(true),
            detail: format!(
                "only the web hosts{} reach its data ports: {}",
                if dumpers.is_empty() {
                    ""
                } else {
                    " and the hosts that dump it"
                },
                parts.join(" | ")
            ),
        }
    } else {
        Evidence {
            kind: "reach".into(),
            agrees: Some(false),
            detail: format!(
                "{}: only the web hosts{} may reach a database; run `vakt up` to load the firewall's rules",
                wrong.join("; "),
                if dumpers.is_empty() {
                    ""
                } else {
                    " (and the backup hosts that dump it)"
                }
            ),
        }
    })
}

fn declared(policy: &Policy, loc: Option<&Location>) -> Evidence {
    match loc {
        None => Evidence {
            kind: "declared".into(),
            agrees: Some(false),
            detail: "no location declared in the inventory".into(),
        },
        Some(l) => {
            let place = [
                Some(l.country.as_str()),
                l.city.as_deref(),
                l.provider.as_deref(),
                l.site.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            Evidence {
                kind: "declared".into(),
                agrees: Some(allowed(policy, &l.country)),
                detail: format!("the inventory says {place}"),
            }
        }
    }
}

fn is_documentation(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    matches!(
        (o[0], o[1], o[2]),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
    )
}

fn geoip(policy: &Policy, host: &Host, obs: &Observed) -> Evidence {
    let e = |agrees, detail: String| Evidence {
        kind: "geoip".into(),
        agrees,
        detail,
    };
    let Some(ip) = host.public_ip else {
        return e(
            None,
            "private-only host: it has no public address for GeoIP to place".into(),
        );
    };
    match obs
        .geoip
        .iter()
        .find(|(n, _)| *n == host.name)
        .map(|(_, r)| r)
    {
        None => e(
            None,
            format!("{ip}: no GeoIP database (set policy.geoip_db)"),
        ),
        Some(Err(err)) => e(None, format!("{ip}: GeoIP lookup failed: {err}")),
        Some(Ok(None)) if is_documentation(ip) => e(
            None,
            format!("{ip} is a documentation address (RFC 5737): no country"),
        ),
        Some(Ok(None)) => e(None, format!("{ip} is not in the GeoIP database")),
        Some(Ok(Some(c))) => e(
            Some(allowed(policy, c)),
            format!("the GeoIP database places {ip} in {c}"),
        ),
    }
}

fn latency(policy: &Policy, host: &Host, obs: &Observed) -> Option<Evidence> {
    let probe = policy.rtt_probe.as_ref()?;
    let e = |agrees, detail: String| Evidence {
        kind: "latency".into(),
        agrees,
        detail,
    };
    if *probe == host.name {
        // The policy names the probe as the host whose place it trusts.
        return Some(e(
            Some(true),
            format!("{probe} is the probe itself ([policy] rtt_probe: its place is trusted)"),
        ));
    }
    Some(
        match obs
            .rtt
            .iter()
            .find(|(n, _)| *n == host.name)
            .map(|(_, r)| r)
        {
            None => e(None, "not measured".into()),
            Some(Err(err)) => e(None, format!("RTT from {probe} not measured: {err}")),
            Some(Ok(rtt)) => {
                let ms = rtt.as_secs_f64() * 1e3;
                let km = ms * KM_PER_RTT_MS;
                let bound = format!(
                    "RTT {ms:.2} ms from {probe} (median TCP connect): within about {km:.0} km of {probe}"
                );
                match policy.max_rtt_ms {
                    Some(max) if ms <= max => {
                        e(Some(true), format!("{bound}; at most {max} ms allowed"))
                    }
                    Some(max) => e(
                        Some(false),
                        format!(
                            "{bound}; exceeds the allowed {max} ms (a long RTT alone does not prove the host is abroad, but the policy requires proximity)"
                        ),
                    ),
                    None => e(None, format!("{bound}; no policy.max_rtt_ms to judge by")),
                }
            }
        },
    )
}

/// Judges the evidence: every required kind must agree for "compliant"; a
/// required kind that contradicts makes a violation; one that cannot decide
/// leaves the subject unverified. An undeclared data port is a violation.
fn judge(policy: &Policy, name: &str, evidence: &[Evidence]) -> (Verdict, Vec<String>) {
    let mut violation = Vec::new();
    let mut unverified = Vec::new();
    for e in evidence
        .iter()
        .filter(|e| e.kind == "discovery" || e.kind == "reach" || e.kind == "retention")
    {
        if e.agrees == Some(false) {
            violation.push(format!("{name}: {}", e.detail));
        }
    }
    for r in &policy.require {
        match evidence.iter().find(|e| e.kind == r.as_str()) {
            Some(e) if e.agrees == Some(true) => {}
            Some(e) if e.agrees == Some(false) => violation.push(format!("{name}: {}", e.detail)),
            Some(e) => unverified.push(format!(
                "{name}: required {r} evidence cannot decide: {}",
                e.detail
            )),
            None => unverified.push(format!("{name}: required {r} evidence is missing")),
        }
    }
    if !violation.is_empty() {
        (Verdict::Violation, violation)
    } else if !unverified.is_empty() {
        (Verdict::Unverified, unverified)
    } else {
        (Verdict::Compliant, Vec::new())
    }
}

/// Builds the report from the inventory and what was observed. Pure.
pub fn judge_all(inv: &Inventory, obs: &Observed, date: String) -> Report {
    let policy = &inv.policy;
    let mut subjects = Vec::new();
    let mut others = Vec::new();
    for h in &inv.hosts {
        let ports: Vec<u16> = obs
            .listening
            .iter()
            .find(|(n, _)| *n == h.name)
            .and_then(|(_, r)| r.as_ref().ok())
            .cloned()
            .unwrap_or_default();
        let declared_data = h.data || h.has(Role::Db);
        if !declared_data && ports.is_empty() {
            others.push(other(h, obs));
            continue;
        }
        let why = if h.has(Role::Db) {
            "role db".to_string()
        } else if h.has(Role::Backup) {
            "role backup: keeps the database's dumps".to_string()
        } else if h.data {
            "data = true".to_string()
        } else {
            format!("discovered: listens on {}", join(&ports))
        };
        let mut evidence = vec![declared(policy, h.location.as_ref()), geoip(policy, h, obs)];
        evidence.extend(latency(policy, h, obs));
        evidence.extend(reach(inv, h, obs));
        match obs.listening.iter().find(|(n, _)| *n == h.name).map(|(_, r)| r) {
            Some(Ok(p)) if !declared_data => evidence.push(Evidence {
                kind: "discovery".into(),
                agrees: Some(false),
                detail: format!(
                    "listens on data port {} but is not declared data-bearing (web and LB hosts must not keep data on their own disks): move the data to a db host or declare it (data = true) with its location",
                    join(p)
                ),
            }),
            Some(Ok(p)) => evidence.push(Evidence {
                kind: "discovery".into(),
                agrees: None,
                detail: if p.is_empty() {
                    "listens on no data port".into()
                } else {
                    format!("listens on data port {}", join(p))
                },
            }),
            Some(Err(e)) => evidence.push(Evidence {
                kind: "discovery".into(),
                agrees: None,
                detail: format!("listening sockets not read: {e}"),
            }),
            None => {}
        }
        if h.mariadb.is_some() {
            evidence.push(datadir(h, obs));
        }
        let (verdict, reasons) = judge(policy, &h.name, &evidence);
        subjects.push(Subject {
            name: h.name.clone(),
            kind: "host".into(),
            why,
            location: h.location.clone(),
            public_ip: h.public_ip,
            evidence,
            verdict,
            reasons,
        });
    }
    for b in &inv.backups {
        let mut evidence = vec![declared(policy, Some(&b.location))];
        if let Some(d) = &b.dump {
            evidence.push(holds(b, d, obs));
        }
        // A backup target is judged by where it lies; what it holds is
        // evidence for the auditor (its host is judged as a host too).
        let decl = &evidence[0];
        let (verdict, reasons) = match decl.agrees {
            Some(true) => (Verdict::Compliant, Vec::new()),
            _ => (
                Verdict::Violation,
                vec![format!(
                    "backup {}: {}{}, outside {}",
                    b.name,
                    b.dump
                        .as_ref()
                        .map(|d| format!("its dumps lie on {}, which ", d.host))
                        .unwrap_or_default(),
                    decl.detail,
                    policy.data_countries.join("/")
                )],
            ),
        };
        subjects.push(Subject {
            name: b.name.clone(),
            kind: format!("backup ({})", b.kind),
            why: match &b.dump {
                Some(d) => format!(
                    "[[backups]] target: dumps of {} kept on {} in {}",
                    d.db, d.host, d.path
                ),
                None => "[[backups]] target".into(),
            },
            location: Some(b.location.clone()),
            public_ip: None,
            evidence,
            verdict,
            reasons,
        });
    }
    // An LB without a location cannot be judged: its `Other` entry says so,
    // with the fix (the inventory does not require LBs to have one).
    for h in inv
        .hosts
        .iter()
        .filter(|h| h.has(Role::Lb) && h.location.is_some())
    {
        // The log lies on the LB's own disk: the LB's place is its place.
        let mut evidence = vec![declared(policy, h.location.as_ref()), geoip(policy, h, obs)];
        evidence.extend(latency(policy, h, obs));
        evidence.push(retention(inv, h, obs));
        let name = format!("{} request log", h.name);
        let (verdict, reasons) = judge(policy, &name, &evidence);
        subjects.push(Subject {
            name,
            // The name says "request log" already: the kind says where.
            kind: match inv.logs.to_for(h) {
                LogsTo::File => "kept in a file".into(),
                _ => "kept by syslog".into(),
            },
            why: if inv.logs.anonymize {
                "client addresses, cut to their /24 (IPv6 /48) by [logs] anonymize".into()
            } else {
                "client addresses (personal data)".into()
            },
            location: h.location.clone(),
            public_ip: None,
            evidence,
            verdict,
            reasons,
        });
    }
    subjects.extend(policy.processors.iter().map(|p| processor(policy, p)));
    Report {
        date,
        version: crate::history::VERSION.to_string(),
        offline: obs.offline,
        inventory: inv.file.clone(),
        inventory_sha256: inv.sha256.clone(),
        cluster: inv.name.clone(),
        policy: policy.clone(),
        subjects,
        others,
    }
}

/// The "holds" evidence of a dump target: what its host actually keeps
/// (the newest dump's time, size and checksum), or why it is not known.
/// It never decides the verdict: where the files lie does.
fn holds(b: &crate::inventory::Backup, d: &crate::inventory::Dump, obs: &Observed) -> Evidence {
    let detail = match obs.dumps.iter().find(|(n, _)| *n == b.name).map(|(_, r)| r) {
        Some(Ok(Some(x))) => format!(
            "{} holds {} ({} bytes, sha256 {}), {} old; the newest {} are kept ({})",
            d.host,
            x.file,
            x.size,
            x.sha256,
            age(x.age_secs()),
            d.keep,
            d.schedule.as_str()
        ),
        Some(Ok(None)) => format!(
            "{} holds no dump in {} yet (`vakt backup` makes one)",
            d.host, d.path
        ),
        Some(Err(e)) => format!("what {} holds could not be read: {e}", d.host),
        None => format!(
            "{}:{} was not looked at{}",
            d.host,
            d.path,
            if obs.offline { " (--offline)" } else { "" }
        ),
    };
    Evidence {
        kind: "holds".into(),
        agrees: None,
        detail,
    }
}

/// The "holds" evidence of a MariaDB host: its datadir and how much it
/// holds, as the host reports it. Like a dump's, it never decides the
/// verdict: where the host is does.
fn datadir(h: &Host, obs: &Observed) -> Evidence {
    let dir = crate::render::MARIADB_DATADIR;
    let detail = match obs
        .datadir
        .iter()
        .find(|(n, _)| *n == h.name)
        .map(|(_, r)| r)
    {
        Some(Ok(Some(bytes))) => format!("MariaDB's datadir {dir}: {}", size(*bytes)),
        Some(Ok(None)) => {
            format!("MariaDB's datadir {dir} does not exist yet (`vakt up` makes it)")
        }
        Some(Err(e)) => format!("MariaDB's datadir {dir} could not be measured: {e}"),
        None => format!(
            "MariaDB's datadir {dir} was not looked at{}",
            if obs.offline { " (--offline)" } else { "" }
        ),
    };
    Evidence {
        kind: "holds".into(),
        agrees: None,
        detail,
    }
}

/// A size in MiB with the exact bytes beside it (bytes alone below 1 MiB).
fn size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB {
        format!("{:.1} MiB ({bytes} bytes)", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

/// An age as people say it: seconds, minutes, hours or days.
fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The "retention" evidence of an LB's request log: its oldest file's age
/// against `[logs] keep_days` (a day of grace: logrotate runs daily).
fn retention(inv: &Inventory, h: &Host, obs: &Observed) -> Evidence {
    let keep = inv.logs.keep_days;
    let (agrees, detail) = match inv.logs.to_for(h) {
        LogsTo::Syslog | LogsTo::Syslog5424 => (
            None,
            "to the host's syslog (/dev/log): how long it keeps them is the syslog daemon's setting (see /etc/logrotate.d/rsyslog on the host)".to_string(),
        ),
        LogsTo::File => match obs.log_age.iter().find(|(n, _)| *n == h.name).map(|(_, r)| r) {
            Some(Ok(Some(age))) if *age > u64::from(keep) + 1 => (
                Some(false),
                format!(
                    "its oldest request log under /var/log/vakt is {age} days old, longer than [logs] keep_days = {keep}: check that logrotate runs (cron or its systemd timer)"
                ),
            ),
            Some(Ok(Some(age))) => (
                Some(true),
                format!(
                    "{}, oldest file {age} days old; rotated daily, deleted after {keep} days ([logs] keep_days)",
                    crate::render::ACCESS_LOG
                ),
            ),
            Some(Ok(None)) => (
                Some(true),
                format!("no request log in {} yet", crate::render::ACCESS_LOG),
            ),
            Some(Err(e)) => (None, format!("its request logs could not be read: {e}")),
            None => (
                None,
                format!(
                    "{}, deleted after {keep} days by logrotate; the files were not looked at{}",
                    crate::render::ACCESS_LOG,
                    if obs.offline { " (--offline)" } else { "" }
                ),
            ),
        },
    };
    Evidence {
        kind: "retention".into(),
        agrees,
        detail,
    }
}

/// The age in days of the oldest of `find -printf '%T@'` lines, the host's
/// `date +%s` last (the host's clock, not ours).
fn oldest_age_days(out: &str) -> Option<u64> {
    let mut nums: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .collect();
    let now = nums.pop()?;
    let oldest = nums.into_iter().reduce(f64::min)?;
    Some(((now - oldest).max(0.0) / 86_400.0) as u64)
}

/// Why a host that is neither declared data-bearing nor seen listening on a
/// data port holds no personal data, with what was (or was not) looked at.
fn other(h: &Host, obs: &Observed) -> Other {
    let roles: Vec<String> = h.roles.iter().map(|r| r.as_str().to_string()).collect();
    let mut why = vec![format!(
        "role {} holds no database and is not declared data = true",
        roles.join(", ")
    )];
    why.push(
        match obs.listening.iter().find(|(n, _)| *n == h.name).map(|(_, r)| r) {
            Some(Ok(_)) => "listens on no data port (ss -ltn on the host)".to_string(),
            Some(Err(e)) => format!("its listening sockets could not be read: {e}"),
            None if obs.offline => {
                "its listening sockets were not read (--offline): run without --offline for this evidence".to_string()
            }
            None => "its listening sockets were not read".to_string(),
        },
    );
    if h.has(Role::Lb) {
        why.push(
            if h.location.is_some() {
                format!("as a load balancer it passes requests through without storing them; its request log holds client addresses, which are personal data: judged above as `{} request log`", h.name)
            } else {
                format!("as a load balancer it passes requests through without storing them; its request log holds client addresses, which are personal data, but {} declares no location, so the log's place cannot be judged: add location = {{ country = \"NO\", city = \"Oslo\" }} to it", h.name)
            },
        );
    }
    Other {
        name: h.name.clone(),
        roles,
        why,
    }
}

/// A data processor of `[policy]`: allowed where the policy allows data, or
/// elsewhere under a recorded transfer; always with a recorded DPA.
fn processor(policy: &Policy, p: &crate::inventory::Processor) -> Subject {
    let mut evidence = Vec::new();
    let transfer = policy.transfers.iter().find(|t| t.to == p.country);
    evidence.push(if allowed(policy, &p.country) {
        Evidence {
            kind: "declared".into(),
            agrees: Some(true),
            detail: format!(
                "processes the data in {}, which the policy allows",
                p.country
            ),
        }
    } else if let Some(t) = transfer {
        Evidence {
            kind: "transfer".into(),
            agrees: Some(true),
            detail: format!(
                "processes the data in {}, outside {}, under a recorded transfer: {}{}",
                p.country,
                policy.data_countries.join("/"),
                t.basis,
                t.what
                    .as_deref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ),
        }
    } else {
        Evidence {
            kind: "declared".into(),
            agrees: Some(false),
            detail: format!(
                "processes the data in {}, outside {}, and no transfer to {} is recorded: add [policy] transfers = [{{ to = \"{}\", basis = \"...\" }}] with its legal basis, or choose a processor in {}",
                p.country,
                policy.data_countries.join("/"),
                p.country,
                p.country,
                policy.data_countries.join("/")
            ),
        }
    });
    evidence.push(match &p.dpa {
        Some(dpa) => Evidence {
            kind: "dpa".into(),
            agrees: Some(true),
            detail: format!("data-processing agreement recorded at {dpa}"),
        },
        None => Evidence {
            kind: "dpa".into(),
            agrees: Some(false),
            detail: "no data-processing agreement recorded (GDPR art. 28(3) requires one): add dpa = \"where it is kept\"".into(),
        },
    });
    let reasons: Vec<String> = evidence
        .iter()
        .filter(|e| e.agrees == Some(false))
        .map(|e| format!("processor {}: {}", p.name, e.detail))
        .collect();
    Subject {
        name: p.name.clone(),
        kind: "processor".into(),
        why: "[policy] processors".into(),
        location: None,
        public_ip: None,
        evidence,
        verdict: if reasons.is_empty() {
            Verdict::Compliant
        } else {
            Verdict::Violation
        },
        reasons,
    }
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The short form for `vakt verify`: declared locations only.
pub fn declared_summary(inv: &Inventory) -> Result<String, String> {
    let report = judge_all(inv, &Observed::default(), String::new());
    let bad: Vec<String> = report
        .subjects
        .iter()
        .filter(|s| {
            s.evidence
                .iter()
                .any(|e| e.kind == "declared" && e.agrees != Some(true))
        })
        .map(|s| {
            format!(
                "{} ({})",
                s.name,
                s.location
                    .as_ref()
                    .map_or("no location", |l| l.country.as_str())
            )
        })
        .collect();
    let n = report.subjects.len();
    if bad.is_empty() {
        Ok(format!(
            "{n} data-bearing subject(s), all declared in {} (`vakt audit` gives the evidence)",
            inv.policy.data_countries.join("/")
        ))
    } else {
        Err(format!(
            "declared outside {}: {}",
            inv.policy.data_countries.join("/"),
            bad.join(", ")
        ))
    }
}

/// The GeoIP country of an address: `country.iso_code` (MaxMind's
/// GeoLite2/GeoIP2 and DB-IP layout) or `country_code` (ip-location-db's).
pub fn geoip_country(
    reader: &maxminddb::Reader<Vec<u8>>,
    ip: Ipv4Addr,
) -> Result<Option<String>, String> {
    #[derive(serde::Deserialize)]
    struct Country {
        iso_code: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Record {
        country: Option<Country>,
        country_code: Option<String>,
    }
    let r: Option<Record> = reader
        .lookup(std::net::IpAddr::V4(ip))
        .map_err(|e| e.to_string())?;
    Ok(r.and_then(|r| r.country.and_then(|c| c.iso_code).or(r.country_code)))
}

/// Reads what the report needs from the hosts: GeoIP (local file), data
/// ports (`ss -ltn` over SSH, unless `offline`), RTT from the probe.
/// Gathers the evidence; `step` hears what is being looked at (progress).
pub fn gather(t: &Target, offline: bool, step: &dyn Fn(&str)) -> anyhow::Result<Observed> {
    use anyhow::Context;
    let inv = &t.inv;
    let mut obs = Observed {
        offline,
        ..Observed::default()
    };
    if let Some(db) = &inv.policy.geoip_db {
        let path = inv.dir.as_deref().map_or(db.clone(), |d| d.join(db));
        let reader = maxminddb::Reader::open_readfile(&path).with_context(|| {
            format!(
                "policy.geoip_db {}: cannot read it as an mmdb file (see README: GeoIP databases)",
                path.display()
            )
        })?;
        for h in inv.hosts.iter() {
            if let Some(ip) = h.public_ip {
                obs.geoip.push((h.name.clone(), geoip_country(&reader, ip)));
            }
        }
    }
    if offline {
        return Ok(obs);
    }
    for h in &t.hosts {
        step(&format!("listening ports on {}", h.host.name));
        let r = h.transport().map_err(|e| format!("{e:#}")).and_then(|tr| {
            let out = tr.run("ss -Hltn").map_err(|e| e.to_string())?;
            if !out.ok() {
                return Err(format!("`ss -ltn` failed: {}", out.stderr.trim()));
            }
            // Local hosts share this machine's sockets: only their own
            // addresses (and wildcards) are theirs.
            let own = h.host.is_local().then(|| {
                [Some(h.host.private_ip), h.host.public_ip]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
            });
            Ok(listening_ports(
                &out.stdout,
                &inv.policy.data_ports,
                own.as_deref(),
            ))
        });
        obs.listening.push((h.host.name.clone(), r));
    }
    for h in t
        .hosts
        .iter()
        .filter(|h| h.host.has(Role::Lb) && inv.logs.to_for(&h.host) == LogsTo::File)
    {
        step(&format!("request logs on {}", h.host.name));
        let r = h.transport().map_err(|e| format!("{e:#}")).and_then(|tr| {
            let dir = sh(&format!("{}/var/log/vakt", tr.root()));
            let out = tr
                .run(&format!(
                    "if [ -d {dir} ]; then find {dir} -maxdepth 1 -name 'access.log*' -printf '%T@\\n'; fi; date +%s"
                ))
                .map_err(|e| e.to_string())?;
            if !out.ok() {
                return Err(format!("`find /var/log/vakt` failed: {}", out.stderr.trim()));
            }
            Ok(oldest_age_days(&out.stdout))
        });
        obs.log_age.push((h.host.name.clone(), r));
    }
    for b in inv.backups.iter().filter(|b| b.dump.is_some()) {
        let Some(h) = b
            .dump
            .as_ref()
            .and_then(|d| t.hosts.iter().find(|h| h.host.name == d.host))
        else {
            continue;
        };
        step(&format!("dumps of {} on {}", b.name, h.host.name));
        let r = h
            .transport()
            .map_err(|e| format!("{e:#}"))
            .and_then(|tr| crate::backup::latest(tr).map_err(|e| e.to_string()));
        obs.dumps.push((b.name.clone(), r));
    }
    for h in t.hosts.iter().filter(|h| h.host.mariadb.is_some()) {
        step(&format!("MariaDB's datadir on {}", h.host.name));
        let r = h.transport().map_err(|e| format!("{e:#}")).and_then(|tr| {
            let dir = sh(&format!("{}{}", tr.root(), crate::render::MARIADB_DATADIR));
            let out = tr
                .run(&format!("if [ -d {dir} ]; then du -sb {dir}; fi"))
                .map_err(|e| e.to_string())?;
            if !out.ok() {
                return Err(format!("`du -sb {dir}` failed: {}", out.stderr.trim()));
            }
            Ok(out
                .stdout
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok()))
        });
        obs.datadir.push((h.host.name.clone(), r));
    }
    if inv.firewall.enabled {
        for h in t.hosts.iter().filter(|h| {
            (h.host.data || h.host.has(Role::Db)) && crate::render::has_firewall(inv, &h.host)
        }) {
            step(&format!("who reaches {}", h.host.name));
            let listening = obs
                .listening
                .iter()
                .find(|(n, _)| *n == h.host.name)
                .and_then(|(_, r)| r.as_ref().ok())
                .cloned()
                .unwrap_or_default();
            let r = reach_of(t, h, listening);
            obs.reach.push((h.host.name.clone(), r));
        }
    }
    if let Some(probe) = &inv.policy.rtt_probe {
        let p = t
            .hosts
            .iter()
            .find(|h| h.host.name == *probe)
            .with_context(|| {
                format!("policy.rtt_probe `{probe}` is not a host of the inventory")
            })?;
        let tr = p.transport()?;
        step(&format!("round trips from {probe}"));
        let bin = sh(&format!("{}{}", tr.root(), crate::services::BINARY_PATH));
        // The LBs too: their request logs hold client addresses.
        for h in inv
            .hosts
            .iter()
            .filter(|h| h.data || h.has(Role::Db) || h.has(Role::Lb))
        {
            if h.name == *probe {
                continue;
            }
            let target = format!("{}:{}", h.private_ip, h.ssh.port);
            let r = tr
                .run(&format!(
                    "{bin} probe tcp {target} --count 7 --refused-counts"
                ))
                .map_err(|e| e.to_string())
                .and_then(|out| {
                    if !out.ok() {
                        return Err(format!("{}{}", out.stdout, out.stderr).trim().to_string());
                    }
                    out.stdout
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("median_us="))
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_micros)
                        .ok_or_else(|| format!("unexpected probe output: {}", out.stdout.trim()))
                });
            obs.rtt.push((h.name.clone(), r));
        }
    }
    Ok(obs)
}

/// The rules for `h`'s data ports (those it listens on, else its db port)
/// and a probe of each from every other host and from here.
fn reach_of(
    t: &Target,
    h: &crate::target::HostTarget,
    mut ports: Vec<u16>,
) -> Result<Vec<Reach>, String> {
    if ports.is_empty() && h.host.has(Role::Db) {
        ports.push(h.host.db_port);
    }
    let tr = h.transport().map_err(|e| format!("{e:#}"))?;
    let out = tr
        .run("PATH=\"$PATH:/usr/sbin:/sbin\"; nft list table inet vakt")
        .map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(format!(
            "`nft list table inet vakt` failed: {}",
            out.stderr.trim()
        ));
    }
    let mut all = Vec::new();
    for port in ports {
        let dport = format!("dport {port} ");
        let rules = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(&dport) && l.ends_with("accept"))
            .map(str::to_string)
            .collect();
        let addr = format!("{}:{port}", h.host.private_ip);
        let mut probes = Vec::new();
        for o in t.hosts.iter().filter(|o| o.host.name != h.host.name) {
            let reached = o.transport().is_ok_and(|otr| {
                crate::probe::on_host(
                    otr,
                    !o.services.is_empty(),
                    &format!("tcp {addr} --count 1 --timeout 1s"),
                )
                .is_ok()
            });
            probes.push((o.host.name.clone(), reached));
        }
        let here = crate::probe::connect_times(&addr, 1, Duration::from_secs(1)).is_ok();
        probes.push(("here".to_string(), here));
        all.push(Reach {
            port,
            rules,
            probes,
        });
    }
    Ok(all)
}

/// Data ports among the listening sockets of `ss -Hltn` output; with
/// `own`, only sockets on those addresses or on a wildcard count.
pub fn listening_ports(ss: &str, data_ports: &[u16], own: Option<&[Ipv4Addr]>) -> Vec<u16> {
    let mut ports: Vec<u16> = ss
        .lines()
        .filter_map(|l| {
            let local = l.split_whitespace().nth(3)?;
            let (addr, port) = local.rsplit_once(':')?;
            let mine = match own {
                None => true,
                Some(own) => {
                    matches!(addr, "0.0.0.0" | "*" | "[::]" | "::")
                        || addr.parse::<Ipv4Addr>().is_ok_and(|a| own.contains(&a))
                }
            };
            mine.then(|| port.parse().ok()).flatten()
        })
        .filter(|p| data_ports.contains(p))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Today in UTC, or SOURCE_DATE_EPOCH (reproducible reports).
pub fn now() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_oldest_log_file_is_aged_by_the_hosts_clock() {
        let now = 1_700_000_000.0_f64;
        let out = format!(
            "{}\n{}\n{}\n",
            now - 3.5 * 86_400.0,
            now - 20.0 * 86_400.0 - 5.0,
            now as u64
        );
        assert_eq!(oldest_age_days(&out), Some(20));
        assert_eq!(oldest_age_days(&format!("{}\n", now as u64)), None);
        assert_eq!(oldest_age_days(""), None);
    }

    use super::*;

    #[test]
    fn rule_sources_reads_one_address_a_set_or_none() {
        assert_eq!(
            rule_sources("ip saddr { 10.10.0.11, 10.10.0.12 } tcp dport 3306 accept"),
            Some(vec!["10.10.0.11".to_string(), "10.10.0.12".to_string()])
        );
        assert_eq!(
            rule_sources("ip saddr 10.10.0.11 tcp dport 3306 accept"),
            Some(vec!["10.10.0.11".to_string()])
        );
        assert_eq!(rule_sources("tcp dport 3306 accept"), None);
    }

    #[test]
    fn ss_output_gives_the_data_ports() {
        let ss = "LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 80 10.10.0.11:3306 0.0.0.0:*\nLISTEN 0 128 [::]:6379 [::]:*\n";
        assert_eq!(
            listening_ports(ss, &[3306, 6379, 5432], None),
            vec![3306, 6379]
        );
        let own = ["10.10.0.12".parse().unwrap()];
        assert_eq!(listening_ports(ss, &[3306, 6379], Some(&own)), vec![6379]);
    }

    #[test]
    fn dates_are_civil_utc() {
        // SAFETY: tests in this module do not read the environment concurrently.
        unsafe { std::env::set_var("SOURCE_DATE_EPOCH", "1795996800") };
        assert_eq!(now(), "2026-11-30 00:00 UTC");
        unsafe { std::env::remove_var("SOURCE_DATE_EPOCH") };
    }
}
