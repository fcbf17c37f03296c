//! Pins what the haproxy.cfg front end makes of a file, so a restructuring of
//! the reader cannot change a result unnoticed: the typed `Config` of a file
//! that uses every keyword family, every diagnostic (text and position) of a
//! file full of mistakes as `vakt proxy --check -f` prints them, and the exact
//! output of `vakt import` (proxy TOML and inventory fragment).

use std::path::Path;

use crate::support::vakt;

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data"))
}

/// Runs `vakt ARGS` in tests/data so file names in messages are relative.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = vakt().args(args).current_dir(data_dir()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_haproxy_keyword_family_reads_into_the_same_config() {
    let path = data_dir().join("config/good-haproxy.cfg");
    let text = std::fs::read_to_string(&path).unwrap();
    let src = vakt_runtime::config::Source::new("good-haproxy.cfg", text);
    let (config, warnings) =
        vakt_runtime::config::from_haproxy(&src, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!("good_haproxy_config", format!("{config:#?}"));
    insta::assert_snapshot!("good_haproxy_warnings", warnings.to_string());
}

#[test]
fn every_haproxy_mistake_is_reported_with_the_same_text_and_place() {
    let (ok, _, err) = run(&["proxy", "--check", "-f", "config/bad-haproxy.cfg"]);
    assert!(!ok, "{err}");
    insta::assert_snapshot!("bad_haproxy_check", err);
}

#[test]
fn import_writes_the_same_toml_and_inventory_fragment() {
    let (ok, toml, err) = run(&["import", "tutorial-haproxy.cfg"]);
    assert!(ok, "{err}");
    // The plain-text stats password becomes a salted hash: different each run.
    let toml: String = toml
        .lines()
        .map(|l| match l.find("admin:$6$") {
            Some(i) => format!("{}admin:$6$<salt>$<hash>\"] }}", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("import_tutorial_toml", toml);
    let (ok, frag, err) = run(&["import", "--inventory-fragment", "tutorial-haproxy.cfg"]);
    assert!(ok, "{err}");
    insta::assert_snapshot!("import_tutorial_fragment", frag);
    let (ok, _, err) = run(&["import", "config/good-haproxy.cfg"]);
    assert!(!ok);
    insta::assert_snapshot!("import_routing_refused", err);
}
