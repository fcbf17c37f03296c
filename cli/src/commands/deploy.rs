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
use crate::hooks::{self, Hook};
use crate::plan::{Change, HostPlan};
use crate::progress::Progress;
use crate::releases;
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
    let selected: Vec<&str> = t
        .hosts
        .iter()
        .map(|h| h.host.name.as_str())
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(*n)))
        .collect();
    hooks::run(&t, Hook::PreUp, &selected, None).context("nothing was changed on any host")?;
    let progress = Progress::new();
    let results = rollout::run(
        &t,
        &rollout::Push {
            source: rollout::Source::Inventory {
                binary: &bytes,
                sha: &sha,
                explicit,
            },
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
    keep_releases(&t, &results, &sha);
    let mut healthy = if failed == 0 {
        rollout::settle(&t, started).and_then(|()| certificates(&t))
    } else {
        Ok(())
    };
    if failed == 0 && healthy.is_ok() {
        healthy = hooks::run(&t, Hook::PostUp, &selected, None)
            .context("the deploy stays in place (nothing is rolled back)");
    }
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

/// `[tls] acme`: `vakt acme renew` on every LB, the first one first, once
/// the proxies answer challenges. The first orders when its certificate is
/// a placeholder or due; the others take it from its TLS handshake. Does
/// nothing on a cluster whose certificates are fresh (the cron entry keeps
/// them so).
fn certificates(t: &Target) -> anyhow::Result<()> {
    if t.inv.tls.as_ref().is_none_or(|tls| tls.acme.is_none()) {
        return Ok(());
    }
    for h in t
        .hosts
        .iter()
        .filter(|h| h.host.has(crate::inventory::Role::Lb))
    {
        let tr = h.transport()?;
        let root = tr.root();
        let cmd = format!(
            "{} acme renew --config {}",
            crate::transport::sh(&format!("{root}/usr/local/bin/vakt")),
            crate::transport::sh(&format!("{root}{}", render::ACME_CONFIG)),
        );
        let out = tr
            .run(&cmd)
            .with_context(|| format!("{}: running vakt acme renew", h.host.name))?;
        let said = &out.stdout;
        if out.status != 0 {
            anyhow::bail!(
                "{}: no ACME certificate: {}{}\nthe proxies keep their current certificate; `vakt acme renew` runs again from cron every 5 minutes",
                h.host.name,
                said.trim(),
                out.stderr.trim()
            );
        }
        println!("{:<10} {}", h.host.name, said.trim());
    }
    Ok(())
}

/// After `up`: when it changed any host, every host it brought to the
/// inventory (changed or already there) keeps the result as one release
/// with the same id, so that `rollback --steps` goes back the same deploy
/// on every host. A host whose release cannot be kept says so; the deploy
/// stands.
fn keep_releases(t: &Target, results: &[rollout::HostResult], sha: &str) {
    if !results.iter().any(|r| r.result == HostOutcome::Changed) {
        return;
    }
    let id = releases::new_id(&t.inv.sha256);
    let errors = t.each_host(10, |_, h| -> anyhow::Result<()> {
        let Some(r) = results
            .iter()
            .find(|r| r.host == h.host.name && !r.result.failed())
        else {
            return Ok(());
        };
        let files = render::render_host(&t.inv, &h.host, &h.ctx, &t.templates)?;
        let entry = history::Entry::now(t, &r.host, r.files.clone(), r.result.to_string());
        let binary = (!h.services.is_empty()).then_some(sha);
        releases::record(
            h.transport()?,
            &id,
            entry,
            &files,
            binary,
            t.inv.deploy.keep,
        )
    });
    for e in errors.into_iter().filter_map(Result::err) {
        eprintln!("warning: {e:#} (`vakt rollback` cannot come back to this deploy there)");
    }
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
        .map(|_| format!(" -i {}", crate::transport::sh_shown(&t.inv.file)))
        .unwrap_or_default();
    // A state folder other than the default must be named again, or `down`
    // would look for the cluster in the default one.
    let state_flag = match crate::target::default_state_dir(&t.inv.name) {
        Ok(d) if d == t.state_dir => String::new(),
        _ if t.hosts.iter().any(|h| h.host.is_local()) => format!(
            " --state-dir {}",
            crate::transport::sh_shown(&t.state_dir.display().to_string())
        ),
        _ => String::new(),
    };
    println!(
        "stop it with: {} down{inv_flag}{state_flag}",
        super::vakt_command()
    );
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
    pub select: Selection,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// The release to go back to, by id (see `vakt releases`).
    #[arg(long, value_name = "RELEASE", conflicts_with = "steps")]
    pub to: Option<String>,
    /// Go back this many releases from each host's current one.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub steps: u16,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: u16,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

/// `vakt rollback`: each selected host goes back to a kept release
/// (`--to` an id, or `--steps` back from its current one, 1 by default)
/// through the same plan and rollout as `up`: files and binary from the
/// host's store, services reloaded, taken over or restarted, web hosts
/// drained around a restart. Every host's release is found and checked
/// complete before any host changes.
pub fn rollback(a: RollbackArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let t = target::open(&a.target)?;
    let _lock = crate::lock::take(&t, &a.lock, false)?;
    let only = a.select.pick(&t.inv)?;
    let wanted = match &a.to {
        Some(id) => releases::Wanted::Id(id),
        None => releases::Wanted::Steps(usize::from(a.steps)),
    };
    let chosen = t.each_host(usize::from(a.forks), |_, h| {
        if !only.contains(&h.host.name) {
            return None;
        }
        Some((|| -> anyhow::Result<(String, releases::Manifest)> {
            let tr = h.transport()?;
            let store = releases::list(tr)?;
            let m = releases::resolve(&h.host.name, &store, wanted, t.inv.deploy.keep)?;
            releases::check_complete(tr, &m)?;
            Ok((h.host.name.clone(), m))
        })())
    });
    let mut problems = Vec::new();
    let mut map = std::collections::BTreeMap::new();
    for r in chosen.into_iter().flatten() {
        match r {
            Ok((host, m)) => {
                map.insert(host, m);
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}\nnothing was changed", problems.join("\n"));
    }
    let progress = Progress::new();
    let results = rollout::run(
        &t,
        &rollout::Push {
            source: rollout::Source::Releases(&map),
            may_install: false,
            only: None,
        },
        usize::from(a.forks),
        &progress,
    );
    let mut entries = Vec::new();
    for r in &results {
        // rollout::run reports only hosts of `map` (`Source::Releases`).
        let Some(id) = map.get(&r.host).map(|m| &m.id) else {
            continue;
        };
        let result = match &r.result {
            HostOutcome::Changed => format!("rolled back to {id}"),
            HostOutcome::NoChanges => format!("already on {id}"),
            other => other.to_string(),
        };
        if !r.result.failed()
            && let Some(h) = t.hosts.iter().find(|h| h.host.name == r.host)
            && let Err(e) = h.transport().and_then(|tr| releases::set_current(tr, id))
        {
            eprintln!("warning: {e:#}");
        }
        if r.result != HostOutcome::NoChanges {
            entries.push(history::Entry::now(&t, &r.host, r.files.clone(), result));
        }
    }
    history::record(&t, entries);
    let failed = results.iter().filter(|r| r.result.failed()).count();
    let healthy = if failed == 0 {
        rollout::settle(&t, started)
    } else {
        Ok(())
    };
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        super::Format::Text => {
            for r in &results {
                let id = map.get(&r.host).map_or("?", |m| m.id.as_str());
                let result = match &r.result {
                    HostOutcome::Changed => format!("rolled back to {id}"),
                    HostOutcome::NoChanges => format!("already on {id}"),
                    other => other.to_string(),
                };
                println!("{:<10} {}", r.host, result);
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} host(s) failed and kept the files they had; fix the cause above and run `vakt rollback` again"
        );
        return Ok(ExitCode::from(1));
    }
    if let Err(e) = healthy {
        eprintln!("rolled back, but not healthy: {e:#}\nsee `vakt status`");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
