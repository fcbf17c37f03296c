//! The lab's own edges (root only, as on CI): it needs root and says so, it
//! refuses this machine's addresses, two labs of one inventory coexist,
//! `lab down` is safe twice and after a crash, and `up` refuses to push this
//! vakt to a host of another platform unless `--binary` names one.

use std::process::Command;

use crate::lab::Lab;
use crate::support::{needs, vakt};

fn oslo() -> String {
    format!("{}/../inventory/oslo.toml", env!("CARGO_MANIFEST_DIR"))
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn namespaces() -> String {
    text(&Command::new("ip").args(["netns", "list"]).output().unwrap())
}

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn labs_need_root_refuse_own_addresses_coexist_and_clean_up_after_a_crash() {
    needs::require("vakt_lab");
    // Not root: a clear error, nothing created.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_vakt"))
        .args(["lab", "--name", "nonroot", "up", "-i", &oslo()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("needs root"), "{}", text(&out));
    assert!(!namespaces().contains("nonroot-"));

    // An address of this machine in the inventory: refused, named.
    let own = text(
        &Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .unwrap(),
    );
    let mine = own
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split('/').next())
        .find(|a| !a.starts_with("127."))
        .unwrap_or("127.0.0.1")
        .to_string();
    let dir = crate::cli::tmp("lab-own");
    let inv = dir.path().join("own.toml");
    // The inventory wants private addresses private and public ones public:
    // this machine's address goes where it fits.
    let private = mine.starts_with("10.")
        || mine.starts_with("192.168.")
        || (16..32).any(|n| mine.starts_with(&format!("172.{n}.")));
    let (from, to) = if private || mine.starts_with("127.") {
        ("\"10.10.0.12\"", format!("\"{mine}\""))
    } else {
        ("\"203.0.113.11\"", format!("\"{mine}\""))
    };
    std::fs::write(
        &inv,
        std::fs::read_to_string(oslo()).unwrap().replace(from, &to),
    )
    .unwrap();
    let out = vakt()
        .args(["lab", "--name", "ownaddr", "up", "-i"])
        .arg(&inv)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("uses {mine}, which is an address of this machine")),
        "{}",
        text(&out)
    );
    assert!(!namespaces().contains("ownaddr-"));

    // Two labs of the same inventory (the same addresses) side by side.
    let a = Lab::up("pairA", "oslo.toml");
    let b = Lab::up("pairB", "oslo.toml");
    for lab in [&a, &b] {
        let (code, out) = lab.on("web01", &["ip", "-4", "-o", "addr", "show"]);
        assert_eq!(code, 0);
        assert!(out.contains("10.10.0.11/"), "{out}");
    }
    // A crash: every process of lab A dies at once, its state stays behind.
    let ns = namespaces();
    for n in ns.lines().filter_map(|l| l.split_whitespace().next()) {
        if n.starts_with(&format!("{}-", a.name)) {
            let pids = text(
                &Command::new("ip")
                    .args(["netns", "pids", n])
                    .output()
                    .unwrap(),
            );
            for p in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", p]).status();
            }
        }
    }
    for _ in 0..2 {
        let out = vakt()
            .args(["lab", "--name", &a.name, "down"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let ns = namespaces();
    assert!(
        !ns.lines().any(|l| l.starts_with(&format!("{}-", a.name))),
        "{ns}"
    );
    assert!(!std::path::Path::new(&format!("/run/vakt-lab/{}", a.name)).exists());
    // Lab B did not notice: its hosts still answer over SSH.
    let (code, out, err) = b.vakt(&["plan", "-i", &b.inventory]);
    assert!(code == 0 || code == 2, "{out}{err}");
    drop(a);

    // A host of another platform: `up` will not push this vakt there, and
    // says how to give it the right one.
    let (code, out) = b.on(
        "web01",
        &[
            "sh",
            "-c",
            "printf '#!/bin/sh\\necho Linux aarch64\\n' > /usr/local/bin/uname && chmod 755 /usr/local/bin/uname",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = b.vakt(&["plan", "-i", &b.inventory]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("web01 runs `Linux aarch64`") && err.contains("--binary PATH"),
        "{err}"
    );
    // An explicit binary is the operator's word for its platform.
    let (code, out, err) = b.vakt(&[
        "plan",
        "-i",
        &b.inventory,
        "--binary",
        env!("CARGO_BIN_EXE_vakt"),
    ]);
    assert_eq!(code, 2, "{out}{err}");
}
