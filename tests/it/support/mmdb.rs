//! A minimal MaxMind DB (mmdb) writer for tests: an IPv4 database mapping
//! networks to `{ "country": { "iso_code": CC } }`, in the binary format
//! of the MaxMind DB spec 2.0 (24-bit records). Real readers (the
//! `maxminddb` crate in `vakt audit`) read it like a GeoLite2-Country file,
//! and the tests control exactly which address lies in which country.

use std::net::Ipv4Addr;

fn ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
    assert!(size < 29, "small values only");
    if ty <= 7 {
        out.push((ty << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(ty - 7);
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    ctrl(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn uint(out: &mut Vec<u8>, ty: u8, v: u64) {
    let bytes: Vec<u8> = v
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    ctrl(out, ty, bytes.len());
    out.extend_from_slice(&bytes);
}

/// Builds the database: `networks` are (address, prefix length, country).
pub fn build(networks: &[(Ipv4Addr, u8, &str)]) -> Vec<u8> {
    // The search tree as a binary trie: node i has two children, each
    // either another node, nothing, or a country (a data record).
    #[derive(Clone, Copy)]
    enum Rec {
        Empty,
        Node(usize),
        Data(usize),
    }
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    let mut data = Vec::new();
    let mut offsets: Vec<(String, usize)> = Vec::new();
    for (addr, len, cc) in networks {
        let off = match offsets.iter().find(|(c, _)| c == cc) {
            Some((_, o)) => *o,
            None => {
                let o = data.len();
                ctrl(&mut data, 7, 1);
                string(&mut data, "country");
                ctrl(&mut data, 7, 1);
                string(&mut data, "iso_code");
                string(&mut data, cc);
                offsets.push((cc.to_string(), o));
                o
            }
        };
        let bits = u32::from(*addr);
        let mut node = 0;
        for i in 0..*len {
            let bit = ((bits >> (31 - i)) & 1) as usize;
            if i + 1 == *len {
                nodes[node][bit] = Rec::Data(off);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(n) => n,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let n = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(n);
                        n
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for n in &nodes {
        for r in n {
            let v = match *r {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(o) => count + 16 + o,
            };
            out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    ctrl(&mut out, 7, 9);
    string(&mut out, "node_count");
    uint(&mut out, 6, count as u64);
    string(&mut out, "record_size");
    uint(&mut out, 5, 24);
    string(&mut out, "ip_version");
    uint(&mut out, 5, 4);
    string(&mut out, "database_type");
    string(&mut out, "vakt-test-Country");
    string(&mut out, "languages");
    ctrl(&mut out, 11, 1);
    string(&mut out, "en");
    string(&mut out, "binary_format_major_version");
    uint(&mut out, 5, 2);
    string(&mut out, "binary_format_minor_version");
    uint(&mut out, 5, 0);
    string(&mut out, "build_epoch");
    uint(&mut out, 9, 1_795_000_000);
    string(&mut out, "description");
    ctrl(&mut out, 7, 1);
    string(&mut out, "en");
    string(&mut out, "vakt test database");
    out
}
