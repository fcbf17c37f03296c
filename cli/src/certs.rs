//! The certificate each LB holds: its `[tls]` PEM read on the host by
//! `openssl x509` over the host's transport (the file the proxy serves: it
//! picks up a changed file within seconds), parsed into a `Cert` (names,
//! issuer, not after, days left, SHA-256 fingerprint). `status` shows it;
//! `verify` judges it (`MIN_DAYS`, the same certificate on every LB).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use crate::render::TLS_PEM;
use crate::transport::{Transport, sh};

/// `verify` fails a certificate with fewer days left than this.
pub const MIN_DAYS: i64 = 14;

/// One LB's certificate, as `openssl x509` reads its PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cert {
    /// The DNS names of its subjectAltName (the subject's CN when it has none).
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    /// RFC 3339, UTC.
    pub not_after: String,
    /// Whole days from now to `not_after` (negative once expired).
    pub days_left: i64,
    /// SHA-256 of the leaf (DER), as `AB:CD:…`: equal on every LB or not.
    pub sha256: String,
}

impl Cert {
    /// One line for people: names, issuer, not after, days left.
    pub fn summary(&self) -> String {
        format!(
            "{} issued by {}, not after {} ({} days left)",
            self.names.join(", "),
            self.issuer,
            self.not_after,
            self.days_left
        )
    }
}

/// Reads the certificate in `TLS_PEM` on the host behind `t`.
pub fn read(t: &dyn Transport) -> Result<Cert, String> {
    let path = format!("{}{TLS_PEM}", t.root());
    let p = sh(&path);
    let script = format!(
        "if [ ! -f {p} ]; then echo missing; exit 3; fi; \
         command -v openssl >/dev/null 2>&1 || {{ echo no-openssl; exit 4; }}; \
         openssl x509 -in {p} -noout -subject -issuer -enddate -fingerprint -sha256 -ext subjectAltName"
    );
    let out = t.run(&script).map_err(|e| format!("{e}"))?;
    match out.status {
        0 => parse(&out.stdout, Utc::now()).ok_or_else(|| {
            format!(
                "{path}: openssl x509 gave output vakt cannot read: {}",
                out.stdout.trim()
            )
        }),
        3 => Err(format!(
            "no certificate at {path}: `vakt up` pushes the inventory's [tls] pem"
        )),
        4 => Err(
            "openssl is not installed on the host: install the openssl package so vakt can read the certificate"
                .into(),
        ),
        _ => Err(format!(
            "openssl x509 cannot read {path}: {}",
            out.stderr.trim()
        )),
    }
}

/// Parses `openssl x509 -noout -subject -issuer -enddate -fingerprint
/// -sha256 -ext subjectAltName` (OpenSSL 1.1.1 and 3 print the same).
fn parse(out: &str, now: DateTime<Utc>) -> Option<Cert> {
    let mut subject = None;
    let mut issuer = None;
    let mut not_after = None;
    let mut sha256 = None;
    let mut names = Vec::new();
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        if let Some(v) = line.strip_prefix("subject=") {
            subject = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("issuer=") {
            issuer = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("notAfter=") {
            // "Dec  4 15:39:34 2026 GMT": the day is space-padded.
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            let t = NaiveDateTime::parse_from_str(&v, "%b %d %H:%M:%S %Y GMT").ok()?;
            not_after = Some(t.and_utc());
        } else if let Some((_, v)) = line.split_once("Fingerprint=") {
            sha256 = Some(v.trim().to_string());
        } else if line.contains("Subject Alternative Name") {
            let list = lines.next().unwrap_or("");
            names.extend(
                list.split(',')
                    .filter_map(|n| n.trim().strip_prefix("DNS:"))
                    .map(str::to_string),
            );
        }
    }
    let subject = subject?;
    if names.is_empty()
        && let Some(cn) = subject.split(',').find_map(|p| {
            p.trim()
                .strip_prefix("CN")
                .map(|v| v.trim_start_matches([' ', '=']))
        })
    {
        names.push(cn.to_string());
    }
    let not_after = not_after?;
    Some(Cert {
        names,
        subject,
        issuer: issuer?,
        not_after: not_after.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        days_left: (not_after - now).num_days(),
        sha256: sha256?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "subject=CN = shop.test\nissuer=O = Pebble, CN = Pebble Intermediate CA\nnotAfter=Dec  4 15:39:34 2026 GMT\nsha256 Fingerprint=66:69:78\nX509v3 Subject Alternative Name: \n    DNS:shop.test, DNS:www.shop.test\n";

    #[test]
    fn openssl_output_gives_names_issuer_and_days_left() {
        let now = "2026-11-20T15:39:35Z".parse::<DateTime<Utc>>().unwrap();
        let c = parse(OUT, now).unwrap();
        assert_eq!(c.names, ["shop.test", "www.shop.test"]);
        assert_eq!(c.issuer, "O = Pebble, CN = Pebble Intermediate CA");
        assert_eq!(c.not_after, "2026-12-04T15:39:34Z");
        assert_eq!(c.days_left, 13);
        assert_eq!(c.sha256, "66:69:78");
    }

    #[test]
    fn without_subject_alt_names_the_common_name_is_the_name() {
        let out = OUT.split("X509v3").next().unwrap();
        let c = parse(out, Utc::now()).unwrap();
        assert_eq!(c.names, ["shop.test"]);
    }

    #[test]
    fn unreadable_output_is_none_not_a_panic() {
        assert!(parse("", Utc::now()).is_none());
        assert!(parse("subject=x\nnotAfter=soon\n", Utc::now()).is_none());
    }
}
