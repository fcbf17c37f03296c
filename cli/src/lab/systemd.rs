//! Lab hosts that boot systemd (`vakt lab up --systemd HOST --rootfs DIR`),
//! so that the systemd path of `up` (units, daemon-reload, enable, reload,
//! the distribution's keepalived unit) is rehearsed for real, not only the
//! SysV one. Such a host is a container of its own: a PID, mount, UTS and
//! cgroup namespace in the host's network namespace, whose root is an
//! overlay over a Debian root filesystem (`vakt lab rootfs DIR` builds one
//! with debootstrap), booted by its own `/lib/systemd/systemd` as PID 1.
//! Nothing of it touches this machine's files: systemd's boot-time clean-up
//! of `/tmp` and friends happens inside the overlay. Its cgroups live under
//! `vakt-lab-<lab>-<host>` in each hierarchy and go with `vakt lab down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::inventory::Host;
use crate::transport::sh as q;

/// What a root filesystem needs for a lab host: systemd as init, sshd, the
/// tools vakt runs on a host, keepalived for HA labs, and MariaDB for DB and
/// backup hosts (the lab has no route out, so `up` cannot download it
/// there): mariadb-server on a DB host, mariadb-client (`mariadb-dump`,
/// `mariadb`) on a backup host. The backup script's bash, gzip and
/// sha256sum (coreutils) are Essential, in every minbase.
pub const PACKAGES: &str = "systemd,systemd-sysv,dbus,openssh-server,iproute2,procps,keepalived,nftables,mariadb-server,mariadb-client";

/// Written last into a finished root filesystem.
const COMPLETE: &str = ".vakt-rootfs-complete";

/// Where the root filesystem is kept when neither `--rootfs`/`DIR` nor
/// `VAKT_LAB_ROOTFS` says otherwise.
pub const DEFAULT_ROOTFS: &str = "/var/cache/vakt-lab/rootfs";
/// The Debian mirror debootstrap downloads from unless `--mirror` or
/// `VAKT_LAB_MIRROR` names another (a local mirror or a caching proxy).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
pub const ROOTFS_ENV: &str = "VAKT_LAB_ROOTFS";
pub const MIRROR_ENV: &str = "VAKT_LAB_MIRROR";
/// What a finished bookworm root filesystem with `PACKAGES` takes on disk
/// (668 MB measured by `du -sh` when MariaDB joined the list; 345 MB
/// before), said before building one.
const ROOTFS_SIZE: &str = "about 670 MB";

/// Where the systemd lab hosts' root filesystem lives and where debootstrap
/// fetches it from: a flag wins, then the environment, then the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsSettings {
    pub dir: PathBuf,
    pub mirror: String,
}

impl RootfsSettings {
    /// Settings from flags (`None` when not given) and this process's
    /// environment; an empty variable counts as unset.
    pub fn new(dir: Option<PathBuf>, mirror: Option<String>) -> Self {
        Self::with_env(dir, mirror, |k| std::env::var(k).ok())
    }

    /// As [`new`](Self::new), with the environment given as a lookup.
    pub fn with_env(
        dir: Option<PathBuf>,
        mirror: Option<String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        RootfsSettings {
            dir: dir
                .or_else(|| env(ROOTFS_ENV).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTFS)),
            mirror: mirror
                .or_else(|| env(MIRROR_ENV))
                .unwrap_or_else(|| DEFAULT_MIRROR.to_string()),
        }
    }

    /// Whether a finished root filesystem is already there (nothing to
    /// download).
    pub fn is_built(&self) -> bool {
        std::fs::read_to_string(self.dir.join(COMPLETE)).is_ok_and(|marker| has_packages(&marker))
    }

    /// A finished root filesystem from an older `PACKAGES` list, which a
    /// build replaces.
    fn is_stale(&self) -> bool {
        self.dir.join(COMPLETE).exists() && !self.is_built()
    }

    /// The line said before a build: what is downloaded from where, and
    /// what it leaves behind.
    pub fn notice(&self, suite: &str) -> String {
        format!(
            "building a Debian {suite} root filesystem with debootstrap: downloading from {} into {} ({ROOTFS_SIZE} on disk, kept for later labs; set {ROOTFS_ENV} / {MIRROR_ENV} or --mirror to change)",
            self.mirror,
            self.dir.display()
        )
    }
}

