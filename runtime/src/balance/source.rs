//! Source hashing: the client address picks the server, weighted, among the
//! ready ones, so a client keeps its server while the set of ready servers
//! stays the same (HAProxy's map-based `balance source`).

use std::net::IpAddr;

use super::Candidate;

#[derive(Debug)]
pub struct SourceHash {
    members: Vec<usize>,
}

impl SourceHash {
    pub fn new(members: Vec<usize>) -> Self {
        SourceHash { members }
    }

    pub fn select<C: Candidate>(
        &self,
        servers: &[C],
        client: IpAddr,
        accept: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let ok = |m: usize| servers[m].weight() > 0 && accept(m);
        let total: u64 = self
            .members
            .iter()
            .filter(|&&m| ok(m))
            .map(|&m| u64::from(servers[m].weight()))
            .sum();
        if total == 0 {
            return None;
        }
        let mut point = hash(client) % total;
        for &m in &self.members {
            if !ok(m) {
                continue;
            }
            let w = u64::from(servers[m].weight());
            if point < w {
                return Some(m);
            }
            point -= w;
        }
        None
    }
}

/// FNV-1a over the address bytes, then a final avalanche (fmix64) so that
/// neighbouring addresses spread.
fn hash(ip: IpAddr) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    let mut feed = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    match ip {
        IpAddr::V4(a) => feed(&a.octets()),
        IpAddr::V6(a) => feed(&a.octets()),
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::super::testing::fakes;
    use super::*;

    #[test]
    fn a_client_keeps_its_server_and_clients_spread() {
        let s = fakes(&[1, 1, 1]);
        let sh = SourceHash::new(vec![0, 1, 2]);
        let mut seen = [0; 3];
        for i in 0..60u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            let a = sh.select(&s, ip, |_| true).unwrap();
            assert_eq!(sh.select(&s, ip, |_| true), Some(a));
            seen[a] += 1;
        }
        assert!(seen.iter().all(|&n| n > 5), "{seen:?}");
    }
}
