//! Each host's release store: `/var/lib/vakt/releases/<id>/` holds one
//! release (every file `up` put there, the binary, and a `manifest.json`
//! with the history line of the `up` that made it); `current` names the
//! release the host runs. `record` adds one after an `up` and prunes to
//! `[deploy] keep`; `list`, `resolve` (`--to` / `--steps`) and `plan_host`
//! serve `vakt releases` and `vakt rollback`, which applies a release with
//! the same plan and apply as `up`. What to keep is decided here (`prune`,
//! pure); the commands print.

use anyhow::Context;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::history::Entry;
use crate::plan::{self, Change, HostPlan};
use crate::render::File;
use crate::services::BINARY_PATH;
use crate::target::{HostTarget, Target};
use crate::transport::{Transport, sh};

/// The store on a host (under its root).
pub const STORE: &str = "/var/lib/vakt/releases";

/// One release as its manifest describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Time-based and sortable as text: `20261202T094501.123Z-1a2b3c4d`
    /// (UTC to the millisecond, then the inventory's sha256 prefix). One
    /// `up` gives every host it changed the same id.
    pub id: String,
    /// The history line of the `up` that made the release.
    pub entry: Entry,
    /// The files it holds (paths on the host, modes), the binary not among them.
    pub files: Vec<Kept>,
    /// The binary's sha256; `None` on a host that runs nothing of vakt's.
    pub binary_sha256: Option<String>,
}

/// One kept file: where it goes and with which mode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Kept {
    pub path: String,
    pub mode: u32,
}

/// A host's store as read: its releases oldest first and the current one.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Store {
    pub releases: Vec<Manifest>,
    /// The release the host runs (`None`: no release recorded yet).
    pub current: Option<String>,
}

impl Store {
    /// The current release's position (the newest when `current` names
    /// none of them).
    fn current_index(&self) -> Option<usize> {
        let i = self
            .current
            .as_ref()
            .and_then(|c| self.releases.iter().position(|r| &r.id == c));
        i.or_else(|| self.releases.len().checked_sub(1))
    }
}

