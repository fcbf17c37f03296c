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
        LabCommand::Up { inventory } => {
            let inv = super::target::inventory(Some(&inventory))?;
            crate::lab::up(&inv, &a.name)?;
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
