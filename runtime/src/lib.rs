//! vakt-runtime: the load balancer behind `vakt proxy`.
//!
//! # Layout
//! Data flows one way: `config` (TOML → one typed [`Config`]) → `listener`
//! (accept, limits, shutdown) → `proxy` (one request) → `balance` + `persist`
//! (which server) → `pool` + `health` (servers and their state) → `stats`,
//! `admin`, `log` (what operators see). `demo` is the demo backend.

pub mod acme;
pub mod admin;
pub mod auth;
mod balance;
mod body;
mod chunked;
mod client_io;
pub mod config;
pub mod demo;
mod exchange;
/// Entry points for the fuzz targets in `runtime/fuzz`; not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod handoff;
mod health;
mod hygiene;
mod listener;
pub mod log;
pub mod metrics;
mod persist;
mod pool;
mod process;
mod proxy;
mod readiness;
mod shared;
mod state;
pub mod stats;
mod supervisor;
mod tls;
mod tunnel;
mod upstream;

pub use config::Config;
/// Checks a PEM file as a TLS listener would and names what it covers.
pub use tls::{TlsError, pem_names};

/// Why `vakt proxy` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(config::Diagnostics),
    #[error("cannot listen on {addr} (listener `{listener}`): {source}")]
    Bind {
        listener: String,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

/// How `vakt proxy` runs (its command-line flags).
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub config: std::path::PathBuf,
    /// Read `config` as haproxy.cfg (`-f`) rather than TOML.
    pub haproxy: bool,
    /// Detach from the terminal (`-D`, or `daemon` in haproxy.cfg).
    pub daemon: bool,
    /// Never detach, whatever the configuration says (`-db`).
    pub foreground: bool,
    /// Write the process id here (`-p`).
    pub pidfile: Option<std::path::PathBuf>,
    /// Take the listening sockets of the process behind this admin socket
    /// (`-x`), for a binary upgrade that refuses no connection.
    pub takeover: Option<std::path::PathBuf>,
    /// Older processes to finish once we serve (`-sf PID...`).
    pub soft_finish: Vec<i32>,
}

/// Reads a config file in the format the options name.
/// Certificates are read too, so `--check` catches a missing or broken PEM
/// file before a start or reload would.
pub fn load(opts: &ServeOptions) -> Result<(Config, config::Diagnostics), config::Diagnostics> {
    let (config, warnings) = if opts.haproxy {
        config::load_haproxy(&opts.config)
    } else {
        config::load(&opts.config)
    }?;
    if let Err(e) = tls::build_all(&config) {
        let mut d = config::Diagnostics::new();
        let src = config::Source::new(opts.config.display().to_string(), "");
        d.error(&src, None, format!("TLS certificate: {e}"));
        return Err(d);
    }
    Ok((config, warnings))
}

/// Runs the proxy as the options say; returns once it has stopped.
pub fn serve_with(opts: ServeOptions) -> Result<(), ServeError> {
    let (config, warnings) = load(&opts).map_err(ServeError::Config)?;
    for w in warnings.warnings() {
        eprintln!("{w}");
    }
    // Every socket is ready before we detach or drop privileges, so that a
    // taken port is reported on the terminal and port 80 needs root only here.
    let mut inherited = match &opts.takeover {
        Some(sock) => handoff::fetch(sock)?,
        None => Vec::new(),
    };
    let mut prebound = Vec::new();
    for fe in &config.frontends {
        for &addr in &fe.bind {
            if let Some(i) = inherited.iter().position(|(a, _)| *a == addr) {
                prebound.push(inherited.swap_remove(i));
                continue;
            }
            let l = listener::bind_std(addr, config.global.maxconn).map_err(|source| {
                ServeError::Bind {
                    listener: fe.name.clone(),
                    addr,
                    source,
                }
            })?;
            prebound.push((addr, l));
        }
    }
    if (opts.daemon || config.global.daemon) && !opts.foreground {
        process::daemonize()?;
    }
    if let Some(p) = opts.pidfile.as_ref().or(config.global.pidfile.as_ref()) {
        process::write_pidfile(p)?;
    }
    process::drop_privileges(
        config.global.user.as_deref(),
        config.global.group.as_deref(),
    )?;

    let threads = config
        .global
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Thread per core: each worker is a single-threaded runtime that owns
    // whole connections, so a request and the server connection it uses are
    // always polled by the same thread (no cross-thread wake-ups on the hot
    // path). Each worker also accepts on its own handle of every listening
    // socket, so a new connection never changes threads; the main runtime
    // checks health, reloads and runs the admin socket.
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        workers.push(rt.handle().clone());
        std::thread::Builder::new()
            .name(format!("vakt-worker-{i}"))
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reload_opts = opts.clone();
    let reload: supervisor::Reloader = Box::new(move || load(&reload_opts).map(|(c, _)| c));
    let soft_finish = opts.soft_finish.clone();
    let upgrading = opts.takeover.is_some();
    rt.block_on(async move {
        // Once we are accepting: systemd follows us, old processes finish.
        let started = process::handover(&soft_finish, upgrading);
        supervisor::run(supervisor::Run {
            config,
            prebound,
            reload,
            shutdown: stop_signal(),
            workers,
            started,
        })
        .await
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        // Without signal handlers the process can still be killed; run on.
        return std::future::pending().await;
    };
    // SIGUSR1 is HAProxy's soft stop (what `-sf` sends); ours are all soft.
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = usr1.recv() => {}
    }
}
