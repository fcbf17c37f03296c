//! The tutorial's haproxy.cfg (tests/data/tutorial-haproxy.cfg, HAProxy 1.4
//! syntax that HAProxy 2.6 refuses) runs under vakt. The test uses a copy
//! with only the addresses changed to loopback ones.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{Backend, TempDir, eventually, free_addr, get, set_cookie_value, vakt};

#[test]
fn the_tutorial_config_runs_balances_sticks_and_serves_stats() {
    let web01 = Backend::spawn("web01");
    let web02 = Backend::spawn("web02");
    let front = free_addr();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/tutorial-haproxy.cfg"
    ))
    .unwrap();
    let copy = text
        .replace("0.0.0.0:80", &front.to_string())
        .replace("10.10.0.11:80", &web01.addr.to_string())
        .replace("10.10.0.12:80", &web02.addr.to_string());
    // The file asks for `user haproxy`; without that account (no haproxy
    // package) stay root rather than fail.
    let has_user = std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("haproxy:"));
    let copy = if has_user {
        copy
    } else {
        copy.replace("    user haproxy\n", "")
            .replace("    group haproxy\n", "")
    };
    let dir = TempDir::new("tutorial");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, copy).unwrap();

    let check = vakt()
        .args(["proxy", "-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("plain text"),
        "the plaintext stats password is flagged"
    );

    // `daemon` is in the file; -db keeps it in the foreground as with HAProxy.
    let mut child = vakt()
        .args(["proxy", "-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(front).is_ok()
    }));

    let a = get(front, "/", &[]);
    let b = get(front, "/", &[]);
    assert_ne!(a.served_by(), b.served_by(), "round robin");
    let sid = set_cookie_value(&a, "SERVERID").expect("cookie inserted");
    for _ in 0..3 {
        assert_eq!(
            get(front, "/", &[("Cookie", &format!("SERVERID={sid}"))]).served_by(),
            a.served_by()
        );
    }
    assert_eq!(get(front, "/haproxy?stats", &[]).status, 401);
    let auth = format!(
        "Basic {}",
        crate::support::base64(b"admin:SuperSecretPassword123")
    );
    let stats = get(front, "/haproxy?stats", &[("Authorization", &auth)]);
    assert_eq!(stats.status, 200);
    assert!(stats.text().contains("web02"));
    // httpclose: the client connection is closed after each response.
    assert_eq!(a.header("connection"), Some("close"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn import_turns_the_tutorial_into_a_valid_toml_config_with_notes() {
    let cfg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/tutorial-haproxy.cfg"
    );
    let out = vakt().args(["import", cfg]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(
        toml.contains("# 18:5: `contimeout` is HAProxy 1.4's spelling of `timeout connect`"),
        "{toml}"
    );
    assert!(
        !toml.contains("SuperSecretPassword123"),
        "the plain password must not be copied"
    );
    let dir = TempDir::new("import");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, &toml).unwrap();
    let check = vakt()
        .args(["proxy", "--check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
    let frag = vakt()
        .args(["import", "--inventory-fragment", cfg])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&frag.stdout).contains("[balancer]"));
}

#[test]
fn frontends_route_by_path_and_host_and_daemon_mode_writes_a_pidfile() {
    let (api, shop, web) = (
        Backend::spawn("api01"),
        Backend::spawn("shop01"),
        Backend::spawn("web01"),
    );
    let front = free_addr();
    let dir = TempDir::new("routing");
    let pidfile = dir.path().join("vakt.pid");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    daemon\n    pidfile {}\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend www\n    bind {front}\n    acl is_api path_beg /api/ /v2/\n    acl is_shop hdr(host) -i shop.example\n    use_backend b_api if is_api\n    use_backend b_shop if is_shop\n    default_backend b_web\n\
             backend b_api\n    server api01 {}\nbackend b_shop\n    server shop01 {}\nbackend b_web\n    server web01 {}\n",
            pidfile.display(),
            api.addr,
            shop.addr,
            web.addr
        ),
    )
    .unwrap();
    // `daemon` in the file: the command returns once the proxy has detached.
    let status = vakt().args(["proxy", "-f"]).arg(&cfg).status().unwrap();
    assert!(status.success());
    assert!(eventually(Duration::from_secs(10), || pidfile.exists()
        && std::net::TcpStream::connect(front).is_ok()));
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(get(front, "/api/users", &[]).served_by(), "api01");
    assert_eq!(get(front, "/v2/x", &[]).served_by(), "api01");
    let r = crate::support::raw(
        front,
        b"GET / HTTP/1.1\r\nHost: Shop.Example:80\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.served_by(), "shop01");
    assert_eq!(get(front, "/anything", &[]).served_by(), "web01");
    let killed = std::process::Command::new("kill")
        .arg(&pid)
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(front).is_err()
    }));
}
