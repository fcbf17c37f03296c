//! `vakt up`'s orchestration, after the target is open: every host is
//! rendered, read and planned in parallel; plans that interrupt nothing are
//! applied at once, the others one host at a time in the rolling phase (web
//! hosts first, each through [`rotation::cycle`]); each host ends with a
//! [`HostOutcome`]. `settle` then waits for a healthy cluster. Printing the
//! outcome is the command's job.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::hooks::{self, Hook};
use crate::inventory::Role;
use crate::plan::{self, Change, HostPlan};
use crate::progress::{HostLine, Progress};
use crate::releases;
use crate::render;
use crate::rotation;
use crate::services;
use crate::target::{HostTarget, Target};
use crate::topology::Service;

/// How one host ended in `vakt up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOutcome {
    /// It already had everything.
    NoChanges,
    /// Its plan was applied.
    Changed,
    /// Planning or applying failed (the error, with its context); the host
    /// kept its previous files.
    Failed(String),
    /// Not touched: `after` failed before it in the rolling phase.
    Halted { after: String },
}

impl HostOutcome {
    pub fn failed(&self) -> bool {
        matches!(self, HostOutcome::Failed(_) | HostOutcome::Halted { .. })
    }
}

impl std::fmt::Display for HostOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostOutcome::NoChanges => f.write_str("no changes"),
            HostOutcome::Changed => f.write_str("changed"),
            HostOutcome::Failed(e) => write!(f, "FAILED: {e}"),
            HostOutcome::Halted { after } => write!(
                f,
                "FAILED: not changed: {after} failed before it in the rolling phase"
            ),
        }
    }
}

/// `up --format json` shows the outcome as the text table does.
impl Serialize for HostOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One host's line in `vakt up`'s report.
#[derive(Serialize)]
pub struct HostResult {
    pub host: String,
    pub changed_files: usize,
    /// The paths behind `changed_files` (the binary's included), for the
    /// host's history.
    #[serde(skip)]
    pub files: Vec<String>,
    pub actions: Vec<String>,
    pub seconds: f64,
    pub result: HostOutcome,
}

impl HostResult {
    fn new(h: &HostTarget, p: Option<&HostPlan>, result: HostOutcome, start: Instant) -> Self {
        let p = p.filter(|_| !result.failed());
        HostResult {
            host: h.host.name.clone(),
            changed_files: p.map_or(0, |p| {
                p.files
                    .iter()
                    .filter(|f| f.change != Change::Unchanged)
                    .count()
                    + usize::from(p.binary != Change::Unchanged)
            }),
            files: p.map_or_else(Vec::new, |p| {
                let mut files: Vec<String> = p
                    .files
                    .iter()
                    .filter(|f| f.change != Change::Unchanged)
                    .map(|f| f.file.path.clone())
                    .collect();
                if p.binary != Change::Unchanged {
                    files.push(crate::services::BINARY_PATH.to_string());
                }
                files
            }),
            actions: p.map_or_else(Vec::new, |p| {
                p.actions.iter().map(ToString::to_string).collect()
            }),
            seconds: start.elapsed().as_secs_f64(),
            result,
        }
    }

    /// The outcome of applying `p` (or of failing before a plan).
    fn applied(
        h: &HostTarget,
        p: Option<&HostPlan>,
        r: anyhow::Result<()>,
        start: Instant,
    ) -> Self {
        let outcome = match (p, r) {
            (_, Err(e)) => HostOutcome::Failed(format!("{e:#}")),
            (Some(p), Ok(())) if p.changes() => HostOutcome::Changed,
            (_, Ok(())) => HostOutcome::NoChanges,
        };
        Self::new(h, p, outcome, start)
    }
}

/// What the hosts are brought to.
pub enum Source<'a> {
    /// The inventory rendered, with this binary pushed (`up`).
    Inventory {
        binary: &'a [u8],
        sha: &'a str,
        /// Chosen with --binary or `[artifacts] binary` (no platform check).
        explicit: bool,
    },
    /// Each host's kept release, by host name (`rollback`); a host without
    /// one is not selected.
    Releases(&'a std::collections::BTreeMap<String, releases::Manifest>),
}

/// What a rollout brings every host to, and how.
pub struct Push<'a> {
    pub source: Source<'a>,
    /// Packages (keepalived) may be installed with the host's package manager.
    pub may_install: bool,
    /// Only these hosts are planned and changed (`up --hosts`); `None`: all.
    /// The others stay in the target, so web hosts are still drained on
    /// every LB.
    pub only: Option<&'a std::collections::BTreeSet<String>>,
}

