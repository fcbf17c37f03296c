//! [`Shared`]: what every listener, connection and task of one proxy
//! process sees — the current [`State`] (swapped whole on reload), the
//! global `maxconn` semaphore, the worker runtimes connections run on, the
//! stop signal, and the sockets an upgrade may take over. It is built by
//! the supervisor and only read below it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::state::State;

/// What every connection and task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: ArcSwap<State>,
    pub global_limit: Arc<Semaphore>,
    pub global_conns: Arc<AtomicU64>,
    /// Runtimes that accept and serve connections, each on its own handle of
    /// every listening socket; empty = the current runtime does.
    workers: Vec<tokio::runtime::Handle>,
    /// Flips to true once: connections then finish their current request.
    stop: watch::Sender<bool>,
    /// Listening sockets by address, for handing over to a new process.
    pub sockets: std::sync::Mutex<Vec<(SocketAddr, Arc<std::os::fd::OwnedFd>)>>,
    /// Inode of the admin socket file we created (0 = none yet).
    pub admin_inode: AtomicU64,
    /// Reload requests from the admin socket; answered with the outcome.
    pub reload: mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl Shared {
    pub fn new(
        state: State,
        maxconn: usize,
        global_conns: Arc<AtomicU64>,
        workers: Vec<tokio::runtime::Handle>,
        reload: mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        Shared {
            state: ArcSwap::from_pointee(state),
            global_limit: Arc::new(Semaphore::new(maxconn)),
            global_conns,
            workers,
            sockets: Default::default(),
            admin_inode: AtomicU64::new(0),
            stop,
            reload,
        }
    }

    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The worker runtimes, each of which accepts and serves connections
    /// (empty: the main runtime does).
    pub fn workers(&self) -> &[tokio::runtime::Handle] {
        &self.workers
    }

    /// Tells every connection to finish its current request and close.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Every counter read once, with the process-wide figures only this
    /// level knows (threads, open client connections), for the stats and
    /// metrics pages.
    pub fn snapshot(&self) -> crate::stats::Snapshot {
        let mut s = self.state.load().snapshot(self.stopping());
        s.process.threads = self.workers.len().max(1) as u64;
        s.process.current_connections = self.global_conns.load(Relaxed);
        // Every frontend shares the process's one logger.
        if let Some(fe) = self.state.load().frontends.first() {
            s.process.dropped_logs = fe.logger.dropped();
        }
        s
    }
}
