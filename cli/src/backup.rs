//! Backups vakt makes (`[[backups]] kind = "mariadb-dump"`), driven on the
//! hosts through their transport: the backup host's rendered
//! `vakt-backup` script dumps, lists, checks and restores, so the data
//! crosses the private network from the DB host to the backup host (and
//! back for a restore) and never passes this machine. Here: running its
//! verbs and reading what they print (`Dumped`, `Restored`); lending the
//! backup user the rights a real restore needs on the DB host, and taking
//! them back. Rendering the script is `render`'s; the commands print.

use crate::inventory::{Backup, Dump, Host, Inventory};
use crate::render::{BACKUP_SCRIPT, MARIADB_CNF, MARIADB_RESTORE};
use crate::topology::Service;
use crate::transport::{Transport, sh};

/// Why a backup step failed, with the host and what the step printed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{host}: {step}: {source}")]
    Io {
        host: String,
        step: String,
        source: std::io::Error,
    },
    #[error("{host}: {step} failed (exit {status}): {output}")]
    Failed {
        host: String,
        step: String,
        status: i32,
        output: String,
    },
    #[error("{host}: {step}: unexpected output: {output}")]
    Unexpected {
        host: String,
        step: String,
        output: String,
    },
}

/// One dump on the backup host, as `vakt-backup run` or `latest` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dumped {
    /// Its path on the backup host.
    pub file: String,
    pub size: u64,
    /// Modification time, seconds since the epoch (the host's clock).
    pub mtime: i64,
    pub sha256: String,
    /// The host's clock when it answered, to age the dump by.
    pub now: i64,
}

impl Dumped {
    /// Parses `file=PATH size=N mtime=T sha256=HEX now=T` (the path has no
    /// spaces: the inventory's path and the dump's name are plain).
    pub fn parse(line: &str) -> Option<Dumped> {
        let get = |key: &str| -> Option<String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Dumped {
            file: get("file")?,
            size: get("size")?.parse().ok()?,
            mtime: get("mtime")?.parse().ok()?,
            sha256: get("sha256")?,
            now: get("now")?.parse().ok()?,
        })
    }

    /// How old the dump is, by the host's own clock.
    pub fn age_secs(&self) -> i64 {
        (self.now - self.mtime).max(0)
    }
}

/// What a restore did: the dump it read and each table's rows afterwards.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Restored {
    pub file: String,
    pub tables: Vec<(String, u64)>,
}

impl Restored {
    /// Parses `restored=PATH` and `table=NAME rows=N` lines.
    pub fn parse(out: &str) -> Option<Restored> {
        let mut file = None;
        let mut tables = Vec::new();
        for l in out.lines() {
            if let Some(f) = l.strip_prefix("restored=") {
                file = Some(f.trim().to_string());
            } else if let Some(rest) = l.strip_prefix("table=") {
                let (name, rows) = rest.rsplit_once(" rows=")?;
                tables.push((name.to_string(), rows.trim().parse().ok()?));
            }
        }
        Some(Restored {
            file: file?,
            tables,
        })
    }
}

