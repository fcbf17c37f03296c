//! Web hosts in and out of the load balancers' rotation. The proxy's
//! `show servers` answer is parsed here once, into typed [`Row`]s; `set`
//! changes a web host's admin state on every LB; [`cycle`] is the one
//! drain → act → wait until healthy → ready routine that `vakt up`'s rolling
//! phase and `vakt rolling` share. Knows nothing of plans or commands.

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::progress::HostLine;
use crate::services;
use crate::target::{HostTarget, Target};
use crate::topology::Service;

/// A server's state as the proxy prints it in `show servers` (its
/// `status_text`, spaces as underscores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Up, with no failed check since (`UP`).
    Up,
    /// Up, but `failed` of the `fall` failures that take it down (`UP_1/3`).
    GoingDown { failed: u32, fall: u32 },
    /// Down (`DOWN`).
    Down,
    /// Down, with `passed` of the `rise` passing checks that bring it up
    /// (`DOWN_1/2`).
    ComingUp { passed: u32, rise: u32 },
    /// Up and draining: only persisted sessions reach it (`DRAIN`).
    Drain,
    /// Taken out of traffic entirely (`MAINT`).
    Maint,
    /// Not health-checked, so taken as up (`no_check`).
    NoCheck,
    /// Anything this vakt does not know (a newer proxy), as printed.
    Other(String),
}

impl Status {
    fn parse(s: &str) -> Status {
        let streak = |rest: &str| -> Option<(u32, u32)> {
            let (a, b) = rest.split_once('/')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        match s {
            "UP" => Status::Up,
            "DOWN" => Status::Down,
            "DRAIN" => Status::Drain,
            "MAINT" => Status::Maint,
            "no_check" => Status::NoCheck,
            _ => {
                if let Some((failed, fall)) = s.strip_prefix("UP_").and_then(streak) {
                    Status::GoingDown { failed, fall }
                } else if let Some((passed, rise)) = s.strip_prefix("DOWN_").and_then(streak) {
                    Status::ComingUp { passed, rise }
                } else {
                    Status::Other(s.to_string())
                }
            }
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Up => f.write_str("UP"),
            Status::GoingDown { failed, fall } => write!(f, "UP_{failed}/{fall}"),
            Status::Down => f.write_str("DOWN"),
            Status::ComingUp { passed, rise } => write!(f, "DOWN_{passed}/{rise}"),
            Status::Drain => f.write_str("DRAIN"),
            Status::Maint => f.write_str("MAINT"),
            Status::NoCheck => f.write_str("no_check"),
            Status::Other(s) => f.write_str(s),
        }
    }
}

/// `vakt status --format json` shows the status as the proxy printed it.
impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One line of the proxy's `show servers`: a server as one LB sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub backend: String,
    pub server: String,
    pub addr: String,
    pub status: Status,
    /// The admin state: `ready`, `drain` or `maint`.
    pub admin: String,
    pub weight: u32,
    /// Sessions now.
    pub scur: u64,
    /// Sessions since start.
    pub stot: u64,
    /// The last health check (`L7OK/200`, `L4CON`, `-`).
    pub check: String,
}

impl Row {
    /// The one meaning of "healthy" in vakt: the LB's health checks say the
    /// server works. Its status is up (`UP`, `DRAIN`, which the proxy shows
    /// only for an up server, or `no_check`) and its last check passed
    /// (`L7OK`, `L4OK`) or none was made yet (`-`). The check matters: a
    /// server that was never confirmed up still shows `UP` after a failed
    /// check, with the failure in the check column.
    pub fn healthy(&self) -> bool {
        matches!(self.status, Status::Up | Status::Drain | Status::NoCheck)
            && (self.check.starts_with("L7OK")
                || self.check.starts_with("L4OK")
                || self.check == "-")
    }

    /// Healthy and in rotation: takes new traffic (not drained, not in
    /// maintenance).
    pub fn serving(&self) -> bool {
        self.healthy() && matches!(self.status, Status::Up | Status::NoCheck)
    }
}

/// Reads `show servers` (`# backend server addr status admin weight scur
/// stot check`); lines that do not have that shape are skipped.
pub fn parse(answer: &str) -> Vec<Row> {
    answer
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [
                backend,
                server,
                addr,
                status,
                admin,
                weight,
                scur,
                stot,
                check,
            ] = f[..]
            else {
                return None;
            };
            Some(Row {
                backend: backend.to_string(),
                server: server.to_string(),
                addr: addr.to_string(),
                status: Status::parse(status),
                admin: admin.to_string(),
                weight: weight.parse().ok()?,
                scur: scur.parse().ok()?,
                stot: stot.parse().ok()?,
                check: check.to_string(),
            })
        })
        .collect()
}

