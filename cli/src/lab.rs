//! `vakt lab`: a cluster rehearsal on one Linux machine. Each inventory host
//! becomes a network namespace with its addresses on `eth0` and a real sshd
//! running in a mount namespace of its own, where the paths vakt writes are
//! bind-mounted from a per-host folder. A control namespace `<lab>-ctl`
//! holds the bridge that joins them and has no default route: no packet of a
//! lab can leave the machine, and the root namespace is never touched.
//! Tools around the pipeline: nothing here is used by `up` itself, except
//! that inside a lab `up` finds the lab's SSH settings (`VAKT_LAB`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::inventory::{Host, Inventory};

mod systemd;
pub use systemd::{RootfsSettings, rootfs};

/// Paths vakt writes on a host, private to each lab host.
pub const PRIVATE_PATHS: &[&str] = &[
    "/etc/vakt",
    "/usr/local/bin",
    // The backup script (`[[backups]] kind = "mariadb-dump"`).
    "/usr/local/sbin",
    "/etc/init.d",
    "/etc/systemd/system",
    "/etc/keepalived",
    "/var/log/vakt",
    // logrotate's rules and cron entries (ACME renewal) vakt renders.
    "/etc/logrotate.d",
    "/etc/cron.d",
    // The deploy lock (lock.rs) on the first load balancer.
    "/var/lib/vakt",
    // Where inventory/oslo.toml's backup host keeps its dumps.
    "/var/backups",
    "/run/vakt",
    // Hidden so that lab hosts never look like systemd hosts, whatever
    // this machine runs: the lab exercises the SysV path for real.
    "/run/systemd",
    // Boot-time links that update-rc.d writes for SysV services.
    "/etc/rc0.d",
    "/etc/rc1.d",
    "/etc/rc2.d",
    "/etc/rc3.d",
    "/etc/rc4.d",
    "/etc/rc5.d",
    "/etc/rc6.d",
    "/etc/rcS.d",
    // A fresh root home, as on a new server: this machine's shell start-up
    // files (pyenv and the like cost ~70 ms per SSH command) stay out.
    "/root",
];

/// Where a lab keeps its state: short, so socket paths stay short.
pub fn dir(name: &str) -> PathBuf {
    PathBuf::from("/run/vakt-lab").join(name)
}

fn ns(lab: &str, host: &str) -> String {
    format!("{lab}-{host}")
}

fn sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    sh(Command::new("ip").args(args))
}

fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("`vakt lab` needs root (network and mount namespaces): run it with sudo");
    }
    Ok(())
}

/// The /24 networks the hosts' addresses live in, and a free address in
/// each for the control namespace (the highest unused, from .250 down).
fn networks(inv: &Inventory) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    let mut used: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut nets: BTreeSet<[u8; 3]> = BTreeSet::new();
    for h in &inv.hosts {
        for a in [Some(h.private_ip), h.public_ip].into_iter().flatten() {
            used.insert(a);
            let o = a.octets();
            nets.insert([o[0], o[1], o[2]]);
        }
    }
    if let Some(v) = inv.vip {
        used.insert(v);
    }
    nets.into_iter()
        .filter_map(|n| {
            (200..=254u8)
                .rev()
                .map(|last| Ipv4Addr::new(n[0], n[1], n[2], last))
                .find(|a| !used.contains(a))
                .map(|ctl| (Ipv4Addr::new(n[0], n[1], n[2], 0), ctl))
        })
        .collect()
}

