//! The runtime guard of the suites that need root or extra packages. Whether
//! such a test runs at all is decided at build time (`cli/build.rs` sets a
//! `cfg` per suite and the test is `#[ignore]`d without it); this guard is the
//! second line: a test that runs anyway (built as root, run as another user,
//! or `--include-ignored`) fails with what is missing, never passes unrun.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Same places as `cli/build.rs` looks in.
const DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// What `suite` (a cfg name such as `vakt_lab_ha`) needs, from the table
/// `cli/build.rs` wrote into `VAKT_TEST_NEEDS`.
fn needs(suite: &str) -> Vec<&'static str> {
    env!("VAKT_TEST_NEEDS")
        .split(';')
        .find_map(|s| s.strip_prefix(suite)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("cli/build.rs knows no suite `{suite}`: add it to SUITES"))
        .split(',')
        .collect()
}

/// What of `suite`'s needs this process lacks, as readable words.
pub fn missing(suite: &str) -> Vec<String> {
    let mut out = Vec::new();
    for need in needs(suite) {
        if need == "root" {
            if !is_root() {
                out.push(format!("root (running as uid {})", uid()));
            }
        } else if !DIRS.iter().any(|d| {
            std::fs::metadata(Path::new(d).join(need))
                .is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
        }) {
            out.push(format!("the `{need}` command"));
        }
    }
    out
}

/// Panics, naming what is missing and the fix, unless `suite` can run here.
pub fn require(suite: &str) {
    let missing = missing(suite);
    assert!(
        missing.is_empty(),
        "{suite} cannot run here: missing {}. Run `cargo test` as root with the packages \
         README's Tests section lists; when they are absent the build marks this test ignored \
         (if it was built elsewhere or as another user, rebuild: `touch cli/build.rs`).",
        missing.join(", ")
    );
}

pub fn is_root() -> bool {
    uid() == 0
}

fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
