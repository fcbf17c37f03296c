//! Each host's history: an append-only file of JSON lines
//! (`/var/lib/vakt/history.jsonl`), one `Entry` per command that changed
//! the host (when, who, vakt's version and git revision, the inventory's
//! sha256, the command line, the files, the result). `vakt history` reads
//! them back and merges them by time.

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::target::{HostTarget, Target};
use crate::transport::{Transport, sh};

/// The history file on a host (under its root).
pub const HISTORY_FILE: &str = "/var/lib/vakt/history.jsonl";

/// vakt's version and the git revision it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("VAKT_GIT_REV"),
    ")"
);

/// One line of a host's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// RFC 3339, UTC, to the millisecond (sorts as text).
    pub time: String,
    pub host: String,
    pub operator: String,
    pub version: String,
    pub inventory_sha256: String,
    pub command: String,
    pub files: Vec<String>,
    pub result: String,
}

impl Entry {
    /// An entry for `host` now, for this command and `t`'s inventory.
    pub fn now(t: &Target, host: &str, files: Vec<String>, result: String) -> Entry {
        Entry {
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            host: host.to_string(),
            operator: crate::lock::operator(),
            version: VERSION.to_string(),
            inventory_sha256: t.inv.sha256.clone(),
            command: crate::lock::this_command(),
            files,
            result,
        }
    }
}

/// Appends `e` to the host's history (`>>`: never rewrites a line).
pub fn append(h: &HostTarget, e: &Entry) -> anyhow::Result<()> {
    let tr = h.transport()?;
    let file = format!("{}{HISTORY_FILE}", tr.root());
    let line = serde_json::to_string(e)?;
    let cmd = format!(
        "mkdir -p \"$(dirname {f})\" && printf '%s\\n' {} >> {f}",
        sh(&line),
        f = sh(&file)
    );
    let out = tr.run(&cmd)?;
    if !out.ok() {
        anyhow::bail!(
            "{}: appending to {file}: {}",
            h.host.name,
            out.stderr.trim()
        );
    }
    Ok(())
}

/// Appends one entry per host, warning (never failing the command, whose
/// work is done) when a host's history cannot be written.
pub fn record(t: &Target, entries: Vec<Entry>) {
    for e in entries {
        let Some(h) = t.hosts.iter().find(|h| h.host.name == e.host) else {
            continue;
        };
        if let Err(err) = append(h, &e) {
            eprintln!("warning: {err:#} (the host's history misses this run)");
        }
    }
}

/// A host's history, oldest first; lines that are not entries are skipped
/// and counted.
pub fn read(tr: &dyn Transport) -> anyhow::Result<(Vec<Entry>, usize)> {
    let Some(bytes) = tr.read(HISTORY_FILE)? else {
        return Ok((Vec::new(), 0));
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut bad = 0;
    let entries = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).map_err(|_| bad += 1).ok())
        .collect();
    Ok((entries, bad))
}

/// Every host's entries in one list by time (stable: one host's order kept).
pub fn merge(mut all: Vec<Entry>) -> Vec<Entry> {
    all.sort_by(|a, b| a.time.cmp(&b.time));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_merge_by_time_across_hosts() {
        let e = |time: &str, host: &str| Entry {
            time: time.into(),
            host: host.into(),
            operator: "a@b".into(),
            version: VERSION.into(),
            inventory_sha256: "00".into(),
            command: "vakt up".into(),
            files: vec![],
            result: "changed".into(),
        };
        let merged = merge(vec![
            e("2026-12-01T10:00:02.000Z", "lb01"),
            e("2026-12-01T10:00:01.000Z", "web01"),
        ]);
        assert_eq!(merged[0].host, "web01");
        let line = serde_json::to_string(&merged[1]).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), merged[1]);
    }
}
