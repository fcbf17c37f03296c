//! The systemd path of `up`, for real (root only, as on CI): LB01 and Web02
//! of inventory/oslo-ha.toml boot systemd in containers of the lab
//! (`vakt lab up --systemd`, root filesystem from `vakt lab rootfs`, built
//! once with debootstrap from Debian's mirror), the others stay SysV hosts.
//! `up` installs keepalived with apt-get where it is missing, installs
//! units, daemon-reloads, enables and starts; a second `up`
//! touches nothing; a config change reloads the proxy in place; a unit change
//! restarts its service on the new unit; keepalived runs from Debian's own
//! unit and holds the VIP; `verify` passes; `down` stops the units.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::support::{needs, vakt};

/// The root filesystem's folder and mirror, read as `vakt lab rootfs` reads
/// them (the binary inherits this environment): `VAKT_LAB_ROOTFS` and
/// `VAKT_LAB_MIRROR`, else the defaults.
pub(crate) fn rootfs_settings() -> (String, String) {
    let var = |k: &str, default: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    (
        var("VAKT_LAB_ROOTFS", "/var/cache/vakt-lab/rootfs"),
        var("VAKT_LAB_MIRROR", "http://deb.debian.org/debian"),
    )
}

/// A unit property as systemd reports it on a lab host.
pub(crate) fn prop(lab: &Lab, host: &str, unit: &str, p: &str) -> String {
    let (code, out) = lab.on(host, &["systemctl", "show", "--value", "-p", p, unit]);
    assert_eq!(code, 0, "{out}");
    out.trim().to_string()
}

