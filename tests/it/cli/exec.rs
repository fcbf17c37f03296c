//! `vakt exec` and `--hosts/--roles` on a local cluster: every selected host
//! runs the command (in its folder), lines come prefixed by host, the exit
//! code is the worst; `status` honours the same flags.

use std::path::Path;

use super::{local_inventory, tmp};
use crate::support::vakt;

/// Runs vakt with `-i`/`--state-dir` first and `args` after them (so a
/// trailing `-- CMD` stays last).
fn run(inv: &Path, state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = vakt()
        .arg(args[0])
        .arg("-i")
        .arg(inv)
        .arg("--state-dir")
        .arg(state)
        .args(&args[1..])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A local cluster's inventory whose hosts have their folders (a local
/// host runs commands in its folder once it exists).
fn cluster(
    tag: &str,
) -> (
    crate::support::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = tmp(tag);
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    for h in ["lb01", "web01", "web02"] {
        std::fs::create_dir_all(state.join(h)).unwrap();
    }
    (dir, inv, state)
}

#[test]
fn exec_runs_on_every_host_with_prefixed_lines_and_the_worst_exit_code() {
    let (_dir, inv, state) = cluster("exec");
    let cmd = r#"h=$(basename "$PWD"); echo "out $h"; echo "err $h" >&2; [ "$h" = web02 ] && exit 3; [ "$h" = web01 ] && exit 1; exit 0"#;
    let (code, out, err) = run(&inv, &state, &["exec", "--", cmd]);
    assert_eq!(code, 3, "worst exit code: {out}{err}");
    for h in ["lb01", "web01", "web02"] {
        assert!(out.contains(&format!("{h:<5} | out {h}\n")), "{out}");
        assert!(err.contains(&format!("{h:<5} | err {h}\n")), "{err}");
    }
    assert!(err.contains("web02 | exit 3"), "{err}");
    let (code, out, _) = run(&inv, &state, &["exec", "--hosts", "lb01", "--", cmd]);
    assert_eq!(code, 0);
    assert_eq!(out, "lb01 | out lb01\n");
}

#[test]
fn exec_roles_select_hosts_and_unknown_hosts_are_named() {
    let (_dir, inv, state) = cluster("exec-roles");
    let (code, out, err) = run(
        &inv,
        &state,
        &["exec", "--roles", "web", "--", "basename", "\"$PWD\""],
    );
    assert_eq!(code, 0, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["web01 | web01", "web02 | web02"]);
    let (code, _, err) = run(&inv, &state, &["exec", "--hosts", "web1", "--", "true"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no host `web1`") && err.contains("did you mean `web01`"),
        "{err}"
    );
    let (code, _, err) = run(&inv, &state, &["exec", "--roles", "dbx", "--", "true"]);
    assert_eq!(code, 2, "a bad role is a usage error: {err}");
    let (code, _, err) = run(&inv, &state, &["exec", "--roles", "db", "--", "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("matches no host"), "{err}");
}

#[test]
fn status_with_hosts_reports_only_those_hosts() {
    let (_dir, inv, state) = cluster("status-hosts");
    // Nothing was brought up: the selected host reports its stopped service.
    let (code, out, _) = run(&inv, &state, &["status", "--hosts", "web02"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("web02") && out.contains("demo-web stopped"),
        "{out}"
    );
    assert!(!out.contains("lb01") && !out.contains("web01"), "{out}");
}
