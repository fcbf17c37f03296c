//! Certificates for tests: self-signed PEM files (chain and key in one, as
//! HAProxy's `crt` and the inventory's `[tls] pem` want) made by `openssl req`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed certificate for `names` (the first is the subject; an
/// `IP:` entry is an address), chain
/// and key in one PEM file as HAProxy's `crt` wants it, valid `days`.
pub fn self_signed(dir: &Path, file: &str, names: &[&str], ecdsa: bool, days: u32) -> PathBuf {
    let key = dir.join(format!("{file}.key"));
    let crt = dir.join(format!("{file}.crt"));
    let san = names
        .iter()
        .map(|n| {
            if n.starts_with("IP:") {
                n.to_string()
            } else {
                format!("DNS:{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req",
        "-x509",
        "-nodes",
        "-days",
        &days.to_string(),
        "-newkey",
    ]);
    if ecdsa {
        cmd.args(["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    } else {
        cmd.arg("rsa:2048");
    }
    let out = cmd
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", &format!("/CN={}", names[0])])
        .args(["-addext", &format!("subjectAltName={san}")])
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = dir.join(format!("{file}.pem"));
    let mut both = std::fs::read(&crt).unwrap();
    both.extend(std::fs::read(&key).unwrap());
    std::fs::write(&pem, both).unwrap();
    pem
}

/// A CA (`ca.crt`) and a server certificate it signs for `names` (`IP:`
/// entries are addresses): `{file}.crt` and `{file}.key` in `dir`, for
/// clients that refuse a self-signed CA certificate as a server's (rustls).
/// Returns the CA's path.
pub fn ca_signed(dir: &Path, file: &str, names: &[&str]) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "30", "-keyout", "ca.key", "-out", "ca.crt",
    ];
    ca.extend(ec);
    ca.extend(["-subj", "/CN=vakt test CA"]);
    run(&ca);
    let (key, csr, crt) = (
        format!("{file}.key"),
        format!("{file}.csr"),
        format!("{file}.crt"),
    );
    let mut req = vec!["req", "-keyout", &key, "-out", &csr];
    req.extend(ec);
    let subj = format!("/CN={}", names[0]);
    req.extend(["-subj", &subj]);
    run(&req);
    let san = names
        .iter()
        .map(|n| {
            if n.starts_with("IP:") {
                n.to_string()
            } else {
                format!("DNS:{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    let ext = dir.join(format!("{file}.ext"));
    std::fs::write(
        &ext,
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let ext = ext.display().to_string();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-out",
        &crt,
        "-extfile",
        &ext,
    ]);
    dir.join("ca.crt")
}
