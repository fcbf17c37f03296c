//! The process around the listeners: binds them, starts health checks and the
//! admin socket, reloads the configuration on request (SIGHUP or the admin
//! socket) without dropping a connection, and stops gracefully.
//!
//! Shape after mini-redis `server::run`: [`run`] takes the config, a way to
//! re-read it, and a `shutdown` future; tests pass a oneshot, `serve` passes
//! SIGTERM/SIGINT.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ServeError;
use crate::config::{Config, Diagnostics};
use crate::listener::{self, Slot};
use crate::log::{LogSettings, Logger};
use crate::shared::Shared;
use crate::state::State;
use crate::{admin, health};

struct Bound {
    slot: Arc<Slot>,
    stop: watch::Sender<bool>,
    /// Its accept loops: one per worker runtime (or one on the main
    /// runtime when there are none).
    tasks: Vec<JoinHandle<()>>,
}

/// Reads the config again (the file may have changed since start).
pub type Reloader = Box<dyn Fn() -> Result<Config, Diagnostics> + Send + Sync>;

/// What [`run`] needs: the config and the sockets bound for it before the
/// runtime started, how to read the config again, when to stop, the worker
/// runtimes connections run on, and what to do once every listener serves.
pub struct Run<S, R> {
    pub config: Config,
    /// Sockets the caller bound (before daemonizing) or inherited (`-x`).
    pub prebound: Vec<(SocketAddr, std::net::TcpListener)>,
    pub reload: Reloader,
    /// Resolves when the process should stop (SIGTERM, SIGINT, SIGUSR1).
    pub shutdown: S,
    /// Runtimes that serve connections; empty = serve on the current one.
    pub workers: Vec<tokio::runtime::Handle>,
    /// Awaited once every listener accepts (systemd, `-sf`, the upgrader).
    pub started: R,
}

