//! Services on a host, through its transport: reading what is there, pushing
//! files and the binary, starting/reloading/stopping through the rendered
//! SysV init scripts, and putting the previous files back when a step fails
//! so the host keeps serving its old configuration.

use std::io;

use crate::plan::{Action, Change, HostPlan, HostState};
use crate::render::{File, Service};
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
        let unit = svc.name();
        return match verb {
            "start" => format!(
                "systemctl daemon-reload && systemctl enable --quiet {unit} && systemctl start {unit}"
            ),
            "restart" => format!("systemctl daemon-reload && systemctl restart {unit}"),
            "reload" => format!("systemctl daemon-reload && systemctl reload {unit}"),
            "status" => format!("systemctl is-active --quiet {unit}"),
            other => format!("systemctl {other} {unit}"),
        };
    }
    match svc {
        Service::Keepalived => format!(
            "{} {verb}",
            sh(&format!("{}/etc/init.d/keepalived", t.root()))
        ),
        _ => format!(
            "sh {} {verb}",
            sh(&format!("{}/etc/init.d/{}", t.root(), svc.name()))
        ),
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
    let out = t.run(&script)?;
    if !out.ok() {
        return Err(io::Error::other(format!(
            "reading the host's state failed: {}",
            out.stderr.trim()
        )));
    }
    parse_state(out.stdout.as_bytes(), files, services)
        .ok_or_else(|| io::Error::other("reading the host's state: unexpected output"))
}

fn parse_state(mut b: &[u8], files: &[File], services: &[Service]) -> Option<HostState> {
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
    Some(st)
}

fn control(t: &dyn Transport, svc: Service, verb: &str) -> Result<(), ApplyError> {
    let cmd = init_command(t, svc, verb);
    let out = t
        .run(&cmd)
        .map_err(io_err(t, format!("{verb} {}", svc.name())))?;
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

/// Carries out a plan. When a step fails, the files written so far are
/// restored and the services reloaded on them, then the error is returned.
pub fn apply(t: &dyn Transport, plan: &HostPlan, binary: &[u8]) -> Result<(), ApplyError> {
    let mut written: Vec<&str> = Vec::new();
    let result = (|| {
        for f in plan.files.iter().filter(|f| f.change != Change::Unchanged) {
            t.put(&f.file.path, f.file.content.as_bytes(), f.file.mode)
                .map_err(io_err(t, format!("write {}", f.file.path)))?;
            written.push(&f.file.path);
        }
        if plan.binary != Change::Unchanged {
            t.put(BINARY_PATH, binary, 0o755)
                .map_err(io_err(t, "push the vakt binary"))?;
            written.push(BINARY_PATH);
        }
        for a in &plan.actions {
            match *a {
                Action::Start(s) => control(t, s, "start")?,
                Action::Reload(s) => control(t, s, "reload")?,
                Action::Restart(s) => control(t, s, "restart")?,
                // systemd has no verb for a takeover: those hosts restart.
                Action::Upgrade(s) => control(
                    t,
                    s,
                    if t.init() == crate::transport::Init::Systemd {
                        "restart"
                    } else {
                        "upgrade"
                    },
                )?,
            }
        }
        Ok(())
    })();
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
