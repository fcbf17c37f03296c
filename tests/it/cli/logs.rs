//! `vakt logs` on a local cluster: the proxy's real log lines and the other
//! hosts' lines come merged by time with host and service prefixes;
//! `--hosts` and SERVICE narrow them; `-f` prints lines written later.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use super::deploy::{Cluster, run};
use crate::support::{get, vakt};

fn append(path: &Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn logs_merge_hosts_by_time_and_follow_new_lines() {
    let c = Cluster::up("logs");
    let r = get(c.lb, "/logs-probe-1", &[]);
    let _ = r.text();
    let web01 = c.state.join("web01/var/log/vakt/demo-web.log");
    let web02 = c.state.join("web02/var/log/vakt/demo-web.log");
    // Written out of order on purpose: the merge puts 10:00:01 first.
    append(&web02, "2020-01-01T10:00:02Z web02 second");
    append(&web01, "2020-01-01T10:00:01Z web01 first");
    let proxy_log = c.state.join("lb01/var/log/vakt/access.log");
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(&proxy_log).is_ok_and(|t| t.contains("/logs-probe-1"))
        }),
        "the proxy did not log the request"
    );

    let (code, out, err) = run(&["logs"], &c.inv, &c.state);
    assert_eq!(code, 0, "{out}{err}");
    let first = out.find("web01 demo-web   | 2020-01-01T10:00:01Z web01 first");
    let second = out.find("web02 demo-web   | 2020-01-01T10:00:02Z web02 second");
    let probe = out.find("/logs-probe-1");
    assert!(
        first.is_some() && second.is_some() && probe.is_some(),
        "missing lines:\n{out}"
    );
    assert!(
        first < second && second < probe,
        "not merged by time:\n{out}"
    );
    assert!(out.contains("lb01  proxy      | "), "{out}");

    // --hosts and SERVICE narrow; --since drops the old lines.
    let (code, out, _) = run(&["logs", "--hosts", "web02"], &c.inv, &c.state);
    assert_eq!(code, 0);
    assert!(out.contains("web02 second") && !out.contains("web01") && !out.contains("lb01"));
    let (code, out, _) = run(&["logs", "proxy", "--since", "10m"], &c.inv, &c.state);
    assert_eq!(code, 0);
    assert!(
        out.contains("/logs-probe-1") && !out.contains("demo-web"),
        "{out}"
    );
    let (code, _, err) = run(&["logs", "--since", "10"], &c.inv, &c.state);
    assert_eq!(code, 2, "a unitless --since is a usage error: {err}");

    // -f: lines written after it started appear, with their host.
    let mut follow = vakt()
        .args(["logs", "-f", "-n", "0", "-i"])
        .arg(&c.inv)
        .arg("--state-dir")
        .arg(&c.state)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    append(&web02, "2030-01-01T00:00:00Z web02 later");
    let _ = get(c.lb, "/logs-probe-2", &[]).text();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !(seen.iter().any(|l: &String| l.contains("web02 later"))
            && seen.iter().any(|l| l.contains("/logs-probe-2")))
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("web02 demo-web   | 2030-01-01T00:00:00Z web02 later")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("lb01  proxy") && l.contains("/logs-probe-2")),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("/logs-probe-1")),
        "-n 0 printed old lines: {seen:#?}"
    );
}

/// The rendered logrotate rules, run by Debian's logrotate against the
/// local cluster's files: the request log (0640) is moved away, the
/// proxy's reload makes it write a new one, no line lands in the old file
/// after the move and none is lost.
#[test]
#[cfg_attr(
    not(vakt_logrotate),
    ignore = "needs logrotate: apt-get install logrotate (README: Tests)"
)]
fn logrotate_moves_the_request_log_and_the_proxy_writes_a_new_one() {
    use std::os::unix::fs::PermissionsExt;
    crate::support::needs::require("vakt_logrotate");
    let c = Cluster::up("rotate");
    let access = c.state.join("lb01/var/log/vakt/access.log");
    let logged = |path: &Path, what: &str| {
        crate::support::eventually(Duration::from_secs(5), || {
            std::fs::read_to_string(path).is_ok_and(|t| t.contains(what))
        })
    };
    let _ = get(c.lb, "/before-rotation", &[]);
    assert!(logged(&access, "/before-rotation"), "not logged");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&access),
        0o640,
        "the request log is not world-readable"
    );

    let rules = c.state.join("lb01/etc/logrotate.d/vakt");
    let out = std::process::Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(c.dir.path().join("logrotate.status"))
        .arg(&rules)
        .output()
        .expect("run logrotate");
    assert!(
        out.status.success(),
        "logrotate {}: {}{}",
        rules.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated = c.state.join("lb01/var/log/vakt/access.log.1");
    assert!(logged(&rotated, "/before-rotation"), "the old lines moved");

    let _ = get(c.lb, "/after-rotation", &[]);
    assert!(
        logged(&access, "/after-rotation"),
        "the proxy writes the new file"
    );
    assert_eq!(mode(&access), 0o640);
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("/after-rotation"), "{old}");
}