fn served_by(lab: &Lab, url: &str) -> String {
    lab.curl(&["-i", url])
        .lines()
        .find_map(|l| {
            l.strip_prefix("x-served-by: ")
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    not(vakt_lab_systemd),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, debootstrap (README: Tests)"
)]
fn systemd_hosts_get_units_enabled_started_reloaded_and_restarted_only_on_change() {
    needs::require("vakt_lab_systemd");
    let (rootfs, mirror) = rootfs_settings();
    if !std::path::Path::new(&rootfs)
        .join(".vakt-rootfs-complete")
        .exists()
    {
        println!(
            "first run: `vakt lab rootfs` downloads Debian bookworm with debootstrap from {mirror} into {rootfs} (about 670 MB on disk, kept for later runs; takes minutes). VAKT_LAB_ROOTFS and VAKT_LAB_MIRROR change the folder and the mirror."
        );
    }
    let t = Instant::now();
    let out = vakt().args(["lab", "rootfs", &rootfs]).output().unwrap();
    assert!(
        out.status.success(),
        "vakt lab rootfs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("root filesystem ready in {:.1}s", t.elapsed().as_secs_f64());

    // The inventory in a folder of its own, so that templates can sit beside it.
    let dir = crate::cli::tmp("lab-systemd");
    let inv = dir.path().join("oslo-ha.toml");
    std::fs::copy(
        format!("{}/../inventory/oslo-ha.toml", env!("CARGO_MANIFEST_DIR")),
        &inv,
    )
    .unwrap();
    let inv_s = inv.display().to_string();
    let name = format!("sd{}", std::process::id() % 100_000);
    let out = vakt()
        .args(["lab", "--name", &name, "up", "-i", &inv_s])
        .args(["--systemd", "lb01,web02", "--rootfs", &rootfs])
        .output()
        .unwrap();
    let lab = Lab {
        name: name.clone(),
        inventory: inv_s.clone(),
    };
    assert!(
        out.status.success(),
        "lab up: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for h in ["lb01", "web02"] {
        let (_, pid1) = lab.on(h, &["cat", "/proc/1/comm"]);
        assert_eq!(pid1.trim(), "systemd", "{h}");
    }

    // LB01 lacks keepalived: `up` installs it from the host's package
    // manager (the lab has no route out: apt-get takes the package from the
    // root filesystem's own download cache).
    let (code, out) = lab.on(
        "lb01",
        &[
            "sh",
            "-c",
            "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q keepalived",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = lab.vakt(&["plan", "-i", &inv_s]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("will install keepalived"), "{out}");

    // First up: keepalived installed, units written, enabled and started.
    let (code, out, err) = lab.vakt(&["up", "-i", &inv_s]);
    assert_eq!(code, 0, "{out}{err}");
    for (h, unit) in [
        ("lb01", "vakt-proxy"),
        ("lb01", "keepalived"),
        ("web02", "vakt-demo-web"),
    ] {
        assert_eq!(prop(&lab, h, unit, "ActiveState"), "active", "{h} {unit}");
        assert_eq!(
            prop(&lab, h, unit, "UnitFileState"),
            "enabled",
            "{h} {unit}"
        );
    }
    assert_eq!(
        prop(&lab, "lb01", "vakt-proxy", "FragmentPath"),
        "/etc/systemd/system/vakt-proxy.service"
    );
    let (_, dpkg) = lab.on(
        "lb01",
        &["dpkg-query", "-W", "-f", "${Status}", "keepalived"],
    );
    assert_eq!(dpkg.trim(), "install ok installed");
    assert_eq!(
        prop(&lab, "lb01", "keepalived", "FragmentPath"),
        "/lib/systemd/system/keepalived.service",
        "Debian's own keepalived unit"
    );
    for h in ["lb01", "web02"] {
        let (_, state) = lab.on(h, &["systemctl", "is-system-running"]);
        let (_, failed) = lab.on(h, &["systemctl", "--failed", "--no-legend"]);
        assert_eq!(state.trim(), "running", "{h}: {failed}");
    }
    // LB01 (systemd) holds the VIP; through it both web hosts serve.
    // `up` returns once the VRRP group has settled on its master.
    let (_, addrs) = lab.on("lb01", &["ip", "-4", "-o", "addr", "show", "eth0"]);
    let (_, log1) = lab.on("lb01", &["cat", "/var/log/vakt/keepalived.log"]);
    let (_, log2) = lab.on("lb02", &["cat", "/var/log/vakt/keepalived.log"]);
    assert!(
        addrs.contains("203.0.113.10/32"),
        "{addrs}\nlb01's keepalived.log:\n{log1}\nlb02's keepalived.log:\n{log2}"
    );
    let served: std::collections::BTreeSet<String> = (0..6)
        .map(|_| served_by(&lab, "http://203.0.113.10/"))
        .collect();
    assert_eq!(
        served.into_iter().collect::<Vec<_>>(),
        ["web01", "web02"],
        "round robin through the VIP"
    );
    let (code, out, err) = lab.vakt(&["verify", "-i", &inv_s]);
    assert_eq!(code, 0, "{out}{err}");

    // `vakt logs`: journalctl on the systemd hosts (the units' start lines),
    // the files under /var/log/vakt on the others (the VRRP notify lines),
    // in one stream.
    let (code, out, err) = lab.vakt(&["logs", "-i", &inv_s, "--since", "10m"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines().any(|l| l.starts_with("lb01  proxy      | ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("web02 demo-web   | ")),
        "{out}"
    );
    // The request lines went to lb01's own syslog (/dev/log, journald in
    // its container, the default on SSH hosts) and come back from its
    // journal.
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01  proxy      | ") && l.contains(" \"GET / HTTP/1.1\"")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("lb02  keepalived | ")),
        "{out}"
    );

    // Second up: nothing changes, nothing restarts.
    let proxy_pid = prop(&lab, "lb01", "vakt-proxy", "MainPID");
    let web_pid = prop(&lab, "web02", "vakt-demo-web", "MainPID");
    let (code, out, err) = lab.vakt(&["up", "-i", &inv_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("no changes: every host already runs what the inventory says"),
        "{out}"
    );
    assert_eq!(prop(&lab, "lb01", "vakt-proxy", "MainPID"), proxy_pid);
    assert_eq!(prop(&lab, "web02", "vakt-demo-web", "MainPID"), web_pid);

    // A weight: `systemctl reload`, the same process goes on.
    std::fs::write(
        &inv,
        std::fs::read_to_string(&inv)
            .unwrap()
            .replacen("weight = 1", "weight = 2", 1),
    )
    .unwrap();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reload vakt-proxy"), "{out}");
    assert_eq!(prop(&lab, "lb01", "vakt-proxy", "MainPID"), proxy_pid);
    let (_, journal) = lab.on(
        "lb01",
        &["journalctl", "--no-pager", "-u", "vakt-proxy", "-o", "cat"],
    );
    assert!(journal.contains("Reloaded vakt-proxy.service"), "{journal}");

    // A new vakt binary under load: web hosts roll (web02's unit restarts),
    // LB01's proxy is taken over by the new binary through `systemctl
    // reload` (systemd follows the new main process), LB02 (SysV) upgrades
    // through its init script; no request fails.
    let active_since = prop(&lab, "lb01", "vakt-proxy", "ActiveEnterTimestampMonotonic");
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_vakt")).unwrap();
    bytes.extend_from_slice(b"\nvakt test build (systemd lab)\n");
    let new_bin = dir.path().join("vakt-new");
    std::fs::write(&new_bin, bytes).unwrap();
    std::fs::set_permissions(
        &new_bin,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let new_bin = new_bin.display().to_string();
    let up_new = || lab.vakt(&["up", "-i", &inv_s, "--binary", &new_bin]);
    let load = crate::lab_zero_downtime::stream(&lab);
    std::thread::sleep(Duration::from_millis(400));
    let (code, out, err) = up_new();
    std::thread::sleep(Duration::from_millis(400));
    let t = load.stop();
    println!("new binary on systemd LB01 and web02 under load: {t}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("upgrade vakt-proxy")),
        "{out}"
    );
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    assert!(t.ok > 100, "{t}");
    let new_pid = prop(&lab, "lb01", "vakt-proxy", "MainPID");
    assert_ne!(new_pid, proxy_pid, "a new process serves");
    assert_eq!(prop(&lab, "lb01", "vakt-proxy", "ActiveState"), "active");
    assert_eq!(
        prop(&lab, "lb01", "vakt-proxy", "ActiveEnterTimestampMonotonic"),
        active_since,
        "the unit was never restarted: systemd follows the new process"
    );
    let web_pid = prop(&lab, "web02", "vakt-demo-web", "MainPID");

    // A changed unit: daemon-reload, then a restart on it (web02 only: web01
    // is a SysV host and its init script did not change).
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("vakt-demo.service.j2"),
        include_str!("../../templates/vakt-demo.service.j2").to_string() + "# vakt test: unit v2\n",
    )
    .unwrap();
    let (code, out, err) = up_new();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("web02") && l.contains("restart vakt-demo-web")),
        "{out}"
    );
    assert!(
        !out.lines()
            .any(|l| l.starts_with("web01") && l.contains("restart")),
        "{out}"
    );
    assert_ne!(prop(&lab, "web02", "vakt-demo-web", "MainPID"), web_pid);
    assert_eq!(
        prop(&lab, "web02", "vakt-demo-web", "NeedDaemonReload"),
        "no"
    );
    let (_, unit) = lab.on("web02", &["systemctl", "cat", "vakt-demo-web"]);
    assert!(unit.contains("# vakt test: unit v2"), "{unit}");

    // down stops the units.
    let (code, out, err) = lab.vakt(&["down", "-i", &inv_s]);
    assert_eq!(code, 0, "{out}{err}");
    for (h, unit) in [("lb01", "vakt-proxy"), ("web02", "vakt-demo-web")] {
        let state = prop(&lab, h, unit, "ActiveState");
        let (_, status) = lab.on(h, &["systemctl", "status", "--no-pager", "-n", "30", unit]);
        assert_eq!(state, "inactive", "{h} {unit}: {status}");
    }

    // The lab goes with its containers' cgroups.
    drop(lab);
    let left = String::from_utf8_lossy(
        &Command::new("sh")
            .args([
                "-c",
                &format!("ls -d /sys/fs/cgroup/*/vakt-lab-{name}-* /sys/fs/cgroup/vakt-lab-{name}-* 2>/dev/null"),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(left.trim().is_empty(), "cgroups left: {left}");
}
