//! The SSH transport: one multiplexed connection per host (OpenSSH
//! ControlMaster through the `openssh` crate's native mux), commands through
//! the remote shell, files written atomically by a small shell pipeline
//! (temp file, sync, keep the previous version, rename). Inside a lab
//! (`VAKT_LAB` set by `vakt lab exec ctl`) the lab's ssh_config is used.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::{Init, Output, Transport, sh};
use crate::inventory::Host;

pub struct Ssh {
    host: String,
    session: Session,
    rt: tokio::runtime::Handle,
    /// Run commands through `sudo -n` (a non-root SSH user).
    sudo: bool,
    init: Init,
    /// `uname -sm` of the host, e.g. "Linux x86_64".
    pub uname: String,
    /// `SSH_CLIENT`'s address: where this deploy comes from, as the host
    /// sees it.
    pub source: Option<std::net::IpAddr>,
    /// What `connect` was given, so `confirm_new_connection` can open a
    /// second, independent connection the same way.
    cfg: Host,
    lab: Option<PathBuf>,
}

/// This process's control directory, once made.
static CONTROL_DIR: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// A short control directory: OpenSSH's socket paths must stay under the
/// ~104-byte Unix socket limit, which the crate's default (under
/// ~/.local/state) can exceed. Made fresh (mode 0700, a random name that
/// must not exist yet) so that no other user of the machine can have
/// prepared it, and removed when the command ends
/// ([`remove_control_dir`]).
fn control_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut dir = CONTROL_DIR.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = dir.as_ref() {
        return Ok(d.clone());
    }
    for _ in 0..16 {
        let d = PathBuf::from(format!(
            "/tmp/vakt-ssh-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => {
                *dir = Some(d.clone());
                return Ok(d);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("creating the SSH control directory {}: {e}", d.display()),
                ));
            }
        }
    }
    Err(io::Error::other(
        "no free name for an SSH control directory under /tmp",
    ))
}

/// Removes the control directory this process made, if any: called when a
/// command has ended and its SSH sessions are closed.
pub fn remove_control_dir() {
    let dir = CONTROL_DIR.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The local OpenSSH client's version, e.g. (9, 2).
fn client_version() -> Option<(u32, u32)> {
    let out = std::process::Command::new("ssh").arg("-V").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let v = text.split("OpenSSH_").nth(1)?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn expand_home(p: &str) -> String {
    match p.strip_prefix("~/") {
        Some(rest) => std::env::var("HOME")
            .map(|home| format!("{home}/{rest}"))
            .unwrap_or_else(|_| p.to_string()),
        None => p.to_string(),
    }
}

/// What plain `ssh` says about a failed connection (the mux error is
/// opaque), with the fix for the usual causes.
fn diagnose(h: &Host, dest: &str, lab: Option<&Path>, accept_new: bool) -> String {
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]);
    cmd.args([
        "-o",
        if accept_new {
            "StrictHostKeyChecking=accept-new"
        } else {
            "StrictHostKeyChecking=yes"
        },
    ]);
    match lab {
        Some(lab) => {
            cmd.arg("-F").arg(lab.join("ssh_config"));
            cmd.args(["-l", &h.ssh.user, "-p", &h.ssh.port.to_string()]);
            if let Some(j) = &h.ssh.jump {
                cmd.args(["-J", j]);
            }
        }
        None => {
            cmd.args(["-l", &h.ssh.user, "-p", &h.ssh.port.to_string()]);
            if let Some(id) = &h.ssh.identity {
                cmd.arg("-i").arg(expand_home(id));
            }
            if let Some(j) = &h.ssh.jump {
                cmd.args(["-J", j]);
            }
        }
    }
    let Ok(out) = cmd
        .args([dest, "true"])
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return String::new();
    };
    let said = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("@@@"))
        .collect();
    let hint = if said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || said.contains("Host key verification failed")
    {
        "\n  fix: the host's key is unknown or has changed. Compare the fingerprint above with the host's own (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console); if the change is expected, remove the old line from known_hosts (`ssh-keygen -R HOST`) and add the new key, or use host_keys = \"accept-new\" for a first contact"
    } else if said.contains("Permission denied") {
        "\n  fix: the key was refused: check ssh.user and ssh.identity for this host, and that the key is in the user's authorized_keys"
    } else {
        ""
    };
    if lines.is_empty() {
        return String::new();
    }
    format!("\n  ssh says: {}{hint}", lines.join("\n    "))
}

