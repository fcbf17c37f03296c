//! Host access, behind one small trait: run a command, read a file, put a
//! file atomically. `local` serves hosts on 127.0.0.0/8 (files under a state
//! folder, services as local processes); the SSH issue adds `ssh`. Only this
//! module touches hosts.

pub mod local;
pub mod ssh;

use std::io;

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// How a host runs services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    Systemd,
    #[default]
    SysV,
}

/// One host, reachable.
pub trait Transport: Send + Sync {
    /// The host's init system (local hosts: SysV scripts, run as processes).
    fn init(&self) -> Init {
        Init::SysV
    }
    /// `uname -sm` of a remote host (`None`: this machine).
    fn uname(&self) -> Option<&str> {
        None
    }
    /// The address this machine connects from, as the host sees it
    /// (`SSH_CLIENT`); `None` for local hosts.
    fn source(&self) -> Option<std::net::IpAddr> {
        None
    }
    /// Opens a second, independent connection and runs a command over it:
    /// proof that a newly loaded firewall still lets the operator in (an
    /// open connection survives as established traffic, a new one would
    /// not). Local hosts have nothing to prove.
    fn confirm_new_connection(&self, _timeout: std::time::Duration) -> io::Result<()> {
        Ok(())
    }
    fn host(&self) -> &str;
    /// Prefix of every vakt path on this host ("" on a real host).
    fn root(&self) -> &str;
    /// Runs a `sh -c` command line.
    fn run(&self, cmd: &str) -> io::Result<Output>;
    /// A file's bytes, `None` when it does not exist.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// Writes a file atomically (temp file, fsync, rename), creating the
    /// folders; the previous version is kept as `PATH.vakt-prev`.
    fn put(&self, path: &str, content: &[u8], mode: u32) -> io::Result<()>;
    /// Puts the previous version back; false when there is none.
    fn restore(&self, path: &str) -> io::Result<bool>;
    /// sha256 of a file, `None` when missing.
    fn sha256(&self, path: &str) -> io::Result<Option<String>> {
        use sha2::Digest;
        Ok(self
            .read(path)?
            .map(|b| hex::encode(sha2::Sha256::digest(&b))))
    }
}

/// Quotes one shell word.
pub fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// One shell word as a person would type it: as is when it needs no quotes
/// (a plain path), else [`sh`]-quoted. For commands printed to be pasted.
pub fn sh_shown(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:=@%".contains(&b));
    if plain { s.to_string() } else { sh(s) }
}