/// A new release id, shared by every host of one run.
pub fn new_id(inventory_sha256: &str) -> String {
    let sha = inventory_sha256.get(..8).unwrap_or(inventory_sha256);
    format!("{}-{sha}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Where a release keeps a file (without the host's root).
pub fn kept_path(id: &str, path: &str) -> String {
    format!("{STORE}/{id}/files{path}")
}

/// The ids to delete so that `keep` releases remain, oldest first; the
/// current one stays whatever its age (after a rollback it may be old).
pub fn prune(ids: &[String], keep: usize, current: Option<&str>) -> Vec<String> {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let excess = sorted.len().saturating_sub(keep.max(1));
    let mut out: Vec<String> = Vec::new();
    for id in sorted {
        if out.len() == excess {
            break;
        }
        if Some(id.as_str()) != current {
            out.push(id.clone());
        }
    }
    out
}

/// Copies what the host now runs (`files`, and the binary when `binary` is
/// its sha256) into a new release `id` with `entry` as its history line,
/// makes it current and prunes the store to `keep`. A binary already kept
/// by another release is hard-linked, not copied again. The store is the
/// root's alone (mode 0700): it holds the TLS key too.
pub fn record(
    tr: &dyn Transport,
    id: &str,
    entry: Entry,
    files: &[File],
    binary: Option<&str>,
    keep: u32,
) -> anyhow::Result<()> {
    let root = tr.root();
    let store = sh(&format!("{root}{STORE}"));
    let incoming = format!("{root}{STORE}/.incoming-{id}");
    let manifest = Manifest {
        id: id.to_string(),
        entry,
        files: files
            .iter()
            .map(|f| Kept {
                path: f.path.clone(),
                mode: f.mode,
            })
            .collect(),
        binary_sha256: binary.map(str::to_string),
    };
    let mut script = format!(
        "set -e; umask 077; mkdir -p {store}; chmod 700 {store}; rm -rf {i}; mkdir -p {i}/files; ",
        i = sh(&incoming)
    );
    let copy = |path: &str| {
        let dest = sh(&format!("{incoming}/files{path}"));
        format!(
            "mkdir -p \"$(dirname {dest})\"; cp -p {} {dest}; ",
            sh(&format!("{root}{path}"))
        )
    };
    for f in files {
        script.push_str(&copy(&f.path));
    }
    if let Some(sha) = binary {
        let dest = sh(&format!("{incoming}/files{BINARY_PATH}"));
        script.push_str(&format!(
            "mkdir -p \"$(dirname {dest})\"; \
             same=$(grep -lx {sha} {store}/*/binary.sha256 2>/dev/null | head -n 1); \
             if [ -z \"$same\" ] || ! ln \"$(dirname \"$same\")/files{BINARY_PATH}\" {dest} 2>/dev/null; then cp -p {} {dest}; fi; \
             printf '%s\\n' {sha} > {i}/binary.sha256; ",
            sh(&format!("{root}{BINARY_PATH}")),
            sha = sh(sha),
            i = sh(&incoming),
        ));
    }
    script.push_str(&format!(
        "printf '%s\\n' {m} > {i}/manifest.json; rm -rf {d}; mv {i} {d}; printf '%s\\n' {id} > {store}/current",
        m = sh(&serde_json::to_string(&manifest)?),
        i = sh(&incoming),
        d = sh(&format!("{root}{STORE}/{id}")),
        id = sh(id),
    ));
    let out = tr.run(&script)?;
    if !out.ok() {
        anyhow::bail!(
            "{}: keeping release {id} in {STORE}: {}",
            tr.host(),
            out.stderr.trim()
        );
    }
    let store = list(tr)?;
    let ids: Vec<String> = store.releases.iter().map(|r| r.id.clone()).collect();
    let old = prune(&ids, keep as usize, Some(id));
    if !old.is_empty() {
        let dirs: Vec<String> = old
            .iter()
            .map(|o| sh(&format!("{root}{STORE}/{o}")))
            .collect();
        let out = tr.run(&format!("rm -rf {}", dirs.join(" ")))?;
        if !out.ok() {
            anyhow::bail!(
                "{}: pruning {STORE} to keep = {keep}: {}",
                tr.host(),
                out.stderr.trim()
            );
        }
    }
    Ok(())
}

/// Makes `id` the host's current release (after a rollback to it).
pub fn set_current(tr: &dyn Transport, id: &str) -> anyhow::Result<()> {
    let file = sh(&format!("{}{STORE}/current", tr.root()));
    let out = tr.run(&format!("printf '%s\\n' {} > {file}", sh(id)))?;
    if !out.ok() {
        anyhow::bail!("{}: marking {id} current: {}", tr.host(), out.stderr.trim());
    }
    Ok(())
}

/// The host's store in one round trip; a manifest that does not parse is
/// an error naming it (the release cannot be trusted to restore).
pub fn list(tr: &dyn Transport) -> anyhow::Result<Store> {
    let store = sh(&format!("{}{STORE}", tr.root()));
    let out = tr.run(&format!(
        "cat {store}/current 2>/dev/null || echo; \
         for m in {store}/*/manifest.json; do [ -f \"$m\" ] && cat \"$m\"; done; true"
    ))?;
    if !out.ok() {
        anyhow::bail!("{}: reading {STORE}: {}", tr.host(), out.stderr.trim());
    }
    let mut lines = out.stdout.lines();
    let current = lines
        .next()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let mut releases = Vec::new();
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let m: Manifest = serde_json::from_str(l).with_context(|| {
            format!(
                "{}: a manifest under {STORE} does not parse (`{}`)",
                tr.host(),
                l.chars().take(60).collect::<String>()
            )
        })?;
        releases.push(m);
    }
    releases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Store { releases, current })
}

/// Which release `--to` or `--steps` names in a host's store.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// This id (`--to`).
    Id(&'a str),
    /// This many releases before the current one (`--steps`; plain
    /// `rollback` is 1).
    Steps(usize),
}

/// The release `wanted` names on `host`, or an error that says what the
/// host keeps.
pub fn resolve(host: &str, store: &Store, wanted: Wanted, keep: u32) -> anyhow::Result<Manifest> {
    let Some(cur) = store.current_index() else {
        anyhow::bail!(
            "{host} keeps no releases yet (its store {STORE} fills with each `vakt up` that changes the cluster)"
        );
    };
    match wanted {
        Wanted::Id(id) => store
            .releases
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .with_context(|| {
                let ids: Vec<&str> = store.releases.iter().map(|r| r.id.as_str()).collect();
                format!(
                    "{host} keeps no release {id}; it keeps {} (see `vakt releases`)",
                    ids.join(", ")
                )
            }),
        Wanted::Steps(n) => cur
            .checked_sub(n)
            .map(|i| store.releases[i].clone())
            .with_context(|| {
                format!(
                    "{host} keeps {cur} release(s) before its current one, not {n} ([deploy] keep = {keep}; see `vakt releases`)"
                )
            }),
    }
}

