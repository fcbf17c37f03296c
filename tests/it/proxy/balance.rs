//! Balancing: round robin with weights, leastconn, source, backups.

use super::{Opts, cluster};
use crate::support::get;

fn served(c: &super::Cluster, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| get(c.addr(), "/", &[]).served_by().to_string())
        .collect()
}

#[test]
fn roundrobin_alternates_between_equal_servers() {
    let c = cluster(Opts::default());
    let seq = served(&c, 6);
    for pair in seq.windows(2) {
        assert_ne!(pair[0], pair[1], "{seq:?}");
    }
    assert!(seq.contains(&"web01".to_string()) && seq.contains(&"web02".to_string()));
}

#[test]
fn roundrobin_honours_weights() {
    let c = cluster(Opts {
        weights: &[3, 1],
        ..Default::default()
    });
    let seq = served(&c, 8);
    let w1 = seq.iter().filter(|s| *s == "web01").count();
    assert_eq!(w1, 6, "{seq:?}");
}

#[test]
fn weight_zero_gets_no_new_traffic() {
    let c = cluster(Opts {
        weights: &[1, 0],
        ..Default::default()
    });
    assert!(served(&c, 5).iter().all(|s| s == "web01"));
}

#[test]
fn leastconn_prefers_the_idle_server() {
    let c = cluster(Opts {
        listen: "balance = \"leastconn\"",
        ..Default::default()
    });
    // Hold one slow request on whichever server gets it; the next requests
    // must go to the other one.
    let addr = c.addr();
    let slow = std::thread::spawn(move || {
        get(addr, "/echo?delay_ms=1500", &[])
            .served_by()
            .to_string()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let busy = {
        let after = served(&c, 3);
        assert!(after.windows(2).all(|w| w[0] == w[1]), "{after:?}");
        after[0].clone()
    };
    assert_ne!(slow.join().unwrap(), busy);
}

#[test]
fn source_keeps_a_client_on_one_server() {
    let c = cluster(Opts {
        listen: "balance = \"source\"",
        ..Default::default()
    });
    let seq = served(&c, 5);
    assert!(seq.windows(2).all(|w| w[0] == w[1]), "{seq:?}");
}

#[test]
fn backup_serves_only_when_no_active_server_is_up() {
    let mut c = cluster(Opts {
        weights: &[1, 1],
        ..Default::default()
    });
    // Make web02 a backup by reloading with `backup = true` on the second server.
    let cfg = c.config_with(&Opts::default()).replacen(
        "cookie = \"w2\"",
        "cookie = \"w2\"\nbackup = true",
        1,
    );
    c.proxy.reload(&cfg);
    assert!(crate::support::eventually(
        std::time::Duration::from_secs(5),
        || { served(&c, 4).iter().all(|s| s == "web01") }
    ));
    c.backends[0].stop();
    let after = served(&c, 3);
    assert!(after.iter().all(|s| s == "web02"), "{after:?}");
}
