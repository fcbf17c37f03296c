//! haproxy.cfg: the 2011 tutorial file runs as is, a differential suite
//! runs real HAProxy 2.6 and vakt on the same file with the same requests,
//! and `pinned` fixes what the reader and `vakt import` make of a file.

mod differential;
mod observability;
mod pinned;
mod tutorial;

/// Fails with the fix when HAProxy is missing (`.ci/run` installs it); the
/// tests that call it are ignored when the build found no haproxy.
pub fn require_haproxy() {
    crate::support::needs::require("vakt_haproxy");
}
