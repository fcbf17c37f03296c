//! HTTPS on the load balancers from the inventory (issue #17, deploy side):
//! `[tls]` validates with file:line errors, renders the listener's `tls`
//! table, pushes the PEM to every LB with mode 0600, and `plan` says "key
//! changed" without printing the key. Real parts: `openssl req` makes the
//! certificates, a local cluster serves them, curl fetches through the LB.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::deploy::{Down, run};
use super::{local_inventory, tmp};
use crate::support::pem::self_signed;
use crate::support::{TempDir, free_addr, vakt};

/// `vakt check` on `text` written as `inv.toml` in `dir`: success, stderr.
fn check(dir: &Path, text: &str) -> (bool, String) {
    let p = dir.join("inv.toml");
    std::fs::write(&p, text).unwrap();
    let out = vakt().args(["check", "-i"]).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&p.display().to_string(), "inv.toml");
    (out.status.success(), err)
}

const BASE: &str = r#"[cluster]
name = "shop"

[[hosts]]
name = "lb01"
roles = ["lb"]
public_ip = "203.0.113.11"
private_ip = "10.10.0.10"

[[hosts]]
name = "web01"
roles = ["web"]
private_ip = "10.10.0.11"
web = { port = 80, cookie = "w1" }
"#;

#[test]
fn tls_problems_name_the_inventory_line_and_the_fix() {
    let dir = TempDir::new("tlsinv");
    let pem = self_signed(dir.path(), "site", &["shop.test", "*.shop.test"], true, 30);
    let good = format!(
        "{BASE}\n[tls]\ndomains = [\"shop.test\", \"www.shop.test\"]\npem = \"site.pem\"\n"
    );
    let (ok, err) = check(dir.path(), &good);
    assert!(ok, "{err}");
    assert!(pem.is_file());

    // Line 17 is `domains`, line 18 `pem`.
    let cases = [
        (
            "pem = \"missing.pem\"",
            "inv.toml:18:7: error: tls.pem ",
            "missing.pem: No such file",
        ),
        (
            // The certificate alone, without its key.
            "pem = \"site.crt\"",
            "inv.toml:18:7: error: tls.pem ",
            "holds no private key",
        ),
        (
            "pem = \"site.pem\"\nhsts = \"31536000\"",
            "inv.toml:19:8: error: tls.hsts \"31536000\" does not start with max-age=",
            "max-age=31536000",
        ),
        (
            "pem = \"site.pem\"\nport = 80",
            "error: tls.port 80 is also the cluster's plain HTTP port",
            "give [tls] another port",
        ),
    ];
    for (pem_line, want, hint) in cases {
        let text = good.replace("pem = \"site.pem\"", pem_line);
        let (ok, err) = check(dir.path(), &text);
        assert!(!ok, "{pem_line}: accepted");
        assert!(err.contains(want), "want {want:?}\ngot:\n{err}");
        assert!(err.contains(hint), "want {hint:?}\ngot:\n{err}");
    }
    // A domain the certificate does not name points at that domain.
    let text = good.replace("\"www.shop.test\"]", "\"a.b.shop.test\"]");
    let (ok, err) = check(dir.path(), &text);
    assert!(!ok);
    assert!(
        err.contains(
            "inv.toml:17:25: error: tls.domains \"a.b.shop.test\" is not a name of the certificate"
        ) && err.contains("(it has: shop.test, *.shop.test)"),
        "{err}"
    );
    // No key material in any message.
    assert!(!err.contains("PRIVATE KEY"), "{err}");
}

#[test]
fn the_tls_listener_renders_into_proxy_toml() {
    let dir = TempDir::new("tlsrender");
    let out = TempDir::new("tlsout");
    let state = TempDir::new("tlsstate");
    self_signed(dir.path(), "site", &["shop.example"], true, 30);
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let base = std::fs::read_to_string(format!("{repo}/inventory/oslo-ha.toml")).unwrap();
    std::fs::write(
        dir.path().join("oslo-ha.toml"),
        format!("{base}\n[tls]\ndomains = [\"shop.example\"]\npem = \"site.pem\"\nhsts = \"max-age=31536000\"\n"),
    )
    .unwrap();
    let r = vakt()
        .current_dir(dir.path())
        .args(["render", "-i", "oslo-ha.toml", "--state-dir"])
        .arg(state.path())
        .arg("--out")
        .arg(out.path())
        .env("VAKT_STATS_PASSWORD", "snapshot-password")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for lb in ["lb01", "lb02"] {
        let toml =
            std::fs::read_to_string(out.path().join(lb).join("etc/vakt/proxy.toml")).unwrap();
        insta::assert_snapshot!(format!("tls__oslo-ha__{lb}__proxy.toml"), toml);
        let pem = out.path().join(lb).join("etc/vakt/tls/site.pem");
        let mode = std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", pem.display());
    }
    // Web hosts get no key.
    assert!(!out.path().join("web01/etc/vakt/tls").exists());
}

