//! Deploying local clusters: `up` brings a real cluster up, `up` again
//! changes nothing, `plan` shows diffs with terraform's exit codes, a host
//! that fails keeps its previous files and keeps serving, `down` stops all.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{local_inventory, tmp};
use crate::support::{Conn, get, set_cookie_value, vakt};

pub(super) fn run(args: &[&str], inv: &Path, state: &Path) -> (i32, String, String) {
    let out = vakt()
        .args(args)
        .arg("-i")
        .arg(inv)
        .arg("--state-dir")
        .arg(state)
        .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Stops the cluster even when an assertion fails.
pub(super) struct Down<'a>(pub(super) &'a Path, pub(super) &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        run(&["down"], self.0, self.1);
    }
}

/// A local cluster brought up by `vakt up`, stopped when dropped.
pub(super) struct Cluster {
    pub(super) dir: crate::support::TempDir,
    pub(super) inv: std::path::PathBuf,
    pub(super) state: std::path::PathBuf,
    /// The load balancer's listener.
    pub(super) lb: std::net::SocketAddr,
}

impl Cluster {
    pub(super) fn up(tag: &str) -> Cluster {
        let dir = tmp(tag);
        let (inv, net, port) = local_inventory(dir.path(), "");
        let state = dir.path().join("state");
        let c = Cluster {
            lb: format!("{net}.1:{port}").parse().unwrap(),
            dir,
            inv,
            state,
        };
        let (code, out, err) = run(&["up"], &c.inv, &c.state);
        assert_eq!(code, 0, "{out}{err}");
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        run(&["down"], &self.inv, &self.state);
    }
}

#[test]
fn up_brings_a_balanced_sticky_cluster_and_a_second_up_changes_nothing() {
    let dir = tmp("up");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let _down = Down(&inv, &state);
    let t = Instant::now();
    let (code, out, err) = run(&["up"], &inv, &state);
    println!(
        "vakt up (first run, local): {:.2}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("start vakt-proxy") && out.contains("is up: http://"),
        "{out}"
    );
    let lb: std::net::SocketAddr = format!("{net}.1:{port}").parse().unwrap();
    let seq: Vec<String> = (0..4)
        .map(|_| get(lb, "/", &[]).served_by().to_string())
        .collect();
    assert!(seq.windows(2).all(|w| w[0] != w[1]), "round robin: {seq:?}");

    // A session's cart survives 20 requests through the LB.
    let first = get(lb, "/", &[]);
    let cookie = format!(
        "SERVERID={}; DEMOSESSID={}",
        set_cookie_value(&first, "SERVERID").unwrap(),
        set_cookie_value(&first, "DEMOSESSID").unwrap()
    );
    let mut c = Conn::open(lb);
    c.send(format!("POST /cart?item=tea HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    for _ in 0..20 {
        let r =
            c.send(format!("GET /cart HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n").as_bytes());
        assert_eq!(r.json()["items"][0], "tea");
    }
    let auth = format!("Basic {}", crate::support::base64(b"admin:test-pw"));
    assert_eq!(
        get(lb, "/haproxy?stats", &[("Authorization", &auth)]).status,
        200
    );

    let t = Instant::now();
    let (code, out, err) = run(&["up"], &inv, &state);
    println!(
        "vakt up (no-change run, local): {:.2}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("no changes: every host already runs what the inventory says"),
        "{out}"
    );
    let (code, out, _) = run(&["plan"], &inv, &state);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&["up", "--check"], &inv, &state);
    assert_eq!(code, 0, "{out}");

    // Change a weight: plan shows the diff and exits 2; up reloads.
    std::fs::write(
        &inv,
        std::fs::read_to_string(&inv)
            .unwrap()
            .replacen("weight = 1", "weight = 3", 1),
    )
    .unwrap();
    let (code, out, _) = run(&["plan"], &inv, &state);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("-weight = 1")
            && out.contains("+weight = 3")
            && out.contains("will reload vakt-proxy"),
        "{out}"
    );
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("reload vakt-proxy"), "{out}");

    // Status reads live health checks: under a loaded machine one check can
    // time out and mark a server DOWN until it rises again, so give it a
    // few intervals and show what it said meanwhile.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (code, out) = loop {
        let (code, out, _) = run(&["status"], &inv, &state);
        if code == 0 || Instant::now() > deadline {
            break (code, out);
        }
        println!("status not yet healthy (exit {code}):\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("vakt-proxy running") && out.contains("UP"),
        "{out}"
    );
    let (code, out, _) = run(&["down"], &inv, &state);
    assert_eq!(code, 0);
    assert!(out.contains("stopped vakt-proxy"), "{out}");
    assert!(
        std::net::TcpStream::connect_timeout(&lb, Duration::from_millis(300)).is_err(),
        "still listening after down"
    );
}

