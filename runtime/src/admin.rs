//! The admin socket: a Unix socket speaking a line protocol modelled on
//! HAProxy's runtime API (`show stat`, `set server app/web01 state drain`, ...).
//! The server side runs beside the listeners; [`request`] is the client used by
//! `vakt proxy admin`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends one command and returns the whole answer.
pub fn request(socket: &Path, command: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot connect to the admin socket {}: {e}",
                socket.display()
            ),
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(command.trim_end().as_bytes())?;
    s.write_all(b"\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use crate::pool::AdminState;
use crate::shared::Shared;

const HELP: &str = "\
Commands:
  help                                    this list
  show info                               process information
  show stat                               statistics as CSV (HAProxy columns)
  show servers                            one line per server: state, weight, sessions
  set server BACKEND/SERVER state ready|drain|maint
  set server BACKEND/SERVER weight N      0 to 256
  enable server BACKEND/SERVER            same as state ready
  disable server BACKEND/SERVER           same as state maint
  reload                                  re-read the configuration file
";

/// Listens on the admin socket, in the background. A stale socket file left
/// by a crashed process is replaced; a live one (an older vakt handing over
/// during a binary upgrade) is waited for until it lets go.
pub(crate) fn serve(path: &Path, shared: Arc<Shared>) -> JoinHandle<()> {
    let path = path.to_path_buf();
    // Bound now when free, so the socket answers as soon as the proxy does;
    // only a socket held by an older process is waited for in the background.
    let first = bind(&path);
    tokio::spawn(async move {
        let mut warned = false;
        let mut attempt = Some(first);
        let listener = loop {
            match attempt.take().unwrap_or_else(|| bind(&path)) {
                Ok(l) => break l,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    if !warned {
                        tracing::info!(socket = %path.display(), "admin socket in use; waiting for the old process");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::error!(cause = %e, "admin socket disabled");
                    return;
                }
            }
        };
        if let Ok(meta) = std::fs::metadata(&path) {
            use std::os::unix::fs::MetadataExt;
            shared
                .admin_inode
                .store(meta.ino(), std::sync::atomic::Ordering::Relaxed);
        }
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            // Each client in its own task: a slow client never stalls the
            // data path or other admin clients.
            tokio::spawn(client(stream, shared.clone()));
        }
    })
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, "in use"));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot create the admin socket {}: {e}", path.display()),
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Removes the socket file at stop, unless a newer process owns it by now.
pub(crate) fn remove_if_ours(path: &Path, inode: u64) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(path).is_ok_and(|m| m.ino() == inode) {
        let _ = std::fs::remove_file(path);
    }
}

async fn client(stream: tokio::net::UnixStream, shared: Arc<Shared>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        for cmd in line.split(';').map(str::trim).filter(|c| !c.is_empty()) {
            if cmd == "_getsocks" {
                let _ = send_sockets(reader.get_ref(), &shared).await;
                return;
            }
            let mut out = execute(cmd, &shared).await;
            out.push('\n');
            if reader.get_mut().write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// `_getsocks`: the listening sockets and their addresses, one message.
async fn send_sockets(stream: &tokio::net::UnixStream, shared: &Shared) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let list = shared
        .sockets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut payload = String::new();
    for (addr, _) in &list {
        payload.push_str(&format!("{addr}\n"));
    }
    if list.is_empty() {
        payload.push('\n');
    }
    let fds: Vec<_> = list.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
    loop {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            crate::handoff::send_fds(stream.as_raw_fd(), payload.as_bytes(), &fds)
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Runs one command and returns its answer (errors start with "error: ").
pub(crate) async fn execute(cmd: &str, shared: &Shared) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        ["help"] => HELP.to_string(),
        ["show", "info"] => {
            let st = shared.state.load();
            format!(
                "Name: vakt\nVersion: {}\nPid: {}\nUptime_sec: {}\nCurrConns: {}\nMaxconn: {}\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                st.started.elapsed().as_secs(),
                shared
                    .global_conns
                    .load(std::sync::atomic::Ordering::Relaxed),
                st.config.global.maxconn,
            )
        }
        ["show", "stat"] => {
            crate::stats::render_csv(&shared.state.load().snapshot(shared.stopping()))
        }
        ["show", "servers"] => show_servers(shared),
        ["set", "server", target, "state", s] => {
            let state = match *s {
                "ready" => AdminState::Ready,
                "drain" => AdminState::Drain,
                "maint" => AdminState::Maint,
                _ => return format!("error: unknown state `{s}`; use ready, drain or maint\n"),
            };
            with_server(shared, target, |srv| {
                srv.rt.set_admin(state);
                String::new()
            })
        }
        ["set", "server", target, "weight", w] => match w.parse::<u32>() {
            Ok(n) if n <= 256 => with_server(shared, target, |srv| {
                srv.rt.set_weight(n);
                String::new()
            }),
            _ => format!("error: weight `{w}` must be a number from 0 to 256\n"),
        },
        ["enable", "server", target] => with_server(shared, target, |s| {
            s.rt.set_admin(AdminState::Ready);
            String::new()
        }),
        ["disable", "server", target] => with_server(shared, target, |s| {
            s.rt.set_admin(AdminState::Maint);
            String::new()
        }),
        ["reload"] => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if shared.reload.send(tx).await.is_err() {
                return "error: the proxy is stopping\n".into();
            }
            match rx.await {
                Ok(Ok(())) => "Configuration reloaded.\n".into(),
                Ok(Err(e)) => format!("error: {e}\n"),
                Err(_) => "error: the proxy is stopping\n".into(),
            }
        }
        _ => format!("error: unknown command `{cmd}`; try `help`\n"),
    }
}

fn with_server(
    shared: &Shared,
    target: &str,
    f: impl FnOnce(&crate::pool::Server) -> String,
) -> String {
    let Some((b, s)) = target.split_once('/') else {
        return format!("error: `{target}` must be BACKEND/SERVER\n");
    };
    let st = shared.state.load();
    let Some(pool) = st.pool(b) else {
        let known: Vec<&str> = st.pools.iter().map(|p| &*p.name).collect();
        return format!("error: no backend `{b}`; known: {}\n", known.join(", "));
    };
    match pool.find(s) {
        Some(srv) => f(srv),
        None => {
            let known: Vec<&str> = pool.servers.iter().map(|s| &*s.name).collect();
            format!(
                "error: no server `{s}` in `{b}`; known: {}\n",
                known.join(", ")
            )
        }
    }
}

fn show_servers(shared: &Shared) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let st = shared.state.load();
    let mut out = String::from("# backend server addr status admin weight scur stot check\n");
    for pool in &st.pools {
        for s in &pool.servers {
            let (check, code, _) = s.rt.last_check();
            let check = match code {
                Some(c) => format!("{}/{c}", check.as_str()),
                None if check.as_str().is_empty() => "-".to_string(),
                None => check.as_str().to_string(),
            };
            out.push_str(&format!(
                "{} {} {} {} {} {} {} {} {}\n",
                pool.name,
                s.name,
                s.rt.addr,
                s.status_text().replace(' ', "_"),
                s.rt.admin().as_str(),
                s.rt.weight(),
                s.rt.counters.scur.load(Relaxed),
                s.rt.counters.stot.load(Relaxed),
                check,
            ));
        }
    }
    out
}
