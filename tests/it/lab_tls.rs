//! HTTPS deployed over SSH in the lab (root only, as on CI): `[tls]` pushes
//! the PEM to the LB as /etc/vakt/tls/site.pem, mode 0600, through real
//! sshd; curl in the control namespace fetches https through the LB; and
//! `status` and `verify` read the certificate with `openssl x509` over SSH.

use crate::lab::Lab;
use crate::support::pem::self_signed;
use crate::support::{TempDir, needs};

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn https_deployed_over_ssh_serves_the_inventory_certificate() {
    needs::require("vakt_lab");
    let dir = TempDir::new("labtls");
    self_signed(
        dir.path(),
        "site",
        &["shop.test", "www.shop.test"],
        true,
        30,
    );
    let inv_path = dir.path().join("oslo.toml");
    let oslo = include_str!("../../inventory/oslo.toml");
    std::fs::write(
        &inv_path,
        format!(
            "{oslo}\n[tls]\ndomains = [\"shop.test\", \"www.shop.test\"]\npem = \"site.pem\"\n"
        ),
    )
    .unwrap();
    let lab = Lab::up_file("tls", &inv_path.display().to_string());
    let inv = lab.inventory.clone();
    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");

    // On the LB: the operator's file, its owner's alone.
    let (code, mode) = lab.on("lb01", &["stat", "-c", "%a %U", "/etc/vakt/tls/site.pem"]);
    assert_eq!((code, mode.trim()), (0, "600 root"), "{mode}");
    let (_, web) = lab.on("web01", &["ls", "/etc/vakt/tls"]);
    assert!(web.contains("No such file"), "{web}");

    // A client on the public side: https through the LB, http redirected.
    let crt = dir.path().join("site.crt").display().to_string();
    let head = lab.curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--cacert",
        &crt,
        "--resolve",
        "shop.test:443:203.0.113.11",
        "https://shop.test/",
    ]);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    let plain = lab.curl(&["-D", "-", "-o", "/dev/null", "http://203.0.113.11/cart"]);
    assert!(plain.starts_with("HTTP/1.1 301"), "{plain}");

    // status and verify read it over SSH.
    let (code, out, err) = lab.vakt(&["status", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("certificate shop.test, www.shop.test issued by CN = shop.test")
            && out.contains("(29 days left)"),
        "{out}"
    );
    let (code, out, err) = lab.vakt(&["verify", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");
    for expected in [
        "lb01       certificate",
        "lb01       serves its certificate",
        "same certificate on every LB",
        "203.0.113.11:80 redirects to https",
        "round robin via https://shop.test at 203.0.113.11:443",
        "lb01       stats page auth",
    ] {
        assert!(out.contains(expected), "missing `{expected}`:\n{out}");
    }
}
