//! Services on a host, through its transport: reading what is there, pushing
//! files and the binary, starting/reloading/stopping through the rendered
//! SysV init scripts, and putting the previous files back when a step fails
//! so the host keeps serving its old configuration (each `put` keeps
//! `PATH.vakt-prev` for that, dropped once the apply succeeds; releases to
//! roll back to live in `releases`).

use std::io;

use crate::plan::{Action, Change, HostPlan, HostState};
use crate::render::{FIREWALL_PATH, File};
use crate::topology::Service;
use crate::transport::{Transport, sh};

pub const BINARY_PATH: &str = "/usr/local/bin/vakt";

/// Why a host could not be brought to its plan.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{host}: {step}: {source}")]
    Io {
        host: String,
        step: String,
        source: io::Error,
    },
    #[error("{host}: `{command}` failed (exit {status}): {output}")]
    Command {
        host: String,
        command: String,
        status: i32,
        output: String,
    },
    #[error(
        "{host}: {package} is not installed and --no-install was given: install it (apt-get/dnf/yum install {package}) or drop --no-install"
    )]
    Missing { host: String, package: String },
    #[error(transparent)]
    Firewall(#[from] crate::firewall::Error),
}

fn io_err(t: &dyn Transport, step: impl Into<String>) -> impl FnOnce(io::Error) -> ApplyError + '_ {
    let step = step.into();
    move |source| ApplyError::Io {
        host: t.host().to_string(),
        step,
        source,
    }
}

/// The init command for a service (`start`, `stop`, `reload`, `status`...).
/// The command that does `verb` (start, stop, restart, reload, status) to
/// a service: systemctl on systemd hosts, else the SysV init script.
pub fn init_command(t: &dyn Transport, svc: Service, verb: &str) -> String {
    if t.init() == crate::transport::Init::Systemd {
        return systemctl(svc, verb);
    }
    let script = sh(&format!("{}/etc/init.d/{}", t.root(), svc.script()));
    // A real host starts the service at boot too: update-rc.d (Debian) or
    // chkconfig (Red Hat), whichever it has. Local hosts are processes of
    // this machine and are not registered.
    if verb == "start" && t.root().is_empty() {
        let name = svc.script();
        return format!(
            "{{ if command -v update-rc.d >/dev/null 2>&1; then update-rc.d {name} defaults; \
             elif command -v chkconfig >/dev/null 2>&1; then chkconfig --add {name}; fi; }} >/dev/null 2>&1; \
             sh {script} start"
        );
    }
    format!("sh {script} {verb}")
}

/// [`init_command`] on a systemd host. A service whose unit stands in for
/// the distribution's (`Service::replaces`: vakt's MariaDB, with its own
/// datadir, for Debian's `mariadb.socket` and `mariadb.service`, which the
/// package enables and starts) first stops those and keeps them off at
/// boot, whether vakt installed the package or it was there before:
/// otherwise Debian's socket holds `*:3306` and vakt's server cannot bind
/// its address, and a second server with /var/lib/mysql answers on every
/// address. (The SysV path stops the distribution's script in [`install`].)
fn systemctl(svc: Service, verb: &str) -> String {
    let unit = svc.unit();
    match verb {
        "start" => {
            // The socket first, so that nothing activates the server again.
            // No such unit (a host without the package's) is fine.
            let replaced: String = svc
                .replaces()
                .iter()
                .map(|other| {
                    format!(
                        "{{ systemctl disable --now --quiet {other} 2>/dev/null || true; }} && "
                    )
                })
                .collect();
            format!(
                "systemctl daemon-reload && {replaced}systemctl enable --quiet {unit} && systemctl start {unit}"
            )
        }
        "restart" => format!("systemctl daemon-reload && systemctl restart {unit}"),
        "reload" => format!("systemctl daemon-reload && systemctl reload {unit}"),
        "status" => format!("systemctl is-active --quiet {unit}"),
        other => format!("systemctl {other} {unit}"),
    }
}

pub fn is_running(t: &dyn Transport, svc: Service) -> io::Result<bool> {
    Ok(t.run(&init_command(t, svc, "status"))?.ok())
}

