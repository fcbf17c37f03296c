//! The bounds every number in a proxy configuration is checked against, in
//! both front ends (TOML and haproxy.cfg), so one config means one thing in
//! either spelling and no number is large enough to panic at run time (a
//! semaphore or thread pool sized from it). Durations have theirs in
//! [`crate::config::reader::MAX_DURATION`].

/// `maxconn` (global, per listener, per server).
pub(crate) const MAX_CONN: u64 = 1_000_000;
/// Worker threads (`threads`, `nbthread`).
pub(crate) const MAX_THREADS: u64 = 256;
/// `retries`.
pub(crate) const MAX_RETRIES: u64 = 100;
/// Health check `rise` and `fall`.
pub(crate) const MAX_RISE_FALL: u64 = 1000;