#[test]
fn a_host_that_fails_keeps_its_previous_files_and_keeps_serving() {
    let c = Cluster::up("fail");
    let (dir, inv, state, lb) = (&c.dir, c.inv.clone(), c.state.clone(), c.lb);
    let before = std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml")).unwrap();

    // A broken template next to the inventory: the LB's new config fails
    // its check, the web hosts are unaffected.
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(&tpl).unwrap();
    let good = include_str!("../../../templates/proxy.toml.j2");
    std::fs::write(
        tpl.join("proxy.toml.j2"),
        good.replace(
            "balance = {{ balancer.balance | q }}",
            "balance = \"no-such-algorithm\"",
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("lb01") && out.contains("FAILED"), "{out}");
    assert!(err.contains("kept their previous files"), "{err}");
    assert_eq!(
        std::fs::read_to_string(state.join("lb01/etc/vakt/proxy.toml")).unwrap(),
        before,
        "the old config is back"
    );
    assert_eq!(get(lb, "/", &[]).status, 200, "the LB still serves");
}

#[test]
fn drain_ready_and_a_rolling_restart_lose_no_request() {
    let c = Cluster::up("rolling");
    let (inv, state, lb) = (c.inv.clone(), c.state.clone(), c.lb);

    let (code, out, err) = run(&["drain", "web01"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!((0..4).all(|_| get(lb, "/", &[]).served_by() == "web02"));
    let (code, _, _) = run(&["ready", "web01"], &inv, &state);
    assert_eq!(code, 0);
    assert!(crate::support::eventually(Duration::from_secs(5), || (0
        ..4)
        .any(|_| get(lb, "/", &[]).served_by() == "web01")));

    let load = crate::support::Load::start(lb, "/", 4, 100_000, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    // Local hosts run commands in their folder: the init script is relative.
    let (code, out, err) = run(
        &["rolling", "--exec", "sh etc/init.d/vakt-demo-web restart"],
        &inv,
        &state,
    );
    std::thread::sleep(Duration::from_millis(300));
    let t = load.stop();
    println!("rolling restart of web01, web02: {t}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("web01: ready") && out.contains("web02: ready"),
        "{out}"
    );
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    assert!(t.ok > 100, "{t}");
}

#[test]
fn a_new_proxy_binary_takes_over_without_a_failed_request() {
    let c = Cluster::up("upgrade");
    let (inv, state, lb) = (c.inv.clone(), c.state.clone(), c.lb);
    let pidfile = state.join("lb01/run/vakt/vakt-proxy.pid");
    let before = std::fs::read_to_string(&pidfile).unwrap();

    // What `up` does on the LB when the binary changed: the new binary is
    // put in place, then the init script's `upgrade` lets it take over the
    // sockets. A different build: the same program with bytes appended.
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_vakt")).unwrap();
    bytes.extend_from_slice(b"\nvakt test build\n");
    let bin = state.join("lb01/usr/local/bin/vakt");
    let tmp_bin = state.join("lb01/usr/local/bin/vakt.new");
    std::fs::write(&tmp_bin, bytes).unwrap();
    std::fs::set_permissions(
        &tmp_bin,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::rename(&tmp_bin, &bin).unwrap();
    let load = crate::support::Load::start(lb, "/", 4, 100_000, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new("sh")
        .arg(state.join("lb01/etc/init.d/vakt-proxy"))
        .arg("upgrade")
        .output()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = load.stop();
    println!("proxy binary upgrade (init script, as vakt up runs it): {t}");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("vakt-proxy upgraded"));
    assert_ne!(
        std::fs::read_to_string(&pidfile).unwrap(),
        before,
        "a new process serves"
    );
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    // And `up` plans exactly that for the proxy when the binary differs.
    let (code, out, _) = run(&["plan"], &inv, &state);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("will upgrade vakt-proxy"), "{out}");
}

#[test]
fn up_with_a_new_binary_rolls_web_hosts_one_at_a_time_without_a_failed_request() {
    let c = Cluster::up("uproll");
    let (dir, inv, state, lb) = (&c.dir, c.inv.clone(), c.state.clone(), c.lb);
    // Another build: the same program with bytes appended.
    let mut bytes = std::fs::read(env!("CARGO_BIN_EXE_vakt")).unwrap();
    bytes.extend_from_slice(b"\nvakt test build 2\n");
    let copy = dir.path().join("vakt-next");
    std::fs::write(&copy, bytes).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let load = crate::support::Load::start(lb, "/", 4, 200_000, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = run(
        &["up", "--binary", &copy.display().to_string()],
        &inv,
        &state,
    );
    std::thread::sleep(Duration::from_millis(300));
    let t = load.stop();
    println!(
        "vakt up with a new binary (web hosts drained and restarted one at a time, proxy taken over): {t}"
    );
    assert_eq!(code, 0, "{out}{err}");
    for host in ["web01", "web02"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(host) && l.contains("restart vakt-demo-web")),
            "{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("upgrade vakt-proxy")),
        "{out}"
    );
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
}

#[test]
fn rollback_goes_back_one_release_at_a_time_and_reloads_without_a_failed_request() {
    let dir = tmp("rollback");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let _down = Down(&inv, &state);
    let lb: std::net::SocketAddr = format!("{net}.1:{port}").parse().unwrap();
    let read = |p: &str| std::fs::read_to_string(state.join("lb01").join(p)).unwrap();
    let set_weight = |from: &str, to: &str| {
        let text = std::fs::read_to_string(&inv).unwrap();
        std::fs::write(&inv, text.replacen(from, to, 1)).unwrap();
    };

    // Release A.
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let init_a = read("etc/init.d/vakt-proxy");

    // Release B: a new weight and a changed init script on lb01.
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(&tpl).unwrap();
    std::fs::write(
        tpl.join("vakt-proxy.init.j2"),
        include_str!("../../../templates/vakt-proxy.init.j2").to_string() + "# release B\n",
    )
    .unwrap();
    set_weight("weight = 1", "weight = 3");
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let (conf_b, init_b) = (read("etc/vakt/proxy.toml"), read("etc/init.d/vakt-proxy"));
    assert_ne!(init_a, init_b);

    // Release C: only the weight.
    set_weight("weight = 3", "weight = 5");
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(read("etc/vakt/proxy.toml").contains("weight = 5"));

    // Rollback: B's config and B's init script (not A's: a rollback never
    // mixes releases), the proxy reloads in place under load.
    let pid = read("run/vakt/vakt-proxy.pid");
    let load = crate::support::Load::start(lb, "/", 4, 100_000, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = run(&["rollback", "--hosts", "lb01"], &inv, &state);
    std::thread::sleep(Duration::from_millis(300));
    let t = load.stop();
    println!("rollback of lb01 under load: {t}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("rolled back to 20")),
        "{out}"
    );
    assert_eq!(read("etc/vakt/proxy.toml"), conf_b);
    assert_eq!(read("etc/init.d/vakt-proxy"), init_b);
    assert_eq!(
        read("run/vakt/vakt-proxy.pid"),
        pid,
        "reloaded, not restarted"
    );
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    let (_, out, _) = run(&["status"], &inv, &state);
    assert!(out.contains("vakt-proxy running"), "{out}");

    // Once more: release A, init script included; then nothing is kept
    // further back, and unknown hosts are named.
    let (code, out, err) = run(&["rollback", "--hosts", "lb01"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(read("etc/init.d/vakt-proxy"), init_a);
    assert!(read("etc/vakt/proxy.toml").contains("weight = 1"));
    let (code, _, err) = run(&["rollback", "--hosts", "lb01"], &inv, &state);
    assert_eq!(code, 1);
    assert!(
        err.contains("lb01 keeps 0 release(s) before its current one, not 1")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let (code, _, err) = run(&["rollback", "--hosts", "lb09"], &inv, &state);
    assert_ne!(code, 0);
    assert!(err.contains("lb09"), "{err}");
    // The inventory says C: plan shows the way forward again.
    let (code, out, _) = run(&["plan"], &inv, &state);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("+weight = 5") || out.contains("weight = 5"),
        "{out}"
    );
}

#[test]
fn rolling_stops_at_the_first_failure_and_never_drains_the_last_server() {
    let c = Cluster::up("rolling-fail");
    let (inv, state, lb) = (c.inv.clone(), c.state.clone(), c.lb);
    let both = || {
        let seen: std::collections::BTreeSet<String> = (0..6)
            .map(|_| get(lb, "/", &[]).served_by().to_string())
            .collect();
        seen.len() == 2
    };

    // Both web hosts at once would leave nothing serving: refused up front.
    let (code, out, err) = run(&["rolling", "--batch", "2", "--exec", "true"], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("draining web01, web02 would leave no web host serving"),
        "{err}"
    );
    assert!(both(), "nothing was drained");
    // Unknown hosts are named before anything happens.
    let (code, _, err) = run(
        &["rolling", "--hosts", "web09", "--exec", "true"],
        &inv,
        &state,
    );
    assert_eq!(code, 1);
    assert!(err.contains("`web09` is not a web host"), "{err}");

    // The command fails on web01: it stays in maintenance, web02 is not
    // touched and serves everything, under load without a failed request.
    let load = crate::support::Load::start(lb, "/", 4, 100_000, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = run(&["rolling", "--exec", "exit 3"], &inv, &state);
    std::thread::sleep(Duration::from_millis(300));
    let t = load.stop();
    println!("rolling with a failing command: {t}");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("web01: `exit 3` failed (exit 3)")
            && err.contains("web01 stays in maintenance")
            && err.contains("vakt ready web01")
            && err.contains("remaining hosts were not touched"),
        "{err}"
    );
    assert!(!out.contains("web02: draining"), "{out}");
    assert_eq!(t.failed, 0, "{t}: {:?}", t.failures);
    assert!((0..6).all(|_| get(lb, "/", &[]).served_by() == "web02"));
    let (_, status, _) = run(&["status"], &inv, &state);
    assert!(
        status
            .lines()
            .any(|l| l.contains("web01") && l.contains("MAINT")),
        "{status}"
    );
    // Fixed: ready puts it back.
    let (code, _, _) = run(&["ready", "web01"], &inv, &state);
    assert_eq!(code, 0);
    assert!(crate::support::eventually(Duration::from_secs(5), both));
}
