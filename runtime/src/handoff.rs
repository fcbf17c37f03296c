//! Binary upgrades without a refused connection: the new process asks the old
//! one for its listening sockets over the admin socket (`_getsocks`, as
//! HAProxy's `-x`), receives the very same sockets with SCM_RIGHTS, and
//! serves from them; the old process then stops accepting and finishes its
//! requests. Because both processes hold one socket (one accept queue),
//! connections waiting in the backlog are never reset, which rebinding with
//! SO_REUSEPORT alone cannot promise.
//!
//! Both halves of the upgrade's start-up live here: [`start_upgrade`] (what
//! `vakt proxy reload` runs under systemd) starts the new binary with a pipe
//! on fd 3 named by [`READY_FD_ENV`], and the new process writes [`READY`]
//! on it once it serves (`process::handover`).

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// At most this many sockets move in one upgrade (SCM_RIGHTS allows 253).
const MAX_FDS: usize = 64;

/// Sends `payload` and `fds` in one message.
pub(crate) fn send_fds(fd: RawFd, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let fds = &fds[..fds.len().min(MAX_FDS)];
    let iov = [IoSlice::new(payload)];
    let space = cmsg_space(fds.len());
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer in it refers to a live
    // buffer of the stated length for the duration of the sendmsg call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
        if libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn cmsg_space(n: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((n * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Receives one message with up to [`MAX_FDS`] descriptors.
fn recv_fds(stream: &UnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let space = cmsg_space(MAX_FDS);
    let mut control = vec![0u8; space];
    let mut fds = Vec::new();
    // SAFETY: as in send_fds; the kernel writes at most msg_controllen bytes
    // of control data, and every descriptor it hands us is new and ours.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = iov.as_mut_ptr().cast();
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for k in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(k))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        n as usize
    };
    buf.truncate(n);
    Ok((buf, fds))
}

/// Asks the process behind `socket` for its listening sockets.
pub fn fetch(socket: &Path) -> io::Result<Vec<(SocketAddr, std::net::TcpListener)>> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the running proxy at {}: {e}",
                socket.display()
            ),
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"_getsocks\n")?;
    let (payload, fds) = recv_fds(&s)?;
    let text = String::from_utf8_lossy(&payload);
    if let Some(err) = text.strip_prefix("error: ") {
        return Err(io::Error::other(err.trim().to_string()));
    }
    let addrs: Vec<SocketAddr> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    if addrs.len() != fds.len() {
        return Err(io::Error::other(format!(
            "the running proxy sent {} addresses and {} sockets",
            addrs.len(),
            fds.len()
        )));
    }
    let mut rest = String::new();
    let _ = s.read_to_string(&mut rest);
    Ok(addrs
        .into_iter()
        .zip(fds)
        .map(|(a, fd)| (a, std::net::TcpListener::from(fd)))
        .collect())
}

/// The environment variable that names the new process's "ready" pipe.
pub const READY_FD_ENV: &str = "VAKT_READY_FD";
/// What the new process writes on that pipe once it serves.
pub const READY: &[u8] = b"ready\n";

/// Why an upgrade did not take over.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: std::path::PathBuf,
        source: io::Error,
    },
    #[error("the new proxy exited ({status}) before taking over; pid {old} keeps serving")]
    Exited {
        status: std::process::ExitStatus,
        old: i32,
    },
    #[error("the new proxy did not take over within {}s; pid {old} keeps serving", .wait.as_secs())]
    Timeout { wait: Duration, old: i32 },
}

/// The starter's half of a binary upgrade: runs `binary proxy --foreground
/// --config CONFIG --takeover SOCKET --soft-finish OLD` with a pipe on its fd
/// 3 and waits up to `wait` for it to say it serves. Returns the new pid.
/// The new process waits for this one to exit before telling systemd it is
/// the main process, so the caller should exit soon after.
pub fn start_upgrade(
    binary: &Path,
    config: &Path,
    socket: &Path,
    old: i32,
    wait: Duration,
) -> Result<u32, UpgradeError> {
    let spawn_error = |source| UpgradeError::Spawn {
        binary: binary.to_path_buf(),
        source,
    };
    let (read_end, write_end) = io::pipe().map_err(spawn_error)?;
    let write_fd = write_end.as_raw_fd();
    let mut cmd = std::process::Command::new(binary);
    cmd.args(["proxy", "--foreground", "--config"])
        .arg(config)
        .arg("--takeover")
        .arg(socket)
        .arg("--soft-finish")
        .arg(old.to_string())
        .env(READY_FD_ENV, "3")
        .stdin(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if libc::dup2(write_fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(spawn_error)?;
    drop(write_end);
    let new = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = Vec::new();
        let _ = { read_end }.read_to_end(&mut said);
        let _ = tx.send(said);
    });
    match rx.recv_timeout(wait) {
        Ok(said) if said.starts_with(READY) => Ok(new),
        Ok(_) => {
            let status = child.wait().map_err(spawn_error)?;
            Err(UpgradeError::Exited { status, old })
        }
        Err(_) => {
            let _ = child.kill();
            Err(UpgradeError::Timeout { wait, old })
        }
    }
}
