//! `vakt init`: writes an annotated inventory to start from (every table,
//! commented, documentation-range addresses), one load balancer or, with
//! `--ha`, two and a VIP. The texts are `init/single.toml` and
//! `init/ha.toml`; both pass `vakt check` as written (tests/it/cli/init.rs).
//! Never overwrites a file unless `--force`, and then keeps it as FILE.bak.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

const SINGLE: &str = include_str!("init/single.toml");
const HA: &str = include_str!("init/ha.toml");

/// `vakt init`'s flags.
#[derive(Args)]
pub struct InitArgs {
    /// Two load balancers sharing a VIP through keepalived.
    #[arg(long)]
    pub ha: bool,
    /// Where to write the inventory.
    #[arg(long, short, value_name = "FILE", default_value = "inventory.toml")]
    pub out: PathBuf,
    /// Replace an existing FILE (the old one is kept as FILE.bak).
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: InitArgs) -> anyhow::Result<ExitCode> {
    let text = if a.ha { HA } else { SINGLE };
    if a.out.exists() && !a.force {
        bail!(
            "{} already exists and was left as it is: choose another --out FILE, or pass --force to replace it (the old one is kept as {}.bak)",
            a.out.display(),
            a.out.display()
        );
    }
    // Keeps a differing previous file as FILE.bak, as `vakt vagrant` does.
    super::vagrant::write_keeping(&a.out, text)?;
    let path = super::shell_word(&a.out.display().to_string());
    println!(
        "{}: replace its example addresses with your hosts', then\n  {vakt} check -i {path}\n  export VAKT_STATS_PASSWORD=...   # the stats page's password\n  export VAKT_DB_PASSWORD=...      # the shop's MariaDB account\n  {vakt} plan -i {path}\n  {vakt} up -i {path}",
        a.out.display(),
        vakt = super::vakt_command(),
    );
    Ok(ExitCode::SUCCESS)
}
