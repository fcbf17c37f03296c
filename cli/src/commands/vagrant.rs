//! `vakt vagrant` (write the Vagrantfile) and `vakt vagrant inventory`
//! (write the SSH overlay from `vagrant ssh-config`). Files that exist and
//! differ are kept as `FILE.bak` before they are replaced.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::render::Templates;
use crate::target;
use crate::vagrant;

/// Where `vakt vagrant inventory` looks for the Vagrantfile by default.
const DEFAULT_DIR: &str = "vagrant";

#[derive(Args)]
pub struct VagrantArgs {
    /// The inventory (default: inventory/vagrant.toml).
    #[arg(short, long, value_name = "FILE", global = true)]
    pub inventory: Option<PathBuf>,
    /// Where to write the Vagrantfile.
    #[arg(long, value_name = "FILE", default_value = "vagrant/Vagrantfile")]
    pub out: PathBuf,
    #[command(subcommand)]
    pub what: Option<VagrantCommand>,
}

#[derive(Subcommand)]
pub enum VagrantCommand {
    /// Turn `vagrant ssh-config` output into the inventory's SSH overlay.
    Inventory {
        /// `vagrant ssh-config` output to read (`-` = stdin; default: run
        /// `vagrant ssh-config` next to the Vagrantfile).
        #[arg(long, value_name = "FILE")]
        ssh_config: Option<PathBuf>,
        /// The Vagrantfile's folder, where `vagrant ssh-config` runs.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
        dir: PathBuf,
        /// Where to write the overlay (default: the inventory's first
        /// `overlays` entry).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Writes `text` to `path` unless it is already there; keeps a differing
/// previous file as `path.bak`. Says what happened.
pub fn write_keeping(path: &Path, text: &str) -> anyhow::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(old) if old == text => {
            eprintln!("{} is up to date", path.display());
            return Ok(());
        }
        Ok(_) => {
            let bak = PathBuf::from(format!("{}.bak", path.display()));
            std::fs::rename(path, &bak).with_context(|| {
                format!(
                    "keeping the previous {} as {}",
                    path.display(),
                    bak.display()
                )
            })?;
            eprintln!(
                "the previous {} is kept as {}",
                path.display(),
                bak.display()
            );
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// What to run after writing `vagrantfile`, from the current folder: the
/// VMs start in the Vagrantfile's folder, and `vakt vagrant inventory` is
/// told that folder (`--dir`) unless it is the default it looks in.
fn next_steps(vagrantfile: &Path, inventory: &Path) -> String {
    let dir = vagrantfile
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_word = super::shell_word(&dir.display().to_string());
    let inv = super::shell_word(&inventory.display().to_string());
    let dir_flag = if dir == Path::new(DEFAULT_DIR) {
        String::new()
    } else {
        format!(" --dir {dir_word}")
    };
    format!(
        "(cd {dir_word} && vagrant up) && vakt vagrant inventory -i {inv}{dir_flag} && vakt up -i {inv}"
    )
}

pub fn run(a: VagrantArgs) -> anyhow::Result<ExitCode> {
    let inv_path = a
        .inventory
        .clone()
        .unwrap_or_else(|| PathBuf::from("inventory/vagrant.toml"));
    let inv = target::inventory(Some(&inv_path))?;
    match a.what {
        None => {
            let (machines, warnings) = vagrant::machines(&inv).map_err(anyhow::Error::msg)?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let templates = Templates::with_overrides(inv.dir.as_deref())
                .context("reading templates/ next to the inventory")?;
            // The header names the inventory relative to the Vagrantfile's
            // folder's parent, as the README's commands use it.
            let text =
                vagrant::vagrantfile(&inv, &machines, &inv_path.display().to_string(), &templates)
                    .context("rendering Vagrantfile.j2")?;
            write_keeping(&a.out, &text)?;
            eprintln!("next: {}", next_steps(&a.out, &inv_path));
        }
        Some(VagrantCommand::Inventory {
            ssh_config,
            dir,
            out,
        }) => {
            let text = match ssh_config.as_deref() {
                Some(p) if p == Path::new("-") => {
                    std::io::read_to_string(std::io::stdin()).context("reading stdin")?
                }
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => {
                    let o = std::process::Command::new("vagrant")
                        .arg("ssh-config")
                        .current_dir(&dir)
                        .output()
                        .with_context(|| {
                            format!("running `vagrant ssh-config` in {}", dir.display())
                        })?;
                    if !o.status.success() {
                        bail!(
                            "`vagrant ssh-config` in {} failed: {}(are the VMs up? `vagrant up` there first)",
                            dir.display(),
                            String::from_utf8_lossy(&o.stderr)
                        );
                    }
                    String::from_utf8_lossy(&o.stdout).into_owned()
                }
            };
            let entries = vagrant::parse_ssh_config(&text)
                .map_err(|e| anyhow::anyhow!("`vagrant ssh-config` output: {e}"))?;
            let (overlay, warnings) =
                vagrant::overlay(&inv, &entries).map_err(anyhow::Error::msg)?;
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            let out = match out {
                Some(o) => o,
                None => {
                    let first = inv.overlays.first().with_context(|| {
                        format!(
                            "{} lists no `overlays`: add overlays = [\"vagrant-ssh.toml\"] to it, or pass --out",
                            inv.file
                        )
                    })?;
                    inv.dir
                        .as_deref()
                        .map_or(PathBuf::from(first), |d| d.join(first))
                }
            };
            write_keeping(&out, &overlay)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
