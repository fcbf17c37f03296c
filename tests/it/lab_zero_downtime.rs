//! Zero-downtime operations in the lab (root only, as on CI), each under a
//! continuous, bounded stream of requests from the control namespace to
//! LB01, asserting zero failed requests: a rolling restart of the web
//! hosts, ten config reloads, a new vakt binary rolled out by `vakt up`, and
//! a web server killed hard while in rotation.

use std::net::SocketAddr;
use std::time::Duration;

use crate::lab::Lab;
use crate::support::{Load, LoadOptions, TempDir, Totals, needs};

/// 4 keep-alive clients in the control namespace sending to LB01.
pub(crate) fn stream(lab: &Lab) -> Load {
    Load::start_with(
        SocketAddr::from(([10, 10, 0, 10], 80)),
        "/",
        4,
        500_000,
        Duration::from_secs(120),
        LoadOptions {
            netns: Some(format!("{}-ctl", lab.name)),
            ..LoadOptions::default()
        },
    )
}

fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

fn assert_clean(what: &str, t: &Totals) {
    println!("{what}: {t}");
    assert!(t.ok > 0, "{what}: {t}");
    assert_eq!(t.failed, 0, "{what}: {t}: {:?}", t.failures);
}

/// The proxy's retry and redispatch counters for a server, from `show stat`.
fn retries(lab: &Lab, server: &str) -> (u64, u64) {
    let (_, csv) = lab.on(
        "lb01",
        &[
            "/usr/local/bin/vakt",
            "proxy",
            "admin",
            "--socket",
            "/run/vakt/admin.sock",
            "show",
            "stat",
        ],
    );
    let mut lines = csv.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let row: Vec<&str> = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&server))
        .unwrap_or_else(|| panic!("no row for {server}:\n{csv}"));
    (
        row[col("wretr")].parse().unwrap_or(0),
        row[col("wredis")].parse().unwrap_or(0),
    )
}

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn rolling_restarts_reloads_an_upgrade_and_a_killed_server_lose_no_request() {
    needs::require("vakt_lab");
    let dir = TempDir::new("labzd");
    let inv_path = dir.path().join("oslo.toml");
    let oslo = include_str!("../../inventory/oslo.toml");
    std::fs::write(&inv_path, oslo).unwrap();
    let lab = Lab::up_file("zd", &inv_path.display().to_string());
    let inv = lab.inventory.clone();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");

    // 1. A rolling restart of both web hosts.
    let load = stream(&lab);
    settle();
    let (code, out, err) = lab.vakt(&[
        "rolling",
        "-i",
        &inv,
        "--exec",
        "sh /etc/init.d/vakt-demo-web restart",
    ]);
    settle();
    let t = load.stop();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rolling done: web01, web02"), "{out}");
    assert_clean("lab: vakt rolling --exec 'restart demo-web'", &t);

    // 2. Ten config changes in a row (web01's weight), each a reload.
    let load = stream(&lab);
    settle();
    for w in 2..12 {
        std::fs::write(
            &inv_path,
            oslo.replace(
                "cookie = \"w1\", weight = 1",
                &format!("cookie = \"w1\", weight = {w}"),
            ),
        )
        .unwrap();
        let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("lb01") && l.contains("reload vakt-proxy")),
            "{out}"
        );
    }
    settle();
    let t = load.stop();
    assert_clean("lab: 10 proxy reloads (weight changes) through vakt up", &t);

    // 3. A new vakt binary: web hosts restart one at a time, the proxy's
    //    new process takes over its sockets.
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_vakt")).unwrap();
    bytes.extend_from_slice(b"\nvakt lab test build\n");
    let next = dir.path().join("vakt-next");
    std::fs::write(&next, bytes).unwrap();
    std::fs::set_permissions(&next, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let load = stream(&lab);
    settle();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv, "--binary", &next.display().to_string()]);
    settle();
    let t = load.stop();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("upgrade vakt-proxy")),
        "{out}"
    );
    assert_clean(
        "lab: vakt up with a new binary (rolling + proxy takeover)",
        &t,
    );

    // 4. web02's server killed hard while in rotation: requests that could
    //    not connect are retried on web01 by the proxy.
    let (r0, d0) = retries(&lab, "web02");
    let load = stream(&lab);
    settle();
    let pidfile = format!(
        "/run/vakt-lab/{}/hosts/web02/run/vakt/vakt-demo-web.pid",
        lab.name
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the pid the host's init script recorded.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_secs(3));
    let t = load.stop();
    let (r1, d1) = retries(&lab, "web02");
    println!(
        "lab: web02 SIGKILLed in rotation: {} connection retries, {} redispatched to web01",
        r1 - r0,
        d1 - d0
    );
    assert_clean("lab: a web server killed hard (SIGKILL)", &t);
}
