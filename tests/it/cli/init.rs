//! `vakt init`: the inventories it writes pass `vakt check` as written (and
//! render), and an existing file is never overwritten without --force.

use crate::support::{TempDir, vakt};

fn run(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = vakt().args(args).current_dir(dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes with `init_args`, then checks and renders the file as written.
fn init_then_check(init_args: &[&str]) -> String {
    let dir = TempDir::new("init");
    let (ok, out, err) = run(init_args, dir.path());
    assert!(ok, "init failed: {out}{err}");
    assert!(out.contains("check -i inventory.toml"), "{out}");
    let (ok, out, err) = run(&["check", "-i", "inventory.toml"], dir.path());
    assert!(ok, "check failed on init's output:\n{out}{err}");
    assert!(out.contains("inventory is valid"), "{out}");
    assert!(!err.contains("warning"), "init's inventory warns: {err}");
    let text = std::fs::read_to_string(dir.path().join("inventory.toml")).unwrap();
    assert!(text.contains("192.0.2."), "no documentation-range address");
    assert!(text.contains("[[backups]]"));
    // Every host's files render from it (no secret needed).
    let (ok, out, err) = run(
        &["render", "-i", "inventory.toml", "--out", "rendered"],
        dir.path(),
    );
    assert!(ok, "render failed on init's output:\n{out}{err}");
    out
}

#[test]
fn init_writes_an_inventory_that_passes_check() {
    let rendered = init_then_check(&["init"]);
    assert!(rendered.contains("wrote"), "{rendered}");
}

#[test]
fn init_ha_writes_two_lbs_and_a_vip_that_pass_check() {
    let dir = TempDir::new("init-ha");
    let (ok, _, err) = run(&["init", "--ha"], dir.path());
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["check", "-i", "inventory.toml"], dir.path());
    assert!(ok, "{out}{err}");
    assert!(out.contains("VIP 192.0.2.10"), "{out}");
    assert!(out.contains("lb01") && out.contains("lb02"), "{out}");
    assert!(
        out.contains("keepalived"),
        "no keepalived on the LBs: {out}"
    );
    init_then_check(&["init", "--ha"]);
}

#[test]
fn init_never_overwrites_without_force_and_keeps_a_backup_with_it() {
    let dir = TempDir::new("init-force");
    let path = dir.path().join("inventory.toml");
    std::fs::write(&path, "# mine\n").unwrap();
    let (ok, _, err) = run(&["init"], dir.path());
    assert!(!ok);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");
    let (ok, _, err) = run(&["init", "--ha", "--force"], dir.path());
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("inventory.toml.bak")).unwrap(),
        "# mine\n"
    );
    assert!(std::fs::read_to_string(&path).unwrap().contains("vip ="));
}