/// Reads what a host has in one command (one round trip over SSH): the
/// binary's checksum, each file (length-prefixed), each service's status.
pub fn read_state(
    t: &dyn Transport,
    files: &[File],
    services: &[Service],
) -> io::Result<HostState> {
    let mut script = String::from("cd / && ");
    let bin = sh(&format!("{}{BINARY_PATH}", t.root()));
    script.push_str(&format!(
        "if [ -e {bin} ]; then echo \"B $(sha256sum {bin} | cut -d' ' -f1)\"; else echo B -; fi; "
    ));
    for f in files {
        let p = sh(&format!("{}{}", t.root(), f.path));
        script.push_str(&format!(
            "if [ -f {p} ]; then echo \"F $(wc -c < {p})\"; cat {p}; else echo F -; fi; "
        ));
    }
    for &s in services {
        script.push_str(&format!(
            "{} >/dev/null 2>&1; echo \"S $?\"; ",
            init_command(t, s, "status")
        ));
    }
    for (p, programs) in packages(services) {
        script.push_str(&format!("{}; echo \"P {p} $?\"; ", has_programs(programs)));
    }
    let firewall = files.iter().any(|f| f.path == FIREWALL_PATH);
    if firewall {
        script.push_str(&crate::firewall::state_script(t.root()));
    }
    let out = t.run(&script)?;
    if !out.ok() {
        return Err(io::Error::other(format!(
            "reading the host's state failed: {}",
            out.stderr.trim()
        )));
    }
    let mut st = parse_state(out.stdout.as_bytes(), files, services, firewall)
        .ok_or_else(|| io::Error::other("reading the host's state: unexpected output"))?;
    st.init = t.init();
    Ok(st)
}

fn parse_state(
    mut b: &[u8],
    files: &[File],
    services: &[Service],
    firewall: bool,
) -> Option<HostState> {
    fn line<'a>(b: &mut &'a [u8]) -> Option<&'a str> {
        let i = b.iter().position(|&c| c == b'\n')?;
        let l = std::str::from_utf8(&b[..i]).ok()?;
        *b = &b[i + 1..];
        Some(l)
    }
    let mut st = HostState::default();
    let sha = line(&mut b)?.strip_prefix("B ")?;
    st.binary_sha256 = (sha != "-").then(|| sha.to_string());
    for f in files {
        let len = line(&mut b)?.strip_prefix("F ")?.trim();
        let content = if len == "-" {
            None
        } else {
            let n: usize = len.parse().ok()?;
            let (c, rest) = b.split_at_checked(n)?;
            b = rest;
            Some(String::from_utf8_lossy(c).into_owned())
        };
        st.files.insert(f.path.clone(), content);
    }
    for &s in services {
        let code = line(&mut b)?.strip_prefix("S ")?;
        st.running.insert(s, code == "0");
    }
    for (p, _) in packages(services) {
        let l = line(&mut b)?.strip_prefix("P ")?;
        if l.strip_prefix(p)?.trim() != "0" {
            st.missing.push(p.to_string());
        }
    }
    if firewall {
        st.firewall = Some(crate::firewall::parse_state(
            line(&mut b)?.strip_prefix("W ")?,
        )?);
    }
    Some(st)
}