/// Addresses of the machine's own interfaces: a lab must not reuse them.
fn own_addresses() -> anyhow::Result<Vec<Ipv4Addr>> {
    let out = ip(&["-o", "-4", "addr", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .collect())
}

/// Refuses an inventory a lab cannot hold: `--systemd` names a host it
/// does not have, a host uses one of this machine's addresses, or a host is
/// local.
fn check_fits(inv: &Inventory, systemd: &[String]) -> anyhow::Result<()> {
    for s in systemd {
        if !inv.hosts.iter().any(|h| &h.name == s) {
            bail!("--systemd {s}: no host `{s}` in {}", inv.file);
        }
    }
    let own = own_addresses()?;
    for h in &inv.hosts {
        for a in [Some(h.private_ip), h.public_ip].into_iter().flatten() {
            if own.contains(&a) {
                bail!(
                    "{} uses {a}, which is an address of this machine; a lab must not shadow it (use other addresses in the inventory)",
                    h.name
                );
            }
        }
        if h.is_local() {
            bail!(
                "{} is a local host ({}); labs are for inventories of real addresses",
                h.name,
                h.private_ip
            );
        }
    }
    Ok(())
}

/// Builds the lab. Hosts named in `systemd` boot systemd from `rootfs`
/// (see `systemd`); the others run sshd in a mount namespace of this
/// machine's filesystem.
pub fn up(
    inv: &Inventory,
    lab: &str,
    systemd: &[String],
    rootfs: Option<&Path>,
) -> anyhow::Result<()> {
    require_root()?;
    check_fits(inv, systemd)?;
    let rootfs = if systemd.is_empty() {
        None
    } else {
        Some(systemd::check_rootfs(rootfs)?)
    };
    // A lab of the same name from before (or a crash) goes first.
    down(lab, Some(inv))?;
    let d = dir(lab);
    let keys = d.join("keys");
    std::fs::create_dir_all(&keys)?;
    // Every namespace is recorded before it exists, so that `down` finds
    // them all even after a crash half-way.
    let record = |name: &str| -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("namespaces"))?;
        writeln!(f, "{name}")?;
        Ok(())
    };
    std::fs::create_dir_all("/run/sshd")?;
    sh(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("vakt-lab-{lab}"),
            "-f",
        ])
        .arg(keys.join("id_ed25519")))?;
    sh(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("vakt-lab-{lab}-host"),
            "-f",
        ])
        .arg(keys.join("host_ed25519")))?;
    std::fs::copy(keys.join("id_ed25519.pub"), keys.join("authorized_keys"))?;
    let host_pub = std::fs::read_to_string(keys.join("host_ed25519.pub"))?;
    let host_pub = host_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");

    // The control namespace and its bridge.
    let ctl = ns(lab, "ctl");
    record(&ctl)?;
    ip(&["netns", "add", &ctl])?;
    ip(&["-n", &ctl, "link", "set", "lo", "up"])?;
    ip(&["-n", &ctl, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &ctl, "link", "set", "br0", "up"])?;
    for (_, ctl_addr) in networks(inv) {
        ip(&[
            "-n",
            &ctl,
            "addr",
            "add",
            &format!("{ctl_addr}/24"),
            "dev",
            "br0",
        ])?;
    }
    // The operator has one address, as at home: traffic to the public
    // addresses leaves from the control namespace's private one too, so the
    // deploy's address as the hosts see it (SSH_CLIENT, the firewall's and
    // the stats page's default admin network) is the one they see on every
    // port.
    let nets = networks(inv);
    let private = inv.hosts.first().map(|h| h.private_ip.octets());
    if let Some((_, src)) = nets
        .iter()
        .find(|(n, _)| private.is_some_and(|p| n.octets()[..3] == p[..3]))
    {
        for (net, _) in nets.iter().filter(|(_, a)| a != src) {
            ip(&[
                "-n",
                &ctl,
                "route",
                "replace",
                &format!("{net}/24"),
                "dev",
                "br0",
                "src",
                &src.to_string(),
            ])?;
        }
    }

    let mut known = String::new();
    for (i, h) in inv.hosts.iter().enumerate() {
        let hns = ns(lab, &h.name);
        record(&hns)?;
        ip(&["netns", "add", &hns])?;
        ip(&["-n", &hns, "link", "set", "lo", "up"])?;
        let port = format!("vh{i}");
        ip(&[
            "link", "add", &port, "netns", &ctl, "type", "veth", "peer", "name", "eth0", "netns",
            &hns,
        ])?;
        ip(&["-n", &ctl, "link", "set", &port, "master", "br0", "up"])?;
        for a in [Some(h.private_ip), h.public_ip].into_iter().flatten() {
            ip(&["-n", &hns, "addr", "add", &format!("{a}/24"), "dev", "eth0"])?;
        }
        ip(&["-n", &hns, "link", "set", "eth0", "up"])?;
        match &rootfs {
            Some(r) if systemd.contains(&h.name) => systemd::boot(&d, lab, h, r)?,
            _ => start_sshd(&d, lab, h)?,
        }
        for a in [
            Some(h.private_ip.to_string()),
            h.public_ip.map(|p| p.to_string()),
            Some(h.name.clone()),
        ]
        .into_iter()
        .flatten()
        {
            known.push_str(&format!("{a} {host_pub}\n"));
        }
    }
    std::fs::write(keys.join("known_hosts"), known)?;
    let mut cfg = String::from("# written by vakt lab\n");
    for h in &inv.hosts {
        cfg.push_str(&format!("Host {}\n    HostName {}\n", h.name, h.private_ip));
    }
    cfg.push_str(&format!(
        "Host *\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n    ConnectTimeout 5\n",
        keys.join("id_ed25519").display(),
        keys.join("known_hosts").display()
    ));
    std::fs::write(d.join("ssh_config"), cfg)?;
    std::fs::write(d.join("inventory"), &inv.file)?;
    // Every sshd answers before we say the lab is up.
    for h in &inv.hosts {
        wait_ssh(&d, lab, h)?;
    }
    Ok(())
}

