//! The everyday commands over real SSH in the lab (root only): `exec` on
//! four hosts, `logs` (and `-f`) from them, and two operators in the control
//! namespace racing for the deploy lock on the first load balancer, and
//! `history` read back from the hosts.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::lab::Lab;
use crate::support::{needs, vakt};

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn exec_logs_and_the_deploy_lock_work_over_ssh_in_the_lab() {
    needs::require("vakt_lab");
    let lab = Lab::up("vo", "oslo.toml");
    let inv = lab.inventory.clone();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");

    // exec: every host, prefixed, the worst exit code.
    let (code, out, err) = lab.vakt(&[
        "exec",
        "-i",
        &inv,
        "--",
        // Lab hosts share this machine's hostname: web02 is told by its address.
        "echo on-host; ip -4 -o addr | grep -q ' 10.10.0.12/' && exit 4; true",
    ]);
    assert_eq!(code, 4, "{out}{err}");
    for h in ["lb01", "web01", "web02", "db01", "backup01"] {
        assert!(out.contains(&format!("{h:<8} | on-host\n")), "{out}");
    }
    let (code, out, _) = lab.vakt(&["exec", "-i", &inv, "--roles", "lb", "--", "id -u"]);
    assert_eq!((code, out.as_str()), (0, "lb01 | 0\n"));
    // The SSH control directory (/tmp/vakt-ssh-PID-RANDOM) goes with the
    // command that made it.
    let (code, out, err) = lab.ctl(&[
        "sh",
        "-c",
        r#""$0" exec -i "$1" --roles lb -- true >/dev/null & p=$!; wait $p || exit 9; ls -d /tmp/vakt-ssh-$p-* 2>/dev/null | wc -l"#,
        env!("CARGO_BIN_EXE_vakt"),
        &inv,
    ]);
    assert_eq!((code, out.trim()), (0, "0"), "{err}");

    // logs: the proxy's request line comes over SSH with its host.
    let _ = lab.curl(&["http://203.0.113.11/lab-ops-probe"]);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = lab.vakt(&["logs", "-i", &inv, "proxy", "--since", "5m"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01     proxy") && l.contains("/lab-ops-probe")),
        "{out}"
    );
    let mut follow = vakt()
        .args(["lab", "--name", &lab.name, "exec", "ctl", "--"])
        .args([
            env!("CARGO_BIN_EXE_vakt"),
            "logs",
            "-f",
            "-n",
            "0",
            "-i",
            &inv,
            "proxy",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let _ = lab.curl(&["http://203.0.113.11/lab-ops-follow"]);
    let seen = rx.recv_timeout(Duration::from_secs(10));
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        seen.as_deref().is_ok_and(|l| l.contains("/lab-ops-follow")),
        "{seen:?}"
    );

    // Two operators: one holds the lock, the other's up is refused with the
    // holder and message, then waits for it with --lock-wait.
    let (code, out, err) = lab.vakt(&[
        "lock",
        "acquire",
        "-i",
        &inv,
        "--lock-message",
        "kernel update",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = lab.on("lb01", &["cat", "/var/lib/vakt/lock/info"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("message=kernel update"), "{out}");
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("is locked by") && err.contains(": kernel update"),
        "{err}"
    );
    let releaser = {
        let (name, inv) = (lab.name.clone(), inv.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            vakt()
                .args(["lab", "--name", &name, "exec", "ctl", "--"])
                .args([env!("CARGO_BIN_EXE_vakt"), "lock", "release", "-i", &inv])
                .output()
                .unwrap()
        })
    };
    let (code, out, err) = lab.vakt(&["up", "-i", &inv, "--lock-wait", "30s"]);
    assert!(releaser.join().unwrap().status.success());
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("waiting for the deploy lock"), "{err}");
    let (code, out, _) = lab.vakt(&["lock", "status", "-i", &inv]);
    assert_eq!(code, 0, "{out}");

    // history over SSH: the first up changed every host.
    let (code, out, err) = lab.vakt(&["history", "-i", &inv, "--roles", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    for h in ["web01", "web02"] {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!(" {h} ")) && l.contains(": changed [")),
            "{out}"
        );
    }
}
