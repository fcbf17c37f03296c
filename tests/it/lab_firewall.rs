//! vakt's host firewall (`[firewall]`, nftables `table inet vakt`) in the
//! lab, with real nft inside each host's own network namespace (root only,
//! as on CI; never in this machine's): a rule set that cuts SSH is rolled
//! back by the host itself and `up` names the host as failed; a good one
//! goes in, verify proves its paths, a no-change `up` leaves it be, a
//! flushed table fails verify and is put back by the next `up`, `vakt
//! rollback` loads the previous rules; with HA, VRRP still elects one LB
//! and a failover drops nothing. A namespace outside the cluster (on the
//! lab's bridge, not in `admin`) reaches the public port only: web, DB,
//! SSH and metrics are closed to it and the stats page answers it 403.

use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::support::{TempDir, needs};

/// inventory/oslo.toml with `[firewall]` lines added.
fn oslo_with(dir: &TempDir, firewall: &str) -> String {
    let path = dir.path().join("oslo.toml");
    let oslo = include_str!("../../inventory/oslo.toml");
    std::fs::write(&path, format!("{oslo}\n[firewall]\n{firewall}\n")).unwrap();
    path.display().to_string()
}

/// A namespace outside the cluster: on the lab's bridge with addresses on
/// its networks (10.10.0.240, 203.0.113.240), so it could reach every host
/// but is in no `[firewall] admin`. Recorded with the lab's namespaces, so
/// `vakt lab down` removes it too.
fn outside(lab: &Lab) -> String {
    let name = format!("{}-out", lab.name);
    let ctl = format!("{}-ctl", lab.name);
    let record = format!("/run/vakt-lab/{}/namespaces", lab.name);
    let mut list = std::fs::read_to_string(&record).unwrap();
    list.push_str(&format!("{name}\n"));
    std::fs::write(&record, list).unwrap();
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["netns", "add", &name]);
    ip(&["-n", &name, "link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "vout", "netns", &ctl, "type", "veth", "peer", "name", "eth0", "netns",
        &name,
    ]);
    ip(&["-n", &ctl, "link", "set", "vout", "master", "br0", "up"]);
    for a in ["10.10.0.240/24", "203.0.113.240/24"] {
        ip(&["-n", &name, "addr", "add", a, "dev", "eth0"]);
    }
    ip(&["-n", &name, "link", "set", "eth0", "up"]);
    name
}

/// Runs `vakt probe ARGS` in namespace `ns`: (exit code, output).
fn probe_from(ns: &str, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_vakt"), "probe"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `nft list ruleset` inside a lab host.
fn ruleset(lab: &Lab, host: &str) -> String {
    let (code, out) = lab.on(host, &["nft", "list", "ruleset"]);
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
#[cfg_attr(
    not(vakt_lab_firewall),
    ignore = "lab firewall: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client, nft (nftables) (README: Tests)"
)]
fn rules_that_cut_ssh_are_rolled_back_by_the_host_and_up_fails_naming_it() {
    needs::require("vakt_lab_firewall");
    let dir = TempDir::new("labfwcut");
    // admin is a network the control namespace is not in: SSH is cut.
    let inv = oslo_with(&dir, "admin = [\"192.0.2.1/32\"]\nrollback_after = \"6s\"");
    let lab = Lab::up_file("fwc", &inv);
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_ne!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("db01"), "{all}");
    assert!(all.contains("the new rules cut SSH"), "{all}");
    // Nobody confirms: within the switch's time the hosts drop vakt's table
    // by themselves (there was none before), and SSH gets in again.
    let t = Instant::now();
    loop {
        if !ruleset(&lab, "db01").contains("table inet vakt") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "db01 kept the rules that cut SSH:\n{}",
            ruleset(&lab, "db01")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, out, err) = lab.vakt(&["status", "-i", &lab.inventory]);
    assert!(
        !format!("{out}{err}").contains("cannot connect"),
        "code {code}: {out}{err}"
    );
}