/// The dump targets of the inventory, or the one named `name`; an unknown
/// name or none at all is an error that names the targets there are.
pub fn targets<'a>(inv: &'a Inventory, name: Option<&str>) -> anyhow::Result<Vec<&'a Backup>> {
    let dumps: Vec<&Backup> = inv.backups.iter().filter(|b| b.dump.is_some()).collect();
    if dumps.is_empty() {
        anyhow::bail!(
            "{} has no [[backups]] with kind = \"{}\": add one (README: Backups)",
            inv.file,
            crate::inventory::DUMP_KIND
        );
    }
    match name {
        None => Ok(dumps),
        Some(n) => match dumps.iter().find(|b| b.name == n) {
            Some(b) => Ok(vec![*b]),
            None => anyhow::bail!(
                "--name {n}: {} has no dump target of that name (it has: {})",
                inv.file,
                dumps
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// A target's dump settings and its backup and DB hosts (validated by the
/// inventory, so they exist).
pub fn hosts_of<'a>(inv: &'a Inventory, b: &'a Backup) -> Option<(&'a Dump, &'a Host, &'a Host)> {
    let d = b.dump.as_ref()?;
    let find = |n: &str| inv.hosts.iter().find(|h| h.name == n);
    Some((d, find(&d.host)?, find(&d.db)?))
}

/// Runs one verb of the backup host's script; its stdout on success.
fn script(t: &dyn Transport, verb: &str) -> Result<String, BackupError> {
    let step = format!("vakt-backup {verb}");
    let cmd = format!("{} {verb}", sh(&format!("{}{BACKUP_SCRIPT}", t.root())));
    let out = t.run(&cmd).map_err(|source| BackupError::Io {
        host: t.host().to_string(),
        step: step.clone(),
        source,
    })?;
    if out.ok() {
        return Ok(out.stdout);
    }
    let output = format!("{}{}", out.stdout, out.stderr).trim().to_string();
    Err(BackupError::Failed {
        host: t.host().to_string(),
        step,
        status: out.status,
        output: if out.status == 127 {
            format!("{output} (no {BACKUP_SCRIPT} on the host: run `vakt up` first)")
        } else {
            output
        },
    })
}

fn unexpected(t: &dyn Transport, step: &str, out: &str) -> BackupError {
    BackupError::Unexpected {
        host: t.host().to_string(),
        step: step.to_string(),
        output: out.trim().to_string(),
    }
}

/// One dump now (`vakt backup`), pruned to `keep`.
pub fn run(t: &dyn Transport) -> Result<Dumped, BackupError> {
    let out = script(t, "run")?;
    out.lines()
        .rev()
        .find_map(Dumped::parse)
        .ok_or_else(|| unexpected(t, "vakt-backup run", &out))
}

/// The newest whole dump on the backup host (`None`: none yet).
pub fn latest(t: &dyn Transport) -> Result<Option<Dumped>, BackupError> {
    let out = script(t, "latest")?;
    if out.trim() == "none" {
        return Ok(None);
    }
    Dumped::parse(out.trim())
        .map(Some)
        .ok_or_else(|| unexpected(t, "vakt-backup latest", &out))
}

/// `vakt restore --check`: the newest dump, its checksum verified, restored
/// into the scratch database and counted, which is then dropped.
pub fn check(t: &dyn Transport) -> Result<Restored, BackupError> {
    let out = script(t, "check")?;
    Restored::parse(&out).ok_or_else(|| unexpected(t, "vakt-backup check", &out))
}

/// `vakt restore --yes`: lends the backup user the rights on the shop
/// database (`MARIADB_RESTORE`, as root through the DB host's socket), has
/// the backup host restore the newest dump into it, and takes the rights
/// back by re-applying the grants (a reload of vakt's MariaDB), also when
/// the restore failed.
pub fn restore(db: &dyn Transport, backup: &dyn Transport) -> Result<Restored, BackupError> {
    let root = db.root();
    let lend = format!(
        "mariadb --defaults-file={} --user=root < {}",
        sh(&format!("{root}{MARIADB_CNF}")),
        sh(&format!("{root}{MARIADB_RESTORE}"))
    );
    checked(db, &lend, "lend the backup user the rights to restore")?;
    let restored = script(backup, "restore");
    let take_back = crate::services::init_command(db, Service::MariaDb, "reload");
    let back = checked(
        db,
        &take_back,
        "take the restore rights back (re-apply the grants)",
    );
    let out = restored?;
    back?;
    Restored::parse(&out).ok_or_else(|| unexpected(backup, "vakt-backup restore", &out))
}

fn checked(t: &dyn Transport, cmd: &str, step: &str) -> Result<(), BackupError> {
    let out = t.run(cmd).map_err(|source| BackupError::Io {
        host: t.host().to_string(),
        step: step.to_string(),
        source,
    })?;
    if out.ok() {
        return Ok(());
    }
    Err(BackupError::Failed {
        host: t.host().to_string(),
        step: step.to_string(),
        status: out.status,
        output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_line_and_a_restore_report_are_read_back() {
        let d = Dumped::parse(
            "file=/var/backups/vakt/nightly-20261202T180102Z.sql.gz size=1234 mtime=1764698462 sha256=ab12 now=1764698470",
        )
        .unwrap();
        assert_eq!(d.size, 1234);
        assert_eq!(d.sha256, "ab12");
        assert_eq!(d.age_secs(), 8);
        assert!(Dumped::parse("none").is_none());
        let r =
            Restored::parse("restored=/b/x.sql.gz\ntable=carts rows=3\ntable=my table rows=0\n")
                .unwrap();
        assert_eq!(r.file, "/b/x.sql.gz");
        assert_eq!(
            r.tables,
            vec![("carts".to_string(), 3), ("my table".to_string(), 0)]
        );
        assert!(Restored::parse("table=carts rows=3\n").is_none());
    }
}