/// The running binary fits a host whose `uname -sm` says this.
fn platform() -> String {
    format!("Linux {}", std::env::consts::ARCH)
}

/// Refuses to push the running binary to a host of another platform.
pub fn check_platform(h: &HostTarget, explicit: bool) -> anyhow::Result<()> {
    if explicit || h.services.is_empty() {
        return Ok(());
    }
    if let Some(u) = h
        .transport
        .as_ref()
        .and_then(|t| t.uname())
        .filter(|u| *u != platform())
    {
        anyhow::bail!(
            "{} runs `{u}` and this vakt is built for `{}`: build vakt for that platform and pass it with --binary PATH (or [artifacts] binary in the inventory)",
            h.host.name,
            platform()
        );
    }
    Ok(())
}

pub fn plan_host(t: &Target, h: &HostTarget, binary_sha: &str) -> anyhow::Result<HostPlan> {
    // Rules that let no one SSH in would only be rolled back by the
    // dead-man switch: refuse them before anything is written.
    if render::has_firewall(&t.inv, &h.host) && render::admin_networks(&t.inv, &h.ctx).is_empty() {
        anyhow::bail!(
            "{}: the firewall would let no one SSH in: the host did not say where this deploy connects from (SSH_CLIENT is empty); set [firewall] admin = [\"CIDR\", ...] in the inventory",
            h.host.name
        );
    }
    let files = render::render_host(&t.inv, &h.host, &h.ctx, &t.templates)?;
    let state = services::read_state(h.transport()?, &files, &h.services)
        .with_context(|| format!("{}: reading what the host has", h.host.name))?;
    let mut p = plan::build(
        &h.host.name,
        files,
        &h.services,
        &state,
        binary_sha,
        t.inv.firewall.rollback_after,
    );
    // A host that runs nothing of ours needs no binary.
    if h.services.is_empty() {
        p.binary = Change::Unchanged;
    }
    Ok(p)
}

impl Push<'_> {
    /// Whether `host` is part of this rollout.
    fn selected(&self, host: &str) -> bool {
        let released = match &self.source {
            Source::Releases(r) => r.contains_key(host),
            Source::Inventory { .. } => true,
        };
        released && self.only.is_none_or(|only| only.contains(host))
    }

    fn plan(&self, t: &Target, h: &HostTarget) -> anyhow::Result<HostPlan> {
        match &self.source {
            Source::Inventory { sha, explicit, .. } => {
                check_platform(h, *explicit).and_then(|()| plan_host(t, h, sha))
            }
            Source::Releases(r) => {
                let m = r
                    .get(&h.host.name)
                    .with_context(|| format!("{}: no release chosen", h.host.name))?;
                releases::plan_host(t, h, m)
            }
        }
    }

    /// Where `h`'s binary comes from.
    fn binary(&self, h: &HostTarget) -> services::Binary<'_> {
        match &self.source {
            Source::Inventory { binary, .. } => services::Binary::Push(binary),
            Source::Releases(r) => match r.get(&h.host.name) {
                Some(m) => {
                    services::Binary::OnHost(releases::kept_path(&m.id, services::BINARY_PATH))
                }
                None => services::Binary::Push(&[]),
            },
        }
    }
}

/// Applies one interrupting plan. A web host that every LB knows goes
/// through [`rotation::cycle`] (drained, applied, readied once every LB sees
/// it healthy; the error says how it was left when not); any other host is
/// applied as it is. The `pre-rolling-host` hook runs before anything is
/// done to the host (failing, it leaves the host untouched), the
/// `post-rolling-host` one after its turn went well.
fn roll_one(
    t: &Target,
    h: &HostTarget,
    p: &HostPlan,
    push: &Push,
    hosts: &[&str],
    line: &HostLine,
) -> anyhow::Result<()> {
    let name = &h.host.name;
    line.step("running the pre-rolling-host hook");
    hooks::run(t, Hook::PreRollingHost, hosts, Some(name))
        .with_context(|| format!("nothing was done on {name}"))?;
    let binary = push.binary(h);
    let apply = |_: &str, line: &HostLine| -> anyhow::Result<()> {
        line.step("applying");
        let tr = h.transport()?;
        services::apply(tr, p, &binary, push.may_install)?;
        Ok(())
    };
    let web = h.host.has(Role::Web)
        && t.hosts
            .iter()
            .any(|l| l.services.contains(&Service::Proxy) && l.host.name != *name);
    // Only a host the LBs already know can be drained (a new one is not in
    // rotation yet).
    if !(web && rotation::known(t, name)) {
        apply(name, line)?;
    } else {
        let opts = rotation::Options {
            sessions: Duration::from_secs(30),
            health: Duration::from_secs(60),
            announce: false,
        };
        rotation::cycle(t, std::slice::from_ref(name), &[line], opts, &apply)?;
    }
    hooks::run(t, Hook::PostRollingHost, hosts, Some(name)).with_context(|| {
        format!("{name} was changed and is back in rotation; nothing was rolled back")
    })?;
    Ok(())
}

