//! The live state built from a [`Config`]: frontends with their routes and
//! stats pages, backend pools with their servers. A reload builds a new
//! [`State`] and swaps it in atomically; server runtimes (health, counters,
//! idle connections) carry over when a server keeps its name and address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use http::HeaderValue;
use tokio::sync::{Notify, Semaphore};

use crate::auth::Credentials;
use crate::balance::Balancer;
use crate::config::{self, Config, RouteRule};
use crate::log::Logger;
use crate::pool::{Counters, Pool, Server, ServerRuntime};
use crate::stats;

/// A stats page with its credentials, ready to answer.
#[derive(Debug)]
pub(crate) struct StatsPage {
    pub conf: config::Stats,
    pub credentials: Credentials,
    /// `Basic realm="..."`, built once.
    pub challenge: HeaderValue,
}

/// The Prometheus page with its credentials (none = open).
#[derive(Debug)]
pub(crate) struct MetricsPage {
    pub conf: config::Metrics,
    pub credentials: Credentials,
    pub challenge: HeaderValue,
}

/// `Basic realm="..."` for a page's 401, built once.
fn challenge(realm: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "Basic realm=\"{}\"",
        realm.replace(['"', '\\'], "")
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"vakt\""))
}

#[derive(Debug)]
pub(crate) struct FrontendState {
    pub conf: config::Frontend,
    pub name: Arc<str>,
    pub counters: Arc<Counters>,
    /// `maxconn` of this frontend.
    pub limit: Arc<Semaphore>,
    pub routes: Vec<(RouteRule, Arc<Pool>)>,
    pub default_pool: Option<Arc<Pool>>,
    pub stats: Option<StatsPage>,
    pub metrics: Option<MetricsPage>,
    pub logger: Arc<Logger>,
    /// Client connections of the whole process (HAProxy's actconn).
    pub global_conns: Arc<AtomicU64>,
    pub max_header_size: usize,
    /// TLS server settings by listening address (certificates loaded).
    pub tls: HashMap<SocketAddr, Arc<rustls::ServerConfig>>,
}

