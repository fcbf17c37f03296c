//! `vakt remove`: stops and removes everything vakt put on the selected
//! hosts (its services and their boot registration, the binary, init
//! scripts and units, configs, the keepalived files it rendered, its
//! nftables table, the release store), keeping the data (history, logs)
//! unless `--purge-data --confirm CLUSTER`. Without `--yes` it only says,
//! per host, what it would do.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::history;
use crate::render;
use crate::selection::Selection;
use crate::services;
use crate::target::{self, HostTarget, Target, TargetArgs};
use crate::transport::{Init, Transport, sh};

/// `vakt remove`'s flags.
#[derive(Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// Do it (without it: only show what would be stopped and removed).
    #[arg(long)]
    pub yes: bool,
    /// Remove the data too (history, logs): needs --confirm with the
    /// cluster's name.
    #[arg(long)]
    pub purge_data: bool,
    /// The cluster's name (`[cluster] name`), typed out to confirm --purge-data.
    #[arg(long, value_name = "CLUSTER")]
    pub confirm: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

/// Folders that are vakt's alone on a host.
const VAKT_DIRS: &[&str] = &["/etc/vakt", "/run/vakt", crate::releases::STORE];

/// The data vakt keeps unless `--purge-data`: what happened (history),
/// what the services said (logs) and vakt's MariaDB's databases.
const DATA: &[&str] = &[
    history::HISTORY_FILE,
    "/var/log/vakt",
    crate::render::MARIADB_DATADIR,
    crate::render::MARIADB_TMPDIR,
];

/// The boot registrations vakt made (`services::init_command`'s start):
/// its units and scripts, and the distribution's keepalived unit.
const UNITS: &[&str] = &[
    "vakt-proxy",
    "vakt-demo-web",
    "vakt-demo-db",
    "vakt-mariadb",
    "vakt-backup.timer",
    "vakt-firewall",
    "keepalived",
];
const SCRIPTS: &[&str] = &[
    "vakt-proxy",
    "vakt-demo-web",
    "vakt-demo-db",
    "vakt-mariadb",
    "vakt-backup",
    "vakt-firewall",
    "vakt-keepalived",
];

/// One host's part of `vakt remove`.
#[derive(Serialize, Default)]
struct Removal {
    host: String,
    /// Services running (that stop).
    stop: Vec<&'static str>,
    /// vakt's files and folders present on the host (that go).
    remove: Vec<String>,
    /// Its nftables table `inet vakt` is loaded (and is deleted).
    firewall_table: bool,
    /// Data present that stays (or, with --purge-data, goes).
    data: Vec<String>,
    purge: bool,
    done: bool,
    error: Option<String>,
}

/// Every path vakt may have put on `h`, rendered files first.
fn vakt_paths(t: &Target, h: &HostTarget) -> anyhow::Result<Vec<String>> {
    let mut paths: Vec<String> = render::render_host(&t.inv, &h.host, &h.ctx, &t.templates)?
        .into_iter()
        .map(|f| f.path)
        .collect();
    paths.push(services::BINARY_PATH.to_string());
    let mut all = Vec::new();
    for p in paths {
        // A file under a folder removed whole is said once, as the folder.
        if VAKT_DIRS.iter().any(|d| p.starts_with(&format!("{d}/"))) {
            continue;
        }
        all.push(format!("{p}.vakt-prev"));
        all.push(format!("{p}.vakt-tmp"));
        all.push(p);
    }
    all.extend(VAKT_DIRS.iter().map(|d| d.to_string()));
    Ok(all)
}

/// The paths of `candidates` present on the host, in one round trip.
fn present(tr: &dyn Transport, candidates: &[String]) -> anyhow::Result<Vec<String>> {
    let mut script = String::from("true; ");
    for p in candidates {
        let q = sh(&format!("{}{p}", tr.root()));
        script.push_str(&format!(
            "if [ -e {q} ] || [ -L {q} ]; then echo {}; fi; ",
            sh(p)
        ));
    }
    let out = tr.run(&script)?;
    Ok(out.stdout.lines().map(str::to_string).collect())
}

/// Whether the host has vakt's nftables table loaded. Only remote hosts:
/// a local host is this machine, whose rules vakt never touches.
fn has_table(tr: &dyn Transport) -> anyhow::Result<bool> {
    if !tr.root().is_empty() {
        return Ok(false);
    }
    Ok(tr
        .run("if command -v nft >/dev/null 2>&1 && nft list table inet vakt >/dev/null 2>&1; then exit 0; else exit 1; fi")?
        .ok())
}

fn survey(t: &Target, h: &HostTarget, purge: bool) -> anyhow::Result<Removal> {
    let tr = h.transport()?;
    let mut r = Removal {
        host: h.host.name.clone(),
        purge,
        ..Removal::default()
    };
    for &s in &h.services {
        if services::is_running(tr, s)
            .with_context(|| format!("{}: status of {}", h.host.name, s.name()))?
        {
            r.stop.push(s.name());
        }
    }
    r.remove = present(tr, &vakt_paths(t, h)?)?;
    r.firewall_table = has_table(tr)?;
    let data: Vec<String> = DATA.iter().map(|d| d.to_string()).collect();
    r.data = present(tr, &data)?;
    Ok(r)
}

