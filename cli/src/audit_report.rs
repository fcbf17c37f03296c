//! The audit report in words a non-engineer can read: plain text for the
//! terminal, Markdown and self-contained HTML for the auditor's file. Pure
//! functions of the [`Report`]; no clock, no IO.

use std::fmt::Write;

use crate::audit::{KM_PER_RTT_MS, Report, Verdict};

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
        "How to read the evidence: *declared* is what the operator wrote in the inventory. *geoip* is the country an IP-to-country database gives for the host's public address; a host with only a private address cannot be placed this way. *latency* is the round-trip time from a probe host whose location is trusted: light in fibre covers about 200 km per millisecond each way, so a round trip of r ms puts the host within about r × {KM_PER_RTT_MS:.0} km of the probe. A short time proves the host is near; a long one proves nothing by itself. *discovery* is what the host listens on: a web or load-balancer host listening on a database port holds data it should not. *reach* (with a [firewall] table) is who may and who does reach a host's data ports: the accept rules in its nftables table inet vakt and probes from the other hosts and from the operator's machine; anything beyond the web hosts is a violation."
    )
}

pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "vakt audit of `{}` ({})", r.cluster, r.date);
    let _ = writeln!(o, "inventory {} sha256 {}", r.inventory, r.inventory_sha256);
    let _ = writeln!(
        o,
        "policy: data in {}; required evidence: {}",
        r.policy.data_countries.join(", "),
        r.policy.required()
    );
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
    let _ = writeln!(o, "\n{}", summary(r));
    for (_, why) in r.violations() {
        let _ = writeln!(o, "- {why}");
    }
    o
}

pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Where personal data lives: cluster `{}`\n", r.cluster);
    let _ = writeln!(o, "- Date: {}", r.date);
    let _ = writeln!(o, "- Inventory: `{}`", r.inventory);
    let _ = writeln!(o, "- Inventory sha256: `{}`", r.inventory_sha256);
    let _ = writeln!(
        o,
        "- Policy: personal data may only be kept in **{}**; a place counts as compliant when this evidence agrees: **{}**",
        r.policy.data_countries.join(", "),
        r.policy.required()
    );
    if let Some(max) = r.policy.max_rtt_ms {
        let _ = writeln!(
            o,
            "- Latency rule: at most {max} ms round trip from `{}`",
            r.policy.rtt_probe.as_deref().unwrap_or("-")
        );
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
    let _ = writeln!(o, "## Problems\n");
    let mut any = false;
    for (_, why) in r.violations() {
        any = true;
        let _ = writeln!(o, "- {why}");
    }
    if !any {
        let _ = writeln!(o, "None.");
    }
    o
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
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Data placement audit: {c}</title>\n<style>body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin-bottom:1.5em}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}}.compliant{{color:#060}}.violation{{color:#a00}}.unverified{{color:#a60}}code{{font-size:90%}}</style></head><body>\n<h1>Where personal data lives: cluster <code>{c}</code></h1>\n",
        c = esc(&r.cluster)
    );
    let _ = writeln!(
        o,
        "<ul><li>Date: {}</li><li>Inventory: <code>{}</code></li><li>Inventory sha256: <code>{}</code></li><li>Policy: personal data may only be kept in <b>{}</b>; compliant when this evidence agrees: <b>{}</b></li></ul>",
        esc(&r.date),
        esc(&r.inventory),
        esc(&r.inventory_sha256),
        esc(&r.policy.data_countries.join(", ")),
        esc(&r.policy.required())
    );
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
    let _ = writeln!(o, "<h2>Problems</h2>\n<ul>");
    let mut any = false;
    for (_, why) in r.violations() {
        any = true;
        let _ = writeln!(o, "<li>{}</li>", esc(why));
    }
    if !any {
        let _ = writeln!(o, "<li>None.</li>");
    }
    let _ = writeln!(o, "</ul>\n</body></html>");
    o
}
