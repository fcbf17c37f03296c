//! Hooks next to the inventory: `pre-up` and `post-up` around `up`,
//! `pre-rolling-host` and `post-rolling-host` around each host of a rolling
//! phase, in order and with their environment; a failing pre-hook changes
//! nothing, a non-executable hook names the chmod fix, a failing post-hook
//! fails the command and rolls nothing back.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::deploy::{Down, run};
use super::{local_inventory, tmp};

/// A hook that appends its name and environment to `log`, then exits `code`.
fn hook(dir: &Path, name: &str, log: &Path, code: i32) {
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let p = hooks.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"{name} cluster=$VAKT_CLUSTER hosts=$VAKT_HOSTS host=$VAKT_HOST operator=$VAKT_OPERATOR version=$VAKT_VERSION\" >> {}\nexit {code}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn logged(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_failing_pre_up_hook_changes_nothing_on_any_host() {
    let dir = tmp("hook-pre-fail");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let log = dir.path().join("hooks.log");
    hook(dir.path(), "pre-up", &log, 3);
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    let path = dir.path().join("hooks/pre-up");
    assert!(
        err.contains(&format!("hook {} failed (exit 3)", path.display()))
            && err.contains("nothing was changed on any host"),
        "{err}"
    );
    assert_eq!(logged(&log).len(), 1);
    for h in ["lb01", "web01", "web02"] {
        assert!(!state.join(h).join("etc").exists(), "{h} got files");
        assert!(!state.join(h).join("usr").exists(), "{h} got the binary");
    }

    // Not executable: the error names the fix, and still nothing changes.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("chmod +x {}", path.display())),
        "{err}"
    );
    assert!(!state.join("web01").join("etc").exists());
}

#[test]
fn hooks_run_in_order_with_the_cluster_hosts_operator_and_version() {
    let dir = tmp("hooks");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let _down = Down(&inv, &state);
    let log = dir.path().join("hooks.log");
    for name in ["pre-up", "post-up", "pre-rolling-host", "post-rolling-host"] {
        hook(dir.path(), name, &log, 0);
    }
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let lines = logged(&log);
    // The first up starts services: no rolling phase, so no per-host hooks.
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("pre-up cluster=t"), "{lines:?}");
    assert!(lines[1].starts_with("post-up "), "{lines:?}");
    let version = format!("version={} (git ", env!("CARGO_PKG_VERSION"));
    for l in &lines {
        assert!(
            l.contains(" hosts=lb01,web01,web02 host= operator=")
                && l.contains('@')
                && l.contains(&version),
            "{l}"
        );
    }

    // `vakt rolling`: each web host between its own pre and post hook.
    std::fs::remove_file(&log).unwrap();
    let (code, out, err) = run(&["rolling", "--exec", "true"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let names: Vec<String> = logged(&log)
        .iter()
        .map(|l| {
            let hook = l.split(' ').next().unwrap();
            let host = l.split(" host=").nth(1).unwrap().split(' ').next().unwrap();
            format!("{hook} {host}")
        })
        .collect();
    assert_eq!(
        names,
        [
            "pre-rolling-host web01",
            "post-rolling-host web01",
            "pre-rolling-host web02",
            "post-rolling-host web02"
        ],
        "{out}"
    );

    // A failing post-up: the command fails, the deploy stays.
    std::fs::remove_file(&log).unwrap();
    hook(dir.path(), "post-up", &log, 4);
    let text = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, text.replacen("weight = 1", "weight = 2", 1)).unwrap();
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("post-up failed (exit 4)") && err.contains("nothing is rolled back"),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml"))
            .unwrap()
            .contains("weight = 2")
    );
}
