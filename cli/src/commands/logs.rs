//! `vakt logs`: the services' logs from the selected hosts, merged by time
//! with a host and service prefix on every line. systemd hosts are read
//! through `journalctl` (resuming at its cursor), the others from the files
//! under /var/log/vakt (resuming at a byte offset). `-f` polls every source
//! through the host's transport, so it works alike over SSH and locally.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveDateTime, Utc};
use clap::Args;

use crate::logs::{self, Line};
use crate::selection::Selection;
use crate::target::{self, HostTarget, Secrets, TargetArgs};
use crate::topology::Service;
use crate::transport::{Init, Transport, sh};

/// `vakt logs`'s flags.
#[derive(Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    /// Only this service's log (default: every service each host runs).
    #[arg(value_parser = ["proxy", "keepalived", "demo-web", "demo-db"])]
    pub service: Option<String>,
    /// Keep printing new lines as they are written (until interrupted).
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines written in this last while ("10m", "1h30m").
    #[arg(long, value_name = "DURATION", value_parser = since)]
    pub since: Option<Duration>,
    /// Without --since: the last N lines of each log.
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
}

fn since(s: &str) -> Result<Duration, String> {
    vakt_runtime::config::reader::parse_duration(s).map_err(|e| format!("{e} (e.g. 10m, 1h30m)"))
}

/// How often `-f` asks every source for new lines.
const POLL: Duration = Duration::from_millis(500);

/// The name a service's log goes by: its file under /var/log/vakt.
fn log_name(svc: Service) -> &'static str {
    match svc {
        Service::Proxy => "proxy",
        Service::Keepalived => "keepalived",
        Service::DemoWeb => "demo-web",
        Service::DemoDb => "demo-db",
        Service::MariaDb => "mariadb",
    }
}

/// Where one service's lines come from, and how far they were read.
enum Source {
    /// A file, read up to `offset` bytes (always the end of a whole line).
    File {
        service: Service,
        path: String,
        offset: u64,
    },
    /// The journal of a systemd unit, read up to `cursor`; a journal that
    /// had no entry yet (no cursor) is read from `opened` on.
    Journal {
        service: Service,
        cursor: Option<String>,
        opened: NaiveDateTime,
    },
}

impl Source {
    fn new(tr: &dyn Transport, service: Service) -> Source {
        match tr.init() {
            Init::Systemd => Source::Journal {
                service,
                cursor: None,
                opened: Utc::now().naive_utc(),
            },
            Init::SysV => Source::File {
                service,
                path: format!("{}/var/log/vakt/{}.log", tr.root(), log_name(service)),
                offset: 0,
            },
        }
    }

    /// The lines written since the last call (the first call: those after
    /// `after`, else the last `tail`).
    fn read(
        &mut self,
        host: &str,
        tr: &dyn Transport,
        after: Option<NaiveDateTime>,
        tail: usize,
        first: bool,
    ) -> anyhow::Result<Vec<Line>> {
        match self {
            Source::File {
                service,
                path,
                offset,
            } => {
                let p = sh(path);
                // R: the file shrank (rotated or truncated), so it is read
                // from its start again.
                let cmd = format!(
                    "if [ -f {p} ]; then if [ \"$(wc -c < {p})\" -lt {offset} ]; then echo R; cat {p}; else echo A; tail -c +{} {p}; fi; else echo A; fi",
                    *offset + 1
                );
                let out = tr
                    .run(&cmd)
                    .with_context(|| format!("{host}: reading {path}"))?;
                if !out.ok() {
                    anyhow::bail!("{host}: reading {path}: {}", out.stderr.trim());
                }
                let (mark, text) = out.stdout.split_once('\n').unwrap_or(("A", ""));
                if mark == "R" {
                    *offset = 0;
                }
                let whole = text.rfind('\n').map_or(0, |i| i + 1);
                *offset += whole as u64;
                let lines = logs::stamp(host, log_name(*service), &text[..whole]);
                Ok(if first {
                    trim(lines, after, tail)
                } else {
                    lines
                })
            }
            Source::Journal {
                service,
                cursor,
                opened,
            } => {
                let mut cmd = format!(
                    "journalctl -q --no-pager -o short-iso-precise --show-cursor -u {}",
                    sh(service.name())
                );
                let from = if first { after } else { Some(*opened) };
                match (&cursor, from) {
                    (Some(c), _) => cmd.push_str(&format!(" --after-cursor {}", sh(c))),
                    (None, Some(t)) => {
                        cmd.push_str(&format!(" --since @{}", t.and_utc().timestamp()))
                    }
                    (None, None) => cmd.push_str(&format!(" -n {tail}")),
                }
                let out = tr
                    .run(&cmd)
                    .with_context(|| format!("{host}: journalctl -u {}", service.name()))?;
                if !out.ok() {
                    anyhow::bail!(
                        "{host}: journalctl -u {}: {}",
                        service.name(),
                        out.stderr.trim()
                    );
                }
                let mut text = String::new();
                for l in out.stdout.lines() {
                    match l.strip_prefix("-- cursor: ") {
                        Some(c) => *cursor = Some(c.to_string()),
                        None => {
                            text.push_str(l);
                            text.push('\n');
                        }
                    }
                }
                Ok(logs::stamp(host, log_name(*service), &text))
            }
        }
    }
}