/// Builds a root filesystem for systemd lab hosts with debootstrap, into a
/// folder of its own that is renamed into place once complete, so that a
/// half-built one is never used and two builders do not collide.
pub fn rootfs(settings: &RootfsSettings, suite: &str) -> anyhow::Result<()> {
    let (dir, mirror) = (settings.dir.as_path(), settings.mirror.as_str());
    super::require_root()?;
    if settings.is_built() {
        return Ok(());
    }
    if Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        bail!("debootstrap is not installed: apt-get install debootstrap");
    }
    let parent = dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    // One builder at a time per folder: the lab tests that boot systemd
    // hosts run at once and each asks for the root filesystem; without the
    // lock each downloads it, and two replacing a stale one would each move
    // the other's fresh one aside and delete it. The lock goes with the
    // file handle, also when this process dies.
    let lock_path = parent.join(format!(
        ".{}.lock",
        dir.file_name()
            .map_or("rootfs".into(), |n| n.to_string_lossy())
    ));
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    if settings.is_built() {
        return Ok(()); // built by the one that held the lock before us
    }
    let stale = settings.is_stale();
    if stale {
        eprintln!(
            "{} was built with fewer packages than {PACKAGES}: building it again",
            dir.display()
        );
    }
    if !stale && dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists and is not a finished root filesystem (no {COMPLETE}); remove it and run again",
            dir.display()
        );
    }
    let partial = parent.join(format!(
        ".{}.partial-{}",
        dir.file_name()
            .map_or("rootfs".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    eprintln!("{}", settings.notice(suite));
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={PACKAGES}"), suite])
        .arg(&partial)
        .arg(mirror)
        .status()
        .context("running debootstrap")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&partial);
        bail!("debootstrap {suite} failed (exit {status}); see its output above");
    }
    std::fs::write(
        partial.join(COMPLETE),
        format!("{suite} {mirror} {PACKAGES}\n"),
    )?;
    if stale {
        // Moved aside first, so the new one goes in with one rename.
        let old = parent.join(format!(".rootfs.stale-{}", std::process::id()));
        std::fs::rename(dir, &old)
            .with_context(|| format!("moving the old root filesystem {} aside", dir.display()))?;
        // Never into a mount a running lab may still have inside it.
        let _ = Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(&old)
            .status();
    }
    let _ = std::fs::remove_dir(dir); // an empty folder made beforehand
    if let Err(e) = std::fs::rename(&partial, dir) {
        let _ = std::fs::remove_dir_all(&partial);
        // Another builder finished first: theirs is as good as ours.
        if !dir.join(COMPLETE).exists() {
            return Err(e)
                .with_context(|| format!("moving the root filesystem to {}", dir.display()));
        }
    }
    Ok(())
}

/// Whether a root filesystem's marker (`SUITE MIRROR PACKAGES`) lists every
/// package of today's `PACKAGES`.
fn has_packages(marker: &str) -> bool {
    let built: Vec<&str> = marker
        .split_whitespace()
        .nth(2)
        .unwrap_or("")
        .split(',')
        .collect();
    PACKAGES.split(',').all(|p| built.contains(&p))
}

/// A root filesystem fit for `--systemd` hosts, or the command that makes one.
pub fn check_rootfs(rootfs: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(r) = rootfs else {
        bail!(
            "--systemd needs --rootfs DIR, a Debian root filesystem with systemd and sshd; build one with: vakt lab rootfs (into $VAKT_LAB_ROOTFS, default {DEFAULT_ROOTFS})"
        );
    };
    for need in [COMPLETE, "lib/systemd/systemd", "usr/sbin/sshd"] {
        if !r.join(need).exists() {
            bail!(
                "{} has no {need}: not a finished root filesystem for systemd lab hosts; build one with: vakt lab rootfs {}",
                r.display(),
                r.display()
            );
        }
    }
    r.canonicalize()
        .with_context(|| format!("resolving {}", r.display()))
}

/// The cgroup of a host's container, named after its network namespace.
fn cgroup_name(netns: &str) -> String {
    format!("vakt-lab-{netns}")
}

