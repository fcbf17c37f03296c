//! What a deploy command works on: the validated inventory, the state
//! folder, one transport and render context per host, the stats secret and
//! the binary to push. Nothing touches a host before the whole inventory has
//! validated. Below `commands/`: the commands and the pipeline modules that
//! work on hosts (`ha`, `verify`, `audit`) import it, never the reverse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use sha2::Digest;

use crate::inventory::{self, Host, Inventory, Secret};
use crate::render::{HostContext, Templates};
use crate::selection::Selection;
use crate::topology::Service;
use crate::transport::Transport;
use crate::transport::local::Local;

#[derive(Args, Clone)]
pub struct TargetArgs {
    /// The inventory (default: the embedded local cluster, inventory/local.toml).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Where local hosts keep their files (default:
    /// $XDG_STATE_HOME/vakt/<cluster>, else ~/.local/state/vakt/<cluster>).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

pub struct HostTarget {
    pub host: Host,
    /// `None` for hosts only SSH can reach (rendering needs no transport).
    pub transport: Option<Box<dyn Transport>>,
    pub ctx: HostContext,
    pub services: Vec<Service>,
}

pub struct Target {
    pub inv: Inventory,
    pub state_dir: PathBuf,
    pub hosts: Vec<HostTarget>,
    pub templates: Templates,
    pub stats_password: Option<String>,
    /// Drives the SSH connections; declared last so it outlives them.
    _rt: Option<tokio::runtime::Runtime>,
}

/// Loads and validates the inventory; prints warnings; fails with every error.
pub fn inventory(path: Option<&Path>) -> anyhow::Result<Inventory> {
    match inventory::load(path) {
        Ok((inv, warnings)) => {
            for w in warnings.items {
                eprintln!("{w}");
            }
            Ok(inv)
        }
        Err(d) => {
            eprintln!("{d}");
            let n = d.errors().count();
            bail!(
                "{n} problem{} in the inventory; nothing was changed",
                if n == 1 { "" } else { "s" }
            )
        }
    }
}

/// The admin socket of a host: under its root, or a short path in /tmp when
/// that would pass the 108-byte limit of Unix socket paths.
pub fn admin_socket(root: &str) -> String {
    let p = format!("{root}/run/vakt/admin.sock");
    if p.len() < 100 {
        return p;
    }
    let h = hex::encode(&sha2::Sha256::digest(root.as_bytes())[..6]);
    format!("/tmp/vakt-{h}/admin.sock")
}

/// How a command treats the stats password.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// `up`: the password is needed; an all-local cluster gets one generated
    /// once and kept in the state folder.
    Create,
    /// `plan`: the password is needed to compare the LBs' config, but never
    /// created (a local cluster without a kept one was never brought up, so
    /// its config is new anyway).
    Require,
    /// Every other command: the password when it is known, else nothing
    /// (rendered files then carry [`PLACEHOLDER_HASH`]).
    IfKnown,
}

/// What the stats users line holds when no password is known (`render`,
/// `plan` before the first `up`). Not a sha-crypt hash, so the proxy's
/// config check refuses a file that carries it.
pub const PLACEHOLDER_HASH: &str =
    "PLACEHOLDER-not-a-hash:no-stats-password-was-known;vakt-up-writes-the-real-hash";

/// The stats password: `password_env`, `password_file`, or for an all-local
/// cluster the one kept in the state folder (with `Secrets::Create`,
/// generated once).
fn stats_password(
    inv: &Inventory,
    state_dir: &Path,
    secrets: Secrets,
) -> anyhow::Result<Option<String>> {
    let Some(stats) = &inv.balancer.stats else {
        return Ok(None);
    };
    match &stats.password {
        Secret::Env(var) => {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return Ok(Some(v));
            }
            let saved = state_dir.join("stats-password");
            if let Ok(v) = std::fs::read_to_string(&saved) {
                return Ok(Some(v.trim().to_string()));
            }
            let all_local = inv.hosts.iter().all(Host::is_local);
            match (secrets, all_local) {
                (Secrets::IfKnown, _) | (Secrets::Require, true) => return Ok(None),
                (Secrets::Require | Secrets::Create, false) => bail!(
                    "the stats password comes from ${var}, which is not set: export {var}=... and run again"
                ),
                (Secrets::Create, true) => {}
            }
            let pw = random_password(20);
            std::fs::create_dir_all(state_dir).with_context(|| {
                format!(
                    "creating the state folder {} (choose another with --state-dir)",
                    state_dir.display()
                )
            })?;
            write_private(&saved, &pw)
                .with_context(|| format!("keeping the stats password in {}", saved.display()))?;
            Ok(Some(pw))
        }
        Secret::File(p) => match std::fs::read_to_string(p) {
            Ok(v) => Ok(Some(v.trim().to_string())),
            Err(_) if secrets == Secrets::IfKnown => Ok(None),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "reading the stats password from {} (password_file in the inventory)",
                    p.display()
                )
            }),
        },
    }
}

