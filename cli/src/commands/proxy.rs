//! `vakt proxy`: runs the load balancer in the foreground, checks a config
//! (`--check`/`-c`), or talks to a running one (`admin`). Accepts HAProxy's
//! flags (`-f`, `-c`, `-D`, `-p`, `-x`, `-sf`) so init scripts written for
//! HAProxy keep working.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProxyArgs {
    #[command(subcommand)]
    admin: Option<ProxyCommand>,
    /// The proxy configuration (TOML).
    #[arg(long, value_name = "FILE", conflicts_with = "haproxy_cfg")]
    config: Option<PathBuf>,
    /// An HAProxy configuration file (haproxy.cfg), as `haproxy -f`.
    #[arg(short = 'f', value_name = "FILE")]
    haproxy_cfg: Option<PathBuf>,
    /// Check the configuration and exit: 0 valid, 1 with every error listed.
    #[arg(short = 'c', long)]
    check: bool,
    /// Detach from the terminal once listening.
    #[arg(short = 'D', long, conflicts_with = "foreground")]
    daemon: bool,
    /// Stay in the foreground even if the configuration says `daemon`
    /// (HAProxy's `-db`).
    #[arg(long)]
    foreground: bool,
    /// Write the process id to this file.
    #[arg(short = 'p', long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Take the listening sockets of the proxy behind this admin socket
    /// (binary upgrade without refusing a connection).
    #[arg(short = 'x', long, value_name = "SOCKET")]
    takeover: Option<PathBuf>,
    /// Ask these older processes to finish once we are serving (`-sf`).
    #[arg(long = "soft-finish", value_name = "PID", num_args = 1..)]
    soft_finish: Vec<i32>,
}

#[derive(Subcommand)]
enum ProxyCommand {
    /// Send a command to a running proxy's admin socket and print the answer.
    Admin {
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// The command, e.g. `show servers` or `set server app/web01 state drain`.
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Reload a running proxy, as a systemd unit's ExecReload: check the
    /// config, then SIGHUP; or, when it runs an older binary than this one,
    /// start this one to take its sockets over (binary upgrade, no refused
    /// connection) and let systemd follow the new process.
    Reload {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running proxy (systemd's $MAINPID).
        #[arg(long, value_name = "PID")]
        pid: i32,
        /// Its admin socket, through which the sockets are handed over.
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
    },
}

/// Rewrites HAProxy's two-letter flags (`-sf`, `-db`) into long ones: clap
/// has no multi-letter short flags.
pub fn haproxy_style_flags(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| match a.to_str() {
        Some("-sf") => OsString::from("--soft-finish"),
        Some("-db") => OsString::from("--foreground"),
        _ => a,
    })
    .collect()
}

pub fn run(a: ProxyArgs) -> anyhow::Result<ExitCode> {
    match a.admin {
        Some(ProxyCommand::Admin { socket, command }) => {
            let answer = vakt_runtime::admin::request(&socket, &command.join(" "))?;
            print!("{answer}");
            return Ok(if answer.starts_with("error: ") {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        Some(ProxyCommand::Reload {
            config,
            pid,
            socket,
        }) => return reload(config, pid, &socket),
        None => {}
    }
    let (config, haproxy) = match (a.config, a.haproxy_cfg) {
        (Some(c), None) => (c, false),
        (None, Some(f)) => (f, true),
        _ => anyhow::bail!(
            "name a configuration: `vakt proxy --config proxy.toml` or `vakt proxy -f haproxy.cfg`"
        ),
    };
    let opts = vakt_runtime::ServeOptions {
        config,
        haproxy,
        daemon: a.daemon,
        foreground: a.foreground,
        pidfile: a.pidfile,
        takeover: a.takeover,
        soft_finish: a.soft_finish,
    };
    if a.check {
        return Ok(if check(&opts) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    vakt_runtime::serve_with(opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Checks a configuration: says it is valid (with any warnings), or lists
/// every error with its place and counts them.
fn check(opts: &vakt_runtime::ServeOptions) -> bool {
    match vakt_runtime::load(opts) {
        Ok((_, warnings)) => {
            for w in warnings.items {
                eprintln!("{w}");
            }
            println!("{}: configuration is valid", opts.config.display());
            true
        }
        Err(d) => {
            eprintln!("{d}");
            let n = d.errors().count();
            eprintln!(
                "{n} error{} in {}",
                if n == 1 { "" } else { "s" },
                opts.config.display()
            );
            false
        }
    }
}

/// `vakt proxy reload`: see `ProxyCommand::Reload`.
fn reload(config: PathBuf, pid: i32, socket: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::MetadataExt;
    let opts = vakt_runtime::ServeOptions {
        config: config.clone(),
        haproxy: false,
        daemon: false,
        foreground: true,
        pidfile: None,
        takeover: None,
        soft_finish: Vec::new(),
    };
    if !check(&opts) {
        anyhow::bail!(
            "{} is not valid; the running proxy (pid {pid}) keeps its configuration",
            config.display()
        );
    }
    let running = std::fs::metadata(format!("/proc/{pid}/exe"))
        .map_err(|e| anyhow::anyhow!("no running proxy with pid {pid}: {e}"))?;
    let me = std::env::current_exe()?;
    let this = std::fs::metadata(&me)?;
    if (running.dev(), running.ino()) == (this.dev(), this.ino()) {
        // SAFETY: kill has no memory effects.
        if unsafe { libc::kill(pid, libc::SIGHUP) } < 0 {
            anyhow::bail!(
                "cannot signal the proxy (pid {pid}): {}",
                std::io::Error::last_os_error()
            );
        }
        println!("vakt-proxy reloaded (pid {pid})");
        return Ok(ExitCode::SUCCESS);
    }
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        anyhow::bail!(
            "the running proxy (pid {pid}) runs another binary than {}; outside a systemd unit (Type=notify, NotifyAccess=all), upgrade it with the init script's `upgrade`",
            me.display()
        );
    }
    // The new process takes the sockets over and says when it serves; it
    // then waits for us to exit, so that it becomes systemd's own child
    // before it tells systemd it is the main process.
    let new = vakt_runtime::handoff::start_upgrade(
        &me,
        &config,
        socket,
        pid,
        std::time::Duration::from_secs(30),
    )?;
    println!("vakt-proxy upgraded (pid {new}, was {pid})");
    Ok(ExitCode::SUCCESS)
}