/// `curl` over https to the LB at `ip:port` as `name`, trusting `ca`: the
/// status, the HTTP version and the headers.
pub(super) fn curl_https(ca: &Path, name: &str, ip: &str, port: u16) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "5"])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("{name}:{port}:{ip}")])
        .args(["-w", "status=%{http_code} version=%{http_version}\n"])
        .arg(format!("https://{name}:{port}/"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn up_serves_https_with_the_inventory_pem_and_plan_hides_a_changed_key() {
    let dir = tmp("tlsup");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let tls_port = free_addr().port();
    self_signed(
        dir.path(),
        "site",
        &["shop.test", "www.shop.test"],
        true,
        30,
    );
    let mut text = std::fs::read_to_string(&inv).unwrap();
    text.push_str(&format!(
        "\n[tls]\ndomains = [\"shop.test\", \"www.shop.test\"]\npem = \"site.pem\"\nport = {tls_port}\nhsts = \"max-age=600\"\n"
    ));
    std::fs::write(&inv, text).unwrap();
    let state = dir.path().join("state");
    let lb = format!("{net}.1");
    let (code, out, err) = run(&["up"], &inv, &state);
    let _down = Down(&inv, &state);
    assert_eq!(code, 0, "{out}{err}");

    // Through the LB over TLS, h2 by ALPN, HSTS from the inventory.
    let crt = dir.path().join("site.crt");
    let head = curl_https(&crt, "www.shop.test", &lb, tls_port).unwrap();
    assert!(head.contains("status=200 version=2"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=600"),
        "{head}"
    );
    // Plain HTTP is sent to https (redirect is on by default).
    let plain = crate::support::get(format!("{lb}:{port}").parse().unwrap(), "/cart", &[]);
    assert_eq!(plain.status, 301);

    // On the LB: the operator's file byte for byte, readable by its owner only.
    let pushed = state.join("lb01/etc/vakt/tls/site.pem");
    let mode = std::fs::metadata(&pushed).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read(&pushed).unwrap(),
        std::fs::read(dir.path().join("site.pem")).unwrap()
    );
    assert!(!state.join("web01/etc/vakt/tls").exists());

    // A new certificate and key: plan says so and shows neither.
    self_signed(
        dir.path(),
        "site",
        &["shop.test", "www.shop.test"],
        true,
        30,
    );
    let (code, out, err) = run(&["plan"], &inv, &state);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("/etc/vakt/tls/site.pem: key changed (secret, not shown)"),
        "{out}"
    );
    assert!(out.contains("will reload vakt-proxy"), "{out}");
    let (_, json, _) = run(&["plan", "--format", "json"], &inv, &state);
    for shown in [&out, &err, &json] {
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains("BEGIN CERTIFICATE"), "{shown}");
    }
    assert!(json.contains("(secret: not shown)"), "{json}");

    // up puts it in place, and new handshakes get it.
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let head = curl_https(&crt, "shop.test", &lb, tls_port).unwrap();
    assert!(head.contains("status=200"), "{head}");

    // verify goes through https like clients (plain HTTP only redirects),
    // and sees the new certificate served.
    let (code, report) = verify(&inv, &state);
    assert_eq!(code, 0, "{report:#}");
    let (_, evidence) = verdict(
        &report,
        "cluster",
        &format!("{lb}:{port} redirects to https"),
    );
    assert!(evidence.contains("answers 301 to https://"), "{evidence}");
    let (_, evidence) = verdict(&report, "lb01", "serves its certificate");
    assert!(evidence.contains("https://shop.test at "), "{evidence}");
    let entry = format!("round robin via https://shop.test at {lb}:{tls_port}");
    assert!(verdict(&report, "cluster", &entry).0);
}

