//! `[tls] acme` against a real ACME server (Debian's pebble, on loopback):
//! `vakt up` gets the first certificate (the first LB orders, HTTP-01
//! answered statelessly by the proxy; the second LB takes it from the
//! first's TLS handshake), both serve it, a second `up` changes nothing,
//! and a renewal reaches both LBs while clients keep connecting, none
//! failing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::deploy::{Down, run};
use super::tls::curl_https;
use super::{local_inventory, tmp};
use crate::support::pebble::Pebble;
use crate::support::{free_addr, needs, vakt};

/// The SHA-256 fingerprint of the certificate `ip:port` serves for `name`.
fn served(name: &str, ip: &str, port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {ip}:{port} -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The SHA-256 fingerprint of the first certificate in PEM file `path`.
fn on_disk(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
#[cfg_attr(
    not(vakt_pebble),
    ignore = "needs pebble, openssl and curl: apt-get install pebble openssl curl (README: Tests)"
)]
fn up_orders_from_pebble_both_lbs_serve_it_and_a_renewal_fails_no_request() {
    needs::require("vakt_pebble");
    let dir = tmp("acme");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let tls_port = free_addr().port();
    let (lb1, lb2) = (format!("{net}.1"), format!("{net}.4"));
    // The CA validates on the cluster's plain port of lb01's address.
    let pebble = Pebble::start(port, &lb1, 3600);
    std::fs::copy(&pebble.ca, dir.path().join("pebble-ca.pem")).unwrap();
    let mut text = std::fs::read_to_string(&inv).unwrap();
    text = text.replace(
        "[[hosts]]\nname = \"web01\"",
        &format!("[[hosts]]\nname = \"lb02\"\nroles = [\"lb\"]\nprivate_ip = \"{lb2}\"\n\n[[hosts]]\nname = \"web01\""),
    );
    text.push_str(&format!(
        "\n[tls]\ndomains = [\"shop.test\", \"www.shop.test\"]\nport = {tls_port}\nacme = {{ directory = \"{}\", email = \"ops@shop.test\", ca_file = \"pebble-ca.pem\" }}\n",
        pebble.directory
    ));
    std::fs::write(&inv, text).unwrap();
    let state = dir.path().join("state");
    let (code, out, err) = run(&["up"], &inv, &state);
    let _down = Down(&inv, &state);
    assert_eq!(code, 0, "{out}{err}\npebble:\n{}", pebble.log());
    assert!(
        out.contains("lb01       acme: ordered a new certificate"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "lb02       acme: took the newer certificate of {lb1}:{tls_port}"
        )),
        "{out}"
    );

    // Both LBs serve the CA's certificate: curl trusts pebble's root, h2.
    let root = pebble.root();
    for lb in [&lb1, &lb2] {
        let head = curl_https(&root, "www.shop.test", lb, tls_port).unwrap();
        assert!(head.contains("status=200 version=2"), "{lb}: {head}");
    }
    let pem1 = state.join("lb01/etc/vakt/tls/site.pem");
    let pem2 = state.join("lb02/etc/vakt/tls/site.pem");
    assert_eq!(on_disk(&pem1), on_disk(&pem2));
    // Keys and certificates are the owner's only.
    for f in [
        "etc/vakt/acme/account.key",
        "etc/vakt/acme/cert.key",
        "etc/vakt/tls/site.pem",
    ] {
        for lb in ["lb01", "lb02"] {
            assert_eq!(mode(&state.join(lb).join(f)), 0o600, "{lb} {f}");
        }
    }
    // The cron entry that renews without anyone.
    let cron = std::fs::read_to_string(state.join("lb01/etc/cron.d/vakt-acme")).unwrap();
    assert!(cron.contains("acme renew --config"), "{cron}");

    // A second up changes nothing and orders nothing; plan shows no key.
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no changes"), "{out}");
    assert!(out.contains("lb01       acme: certificate fresh"), "{out}");
    let (_, plan, _) = run(&["plan", "--format", "json"], &inv, &state);
    assert!(!plan.contains("PRIVATE KEY"), "{plan}");

    // A renewal (forced: the certificate is fresh) under a stream of new
    // TLS connections: lb01 orders and serves the new one, lb02 takes it.
    let before = on_disk(&pem1);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stream = {
        let (stop, ok, failed, root, lb1) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            root.clone(),
            lb1.clone(),
        );
        std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match curl_https(&root, "shop.test", &lb1, tls_port) {
                    Ok(h) if h.contains("status=200") => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        })
    };
    let config = state.join("lb01/etc/vakt/acme.toml");
    let out = vakt()
        .args(["acme", "renew", "--force", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("ordered a new certificate"), "{said}");
    let after = on_disk(&pem1);
    assert_ne!(before, after);
    let deadline = Instant::now() + Duration::from_secs(10);
    while served("shop.test", &lb1, tls_port) != after {
        assert!(
            Instant::now() < deadline,
            "lb01 still serves the old certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = vakt()
        .args(["acme", "renew", "--config"])
        .arg(state.join("lb02/etc/vakt/acme.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("took the newer certificate"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served("shop.test", &lb2, tls_port) != after {
        assert!(
            Instant::now() < deadline,
            "lb02 still serves the old certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let errors = stream.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(ok > 10, "only {ok} requests went through");
    assert_eq!(failed, 0, "{failed} of {} failed: {errors:?}", ok + failed);
    println!("renewal under load: {ok} new TLS connections, 0 failed");
}

/// `vakt check` on a `[tls]` with `text` in place of its certificate line.
fn check_tls(line: &str) -> (bool, String) {
    let dir = tmp("acmeinv");
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    let p = dir.path().join("inv.toml");
    std::fs::write(
        &p,
        format!(
            "[cluster]\nname = \"shop\"\n\n[[hosts]]\nname = \"lb01\"\nroles = [\"lb\"]\npublic_ip = \"203.0.113.11\"\nprivate_ip = \"10.10.0.10\"\n\n[[hosts]]\nname = \"web01\"\nroles = [\"web\"]\nprivate_ip = \"10.10.0.11\"\nweb = {{ port = 80, cookie = \"w1\" }}\n\n[tls]\ndomains = [\"shop.example\"]\n{line}\n"
        ),
    )
    .unwrap();
    let out = vakt().args(["check", "-i"]).arg(&p).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).replace(&p.display().to_string(), "inv.toml"),
    )
}

#[test]
fn acme_problems_name_the_line_and_the_fix() {
    let (ok, err) = check_tls(
        r#"acme = { directory = "https://acme-v02.api.letsencrypt.org/directory", email = "ops@shop.example" }"#,
    );
    assert!(ok, "{err}");
    for (line, want) in [
        (
            r#"acme = { directory = "http://acme.example/dir" }"#,
            "inv.toml:18:22: error: tls.acme.directory \"http://acme.example/dir\" is not an https URL",
        ),
        (
            r#"acme = { email = "ops@shop.example" }"#,
            "tls.acme has no directory",
        ),
        (
            r#"acme = { directory = "https://a.example/dir", email = "ops" }"#,
            "tls.acme.email \"ops\" is not an email address",
        ),
        (
            r#"acme = { directory = "https://a.example/dir", ca_file = "ca.pem" }"#,
            "holds no PEM certificate",
        ),
        (
            "pem = \"site.pem\"\nacme = { directory = \"https://a.example/dir\" }",
            "[tls] has both pem and acme",
        ),
        ("", "[tls] has no pem and no acme"),
    ] {
        let (ok, err) = check_tls(line);
        assert!(!ok, "{line}");
        assert!(err.contains(want), "{line}: {err}");
    }
}
