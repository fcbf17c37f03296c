//! Value parsers both front ends share (an address, a balance algorithm), so
//! one spelling means one thing in TOML and in haproxy.cfg and neither front
//! end imports from the other. Each returns the problem as a sentence; the
//! caller adds the place. Durations live in [`reader`](super::reader), which
//! the CLI's inventory shares too.

use std::net::SocketAddr;

use super::Balance;

/// A balance algorithm by its HAProxy name; `None` for one vakt lacks.
pub(crate) fn parse_balance(v: &str) -> Option<Balance> {
    match v {
        "roundrobin" => Some(Balance::RoundRobin),
        "leastconn" => Some(Balance::LeastConn),
        "source" => Some(Balance::Source),
        _ => None,
    }
}

/// Parses `"IP:PORT"` (IPv6 as `"[::1]:80"`). Host names are refused: the proxy
/// never resolves names (no NSS in a static binary, no surprise DNS at 3 a.m.).
pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        if s.rsplit_once(':').is_none() {
            format!("\"{s}\" has no port; write IP:PORT, e.g. \"10.0.0.11:80\"")
        } else {
            format!("\"{s}\" is not an IP address and port (host names are not resolved)")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_balance_name_round_trips() {
        for b in [Balance::RoundRobin, Balance::LeastConn, Balance::Source] {
            assert_eq!(parse_balance(b.as_str()), Some(b));
        }
        assert_eq!(parse_balance("uri"), None);
    }

    #[test]
    fn addresses_need_a_port_and_no_names() {
        assert_eq!(parse_addr("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        assert!(parse_addr("10.0.0.1").unwrap_err().contains("has no port"));
        assert!(
            parse_addr("web01:80")
                .unwrap_err()
                .contains("host names are not resolved")
        );
    }
}
