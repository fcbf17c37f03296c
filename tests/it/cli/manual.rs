//! `vakt man`: every page a page refers to (`vakt-check(1)` …) is one that
//! `vakt man --out DIR` writes, and vakt(1) has the sections a sysadmin
//! looks for.

use std::collections::BTreeSet;
use std::process::Command;

use crate::support::vakt;

/// Every `vakt…(N)` reference in a roff page (roff writes `-` as `\-`).
fn references(roff: &str) -> BTreeSet<String> {
    let text = roff
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "");
    let mut refs = BTreeSet::new();
    for (i, _) in text.match_indices("vakt") {
        let rest = &text[i..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if rest[name.len()..].starts_with("(1)") {
            refs.insert(format!("{name}.1"));
        }
    }
    refs
}

#[test]
fn man_pages_refer_only_to_pages_vakt_writes() {
    let dir = super::tmp("man");
    let out = vakt()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let written: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written.contains("vakt.1") && written.contains("vakt-check.1"),
        "{written:?}"
    );
    assert!(written.contains("vakt-lab-up.1"), "{written:?}");
    // The printed page is the same vakt.1 the folder holds.
    let printed = vakt().arg("man").output().unwrap();
    assert!(printed.status.success());
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert_eq!(
        printed,
        std::fs::read_to_string(dir.path().join("vakt.1")).unwrap()
    );
    for page in &written {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        for r in references(&text) {
            assert!(
                written.contains(&r),
                "{page} refers to {r}, which vakt does not write"
            );
        }
    }
    assert!(references(&printed).contains("vakt-check.1"));
    for section in [
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(
            printed.contains(&format!(".SH \"{section}\""))
                || printed.contains(&format!(".SH {section}")),
            "vakt.1 has no {section} section"
        );
    }
    // man(1) renders it, when installed.
    match Command::new("man")
        .arg("-l")
        .arg(dir.path().join("vakt.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
    {
        Err(_) => println!("skipped: man is not installed; not rendering vakt.1"),
        Ok(r) => {
            let text = String::from_utf8_lossy(&r.stdout);
            assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
            assert!(
                text.contains("EXIT STATUS") && text.contains("VAKT_LOG"),
                "{text}"
            );
        }
    }
}
