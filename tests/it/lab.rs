//! The namespace lab and the SSH transport, end to end (root only, as on
//! CI): `vakt lab up` from inventory/oslo.toml, `vakt up` from the control
//! namespace over real sshd, then the cluster is used from there, and
//! `vakt lab down` leaves nothing behind.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::support::{needs, vakt};

pub struct Lab {
    pub name: String,
    pub inventory: String,
}

impl Lab {
    /// A lab named after the test (`tag`) and this process, so that the
    /// lab tests can run at the same time.
    pub fn up(tag: &str, inventory: &str) -> Lab {
        Self::up_file(
            tag,
            &format!("{}/../inventory/{inventory}", env!("CARGO_MANIFEST_DIR")),
        )
    }

    /// A lab from an inventory file anywhere.
    pub fn up_file(tag: &str, inventory: &str) -> Lab {
        let name = format!("{tag}{}", std::process::id() % 100_000);
        let inventory = inventory.to_string();
        let out = vakt()
            .args(["lab", "--name", &name, "up", "-i", &inventory])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "lab up: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Lab { name, inventory }
    }

    /// Runs in the control namespace; (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = vakt()
            .args(["lab", "--name", &self.name, "exec", "ctl", "--"])
            .args(args)
            .env("VAKT_STATS_PASSWORD", "lab-pw")
            .env("VAKT_DB_PASSWORD", "lab-db-pw")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs inside a lab host (its network and filesystem view); (exit code, output).
    pub fn on(&self, host: &str, args: &[&str]) -> (i32, String) {
        let out = vakt()
            .args(["lab", "--name", &self.name, "exec", host, "--"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn vakt(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec![env!("CARGO_BIN_EXE_vakt")];
        all.extend_from_slice(args);
        self.ctl(&all)
    }

    pub fn curl(&self, args: &[&str]) -> String {
        let mut all = vec!["curl", "-s", "-m", "5"];
        all.extend_from_slice(args);
        self.ctl(&all).1
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = vakt().args(["lab", "--name", &self.name, "down"]).output();
    }
}

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn a_cluster_deployed_over_ssh_in_the_lab_balances_sticks_and_keeps_a_failed_host_serving() {
    needs::require("vakt_lab");
    let lab = Lab::up("vt", "oslo.toml");
    let inv = lab.inventory.clone();

    let t = Instant::now();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    let first = t.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    let t = Instant::now();
    let (code, again, err) = lab.vakt(&["up", "-i", &inv]);
    let second = t.elapsed();
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("no changes: every host already runs what the inventory says"),
        "{again}"
    );
    assert!(
        !again.contains("start ") && !again.contains("restart "),
        "{again}"
    );
    let size = std::fs::metadata(env!("CARGO_BIN_EXE_vakt")).map_or(0, |m| m.len());
    println!(
        "vakt up over SSH, 4-host lab: first run {:.2}s, no-change run {:.2}s ({} build, {:.0} MB binary pushed to each host; README quotes the release build)",
        first.as_secs_f64(),
        second.as_secs_f64(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        size as f64 / 1e6
    );

    // SysV services are registered for boot (update-rc.d on this Debian).
    let (_, links) = lab.on("lb01", &["sh", "-c", "ls /etc/rc2.d"]);
    assert!(
        links.contains("vakt-proxy"),
        "no boot link for vakt-proxy: {links}"
    );

    // From the control namespace: round robin, a sticky cart, the stats page.
    let served: Vec<String> = (0..4)
        .map(|_| {
            lab.curl(&["-i", "http://10.10.0.10/"])
                .lines()
                .find_map(|l| {
                    l.strip_prefix("x-served-by: ")
                        .map(|s| s.trim().to_string())
                })
                .unwrap_or_default()
        })
        .collect();
    assert!(
        served.windows(2).all(|w| w[0] != w[1]) && served.contains(&"web01".to_string()),
        "{served:?}"
    );
    let jar = format!("/run/vakt-lab/{}/jar", lab.name);
    lab.curl(&[
        "-c",
        &jar,
        "-b",
        &jar,
        "-X",
        "POST",
        "http://10.10.0.10/cart?item=brunost",
    ]);
    for _ in 0..20 {
        let cart = lab.curl(&["-c", &jar, "-b", &jar, "http://10.10.0.10/cart"]);
        assert!(cart.contains("brunost"), "{cart}");
    }
    assert!(
        lab.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.10.0.10/haproxy?stats"
        ])
        .starts_with("401")
    );
    assert!(
        lab.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            "admin:lab-pw",
            "http://10.10.0.10/haproxy?stats"
        ])
        .starts_with("200")
    );

    // A broken template value: lb01 fails, the web hosts succeed, lb01 still
    // serves its previous config.
    let dir = crate::support::TempDir::new("labtpl");
    let bad_inv = dir.path().join("oslo.toml");
    std::fs::copy(&inv, &bad_inv).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    let good = include_str!("../../templates/proxy.toml.j2");
    std::fs::write(
        dir.path().join("templates/proxy.toml.j2"),
        good.replace(
            "balance = {{ balancer.balance | q }}",
            "balance = \"no-such-algorithm\"",
        ),
    )
    .unwrap();
    let bad = bad_inv.display().to_string();
    let (code, out, err) = lab.vakt(&["up", "-i", &bad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("FAILED")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web01") && !l.contains("FAILED")),
        "{out}"
    );
    assert!(
        lab.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.10.0.10/"
        ])
        .starts_with("200")
    );

    // Host keys: a changed key is refused with ssh's own diagnosis and the
    // fix; `accept-new` records unknown keys on a first contact.
    let known = format!("/run/vakt-lab/{}/keys/known_hosts", lab.name);
    let good = std::fs::read_to_string(&known).unwrap();
    let other = dir.path().join("otherkey");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other)
            .status()
            .unwrap()
            .success()
    );
    let other_key: String = std::fs::read_to_string(other.with_extension("pub"))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let forged: String = good
        .lines()
        .map(|l| format!("{} {other_key}\n", l.split_whitespace().next().unwrap()))
        .collect();
    std::fs::write(&known, forged).unwrap();
    let (code, _, err) = lab.vakt(&["plan", "-i", &inv]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            && err.contains("SHA256:")
            && err.contains("fix: the host's key"),
        "{err}"
    );
    std::fs::write(&known, "").unwrap();
    let accept_new = dir.path().join("accept-new.toml");
    std::fs::write(
        &accept_new,
        std::fs::read_to_string(&inv)
            .unwrap()
            .replace("host_keys = \"strict\"", "host_keys = \"accept-new\""),
    )
    .unwrap();
    let (code, out, err) = lab.vakt(&["plan", "-i", &accept_new.display().to_string()]);
    assert!(code == 0 || code == 2, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&known).unwrap().lines().count(),
        5,
        "one key recorded per host"
    );
    std::fs::write(&known, good).unwrap();

    let (code, out, _) = lab.vakt(&["down", "-i", &inv]);
    assert_eq!(code, 0, "{out}");
    let name = lab.name.clone();
    drop(lab);
    let left = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !left.lines().any(|l| l.starts_with(&format!("{name}-"))),
        "namespaces left: {left}"
    );
    assert!(!Path::new(&format!("/run/vakt-lab/{name}")).exists());
    let procs = String::from_utf8_lossy(
        &Command::new("pgrep")
            .args(["-fa", &format!("/run/vakt-lab/{name}/")])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(procs.trim().is_empty(), "processes left: {procs}");
}
