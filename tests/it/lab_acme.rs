//! ACME through the VIP in the lab (root only, as on CI): Debian's pebble
//! runs in the control namespace on the lab's private network, every name
//! resolves to the VIP for it, and inventory/oslo-ha.toml with `[tls] acme`
//! is deployed over real sshd with real keepalived. Whichever LB holds the
//! VIP answers the HTTP-01 challenge; both end with the same certificate;
//! HTTPS through the VIP speaks h2 and keeps the cart; a renewal reaches
//! both LBs under a stream of new TLS connections with none failing; and a
//! failover keeps serving the same certificate.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::lab_ha::{holder_becomes, holders};
use crate::support::pebble::{Pebble, Place};
use crate::support::{TempDir, needs};

const VIP: &str = "203.0.113.10";
const DOMAIN: &str = "shop.test";

/// The control namespace's address on the lab's private network, where
/// pebble listens (the LBs reach it there; no host uses .254).
fn ctl_private_ip(lab: &Lab) -> std::net::IpAddr {
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            &format!("{}-ctl", lab.name),
            "-o",
            "-4",
            "addr",
            "show",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split('/').next()?.parse::<std::net::Ipv4Addr>().ok())
        .find(|a| a.octets()[..3] == [10, 10, 0])
        .expect("the control namespace has an address on 10.10.0.0/24")
        .into()
}

