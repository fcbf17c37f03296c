//! Probes, at build time, what the integration program's machine-dependent
//! suites need (root, and commands such as sshd or haproxy), so that a suite
//! that cannot run here is compiled as `#[ignore]` and counted as ignored in
//! cargo test's summary instead of passing in 0.00 s. Also records the git
//! revision the binary is built from (`VAKT_GIT_REV`, for `vakt --version`).
//!
//! Each suite becomes a `cfg` (`vakt_lab`, …) set when everything it needs is
//! present; `VAKT_TEST_NEEDS` tells the tests' runtime guard
//! (`tests/it/support/needs.rs`) the same table, so a binary built as root
//! and run as another user fails with the reason instead of skipping.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The commands every namespace lab needs: `ip` and `nsenter`/`unshare` for
/// the namespaces, sshd and its keys on the hosts, the OpenSSH client for the
/// transport, `curl` inside the lab, `setpriv` to try the lab as non-root.
const LAB: &[&str] = &[
    "ip",
    "nsenter",
    "unshare",
    "setpriv",
    "sshd",
    "ssh",
    "ssh-keygen",
    "curl",
];

/// What inventory/oslo.toml's data tier runs on a lab host: MariaDB from
/// the distribution on db01, and backup01's dump script (`mariadb-dump`
/// piped through gzip, checked with sha256sum, by bash).
const DATA: &[&str] = &[
    "mariadbd",
    "mariadb-install-db",
    "mariadb",
    "mariadb-admin",
    "mariadb-dump",
    "bash",
    "gzip",
    "sha256sum",
];

/// A suite: its cfg name, whether it needs root, and the commands it runs.
struct Suite {
    cfg: &'static str,
    root: bool,
    commands: &'static [&'static [&'static str]],
}

const SUITES: &[Suite] = &[
    Suite {
        cfg: "vakt_lab",
        root: true,
        commands: &[LAB, DATA],
    },
    Suite {
        cfg: "vakt_lab_ha",
        root: true,
        commands: &[LAB, &["keepalived"]],
    },
    Suite {
        cfg: "vakt_lab_acme",
        root: true,
        commands: &[
            LAB,
            &["keepalived", "pebble", "pebble-challtestsrv", "openssl"],
        ],
    },
    Suite {
        cfg: "vakt_lab_firewall",
        root: true,
        commands: &[LAB, DATA, &["nft"]],
    },
    Suite {
        cfg: "vakt_lab_sudo",
        root: true,
        commands: &[LAB, DATA, &["sudo", "useradd", "userdel"]],
    },
    Suite {
        cfg: "vakt_lab_systemd",
        root: true,
        commands: &[LAB, &["debootstrap"]],
    },
    Suite {
        cfg: "vakt_haproxy",
        root: false,
        commands: &[&["haproxy"]],
    },
    Suite {
        cfg: "vakt_promtool",
        root: false,
        commands: &[&["haproxy", "halog", "promtool"]],
    },
    Suite {
        cfg: "vakt_pebble",
        root: false,
        commands: &[&["pebble", "pebble-challtestsrv", "openssl", "curl"]],
    },
    Suite {
        cfg: "vakt_rsyslog",
        root: false,
        commands: &[&["rsyslogd"]],
    },
    Suite {
        cfg: "vakt_logrotate",
        root: false,
        commands: &[&["logrotate"]],
    },
    Suite {
        cfg: "vakt_chromium",
        root: false,
        commands: &[&["chromium"]],
    },
    Suite {
        cfg: "vakt_chromium_haproxy",
        root: false,
        commands: &[&["chromium", "haproxy"]],
    },
];

/// Where the commands are looked for: the usual PATH of root and of a user
/// (sshd and keepalived live in sbin, which a user's PATH often lacks).
const DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

fn main() {
    // Installing or removing a package changes these directories' mtime, and
    // cargo then runs this script again. Watching each command's file instead
    // would not do: cargo reruns on every build for a path that is missing.
    for dir in DIRS {
        if Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
    // A build as another user usually changes these; when it does not (a
    // copied target dir under setpriv), the tests' runtime guard still fails
    // with the reason rather than letting a test pass unrun.
    for var in ["USER", "LOGNAME", "SUDO_USER", "HOME"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");

    let root = is_root();
    let mut table = Vec::new();
    for s in SUITES {
        println!("cargo::rustc-check-cfg=cfg({})", s.cfg);
        let commands: Vec<&str> = s.commands.iter().flat_map(|c| c.iter().copied()).collect();
        let ready = (root || !s.root) && commands.iter().all(|c| installed(c));
        if ready {
            println!("cargo::rustc-cfg={}", s.cfg);
        }
        let mut needs = Vec::new();
        if s.root {
            needs.push("root");
        }
        needs.extend(commands);
        table.push(format!("{}={}", s.cfg, needs.join(",")));
    }
    println!("cargo::rustc-env=VAKT_TEST_NEEDS={}", table.join(";"));
    println!("cargo::rustc-env=VAKT_GIT_REV={}", git_revision());
}

/// `git describe`-like: the commit (12 hex digits), with `-dirty` when a
/// tracked file differs from it; "unknown" outside a git checkout (a
/// crates.io or tarball build). Reruns when the commit, the index or a
/// source file changes, so the mark is never stale.
fn git_revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    for file in ["HEAD", "index"] {
        if let Some(p) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo::rerun-if-changed={p}");
        }
    }
    if let Some(top) = git(&["rev-parse", "--show-toplevel"]) {
        for dir in [
            "cli/src",
            "runtime/src",
            "templates",
            "inventory",
            "Cargo.toml",
        ] {
            println!("cargo::rerun-if-changed={top}/{dir}");
        }
    }
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// The effective uid is the owner of `/proc/self` (no libc needed here).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn installed(command: &str) -> bool {
    DIRS.iter().any(|d| {
        std::fs::metadata(Path::new(d).join(command))
            .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
    })
}
