//! `vakt verify` and `vakt audit` against a cluster deployed over SSH in the
//! lab (root only, as on CI): everything passes on a good cluster; a stopped
//! web server, a wrong stats password, a web host that starts listening on a
//! database port and a data host put 50 ms away are each caught and named.

use std::time::Duration;

use crate::lab::Lab;
use crate::support::relay::DelayLink;
use crate::support::{TempDir, needs};

fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn verify_and_audit_prove_a_good_cluster_and_name_what_breaks() {
    needs::require("vakt_lab");
    // oslo.toml with a latency rule: db01 within 20 ms of lb01. The lab's
    // links take well under 1 ms, but on the 2-core CI machine with other
    // suites (Chromium) running alongside, an undelayed median once read
    // 9.4 ms; the 50 ms relay below stays far above 20.
    let dir = TempDir::new("labverify");
    let inv_path = dir.path().join("oslo.toml");
    let oslo = include_str!("../../inventory/oslo.toml");
    std::fs::write(
        &inv_path,
        oslo.replace(
            "[policy]\ndata_countries = [\"NO\"]",
            "[policy]\ndata_countries = [\"NO\"]\nrequire = [\"declared\", \"latency\"]\nrtt_probe = \"lb01\"\nmax_rtt_ms = 20",
        ),
    )
    .unwrap();
    assert!(
        std::fs::read_to_string(&inv_path)
            .unwrap()
            .contains("max_rtt_ms")
    );
    let lab = Lab::up_file("vf", &inv_path.display().to_string());
    let inv = lab.inventory.clone();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");

    // A good cluster: every check passes, in every format.
    let (code, out, err) = lab.vakt(&["verify", "-i", &inv]);
    println!("{out}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(lines_with(&out, "FAIL").is_empty(), "{out}");
    for expected in [
        "lb01       proxy version",
        "lb01       stats page auth",
        "web01      health from lb01",
        "web02      UP on lb01",
        "round robin via 203.0.113.11:80",
        "stayed on web0",
        "db01       db port from web01",
        "data placement (declared)",
    ] {
        assert!(out.contains(expected), "missing `{expected}`:\n{out}");
    }
    let (code, xml, _) = lab.vakt(&["verify", "-i", &inv, "--format", "junit"]);
    assert_eq!(code, 0);
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    let cases = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(suite.attribute("tests"), Some(cases.to_string().as_str()));
    assert_eq!(suite.attribute("failures"), Some("0"));
    assert!(cases >= 12, "{xml}");
    let (code, line, _) = lab.vakt(&["verify", "-i", &inv, "--format", "nagios"]);
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("VAKT OK - ") && line.contains(" | checks="),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);

    let (code, out, err) = lab.vakt(&["audit", "-i", &inv]);
    println!("{out}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("db01       host (role db): compliant"),
        "{out}"
    );
    assert!(out.contains("(median TCP connect): within about"), "{out}");

    // A web server stops: its health check fails and names it.
    let (code, o) = lab.on("web01", &["sh", "/etc/init.d/vakt-demo-web", "stop"]);
    assert_eq!(code, 0, "{o}");
    let (code, out, _) = lab.vakt(&["verify", "-i", &inv]);
    assert_eq!(code, 1, "{out}");
    let fails = lines_with(&out, "FAIL");
    assert!(
        fails
            .iter()
            .any(|l| l.contains("web01      health from lb01") && l.contains("10.10.0.11:80")),
        "{out}"
    );
    let (code, line, _) = lab.vakt(&["verify", "-i", &inv, "--format", "nagios"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.starts_with("VAKT CRITICAL - ") && line.contains("web01 health from lb01"),
        "{line}"
    );
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");

    // The operator's stats password differs from the deployed one.
    let (code, out, _) = lab.ctl(&[
        "env",
        "VAKT_STATS_PASSWORD=not-the-password",
        env!("CARGO_BIN_EXE_vakt"),
        "verify",
        "-i",
        &inv,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        lines_with(&out, "FAIL")
            .iter()
            .any(|l| l.contains("stats page auth") && l.contains("refuses user `admin`")),
        "{out}"
    );

    // A web host starts keeping data: discovered and reported.
    let (code, o) = lab.on(
        "web02",
        &[
            "sh",
            "-c",
            "/usr/local/bin/vakt demo-db --bind 10.10.0.12:3306 --name rogue >/dev/null 2>&1 & echo $! > /run/vakt/rogue.pid; sleep 0.3",
        ],
    );
    assert_eq!(code, 0, "{o}");
    let (code, out, _) = lab.vakt(&["audit", "-i", &inv]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("web02      host (discovered: listens on 3306): violation"),
        "{out}"
    );
    assert!(
        out.contains("- web02: listens on data port 3306 but is not declared data-bearing"),
        "{out}"
    );
    lab.on("web02", &["sh", "-c", "kill $(cat /run/vakt/rogue.pid)"]);

    // db01 50 ms away from everything (a relay holds each frame 25 ms each
    // way): the RTT rule catches it and reports the distance bound.
    let ctl = format!("{}-ctl", lab.name);
    let ip = |args: &[&str]| {
        assert!(
            std::process::Command::new("ip")
                .args(["-n", &ctl])
                .args(args)
                .status()
                .unwrap()
                .success(),
            "ip {args:?}"
        )
    };
    // db01 is the 4th host: its bridge port is vh3.
    ip(&["link", "set", "vh3", "nomaster"]);
    ip(&["link", "add", "rl0", "type", "veth", "peer", "name", "rl1"]);
    ip(&["link", "set", "rl0", "master", "br0", "up"]);
    ip(&["link", "set", "rl1", "up", "promisc", "on"]);
    ip(&["link", "set", "vh3", "promisc", "on"]);
    let far = DelayLink::start(&ctl, "vh3", "rl1", Duration::from_millis(25));
    let (code, out, err) = lab.vakt(&["audit", "-i", &inv]);
    drop(far);
    println!("{out}{err}");
    assert_eq!(code, 1, "{out}");
    let latency = out
        .lines()
        .find(|l| l.contains("latency") && l.contains("exceeds the allowed 20 ms"))
        .unwrap_or_else(|| panic!("no latency violation:\n{out}"));
    let ms: f64 = latency
        .split("RTT ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!((45.0..200.0).contains(&ms), "{latency}");
    assert!(latency.contains("km of lb01"), "{latency}");
}