/// Packages from the host's package manager that `services` need, each
/// with the programs vakt runs from it.
fn packages(
    services: &[Service],
) -> impl Iterator<Item = (&'static str, &'static [&'static str])> + '_ {
    services.iter().filter_map(|s| match s {
        Service::Keepalived => Some(("keepalived", &["keepalived"][..])),
        // The server, its first-start tool and the client the grants go
        // through (mariadb-client comes with mariadb-server).
        Service::MariaDb => Some((
            "mariadb-server",
            &["mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin"][..],
        )),
        // A backup host dumps and restores with the client programs.
        Service::Backup => Some(("mariadb-client", &["mariadb-dump", "mariadb"][..])),
        _ => None,
    })
}

/// A command that succeeds when every one of a package's programs is there.
fn has_programs(programs: &[&str]) -> String {
    let each: Vec<String> = programs
        .iter()
        .map(|p| format!("{{ command -v {p} || [ -x /usr/sbin/{p} ]; }}"))
        .collect();
    format!("{{ {}; }} >/dev/null 2>&1", each.join(" && "))
}

/// Installs a package with the host's package manager (apt-get, dnf or yum,
/// whichever it has; without recommended or weak dependencies: keepalived
/// needs none for VRRP), then, on hosts without systemd, stops and keeps off
/// the distribution's own SysV script of it, since vakt's script runs it
/// instead. (On systemd hosts vakt uses the distribution's keepalived unit;
/// the distribution's MariaDB unit is kept off by [`systemctl`]'s start of
/// vakt's own.)
pub fn install(t: &dyn Transport, package: &str) -> Result<(), ApplyError> {
    let p = sh(package);
    let script = format!(
        "if command -v apt-get >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {p}; \
         elif command -v dnf >/dev/null 2>&1; then dnf install -y -q --setopt=install_weak_deps=False {p}; \
         elif command -v yum >/dev/null 2>&1; then yum install -y -q {p}; \
         else echo 'no apt-get, dnf or yum on this host: install {package} by hand and run vakt up --no-install' >&2; exit 3; fi && \
         {{ [ -d /run/systemd/system ] || {{ {{ [ ! -x /etc/init.d/{package} ] || /etc/init.d/{package} stop; }}; \
         update-rc.d -f {p} remove || chkconfig {p} off; }} >/dev/null 2>&1 || true; }}"
    );
    let out = t
        .run(&script)
        .map_err(io_err(t, format!("install {package}")))?;
    if out.ok() {
        return Ok(());
    }
    Err(ApplyError::Command {
        host: t.host().to_string(),
        command: format!("install {package}"),
        status: out.status,
        output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
    })
}

fn control(t: &dyn Transport, svc: Service, verb: &str) -> Result<(), ApplyError> {
    run_checked(
        t,
        init_command(t, svc, verb),
        format!("{verb} {}", svc.name()),
    )
}

/// Runs a command on the host; a non-zero exit is an error that carries the
/// command and what it printed.
fn run_checked(t: &dyn Transport, cmd: String, what: String) -> Result<(), ApplyError> {
    let out = t.run(&cmd).map_err(io_err(t, what))?;
    if out.ok() {
        return Ok(());
    }
    Err(ApplyError::Command {
        host: t.host().to_string(),
        command: cmd,
        status: out.status,
        output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
    })
}

/// Where the binary a plan puts in place comes from.
#[derive(Debug, Clone)]
pub enum Binary<'a> {
    /// These bytes, pushed from here (`up`).
    Push(&'a [u8]),
    /// A copy already on the host, at this path (without the host's root):
    /// a kept release's (`rollback`), so nothing crosses the wire.
    OnHost(String),
}

/// Carries out a plan. When a step fails, the files written so far are
/// restored and the services reloaded on them, then the error is returned.
/// `may_install` false (`--no-install`) turns a missing package into an
/// error before anything is written.
pub fn apply(
    t: &dyn Transport,
    plan: &HostPlan,
    binary: &Binary,
    may_install: bool,
) -> Result<(), ApplyError> {
    for p in &plan.install {
        if !may_install {
            return Err(ApplyError::Missing {
                host: t.host().to_string(),
                package: p.clone(),
            });
        }
        install(t, p)?;
    }
    if plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Firewall(_)))
    {
        crate::firewall::require_nft(t)?;
    }
    let mut written: Vec<&str> = Vec::new();
    let result = (|| {
        for f in plan.files.iter().filter(|f| f.change != Change::Unchanged) {
            t.put(&f.file.path, f.file.content.as_bytes(), f.file.mode)
                .map_err(io_err(t, format!("write {}", f.file.path)))?;
            written.push(&f.file.path);
        }
        if plan.binary != Change::Unchanged {
            put_binary(t, binary)?;
            written.push(BINARY_PATH);
        }
        run_actions(t, &plan.actions)
    })();
    if result.is_ok() {
        // The kept copies only undo this apply; the release store
        // (`releases`) is what `vakt rollback` goes back to.
        if let Err(e) = forget_previous(t, written.iter().copied()) {
            tracing::warn!("{e}");
        }
    }
    if result.is_err() {
        for p in &written {
            let _ = t.restore(p);
        }
        // Back on the old files: bring what ran before back as it was.
        for a in &plan.actions {
            if let Action::Reload(s) | Action::Restart(s) | Action::Upgrade(s) = *a {
                let _ = control(
                    t,
                    s,
                    if matches!(a, Action::Reload(_)) {
                        "reload"
                    } else {
                        "restart"
                    },
                );
            }
        }
    }
    result
}

/// Puts the binary in place the way `Transport::put` puts a file: the old
/// one kept as `PATH.vakt-prev`, the new one renamed over it.
fn put_binary(t: &dyn Transport, binary: &Binary) -> Result<(), ApplyError> {
    match *binary {
        Binary::Push(bytes) => t
            .put(BINARY_PATH, bytes, 0o755)
            .map_err(io_err(t, "push the vakt binary")),
        Binary::OnHost(ref src) => {
            let (src, dest) = (
                sh(&format!("{}{src}", t.root())),
                format!("{}{BINARY_PATH}", t.root()),
            );
            let (q, tmp, prev) = (
                sh(&dest),
                sh(&format!("{dest}.vakt-tmp")),
                sh(&format!("{dest}.vakt-prev")),
            );
            run_checked(
                t,
                format!(
                    "set -e; mkdir -p \"$(dirname {q})\"; cp {src} {tmp}; chmod 755 {tmp}; \
                     if [ -e {q} ]; then cp -p {q} {prev}; fi; mv -f {tmp} {q}"
                ),
                "put the kept release's vakt binary in place".into(),
            )
        }
    }
}

