//! Zero-downtime maintenance of web hosts: `vakt drain|maint|ready HOST`
//! set a web host's state on every load balancer (through each proxy's
//! admin socket, on the LB), and `vakt rolling --exec CMD` drains, runs,
//! waits for health and readies the web hosts one batch at a time.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::hooks::{self, Hook};
use crate::progress::{HostLine, Progress};
use crate::rotation::{self, Admin, CycleError};
use crate::target::{self, TargetArgs};

/// `vakt drain`'s flags.
#[derive(Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The web host.
    pub host: String,
    /// How long to wait for the host's sessions to end.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `vakt maint` and `vakt ready`'s flags (they wait for nothing).
#[derive(Args)]
pub struct HostArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// The web host.
    pub host: String,
}

#[derive(Args)]
pub struct RollingArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// The command to run on each web host (through its shell).
    #[arg(long)]
    pub exec: String,
    /// Web hosts handled at once.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Only these web hosts, in this order (default: all, inventory order).
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// How long each wait (sessions to end, health to return) may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    vakt_runtime::config::reader::parse_duration(s)
}

/// What a command printed, for the operator: stdout and stderr each under
/// its name, indented, or a note that it printed nothing.
fn printed(out: &crate::transport::Output) -> String {
    let mut s = String::new();
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = text.trim_end();
        if !text.is_empty() {
            s.push_str(&format!("\n  {name}:"));
            for l in text.lines() {
                s.push_str(&format!("\n    {l}"));
            }
        }
    }
    if s.is_empty() {
        " and printed nothing".into()
    } else {
        format!("; it printed:{s}")
    }
}

pub fn drain(a: StateArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let progress = Progress::new();
    let line = progress.host(&a.host);
    line.step("draining on every load balancer");
    let r = rotation::set(&t, &a.host, Admin::Drain).and_then(|()| {
        line.step("waiting for its sessions to end");
        rotation::wait(&t, &a.host, a.timeout, "the end of its sessions", |r| {
            r.scur == 0
        })
    });
    line.done(if r.is_ok() { "drained" } else { "FAILED" });
    r?;
    println!(
        "{} drained on every load balancer (no sessions left)",
        a.host
    );
    Ok(ExitCode::SUCCESS)
}

pub fn maint(a: HostArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    rotation::set(&t, &a.host, Admin::Maint)?;
    println!(
        "{} is in maintenance on every load balancer (no traffic)",
        a.host
    );
    Ok(ExitCode::SUCCESS)
}

pub fn ready(a: HostArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    rotation::set(&t, &a.host, Admin::Ready)?;
    println!("{} takes traffic again on every load balancer", a.host);
    Ok(ExitCode::SUCCESS)
}

pub fn rolling(a: RollingArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let _lock = crate::lock::take(&t, &a.lock, false)?;
    let all: Vec<String> = t.inv.webs().map(|w| w.name.clone()).collect();
    let order: Vec<String> = if a.hosts.is_empty() {
        all.clone()
    } else {
        a.hosts.clone()
    };
    for h in &order {
        if !all.contains(h) {
            bail!("`{h}` is not a web host of {}", t.inv.file);
        }
    }
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let progress = Progress::new();
    let lines: BTreeMap<&str, HostLine> = order
        .iter()
        .map(|h| {
            let l = progress.host(h);
            l.step("waiting for its turn");
            (h.as_str(), l)
        })
        .collect();
    let line = |h: &str| &lines[h];
    // The hosts after a failure keep serving as they were.
    let untouched = |from: usize| {
        for h in &order[from..] {
            line(h).done("untouched");
        }
    };
    let opts = rotation::Options {
        sessions: a.timeout,
        health: a.timeout,
        announce: true,
    };
    let act = |h: &str, line: &HostLine| -> anyhow::Result<()> {
        line.say(&format!("{h}: running `{}`", a.exec));
        line.step(&format!("running `{}`", a.exec));
        let ht = t
            .hosts
            .iter()
            .find(|x| x.host.name == h)
            .with_context(|| format!("`{h}` is not a host of {}", t.inv.file))?;
        let out = ht
            .transport()?
            .run(&a.exec)
            .with_context(|| format!("{h}: running `{}`", a.exec))?;
        if !out.ok() {
            line.done(&format!("FAILED (exit {}), in maintenance", out.status));
            bail!(
                "{h}: `{}` failed (exit {}){}",
                a.exec,
                out.status,
                printed(&out)
            );
        }
        line.say(&format!("{h}: `{}` exited 0{}", a.exec, printed(&out)));
        Ok(())
    };
    for (i, batch) in order.chunks(a.batch).enumerate() {
        let rest = ((i + 1) * a.batch).min(order.len());
        // Never drain the last web hosts that serve.
        let serving = all
            .iter()
            .filter(|w| !batch.contains(w))
            .filter(|w| rotation::serving(&t, w))
            .count();
        if serving == 0 {
            untouched(i * a.batch);
            bail!(
                "draining {} would leave no web host serving; nothing was changed for this batch",
                batch.join(", ")
            );
        }
        let names: Vec<&str> = order.iter().map(String::as_str).collect();
        for h in batch {
            if let Err(e) = hooks::run(&t, Hook::PreRollingHost, &names, Some(h)) {
                untouched(i * a.batch);
                bail!("{e}: nothing was done on {h} and the hosts after it");
            }
        }
        let batch_lines: Vec<&HostLine> = batch.iter().map(|h| line(h)).collect();
        if let Err(e) = rotation::cycle(&t, batch, &batch_lines, opts, &act) {
            let hint = match &e {
                CycleError::Sessions { host, .. } => {
                    line(host).done("FAILED (sessions did not end), back in rotation");
                    ". Raise --timeout or retry later"
                }
                CycleError::Act { .. } => "",
                CycleError::Health { host, .. } => {
                    line(host).done("FAILED (not healthy), in maintenance");
                    ""
                }
                CycleError::Admin(_) => "",
            };
            untouched(rest);
            bail!("{e}{hint}. The remaining hosts were not touched.");
        }
        for h in batch {
            if let Err(e) = hooks::run(&t, Hook::PostRollingHost, &names, Some(h)) {
                untouched(rest);
                bail!(
                    "{e}: {h} is back in rotation, nothing was rolled back; the remaining hosts were not touched"
                );
            }
        }
    }
    println!("rolling done: {}", order.join(", "));
    Ok(ExitCode::SUCCESS)
}