/// The password of a MariaDB host's user (`db.password_env`, default
/// `VAKT_DB_PASSWORD`, or `db.password_file`): needed by `up` and `plan`
/// (the grants file carries it), else only when known.
fn db_password(
    host: &str,
    db: &crate::inventory::MariaDb,
    secrets: Secrets,
) -> anyhow::Result<Option<String>> {
    match &db.password {
        Secret::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ if secrets == Secrets::IfKnown => Ok(None),
            _ => bail!(
                "{host}: the database password comes from ${var}, which is not set: export {var}=... (or give db.password_file) and run again"
            ),
        },
        Secret::File(p) => match std::fs::read_to_string(p) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ if secrets == Secrets::IfKnown => Ok(None),
            Ok(_) => bail!(
                "{host}: the database password file {} is empty: write the password into it",
                p.display()
            ),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "{host}: reading the database password from {} (db.password_file in the inventory)",
                    p.display()
                )
            }),
        },
    }
}

/// With `[[backups]] kind = "mariadb-dump"`, the backup user's password:
/// kept in the state folder (0600), generated there once by `up`
/// (`Secrets::Create`), so no secret sits in the inventory. Every other
/// command reads it when it is there.
fn backup_password(
    inv: &Inventory,
    state_dir: &Path,
    secrets: Secrets,
) -> anyhow::Result<Option<String>> {
    if !inv.backups.iter().any(|b| b.dump.is_some()) {
        return Ok(None);
    }
    let path = state_dir.join("backup-password");
    match std::fs::read_to_string(&path) {
        Ok(v) if !v.trim().is_empty() => return Ok(Some(v.trim().to_string())),
        _ if secrets != Secrets::Create => return Ok(None),
        _ => {}
    }
    let pw = random_password(32);
    std::fs::create_dir_all(state_dir).with_context(|| {
        format!(
            "creating the state folder {} (choose another with --state-dir)",
            state_dir.display()
        )
    })?;
    write_private(&path, &pw)
        .with_context(|| format!("keeping the backup user's password in {}", path.display()))?;
    Ok(Some(pw))
}

/// With `[tls] acme`, the cluster's ACME account and certificate keys: kept
/// in the state folder (0600) and generated there once by `up`
/// (`Secrets::Create`). Every LB gets both, so any of them can renew and
/// all serve the same certificate. Other commands render without them when
/// none were made yet.
fn acme_keys(
    inv: &Inventory,
    state_dir: &Path,
    secrets: Secrets,
) -> anyhow::Result<Option<crate::render::AcmeKeys>> {
    if inv.tls.as_ref().is_none_or(|t| t.acme.is_none()) {
        return Ok(None);
    }
    let dir = state_dir.join("acme");
    let mut keys = Vec::new();
    for name in ["account.key", "cert.key"] {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(k) => keys.push(k),
            Err(_) if secrets != Secrets::Create => return Ok(None),
            Err(_) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let k = crate::acme::generate_key()?;
                write_private(&path, &k)
                    .with_context(|| format!("keeping the ACME key in {}", path.display()))?;
                keys.push(k);
            }
        }
    }
    let cert_key = keys.pop().unwrap_or_default();
    let account_key = keys.pop().unwrap_or_default();
    let thumbprint = crate::acme::thumbprint(&account_key)
        .with_context(|| format!("the ACME account key in {}", dir.display()))?;
    Ok(Some(crate::render::AcmeKeys {
        account_key,
        cert_key,
        thumbprint,
    }))
}

