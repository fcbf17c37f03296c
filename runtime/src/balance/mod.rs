//! Server selection, one file per algorithm. A balancer sees only a list of
//! candidate servers, their weights and active counts, and an `accept`
//! predicate that says which are ready: it knows nothing of HTTP, cookies or
//! health checks (those live in `persist` and `health`).

mod leastconn;
mod roundrobin;
mod source;

use std::net::IpAddr;

use crate::config::Balance;

pub(crate) use leastconn::LeastConn;
pub(crate) use roundrobin::RoundRobin;
pub(crate) use source::SourceHash;

/// What a balancer may know of a server.
pub(crate) trait Candidate {
    fn weight(&self) -> u32;
    /// Requests in flight.
    fn active(&self) -> u64;
}

/// The balancer of one set of servers (the active ones, or the backups).
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(RoundRobin),
    LeastConn(LeastConn),
    Source(SourceHash),
}

impl Balancer {
    /// `members` are indices into the pool's server list.
    pub(crate) fn new(kind: Balance, members: Vec<usize>) -> Self {
        match kind {
            Balance::RoundRobin => Balancer::RoundRobin(RoundRobin::new(members)),
            Balance::LeastConn => Balancer::LeastConn(LeastConn::new(members)),
            Balance::Source => Balancer::Source(SourceHash::new(members)),
        }
    }

    /// Picks one of the members for which `accept` holds.
    pub(crate) fn select<C: Candidate>(
        &self,
        servers: &[C],
        client: IpAddr,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        match self {
            Balancer::RoundRobin(b) => b.select(servers, accept),
            Balancer::LeastConn(b) => b.select(servers, accept),
            Balancer::Source(b) => b.select(servers, client, accept),
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Candidate;
    use std::cell::Cell;

    pub struct Fake {
        pub weight: u32,
        pub active: Cell<u64>,
    }

    pub fn fakes(weights: &[u32]) -> Vec<Fake> {
        weights
            .iter()
            .map(|&weight| Fake {
                weight,
                active: Cell::new(0),
            })
            .collect()
    }

    impl Candidate for Fake {
        fn weight(&self) -> u32 {
            self.weight
        }
        fn active(&self) -> u64 {
            self.active.get()
        }
    }
}
