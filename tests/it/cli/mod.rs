//! The `vakt` CLI: inventory validation, rendering (snapshots), and deploys
//! of local clusters (up, up again, plan, down, a host that fails).

mod acme;
mod audit;
mod colour;
mod demo_shop;
mod deploy;
mod exec;
mod history;
mod hooks;
mod init;
mod lock;
mod logs;
mod manual;
mod password;
mod promises;
mod proxy_config;
mod releases;
mod remove;
mod render;
mod targeting;
mod tls;
mod vagrant;
mod validate;
mod version;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::{TempDir, free_addr};

/// A local cluster inventory on addresses of its own (127.77.N.x), so tests
/// run side by side and never meet a user's `vakt up`.
pub fn local_inventory(dir: &Path, extra_web: &str) -> (std::path::PathBuf, String, u16) {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed) + (std::process::id() % 40) * 6;
    let net = format!("127.77.{}", n % 250);
    let port = free_addr().port();
    let text = format!(
        r#"[cluster]
name = "t{n}"
port = {port}

[[hosts]]
name = "lb01"
roles = ["lb"]
private_ip = "{net}.1"

[[hosts]]
name = "web01"
roles = ["web"]
private_ip = "{net}.2"
web = {{ port = {port}, cookie = "w1", weight = 1, demo = true{extra_web} }}

[[hosts]]
name = "web02"
roles = ["web"]
private_ip = "{net}.3"
web = {{ port = {port}, cookie = "w2", weight = 1, demo = true{extra_web} }}

[balancer]
health = {{ path = "/health", interval = "200ms", rise = 1, fall = 2 }}
stats = {{ uri = "/haproxy?stats", realm = "test", user = "admin", password_env = "VAKT_TEST_STATS_PASSWORD" }}
"#
    );
    let path = dir.join("inventory.toml");
    std::fs::write(&path, &text).unwrap();
    (path, net, port)
}

pub fn tmp(tag: &str) -> TempDir {
    TempDir::new(tag)
}