/// Starts, reloads, restarts or upgrades services, in order.
pub fn run_actions(t: &dyn Transport, actions: &[Action]) -> Result<(), ApplyError> {
    for a in actions {
        match *a {
            Action::Start(s) => control(t, s, "start")?,
            Action::Reload(s) => control(t, s, "reload")?,
            Action::Restart(s) => control(t, s, "restart")?,
            Action::Firewall(secs) => {
                crate::firewall::load(t, std::time::Duration::from_secs(secs.into()))?
            }
            // On systemd the unit's reload sees the new binary and lets it
            // take the sockets over; SysV scripts have an `upgrade` verb.
            Action::Upgrade(s) => control(
                t,
                s,
                if t.init() == crate::transport::Init::Systemd {
                    "reload"
                } else {
                    "upgrade"
                },
            )?,
        }
    }
    Ok(())
}

/// Drops the copies (`PATH.vakt-prev`) an apply kept to undo itself.
fn forget_previous<'a>(
    t: &dyn Transport,
    paths: impl Iterator<Item = &'a str>,
) -> Result<(), ApplyError> {
    let words: Vec<String> = paths
        .map(|p| sh(&format!("{}{p}.vakt-prev", t.root())))
        .collect();
    if words.is_empty() {
        return Ok(());
    }
    run_checked(
        t,
        format!("rm -f {}", words.join(" ")),
        "drop old kept copies".into(),
    )
}

/// Stops every service; returns what was stopped.
pub fn stop_all(t: &dyn Transport, services: &[Service]) -> Result<Vec<Service>, ApplyError> {
    let mut stopped = Vec::new();
    for &s in services.iter().rev() {
        if is_running(t, s).map_err(io_err(t, "status"))? {
            control(t, s, "stop")?;
            stopped.push(s);
        }
    }
    Ok(stopped)
}

/// Sends a command to the proxy's admin socket on the host, with the vakt
/// binary there (the socket is local to the host).
pub fn admin(t: &dyn Transport, socket: &str, command: &str) -> io::Result<String> {
    let bin = format!("{}{BINARY_PATH}", t.root());
    let out = t.run(&format!(
        "{} proxy admin --socket {} {command}",
        sh(&bin),
        sh(socket)
    ))?;
    if out.ok() || out.stdout.starts_with("error: ") {
        Ok(out.stdout)
    } else {
        Err(io::Error::other(
            format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_vakts_mariadb_on_systemd_first_stops_and_disables_debians() {
        let start = systemctl(Service::MariaDb, "start");
        let at = |s: &str| {
            start
                .find(s)
                .unwrap_or_else(|| panic!("no `{s}` in {start}"))
        };
        let socket = at("systemctl disable --now --quiet mariadb.socket");
        let server = at("systemctl disable --now --quiet mariadb.service");
        let on = at("systemctl start vakt-mariadb");
        assert!(socket < server && server < on, "{start}");
        assert!(
            start.contains("systemctl enable --quiet vakt-mariadb"),
            "{start}"
        );
        // Only the start: a reload or a restart of a running server leaves
        // everything else be, and other services replace nothing.
        for verb in ["reload", "restart", "stop", "status"] {
            assert!(
                !systemctl(Service::MariaDb, verb).contains("disable"),
                "{verb}"
            );
        }
        for svc in [Service::Proxy, Service::Keepalived, Service::Backup] {
            assert!(!systemctl(svc, "start").contains("disable"), "{svc:?}");
        }
    }

    #[test]
    fn mariadb_needs_mariadb_server_and_a_host_without_its_programs_misses_it() {
        let svc = [Service::Proxy, Service::MariaDb];
        let wanted: Vec<_> = packages(&svc).collect();
        assert_eq!(wanted.len(), 1);
        assert_eq!(wanted[0].0, "mariadb-server");
        let check = has_programs(wanted[0].1);
        for p in ["mariadbd", "mariadb-install-db", "mariadb "] {
            assert!(check.contains(&format!("command -v {p}")), "{check}");
        }
        let st = parse_state(b"B -\nS 3\nS 3\nP mariadb-server 1\n", &[], &svc, false).unwrap();
        assert_eq!(st.missing, vec!["mariadb-server".to_string()]);
        let st = parse_state(b"B -\nS 0\nS 0\nP mariadb-server 0\n", &[], &svc, false).unwrap();
        assert!(st.missing.is_empty());
    }
}
