//! The release store: `[deploy] keep` (validated), one release per host per
//! `up` that changed the cluster, pruned to `keep`, listed by `vakt
//! releases` with its history line; `rollback --to` / `--steps` go back to
//! one, and a release whose files are gone is refused before any host
//! changes.

use super::deploy::{Down, run};
use super::{local_inventory, tmp};
use crate::support::vakt;

fn append(inv: &std::path::Path, text: &str) {
    let mut s = std::fs::read_to_string(inv).unwrap();
    s.push_str(text);
    std::fs::write(inv, s).unwrap();
}

fn replace(inv: &std::path::Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(inv).unwrap();
    assert!(s.contains(from), "{from} not in {s}");
    std::fs::write(inv, s.replacen(from, to, 1)).unwrap();
}

#[test]
fn deploy_keep_is_checked_with_its_line_and_range() {
    let dir = tmp("keep-bad");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let lines = std::fs::read_to_string(&inv).unwrap().lines().count();
    for (value, says) in [
        ("0", "`deploy.keep` is 0, it must be between 1 and 50"),
        ("51", "`deploy.keep` is 51, it must be between 1 and 50"),
        ("\"5\"", "deploy.keep"),
    ] {
        let text = std::fs::read_to_string(&inv).unwrap();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, format!("{text}\n[deploy]\nkeep = {value}\n")).unwrap();
        let out = vakt().args(["check", "-i"]).arg(&bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{value}: {err}");
        let at = format!("bad.toml:{}:8", lines + 3);
        assert!(err.contains(&at) && err.contains(says), "{value}: {err}");
    }
    let text = std::fs::read_to_string(&inv).unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, format!("{text}\n[deploy]\nkeep = 1\n")).unwrap();
    let out = vakt().args(["check", "-i"]).arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The release ids of `vakt releases --hosts HOST`, oldest first, and the
/// current one.
fn listed(inv: &std::path::Path, state: &std::path::Path, host: &str) -> (Vec<String>, String) {
    let (code, out, err) = run(
        &["releases", "--hosts", host, "--format", "json"],
        inv,
        state,
    );
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let h = &v[0];
    assert_eq!(h["host"], host);
    let ids = h["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    (ids, h["current"].as_str().unwrap_or_default().to_string())
}

#[test]
fn each_up_that_changes_the_cluster_keeps_a_release_pruned_to_keep() {
    let dir = tmp("releases");
    let (inv, _, _) = local_inventory(dir.path(), "");
    append(&inv, "\n[deploy]\nkeep = 2\n");
    let state = dir.path().join("state");
    let _down = Down(&inv, &state);
    let store = |h: &str| state.join(h).join("var/lib/vakt/releases");

    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let (first, current) = listed(&inv, &state, "web01");
    assert_eq!(first.len(), 1);
    assert_eq!(current, first[0]);
    // A second `up` with nothing to do keeps no new release.
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(listed(&inv, &state, "web01").0, first);

    // Two changes of lb01's config: every host gets each release (the
    // same id), and keep = 2 drops the oldest.
    replace(&inv, "weight = 1", "weight = 3");
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    replace(&inv, "weight = 3", "weight = 4");
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let (ids, current) = listed(&inv, &state, "lb01");
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&first[0]), "{ids:?}");
    assert_eq!(current, ids[1]);
    assert_eq!(listed(&inv, &state, "web02").0, ids);
    let dirs: Vec<_> = std::fs::read_dir(store("lb01"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "current")
        .collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    // Each holds its files and the binary, kept once (hard links).
    let kept = store("lb01").join(&ids[0]).join("files");
    assert!(
        std::fs::read_to_string(kept.join("etc/vakt/proxy.toml"))
            .unwrap()
            .contains("weight = 3")
    );
    use std::os::unix::fs::MetadataExt;
    let bin = std::fs::metadata(kept.join("usr/local/bin/vakt")).unwrap();
    assert!(bin.nlink() >= 2, "the binary is copied per release");

    // The text listing: the current one marked, with its history line.
    let (code, out, _) = run(&["releases"], &inv, &state);
    assert_eq!(code, 0);
    assert!(out.contains("lb01:") && out.contains("web01:"), "{out}");
    let marked = format!("* {} ", ids[1]);
    let line = out.lines().find(|l| l.starts_with(&marked)).unwrap();
    assert!(
        line.contains("`vakt up -i") && line.contains("vakt ") && line.contains('@'),
        "{line}"
    );

    // --to an id: back to it on every host; an unknown id changes nothing.
    let (code, _, err) = run(
        &["rollback", "--to", "19990101T000000.000Z-x"],
        &inv,
        &state,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("keeps no release 19990101T000000.000Z-x")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let (code, out, err) = run(&["rollback", "--to", &ids[0]], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml"))
            .unwrap()
            .contains("weight = 3")
    );
    assert_eq!(listed(&inv, &state, "lb01").1, ids[0]);
    let (code, out, _) = run(&["releases", "--hosts", "lb01"], &inv, &state);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("* {}", ids[0])), "{out}");

    // A release whose files are gone is refused, naming them.
    std::fs::remove_file(
        store("web01")
            .join(&ids[1])
            .join("files/etc/init.d/vakt-demo-web"),
    )
    .unwrap();
    let (code, _, err) = run(&["rollback", "--to", &ids[1]], &inv, &state);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "web01: release {} misses /etc/init.d/vakt-demo-web",
            ids[1]
        )) && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(listed(&inv, &state, "lb01").1, ids[0], "lb01 changed");
}
