//! The deploy lock on a local cluster: two `up`s racing, one wins and the
//! other is told who holds it; a lock taken by hand stops `up` with its
//! message until released (or `--lock-wait` outlasts it); a lock folder that
//! cannot be made is reported as that, never as a held lock; a local
//! cluster never brought up gets no state folder from a lock.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::deploy::run;
use super::{local_inventory, tmp};
use crate::support::vakt;

#[test]
fn two_ups_racing_one_wins_the_other_is_told_who_holds_the_lock() {
    let dir = tmp("lock-race");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let spawn = || {
        vakt()
            .args(["up", "-i"])
            .arg(&inv)
            .arg("--state-dir")
            .arg(&state)
            .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let _down = scopeguard(|| {
        run(&["down"], &inv, &state);
    });
    let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
    let errs: Vec<String> = outs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [0, 1],
        "one up wins, one is refused: {codes:?}\n{errs:#?}"
    );
    let loser = &errs[codes.iter().position(|&c| c == 1).unwrap()];
    assert!(
        loser.contains("is locked by")
            && loser.contains("(vakt up -i")
            && loser.contains("--lock-wait"),
        "{loser}"
    );
    // The winner released it.
    let (code, out, _) = run(&["lock", "status"], &inv, &state);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is not locked"), "{out}");
}

#[test]
fn a_held_lock_stops_up_with_its_message_until_released_or_waited_for() {
    let dir = tmp("lock-held");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let (code, out, err) = run(
        &["lock", "acquire", "--lock-message", "migrating the db"],
        &inv,
        &state,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&["lock", "status"], &inv, &state);
    assert_eq!(code, 1);
    assert!(
        out.contains("(vakt lock acquire") && out.contains(": migrating the db"),
        "{out}"
    );
    for cmd in [
        &["up"][..],
        &["down"],
        &["rollback"],
        &["rolling", "--exec", "true"],
    ] {
        let (code, out, err) = run(cmd, &inv, &state);
        assert_eq!(code, 1, "{cmd:?}: {out}{err}");
        assert!(
            err.contains(": migrating the db; nothing was changed"),
            "{cmd:?}: {err}"
        );
    }
    assert!(!state.join("web01").exists(), "a locked up touched a host");
    // --lock-wait outlasts a lock released meanwhile.
    let releaser = {
        let (inv, state) = (inv.clone(), state.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            run(&["lock", "release"], &inv, &state)
        })
    };
    let started = Instant::now();
    let (code, out, err) = run(&["down", "--lock-wait", "20s"], &inv, &state);
    let (rc, rout, _) = releaser.join().unwrap();
    assert_eq!(rc, 0);
    assert!(rout.contains("released the lock held by"), "{rout}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("waiting for the deploy lock"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

#[test]
fn a_lock_that_cannot_be_made_is_not_reported_as_held() {
    let dir = tmp("lock-broken");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    // A local cluster never brought up: `down` takes no lock and, as
    // before, creates no state folder.
    let (code, out, err) = run(&["down"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!state.exists(), "down created the state folder");
    // A file where the lock's parent folder belongs.
    std::fs::create_dir_all(state.join("lb01/var/lib")).unwrap();
    std::fs::write(state.join("lb01/var/lib/vakt"), "").unwrap();
    let (code, out, err) = run(&["down"], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("lb01: the deploy lock") && err.contains("could not be taken"),
        "{err}"
    );
    assert!(!err.contains("locked by"), "{err}");
}

/// Runs `f` when dropped (a test's cleanup also when it fails).
fn scopeguard(f: impl FnMut()) -> impl Drop {
    struct G<F: FnMut()>(F);
    impl<F: FnMut()> Drop for G<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    G(f)
}
