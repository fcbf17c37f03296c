//! `vakt lab up|down|exec`: the namespace lab (see `crate::lab`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct LabArgs {
    /// The lab's name (namespaces are called NAME-HOST and NAME-ctl).
    #[arg(long, default_value = "vakt", global = true)]
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
        /// A Debian root filesystem with systemd and sshd (`vakt lab rootfs`).
        #[arg(long, value_name = "DIR")]
        rootfs: Option<PathBuf>,
    },
    /// Build a root filesystem for --systemd hosts with debootstrap
    /// (needs the Debian mirror; kept for later labs).
    Rootfs {
        dir: PathBuf,
        #[arg(long, default_value = "bookworm")]
        suite: String,
        #[arg(long, default_value = "http://deb.debian.org/debian")]
        mirror: String,
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
            let inv = super::target::inventory(Some(&inventory))?;
            crate::lab::up(&inv, &a.name, &systemd, rootfs.as_deref())?;
            println!(
                "lab `{}` is up: {} hosts; control namespace {}-ctl",
                a.name,
                inv.hosts.len(),
                a.name
            );
            println!(
                "deploy with: vakt lab exec ctl -- vakt up -i {}",
                inventory.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Rootfs { dir, suite, mirror } => {
            crate::lab::rootfs(&dir, &suite, &mirror)?;
            println!(
                "{} holds a {suite} root filesystem for `vakt lab up --systemd HOST --rootfs {}`",
                dir.display(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Down { inventory } => {
            let inv = inventory
                .map(|p| super::target::inventory(Some(&p)))
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
