//! Zero-downtime maintenance of web hosts: `vakt drain|maint|ready HOST`
//! set a web host's state on every load balancer (through each proxy's
//! admin socket, on the LB), and `vakt rolling --exec CMD` drains, runs,
//! waits for health and readies the web hosts one batch at a time.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::progress::{HostLine, Progress};
use crate::services;
use crate::target::{self, Target, TargetArgs};
use crate::topology::Service;

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

/// One `show servers` row as an LB sees a web host.
pub(crate) use services::ServerRow as Row;

fn rows(t: &Target, host: &str) -> anyhow::Result<Vec<(String, Row)>> {
    let mut out = Vec::new();
    for lb in t
        .hosts
        .iter()
        .filter(|h| h.services.contains(&Service::Proxy))
    {
        let answer = services::admin(lb.transport()?, &lb.ctx.admin_socket, "show servers")
            .with_context(|| format!("{}: reading the proxy's servers", lb.host.name))?;
        let row = services::parse_servers(&answer)
            .into_iter()
            .find(|r| r.backend == t.inv.name && r.server == host)
            .with_context(|| format!("{}: the proxy has no server `{host}`", lb.host.name))?;
        out.push((lb.host.name.clone(), row));
    }
    Ok(out)
}

pub(crate) fn set_state(t: &Target, host: &str, state: &str) -> anyhow::Result<()> {
    if !t.inv.webs().any(|w| w.name == host) {
        bail!("`{host}` is not a web host of {}", t.inv.file);
    }
    for lb in t
        .hosts
        .iter()
        .filter(|h| h.services.contains(&Service::Proxy))
    {
        let answer = services::admin(
            lb.transport()?,
            &lb.ctx.admin_socket,
            &format!("set server {}/{host} state {state}", t.inv.name),
        )?;
        if answer.starts_with("error: ") {
            bail!("{}: {}", lb.host.name, answer.trim());
        }
    }
    Ok(())
}

pub(crate) fn wait(
    t: &Target,
    host: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Row) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = rows(t, host)?;
        if r.iter().all(|(_, row)| done(row)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = r
                .iter()
                .map(|(lb, row)| {
                    format!(
                        "{lb}: {} ({} sessions, check {})",
                        row.status, row.scur, row.check
                    )
                })
                .collect();
            bail!(
                "{host}: {what} did not happen within {}s; {}",
                timeout.as_secs(),
                seen.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
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

pub(crate) fn healthy(r: &Row) -> bool {
    (r.status == "UP" || r.status == "DRAIN" || r.status == "no_check")
        && (r.check.starts_with("L7OK") || r.check.starts_with("L4OK") || r.check == "-")
}

pub fn drain(a: StateArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let progress = Progress::new();
    let line = progress.host(&a.host);
    line.step("draining on every load balancer");
    let r = set_state(&t, &a.host, "drain").and_then(|()| {
        line.step("waiting for its sessions to end");
        wait(&t, &a.host, a.timeout, "the end of its sessions", |r| {
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
    set_state(&t, &a.host, "maint")?;
    println!(
        "{} is in maintenance on every load balancer (no traffic)",
        a.host
    );
    Ok(ExitCode::SUCCESS)
}

pub fn ready(a: HostArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    set_state(&t, &a.host, "ready")?;
    println!("{} takes traffic again on every load balancer", a.host);
    Ok(ExitCode::SUCCESS)
}

pub fn rolling(a: RollingArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
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
    for (i, batch) in order.chunks(a.batch).enumerate() {
        let rest = (i + 1) * a.batch;
        // Never drain the last web hosts that serve.
        let serving = all
            .iter()
            .filter(|w| !batch.contains(w))
            .filter(|w| {
                rows(&t, w).is_ok_and(|r| {
                    r.iter()
                        .all(|(_, row)| row.status == "UP" || row.status == "no_check")
                })
            })
            .count();
        if serving == 0 {
            untouched(i * a.batch);
            bail!(
                "draining {} would leave no web host serving; nothing was changed for this batch",
                batch.join(", ")
            );
        }
        for h in batch {
            line(h).say(&format!("{h}: draining"));
            line(h).step("draining on every load balancer");
            set_state(&t, h, "drain")?;
        }
        // Puts the other hosts of the batch back in rotation after a failure:
        // they were only drained, or ran the command successfully (their
        // health checks still decide when they take traffic).
        let put_back = |failed: &str| -> anyhow::Result<()> {
            for o in batch.iter().filter(|o| o.as_str() != failed) {
                set_state(&t, o, "ready")?;
                line(o).done("put back in rotation");
            }
            untouched(rest.min(order.len()));
            Ok(())
        };
        for h in batch {
            line(h).step("waiting for its sessions to end");
            if let Err(e) = wait(&t, h, a.timeout, "the end of its sessions", |r| r.scur == 0) {
                set_state(&t, h, "ready")?;
                line(h).done("FAILED (sessions did not end), back in rotation");
                put_back(h)?;
                bail!(
                    "{e}\nnothing was run on {h}; it is back in rotation. Raise --timeout or retry later. The remaining hosts were not touched."
                );
            }
        }
        for h in batch {
            line(h).say(&format!("{h}: running `{}`", a.exec));
            line(h).step(&format!("running `{}`", a.exec));
            let ht = t.hosts.iter().find(|x| &x.host.name == h).context("host")?;
            let out = ht
                .transport()?
                .run(&a.exec)
                .with_context(|| format!("{h}: running `{}`", a.exec))?;
            if !out.ok() {
                set_state(&t, h, "maint")?;
                line(h).done(&format!("FAILED (exit {}), in maintenance", out.status));
                put_back(h)?;
                bail!(
                    "{h}: `{}` failed (exit {}){}\n{h} stays in maintenance on every load balancer; fix it, then `vakt ready {h}`. The remaining hosts were not touched.",
                    a.exec,
                    out.status,
                    printed(&out),
                );
            }
            line(h).say(&format!("{h}: `{}` exited 0{}", a.exec, printed(&out)));
        }
        for h in batch {
            line(h).step("waiting until every load balancer sees it UP");
            if let Err(e) = wait(&t, h, a.timeout, "a passing health check", healthy) {
                set_state(&t, h, "maint")?;
                line(h).done("FAILED (not healthy), in maintenance");
                put_back(h)?;
                bail!("{e}\n{h} stays in maintenance; the remaining hosts were not touched.");
            }
            set_state(&t, h, "ready")?;
            line(h).say(&format!("{h}: ready"));
            line(h).done("ready");
        }
    }
    println!("rolling done: {}", order.join(", "));
    Ok(ExitCode::SUCCESS)
}
