//! `vakt verify`, `vakt audit` and the hidden `vakt probe` they run on
//! hosts: argument handling and output formats. The checks live in
//! `verify.rs`, the evidence and verdicts in `audit.rs`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::target::{self, TargetArgs};
use crate::verify::Check;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    Text,
    Json,
    /// JUnit XML, for CI systems.
    Junit,
    /// One Nagios/Icinga plugin line, exit 0 OK, 2 CRITICAL, 3 UNKNOWN.
    Nagios,
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: VerifyFormat,
    /// The vakt binary `up` pushed, when it was not the running one.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

pub fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let opened = target::open(&a.target).and_then(|t| {
        let (_, sha, _) = crate::target::pushed_binary(a.binary.clone(), &t)?;
        Ok((t, sha))
    });
    let (t, sha) = match opened {
        Ok(x) => x,
        Err(e) if a.format == VerifyFormat::Nagios => {
            println!("VAKT UNKNOWN - {}", one_line(&format!("{e:#}")));
            return Ok(ExitCode::from(3));
        }
        Err(e) => return Err(e),
    };
    let progress = crate::progress::Progress::new();
    let line = progress.host("verify");
    let checks = crate::verify::run(&t, &sha, &|s| line.step(s));
    let failed = checks.iter().filter(|c| !c.ok).count();
    line.done(&format!("{} checks, {failed} failed", checks.len()));
    let secs = started.elapsed().as_secs_f64();
    match a.format {
        VerifyFormat::Text => {
            for c in &checks {
                println!(
                    "{}  {:<10} {:<34} {}",
                    if c.ok { "PASS" } else { "FAIL" },
                    c.subject,
                    c.name,
                    c.evidence
                );
            }
            println!("{} checks, {} failed ({secs:.2}s)", checks.len(), failed);
        }
        VerifyFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cluster": t.inv.name,
                "ok": failed == 0,
                "checks": checks,
                "failed": failed,
                "seconds": secs,
            }))?
        ),
        VerifyFormat::Junit => print!("{}", junit(&t.inv.name, &checks, secs)),
        VerifyFormat::Nagios => {
            println!("{}", nagios(&checks, secs));
            return Ok(ExitCode::from(if failed == 0 { 0 } else { 2 }));
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "/")
}

/// The monitoring-plugins format: `SERVICE STATUS - text | perfdata`.
pub fn nagios(checks: &[Check], secs: f64) -> String {
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    let perf = format!(
        "checks={};;;0 failed={};1;1;0 time={secs:.3}s;;;0",
        checks.len(),
        failed.len()
    );
    if failed.is_empty() {
        format!("VAKT OK - {} checks passed | {perf}", checks.len())
    } else {
        let what: Vec<String> = failed
            .iter()
            .map(|c| format!("{} {}: {}", c.subject, c.name, c.evidence))
            .collect();
        format!(
            "VAKT CRITICAL - {} of {} checks failed: {} | {perf}",
            failed.len(),
            checks.len(),
            one_line(&what.join("; "))
        )
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JUnit XML: one testsuite, one testcase per check (classname = subject).
pub fn junit(cluster: &str, checks: &[Check], secs: f64) -> String {
    let failed = checks.iter().filter(|c| !c.ok).count();
    let mut o = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"vakt verify\" tests=\"{n}\" failures=\"{failed}\" errors=\"0\" time=\"{secs:.3}\">\n  <testsuite name=\"{c}\" tests=\"{n}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\" time=\"{secs:.3}\">\n",
        n = checks.len(),
        c = xml(cluster)
    );
    for c in checks {
        o.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(&c.subject),
            xml(&c.name)
        ));
        if c.ok {
            o.push_str(&format!(
                "><system-out>{}</system-out></testcase>\n",
                xml(&c.evidence)
            ));
        } else {
            o.push_str(&format!(
                "><failure message=\"{}\" type=\"check\">{}</failure></testcase>\n",
                xml(&c.evidence),
                xml(&c.evidence)
            ));
        }
    }
    o.push_str("  </testsuite>\n</testsuites>\n");
    o
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Markdown,
    Html,
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: AuditFormat,
    /// Write the report here (an existing different file is kept as FILE.bak).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Do not contact the hosts: declared locations, GeoIP and backups only.
    #[arg(long)]
    pub offline: bool,
}

pub fn audit(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_with(&a.target, !a.offline, target::Secrets::IfKnown)?;
    let progress = crate::progress::Progress::new();
    let line = progress.host("audit");
    let obs = crate::audit::gather(&t, a.offline, &|s| line.step(s));
    line.done(if obs.is_ok() {
        "evidence gathered"
    } else {
        "FAILED"
    });
    let obs = obs?;
    let report = crate::audit::judge_all(&t.inv, &obs, crate::audit::now());
    let body = match a.format {
        AuditFormat::Text => crate::audit_report::text(&report),
        AuditFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        AuditFormat::Markdown => crate::audit_report::markdown(&report),
        AuditFormat::Html => crate::audit_report::html(&report),
    };
    match &a.out {
        None => print!("{body}"),
        Some(path) => {
            if let Ok(old) = std::fs::read_to_string(path)
                && old != body
            {
                let bak = PathBuf::from(format!("{}.bak", path.display()));
                std::fs::rename(path, &bak)
                    .with_context(|| format!("keeping the previous report as {}", bak.display()))?;
                eprintln!("the previous report is kept as {}", bak.display());
            }
            std::fs::write(path, &body).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(if report.compliant() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Args)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub what: Probe,
}

#[derive(Subcommand)]
pub enum Probe {
    /// TCP connect times to ADDR (ip:port): `tcp ok median_us=...`.
    Tcp {
        addr: String,
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
        /// Count a refused connection (a reset) as a round trip too.
        #[arg(long)]
        refused_counts: bool,
    },
    /// One GET: `http STATUS`.
    Http {
        url: String,
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    vakt_runtime::config::reader::parse_duration(s)
}

pub fn probe(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    match a.what {
        Probe::Tcp {
            addr,
            count,
            timeout,
            refused_counts,
        } => {
            let times = if refused_counts {
                crate::probe::round_trips(&addr, count.max(1), timeout)
            } else {
                crate::probe::connect_times(&addr, count.max(1), timeout)
            };
            let times = times.with_context(|| format!("connecting to {addr}"))?;
            let us = |d: Duration| d.as_micros();
            println!(
                "tcp ok median_us={} min_us={} max_us={} n={}",
                us(crate::probe::median(&times)),
                us(*times.iter().min().unwrap_or(&Duration::ZERO)),
                us(*times.iter().max().unwrap_or(&Duration::ZERO)),
                times.len()
            );
        }
        Probe::Http { url, timeout } => {
            let rest = url
                .strip_prefix("http://")
                .with_context(|| format!("{url}: only http:// URLs"))?;
            let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = if path.is_empty() { "/" } else { path };
            let r = crate::probe::http(hostport, "GET", path, &[], timeout)
                .with_context(|| format!("GET {url}"))?;
            println!("http {}", r.status);
        }
    }
    Ok(ExitCode::SUCCESS)
}