impl FrontendState {
    /// The pool a request goes to: the first matching route, else the default.
    pub fn route(&self, path: &str, host: Option<&str>) -> Option<&Arc<Pool>> {
        for (rule, pool) in &self.routes {
            let hit = match rule {
                RouteRule::PathPrefix(p) => p.iter().any(|p| path.starts_with(p.as_str())),
                RouteRule::Host(hosts) => host.is_some_and(|h| {
                    let h = h.rsplit_once(':').map_or(h, |(h, _)| h);
                    hosts.iter().any(|x| x.eq_ignore_ascii_case(h))
                }),
            };
            if hit {
                return Some(pool);
            }
        }
        self.default_pool.as_ref()
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub config: Config,
    pub frontends: Vec<Arc<FrontendState>>,
    pub pools: Vec<Arc<Pool>>,
    pub started: Instant,
}

impl State {
    /// Builds the state for `config`, reusing server runtimes from `previous`.
    pub fn build(
        config: Config,
        previous: Option<&State>,
        logger: Arc<Logger>,
        global_conns: Arc<AtomicU64>,
        tls: &HashMap<SocketAddr, Arc<rustls::ServerConfig>>,
    ) -> State {
        let mut old: HashMap<(&str, &str), &Server> = HashMap::new();
        let mut old_fe: HashMap<&str, &FrontendState> = HashMap::new();
        if let Some(p) = previous {
            for pool in &p.pools {
                for s in &pool.servers {
                    old.insert((&pool.name, &s.name), s);
                }
            }
            for fe in &p.frontends {
                old_fe.insert(&fe.name, fe);
            }
        }
        let old_pools: HashMap<&str, &Arc<Pool>> = previous
            .map(|p| p.pools.iter().map(|x| (&*x.name, x)).collect())
            .unwrap_or_default();

        let pools: Vec<Arc<Pool>> = config
            .backends
            .iter()
            .map(|b| {
                let servers: Vec<Server> = b
                    .servers
                    .iter()
                    .map(|s| {
                        let prev = old.get(&(b.name.as_str(), s.name.as_str())).copied();
                        build_server(b, s, prev)
                    })
                    .collect();
                let active = (0..servers.len())
                    .filter(|&i| !servers[i].conf.backup)
                    .collect();
                let backup = (0..servers.len())
                    .filter(|&i| servers[i].conf.backup)
                    .collect();
                let prev_pool = old_pools.get(b.name.as_str());
                Arc::new(Pool {
                    name: b.name.as_str().into(),
                    balancer: Balancer::new(b.balance, active),
                    backup_balancer: Balancer::new(b.balance, backup),
                    counters: prev_pool.map(|p| p.counters.clone()).unwrap_or_default(),
                    slot_freed: prev_pool
                        .map(|p| p.slot_freed.clone())
                        .unwrap_or_else(|| Arc::new(Notify::new())),
                    cookie_prefix: b.cookie.as_ref().map(|c| format!("{}=", c.name)),
                    servers,
                    conf: b.clone(),
                })
            })
            .collect();

        let frontends = config
            .frontends
            .iter()
            .map(|f| {
                let prev = old_fe.get(f.name.as_str());
                let limit = match prev {
                    Some(p) if p.conf.maxconn == f.maxconn => p.limit.clone(),
                    _ => Arc::new(Semaphore::new(f.maxconn)),
                };
                Arc::new(FrontendState {
                    name: f.name.as_str().into(),
                    counters: prev.map(|p| p.counters.clone()).unwrap_or_default(),
                    limit,
                    routes: f
                        .routes
                        .iter()
                        .map(|r| (r.rule.clone(), pools[r.backend].clone()))
                        .collect(),
                    default_pool: f.default_backend.map(|i| pools[i].clone()),
                    stats: f.stats.as_ref().map(|s| StatsPage {
                        credentials: Credentials::new(&s.users),
                        challenge: challenge(&s.realm),
                        conf: s.clone(),
                    }),
                    metrics: f.metrics.as_ref().map(|m| MetricsPage {
                        credentials: Credentials::new(&m.users),
                        challenge: challenge("metrics"),
                        conf: m.clone(),
                    }),
                    logger: logger.clone(),
                    global_conns: global_conns.clone(),
                    max_header_size: config.global.max_header_size,
                    tls: f
                        .tls
                        .iter()
                        .filter_map(|t| Some((t.addr, tls.get(&t.addr)?.clone())))
                        .collect(),
                    conf: f.clone(),
                })
            })
            .collect();

        State {
            started: previous.map_or_else(Instant::now, |p| p.started),
            config,
            frontends,
            pools,
        }
    }

    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| &*p.name == name)
    }

    /// Reads every counter once for the stats page and the admin socket.
    pub fn snapshot(&self, stopping: bool) -> stats::Snapshot {
        let mut proxies: Vec<stats::ProxyStats> = Vec::new();
        for fe in &self.frontends {
            proxies.push(stats::ProxyStats {
                name: fe.name.to_string(),
                frontend: Some(stats::FrontendRow {
                    counters: fe.counters.snapshot(fe.conf.maxconn as u64),
                    status: if stopping { "STOP" } else { "OPEN" }.into(),
                }),
                backend: None,
                servers: Vec::new(),
            });
        }
        for pool in &self.pools {
            let (row, servers) = pool.snapshot();
            match proxies
                .iter_mut()
                .find(|p| p.name == *pool.name && p.backend.is_none())
            {
                Some(p) => {
                    p.backend = Some(row);
                    p.servers = servers;
                }
                None => proxies.push(stats::ProxyStats {
                    name: pool.name.to_string(),
                    frontend: None,
                    backend: Some(row),
                    servers,
                }),
            }
        }
        stats::Snapshot {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime: self.started.elapsed(),
            now_unix: crate::pool::now_unix(),
            process: stats::ProcessStats {
                threads: 1,
                maxconn: self.config.global.maxconn as u64,
                current_connections: 0,
                stopping,
                dropped_logs: 0,
            },
            proxies,
        }
    }
}

fn build_server(b: &config::Backend, s: &config::Server, prev: Option<&Server>) -> Server {
    let prev = prev.filter(|p| p.rt.addr == s.addr);
    let rt = match prev {
        Some(p) => {
            p.rt.reconfigure_weight(s.weight);
            p.rt.clone()
        }
        None => Arc::new(ServerRuntime::new(s.addr, s.weight)),
    };
    let limit = match prev {
        Some(p) if p.conf.maxconn == s.maxconn => p.limit.clone(),
        _ => (s.maxconn > 0).then(|| Arc::new(Semaphore::new(s.maxconn))),
    };
    let set_cookie = match (&b.cookie, &s.cookie) {
        (Some(c), Some(v)) => HeaderValue::from_str(&format!("{}={v}; path=/", c.name)).ok(),
        _ => None,
    };
    Server {
        name: s.name.as_str().into(),
        set_cookie,
        limit,
        rt,
        conf: s.clone(),
    }
}

/// Keeps the client address type in one place for balancers.
pub(crate) fn client_ip(addr: std::net::SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}