/// The cgroup hierarchies of this machine: the unified one alone, or the
/// v1 ones (with `unified` beside them on hybrid systems).
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.procs").exists() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the lab's SSH identity into the host's overlay and boots it.
pub fn boot(d: &Path, lab: &str, h: &Host, rootfs: &Path) -> anyhow::Result<()> {
    start(d, lab, h, rootfs).with_context(|| format!("{}: booting its systemd container", h.name))
}

fn start(d: &Path, lab: &str, h: &Host, rootfs: &Path) -> anyhow::Result<()> {
    let base = d.join("hosts").join(&h.name).join("systemd");
    let (upper, work, fs) = (base.join("upper"), base.join("work"), base.join("fs"));
    for p in [&upper, &work, &fs] {
        std::fs::create_dir_all(p)?;
    }
    let keys = d.join("keys");
    let put = |path: &str, content: &[u8], mode: u32| -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = upper.join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(&upper))?;
        std::fs::write(&p, content)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    put(
        "root/.ssh/authorized_keys",
        &std::fs::read(keys.join("id_ed25519.pub"))?,
        0o600,
    )?;
    put(
        "etc/ssh/vakt_lab_host_key",
        &std::fs::read(keys.join("host_ed25519"))?,
        0o600,
    )?;
    put(
        "etc/ssh/sshd_config.d/vakt-lab.conf",
        b"# written by vakt lab\nHostKey /etc/ssh/vakt_lab_host_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nMaxStartups 100\n",
        0o644,
    )?;
    put("etc/hostname", format!("{}\n", h.name).as_bytes(), 0o644)?;
    // What Debian's installer writes and debootstrap does not: without it
    // nothing resolves `localhost` or the host's own name, and
    // mariadb-install-db (vakt's MariaDB's first start) refuses to run.
    put(
        "etc/hosts",
        format!(
            "# written by vakt lab\n127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            h.name
        )
        .as_bytes(),
        0o644,
    )?;
    let target = upper.join("etc/systemd/system/default.target");
    std::fs::create_dir_all(upper.join("etc/systemd/system"))?;
    let _ = std::fs::remove_file(&target);
    std::os::unix::fs::symlink("/lib/systemd/system/multi-user.target", &target)?;

    // The container's cgroups: its own subtree in every hierarchy, which a
    // cgroup namespace makes its root.
    let cg = cgroup_name(&super::ns(lab, &h.name));
    let hier = hierarchies();
    let mut join = String::new();
    for hpath in &hier {
        let sub = hpath.join(&cg);
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        join.push_str(&format!(
            "echo $$ > {}; ",
            q(&sub.join("cgroup.procs").display().to_string())
        ));
    }
    // systemd in the container runs on the unified hierarchy whenever this
    // machine has one (alone, or beside v1 ones): there it learns reliably
    // when processes exit, also a main process that is not its child (the
    // proxy after a binary upgrade). On the legacy hierarchy in a container
    // it does not wait for them and kills at once.
    let cgroup_mounts = if hier.len() == 1 || hier.iter().any(|p| p.ends_with("unified")) {
        "mount -t cgroup2 cgroup2 \"$R/sys/fs/cgroup\"".to_string()
    } else {
        "mount -t tmpfs -o mode=755 tmpfs \"$R/sys/fs/cgroup\"; mkdir \"$R/sys/fs/cgroup/systemd\"; \
         mount -t cgroup -o none,name=systemd cgroup \"$R/sys/fs/cgroup/systemd\""
            .to_string()
    };
    let inner = format!(
        "set -e; R={fs}
mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} \"$R\"
mount -t proc proc \"$R/proc\"
mount -t sysfs -o ro sysfs \"$R/sys\"
{cgroup_mounts}
mount -t tmpfs -o mode=755 tmpfs \"$R/dev\"
for n in null zero full random urandom tty; do touch \"$R/dev/$n\"; mount --bind \"/dev/$n\" \"$R/dev/$n\"; done
mkdir \"$R/dev/pts\" \"$R/dev/shm\"
mount -t devpts -o newinstance,ptmxmode=0666 devpts \"$R/dev/pts\"
ln -s pts/ptmx \"$R/dev/ptmx\"
mount -t tmpfs tmpfs \"$R/dev/shm\"
mount -t tmpfs tmpfs \"$R/run\"
mount -t tmpfs tmpfs \"$R/tmp\"
hostname {name}
cd \"$R\"
exec chroot . /usr/bin/env container=vakt-lab /lib/systemd/systemd --system",
        fs = q(&fs.display().to_string()),
        lower = rootfs.display(),
        upper = upper.display(),
        work = work.display(),
        name = q(&h.name),
    );
    let outer = format!(
        "{join}exec nsenter --net={netns} unshare --cgroup --pid --fork --mount --uts --propagation private sh -c {inner}",
        netns = q(&format!("/run/netns/{}", super::ns(lab, &h.name))),
        inner = q(&inner),
    );
    let log = std::fs::File::create(base.join("boot.log"))?;
    let child = Command::new("sh")
        .args(["-c", &outer])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("booting {}", h.name))?;
    // `unshare --fork` keeps our pid; its child is the container's PID 1.
    let pid = child.id();
    let children = format!("/proc/{pid}/task/{pid}/children");
    let deadline = Instant::now() + Duration::from_secs(10);
    let init = loop {
        let c = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(first) = c.split_whitespace().next() {
            break first.to_string();
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(base.join("boot.log")).unwrap_or_default();
            bail!("{}: systemd did not start:\n{log}", h.name);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::write(d.join("hosts").join(&h.name).join("init.pid"), init)?;
    Ok(())
}

/// Removes the cgroups of systemd hosts in these network namespaces (after
/// their processes are gone; a cgroup with a process in it cannot be
/// removed). Hosts that never had one are skipped.
pub fn release_cgroups<'a>(netns: impl Iterator<Item = &'a String>) {
    let hier = hierarchies();
    let deadline = Instant::now() + Duration::from_secs(3);
    for n in netns {
        for hpath in &hier {
            let p = hpath.join(cgroup_name(n));
            while p.exists() && remove_tree(&p).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// rmdir of a cgroup tree, deepest first (cgroup files go with their dir).
fn remove_tree(p: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(p)?.flatten() {
        if e.file_type()?.is_dir() {
            remove_tree(&e.path())?;
        }
    }
    std::fs::remove_dir(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn rootfs_settings_default_to_the_cache_and_debians_mirror() {
        let s = RootfsSettings::with_env(None, None, env(&[]));
        assert_eq!(s.dir, Path::new("/var/cache/vakt-lab/rootfs"));
        assert_eq!(s.mirror, "http://deb.debian.org/debian");
    }

    #[test]
    fn rootfs_settings_come_from_the_environment_then_flags() {
        let vars = [
            ("VAKT_LAB_ROOTFS", "/srv/lab/rootfs"),
            ("VAKT_LAB_MIRROR", "http://mirror.local/debian"),
        ];
        let s = RootfsSettings::with_env(None, None, env(&vars));
        assert_eq!(s.dir, Path::new("/srv/lab/rootfs"));
        assert_eq!(s.mirror, "http://mirror.local/debian");
        let s = RootfsSettings::with_env(
            Some("/tmp/r".into()),
            Some("http://other/debian".into()),
            env(&vars),
        );
        assert_eq!(s.dir, Path::new("/tmp/r"));
        assert_eq!(s.mirror, "http://other/debian");
        // Empty counts as unset, as `VAKT_LAB_ROOTFS= cargo test` means.
        let s = RootfsSettings::with_env(None, None, env(&[("VAKT_LAB_ROOTFS", "")]));
        assert_eq!(s.dir, Path::new(DEFAULT_ROOTFS));
    }

    #[test]
    fn the_build_notice_names_the_mirror_the_folder_and_the_size() {
        let s = RootfsSettings::with_env(None, None, env(&[]));
        let n = s.notice("bookworm");
        assert!(n.contains("http://deb.debian.org/debian"), "{n}");
        assert!(n.contains("/var/cache/vakt-lab/rootfs"), "{n}");
        assert!(n.contains("670 MB"), "{n}");
        assert!(
            n.contains("VAKT_LAB_ROOTFS") && n.contains("VAKT_LAB_MIRROR"),
            "{n}"
        );
    }
}
