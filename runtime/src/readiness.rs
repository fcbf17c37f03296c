//! Socket readiness bookkeeping shared by both sides of the proxy (the
//! client socket under hyper, and server connections): one system call saved
//! per request by clearing read readiness after a short read.

use std::io;

use tokio::net::TcpStream;

/// A read that did not fill the buffer emptied the socket: clear its read
/// readiness now instead of learning it from one more `recv` that fails with
/// EAGAIN (a syscall per request saved). tokio only clears readiness that
/// predates the last event, so data arriving meanwhile is not missed.
pub(crate) fn drained(stream: &TcpStream) {
    let _ = stream.try_io(tokio::io::Interest::READABLE, || {
        Err::<(), _>(io::ErrorKind::WouldBlock.into())
    });
}
