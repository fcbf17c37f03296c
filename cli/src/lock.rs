//! The cluster-wide deploy lock: a folder made with one atomic `mkdir` on
//! the first load balancer (as Kamal does), holding who took it, when, for
//! what and why. Commands that change hosts (`up`, `down`, `rollback`,
//! `rolling`, `failover`) hold it while they run. A host that cannot be
//! reached is `LockError::Unreachable`, never reported as a held lock.

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};

use crate::inventory::Role;
use crate::target::{HostTarget, Target};
use crate::transport::{Transport, sh};

/// The lock flags of every command that takes the lock.
#[derive(clap::Args, Clone)]
pub struct LockArgs {
    /// While another operator holds the deploy lock, wait this long for it
    /// ("30s", "10m") instead of failing at once.
    #[arg(long, value_name = "DURATION", value_parser = wait, default_value = "0s")]
    pub lock_wait: Duration,
    /// Why: shown to whoever finds the lock taken (`vakt lock status`).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub lock_message: String,
}

fn wait(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    vakt_runtime::config::reader::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 10m)"))
}

/// What a lock says the holder is doing: this process's command line.
pub fn this_command() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!("vakt {}", args.join(" "))
}

/// Who runs this command: `user@machine` (also what history records).
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{machine}")
}

/// The lock folder on the first load balancer (under its root).
pub const LOCK_DIR: &str = "/var/lib/vakt/lock";

/// Who holds the lock, as its `info` file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Tells this holder's release from anyone else's.
    pub id: String,
    pub who: String,
    pub since: String,
    pub what: String,
    pub message: String,
}

impl Holder {
    /// A new holder: this user at this machine, now.
    pub fn new(what: &str, message: &str) -> Holder {
        use rand::Rng;
        Holder {
            id: format!("{:016x}", rand::rng().random::<u64>()),
            who: operator(),
            since: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            what: what.to_string(),
            message: message.to_string(),
        }
    }

    /// The `info` file: one `key=value` line each (newlines in values are
    /// flattened, so a line is always one field).
    fn to_info(&self) -> String {
        let flat = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "id={}\nwho={}\nsince={}\nwhat={}\nmessage={}\n",
            flat(&self.id),
            flat(&self.who),
            flat(&self.since),
            flat(&self.what),
            flat(&self.message)
        )
    }

    fn from_info(text: &str) -> Holder {
        let mut h = Holder::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let field = match k {
                "id" => &mut h.id,
                "who" => &mut h.who,
                "since" => &mut h.since,
                "what" => &mut h.what,
                "message" => &mut h.message,
                _ => continue,
            };
            *field = v.to_string();
        }
        h
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.who.is_empty() {
            // mkdir made the folder but its info is not written yet (or
            // the holder died in between).
            return write!(f, "someone (no details written yet)");
        }
        write!(f, "{} since {} ({})", self.who, self.since, self.what)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it (`--lock-wait` waits for this one only).
    #[error(
        "cluster `{cluster}` is locked by {holder}; nothing was changed. Wait with --lock-wait 10m, or if that operation is dead: vakt lock release"
    )]
    Held {
        cluster: String,
        holder: Box<Holder>,
    },
    /// The lock host could not be reached: says nothing about the lock.
    #[error("could not reach {host} to take the deploy lock: {source}; nothing was changed")]
    Unreachable {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The host answered but the lock folder could not be made or read.
    #[error("{host}: the deploy lock {path} could not be taken: {detail}; nothing was changed")]
    Failed {
        host: String,
        path: String,
        detail: String,
    },
}

/// The host that keeps the lock: the first load balancer.
pub fn lock_host(t: &Target) -> anyhow::Result<&HostTarget> {
    t.hosts
        .iter()
        .find(|h| h.host.has(Role::Lb))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} has no load balancer to keep the deploy lock",
                t.inv.file
            )
        })
}

fn path(tr: &dyn Transport) -> String {
    format!("{}{LOCK_DIR}", tr.root())
}

