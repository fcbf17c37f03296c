//! `vakt lab up|down|exec`: the namespace lab (see `crate::lab`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::lab::RootfsSettings;

/// The lab's name when `--name` is not given.
const DEFAULT_NAME: &str = "vakt";

#[derive(Args)]
pub struct LabArgs {
    /// The lab's name (namespaces are called NAME-HOST and NAME-ctl).
    #[arg(long, default_value = DEFAULT_NAME, global = true)]
    name: String,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Subcommand)]
enum LabCommand {
    /// Build the lab from an inventory: one namespace, address and sshd per host.
    Up {
        #[arg(short, long, value_name = "FILE")]
        inventory: PathBuf,
        /// These hosts boot systemd from --rootfs (a container each) instead
        /// of running sshd on this machine's filesystem: the systemd path.
        #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
        systemd: Vec<String>,
        /// A Debian root filesystem with systemd and sshd (`vakt lab rootfs`;
        /// default: $VAKT_LAB_ROOTFS, else /var/cache/vakt-lab/rootfs).
        #[arg(long, value_name = "DIR")]
        rootfs: Option<PathBuf>,
    },
    /// Build a root filesystem for --systemd hosts with debootstrap: downloads
    /// from a Debian mirror, leaves about 670 MB, kept for later labs.
    Rootfs {
        /// Where to build it (default: $VAKT_LAB_ROOTFS, else /var/cache/vakt-lab/rootfs).
        dir: Option<PathBuf>,
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// The Debian mirror (default: $VAKT_LAB_MIRROR, else http://deb.debian.org/debian).
        #[arg(long, value_name = "URL")]
        mirror: Option<String>,
    },
    /// Remove the lab (safe to run twice, and after a crash).
    Down {
        #[arg(short, long, value_name = "FILE")]
        inventory: Option<PathBuf>,
    },
    /// Run a command in a host (or `ctl`, the control namespace).
    Exec {
        host: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub fn run(a: LabArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        LabCommand::Up {
            inventory,
            systemd,
            rootfs,
        } => {
            let inv = crate::target::inventory(Some(&inventory))?;
            let rootfs = (!systemd.is_empty()).then(|| RootfsSettings::new(rootfs, None).dir);
            crate::lab::up(&inv, &a.name, &systemd, rootfs.as_deref())?;
            println!(
                "lab `{}` is up: {} hosts; control namespace {}-ctl",
                a.name,
                inv.hosts.len(),
                a.name
            );
            println!("deploy with: {}", deploy_command(&a.name, &inventory));
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Rootfs { dir, suite, mirror } => {
            let settings = RootfsSettings::new(dir, mirror);
            crate::lab::rootfs(&settings, &suite)?;
            let dir = super::shell_word(&settings.dir.display().to_string());
            println!(
                "{dir} holds a {suite} root filesystem for `vakt lab up --systemd HOST --rootfs {dir}`"
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down { inventory } => {
            let inv = inventory
                .map(|p| crate::target::inventory(Some(&p)))
                .transpose()?;
            crate::lab::down(&a.name, inv.as_ref())?;
            println!("lab `{}` is down", a.name);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Exec { host, command } => {
            let code = crate::lab::exec(&a.name, &host, &command)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}

/// The command that deploys into the lab `name` from its control namespace,
/// as it can be pasted: it names the lab unless it is the default one.
fn deploy_command(name: &str, inventory: &Path) -> String {
    let lab = if name == DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {}", super::shell_word(name))
    };
    format!(
        "vakt lab{lab} exec ctl -- vakt up -i {}",
        super::shell_word(&inventory.display().to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deploy_command_names_a_lab_that_is_not_the_default() {
        let inv = Path::new("inventory/oslo.toml");
        assert_eq!(
            deploy_command("x", inv),
            "vakt lab --name x exec ctl -- vakt up -i inventory/oslo.toml"
        );
        assert_eq!(
            deploy_command(DEFAULT_NAME, inv),
            "vakt lab exec ctl -- vakt up -i inventory/oslo.toml"
        );
        assert_eq!(
            deploy_command("x", Path::new("my inv.toml")),
            "vakt lab --name x exec ctl -- vakt up -i 'my inv.toml'"
        );
    }

    #[test]
    fn the_printed_deploy_command_parses_with_the_lab_name() {
        use clap::Parser;
        let line = deploy_command("x", Path::new("inventory/oslo.toml"));
        let words: Vec<&str> = line.split(' ').collect();
        let cli = crate::commands::Cli::try_parse_from(&words).unwrap();
        let crate::commands::Command::Lab(lab) = cli.command else {
            panic!("not a lab command: {line}");
        };
        assert_eq!(lab.name, "x");
        assert!(matches!(lab.command, LabCommand::Exec { ref host, .. } if host == "ctl"));
    }
}
