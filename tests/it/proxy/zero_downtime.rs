//! Zero-downtime operations under a continuous stream of requests: reloads,
//! a binary upgrade that takes over the listening sockets, and a server
//! killed hard. Each asserts zero failed requests and prints the totals.

use std::time::Duration;

use super::{Opts, cluster, config};
use crate::support::{DemoProcess, Load, Proxy, TempDir, eventually, free_addr, get};

#[test]
fn ten_reloads_under_load_lose_nothing() {
    let c = cluster(Opts::default());
    let load = Load::start(c.addr(), "/", 4, 200_000, Duration::from_secs(30));
    for i in 0..10u32 {
        std::thread::sleep(Duration::from_millis(100));
        let weights = [1 + i % 3, 1];
        c.proxy.reload(&c.config_with(&Opts {
            weights: &weights,
            ..Default::default()
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    let t = load.stop();
    println!("10 reloads: {t}");
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    assert!(t.ok > 100, "{t}");
}

#[test]
fn a_binary_upgrade_takes_over_the_sockets_without_a_failed_request() {
    let mut c = cluster(Opts::default());
    let old_pid = c.proxy.child.id();
    let load = Load::start(c.addr(), "/", 4, 200_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    // The new binary (a copy, as a package upgrade would install) takes the
    // listening sockets from the old process and tells it to finish.
    let dir = TempDir::new("upgrade");
    let new_bin = dir.path().join("vakt-new");
    std::fs::copy(env!("CARGO_BIN_EXE_vakt"), &new_bin).unwrap();
    let log = std::fs::File::create(dir.path().join("new.log")).unwrap();
    // Exec right after writing the file can meet ETXTBSY while another
    // test thread forks with the write descriptor inherited: retry briefly.
    let spawn = || {
        std::process::Command::new(&new_bin)
            .args(["proxy", "--config"])
            .arg(&c.proxy.config)
            .arg("-x")
            .arg(&c.admin)
            .args(["-sf", &old_pid.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log.try_clone().unwrap())
            .spawn()
    };
    let mut new = loop {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(50)),
            r => break r.unwrap(),
        }
    };
    let old_exited = eventually(Duration::from_secs(15), || {
        matches!(c.proxy.child.try_wait(), Ok(Some(_)))
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = load.stop();
    println!("binary upgrade: {t}");
    let new_log = std::fs::read_to_string(dir.path().join("new.log")).unwrap_or_default();
    assert!(
        old_exited,
        "the old process did not finish; new process log:\n{new_log}"
    );
    assert_eq!(t.failed, 0, "{t}: {:?}\n{new_log}", t.failures);
    assert!(t.ok > 100, "{t}");
    // The new process serves, and owns the admin socket now.
    assert_eq!(get(c.addr(), "/", &[]).status, 200);
    assert!(eventually(Duration::from_secs(5), || c
        .admin("show info")
        .contains(&format!("Pid: {}", new.id()))));
    let _ = new.kill();
    let _ = new.wait();
}

#[test]
fn a_server_killed_hard_costs_no_request() {
    let mut backends = [DemoProcess::spawn("web01"), DemoProcess::spawn("web02")];
    let list: Vec<(String, std::net::SocketAddr)> =
        backends.iter().map(|b| (b.name.clone(), b.addr)).collect();
    let dir = TempDir::new("kill");
    let admin = dir.path().join("admin.sock");
    let addr = free_addr();
    let opts = Opts {
        listen: "check = { path = \"/health\", interval = \"500ms\", rise = 2, fall = 2 }",
        ..Default::default()
    };
    let proxy = Proxy::start(&config(addr, &list, &admin, &opts), addr);
    let load = Load::start(addr, "/", 4, 200_000, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    backends[1].kill_hard();
    std::thread::sleep(Duration::from_secs(3));
    let t = load.stop();
    let stat = proxy.admin(&admin, "show stat");
    let retried: Vec<&str> = stat
        .lines()
        .filter(|l| l.starts_with("app,BACKEND"))
        .collect();
    println!("server killed: {t}; backend row: {retried:?}");
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
}