/// The `verify --format json` check of `subject` named `name`: (ok, evidence).
fn verdict(report: &serde_json::Value, subject: &str, name: &str) -> (bool, String) {
    let c = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == subject && c["name"] == name)
        .unwrap_or_else(|| panic!("no check {subject}/{name} in {report:#}"));
    (
        c["ok"].as_bool().unwrap(),
        c["evidence"].as_str().unwrap().to_string(),
    )
}

fn verify(inv: &Path, state: &Path) -> (i32, serde_json::Value) {
    let (code, out, err) = run(&["verify", "--format", "json"], inv, state);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, report)
}

#[test]
fn status_and_verify_show_each_lbs_certificate_and_fail_on_drift_or_few_days_left() {
    let dir = tmp("tlsverify");
    let (inv, net, _) = local_inventory(dir.path(), "");
    let tls_port = free_addr().port();
    self_signed(
        dir.path(),
        "site",
        &["shop.test", "www.shop.test"],
        true,
        30,
    );
    let mut text = std::fs::read_to_string(&inv).unwrap();
    text.push_str(&format!(
        "\n[[hosts]]\nname = \"lb02\"\nroles = [\"lb\"]\nprivate_ip = \"{net}.4\"\n\n\
         [tls]\ndomains = [\"shop.test\", \"www.shop.test\"]\npem = \"site.pem\"\nport = {tls_port}\nredirect = false\n"
    ));
    std::fs::write(&inv, text).unwrap();
    let state = dir.path().join("state");
    let (code, out, err) = run(&["up"], &inv, &state);
    let _down = Down(&inv, &state);
    assert_eq!(code, 0, "{out}{err}");

    // status: each LB's certificate, names, issuer, not after, days left.
    let (code, out, err) = run(&["status"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.contains(
                "certificate shop.test, www.shop.test issued by CN = shop.test, not after 20",
            )
        })
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.ends_with("(29 days left)")), "{out}");
    let (_, json, _) = run(&["status", "--format", "json"], &inv, &state);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let lb01 = &json["hosts"].as_array().unwrap()[0];
    assert_eq!(lb01["host"], "lb01");
    assert_eq!(lb01["certificate"]["days_left"], 29, "{lb01:#}");
    assert_eq!(lb01["certificate"]["names"][1], "www.shop.test");

    // verify: both pass, and they are the same.
    let (code, report) = verify(&inv, &state);
    assert_eq!(code, 0, "{report:#}");
    for lb in ["lb01", "lb02"] {
        let (ok, evidence) = verdict(&report, lb, "certificate");
        assert!(ok, "{evidence}");
        assert!(evidence.contains("(29 days left)"), "{evidence}");
    }
    let (ok, evidence) = verdict(&report, "cluster", "same certificate on every LB");
    assert!(ok, "{evidence}");
    for lb in ["lb01", "lb02"] {
        let (ok, evidence) = verdict(&report, lb, "serves its certificate");
        assert!(ok, "{evidence}");
    }

    // One LB drifts to another certificate: verify says which has which.
    let other = self_signed(
        dir.path(),
        "other",
        &["shop.test", "www.shop.test"],
        true,
        30,
    );
    std::fs::copy(&other, state.join("lb02/etc/vakt/tls/site.pem")).unwrap();
    let (code, report) = verify(&inv, &state);
    assert_eq!(code, 1);
    let (ok, evidence) = verdict(&report, "cluster", "same certificate on every LB");
    assert!(!ok);
    assert!(
        evidence.contains("the LBs serve different certificates (lb01 has ")
            && evidence.contains(", lb02 has "),
        "{evidence}"
    );

    // A certificate with 10 days left, deployed everywhere: verify fails it.
    self_signed(
        dir.path(),
        "site",
        &["shop.test", "www.shop.test"],
        true,
        10,
    );
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let (code, report) = verify(&inv, &state);
    assert_eq!(code, 1);
    let (ok, evidence) = verdict(&report, "lb01", "certificate");
    assert!(!ok);
    assert!(
        evidence.contains("(9 days left): under 14 days left; renew it"),
        "{evidence}"
    );
    let (ok, evidence) = verdict(&report, "cluster", "same certificate on every LB");
    assert!(ok, "{evidence}");
    // And the LBs serve the renewed one.
    let head = curl_https(
        &dir.path().join("site.crt"),
        "shop.test",
        &format!("{net}.1"),
        tls_port,
    )
    .unwrap();
    assert!(head.contains("status=200"), "{head}");
}