/// Carries out `r` on the host: stop, unregister, unload, delete.
fn carry_out(h: &HostTarget, r: &Removal) -> anyhow::Result<()> {
    let tr = h.transport()?;
    services::stop_all(tr, &h.services)?;
    let real = tr.root().is_empty();
    let mut script = String::from("true; ");
    if real {
        if tr.init() == Init::Systemd {
            for u in UNITS {
                script.push_str(&format!(
                    "systemctl disable --quiet {u} >/dev/null 2>&1 || true; "
                ));
            }
        } else {
            for s in SCRIPTS {
                script.push_str(&format!(
                    "{{ update-rc.d -f {s} remove || chkconfig --del {s}; }} >/dev/null 2>&1 || true; "
                ));
            }
        }
    }
    if r.firewall_table {
        script.push_str("nft delete table inet vakt; ");
    }
    let mut gone: Vec<String> = r.remove.clone();
    if r.purge {
        gone.extend(r.data.iter().cloned());
    }
    for p in &gone {
        // A folder that is a mount point (as in `vakt lab`) stays, empty.
        let q = sh(&format!("{}{p}", tr.root()));
        script.push_str(&format!(
            "rm -rf {q} 2>/dev/null || [ -z \"$(ls -A {q} 2>/dev/null)\" ] || {{ echo {q}: could not be removed >&2; exit 1; }}; "
        ));
    }
    if real && tr.init() == Init::Systemd {
        script.push_str("systemctl daemon-reload; ");
    }
    let out = tr.run(&script)?;
    if !out.ok() {
        anyhow::bail!(
            "{}: removing vakt's files: {}",
            h.host.name,
            format!("{}{}", out.stdout, out.stderr).trim()
        );
    }
    Ok(())
}

fn print(r: &Removal, yes: bool) {
    let (will, did) = if yes { ("", "") } else { ("would ", "would ") };
    println!("{}:", r.host);
    if let Some(e) = &r.error {
        println!("  FAILED: {e}");
        return;
    }
    if !r.stop.is_empty() {
        println!("  {will}stop {}", r.stop.join(", "));
    }
    if r.firewall_table {
        println!("  {will}delete the nftables table inet vakt");
    }
    for p in &r.remove {
        println!("  {did}remove {p}");
    }
    if r.stop.is_empty() && r.remove.is_empty() && !r.firewall_table {
        println!("  nothing of vakt's here");
    }
    for p in &r.data {
        if r.purge {
            println!("  {did}purge {p} (data)");
        } else {
            println!("  keeps {p} (data; --purge-data removes it)");
        }
    }
}

/// `vakt remove`: the preview, or with `--yes` the removal, hosts in
/// parallel; the deploy lock is held throughout and, with `--purge-data`,
/// its folder (`/var/lib/vakt`) goes last, after the lock is released.
pub fn run(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    if a.purge_data && a.yes && a.confirm.as_deref() != Some(t.inv.name.as_str()) {
        anyhow::bail!(
            "--purge-data deletes the hosts' history and logs: confirm with --confirm {} (the cluster's name); nothing was changed",
            super::shell_word(&t.inv.name)
        );
    }
    let lock = a
        .yes
        .then(|| crate::lock::take(&t, &a.lock, false))
        .transpose()?;
    let only = a.select.pick(&t.inv)?;
    let results: Vec<Removal> = t
        .each_host(10, |_, h| {
            if !only.contains(&h.host.name) {
                return None;
            }
            let mut r = match survey(&t, h, a.purge_data) {
                Ok(r) => r,
                Err(e) => {
                    return Some(Removal {
                        host: h.host.name.clone(),
                        error: Some(format!("{e:#}")),
                        ..Removal::default()
                    });
                }
            };
            if a.yes {
                match carry_out(h, &r) {
                    Ok(()) => r.done = true,
                    Err(e) => r.error = Some(format!("{e:#}")),
                }
            }
            Some(r)
        })
        .into_iter()
        .flatten()
        .collect();
    if a.yes && !a.purge_data {
        history::record(
            &t,
            results
                .iter()
                .map(|r| {
                    let result = match &r.error {
                        Some(e) => format!("FAILED: {e}"),
                        None => "removed (data kept)".into(),
                    };
                    history::Entry::now(&t, &r.host, r.remove.clone(), result)
                })
                .collect(),
        );
    }
    drop(lock);
    if a.yes && a.purge_data {
        // The lock folder lived in /var/lib/vakt: now that it is released,
        // the folder itself goes on every purged host.
        for h in t.hosts.iter().filter(|h| only.contains(&h.host.name)) {
            if let Ok(tr) = h.transport() {
                let dir = sh(&format!("{}/var/lib/vakt", tr.root()));
                let _ = tr.run(&format!("rm -rf {dir}"));
            }
        }
    }
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&results)?),
        super::Format::Text => {
            for r in &results {
                print(r, a.yes);
            }
            if !a.yes {
                println!(
                    "nothing was changed (preview): run `vakt remove --yes` with the same flags to do it"
                );
            }
        }
    }
    Ok(if results.iter().any(|r| r.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Service;

    #[test]
    fn remove_unregisters_every_service_that_up_registers() {
        use Service::*;
        for s in [Proxy, DemoWeb, DemoDb, MariaDb, Keepalived, Backup] {
            // Exhaustive: a new service does not compile here until it is
            // listed above, and then fails below until remove knows it.
            match s {
                Proxy | DemoWeb | DemoDb | MariaDb | Keepalived | Backup => {}
            }
            assert!(
                UNITS.contains(&s.unit()),
                "{s:?}: {} not in UNITS",
                s.unit()
            );
            assert!(
                SCRIPTS.contains(&s.script()),
                "{s:?}: {} not in SCRIPTS",
                s.script()
            );
        }
    }
}
