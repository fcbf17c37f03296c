//! Certificates for tests: self-signed PEM files (chain and key in one, as
//! HAProxy's `crt` and the inventory's `[tls] pem` want) made by `openssl req`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed certificate for `names` (the first is the subject), chain
/// and key in one PEM file as HAProxy's `crt` wants it, valid `days`.
pub fn self_signed(dir: &Path, file: &str, names: &[&str], ecdsa: bool, days: u32) -> PathBuf {
    let key = dir.join(format!("{file}.key"));
    let crt = dir.join(format!("{file}.crt"));
    let san = names
        .iter()
        .map(|n| format!("DNS:{n}"))
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
