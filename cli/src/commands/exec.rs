//! `vakt exec`: one shell command on the selected hosts in parallel, each
//! output line prefixed by its host's name (a host's lines stay together,
//! printed as it finishes); the exit code is the worst any host gave.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use crate::selection::Selection;
use crate::target::{self, HostTarget, Secrets, TargetArgs};

/// `vakt exec`'s flags.
#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    /// Run CMD as root through `sudo -n` (needs passwordless sudo). Hosts
    /// reached as root, or through `ssh.sudo`, run it as root already.
    #[arg(long)]
    pub sudo: bool,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: u16,
    /// The command, after `--` (run by `sh -c` on each host; local hosts
    /// run it in their folder).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// What `exec` reports when a host could not run the command at all (the
/// connection failed): ssh's own code for that.
const UNREACHABLE: i32 = 255;

/// The command line one host runs: CMD, wrapped in `sudo -n` when asked
/// and the host does not run commands as root already.
fn command_line(h: &HostTarget, cmd: &str, sudo: bool) -> String {
    let already_root = if h.host.is_local() {
        running_as_root()
    } else {
        h.host.ssh.user == "root" || h.host.ssh.sudo
    };
    if sudo && !already_root {
        format!("sudo -n sh -c {}", crate::transport::sh(cmd))
    } else {
        cmd.to_string()
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Prints `text` with every line prefixed by `host`.
fn prefixed(out: &mut impl Write, host: &str, width: usize, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{host:<width$} | {line}");
    }
}

pub fn run(a: ExecArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_selected(&a.target, true, Secrets::IfKnown, &a.select)?;
    let cmd = a.command.join(" ");
    let width = t.hosts.iter().map(|h| h.host.name.len()).max().unwrap_or(0);
    let printing = std::sync::Mutex::new(());
    let codes = t.each_host(usize::from(a.forks), |_, h| {
        let result = h
            .transport()
            .and_then(|tr| Ok(tr.run(&command_line(h, &cmd, a.sudo))?));
        let _one_host_at_a_time = printing.lock().unwrap_or_else(|e| e.into_inner());
        let name = &h.host.name;
        match result {
            Ok(out) => {
                prefixed(&mut std::io::stdout().lock(), name, width, &out.stdout);
                prefixed(&mut std::io::stderr().lock(), name, width, &out.stderr);
                if !out.ok() {
                    eprintln!("{name:<width$} | exit {}", out.status);
                }
                out.status
            }
            Err(e) => {
                eprintln!("{name:<width$} | could not run the command: {e:#}");
                UNREACHABLE
            }
        }
    });
    let worst = codes
        .iter()
        .map(|&c| if c < 0 { UNREACHABLE } else { c })
        .max()
        .unwrap_or(0);
    Ok(ExitCode::from(u8::try_from(worst).unwrap_or(u8::MAX)))
}
