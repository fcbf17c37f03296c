//! Releases and removal over real SSH in the lab (root only): four
//! deploys, one with another vakt binary, then `rollback --steps 3` back to
//! the first under a request stream (web hosts drained around their
//! restart, the proxy taking its old binary over) with zero failed
//! requests; then `remove` on a web host leaves no vakt file and keeps its
//! history.

use std::path::Path;

use crate::lab::Lab;
use crate::lab_zero_downtime::stream;
use crate::support::{TempDir, needs};

/// Every file under `root`, relative to it.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn rollback_three_releases_back_loses_no_request_and_remove_keeps_the_data() {
    needs::require("vakt_lab");
    let dir = TempDir::new("labrel");
    let inv_path = dir.path().join("oslo.toml");
    let oslo = include_str!("../../inventory/oslo.toml");
    let with_weight = |w: u32| {
        oslo.replace(
            "cookie = \"w1\", weight = 1",
            &format!("cookie = \"w1\", weight = {w}"),
        )
    };
    std::fs::write(&inv_path, oslo).unwrap();
    let lab = Lab::up_file("rl", &inv_path.display().to_string());
    let inv = lab.inventory.clone();
    let host = |h: &str| {
        Path::new("/run/vakt-lab")
            .join(&lab.name)
            .join("hosts")
            .join(h)
    };

    // Release 1: the running binary, weight 1.
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");
    let bin1 = std::fs::read(host("web01").join("usr/local/bin/vakt")).unwrap();
    // Release 2: another binary and weight 2; releases 3 and 4: weights.
    let mut bytes = bin1.clone();
    bytes.extend_from_slice(b"\nvakt lab release 2\n");
    let next = dir.path().join("vakt-next");
    std::fs::write(&next, &bytes).unwrap();
    std::fs::set_permissions(&next, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(&inv_path, with_weight(2)).unwrap();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv, "--binary", &next.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    for w in [3, 4] {
        std::fs::write(&inv_path, with_weight(w)).unwrap();
        let (code, out, err) =
            lab.vakt(&["up", "-i", &inv, "--binary", &next.display().to_string()]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (code, out, err) = lab.vakt(&["releases", "-i", &inv, "--hosts", "lb01"]);
    assert_eq!(code, 0, "{out}{err}");
    let ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.get(2..).and_then(|l| l.split(' ').next()))
        .filter(|id| id.starts_with("20"))
        .collect();
    assert_eq!(ids.len(), 4, "{out}");
    assert!(out.contains(&format!("* {}", ids[3])), "{out}");

    // Three back, under load: release 1's binary and config everywhere.
    let load = stream(&lab);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let (code, out, err) = lab.vakt(&["rollback", "-i", &inv, "--steps", "3"]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let t = load.stop();
    println!("lab: vakt rollback --steps 3 (binary and config) under load: {t}");
    assert_eq!(code, 0, "{out}{err}");
    for h in ["lb01", "web01", "web02", "db01"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(h) && l.contains(&format!("rolled back to {}", ids[0]))),
            "{h}: {out}"
        );
        assert!(
            std::fs::read(host(h).join("usr/local/bin/vakt")).unwrap() == bin1,
            "{h} runs another binary"
        );
    }
    let conf = std::fs::read_to_string(host("lb01").join("etc/vakt/proxy.toml")).unwrap();
    assert!(!conf.contains("weight = 4"), "{conf}");
    assert!(t.ok > 0, "{t}");
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    let (code, out, err) = lab.vakt(&["releases", "-i", &inv, "--hosts", "web01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("* {}", ids[0])), "{out}");
    let (_, out, _) = lab.vakt(&["history", "-i", &inv, "--hosts", "web01"]);
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.contains(&format!("rolled back to {}", ids[0]))),
        "{out}"
    );

    // remove on web02: a preview first, then no vakt file, the history kept.
    let before = files(&host("web02"));
    let (code, out, err) = lab.vakt(&["remove", "-i", &inv, "--hosts", "web02"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  would stop vakt-demo-web"), "{out}");
    assert_eq!(files(&host("web02")), before);
    let (code, out, err) = lab.vakt(&["remove", "-i", &inv, "--hosts", "web02", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let left = files(&host("web02"));
    let vakts: Vec<&String> = left
        .iter()
        .filter(|f| f.contains("vakt"))
        .filter(|f| *f != "var/lib/vakt/history.jsonl" && !f.starts_with("var/log/vakt/"))
        .collect();
    assert!(vakts.is_empty(), "web02 keeps vakt files: {vakts:?}");
    assert!(
        left.iter().any(|f| f == "var/lib/vakt/history.jsonl"),
        "{left:?}"
    );
    let code = |url: &str| lab.curl(&["-o", "/dev/null", "-w", "%{http_code}", url]);
    assert_eq!(code("http://10.10.0.12/"), "000", "web02 still serves");
    // The others keep serving.
    assert_eq!(code("http://10.10.0.10/"), "200");
}
