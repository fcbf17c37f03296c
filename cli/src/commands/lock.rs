//! `vakt lock status|acquire|release`: the deploy lock by hand (see
//! `lock.rs`): who holds it, take it for maintenance, or remove a dead
//! operation's lock.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::lock;
use crate::target::{self, TargetArgs};

#[derive(Args)]
pub struct LockCmdArgs {
    #[command(subcommand)]
    pub command: LockCommand,
}

#[derive(Subcommand)]
pub enum LockCommand {
    /// Who holds the deploy lock. Exit 0 unlocked, 1 locked.
    Status {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Take the deploy lock and keep it (until `vakt lock release`).
    Acquire {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        lock: lock::LockArgs,
    },
    /// Remove the deploy lock, whoever holds it.
    Release {
        #[command(flatten)]
        target: TargetArgs,
    },
}

pub fn run(a: LockCmdArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        LockCommand::Status { target } => {
            let t = target::open(&target)?;
            Ok(match lock::status(&t)? {
                Some(h) => {
                    println!("cluster `{}` is locked by {h}", t.inv.name);
                    ExitCode::from(1)
                }
                None => {
                    println!("cluster `{}` is not locked", t.inv.name);
                    ExitCode::SUCCESS
                }
            })
        }
        LockCommand::Acquire { target, lock } => {
            let t = target::open(&target)?;
            let guard = lock::take(&t, &lock, true)?;
            // Kept on purpose: this lock outlives the command.
            std::mem::forget(guard);
            println!(
                "cluster `{}` is locked; `vakt lock release` frees it",
                t.inv.name
            );
            Ok(ExitCode::SUCCESS)
        }
        LockCommand::Release { target } => {
            let t = target::open(&target)?;
            match lock::release(&t)? {
                Some(h) => println!("released the lock held by {h}"),
                None => println!("cluster `{}` was not locked", t.inv.name),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
