//! The Unix process around the proxy: detaching (`-D`), the pidfile (`-p`),
//! dropping privileges after binding (`user`/`group`), and asking older
//! processes to finish (`-sf`). Users and groups are read from /etc/passwd
//! and /etc/group directly: the static binary must not need glibc's NSS.

use std::io;
use std::path::Path;

/// Detaches from the terminal: fork, new session, stdio to /dev/null. Must
/// run before any thread is started.
pub(crate) fn daemonize() -> io::Result<()> {
    // SAFETY: called before the tokio runtimes exist, so the process has one
    // thread and fork is safe; the parent exits at once without unwinding.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

pub(crate) fn write_pidfile(path: &Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot write the pidfile {}: {e}", path.display()),
        )
    })
}

/// Tells systemd (a `Type=notify` unit) that we serve and are the main
/// process now: at start, and after a binary upgrade, where it lets systemd
/// follow the new process while the old one finishes. Nothing without
/// `NOTIFY_SOCKET`.
fn notify_systemd() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let msg = format!("READY=1\nMAINPID={}", std::process::id());
    let sent = (|| -> io::Result<()> {
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let sock = UnixDatagram::unbound()?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        // "@name" is an abstract socket.
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(Path::new(&path))?,
        };
        sock.send_to_addr(msg.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!(cause = %e, "cannot notify systemd");
    }
}

/// Once we serve: tell whoever started us for an upgrade (`vakt proxy
/// reload`, through the pipe `handoff::start_upgrade` made), then systemd (as the
/// main process), then the older processes (finish, then exit). Under
/// systemd, an upgrading process waits until its starter has exited and it
/// has become systemd's own child, since systemd 252 does not wait for a
/// main process that is not its child when it stops the unit.
pub(crate) async fn handover(soft_finish_pids: &[i32], upgrading: bool) {
    let parent = std::os::unix::process::parent_id();
    if let Some(fd) = std::env::var(crate::handoff::READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        // SAFETY: the fd was handed to us for this one write; it is closed
        // right after and used for nothing else.
        unsafe {
            let ready = crate::handoff::READY;
            let _ = libc::write(fd, ready.as_ptr().cast(), ready.len());
            libc::close(fd);
        }
    }
    if upgrading && std::env::var_os("NOTIFY_SOCKET").is_some() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::os::unix::process::parent_id() == parent && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    notify_systemd();
    soft_finish(soft_finish_pids);
}

/// Sends SIGUSR1 (finish requests, then exit) to older processes.
pub(crate) fn soft_finish(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: kill has no memory effects; a stale pid gives ESRCH.
        if unsafe { libc::kill(pid, libc::SIGUSR1) } < 0 {
            tracing::warn!(pid, cause = %io::Error::last_os_error(), "cannot signal the old process");
        }
    }
}

/// Looks a name (or number) up in an /etc/passwd-style file: field 2 is the id.
fn lookup(file: &str, name: &str) -> io::Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no `{name}` in {file}")))
}

/// Switches to `user`/`group` once the sockets are bound (only as root).
pub(crate) fn drop_privileges(user: Option<&str>, group: Option<&str>) -> io::Result<()> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 || (user.is_none() && group.is_none()) {
        return Ok(());
    }
    let gid = group.map(|g| lookup("/etc/group", g)).transpose()?;
    let uid = user.map(|u| lookup("/etc/passwd", u)).transpose()?;
    // SAFETY: plain syscalls on integers; the group is set before the user,
    // while we still may.
    unsafe {
        if let Some(g) = gid
            && (libc::setgroups(0, std::ptr::null()) < 0 || libc::setgid(g) < 0)
        {
            return Err(io::Error::last_os_error());
        }
        if let Some(u) = uid
            && libc::setuid(u) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How often the connection count is looked at for [`trim_after_bursts`].
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// Connections that must have closed since the last look to trim.
const TRIM_AFTER_CLOSED: u64 = 256;

/// Gives memory back to the system after a burst of connections: glibc's
/// allocator keeps what 10,000 closed connections held (about 160 MB in
/// `bench/PROFILE.md`) until `malloc_trim`. Runs on the main runtime, off
/// the data path; a trim walks the free lists once, milliseconds at most.
pub(crate) async fn trim_after_bursts(conns: std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let mut peak = 0u64;
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = conns.load(std::sync::atomic::Ordering::Relaxed);
        peak = peak.max(now);
        if peak.saturating_sub(now) >= TRIM_AFTER_CLOSED {
            // SAFETY: malloc_trim only touches the allocator's own state.
            let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
            peak = now;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_found_in_passwd_without_nss() {
        assert_eq!(super::lookup("/etc/passwd", "root").unwrap(), 0);
        assert_eq!(super::lookup("/etc/passwd", "42").unwrap(), 42);
        assert!(super::lookup("/etc/passwd", "no-such-user-here").is_err());
    }
}