/// Where local hosts keep their files when `--state-dir` is not given: one
/// folder per cluster name in the user's state folder, whatever the working
/// directory or the inventory's path. Local hosts are processes bound to
/// this machine's loopback addresses, so their state is this machine's too:
/// two folders could never both run the cluster.
pub fn default_state_dir(cluster: &str) -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(p) => p,
        None => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/state"),
            None => bail!(
                "neither XDG_STATE_HOME nor HOME is set, so local hosts have no state folder: pass --state-dir DIR"
            ),
        },
    };
    Ok(base.join("vakt").join(cluster))
}

/// A password of `len` letters and digits (no look-alikes: 0/O, 1/l).
fn random_password(len: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// A deterministic `$6$` hash: the same password gives the same file, so a
/// second `up` changes nothing. The salt comes from the cluster, user and
/// password, so equal passwords in two clusters still hash differently.
pub fn stats_hash(inv: &Inventory, user: &str, pw: &str) -> String {
    let digest = sha2::Sha256::digest(format!("vakt:{}:{user}:{pw}", inv.name).as_bytes());
    const SALT: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let salt: String = digest
        .iter()
        .take(16)
        .map(|b| SALT[usize::from(*b) % 64] as char)
        .collect();
    vakt_runtime::auth::hash_password_with_salt(pw, &salt)
}

/// The binary `up` pushes (`explicit`, `[artifacts] binary`, or the running
/// one): its bytes, sha256, and whether it was chosen explicitly.
pub fn pushed_binary(
    explicit: Option<std::path::PathBuf>,
    t: &Target,
) -> anyhow::Result<(Vec<u8>, String, bool)> {
    let chosen = explicit.or_else(|| {
        t.inv
            .binary
            .as_ref()
            .map(|b| t.inv.dir.as_deref().map_or(b.clone(), |d| d.join(b)))
    });
    let explicit = chosen.is_some();
    let exe = match chosen {
        Some(p) => p,
        None => std::env::current_exe().context("finding the running vakt binary")?,
    };
    let bytes = std::fs::read(&exe)
        .with_context(|| format!("reading the vakt binary {}", exe.display()))?;
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    Ok((bytes, sha, explicit))
}

impl Target {
    /// Runs `f` for every host, `forks` hosts at a time, taking them in
    /// inventory order; the results come back in inventory order.
    pub fn each_host<R: Send>(
        &self,
        forks: usize,
        f: impl Fn(usize, &HostTarget) -> R + Sync,
    ) -> Vec<R> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<std::sync::Mutex<Option<R>>> = self
            .hosts
            .iter()
            .map(|_| std::sync::Mutex::new(None))
            .collect();
        std::thread::scope(|s| {
            for _ in 0..forks.clamp(1, self.hosts.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(h) = self.hosts.get(i) else { break };
                        let r = f(i, h);
                        *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
        slots
            .into_iter()
            .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }
}

impl HostTarget {
    /// The transport, or an error saying how this host would be reached.
    pub fn transport(&self) -> anyhow::Result<&dyn Transport> {
        match &self.transport {
            Some(t) => Ok(t.as_ref()),
            None => bail!(
                "{} has no connection (this command does not open any)",
                self.host.name
            ),
        }
    }
}

/// Opens the target for a command that changes hosts: every remote host
/// gets its SSH connection (in parallel) before anything else happens.
pub fn open(args: &TargetArgs) -> anyhow::Result<Target> {
    open_with(args, true, Secrets::IfKnown)
}

/// Opens the target; with `connect`, every remote host gets its SSH
/// connection. Only `Secrets::Create` writes anything on this machine (the
/// generated stats password); local hosts' folders appear when files are
/// put there.
pub fn open_with(args: &TargetArgs, connect: bool, secrets: Secrets) -> anyhow::Result<Target> {
    open_selected(args, connect, secrets, &Selection::default())
}

/// `open_with` for the hosts `select` picks only: the others are neither
/// connected to nor in `Target::hosts` (their names were checked first).
pub fn open_selected(
    args: &TargetArgs,
    connect: bool,
    secrets: Secrets,
    select: &Selection,
) -> anyhow::Result<Target> {
    let inv = inventory(args.inventory.as_deref())?;
    let picked = select.pick(&inv)?;
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => default_state_dir(&inv.name)?,
    };
    let state_dir = if state_dir.is_absolute() {
        state_dir
    } else {
        std::env::current_dir()?.join(state_dir)
    };
    let templates = Templates::with_overrides(inv.dir.as_deref())
        .context("reading templates/ next to the inventory")?;
    let stats_password = stats_password(&inv, &state_dir, secrets)?;
    let acme_keys = acme_keys(&inv, &state_dir, secrets)?;
    let backup_password = backup_password(&inv, &state_dir, secrets)?;
    // The DB host's grants carry its password, and so does each demo web
    // host's password file (the shop connects with it): read when any of
    // them is picked.
    let mut db_passwords = BTreeMap::new();
    let shop_picked = inv
        .hosts
        .iter()
        .any(|h| picked.contains(&h.name) && h.web.as_ref().is_some_and(|w| w.demo));
    for h in inv.hosts.iter() {
        if let Some(m) = &h.mariadb
            && (picked.contains(&h.name) || shop_picked)
        {
            db_passwords.insert(h.name.clone(), db_password(&h.name, m, secrets)?);
        }
    }
    let shop_db_password: Option<String> =
        crate::render::shop_db(&inv).and_then(|db| db_passwords.get(&db.name).cloned().flatten());
    let hash = match (&inv.balancer.stats, &stats_password) {
        (Some(s), Some(p)) => Some(stats_hash(&inv, &s.user, p)),
        (Some(_), None) => Some(PLACEHOLDER_HASH.to_string()),
        _ => None,
    };
    let remote = inv
        .hosts
        .iter()
        .any(|h| !h.is_local() && picked.contains(&h.name));
    let rt = (connect && remote)
        .then(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
        })
        .transpose()?;
    let lab = std::env::var_os("VAKT_LAB").map(PathBuf::from);
    let mut ssh: Vec<Option<Box<dyn Transport>>> = Vec::new();
    if let Some(rt) = &rt {
        let handle = rt.handle();
        let results: Vec<anyhow::Result<Option<Box<dyn Transport>>>> = std::thread::scope(|s| {
            let joins: Vec<_> = inv
                .hosts
                .iter()
                .map(|h| {
                    let lab = lab.as_deref();
                    let picked = &picked;
                    s.spawn(move || -> anyhow::Result<Option<Box<dyn Transport>>> {
                        if h.is_local() || !picked.contains(&h.name) {
                            return Ok(None);
                        }
                        Ok(Some(Box::new(crate::transport::ssh::Ssh::connect(
                            h, handle, lab,
                        )?)))
                    })
                })
                .collect();
            joins
                .into_iter()
                .map(|j| j.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(t) => ssh.push(t),
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    ssh.push(None);
                }
            }
        }
        if !errors.is_empty() {
            bail!("{}\nnothing was changed", errors.join("\n"));
        }
    }
    let hosts = inv
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| picked.contains(&h.name))
        .map(|(i, h)| {
            let transport: Option<Box<dyn Transport>> = if h.is_local() {
                Some(Box::new(Local::new(&h.name, state_dir.join(&h.name))))
            } else {
                ssh.get_mut(i).and_then(Option::take)
            };
            let root_s = transport
                .as_ref()
                .map(|t| t.root().to_string())
                .unwrap_or_default();
            HostTarget {
                ctx: HostContext {
                    admin_socket: admin_socket(&root_s),
                    root: root_s,
                    stats_hash: hash.clone(),
                    deploy_source: transport.as_ref().and_then(|t| t.source()),
                    acme: acme_keys.clone(),
                    db_password: if h.mariadb.is_some() {
                        db_passwords.get(&h.name).cloned().flatten()
                    } else {
                        shop_db_password.clone()
                    },
                    backup_password: backup_password.clone(),
                },
                services: crate::topology::services(&inv, h),
                host: h.clone(),
                transport,
            }
        })
        .collect();
    Ok(Target {
        inv,
        state_dir,
        hosts,
        templates,
        stats_password,
        _rt: rt,
    })
}