#[test]
#[cfg_attr(
    not(vakt_lab_firewall),
    ignore = "lab firewall: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client, nft (nftables) (README: Tests)"
)]
fn the_firewall_goes_in_holds_on_no_change_is_repaired_when_flushed_and_rolls_back() {
    needs::require("vakt_lab_firewall");
    let dir = TempDir::new("labfw");
    // admin by default: the control namespace's address as the hosts see it.
    let inv = oslo_with(&dir, "rollback_after = \"20s\"");
    let lab = Lab::up_file("fwg", &inv);
    let (code, out, err) = lab.vakt(&["check", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("SSH from the address this deploy connects from"),
        "{out}"
    );
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    let db = ruleset(&lab, "db01");
    assert!(db.contains("table inet vakt"), "{db}");
    assert!(db.contains("tcp dport 3306 accept"), "{db}");
    // Loaded at boot too: the lab's hosts are SysV hosts.
    let (_, links) = lab.on("db01", &["sh", "-c", "ls /etc/rcS.d /etc/rc2.d"]);
    assert!(links.contains("vakt-firewall"), "{links}");
    // The cluster still serves through the LB with every host filtered.
    let body = lab.curl(&["http://203.0.113.11:80/"]);
    assert!(body.contains("web0"), "{body}");

    // verify proves the paths: the allowed ones open, the others closed.
    let (code, out, err) = lab.vakt(&["verify", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    for expected in [
        "web01      firewall: 80 from lb01 open",
        "db01       firewall: 3306 from web01 open",
        "db01       firewall: 3306 from lb01 closed",
        "web01      firewall: 80 from db01 closed",
        "web01      firewall: 80 from web02 closed",
        "web02      firewall: 80 from here closed",
        "db01       firewall: 3306 from here closed",
        "db01       firewall: 22 from lb01 closed",
        "lb01       firewall: 8405 from web01 closed",
    ] {
        assert!(out.contains(expected), "missing `{expected}`:\n{out}");
    }
    // [metrics] (oslo.toml has it): scraped from here, an admin network.
    let line = out
        .lines()
        .find(|l| l.contains("lb01") && l.contains(" metrics"))
        .unwrap_or_else(|| panic!("no metrics check:\n{out}"));
    assert!(
        line.contains("haproxy_server_status for every web host"),
        "{line}"
    );
    let scrape = lab.curl(&["http://10.10.0.10:8405/metrics"]);
    assert!(scrape.contains("haproxy_process_"), "{scrape}");
    assert!(
        scrape.contains("haproxy_server_status{proxy=\"oslo\",server=\"web01\",state=\"UP\"} 1"),
        "{scrape}"
    );

    // From outside the cluster: the public port only.
    let out_ns = outside(&lab);
    let (code, o) = probe_from(&out_ns, &["http", "http://203.0.113.11:80/"]);
    assert_eq!(code, 0, "the outside namespace reaches the site: {o}");
    assert!(o.contains("http 200"), "{o}");
    // The stats page is the proxy's to refuse (the port is public): 403.
    let (_, o) = probe_from(&out_ns, &["http", "http://203.0.113.11:80/haproxy?stats"]);
    assert!(o.contains("http 403"), "{o}");
    for (what, addr) in [
        ("web01's web port", "10.10.0.11:80"),
        ("web02's web port", "10.10.0.12:80"),
        ("db01's DB port", "10.10.0.20:3306"),
        ("lb01's SSH", "10.10.0.10:22"),
        ("lb01's SSH (public)", "203.0.113.11:22"),
        ("web01's SSH", "10.10.0.11:22"),
        ("db01's SSH", "10.10.0.20:22"),
        ("lb01's metrics", "10.10.0.10:8405"),
    ] {
        let (code, o) = probe_from(&out_ns, &["tcp", addr, "--count", "1", "--timeout", "1s"]);
        assert_ne!(code, 0, "{what} ({addr}) is open from outside: {o}");
    }

    // audit: db01's data port is reached by the web hosts only, by its
    // rules and by the probes.
    let (code, out, err) = lab.vakt(&["audit", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("reach     only the web hosts and the hosts that dump it reach its data ports: port 3306: `ip saddr { 10.10.0.11, 10.10.0.12 } tcp dport 3306 accept`; `ip saddr 10.10.0.30 tcp dport 3306 accept`; reached from [web01, web02, backup01], closed from [lb01, here]"),
        "{out}"
    );
    assert!(
        out.contains("reach     it has no data port for anyone to reach"),
        "backup01: {out}"
    );

    let (code, again, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("no changes: every host already runs what the inventory says"),
        "{again}"
    );

    let (code, out) = lab.on("db01", &["nft", "flush", "table", "inet", "vakt"]);
    assert_eq!(code, 0, "{out}");
    assert!(!ruleset(&lab, "db01").contains("3306"));
    let (code, out, err) = lab.vakt(&["verify", "-i", &lab.inventory]);
    assert_ne!(code, 0, "{out}{err}");
    let fails: Vec<&str> = out.lines().filter(|l| l.contains("FAIL")).collect();
    assert!(
        fails
            .iter()
            .any(|l| l.contains("db01") && l.contains("3306") && l.contains("final `drop`")),
        "{out}"
    );
    let (code, out, err) = lab.vakt(&["audit", "-i", &lab.inventory]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("port 3306 is reachable from lb01, which is no web or backup host"),
        "{out}"
    );
    let (code, plan, err) = lab.vakt(&["plan", "-i", &lab.inventory]);
    assert_eq!(code, 2, "plan exits 2 when there is work: {plan}{err}");
    assert!(plan.contains("db01"), "{plan}");
    assert!(plan.contains("load firewall rules"), "{plan}");
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(ruleset(&lab, "db01").contains("tcp dport 3306 accept"));
    let (code, out, err) = lab.vakt(&["verify", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");

    // A new rule, then `vakt rollback`: the previous rules go back in, not
    // only the previous file.
    let with_extra = std::fs::read_to_string(&lab.inventory).unwrap().replace(
        "rollback_after = \"20s\"",
        "rollback_after = \"20s\"\nextra = [{ port = 9100, hosts = [\"db01\"] }]",
    );
    std::fs::write(&lab.inventory, with_extra).unwrap();
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(ruleset(&lab, "db01").contains("tcp dport 9100 accept"));
    let (code, out, err) = lab.vakt(&["rollback", "-i", &lab.inventory, "--hosts", "db01"]);
    assert_eq!(code, 0, "{out}{err}");
    let db = ruleset(&lab, "db01");
    assert!(
        !db.contains("9100") && db.contains("tcp dport 3306 accept"),
        "{db}"
    );

    // `remove` deletes vakt's table inside the host (its namespace only).
    let (code, out, err) = lab.vakt(&["remove", "-i", &lab.inventory, "--hosts", "db01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("would delete the nftables table inet vakt"),
        "{out}"
    );
    let (code, out, err) = lab.vakt(&["remove", "-i", &lab.inventory, "--hosts", "db01", "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!ruleset(&lab, "db01").contains("table inet vakt"));
}

#[test]
#[cfg_attr(
    not(all(vakt_lab_firewall, vakt_lab_ha)),
    ignore = "lab firewall + HA: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client, nft (nftables), keepalived (README: Tests)"
)]
fn with_the_firewall_on_vrrp_still_elects_one_lb_and_a_failover_drops_nothing() {
    needs::require("vakt_lab_firewall");
    needs::require("vakt_lab_ha");
    let dir = TempDir::new("labfwha");
    let path = dir.path().join("oslo-ha.toml");
    let ha = include_str!("../../inventory/oslo-ha.toml");
    std::fs::write(&path, format!("{ha}\n[firewall]\n")).unwrap();
    let lab = Lab::up_file("fwh", &path.display().to_string());
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    // VRRP passes between the LBs only: one holder, not two.
    assert_eq!(crate::lab_ha::holders(&lab), ["lb01"], "{out}");
    let lb02 = ruleset(&lab, "lb02");
    assert!(
        lb02.contains("ip saddr 10.10.0.10 ip protocol vrrp accept"),
        "{lb02}"
    );
    let (code, out, err) = lab.vakt(&["verify", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("firewall: 3306 from lb02 closed"), "{out}");

    let load = crate::lab_ha::stream(&lab);
    std::thread::sleep(Duration::from_millis(500));
    let (code, out, err) = lab.vakt(&["failover", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    std::thread::sleep(Duration::from_millis(500));
    let planned = load.stop();
    println!("HA with firewall, vakt failover: {planned}");
    assert_eq!(planned.failed, 0, "{planned}: {:?}", planned.failures);
    crate::lab_ha::holder_becomes(&lab, "lb02", Duration::from_secs(1));
}