/// A file's first read: the lines after `after`, else its last `tail`.
fn trim(lines: Vec<Line>, after: Option<NaiveDateTime>, tail: usize) -> Vec<Line> {
    match after {
        Some(t) => lines
            .into_iter()
            .filter(|l| l.at.is_some_and(|a| a >= t))
            .collect(),
        None => {
            let skip = lines.len().saturating_sub(tail);
            lines.into_iter().skip(skip).collect()
        }
    }
}

/// The sources of one host: the chosen service, or every one it runs.
fn sources(h: &HostTarget, only: Option<&str>) -> anyhow::Result<Vec<Source>> {
    let tr = h.transport()?;
    Ok(h.services
        .iter()
        .filter(|&&s| only.is_none_or(|o| o == log_name(s)))
        .map(|&s| Source::new(tr, s))
        .collect())
}

fn print(lines: &[Line], width: usize) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for l in lines {
        let _ = writeln!(out, "{:<width$} {:<10} | {}", l.host, l.service, l.text);
    }
    let _ = out.flush();
}

pub fn run(a: LogsArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_selected(&a.target, true, Secrets::IfKnown, &a.select)?;
    let only = a.service.as_deref();
    let state: Vec<Mutex<Vec<Source>>> = t
        .hosts
        .iter()
        .map(|h| sources(h, only).map(Mutex::new))
        .collect::<anyhow::Result<_>>()?;
    if state.iter().all(|s| s.lock().is_ok_and(|v| v.is_empty())) {
        anyhow::bail!(
            "no selected host runs {}: `vakt check` lists which host runs what",
            only.unwrap_or("any service")
        );
    }
    let after = a
        .since
        .map(|d| Utc::now().naive_utc() - chrono::Duration::from_std(d).unwrap_or_default());
    let width = t.hosts.iter().map(|h| h.host.name.len()).max().unwrap_or(0);
    let mut first = true;
    let mut failed = false;
    loop {
        let got = t.each_host(10, |i, h| -> anyhow::Result<Vec<Line>> {
            let tr = h.transport()?;
            let mut sources = state[i].lock().unwrap_or_else(|e| e.into_inner());
            let mut lines = Vec::new();
            for s in sources.iter_mut() {
                lines.extend(s.read(&h.host.name, tr, after, a.lines, first)?);
            }
            Ok(lines)
        });
        let mut all = Vec::new();
        for r in got {
            match r {
                Ok(lines) => all.extend(lines),
                Err(e) => {
                    failed = true;
                    eprintln!("{e:#}");
                }
            }
        }
        print(&logs::merge(all), width);
        if !a.follow {
            break;
        }
        first = false;
        std::thread::sleep(POLL);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