fn start_sshd(d: &Path, lab: &str, h: &Host) -> anyhow::Result<()> {
    let root = d.join("hosts").join(&h.name);
    let mut mounts = String::new();
    for p in PRIVATE_PATHS {
        let src = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(&src)?;
        std::fs::create_dir_all(p)?;
        mounts.push_str(&format!("mount --bind '{}' '{p}' && ", src.display()));
    }
    // System init scripts (keepalived's among them) stay visible.
    if let Ok(entries) = std::fs::read_dir("/etc/init.d") {
        for e in entries.flatten() {
            let to = root.join("etc/init.d").join(e.file_name());
            if !to.exists() && e.path().is_file() {
                let _ = std::fs::copy(e.path(), to);
            }
        }
    }
    let keys = d.join("keys");
    let config = root.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "# written by vakt lab\nListenAddress 0.0.0.0:22\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPrintMotd no\nMaxStartups 100\nSubsystem sftp internal-sftp\n",
            keys.join("host_ed25519").display(),
            root.join("sshd.pid").display(),
            keys.join("authorized_keys").display(),
        ),
    )?;
    let script = format!(
        "{mounts}exec /usr/sbin/sshd -D -e -f '{}'",
        config.display()
    );
    let log = std::fs::File::create(root.join("sshd.log"))?;
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns(lab, &h.name),
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting sshd for {}", h.name))?;
    Ok(())
}

fn wait_ssh(d: &Path, lab: &str, h: &Host) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = Command::new("ip")
            .args(["netns", "exec", &ns(lab, "ctl"), "ssh", "-F"])
            .arg(d.join("ssh_config"))
            .args([&h.name, "true"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(d.join("hosts").join(&h.name).join("sshd.log"))
                .unwrap_or_default();
            bail!("sshd of {} does not answer over SSH:\n{log}", h.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the lab: processes in its namespaces, the namespaces, its folder.
/// Safe to run twice, and after a crash.
pub fn down(lab: &str, inv: Option<&Inventory>) -> anyhow::Result<()> {
    require_root()?;
    let d = dir(lab);
    let mut names: BTreeSet<String> = std::fs::read_to_string(d.join("namespaces"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    names.extend(
        inv.into_iter()
            .flat_map(|i| i.hosts.iter().map(|h| ns(lab, &h.name))),
    );
    names.insert(ns(lab, "ctl"));
    let existing = ip(&["netns", "list"]).unwrap_or_default();
    for n in &names {
        if !existing
            .lines()
            .any(|l| l.split_whitespace().next() == Some(n.as_str()))
        {
            continue;
        }
        for _ in 0..3 {
            let pids = ip(&["netns", "pids", n]).unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for p in pids.split_whitespace() {
                // A process may exit meanwhile: nothing to say then.
                let _ = Command::new("kill")
                    .args(["-KILL", p])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = ip(&["netns", "del", n]);
    }
    systemd::release_cgroups(names.iter());
    if d.exists() {
        std::fs::remove_dir_all(&d).with_context(|| format!("removing {}", d.display()))?;
    }
    Ok(())
}

/// Runs a command inside the lab: in the control namespace (`ctl`, with
/// `VAKT_LAB` set so vakt finds the lab's SSH settings), or inside a host's
/// network and mount namespaces.
pub fn exec(lab: &str, host: &str, cmd: &[String]) -> anyhow::Result<i32> {
    require_root()?;
    if cmd.is_empty() {
        bail!("nothing to run: vakt lab exec {host} -- COMMAND...");
    }
    let d = dir(lab);
    if !d.exists() {
        bail!("no lab `{lab}` is up (vakt lab up -i INVENTORY)");
    }
    let status = if host == "ctl" {
        Command::new("ip")
            .args(["netns", "exec", &ns(lab, "ctl"), "env"])
            .arg(format!("VAKT_LAB={}", d.display()))
            .args(cmd)
            .status()?
    } else if let Ok(pid) = std::fs::read_to_string(d.join("hosts").join(host).join("init.pid")) {
        // A systemd host: all of its namespaces, its root and its PID 1's view.
        Command::new("nsenter")
            .args([
                "-t",
                pid.trim(),
                "-m",
                "-u",
                "-n",
                "-p",
                "-C",
                "-r",
                "-w",
                "--",
            ])
            .args(cmd)
            .status()?
    } else {
        let pid = std::fs::read_to_string(d.join("hosts").join(host).join("sshd.pid"))
            .with_context(|| format!("no host `{host}` in lab `{lab}`"))?;
        Command::new("nsenter")
            .args(["-t", pid.trim(), "-m", "-n", "--"])
            .args(cmd)
            .status()?
    };
    Ok(status.code().unwrap_or(1))
}
