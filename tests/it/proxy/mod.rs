//! `vakt proxy` against real demo-web backends on loopback, driven by a raw
//! HTTP client so every assertion is about what crossed the wire.

mod balance;
mod faults;
mod hygiene;
mod limits;
mod operate;
mod page_acl;
mod persist;
mod props;
mod stats_page;
mod syslog;
mod tls;
mod websocket;
mod zero_downtime;

use std::net::SocketAddr;

use crate::support::{Backend, Proxy, TempDir, free_addr};

/// A proxy in front of `n` backends named web01.., cookies w1...
pub struct Cluster {
    pub proxy: Proxy,
    pub backends: Vec<Backend>,
    pub admin: std::path::PathBuf,
    /// Keeps the admin socket's directory alive.
    _dir: TempDir,
}

pub struct Opts<'a> {
    /// Extra lines inside `[[listen]]`.
    pub listen: &'a str,
    /// Extra lines per server (same for all).
    pub server: &'a str,
    /// Extra lines inside `[global]`.
    pub global: &'a str,
    pub weights: &'a [u32],
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            listen: "",
            server: "",
            global: "",
            weights: &[1, 1],
        }
    }
}

pub fn config(
    addr: SocketAddr,
    backends: &[(String, SocketAddr)],
    admin: &std::path::Path,
    o: &Opts,
) -> String {
    let mut s = format!(
        r#"[global]
maxconn = 1000
admin_socket = "{}"
{}

[defaults]
retries = 2
redispatch = true
forwardfor = true
timeout = {{ connect = "1s", client = "10s", server = "10s", queue = "2s", http_request = "2s" }}

[[listen]]
name = "app"
bind = ["{addr}"]
cookie = {{ name = "SERVERID", mode = "insert", indirect = true, nocache = true }}
{}
"#,
        admin.display(),
        if o.global.contains("log =") {
            o.global.to_string()
        } else {
            format!("log = \"off\"\n{}", o.global)
        },
        o.listen
    );
    for (i, (name, a)) in backends.iter().enumerate() {
        let w = o.weights.get(i).copied().unwrap_or(1);
        s.push_str(&format!(
            "\n[[listen.server]]\nname = \"{name}\"\naddr = \"{a}\"\ncookie = \"w{}\"\nweight = {w}\n{}\n",
            i + 1,
            o.server
        ));
    }
    s
}

pub fn cluster(o: Opts) -> Cluster {
    let backends: Vec<Backend> = (1..=o.weights.len())
        .map(|i| Backend::spawn(&format!("web0{i}")))
        .collect();
    let list: Vec<(String, SocketAddr)> =
        backends.iter().map(|b| (b.name.clone(), b.addr)).collect();
    let dir = TempDir::new("admin");
    let admin = dir.path().join("admin.sock");
    let addr = free_addr();
    let proxy = Proxy::start(&config(addr, &list, &admin, &o), addr);
    Cluster {
        proxy,
        backends,
        admin,
        _dir: dir,
    }
}

impl Cluster {
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }

    pub fn admin(&self, cmd: &str) -> String {
        self.proxy.admin(&self.admin, cmd)
    }

    pub fn config_with(&self, o: &Opts) -> String {
        let list: Vec<(String, SocketAddr)> = self
            .backends
            .iter()
            .map(|b| (b.name.clone(), b.addr))
            .collect();
        config(self.addr(), &list, &self.admin, o)
    }
}
