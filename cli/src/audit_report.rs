//! The audit report in words a non-engineer can read: plain text for the
//! terminal, Markdown and self-contained HTML for the auditor's file. Pure
//! functions of the [`Report`]; no clock, no IO.

use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::audit::{KM_PER_RTT_MS, Report, Verdict};

/// The report's last line names the SHA-256 of every line above it, so a
/// filed copy can be checked with `head -n -1 REPORT | sha256sum`.
pub const SEAL: &str = "Report sha256 (all lines above this one): ";

/// `body` with the seal line appended (`pre`/`post` wrap the line, for HTML).
fn seal(body: String, pre: &str, post: &str) -> String {
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    format!("{body}{pre}{SEAL}{hash}{post}\n")
}

/// What an auditor asks first: when, by what, from what, under whose
/// responsibility; one (label, value) row each, the same in every format.
fn metadata(r: &Report) -> Vec<(&'static str, String)> {
    let p = &r.policy;
    let mut rows = vec![
        ("Date and time", r.date.clone()),
        ("Written by", format!("vakt {}", r.version)),
        ("Inventory", r.inventory.clone()),
        ("Inventory sha256", r.inventory_sha256.clone()),
        ("Evidence gathered", sources(r)),
        (
            "Data controller",
            p.controller.clone().unwrap_or_else(|| {
                "not recorded: add [policy] controller = \"name, organisation number\"".into()
            }),
        ),
    ];
    rows.push((
        "Processors",
        if p.processors.is_empty() {
            "none recorded ([policy] processors = [{ name, country, dpa }])".into()
        } else {
            p.processors
                .iter()
                .map(|x| {
                    format!(
                        "{} ({}; DPA: {})",
                        x.name,
                        x.country,
                        x.dpa.as_deref().unwrap_or("not recorded")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    ));
    rows.push((
        "Transfers outside the allowed countries",
        if p.transfers.is_empty() {
            "none recorded".into()
        } else {
            p.transfers
                .iter()
                .map(|t| {
                    format!(
                        "to {}{}: {}",
                        t.to,
                        t.what
                            .as_deref()
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default(),
                        t.basis
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        },
    ));
    rows.push((
        "Retention",
        p.retention
            .clone()
            .unwrap_or_else(|| "not recorded: add [policy] retention = \"...\"".into()),
    ));
    rows.push((
        "Policy",
        format!(
            "personal data may only be kept in {}; a place counts as compliant when this evidence agrees: {}",
            p.data_countries.join(", "),
            p.required()
        ),
    ));
    if let Some(max) = p.max_rtt_ms {
        rows.push((
            "Latency rule",
            format!(
                "at most {max} ms round trip from {}",
                p.rtt_probe.as_deref().unwrap_or("-")
            ),
        ));
    }
    rows
}

fn summary(r: &Report) -> String {
    let n = r.subjects.len();
    let bad = r
        .subjects
        .iter()
        .filter(|s| s.verdict == Verdict::Violation)
        .count();
    let open = r
        .subjects
        .iter()
        .filter(|s| s.verdict == Verdict::Unverified)
        .count();
    if r.compliant() {
        format!(
            "All {n} places that hold personal data are in an allowed country ({}), as far as the required evidence shows.",
            r.policy.data_countries.join(", ")
        )
    } else {
        format!(
            "{bad} of {n} places that hold personal data break the policy and {open} could not be verified. The list of problems below says which and why."
        )
    }
}

fn method() -> String {
    format!(
        "How to read the evidence: *declared* is what the operator wrote in the inventory. *geoip* is the country an IP-to-country database gives for the host's public address; a host with only a private address cannot be placed this way. *latency* is the round-trip time from a probe host whose location is trusted: light in fibre covers about 200 km per millisecond each way, so a round trip of r ms puts the host within about r × {KM_PER_RTT_MS:.0} km of the probe. A short time proves the host is near; a long one proves nothing by itself. *discovery* is what the host listens on: a web or load-balancer host listening on a database port holds data it should not. *reach* (with a [firewall] table) is who may and who does reach a host's data ports: the accept rules in its nftables table inet vakt and probes from the other hosts and from the operator's machine; anything beyond the web hosts is a violation. *transfer* is a transfer out of the allowed countries recorded in [policy] transfers with its legal basis (GDPR chapter V), and *dpa* where the processor's data-processing agreement is kept (GDPR art. 28(3)). The last line of the report is the SHA-256 of every line above it: `head -n -1 REPORT | sha256sum` checks a filed copy."
    )
}

pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "vakt audit of `{}`", r.cluster);
    for (k, v) in metadata(r) {
        let _ = writeln!(o, "{k}: {v}");
    }
    for s in &r.subjects {
        let _ = writeln!(o, "\n{:<10} {} ({}): {}", s.name, s.kind, s.why, s.verdict);
        for e in &s.evidence {
            let mark = match e.agrees {
                Some(true) => "ok ",
                Some(false) => "BAD",
                None => " ? ",
            };
            let _ = writeln!(o, "  [{mark}] {:<9} {}", e.kind, e.detail);
        }
    }
    for h in &r.others {
        let _ = writeln!(
            o,
            "\n{:<10} host ({}): no personal data",
            h.name,
            h.roles.join(", ")
        );
        for w in &h.why {
            let _ = writeln!(o, "  - {w}");
        }
    }
    let _ = writeln!(o, "\n{}", summary(r));
    for (_, why) in r.violations() {
        let _ = writeln!(o, "- {why}");
    }
    seal(o, "", "")
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Where personal data lives: cluster `{}`\n", r.cluster);
    for (k, v) in metadata(r) {
        let _ = writeln!(o, "- {k}: {v}");
    }
    let _ = writeln!(o, "\n## Summary\n\n{}\n", summary(r));
    let _ = writeln!(o, "{}\n", method());
    for s in &r.subjects {
        let _ = writeln!(o, "## {} — {}\n", s.name, s.verdict);
        let _ = writeln!(o, "{}, data-bearing because: {}.\n", s.kind, s.why);
        let _ = writeln!(o, "| Evidence | Supports the policy | Detail |");
        let _ = writeln!(o, "|---|---|---|");
        for e in &s.evidence {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                e.kind,
                match e.agrees {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "cannot tell",
                },
                e.detail.replace('|', "\\|")
            );
        }
        let _ = writeln!(o);
    }
    if !r.others.is_empty() {
        let _ = writeln!(o, "## Hosts without personal data\n");
        for h in &r.others {
            let _ = writeln!(
                o,
                "- **{}** ({}): {}",
                h.name,
                h.roles.join(", "),
                h.why.join("; ")
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Problems\n");
    let mut any = false;
    for (_, why) in r.violations() {
        any = true;
        let _ = writeln!(o, "- {why}");
    }
    if !any {
        let _ = writeln!(o, "None.");
    }
    let _ = writeln!(o);
    seal(o, "", "")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data placement audit: {c}</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}}.compliant{{color:#060}}.violation{{color:#a00}}.unverified{{color:#a60}}code{{font-size:90%}}.meta th{{width:14em}}.seal{{font-family:monospace;font-size:85%;word-break:break-all}}@media print{{body{{max-width:none;margin:0;font-size:10pt;color:#000}}h2{{break-after:avoid}}table,tr{{break-inside:avoid}}.compliant,.violation,.unverified{{color:#000}}.violation{{font-weight:bold}}}}</style></head><body>\n<h1>Where personal data lives: cluster <code>{c}</code></h1>\n",
        c = esc(&r.cluster)
    );
    let _ = writeln!(o, "<table class=\"meta\">");
    for (k, v) in metadata(r) {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    let _ = writeln!(o, "</table>");
    let _ = writeln!(
        o,
        "<h2>Summary</h2>\n<p>{}</p>\n<p>{}</p>",
        esc(&summary(r)),
        esc(&method()).replace('*', "")
    );
    for s in &r.subjects {
        let _ = writeln!(
            o,
            "<h2>{} — <span class=\"{}\">{}</span></h2>\n<p>{}, data-bearing because: {}.</p>\n<table><tr><th>Evidence</th><th>Supports the policy</th><th>Detail</th></tr>",
            esc(&s.name),
            s.verdict,
            s.verdict,
            esc(&s.kind),
            esc(&s.why)
        );
        for e in &s.evidence {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.kind),
                match e.agrees {
                    Some(true) => "yes",
                    Some(false) => "<b>no</b>",
                    None => "cannot tell",
                },
                esc(&e.detail)
            );
        }
        let _ = writeln!(o, "</table>");
    }
    if !r.others.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Hosts without personal data</h2>\n<table><tr><th>Host</th><th>Roles</th><th>Why it holds no personal data</th></tr>"
        );
        for h in &r.others {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&h.name),
                esc(&h.roles.join(", ")),
                h.why
                    .iter()
                    .map(|w| esc(w))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        let _ = writeln!(o, "</table>");
    }
    let _ = writeln!(o, "<h2>Problems</h2>\n<ul>");
    let mut any = false;
    for (_, why) in r.violations() {
        any = true;
        let _ = writeln!(o, "<li>{}</li>", esc(why));
    }
    if !any {
        let _ = writeln!(o, "<li>None.</li>");
    }
    let _ = writeln!(o, "</ul>");
    seal(o, "<p class=\"seal\">", "</p></body></html>")
}

/// Where the report's evidence came from: only the sources this run had.
fn sources(r: &Report) -> String {
    let p = &r.policy;
    let mut from = vec![if r.offline {
        "the inventory (--offline: no host was asked)".to_string()
    } else {
        "the hosts over SSH (read-only)".to_string()
    }];
    if p.geoip_db.is_some() {
        from.push("the GeoIP database".into());
    }
    if let (Some(probe), false) = (&p.rtt_probe, r.offline) {
        from.push(format!("round trips measured from {probe}"));
    }
    match from.len() {
        1 => format!("from {}", from[0]),
        _ => {
            let last = from.pop().unwrap_or_default();
            format!("from {} and {last}", from.join(", "))
        }
    }
}
