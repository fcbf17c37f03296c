//! `vakt man`: the manual pages, from clap's definition of the command line
//! (clap_mangen) plus the sections clap knows nothing of: EXIT STATUS,
//! ENVIRONMENT, FILES, EXAMPLES. `vakt man` prints vakt(1); `vakt man --out
//! DIR` writes it and one page per subcommand (vakt-check.1, vakt-lab-up.1,
//! …), which are exactly the pages vakt(1) and the others refer to.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

#[derive(clap::Args)]
pub struct ManArgs {
    /// Write vakt.1 and one page per subcommand (vakt-<command>.1) into DIR
    /// instead of printing vakt.1.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(super) fn run(args: ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    // Build once so every subcommand knows its full name (`vakt-lab-up`),
    // which is both its page's file name and how other pages cite it.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    match args.out {
        None => {
            let mut out = std::io::stdout().lock();
            render(&cmd, true, &mut out).context("writing the manual page to stdout")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| {
                format!("creating {}; check the path given to --out", dir.display())
            })?;
            for path in write_all(&cmd, &dir, true)? {
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` and of every visible subcommand below it.
fn write_all(cmd: &clap::Command, dir: &Path, top: bool) -> anyhow::Result<Vec<PathBuf>> {
    let man = Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("creating {}; check that --out is writable", path.display()))?;
    render(cmd, top, &mut file).with_context(|| format!("writing {}", path.display()))?;
    let mut written = vec![path];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written.extend(write_all(sub, dir, false)?);
    }
    Ok(written)
}

/// One page: clap's sections, then (for vakt(1)) vakt's own, then SEE ALSO.
fn render(cmd: &clap::Command, top: bool, w: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    let mut roff = Roff::default();
    if top {
        sections(&mut roff);
    }
    roff.control("SH", ["SEE ALSO"]);
    if top {
        roff.text([roman(
            "One page per command (vakt-check(1), vakt-up(1), ...): vakt man --out DIR writes them all. README.md and ARCHITECTURE.md in the source tree.",
        )]);
    } else {
        roff.text([bold("vakt"), roman("(1)")]);
    }
    roff.to_writer(w)?;
    if top {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// Paragraphs under `heading`: each item a tagged paragraph (`.TP`).
fn tagged(roff: &mut Roff, heading: &str, items: &[(&str, &str)]) {
    roff.control("SH", [heading]);
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text([bold(*tag)]);
        roff.text([roman(*text)]);
    }
}

fn sections(roff: &mut Roff) {
    tagged(
        roff,
        "EXIT STATUS",
        &[
            ("0", "Success."),
            (
                "1",
                "Failure: the inventory is invalid, a host failed, a check did not pass. The message names the place and the fix.",
            ),
            (
                "2",
                "Usage error (unknown flag, missing argument); also vakt plan when there are changes to apply.",
            ),
        ],
    );
    tagged(
        roff,
        "ENVIRONMENT",
        &[
            (
                "VAKT_STATS_PASSWORD",
                "The stats page password, when the inventory's [balancer] stats names no other password_env or password_file.",
            ),
            (
                "VAKT_DB_PASSWORD",
                "The database account's password for db = { engine = \"mariadb\" }, when the DB host's db names no other password_env or password_file.",
            ),
            (
                "VAKT_LOG",
                "Diagnostics filter for stderr (tracing's EnvFilter syntax, e.g. debug or vakt=info); overrides -v.",
            ),
            (
                "NO_COLOR",
                "When set, no colour or progress bars even on a terminal. Output to pipes and files never has colour.",
            ),
            (
                "VAKT_LAB_ROOTFS",
                "Where vakt lab keeps the Debian root filesystem for --systemd hosts (default /var/cache/vakt-lab/rootfs).",
            ),
            (
                "VAKT_LAB_MIRROR",
                "The Debian mirror debootstrap downloads that root filesystem from (default http://deb.debian.org/debian).",
            ),
        ],
    );
    tagged(
        roff,
        "FILES",
        &[
            (
                "inventory/local.toml",
                "The local demo cluster's inventory, embedded in the binary; used when -i is not given.",
            ),
            (
                "templates/",
                "Next to an inventory, overrides the embedded templates by file name.",
            ),
            (
                "~/.local/state/vakt/CLUSTER/",
                "Local hosts' files (127.0.0.0/8 addresses), one folder per cluster name ($XDG_STATE_HOME/vakt/CLUSTER when set); --state-dir moves it.",
            ),
            (
                "/etc/vakt/proxy.toml",
                "On a load balancer: the proxy's configuration.",
            ),
            (
                "/run/vakt/admin.sock",
                "On a load balancer: the proxy's admin socket (vakt proxy admin).",
            ),
            ("/var/log/vakt/", "On hosts: the services' logs."),
            (
                "/var/lib/vakt/lock/",
                "On the first load balancer: the deploy lock (vakt lock status), its holder in info.",
            ),
            (
                "/var/lib/vakt/history.jsonl",
                "On hosts: the append-only record of what changed them (vakt history).",
            ),
            (
                "/var/lib/vakt/releases/",
                "On hosts: the kept releases (vakt releases, vakt rollback --to/--steps), one folder per id with its files, binary and manifest.json; current names the one the host runs.",
            ),
            (
                "hooks/",
                "Next to an inventory: pre-up, post-up, pre-rolling-host, post-rolling-host executables, run here with VAKT_CLUSTER, VAKT_HOSTS, VAKT_OPERATOR, VAKT_VERSION (and VAKT_HOST).",
            ),
            (
                "/var/cache/vakt-lab/rootfs",
                "The systemd lab hosts' root filesystem (see VAKT_LAB_ROOTFS).",
            ),
        ],
    );
    tagged(
        roff,
        "EXAMPLES",
        &[
            (
                "vakt up",
                "Start the local demo cluster (load balancer, two web servers, a database) on 127.0.0.0/8.",
            ),
            (
                "vakt check -i inventory/oslo.toml",
                "Validate an inventory; every problem with file:line:column and a hint.",
            ),
            (
                "vakt plan -i inventory/oslo.toml",
                "Show what up would change, as diffs; exit 2 when something would.",
            ),
            (
                "vakt up -i inventory/oslo.toml",
                "Deploy the cluster the inventory describes, over SSH.",
            ),
            (
                "vakt rolling --exec 'dnf -y upgrade'",
                "Upgrade the web hosts one by one, each drained first.",
            ),
            (
                "vakt rollback --steps 3",
                "Bring every host back three kept releases, through the same rolling phase as up.",
            ),
            (
                "vakt remove --hosts web02 --yes",
                "Stop and remove everything vakt put on web02, keeping its history and logs.",
            ),
            (
                "vakt man --out /usr/local/share/man/man1",
                "Install every manual page.",
            ),
        ],
    );
}