impl Ssh {
    pub fn connect(
        h: &Host,
        rt: &tokio::runtime::Handle,
        lab: Option<&Path>,
    ) -> anyhow::Result<Ssh> {
        let session = Self::session(h, rt, lab, Duration::from_secs(10))?;
        let mut ssh = Ssh {
            host: h.name.clone(),
            session,
            rt: rt.clone(),
            sudo: h.ssh.sudo && h.ssh.user != "root",
            init: Init::SysV,
            uname: String::new(),
            source: None,
            cfg: h.clone(),
            lab: lab.map(Path::to_path_buf),
        };
        // One round trip learns what later steps need: the platform (is the
        // running binary right for it?) and the init system.
        let probe = ssh.run(
            "uname -sm; if [ -d /run/systemd/system ]; then echo systemd; else echo sysv; fi",
        )?;
        let mut lines = probe.stdout.lines();
        ssh.uname = lines.next().unwrap_or("").trim().to_string();
        ssh.init = if lines.next() == Some("systemd") {
            Init::Systemd
        } else {
            Init::SysV
        };
        // Unwrapped: sudo's env_reset drops SSH_CLIENT.
        let client = rt
            .block_on(
                ssh.session
                    .shell("echo \"${SSH_CLIENT%% *}\"")
                    .stdin(Stdio::null())
                    .output(),
            )
            .map_err(io::Error::other)?;
        ssh.source = String::from_utf8_lossy(&client.stdout).trim().parse().ok();
        Ok(ssh)
    }

    /// A new multiplexing master (its own TCP connection) to `h`.
    fn session(
        h: &Host,
        rt: &tokio::runtime::Handle,
        lab: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Session> {
        let mut b = SessionBuilder::default();
        b.control_directory(control_dir()?)
            .connect_timeout(timeout)
            .server_alive_interval(Duration::from_secs(15));
        let accept_new = h.ssh.host_keys == crate::inventory::HostKeys::AcceptNew;
        if accept_new && client_version().is_some_and(|v| v < (7, 6)) {
            anyhow::bail!(
                "{}: host_keys = \"accept-new\" needs OpenSSH 7.6 or newer on this machine (CentOS 7 has 7.4, which fails with an opaque error); add the host keys to known_hosts and use host_keys = \"strict\"",
                h.name
            );
        }
        b.known_hosts_check(if accept_new {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        });
        let dest = match lab {
            Some(lab) => {
                // The lab's config names the hosts and holds the keys; the
                // inventory still chooses the user and the jump host.
                b.config_file(lab.join("ssh_config"))
                    .user(h.ssh.user.clone())
                    .port(h.ssh.port);
                if let Some(j) = &h.ssh.jump {
                    b.jump_hosts([j]);
                }
                h.name.clone()
            }
            None => {
                b.user(h.ssh.user.clone()).port(h.ssh.port);
                if let Some(id) = &h.ssh.identity {
                    b.keyfile(expand_home(id));
                }
                if let Some(j) = &h.ssh.jump {
                    b.jump_hosts([j]);
                }
                // The private network when a jump host leads there, else the
                // address the operator can reach.
                match (&h.ssh.address, h.public_ip, &h.ssh.jump) {
                    (Some(a), _, _) => a.clone(),
                    (None, Some(p), None) => p.to_string(),
                    _ => h.private_ip.to_string(),
                }
            }
        };
        match rt.block_on(b.connect_mux(&dest)) {
            Ok(s) => Ok(s),
            Err(e) => anyhow::bail!(
                "{}: cannot connect over SSH to {dest}: {e}{}",
                h.name,
                diagnose(h, &dest, lab, accept_new)
            ),
        }
    }

    fn wrap(&self, cmd: &str) -> String {
        if self.sudo {
            format!("sudo -n sh -c {}", sh(cmd))
        } else {
            cmd.to_string()
        }
    }
}

impl Transport for Ssh {
    fn host(&self) -> &str {
        &self.host
    }

