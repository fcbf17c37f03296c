//! `vakt plan`, `vakt up`, `vakt down`, `vakt rollback`: the commands and
//! their reports. `up` opens the target and hands the work to `rollout`
//! (plan every host, apply, roll what restarts); a host that fails keeps
//! its previous files.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::history;
use crate::plan::{Change, HostPlan};
use crate::progress::Progress;
use crate::render;
use crate::rollout::{self, HostOutcome};
use crate::selection::Selection;
use crate::services;
use crate::target::{self, HostTarget, Secrets, Target, TargetArgs};

/// `vakt plan`'s flags.
#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    /// The vakt binary `up` would push (default: `[artifacts] binary`, else
    /// the running one, which must match the hosts' platform).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<std::path::PathBuf>,
    /// Report format (json: modes as octal strings, e.g. "0640").
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

/// `vakt up`'s flags.
#[derive(Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Change only these hosts; refused when a load balancer left out would
    /// have to change too.
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// The vakt binary to push (default: `[artifacts] binary`, else the
    /// running one, which must match the hosts' platform).
    #[arg(long, value_name = "PATH")]
    pub binary: Option<std::path::PathBuf>,
    /// Only show what would change, change nothing (= `vakt plan`); exit 2
    /// when something would.
    #[arg(long)]
    pub check: bool,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: u16,
    /// Expect keepalived (and any other package vakt needs) to be installed
    /// already instead of installing it with the host's package manager.
    #[arg(long)]
    pub no_install: bool,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

/// `vakt down`'s flags.
#[derive(Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop only these hosts' services.
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// Only show what would stop; stop nothing.
    #[arg(long)]
    pub check: bool,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: u16,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

fn print_plan(p: &HostPlan) {
    println!("{}:", p.host);
    for f in &p.files {
        match f.change {
            Change::New if f.file.is_secret() => {
                println!("  {}: new key (secret, not shown)", f.file.path)
            }
            Change::New => println!("  {}: new file", f.file.path),
            Change::Unchanged => println!("  {}: unchanged", f.file.path),
            Change::Changed if f.file.is_secret() => {
                println!("  {}: key changed (secret, not shown)", f.file.path)
            }
            Change::Changed => {
                println!("  {}: changed", f.file.path);
                for line in f.diff.as_deref().unwrap_or("").lines() {
                    println!("    {line}");
                }
            }
        }
    }
    match p.binary {
        Change::New => println!("  {}: new (the running vakt)", services::BINARY_PATH),
        Change::Changed => println!("  {}: replaced by the running vakt", services::BINARY_PATH),
        Change::Unchanged => {}
    }
    for pkg in &p.install {
        println!("  will install {pkg} with the host's package manager");
    }
    for a in &p.actions {
        println!("  will {a}");
    }
    if !p.changes() {
        println!("  no changes");
    }
}