/// Every server one LB's proxy knows, through its admin socket.
pub fn read(lb: &HostTarget) -> anyhow::Result<Vec<Row>> {
    let answer = services::admin(lb.transport()?, &lb.ctx.admin_socket, "show servers")?;
    Ok(parse(&answer))
}

/// The hosts that run the proxy.
fn lbs(t: &Target) -> impl Iterator<Item = &HostTarget> {
    t.hosts
        .iter()
        .filter(|h| h.services.contains(&Service::Proxy))
}

/// The web host `host` as every LB sees it: (LB name, its row).
fn rows(t: &Target, host: &str) -> anyhow::Result<Vec<(String, Row)>> {
    let mut out = Vec::new();
    for lb in lbs(t) {
        let row = read(lb)
            .with_context(|| format!("{}: reading the proxy's servers", lb.host.name))?
            .into_iter()
            .find(|r| r.backend == t.inv.name && r.server == host)
            .with_context(|| format!("{}: the proxy has no server `{host}`", lb.host.name))?;
        out.push((lb.host.name.clone(), row));
    }
    Ok(out)
}

/// Every LB knows `host` as one of its servers (a web host before its
/// first `up` is in nobody's rotation yet).
pub fn known(t: &Target, host: &str) -> bool {
    rows(t, host).is_ok()
}

/// Every LB sends `host` new traffic.
pub fn serving(t: &Target, host: &str) -> bool {
    rows(t, host).is_ok_and(|r| r.iter().all(|(_, row)| row.serving()))
}

/// A web host's admin state on the LBs (`set server B/S state ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

