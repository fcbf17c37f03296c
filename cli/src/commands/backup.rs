//! `vakt backup` and `vakt restore`: a dump now, the proof that the newest
//! dump restores (`--check`), and a real restore (`--yes`), each run on the
//! backup host by its rendered script (`backup.rs`), so the data goes from
//! host to host over the private network. Here: flags, which hosts to
//! open, what to print.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::backup::{self, Restored};
use crate::selection::Selection;
use crate::target::{self, Secrets, TargetArgs};

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Only this `[[backups]]` target (default: every mariadb-dump target).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// The `[[backups]]` target to restore from (needed when there are several).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Restore the newest dump into a scratch database on the DB host, count
    /// each table's rows and drop it: the proof the backup works.
    #[arg(long, conflicts_with = "yes")]
    pub check: bool,
    /// Restore the newest dump into the shop's database for real (its tables
    /// are replaced by the dump's).
    #[arg(long)]
    pub yes: bool,
}

/// Opens only `names` (the backup and DB hosts of the targets).
fn open(args: &TargetArgs, names: Vec<String>) -> anyhow::Result<target::Target> {
    let select = Selection {
        hosts: names,
        roles: Vec::new(),
    };
    target::open_selected(args, true, Secrets::IfKnown, &select)
}

pub fn backup(a: BackupArgs) -> anyhow::Result<ExitCode> {
    let inv = target::inventory(a.target.inventory.as_deref())?;
    let chosen = backup::targets(&inv, a.name.as_deref())?;
    let names: Vec<String> = chosen
        .iter()
        .filter_map(|b| b.dump.as_ref().map(|d| d.host.clone()))
        .collect();
    let t = open(&a.target, names)?;
    let mut failed = false;
    for b in backup::targets(&t.inv, a.name.as_deref())? {
        let Some((_, host, db)) = backup::hosts_of(&t.inv, b) else {
            continue;
        };
        let tr = t
            .hosts
            .iter()
            .find(|h| h.host.name == host.name)
            .with_context(|| format!("{} was not opened", host.name))?
            .transport()?;
        match backup::run(tr) {
            Ok(d) => println!(
                "{}: {} dumped {} to {}:{} ({} bytes, sha256 {})",
                b.name, host.name, db.name, host.name, d.file, d.size, d.sha256
            ),
            Err(e) => {
                eprintln!("{}: {e}", b.name);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_tables(r: &Restored) {
    for (table, rows) in &r.tables {
        println!(
            "  {table}: {rows} {}",
            if *rows == 1 { "row" } else { "rows" }
        );
    }
    if r.tables.is_empty() {
        println!("  (no tables)");
    }
}

pub fn restore(a: RestoreArgs) -> anyhow::Result<ExitCode> {
    let inv = target::inventory(a.target.inventory.as_deref())?;
    let chosen = backup::targets(&inv, a.name.as_deref())?;
    let b = match chosen.as_slice() {
        [one] => *one,
        many => bail!(
            "{} has several dump targets ({}): say which with --name",
            inv.file,
            many.iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let Some((dump, host, db)) = backup::hosts_of(&inv, b) else {
        bail!("backup {} is not a dump target", b.name);
    };
    let database = db
        .mariadb
        .as_ref()
        .map_or("shop", |m| m.database.as_str())
        .to_string();
    if !a.check && !a.yes {
        println!(
            "vakt restore would replace the tables of `{database}` on {} with those of the newest dump of `{}` in {}:{} (tables the dump lacks stay; checksum verified first).",
            db.name, b.name, host.name, dump.path
        );
        println!(
            "Run `vakt restore --check` to prove the dump restores (into a scratch database), or `vakt restore --yes` to restore for real."
        );
        return Ok(ExitCode::from(2));
    }
    if a.check {
        let t = open(&a.target, vec![host.name.clone()])?;
        let tr = t
            .hosts
            .first()
            .context("the backup host was not opened")?
            .transport()?;
        let r = backup::check(tr)?;
        println!(
            "{}: {} restored {} into the scratch database `{}` on {}:",
            b.name,
            host.name,
            r.file,
            crate::render::SCRATCH_DB,
            db.name
        );
        print_tables(&r);
        println!(
            "dropped `{}`: the backup restores",
            crate::render::SCRATCH_DB
        );
        return Ok(ExitCode::SUCCESS);
    }
    // A real restore: no `up` may re-apply the grants halfway through.
    let t = target::open_with(&a.target, true, Secrets::IfKnown)?;
    let _lock = crate::lock::take(&t, &a.lock, false)?;
    let find = |n: &str| -> anyhow::Result<&dyn crate::transport::Transport> {
        t.hosts
            .iter()
            .find(|h| h.host.name == n)
            .with_context(|| format!("{n} was not opened"))?
            .transport()
    };
    let r = backup::restore(find(&db.name)?, find(&host.name)?)?;
    println!(
        "{}: {} restored {} into `{database}` on {}:",
        b.name, host.name, r.file, db.name
    );
    print_tables(&r);
    Ok(ExitCode::SUCCESS)
}
