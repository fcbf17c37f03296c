//! `vakt acme renew|placeholder`: the ACME client on a load balancer (see
//! `acme.rs`), run by the timer `vakt up` installs there and by `up` itself
//! for the first certificate. Operators rarely type it; `--force` orders now.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::acme;

/// Where `up` writes the ACME settings on every LB.
pub const CONFIG: &str = "/etc/vakt/acme.toml";

#[derive(Args)]
pub struct AcmeArgs {
    #[command(subcommand)]
    pub command: AcmeCommand,
}

#[derive(Subcommand)]
pub enum AcmeCommand {
    /// Take a newer certificate from another LB, or order one when due.
    ///
    /// Due: less than a third of its lifetime left (a sixth on LBs after the
    /// first), a placeholder, or a domain it does not name. Writes only the
    /// PEM file (0600, atomically), which the proxy picks up. Exit 0, 1 failed.
    Renew {
        #[arg(long, default_value = CONFIG)]
        config: PathBuf,
        /// Order now, due or not.
        #[arg(long)]
        force: bool,
    },
    /// Write a self-signed certificate when the PEM file is missing, so the
    /// proxy's TLS listener can start before the first order. Exit 0, 1 failed.
    Placeholder {
        #[arg(long, default_value = CONFIG)]
        config: PathBuf,
    },
}

pub fn run(a: AcmeArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        AcmeCommand::Renew { config, force } => {
            let cfg = acme::Config::read(&config)?;
            let outcome = acme::renew(&cfg, force)?;
            println!("acme: {outcome}");
        }
        AcmeCommand::Placeholder { config } => {
            let cfg = acme::Config::read(&config)?;
            if acme::placeholder(&cfg)? {
                println!(
                    "acme: wrote a placeholder certificate to {} until the first order",
                    cfg.pem.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