impl Admin {
    fn as_str(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

/// Sets web host `host`'s admin state on every load balancer.
pub fn set(t: &Target, host: &str, state: Admin) -> anyhow::Result<()> {
    if !t.inv.webs().any(|w| w.name == host) {
        bail!("`{host}` is not a web host of {}", t.inv.file);
    }
    for lb in lbs(t) {
        let answer = services::admin(
            lb.transport()?,
            &lb.ctx.admin_socket,
            &format!("set server {}/{host} state {}", t.inv.name, state.as_str()),
        )?;
        if answer.starts_with("error: ") {
            bail!("{}: {}", lb.host.name, answer.trim());
        }
    }
    Ok(())
}

/// Waits until every LB's row for `host` is `done`; the error names `what`
/// did not happen and what each LB saw last.
pub fn wait(
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

/// Waits until every load balancer has servers and sees every one of them
/// serving.
pub fn wait_all_serving(t: &Target, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for lb in lbs(t) {
        loop {
            let answer = lb
                .transport()
                .ok()
                .and_then(|tr| services::admin(tr, &lb.ctx.admin_socket, "show servers").ok())
                .unwrap_or_default();
            let rows = parse(&answer);
            if !rows.is_empty() && rows.iter().all(Row::serving) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{}: servers not all UP after {}s:\n{answer}",
                    lb.host.name,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// How [`cycle`] waits and reports.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long a drained host's sessions may take to end.
    pub sessions: Duration,
    /// How long a host may take to pass its health checks after the act.
    pub health: Duration,
    /// Say each host's draining and readiness as result lines (`vakt
    /// rolling`); otherwise only the live step changes (`vakt up`, whose
    /// table reports the result).
    pub announce: bool,
}

/// Why [`cycle`] stopped, and in which state it left the failed host. The
/// hosts of the batch other than `host` are back in rotation. One line, so
/// that `up` can show it in its table.
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    /// The sessions did not end: nothing was done on `host`, and it is back
    /// in rotation.
    #[error("{source:#}; nothing was done on {host}, it is back in rotation")]
    Sessions { host: String, source: anyhow::Error },
    /// The act failed: `host` stays in maintenance.
    #[error(
        "{source:#}; {host} stays in maintenance on every load balancer: fix it, then `vakt ready {host}`"
    )]
    Act { host: String, source: anyhow::Error },
    /// `host` did not pass its health checks after the act: it stays in
    /// maintenance.
    #[error(
        "{source:#}; {host} stays in maintenance on every load balancer: fix it, then `vakt ready {host}`"
    )]
    Health { host: String, source: anyhow::Error },
    /// A load balancer refused a state change or could not be asked.
    #[error(transparent)]
    Admin(#[from] anyhow::Error),
}

/// The one drain → act → wait until healthy → ready routine, for a batch of
/// web hosts at once: drains every host of `batch` on every LB, waits for
/// each one's sessions to end, runs `act` on each, waits until every LB sees
/// each one healthy ([`Row::healthy`]), and readies it. `lines[i]` shows
/// `batch[i]`'s progress.
///
/// The failure rules, the stricter of what `up` and `rolling` did before
/// they shared this: sessions that do not end within `sessions` stop the
/// cycle before anything is done (the host goes back in rotation); a failed
/// act, or a host not healthy within `health` afterwards, stays in
/// maintenance. Either way the other hosts of the batch go back in rotation
/// (their health checks still decide when they take traffic) and the error
/// says which host failed and how it was left.
pub fn cycle(
    t: &Target,
    batch: &[String],
    lines: &[&HostLine],
    opts: Options,
    act: &dyn Fn(&str, &HostLine) -> anyhow::Result<()>,
) -> Result<(), CycleError> {
    let line = |i: usize| lines[i];
    let put_back = |failed: &str| -> anyhow::Result<()> {
        for (i, o) in batch.iter().enumerate().filter(|(_, o)| *o != failed) {
            set(t, o, Admin::Ready)?;
            line(i).done("put back in rotation");
        }
        Ok(())
    };
    for (i, h) in batch.iter().enumerate() {
        if opts.announce {
            line(i).say(&format!("{h}: draining"));
        }
        line(i).step("draining on every load balancer");
        set(t, h, Admin::Drain)?;
    }
    for (i, h) in batch.iter().enumerate() {
        line(i).step("waiting for its sessions to end");
        if let Err(e) = wait(t, h, opts.sessions, "the end of its sessions", |r| {
            r.scur == 0
        }) {
            set(t, h, Admin::Ready)?;
            put_back(h)?;
            return Err(CycleError::Sessions {
                host: h.clone(),
                source: e,
            });
        }
    }
    for (i, h) in batch.iter().enumerate() {
        if let Err(e) = act(h, line(i)) {
            set(t, h, Admin::Maint)?;
            put_back(h)?;
            return Err(CycleError::Act {
                host: h.clone(),
                source: e,
            });
        }
    }
    for (i, h) in batch.iter().enumerate() {
        line(i).step("waiting until every load balancer sees it UP");
        if let Err(e) = wait(t, h, opts.health, "a passing health check", Row::healthy) {
            set(t, h, Admin::Maint)?;
            put_back(h)?;
            return Err(CycleError::Health {
                host: h.clone(),
                source: e,
            });
        }
        set(t, h, Admin::Ready)?;
        if opts.announce {
            line(i).say(&format!("{h}: ready"));
            line(i).done("ready");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_servers_rows_become_typed_fields_and_other_lines_are_skipped() {
        let answer = "# backend server addr status admin weight scur stot check\n\
                      shop web01 10.0.0.11:80 UP ready 1 3 120 L7OK/200\n\
                      shop web02 10.0.0.12:80 MAINT maint 2 0 7 -\n\
                      error: something else\n";
        let rows = parse(answer);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].server, "web01");
        assert_eq!((rows[0].scur, rows[0].stot, rows[0].weight), (3, 120, 1));
        assert_eq!(rows[0].check, "L7OK/200");
        assert_eq!(rows[1].status, Status::Maint);
    }

    #[test]
    fn every_status_the_proxy_prints_reads_back_as_printed() {
        for s in [
            "UP", "UP_1/3", "DOWN", "DOWN_2/2", "DRAIN", "MAINT", "no_check", "NOLB",
        ] {
            assert_eq!(Status::parse(s).to_string(), s);
        }
        assert_eq!(
            Status::parse("UP_1/3"),
            Status::GoingDown { failed: 1, fall: 3 }
        );
        assert_eq!(Status::parse("DOWN_x/2"), Status::Other("DOWN_x/2".into()));
    }

    fn row(status: &str, check: &str) -> Row {
        let line = format!("shop web01 10.0.0.11:80 {status} ready 1 0 0 {check}");
        parse(&line).remove(0)
    }

    #[test]
    fn healthy_means_up_by_status_and_a_passing_or_no_last_check() {
        assert!(row("UP", "L7OK/200").healthy());
        assert!(row("UP", "-").healthy());
        assert!(row("DRAIN", "L4OK").healthy());
        assert!(row("no_check", "-").healthy());
        // Never confirmed up: still `UP`, but the check failed.
        assert!(!row("UP", "L4CON").healthy());
        assert!(!row("UP_1/3", "L7STS/500").healthy());
        assert!(!row("DOWN_1/2", "L7OK/200").healthy());
        assert!(!row("MAINT", "L7OK/200").healthy());
    }

    #[test]
    fn serving_is_healthy_and_in_rotation() {
        assert!(row("UP", "L7OK/200").serving());
        assert!(row("no_check", "-").serving());
        assert!(!row("DRAIN", "L7OK/200").serving());
        assert!(!row("UP", "L4CON").serving());
    }
}
