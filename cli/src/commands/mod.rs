//! Defines vakt's command line and dispatches each command to the module
//! that runs it. Exit codes: 0 success, 1 failure, 2 usage error.

mod acme;
mod backup;
mod deploy;
mod exec;
mod failover;
mod history;
mod import;
mod init;
mod inspect;
mod lab;
mod lock;
mod logs;
mod manual;
mod ops;
mod password;
mod proxy;
mod releases;
mod remove;
mod vagrant;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vakt",
    version = crate::history::VERSION,
    about = "Deploy and run small high-availability web clusters"
)]
struct Cli {
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// How reports are printed.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Write an annotated inventory to start from (--ha: two LBs and a VIP).
    ///
    /// Writes only --out (default inventory.toml), never over an existing
    /// file without --force (which keeps it as FILE.bak). Exit 0, 1 error.
    Init(init::InitArgs),
    /// Validate the inventory and print a summary of the cluster.
    ///
    /// Writes nothing and needs no secret. Exit 0 valid, 1 problems (every
    /// one listed; with --format json as diagnostics on stdout).
    Check(inspect::CheckArgs),
    /// Write every host's files under a folder, to read before deploying.
    ///
    /// Writes only under --out and needs no secret: without the stats
    /// password (its variable, file, or the local cluster's kept one) the
    /// stats hash is a placeholder marked as such, which the proxy refuses.
    Render(inspect::RenderArgs),
    /// Show what `up` would change on each host.
    ///
    /// Writes nothing. Exit 0 no changes, 2 changes, 1 error.
    Plan(deploy::PlanArgs),
    /// Bring the cluster to what the inventory says (default: the local demo).
    ///
    /// Local hosts keep their files in one place per cluster (printed;
    /// --state-dir moves it). Exit 0 deployed and healthy, 1 a host failed
    /// (it keeps its previous files) or the cluster is not healthy.
    Up(deploy::UpArgs),
    /// Stop what `up` started (--check: only show what would stop).
    ///
    /// Hosts in parallel. Exit 0 stopped (or nothing ran), 1 a host failed.
    Down(deploy::DownArgs),
    /// What runs where, and the load balancers' view of their servers.
    ///
    /// Writes nothing. Exit 0 when every service runs and every load
    /// balancer sees every server UP; 1 otherwise, with the reason per host.
    Status(inspect::StatusArgs),
    /// Run a shell command on hosts in parallel (`vakt exec --roles web -- uptime`).
    ///
    /// Each output line is prefixed by its host. Exit code: the worst any
    /// host gave (255: a host could not be reached).
    Exec(exec::ExecArgs),
    /// What changed each host: when, who, which vakt and inventory, the files.
    ///
    /// Writes nothing. Exit 0, 1 a host's history could not be read.
    History(history::HistoryArgs),
    /// The deploy lock that up, down, rollback, rolling and failover take.
    Lock(lock::LockCmdArgs),
    /// The services' logs from each host, merged by time (-f follows).
    ///
    /// journalctl on systemd hosts, the files under /var/log/vakt elsewhere.
    /// Writes nothing. Exit 0, 1 a host's log could not be read.
    Logs(logs::LogsArgs),
    /// A rehearsal cluster of network namespaces with real sshd (root only).
    Lab(lab::LabArgs),
    /// Run the load balancer (or check its configuration).
    Proxy(proxy::ProxyArgs),
    /// ACME certificates on a load balancer (run there by the timer `up` installs).
    Acme(acme::AcmeArgs),
    /// Run the demo shop backend.
    DemoWeb {
        /// Address to listen on, e.g. 127.0.0.2:8080.
        #[arg(long)]
        bind: std::net::SocketAddr,
        /// Name shown in pages and the X-Served-By header.
        #[arg(long)]
        name: String,
        /// Settings (TOML): a `[db]` table keeps carts and orders in that
        /// MariaDB; without it, carts stay in this process's memory.
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// The database password's file, instead of the config's
        /// `[db] password_file`; `-` reads standard input (the systemd
        /// unit's, which systemd opens on the root-only file).
        #[arg(long, value_name = "FILE", requires = "config")]
        db_password_file: Option<std::path::PathBuf>,
    },
    /// Run the demo cluster's stand-in database (listens, stores nothing).
    DemoDb {
        /// Address to listen on, e.g. 10.10.0.20:3306.
        #[arg(long)]
        bind: std::net::SocketAddr,
        /// Name shown in its greeting.
        #[arg(long)]
        name: String,
    },
    /// Print a $6$ (sha-512 crypt) hash of a password: asked twice without echo on a
    /// terminal, or one line read from stdin in a pipe.
    HashPassword,
    /// Translate a haproxy.cfg into vakt's proxy TOML.
    Import(import::ImportArgs),
    /// Drain a web host on every load balancer and wait for its sessions to end.
    Drain(ops::StateArgs),
    /// Take a web host out of traffic entirely on every load balancer.
    Maint(ops::HostArgs),
    /// Put a web host back into traffic on every load balancer.
    Ready(ops::HostArgs),
    /// Drain, run a command, wait for health, ready: web host by web host.
    Rolling(ops::RollingArgs),
    /// Prove the cluster works: health, round robin, persistence, VIP, DB, policy.
    ///
    /// Writes nothing. Exit 0 every check passed, 1 not (nagios: 0 OK, 2
    /// CRITICAL, 3 UNKNOWN).
    Verify(verify::VerifyArgs),
    /// Report where personal data lives, with evidence, under the inventory's policy.
    ///
    /// Writes nothing but --out FILE (its previous version kept as
    /// FILE.bak); needs no secret. Exit 0 all comply, 1 not.
    Audit(verify::AuditArgs),
    /// Dump the database now on each backup host (`[[backups]] kind = "mariadb-dump"`).
    ///
    /// The backup host dumps the DB host over the private network; prints
    /// each dump's file, size and sha256. Exit 0, 1 a dump failed.
    Backup(backup::BackupArgs),
    /// Restore the newest dump: --check into a scratch database (counted,
    /// then dropped), --yes into the shop's database for real.
    ///
    /// Without either: says what it would do. Exit 0 restored, 1 failed,
    /// 2 neither flag given.
    Restore(backup::RestoreArgs),
    /// Measure from this host (used by verify and audit over SSH).
    #[command(hide = true)]
    Probe(verify::ProbeArgs),
    /// Write a Vagrantfile for the inventory (`vakt vagrant inventory`: the SSH overlay).
    Vagrant(vagrant::VagrantArgs),
    /// Move the VIP to another load balancer before maintaining its holder.
    Failover(failover::FailoverArgs),
    /// Bring hosts back to a kept release (--to ID, or --steps N back; default 1).
    ///
    /// The same plan and rolling phase as `up`, from each host's release
    /// store. Exit 0 rolled back and healthy, 1 a host failed (it keeps
    /// what it had) or no such release (nothing changed).
    Rollback(deploy::RollbackArgs),
    /// Each host's kept releases with the history line that made them (* = current).
    ///
    /// Writes nothing. Exit 0, 1 a host's store could not be read.
    Releases(releases::ReleasesArgs),
    /// Stop and remove everything vakt put on hosts (preview; --yes does it).
    ///
    /// Keeps the data (history, logs) unless --purge-data with
    /// --confirm CLUSTER. Exit 0, 1 a host failed.
    Remove(remove::RemoveArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page vakt(1) (roff), or write it and one page per command with --out.
    Man(manual::ManArgs),
}

pub fn run() -> ExitCode {
    let args = proxy::haproxy_style_flags(std::env::args_os());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Init(a) => init::run(a),
        Command::Check(a) => inspect::check(a),
        Command::Render(a) => inspect::render(a),
        Command::Plan(a) => deploy::plan(a),
        Command::Up(a) => deploy::up(a),
        Command::Down(a) => deploy::down(a),
        Command::Status(a) => inspect::status(a),
        Command::Exec(a) => exec::run(a),
        Command::History(a) => history::run(a),
        Command::Lock(a) => lock::run(a),
        Command::Logs(a) => logs::run(a),
        Command::Lab(a) => lab::run(a),
        Command::Proxy(a) => proxy::run(a),
        Command::Acme(a) => acme::run(a),
        Command::DemoWeb {
            bind,
            name,
            config,
            db_password_file,
        } => vakt_runtime::demo::run_blocking(
            bind,
            name,
            config.as_deref(),
            db_password_file.as_deref(),
        )
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        Command::DemoDb { bind, name } => vakt_runtime::demo::run_db_blocking(bind, name)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::HashPassword => password::run(),
        Command::Import(a) => import::run(a),
        Command::Rollback(a) => deploy::rollback(a),
        Command::Releases(a) => releases::run(a),
        Command::Remove(a) => remove::run(a),
        Command::Drain(a) => ops::drain(a),
        Command::Maint(a) => ops::maint(a),
        Command::Ready(a) => ops::ready(a),
        Command::Rolling(a) => ops::rolling(a),
        Command::Failover(a) => failover::run(a),
        Command::Vagrant(a) => vagrant::run(a),
        Command::Verify(a) => verify::verify(a),
        Command::Audit(a) => verify::audit(a),
        Command::Backup(a) => backup::backup(a),
        Command::Restore(a) => backup::restore(a),
        Command::Probe(a) => verify::probe(a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "vakt", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(a) => manual::run(a, <Cli as clap::CommandFactory>::command()),
    };
    crate::transport::ssh::remove_control_dir();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn,vakt_runtime=info",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAKT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .try_init();
}

/// Colour only for a person at a terminal: never in pipes or files (the local
/// cluster's `proxy.log` is the proxy's stderr), and never with `NO_COLOR`
/// set (<https://no-color.org>). tracing-subscriber colours by default even
/// when stderr is a file, so this has to be said explicitly.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// One word of a command line printed for the user to paste into a shell:
/// as it is when that is safe, single-quoted otherwise.
pub(crate) fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,%".contains(c));
    if plain {
        s.to_string()
    } else {
        crate::transport::sh(s)
    }
}

/// How to run this very binary in a printed next step: `vakt` when that is
/// what the shell finds on PATH, else its full path (after a quick start
/// with `cargo run`, `vakt` is not on PATH, and a printed `vakt down` would
/// fail as printed).
pub(crate) fn vakt_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "vakt".to_string();
    };
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("vakt"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_default();
    match on_path.and_then(|p| p.canonicalize().ok()) {
        Some(found) if found == me => "vakt".to_string(),
        _ => shell_word(&me.display().to_string()),
    }
}