    fn root(&self) -> &str {
        ""
    }

    fn init(&self) -> Init {
        self.init
    }

    fn uname(&self) -> Option<&str> {
        Some(&self.uname)
    }

    fn source(&self) -> Option<std::net::IpAddr> {
        self.source
    }

    fn confirm_new_connection(&self, timeout: Duration) -> io::Result<()> {
        let session = Self::session(&self.cfg, &self.rt, self.lab.as_deref(), timeout)
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        let out = self.rt.block_on(async {
            let out =
                tokio::time::timeout(timeout, session.shell("true").stdin(Stdio::null()).output())
                    .await;
            let _ = session.close().await;
            out
        });
        match out {
            Ok(Ok(o)) if o.status.success() => Ok(()),
            Ok(Ok(o)) => Err(io::Error::other(format!(
                "`true` over a new connection exited with {:?}",
                o.status.code()
            ))),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(_) => Err(io::Error::other(format!(
                "a new connection gave no answer within {} s",
                timeout.as_secs()
            ))),
        }
    }

    fn run(&self, cmd: &str) -> io::Result<Output> {
        let cmd = self.wrap(cmd);
        let out = self
            .rt
            .block_on(self.session.shell(&cmd).stdin(Stdio::null()).output())
            .map_err(io::Error::other)?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let q = sh(path);
        let cmd = self.wrap(&format!("if [ -e {q} ]; then cat {q}; else exit 3; fi"));
        let out = self
            .rt
            .block_on(self.session.shell(&cmd).stdin(Stdio::null()).output())
            .map_err(io::Error::other)?;
        match out.status.code() {
            Some(0) => Ok(Some(out.stdout)),
            Some(3) => Ok(None),
            _ => Err(io::Error::other(format!(
                "reading {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    fn put(&self, path: &str, content: &[u8], mode: u32) -> io::Result<()> {
        let (q, tmp, prev) = (
            sh(path),
            sh(&format!("{path}.vakt-tmp")),
            sh(&format!("{path}.vakt-prev")),
        );
        let dir = sh(&Path::new(path)
            .parent()
            .map_or("/".into(), |p| p.display().to_string()));
        // The new file is its owner's alone until its mode is set: a key
        // (mode 0600) is never readable by others, not even for a moment.
        let cmd = self.wrap(&format!(
            "set -e; mkdir -p {dir}; rm -f {tmp}; (umask 077; cat > {tmp}); chmod {mode:o} {tmp}; sync; if [ -e {q} ]; then cp -p {q} {prev}; fi; mv -f {tmp} {q}"
        ));
        self.rt.block_on(async {
            let mut child = self
                .session
                .shell(&cmd)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .await
                .map_err(io::Error::other)?;
            let mut stdin = child
                .stdin()
                .take()
                .ok_or_else(|| io::Error::other("no stdin"))?;
            stdin.write_all(content).await?;
            stdin.shutdown().await?;
            drop(stdin);
            let out = child.wait_with_output().await.map_err(io::Error::other)?;
            if out.status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "writing {path}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        })
    }

    fn restore(&self, path: &str) -> io::Result<bool> {
        let (q, prev) = (sh(path), sh(&format!("{path}.vakt-prev")));
        let out = self.run(&format!(
            "if [ -e {prev} ]; then mv -f {prev} {q}; else exit 3; fi"
        ))?;
        match out.status {
            0 => Ok(true),
            3 => Ok(false),
            _ => Err(io::Error::other(format!(
                "restoring {path}: {}",
                out.stderr.trim()
            ))),
        }
    }

    fn sha256(&self, path: &str) -> io::Result<Option<String>> {
        let q = sh(path);
        let out = self.run(&format!(
            "if [ -e {q} ]; then sha256sum {q}; else exit 3; fi"
        ))?;
        match out.status {
            0 => Ok(out.stdout.split_whitespace().next().map(str::to_string)),
            3 => Ok(None),
            _ => Err(io::Error::other(format!(
                "hashing {path}: {}",
                out.stderr.trim()
            ))),
        }
    }
}
