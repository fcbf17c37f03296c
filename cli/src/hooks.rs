//! The operator's hooks: executables in a `hooks/` folder next to the
//! inventory (`pre-up`, `post-up`, `pre-rolling-host`, `post-rolling-host`),
//! run on this machine with the cluster, hosts, operator and vakt version
//! in their environment. A missing hook is no hook; a present one that is
//! not executable is an error. Where they run (and what a failure stops)
//! is the callers' business: `commands/deploy` and `rollout`, `commands/ops`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::target::Target;

/// The hooks vakt knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Before `up` changes any host.
    PreUp,
    /// After `up` (and its health wait) succeeded.
    PostUp,
    /// Before a host's turn in a rolling phase (`up`, `rollback`, `rolling`).
    PreRollingHost,
    /// After a host's turn in a rolling phase went well.
    PostRollingHost,
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::PreUp => "pre-up",
            Hook::PostUp => "post-up",
            Hook::PreRollingHost => "pre-rolling-host",
            Hook::PostRollingHost => "post-rolling-host",
        }
    }
}

/// Why a hook stopped the command.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook {path} is not executable: chmod +x {path} (or remove it)")]
    NotExecutable { path: String },
    #[error("hook {path} failed (exit {code})")]
    Failed { path: String, code: String },
    #[error("hook {path} could not be run: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The hook's file, when the inventory has a folder and the file exists.
fn path(t: &Target, hook: Hook) -> Option<PathBuf> {
    let p = t.inv.dir.as_ref()?.join("hooks").join(hook.name());
    p.exists().then_some(p)
}

/// Runs `hook` (when there is one) for `hosts` (and `host`, for the
/// per-host ones), its output on our stderr so that a JSON report on stdout
/// stays JSON. Returns once it exited; a non-zero exit is an error.
pub fn run(t: &Target, hook: Hook, hosts: &[&str], host: Option<&str>) -> Result<(), HookError> {
    let Some(p) = path(t, hook) else {
        return Ok(());
    };
    let shown = p.display().to_string();
    let meta = std::fs::metadata(&p).map_err(|source| HookError::Io {
        path: shown.clone(),
        source,
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(HookError::NotExecutable { path: shown });
    }
    let mut cmd = Command::new(&p);
    cmd.env("VAKT_CLUSTER", &t.inv.name)
        .env("VAKT_HOSTS", hosts.join(","))
        .env("VAKT_OPERATOR", crate::lock::operator())
        .env("VAKT_VERSION", crate::history::VERSION)
        .env("VAKT_INVENTORY", &t.inv.file)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()));
    match host {
        Some(h) => cmd.env("VAKT_HOST", h),
        None => cmd.env_remove("VAKT_HOST"),
    };
    let status = cmd.status().map_err(|source| HookError::Io {
        path: shown.clone(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let code = match status.code() {
        Some(c) => c.to_string(),
        None => "killed by a signal".into(),
    };
    Err(HookError::Failed { path: shown, code })
}
