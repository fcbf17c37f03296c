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
