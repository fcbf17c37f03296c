//! haproxy.cfg: the 2011 tutorial file runs as is, a differential suite
//! runs real HAProxy 2.6 and vakt on the same file with the same requests,
//! and `pinned` fixes what the reader and `vakt import` make of a file.

mod differential;
mod observability;
mod pinned;
mod tutorial;

/// Fails with the fix when HAProxy is missing (`.ci/run` installs it).
pub fn require_haproxy() {
    let ok = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "haproxy is not installed: run `apt-get install -y haproxy` (bash .ci/run does)"
    );
}