/// Checks that every file of release `m` (and its binary) is still in the
/// host's store; names the missing ones.
pub fn check_complete(tr: &dyn Transport, m: &Manifest) -> anyhow::Result<()> {
    let mut paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    if m.binary_sha256.is_some() {
        paths.push(BINARY_PATH);
    }
    let mut script = String::from("true; ");
    for p in &paths {
        let kept = sh(&format!("{}{}", tr.root(), kept_path(&m.id, p)));
        script.push_str(&format!("[ -f {kept} ] || echo {}; ", sh(p)));
    }
    let out = tr.run(&script)?;
    let missing: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "{}: release {} misses {} in {STORE}/{}/files: it cannot be restored; pick another with `vakt releases`",
            tr.host(),
            m.id,
            missing.join(", "),
            m.id
        );
    }
    Ok(())
}

/// The plan that brings `h` back to release `m`: its files (read from the
/// store) against what the host has, with `up`'s actions.
pub fn plan_host(t: &Target, h: &HostTarget, m: &Manifest) -> anyhow::Result<HostPlan> {
    let tr = h.transport()?;
    let mut files = Vec::new();
    for k in &m.files {
        let kept = kept_path(&m.id, &k.path);
        let bytes = tr
            .read(&kept)?
            .with_context(|| format!("{}: {kept} is gone", h.host.name))?;
        files.push(File {
            path: k.path.clone(),
            mode: k.mode,
            content: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    let state = crate::services::read_state(tr, &files, &h.services)
        .with_context(|| format!("{}: reading what the host has", h.host.name))?;
    let mut p = plan::build(
        &h.host.name,
        files,
        &h.services,
        &state,
        m.binary_sha256.as_deref().unwrap_or_default(),
        t.inv.firewall.rollback_after,
    );
    if m.binary_sha256.is_none() {
        p.binary = Change::Unchanged;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("2026120{i}T000000.000Z-aa"))
            .collect()
    }

    #[test]
    fn pruning_keeps_the_newest_and_never_the_current_one() {
        let all = ids(7);
        assert_eq!(prune(&all, 5, Some(&all[6])), all[..2].to_vec());
        assert!(prune(&all[..3], 5, None).is_empty());
        // After a rollback to the oldest, it survives; the next oldest go.
        assert_eq!(prune(&all, 5, Some(&all[0])), all[1..3].to_vec());
    }

    #[test]
    fn ids_sort_by_time_and_name_the_inventory() {
        let a = new_id("0123456789abcdef");
        assert!(a.ends_with("Z-01234567"), "{a}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_id("ff") > a);
    }

    fn store(n: usize, current: usize) -> Store {
        let entry = Entry {
            time: String::new(),
            host: "web01".into(),
            operator: String::new(),
            version: String::new(),
            inventory_sha256: String::new(),
            command: String::new(),
            files: vec![],
            result: String::new(),
        };
        Store {
            releases: ids(n)
                .into_iter()
                .map(|id| Manifest {
                    id,
                    entry: entry.clone(),
                    files: vec![],
                    binary_sha256: None,
                })
                .collect(),
            current: Some(ids(n)[current].clone()),
        }
    }

    #[test]
    fn steps_count_back_from_the_current_release() {
        let s = store(5, 4);
        let r = resolve("web01", &s, Wanted::Steps(3), 5).unwrap();
        assert_eq!(r.id, ids(5)[1]);
        let s = store(5, 2);
        assert_eq!(
            resolve("web01", &s, Wanted::Steps(1), 5).unwrap().id,
            ids(5)[1]
        );
        let e = resolve("web01", &s, Wanted::Steps(3), 5).unwrap_err();
        assert!(e.to_string().contains("keeps 2 release(s) before"), "{e}");
        let e = resolve("web01", &s, Wanted::Id("nope"), 5).unwrap_err();
        assert!(e.to_string().contains("keeps no release nope"), "{e}");
        let e = resolve("web01", &Store::default(), Wanted::Steps(1), 5).unwrap_err();
        assert!(e.to_string().contains("no releases yet"), "{e}");
    }
}
