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
controller = "Nordshop AS, org. nr. 999 999 999"
retention = "carts 30 days, orders 5 years (bokføringsloven), proxy logs 14 days"
processors = [
  {{ name = "CoolVDS AS", country = "NO", dpa = "contracts/coolvds-dpa-2026.pdf" }},
  {{ name = "Helpdesk Inc", country = "US", dpa = "contracts/helpdesk-dpa.pdf" }},
]
transfers = [{{ to = "US", basis = "EU-US Data Privacy Framework (adequacy decision, art. 45)", what = "support tickets" }}]
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

/// The report with its seal checked (the SHA-256 of every line above the
/// last) and the parts that change with each build (vakt's git revision, so
/// the seal too) replaced, for snapshots.
fn sealed(report: &str) -> String {
    use sha2::Digest;
    let (body, last) = report
        .trim_end_matches('\n')
        .rsplit_once('\n')
        .expect("a report has lines");
    let hash = hex::encode(sha2::Sha256::digest(format!("{body}\n").as_bytes()));
    assert!(
        last.contains(&format!("Report sha256 (all lines above this one): {hash}")),
        "the seal does not match the report above it: {last}"
    );
    let version = format!("vakt {}", env!("CARGO_PKG_VERSION"));
    report
        .lines()
        .map(|l| match (l.find(&version), l.find(&hash)) {
            (Some(i), _) => format!("{}vakt [version]{}", &l[..i], {
                let rest = &l[i + version.len()..];
                // "0.1.0 (abc1234)" or "0.1.0 (abc1234-dirty)": up to the
                // row's end marker.
                rest.find('<').map_or("", |j| &rest[j..]).to_string()
            }),
            (None, Some(i)) => format!("{}[sha256]{}", &l[..i], &l[i + hash.len()..]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
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
    insta::assert_snapshot!("audit_markdown", sealed(&md));
    let (_, html, _) = audit(dir.path(), "html");
    insta::assert_snapshot!("audit_html", sealed(&html));
    sealed(&out);
    // An auditor's questions, answered in the report's head.
    for want in [
        "Data controller: Nordshop AS",
        "Processors: CoolVDS AS (NO; DPA: contracts/coolvds-dpa-2026.pdf)",
        "Transfers outside the allowed countries: to US (support tickets): EU-US Data Privacy Framework",
        "Retention: carts 30 days",
        "Evidence gathered: from the inventory (--offline: no host was asked) and the GeoIP database",
        "Written by: vakt ",
    ] {
        assert!(md.contains(want), "{want}: {md}");
    }
    // Hosts without data are listed, with why.
    assert!(
        out.contains("lb01       host (lb): no personal data"),
        "{out}"
    );
    assert!(
        out.contains("Helpdesk Inc processor ([policy] processors): compliant"),
        "{out}"
    );
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

#[test]
fn a_processor_abroad_without_a_transfer_or_without_a_dpa_is_a_violation() {
    let dir = TempDir::new("audit-processor");
    inventory(dir.path(), "203.0.113.20", "NO", r#""declared""#, "NO");
    let path = dir.path().join("inventory.toml");
    let inv = std::fs::read_to_string(&path).unwrap();
    let inv = inv
        .lines()
        .filter(|l| !l.starts_with("transfers"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(", dpa = \"contracts/coolvds-dpa-2026.pdf\"", "");
    std::fs::write(&path, inv).unwrap();
    let (code, out, err) = audit(dir.path(), "text");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("- processor Helpdesk Inc: processes the data in US, outside NO, and no transfer to US is recorded"),
        "{out}"
    );
    assert!(
        out.contains("- processor CoolVDS AS: no data-processing agreement recorded (GDPR art. 28(3) requires one)"),
        "{out}"
    );
}

#[test]
fn policy_records_name_the_place_of_a_bad_country_or_a_transfer_without_basis() {
    let dir = TempDir::new("audit-policy-bad");
    inventory(dir.path(), "203.0.113.20", "NO", r#""declared""#, "NO");
    let path = dir.path().join("inventory.toml");
    let inv = std::fs::read_to_string(&path)
        .unwrap()
        .replace("country = \"US\", dpa", "country = \"Norge\", dpa")
        .replace(
            "basis = \"EU-US Data Privacy Framework (adequacy decision, art. 45)\", ",
            "",
        );
    std::fs::write(&path, inv).unwrap();
    let (code, out, err) = audit(dir.path(), "text");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("\"Norge\" is not an ISO 3166 country code"),
        "{err}"
    );
    assert!(
        err.contains("a transfer needs the receiving country and its legal basis"),
        "{err}"
    );
    assert!(err.contains("inventory.toml:"), "{err}");
}

/// The HTML report as an auditor sees it: a screenshot at desktop width and
/// the page printed to PDF (its print styles: no colour needed to read a
/// violation), both kept in target/test-artefacts.
#[test]
#[cfg_attr(
    not(vakt_chromium),
    ignore = "needs chromium: apt-get install chromium (README: Tests)"
)]
fn the_html_report_reads_in_a_browser_and_prints() {
    use crate::support::chromium::{Shot, artefacts, print_to_pdf, screenshot};
    crate::support::needs::require("vakt_chromium");
    let dir = TempDir::new("audit-html");
    // db01 declared abroad: the report has a violation to show.
    inventory(dir.path(), "203.0.113.20", "US", r#""declared""#, "NO");
    let (code, html, err) = audit(dir.path(), "html");
    assert_eq!(code, 1, "{err}");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());
    let shot = artefacts().join("audit-report-1280.png");
    screenshot(&url, 1280, 1600, &shot);
    let png = Shot::read(&shot);
    // The violation's heading is drawn in the report's red (#a00).
    assert!(
        png.first_row_with([0xaa, 0, 0], 3).is_some(),
        "no red violation heading in {}",
        shot.display()
    );
    let pdf = artefacts().join("audit-report.pdf");
    print_to_pdf(&url, &pdf);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "{} is no PDF", pdf.display());
    let pages = bytes.windows(11).filter(|w| w == b"/Type /Page").count();
    assert!(pages >= 1, "{} has no page", pdf.display());
}

/// A backup host declared outside Norway: the dump target and the host are
/// violations, each named with its evidence; in Norway both comply, and
/// `--offline` says the dumps were not looked at.
#[test]
fn a_backup_host_outside_the_allowed_countries_is_a_violation() {
    let dir = TempDir::new("auditbak");
    let good = include_str!("../../../inventory/oslo.toml");
    let run = |text: &str| {
        std::fs::write(dir.path().join("inventory.toml"), text).unwrap();
        audit(dir.path(), "text")
    };
    let (code, out, err) = run(good);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("backup01:/var/backups/vakt was not looked at (--offline)"),
        "{out}"
    );
    let abroad = good.replace(
        "location = { country = \"NO\", city = \"Bergen\", provider = \"CoolVDS\", site = \"bgo1\" }",
        "location = { country = \"SE\", city = \"Stockholm\" }",
    );
    assert_ne!(abroad, good);
    let (code, out, err) = run(&abroad);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "backup nightly: its dumps lie on backup01, which the inventory says SE, Stockholm, outside NO"
        ),
        "{out}"
    );
    assert!(out.contains("backup01"), "{out}");
}
