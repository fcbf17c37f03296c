//! The idle connections to each server: a small LIFO of [`ServerConn`](super::ServerConn)s
//! whose last response was read to its end. Connections the server closed
//! while idle are noticed without a system call (see
//! [`ServerConn::looks_alive`]) and dropped.

use std::sync::Mutex;

use super::conn::ServerConn;

/// Idle connections kept per server. Past it, finished connections close.
const MAX_IDLE: usize = 256;

#[derive(Debug, Default)]
pub struct IdlePool {
    conns: Mutex<Vec<ServerConn>>,
}

impl IdlePool {
    pub fn new() -> Self {
        Self::default()
    }

    /// The most recently used live connection idle for at most `max_idle`,
    /// if any (older ones may be closed by the server any moment now).
    pub(crate) fn take(&self, max_idle: std::time::Duration) -> Option<ServerConn> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(c) = conns.pop() {
            if c.looks_alive() && c.idle_since.elapsed() <= max_idle {
                return Some(c);
            }
        }
        None
    }

    pub(crate) fn put(&self, c: ServerConn) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() < MAX_IDLE {
            conns.push(c);
        }
    }
}
