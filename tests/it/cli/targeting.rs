//! `up --hosts` on a local cluster: it changes only the hosts named, and is
//! refused (changing nothing) when a load balancer left out would have to
//! change too, naming the flag that includes it; `plan --hosts` shows only
//! the hosts named; `down --hosts` stops only those.

use super::deploy::{Cluster, run};

#[test]
fn up_hosts_changes_only_those_and_refuses_to_leave_a_changed_lb_behind() {
    let c = Cluster::up("up-hosts");
    let (inv, state) = (c.inv.clone(), c.state.clone());
    let sha = |host: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(state.join(host).join("usr/local/bin/vakt")).unwrap(),
        ))
    };
    // A new build for web01 only: LB files stay as they are, so it is allowed.
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_vakt")).unwrap();
    bytes.extend_from_slice(b"\nvakt test build for web01\n");
    let copy = c.dir.path().join("vakt-next");
    std::fs::write(&copy, bytes).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (before_lb, before_web02) = (sha("lb01"), sha("web02"));
    let bin = copy.display().to_string();
    let (code, out, _) = run(
        &["plan", "--hosts", "web01", "--binary", &bin],
        &inv,
        &state,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("web01:") && !out.contains("lb01:") && !out.contains("web02:"),
        "{out}"
    );
    let (code, out, err) = run(&["up", "--hosts", "web01", "--binary", &bin], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("not selected (unchanged): lb01, web02"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web01") && l.contains("restart vakt-demo-web")),
        "{out}"
    );
    assert_ne!(sha("web01"), before_web02);
    assert_eq!(sha("web02"), before_web02);
    assert_eq!(sha("lb01"), before_lb);

    // A weight change must reach lb01's config: web01 alone is refused.
    let text = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, text.replacen("weight = 1", "weight = 3", 1)).unwrap();
    let conf = std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml")).unwrap();
    let (code, out, err) = run(&["up", "--hosts", "web01", "--binary", &bin], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("lb01 (/etc/vakt/proxy.toml)") && err.contains("--hosts web01,lb01"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml")).unwrap(),
        conf,
        "a refused up changed lb01"
    );
    let (code, out, err) = run(
        &["up", "--hosts", "web01,lb01", "--binary", &bin],
        &inv,
        &state,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml"))
            .unwrap()
            .contains("weight = 3"),
    );

    // down --hosts stops only those; the others keep running.
    let (code, out, err) = run(&["down", "--hosts", "web02"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "web02      stopped vakt-demo-web", "{out}");
    let (_, out, _) = run(&["status"], &inv, &state);
    assert!(
        out.contains("vakt-demo-web stopped") && out.contains("vakt-proxy running"),
        "{out}"
    );
    assert_eq!(out.matches("vakt-demo-web running").count(), 1, "{out}");
}