/// Tries once: `Ok` when this call made the folder.
fn try_take(t: &Target, h: &HostTarget, me: &Holder) -> Result<(), LockError> {
    let name = h.host.name.clone();
    let tr = h.transport().map_err(|e| LockError::Unreachable {
        host: name.clone(),
        source: std::io::Error::other(format!("{e:#}")),
    })?;
    let dir = path(tr);
    let d = sh(&dir);
    // mkdir without -p is the atomic test-and-set; its parent is made first.
    let script = format!(
        "mkdir -p \"$(dirname {d})\" || exit 3; if mkdir {d} 2>/dev/null; then printf %s {} > {d}/info && echo ACQUIRED; else [ -d {d} ] || exit 3; echo HELD; cat {d}/info 2>/dev/null; true; fi",
        sh(&me.to_info())
    );
    let out = tr.run(&script).map_err(|source| LockError::Unreachable {
        host: name.clone(),
        source,
    })?;
    match out.stdout.split_once('\n') {
        Some(("ACQUIRED", _)) if out.ok() => Ok(()),
        Some(("HELD", info)) if out.ok() => Err(LockError::Held {
            cluster: t.inv.name.clone(),
            holder: Box::new(Holder::from_info(info)),
        }),
        _ => Err(LockError::Failed {
            host: name,
            path: dir,
            detail: format!("exit {}: {}", out.status, out.stderr.trim()),
        }),
    }
}

/// The lock while held; dropping it releases it (only if it is still ours).
pub struct Guard<'a> {
    /// `None`: no lock was needed (a local cluster never brought up).
    tr: Option<&'a dyn Transport>,
    id: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let Some(tr) = self.tr else { return };
        let d = sh(&path(tr));
        let id = sh(&format!("id={}", self.id));
        let cmd = format!("if grep -qxF {id} {d}/info 2>/dev/null; then rm -rf {d}; fi");
        let failure = match tr.run(&cmd) {
            Ok(o) if o.ok() => return,
            Ok(o) => o.stderr.trim().to_string(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "warning: could not release the deploy lock on {}: {failure}; run `vakt lock release`",
            tr.host()
        );
    }
}

/// Takes the lock for this command, waiting up to `--lock-wait` while
/// someone else holds it (polling every second); any other failure returns
/// at once.
///
/// Only `up` (`creates_state`) may make a local cluster's state folder: for
/// any other command, a local load balancer without its folder was never
/// brought up, so there is nothing to guard and no lock is taken.
pub fn take<'a>(t: &'a Target, a: &LockArgs, creates_state: bool) -> anyhow::Result<Guard<'a>> {
    let h = lock_host(t)?;
    if !creates_state && h.host.is_local() && !std::path::Path::new(h.transport()?.root()).exists()
    {
        return Ok(Guard {
            tr: None,
            id: String::new(),
        });
    }
    let me = Holder::new(&this_command(), &a.lock_message);
    let wait = a.lock_wait;
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        match try_take(t, h, &me) {
            Ok(()) => {
                return Ok(Guard {
                    tr: Some(h.transport()?),
                    id: me.id,
                });
            }
            Err(LockError::Held { holder, .. }) if Instant::now() < deadline => {
                if !said {
                    eprintln!("waiting for the deploy lock, held by {holder}");
                    said = true;
                }
                std::thread::sleep(Duration::from_secs(1).min(deadline - Instant::now()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The current holder, `None` when unlocked.
pub fn status(t: &Target) -> anyhow::Result<Option<Holder>> {
    let h = lock_host(t)?;
    let tr = h.transport()?;
    let d = sh(&path(tr));
    let out = tr
        .run(&format!(
            "if [ -d {d} ]; then echo HELD; cat {d}/info 2>/dev/null; fi; true"
        ))
        .map_err(|source| LockError::Unreachable {
            host: h.host.name.clone(),
            source,
        })?;
    Ok(out.stdout.strip_prefix("HELD\n").map(Holder::from_info))
}

/// Removes the lock whoever holds it; returns who did.
pub fn release(t: &Target) -> anyhow::Result<Option<Holder>> {
    let held = status(t)?;
    if held.is_some() {
        let h = lock_host(t)?;
        let tr = h.transport()?;
        let out = tr.run(&format!("rm -rf {}", sh(&path(tr))))?;
        if !out.ok() {
            anyhow::bail!(
                "{}: removing {}: {}",
                h.host.name,
                path(tr),
                out.stderr.trim()
            );
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_reads_back_what_it_wrote_with_newlines_flattened() {
        let mut h = Holder::new("vakt up", "fixing\nthe cart");
        let back = Holder::from_info(&h.to_info());
        h.message = "fixing the cart".into();
        assert_eq!(back, h);
        assert!(back.to_string().ends_with("(vakt up): fixing the cart"));
    }
}