/// Binds, serves and reloads (SIGHUP or the admin socket) until `shutdown`.
pub async fn run(
    run: Run<impl Future<Output = ()>, impl Future<Output = ()>>,
) -> Result<(), ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let Run {
        config,
        prebound,
        reload,
        shutdown,
        workers,
        started,
    } = run;
    let mut hup = signal(SignalKind::hangup())?;
    let mut logger = Arc::new(Logger::new(&LogSettings::of(&config.global))?);
    let global_conns = Arc::new(AtomicU64::new(0));
    let maxconn = config.global.maxconn;
    let admin_path = config.global.admin_socket.clone();
    let stop_timeout = config.global.stop_timeout;
    let spread = config.global.spread_checks;
    let tls = crate::tls::build_all(&config)?;
    let state = State::build(config, None, logger.clone(), global_conns.clone(), &tls);

    // Bind everything before serving anything: a port taken by another
    // process is an error at start, not a half-running proxy. Sockets bound
    // by the caller (before daemonizing, or inherited from an older process)
    // are used as they are.
    let mut prebound: HashMap<SocketAddr, std::net::TcpListener> = prebound.into_iter().collect();
    let mut sockets = Vec::new();
    for fe in &state.frontends {
        for &addr in &fe.conf.bind {
            let l = match prebound.remove(&addr) {
                Some(l) => l
                    .set_nonblocking(true)
                    .and_then(|_| tokio::net::TcpListener::from_std(l)),
                None => listener::bind(addr, maxconn),
            }
            .map_err(|source| ServeError::Bind {
                listener: fe.name.to_string(),
                addr,
                source,
            })?;
            sockets.push((addr, fe.clone(), l));
        }
    }
    let (reload_tx, mut reload_rx) = mpsc::channel(4);
    let shared = Arc::new(Shared::new(
        state,
        maxconn,
        global_conns,
        workers,
        reload_tx,
    ));
    let admin_task = admin_path.as_ref().map(|p| admin::serve(p, shared.clone()));
    let mut bound: HashMap<SocketAddr, Bound> = HashMap::new();
    for (addr, fe, l) in sockets {
        bound.insert(addr, start_listener(addr, fe, l, &shared));
    }
    publish_sockets(&shared, &bound);
    let mut checks = health::spawn_all(&shared.state.load().pools, spread, &logger);
    let trim = tokio::spawn(crate::process::trim_after_bursts(
        shared.global_conns.clone(),
    ));
    started.await;
    // With `log = "stdout"` the event below already says it, and stdout and
    // stderr share the local cluster's proxy.log: say it once.
    if !logger.writes_to_stdout() {
        tracing::info!(listeners = bound.len(), "vakt proxy started");
    }
    logger.event(&format!("Proxy started ({} listeners).", bound.len()), 5);

    tokio::pin!(shutdown);
    // Certificate files are watched (an ACME client renewing writes new
    // ones): a change reloads, so new handshakes get the new certificate.
    let mut certs_seen = cert_files(&shared);
    let mut cert_poll = tokio::time::interval(CERT_POLL);
    cert_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outcome_tx = tokio::select! {
            _ = &mut shutdown => break,
            _ = hup.recv() => None,
            Some(tx) = reload_rx.recv() => Some(tx),
            _ = cert_poll.tick() => {
                let now = cert_files(&shared);
                if now == certs_seen {
                    continue;
                }
                tracing::info!("a certificate file changed; reloading");
                None
            }
        };
        // A reload also reopens a log file (logrotate's postrotate asks for
        // one after moving the file away), whether or not the new
        // configuration is good.
        logger.reopen();
        let result = match reload() {
            Ok(new) => apply_reload(new, &shared, &mut bound, &mut checks, &mut logger),
            Err(d) => Err(format!(
                "the new configuration is invalid, keeping the old one:\n{d}"
            )),
        };
        match &result {
            Ok(()) => {
                tracing::info!("configuration reloaded");
                logger.event("Configuration reloaded.", 5);
            }
            Err(e) => {
                tracing::error!("{e}");
                logger.event(&format!("Reload refused: {e}"), 3);
            }
        }
        if let Some(tx) = outcome_tx {
            let _ = tx.send(result);
        }
        certs_seen = cert_files(&shared);
    }

    // Graceful stop: no new connections, idle keep-alives close, requests in
    // flight finish until `stop_timeout`.
    tracing::info!("stopping: finishing requests in flight");
    logger.event("Proxy stopping.", 5);
    for b in bound.values() {
        let _ = b.stop.send(true);
    }
    shared.stop();
    for c in checks {
        c.abort();
    }
    trim.abort();
    if let Some(t) = admin_task {
        t.abort();
    }
    if let Some(p) = &admin_path {
        admin::remove_if_ours(p, shared.admin_inode.load(Relaxed));
    }
    let deadline = Instant::now() + stop_timeout;
    while shared.global_conns.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let left = shared.global_conns.load(Relaxed);
    if left > 0 {
        tracing::warn!(connections = left, "stop timeout reached, closing the rest");
    }
    Ok(())
}

fn publish_sockets(shared: &Shared, bound: &HashMap<SocketAddr, Bound>) {
    let list = bound
        .iter()
        .filter_map(|(a, b)| Some((*a, b.slot.fd.clone()?)))
        .collect();
    *shared.sockets.lock().unwrap_or_else(|e| e.into_inner()) = list;
}

fn start_listener(
    addr: SocketAddr,
    fe: Arc<crate::state::FrontendState>,
    l: tokio::net::TcpListener,
    shared: &Arc<Shared>,
) -> Bound {
    // A duplicate of the socket, kept to hand over on a binary upgrade.
    let fd = {
        use std::os::fd::AsFd;
        l.as_fd().try_clone_to_owned().ok().map(Arc::new)
    };
    let slot = Arc::new(Slot {
        addr,
        fe: ArcSwap::new(fe),
        fd,
    });
    let (stop, rx) = watch::channel(false);
    let tasks = if shared.workers().is_empty() {
        vec![tokio::spawn(listener::accept_loop(
            l,
            slot.clone(),
            shared.clone(),
            rx,
        ))]
    } else {
        // Every worker accepts on its own handle of the socket and serves
        // what it accepted: no hand-over from thread to thread (and from
        // reactor to reactor) for each new connection.
        match l.into_std() {
            Ok(std_l) => shared
                .workers()
                .iter()
                .filter_map(|w| {
                    let own = std_l
                        .try_clone()
                        .map_err(|e| tracing::error!(%addr, cause = %e, "duplicating the listening socket"))
                        .ok()?;
                    let (slot, sh, rx) = (slot.clone(), shared.clone(), rx.clone());
                    Some(w.spawn(async move {
                        match tokio::net::TcpListener::from_std(own) {
                            Ok(l) => listener::accept_loop(l, slot, sh, rx).await,
                            Err(e) => tracing::error!(%addr, cause = %e, "listening on a worker"),
                        }
                    }))
                })
                .collect(),
            Err(e) => {
                tracing::error!(%addr, cause = %e, "handing the listening socket to the workers");
                Vec::new()
            }
        }
    };
    Bound { slot, stop, tasks }
}

