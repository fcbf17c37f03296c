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
    admin: Option<AdminCommand>,
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
enum AdminCommand {
    /// Send a command to a running proxy's admin socket and print the answer.
    Admin {
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
        /// The command, e.g. `show servers` or `set server app/web01 state drain`.
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
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
    if let Some(AdminCommand::Admin { socket, command }) = a.admin {
        let answer = vakt_runtime::admin::request(&socket, &command.join(" "))?;
        print!("{answer}");
        return Ok(if answer.starts_with("error: ") {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
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
        return Ok(match vakt_runtime::load(&opts) {
            Ok((_, warnings)) => {
                for w in warnings.items {
                    eprintln!("{w}");
                }
                println!("{}: configuration is valid", opts.config.display());
                ExitCode::SUCCESS
            }
            Err(d) => {
                eprintln!("{d}");
                let n = d.errors().count();
                eprintln!(
                    "{n} error{} in {}",
                    if n == 1 { "" } else { "s" },
                    opts.config.display()
                );
                ExitCode::from(1)
            }
        });
    }
    vakt_runtime::serve_with(opts).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}