/// The SHA-256 fingerprint of the certificate `ip:443` serves for DOMAIN,
/// read from the control namespace.
fn served(lab: &Lab, ip: &str) -> String {
    let (_, out, _) = lab.ctl(&[
        "sh",
        "-c",
        &format!(
            "openssl s_client -connect {ip}:443 -servername {DOMAIN} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ),
    ]);
    out.trim().to_string()
}

/// curl over HTTPS through the VIP, trusting pebble's root: the response's
/// `status version served-by` line, then the body.
fn https(lab: &Lab, root: &str, extra: &[&str], path: &str) -> String {
    let resolve = format!("{DOMAIN}:443:{VIP}");
    let url = format!("https://{DOMAIN}{path}");
    let mut args = vec![
        "--cacert",
        root,
        "--resolve",
        &resolve,
        "--http2",
        "-w",
        "\n%{http_code} %{http_version} %header{x-served-by}",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    lab.curl(&args)
}

#[test]
#[cfg_attr(
    not(vakt_lab_acme),
    ignore = "lab acme: needs root and ip, sshd, ssh, curl, util-linux, keepalived, pebble, openssl (README: Tests)"
)]
fn acme_through_the_vip_gives_both_lbs_one_certificate_that_renews_and_survives_failover() {
    needs::require("vakt_lab_acme");
    let dir = TempDir::new("labacme");
    let inv = dir.path().join("oslo-ha.toml");
    let oslo_ha = include_str!("../../inventory/oslo-ha.toml");
    std::fs::write(&inv, oslo_ha).unwrap();
    let lab = Lab::up_file("acme", &inv.display().to_string());

    // Pebble validates on port 80 of the VIP: whichever LB holds it answers.
    let pebble = Pebble::start_in(
        Some(Place {
            netns: &format!("{}-ctl", lab.name),
            ip: ctl_private_ip(&lab),
        }),
        80,
        VIP,
        // 90 days, as Let's Encrypt's: verify wants 14 left (the renewal
        // below is forced).
        90 * 86_400,
    );
    std::fs::copy(&pebble.ca, dir.path().join("pebble-ca.pem")).unwrap();
    std::fs::write(
        &inv,
        format!(
            "{oslo_ha}\n[tls]\ndomains = [\"{DOMAIN}\", \"www.{DOMAIN}\"]\n\
             acme = {{ directory = \"{}\", email = \"ops@{DOMAIN}\", ca_file = \"pebble-ca.pem\" }}\n",
            pebble.directory
        ),
    )
    .unwrap();
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}\npebble:\n{}", pebble.log());
    assert!(out.contains("acme: ordered a new certificate"), "{out}");
    assert!(out.contains("acme: took the newer certificate"), "{out}");
    assert_eq!(holders(&lab), ["lb01"], "{out}");

    // Both LBs serve the CA's certificate, the same one.
    let first = served(&lab, "203.0.113.11");
    assert!(first.contains("Fingerprint"), "{first}");
    assert_eq!(served(&lab, "203.0.113.12"), first);
    assert_eq!(served(&lab, VIP), first);

    // HTTPS through the VIP: h2, and the cart sticks to one web host.
    let root = pebble.root().display().to_string();
    let jar = format!("/run/vakt-lab/{}/jar", lab.name);
    let cookies = ["-c", jar.as_str(), "-b", jar.as_str()];
    let mut served_by = Vec::new();
    for item in ["lefse", "brunost", "kaffe"] {
        let mut extra = cookies.to_vec();
        extra.extend(["-X", "POST"]);
        let out = https(&lab, &root, &extra, &format!("/cart?item={item}"));
        let last = out.lines().last().unwrap_or_default().to_string();
        assert!(last.starts_with("200 2 "), "{out}");
        served_by.push(last.rsplit(' ').next().unwrap_or_default().to_string());
    }
    served_by.dedup();
    assert_eq!(served_by.len(), 1, "the cart moved: {served_by:?}");
    let cart = https(&lab, &root, &cookies, "/cart");
    for item in ["lefse", "brunost", "kaffe"] {
        assert!(cart.contains(item), "{cart}");
    }
    // Plain HTTP through the VIP is redirected.
    let plain = lab.curl(&["-D", "-", "-o", "/dev/null", &format!("http://{VIP}/cart")]);
    assert!(plain.starts_with("HTTP/1.1 301"), "{plain}");
    assert!(
        plain.contains(&format!("location: https://{VIP}/cart")),
        "{plain}"
    );

    // A renewal (forced: the certificate is fresh) under a stream of new
    // TLS connections through the VIP: lb01 orders, lb02 takes it.
    let vakt_acme = |host: &str, force: bool| {
        let mut args = vec!["/usr/local/bin/vakt", "acme", "renew"];
        if force {
            args.push("--force");
        }
        args.extend(["--config", "/etc/vakt/acme.toml"]);
        let (code, out) = lab.on(host, &args);
        assert_eq!(code, 0, "{host}: {out}\npebble:\n{}", pebble.log());
        out
    };
    let wait_for = |ip: &str, old: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = served(&lab, ip);
            if now != old && now.contains("Fingerprint") {
                return now;
            }
            assert!(Instant::now() < deadline, "{ip} still serves {old}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let stop = AtomicBool::new(false);
    let (ok, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (renewed, errors) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = https(&lab, &root, &["-o", "/dev/null"], "/");
                if out.trim_start().starts_with("200 2 ") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.push(out);
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            errors
        });
        let said = vakt_acme("lb01", true);
        assert!(said.contains("ordered a new certificate"), "{said}");
        let renewed = wait_for("203.0.113.11", &first);
        let said = vakt_acme("lb02", false);
        assert!(said.contains("took the newer certificate"), "{said}");
        assert_eq!(wait_for("203.0.113.12", &first), renewed);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        (renewed, load.join().unwrap())
    });
    let (ok, failed) = (ok.into_inner(), failed.into_inner());
    assert!(ok > 10, "only {ok} requests went through: {errors:?}");
    assert_eq!(failed, 0, "{failed} of {} failed: {errors:?}", ok + failed);
    println!("lab renewal through the VIP: {ok} new TLS connections, 0 failed");

    // A failover: lb02 holds the VIP and serves the same certificate.
    let (code, out, err) = lab.vakt(&["failover", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    holder_becomes(&lab, "lb02", Duration::from_secs(2));
    assert_eq!(served(&lab, VIP), renewed);
    let out = https(&lab, &root, &cookies, "/cart");
    assert!(out.contains("lefse"), "cart lost after failover: {out}");
    assert!(
        out.lines().last().unwrap_or_default().starts_with("200 2 "),
        "{out}"
    );

    // verify agrees: one certificate, enough days left, on both LBs (lb01's
    // keepalived stays stopped after the failover, until the next `up`).
    let (_, out, _) = lab.vakt(&["verify", "-i", &lab.inventory]);
    let failed: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{out}");
    assert!(failed[0].contains("lb01       keepalived"), "{out}");
    assert!(
        out.contains("PASS  cluster    same certificate on every LB"),
        "{out}"
    );
    for lb in ["lb01", "lb02"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("PASS  {lb}       certificate"))),
            "{out}"
        );
    }
}
