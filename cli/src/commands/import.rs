//! `vakt import haproxy.cfg`: prints the equivalent proxy TOML (or, with
//! `--inventory-fragment`, the `[balancer]` table of an inventory), with a
//! comment for every keyword that was modernised on the way. The runtime
//! reads haproxy.cfg and writes proxy TOML; the inventory fragment, being the
//! CLI's format, is written by [`fragment`].

mod fragment;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct ImportArgs {
    /// The haproxy.cfg to translate.
    file: PathBuf,
    /// Print the `[balancer]` part of an inventory instead of a proxy config.
    #[arg(long)]
    inventory_fragment: bool,
}

pub fn run(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let (config, notes) = match vakt_runtime::config::load_haproxy(&a.file) {
        Ok(x) => x,
        Err(d) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(1));
        }
    };
    let body = if a.inventory_fragment {
        fragment::to_inventory_fragment(&config)
    } else {
        vakt_runtime::config::to_toml(&config, &|pw| vakt_runtime::auth::hash_password(pw))
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", a.file.display()))?;
    println!("# Imported from {} by `vakt import`.", a.file.display());
    for n in notes.items {
        println!("# {}:{}: {}", n.line, n.column, n.message);
        if let Some(h) = n.hint {
            println!("#   {h}");
        }
    }
    if !a.inventory_fragment {
        println!("# Plain-text stats passwords, if any, were replaced by $6$ hashes.");
    }
    print!("{body}");
    Ok(ExitCode::SUCCESS)
}
