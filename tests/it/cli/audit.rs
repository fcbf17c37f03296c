//! `vakt audit --offline`: the data-placement verdicts from declared
//! locations, a real mmdb GeoIP database (built by the test, so that it
//! knows documentation addresses) and backups; the Markdown and HTML
//! reports are snapshots.

use std::path::Path;

use crate::support::{TempDir, mmdb, vakt};

fn inventory(dir: &Path, db_ip: &str, declared: &str, require: &str, backup: &str) {
    std::fs::write(
        dir.join("inventory.toml"),
        format!(
            r#"[cluster]
name = "shop"
port = 80

[[hosts]]
name = "lb01"
roles = ["lb"]
public_ip = "203.0.113.11"
private_ip = "10.10.0.10"
location = {{ country = "NO", city = "Oslo" }}

[[hosts]]
name = "web01"
roles = ["web"]
private_ip = "10.10.0.11"
location = {{ country = "NO", city = "Oslo" }}
web = {{ port = 80, cookie = "w1" }}

[[hosts]]
name = "db01"
roles = ["db"]
public_ip = "{db_ip}"
private_ip = "10.10.0.20"
location = {{ country = "{declared}", city = "Oslo", provider = "CoolVDS" }}

[[hosts]]
name = "db02"
roles = ["db"]
private_ip = "10.10.0.21"
location = {{ country = "NO", city = "Oslo" }}

[[backups]]
name = "offsite"
kind = "restic"
location = {{ country = "{backup}", city = "Bergen" }}

[policy]
data_countries = ["NO"]
require = [{require}]
geoip_db = "geo.mmdb"
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("geo.mmdb"),
        mmdb::build(&[
            ("203.0.113.0".parse().unwrap(), 25, "NO"),
            ("203.0.113.128".parse().unwrap(), 25, "SE"),
            ("198.51.100.0".parse().unwrap(), 24, "US"),
        ]),
    )
    .unwrap();
}

fn audit(dir: &Path, format: &str) -> (i32, String, String) {
    let out: std::process::Output = vakt()
        .current_dir(dir)
        .args([
            "audit",
            "--offline",
            "-i",
            "inventory.toml",
            "--format",
            format,
        ])
        .env("SOURCE_DATE_EPOCH", "1795996800")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BOTH: &str = r#""declared", "geoip""#;

#[test]
fn declared_and_geoip_agree_so_the_cluster_is_compliant_and_the_reports_say_so() {
    let dir = TempDir::new("audit-ok");
    inventory(dir.path(), "203.0.113.20", "NO", BOTH, "NO");
    // db02 has no public address: GeoIP cannot place it, so with geoip
    // required it stays unverified and the audit does not pass.
    let (code, out, err) = audit(dir.path(), "text");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("db01       host (role db): compliant"),
        "{out}"
    );
    assert!(
        out.contains("the GeoIP database places 203.0.113.20 in NO"),
        "{out}"
    );
    assert!(
        out.contains("db02       host (role db): unverified"),
        "{out}"
    );
    assert!(out.contains("private-only host"), "{out}");

    let (code, md, _) = audit(dir.path(), "markdown");
    assert_eq!(code, 1);
    insta::assert_snapshot!("audit_markdown", md);
    let (_, html, _) = audit(dir.path(), "html");
    insta::assert_snapshot!("audit_html", html);
    let (_, json, _) = audit(dir.path(), "json");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["subjects"][0]["verdict"], "compliant");
    assert_eq!(v["subjects"][2]["kind"], "backup (restic)");

    // With only the declaration required, the same cluster passes.
    inventory(dir.path(), "203.0.113.20", "NO", r#""declared""#, "NO");
    let (code, out, err) = audit(dir.path(), "text");
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn a_db_declared_abroad_a_geoip_mismatch_and_a_backup_abroad_are_violations() {
    let dir = TempDir::new("audit-bad");
    inventory(dir.path(), "203.0.113.20", "US", r#""declared""#, "NO");
    let (code, out, _) = audit(dir.path(), "text");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("db01       host (role db): violation"),
        "{out}"
    );
    assert!(out.contains("- db01: the inventory says US"), "{out}");

    // Declared in Norway, but GeoIP places the address in Sweden.
    inventory(dir.path(), "203.0.113.200", "NO", BOTH, "NO");
    let (code, out, _) = audit(dir.path(), "text");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("- db01: the GeoIP database places 203.0.113.200 in SE"),
        "{out}"
    );
    // The same mismatch is reported but not judged when geoip is not required.
    inventory(dir.path(), "203.0.113.200", "NO", r#""declared""#, "NO");
    let (code, out, _) = audit(dir.path(), "text");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[BAD] geoip"), "{out}");

    inventory(dir.path(), "203.0.113.20", "NO", r#""declared""#, "US");
    let (code, out, _) = audit(dir.path(), "text");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("- backup offsite: the inventory says US"),
        "{out}"
    );
}

#[test]
fn a_report_file_is_never_overwritten_without_a_backup() {
    let dir = TempDir::new("audit-out");
    inventory(dir.path(), "203.0.113.20", "NO", r#""declared""#, "NO");
    let run = || {
        vakt()
            .current_dir(dir.path())
            .args([
                "audit",
                "--offline",
                "-i",
                "inventory.toml",
                "--format",
                "markdown",
                "--out",
                "report.md",
            ])
            .output()
            .unwrap()
    };
    assert!(run().status.success());
    std::fs::write(dir.path().join("report.md"), "an auditor's notes\n").unwrap();
    assert!(run().status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.md.bak")).unwrap(),
        "an auditor's notes\n"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("report.md"))
            .unwrap()
            .starts_with("# Where personal data lives")
    );
}