/// How often certificate files are checked for a change.
const CERT_POLL: std::time::Duration = std::time::Duration::from_secs(2);

fn cert_files(shared: &Shared) -> Vec<(std::path::PathBuf, Option<std::time::SystemTime>)> {
    let state = shared.state.load();
    let binds: Vec<&crate::config::TlsBind> =
        state.config.frontends.iter().flat_map(|f| &f.tls).collect();
    crate::tls::fingerprint(&binds)
}

/// Swaps in a new configuration. New addresses are bound first; if one
/// cannot be bound nothing changes.
fn apply_reload(
    config: Config,
    shared: &Arc<Shared>,
    bound: &mut HashMap<SocketAddr, Bound>,
    checks: &mut Vec<JoinHandle<()>>,
    logger: &mut Arc<Logger>,
) -> Result<(), String> {
    // Other log settings (a new target, format or anonymize): a new logger
    // for the new state; requests in flight finish on the old one, which
    // writes what is queued when the last of them drops it.
    let settings = LogSettings::of(&config.global);
    let new_logger = if *logger.settings() != settings {
        Some(Arc::new(Logger::new(&settings).map_err(|e| {
            format!(
                "cannot open the new log target ({:?}): {e}",
                settings.target
            )
        })?))
    } else {
        None
    };
    let spread = config.global.spread_checks;
    let maxconn = config.global.maxconn;
    let old = shared.state.load_full();
    // New certificates are read here: a file that cannot be read keeps the
    // old configuration (and its certificates) in place.
    let tls = crate::tls::build_all(&config).map_err(|e| e.to_string())?;
    let logger_for_state = new_logger.clone().unwrap_or_else(|| logger.clone());
    let state = State::build(
        config,
        Some(&old),
        logger_for_state,
        shared.global_conns.clone(),
        &tls,
    );

    let mut fresh = Vec::new();
    for fe in &state.frontends {
        for &addr in &fe.conf.bind {
            if !bound.contains_key(&addr) {
                let l = listener::bind(addr, maxconn)
                    .map_err(|e| format!("cannot listen on {addr} (`{}`): {e}", fe.name))?;
                fresh.push((addr, fe.clone(), l));
            }
        }
    }
    let wanted: HashMap<SocketAddr, Arc<crate::state::FrontendState>> = state
        .frontends
        .iter()
        .flat_map(|fe| fe.conf.bind.iter().map(move |a| (*a, fe.clone())))
        .collect();
    let pools = state.pools.clone();
    shared.state.store(Arc::new(state));
    bound.retain(|addr, b| match wanted.get(addr) {
        Some(fe) => {
            b.slot.fe.store(fe.clone());
            true
        }
        None => {
            // Connections already accepted keep being served.
            let _ = b.stop.send(true);
            for t in &b.tasks {
                t.abort();
            }
            false
        }
    });
    for (addr, fe, l) in fresh {
        bound.insert(addr, start_listener(addr, fe, l, shared));
    }
    publish_sockets(shared, bound);
    for c in checks.drain(..) {
        c.abort();
    }
    if let Some(l) = new_logger {
        *logger = l;
    }
    *checks = health::spawn_all(&pools, spread, logger);
    Ok(())
}