/// Plans and applies every host (`forks` at a time), then rolls the
/// interrupting plans one host at a time; a failure in the rolling phase
/// halts it (the hosts after it are not changed). Results come back in
/// inventory order.
pub fn run(t: &Target, push: &Push, forks: usize, progress: &Progress) -> Vec<HostResult> {
    let slots: Vec<Mutex<Option<HostResult>>> = t.hosts.iter().map(|_| Mutex::new(None)).collect();
    let lines: Vec<_> = t
        .hosts
        .iter()
        .map(|h| progress.host(&h.host.name))
        .collect();
    // Plans whose actions interrupt a running service (a restart, a binary
    // upgrade) wait for the rolling phase below; everything else is applied
    // here, in parallel.
    let deferred: Vec<Mutex<Option<(HostPlan, Instant)>>> =
        t.hosts.iter().map(|_| Mutex::new(None)).collect();
    let finish = |i: usize, r: HostResult| {
        lines[i].done(&r.result.to_string());
        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    let hosts: Vec<&str> = t
        .hosts
        .iter()
        .map(|h| h.host.name.as_str())
        .filter(|n| push.selected(n))
        .collect();
    t.each_host(forks, |i, h| {
        if !push.selected(&h.host.name) {
            lines[i].done("not selected");
            return;
        }
        let line = &lines[i];
        let start = Instant::now();
        line.step("planning");
        let planned = push.plan(t, h);
        tracing::debug!(host = %h.host.name, took = ?start.elapsed(), "planned");
        match planned {
            Ok(p) if p.interrupts() => {
                line.step("waits its turn (services restart one host at a time)");
                *deferred[i].lock().unwrap_or_else(|e| e.into_inner()) = Some((p, start));
            }
            Ok(p) => {
                line.step("applying");
                let r = h.transport().and_then(|tr| {
                    services::apply(tr, &p, &push.binary(h), push.may_install).map_err(Into::into)
                });
                finish(i, HostResult::applied(h, Some(&p), r, start));
            }
            Err(e) => finish(i, HostResult::applied(h, None, Err(e), start)),
        }
    });
    // The rolling phase: web hosts first, then the others, one at a time.
    // A web host in rotation is drained on every LB first and readied once
    // every LB sees it UP again, so that no request meets a restart.
    let mut order: Vec<usize> = (0..t.hosts.len()).collect();
    order.sort_by_key(|&i| !t.hosts[i].host.has(Role::Web));
    let mut halted: Option<String> = None;
    for i in order {
        let Some((p, start)) = deferred[i].lock().unwrap_or_else(|e| e.into_inner()).take() else {
            continue;
        };
        let h = &t.hosts[i];
        if let Some(after) = &halted {
            let outcome = HostOutcome::Halted {
                after: after.clone(),
            };
            finish(i, HostResult::new(h, None, outcome, start));
            continue;
        }
        let r = roll_one(t, h, &p, push, &hosts, &lines[i]);
        if r.is_err() {
            halted = Some(h.host.name.clone());
        }
        finish(i, HostResult::applied(h, Some(&p), r, start));
    }
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// After a rollout without failures: waits until every LB sees every server
/// serving and, with keepalived, until one LB holds the VIP.
pub fn settle(t: &Target, started: Instant) -> anyhow::Result<()> {
    rotation::wait_all_serving(t, Duration::from_secs(20))?;
    if t.inv.vip.is_some()
        && t.hosts
            .iter()
            .any(|h| h.services.contains(&Service::Keepalived))
    {
        let holder = crate::ha::wait_settled(t, Duration::from_secs(20))?;
        tracing::debug!(%holder, elapsed = ?started.elapsed(), "the VIP has settled");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failed_and_halted_hosts_count_as_failed_and_read_as_before() {
        assert!(!HostOutcome::NoChanges.failed());
        assert!(!HostOutcome::Changed.failed());
        let failed = HostOutcome::Failed("web01: boom".into());
        assert!(failed.failed());
        assert_eq!(failed.to_string(), "FAILED: web01: boom");
        let halted = HostOutcome::Halted {
            after: "web01".into(),
        };
        assert!(halted.failed());
        assert_eq!(
            halted.to_string(),
            "FAILED: not changed: web01 failed before it in the rolling phase"
        );
    }
}