/// `vakt plan`: exit 0 = no changes, 2 = changes (terraform's
/// `-detailed-exitcode`). Writes nothing.
pub fn plan(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_selected(&a.target, true, Secrets::Require, &a.select)?;
    let (_, sha, explicit) = target::pushed_binary(a.binary, &t)?;
    let plans = t
        .hosts
        .iter()
        .map(|h| {
            rollout::check_platform(h, explicit).and_then(|()| rollout::plan_host(&t, h, &sha))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&plans)?),
        super::Format::Text => {
            plans.iter().for_each(print_plan);
            if let Some(note) = super::inspect::local_firewall_note(&t.inv) {
                println!("{note}");
            }
        }
    }
    Ok(if plans.iter().any(HostPlan::changes) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn up(a: UpArgs) -> anyhow::Result<ExitCode> {
    if a.check {
        return plan(PlanArgs {
            target: a.target,
            select: a.select,
            binary: a.binary,
            format: a.format,
        });
    }
    let started = Instant::now();
    let t = target::open_with(&a.target, true, Secrets::Create)?;
    tracing::debug!(elapsed = ?started.elapsed(), "connected to every host");
    let _lock = crate::lock::take(&t, &a.lock, true)?;
    let (bytes, sha, explicit) = target::pushed_binary(a.binary.clone(), &t)?;
    let only = if a.select.narrows() {
        let only = a.select.pick(&t.inv)?;
        refuse_lbs_left_behind(&t, &only, &sha)?;
        Some(only)
    } else {
        None
    };
    let progress = Progress::new();
    let results = rollout::run(
        &t,
        &rollout::Push {
            binary: &bytes,
            sha: &sha,
            explicit,
            may_install: !a.no_install,
            only: only.as_ref(),
        },
        usize::from(a.forks),
        &progress,
    );
    let failed = results.iter().filter(|r| r.result.failed()).count();
    tracing::debug!(elapsed = ?started.elapsed(), "every host applied");
    history::record(
        &t,
        results
            .iter()
            .filter(|r| r.result != HostOutcome::NoChanges)
            .map(|r| history::Entry::now(&t, &r.host, r.files.clone(), r.result.to_string()))
            .collect(),
    );
    let healthy = if failed == 0 {
        rollout::settle(&t, started)
    } else {
        Ok(())
    };
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        super::Format::Text => {
            println!(
                "{:<10} {:>7}  {:<28} {:>6}  result",
                "host", "changed", "services", "time"
            );
            if let Some(only) = &only {
                let left: Vec<&str> = t
                    .hosts
                    .iter()
                    .map(|h| h.host.name.as_str())
                    .filter(|n| !only.contains(*n))
                    .collect();
                println!("not selected (unchanged): {}", left.join(", "));
            }
            for r in &results {
                let actions = if r.actions.is_empty() {
                    "-".to_string()
                } else {
                    r.actions.join(", ")
                };
                println!(
                    "{:<10} {:>7}  {:<28} {:>5.2}s  {}",
                    r.host, r.changed_files, actions, r.seconds, r.result
                );
            }
            if results.iter().all(|r| r.result == HostOutcome::NoChanges) {
                println!("no changes: every host already runs what the inventory says");
            }
            print_state_dir(&t);
            println!("took {:.2}s", started.elapsed().as_secs_f64());
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} host(s) failed and kept their previous files; fix the cause above and run `vakt up` again"
        );
        return Ok(ExitCode::from(1));
    }
    if let Err(e) = healthy {
        eprintln!(
            "deployed, but not healthy: {e:#}\nsee `vakt status` and the logs under {}",
            t.state_dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    if a.format == super::Format::Text {
        print_access(&t);
    }
    Ok(ExitCode::SUCCESS)
}

/// `up --hosts`: a load balancer left out whose files would change (its
/// config names every web host, keepalived's every LB) would serve a
/// cluster that no longer matches it, so the run is refused before
/// anything changes, naming the flag that includes it.
fn refuse_lbs_left_behind(
    t: &Target,
    only: &std::collections::BTreeSet<String>,
    sha: &str,
) -> anyhow::Result<()> {
    let behind: Vec<(String, Vec<String>)> = t
        .each_host(
            10,
            |_, h| -> anyhow::Result<Option<(String, Vec<String>)>> {
                if only.contains(&h.host.name) || !h.host.has(crate::inventory::Role::Lb) {
                    return Ok(None);
                }
                let p = rollout::plan_host(t, h, sha)?;
                let files: Vec<String> = p
                    .files
                    .iter()
                    .filter(|f| f.change != Change::Unchanged)
                    .map(|f| f.file.path.clone())
                    .collect();
                Ok((!files.is_empty()).then(|| (h.host.name.clone(), files)))
            },
        )
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    if behind.is_empty() {
        return Ok(());
    }
    let mut with: Vec<String> = only.iter().cloned().collect();
    with.extend(behind.iter().map(|(n, _)| n.clone()));
    let detail: Vec<String> = behind
        .iter()
        .map(|(n, f)| format!("{n} ({})", f.join(", ")))
        .collect();
    anyhow::bail!(
        "up --hosts {} would leave load balancers behind whose files must change too: {}; include them with --hosts {} (or --roles lb,...), or run up without --hosts; nothing was changed",
        only.iter().cloned().collect::<Vec<_>>().join(","),
        detail.join("; "),
        with.join(",")
    )
}

fn print_access(t: &Target) {
    let Some(lb) = t.inv.lbs().next() else { return };
    let addr = t.inv.vip.unwrap_or(lb.public_ip.unwrap_or(lb.private_ip));
    println!(
        "\ncluster `{}` is up: http://{addr}:{}/",
        t.inv.name, t.inv.port
    );
    if let (Some(s), Some(pw)) = (&t.inv.balancer.stats, &t.stats_password) {
        let shown = if t.hosts.iter().all(|h| h.host.is_local()) {
            pw.as_str()
        } else {
            "(from the configured secret)"
        };
        println!(
            "stats: http://{addr}:{}{}  user {}  password {shown}",
            t.inv.port, s.uri, s.user
        );
    }
    let inv_flag = t
        .inv
        .dir
        .as_ref()
        .map(|_| format!(" -i {}", t.inv.file))
        .unwrap_or_default();
    println!("stop it with: {} down{inv_flag}", super::vakt_command());
}

/// Names the folder local hosts keep their files in (one fixed place per
/// cluster unless `--state-dir` moves it), when the cluster has local hosts.
fn print_state_dir(t: &Target) {
    if t.hosts.iter().any(|h| h.host.is_local()) {
        println!("local hosts' files: {}", t.state_dir.display());
    }
}

/// One host's part of `vakt down`.
#[derive(Serialize)]
struct DownResult {
    host: String,
    /// The services that were running (with `--check`: that would stop).
    running: Vec<&'static str>,
    /// The services this run stopped (none with `--check`).
    stopped: Vec<&'static str>,
    /// Why the host could not be read or stopped.
    error: Option<String>,
}

impl DownResult {
    fn summary(&self, check: bool) -> String {
        if let Some(e) = &self.error {
            return format!("FAILED: {e}");
        }
        match (check, self.running.is_empty()) {
            (_, true) => "nothing running".into(),
            (true, false) => format!("would stop {}", self.running.join(", ")),
            (false, false) => format!("stopped {}", self.stopped.join(", ")),
        }
    }
}

fn down_host(h: &HostTarget, check: bool, line: &crate::progress::HostLine) -> DownResult {
    let mut r = DownResult {
        host: h.host.name.clone(),
        running: Vec::new(),
        stopped: Vec::new(),
        error: None,
    };
    let outcome = (|| -> anyhow::Result<()> {
        let tr = h.transport()?;
        line.step("reading what runs");
        for &s in &h.services {
            if services::is_running(tr, s)
                .with_context(|| format!("{}: status of {}", h.host.name, s.name()))?
            {
                r.running.push(s.name());
            }
        }
        if !check && !r.running.is_empty() {
            line.step(&format!("stopping {}", r.running.join(", ")));
            r.stopped = services::stop_all(tr, &h.services)?
                .iter()
                .map(|s| s.name())
                .collect();
        }
        Ok(())
    })();
    r.error = outcome.err().map(|e| format!("{e:#}"));
    r
}

/// `vakt down`: stops every host's services, hosts in parallel; with
/// `--check`, only says what would stop.
pub fn down(a: DownArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let _lock = (!a.check)
        .then(|| crate::lock::take(&t, &a.lock, false))
        .transpose()?;
    // Every host stays in the target (the lock lives on the first LB, which
    // --hosts may leave out); only the selected ones are stopped.
    let only = a.select.pick(&t.inv)?;
    let progress = Progress::new();
    let lines: Vec<_> = t
        .hosts
        .iter()
        .map(|h| {
            only.contains(&h.host.name)
                .then(|| progress.host(&h.host.name))
        })
        .collect();
    let results: Vec<DownResult> = t
        .each_host(usize::from(a.forks), |i, h| {
            let line = lines[i].as_ref()?;
            let r = down_host(h, a.check, line);
            line.done(&r.summary(a.check));
            Some(r)
        })
        .into_iter()
        .flatten()
        .collect();
    if !a.check {
        history::record(
            &t,
            results
                .iter()
                .filter(|r| r.error.is_some() || !r.stopped.is_empty())
                .map(|r| history::Entry::now(&t, &r.host, Vec::new(), r.summary(false)))
                .collect(),
        );
    }
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        super::Format::Text => {
            for r in &results {
                println!("{:<10} {}", r.host, r.summary(a.check));
            }
            if a.check {
                println!("nothing was stopped (--check)");
            }
        }
    }
    Ok(if results.iter().any(|r| r.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// Only these hosts (default: all).
    pub hosts: Vec<String>,
}

/// `vakt rollback`: every managed file that has a kept previous version (the
/// release before the last `up` that changed the host) goes back, then the
/// host's services reload, take over or restart on it as `up` would.
pub fn rollback(a: RollbackArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let _lock = crate::lock::take(&t, &a.lock, false)?;
    for name in &a.hosts {
        if !t.hosts.iter().any(|h| &h.host.name == name) {
            anyhow::bail!("no host `{name}` in {}", t.inv.file);
        }
    }
    let mut failed = 0;
    for h in t
        .hosts
        .iter()
        .filter(|h| a.hosts.is_empty() || a.hosts.contains(&h.host.name))
    {
        let tr = h.transport()?;
        let mut paths: Vec<String> = render::render_host(&t.inv, &h.host, &h.ctx, &t.templates)?
            .into_iter()
            .map(|f| f.path)
            .collect();
        paths.push(services::BINARY_PATH.to_string());
        let mut restored = Vec::new();
        for p in &paths {
            if tr
                .restore(p)
                .with_context(|| format!("{}: restoring {p}", h.host.name))?
            {
                restored.push(p.as_str());
            }
        }
        if restored.is_empty() {
            println!("{:<10} nothing to roll back", h.host.name);
            continue;
        }
        // The same service steps as `up` for these files: the proxy reloads
        // on its old config or takes its old binary over, so no connection is lost.
        let mut running = std::collections::BTreeMap::new();
        for &svc in &h.services {
            running.insert(svc, services::is_running(tr, svc)?);
        }
        let binary = restored.contains(&services::BINARY_PATH);
        let mut actions = crate::plan::actions(&h.services, &running, tr.init(), binary, &restored);
        // The old rules go back in under the same dead-man switch as new ones.
        if restored.contains(&render::FIREWALL_PATH) {
            actions.push(crate::plan::Action::Firewall(t.inv.firewall.rollback_after));
        }
        let files: Vec<String> = restored.iter().map(|p| p.to_string()).collect();
        if let Err(e) = services::run_actions(tr, &actions) {
            failed += 1;
            eprintln!("{e}");
            let entry = history::Entry::now(&t, &h.host.name, files, format!("FAILED: {e}"));
            history::record(&t, vec![entry]);
            continue;
        }
        let entry = history::Entry::now(&t, &h.host.name, files, "rolled back".into());
        history::record(&t, vec![entry]);
        println!("{:<10} rolled back {}", h.host.name, restored.join(", "));
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
