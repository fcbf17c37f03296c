//! `vakt --version` names the git revision it was built from, and whether
//! the tree had uncommitted changes.

use crate::support::vakt;

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let out = vakt().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rev = text
        .strip_prefix(&format!("vakt {} (git ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {text}"));
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert!(
            rev == head || rev == format!("{head}-dirty"),
            "{rev} is not HEAD {head}"
        ),
        None => assert_eq!(rev, "unknown"),
    }
}
