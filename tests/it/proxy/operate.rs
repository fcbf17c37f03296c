//! What operators use: the stats page, the admin socket, health checks,
//! reloads, logging and graceful stops.

use std::net::UdpSocket;
use std::time::Duration;

use super::{Opts, cluster};
use crate::support::{Conn, eventually, get};

const HEALTH: &str = "check = { path = \"/health\", interval = \"100ms\", rise = 2, fall = 3 }";

fn stats_opts(hash: &str) -> String {
    format!(
        "stats = {{ uri = \"/haproxy?stats\", realm = \"Strictly Private\", users = [\"admin:{hash}\"] }}"
    )
}

fn hash(pw: &str) -> String {
    vakt_runtime::auth::hash_password(pw)
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        crate::support::base64(format!("{user}:{pw}").as_bytes())
    )
}

#[test]
fn stats_page_requires_credentials_and_serves_html_csv_json() {
    let listen = stats_opts(&hash("SuperSecret"));
    let c = cluster(Opts {
        listen: &listen,
        ..Default::default()
    });
    let r = get(c.addr(), "/haproxy?stats", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Strictly Private\"")
    );
    let bad = get(
        c.addr(),
        "/haproxy?stats",
        &[("Authorization", &basic("admin", "nope"))],
    );
    assert_eq!(bad.status, 401);
    let auth = basic("admin", "SuperSecret");
    let html = get(c.addr(), "/haproxy?stats", &[("Authorization", &auth)]);
    assert_eq!(html.status, 200);
    assert!(html.text().contains("web01") && html.text().contains("web02"));
    let csv = get(c.addr(), "/haproxy?stats;csv", &[("Authorization", &auth)]);
    assert!(
        csv.text()
            .starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,"),
        "{}",
        csv.text()
    );
    assert!(csv.text().lines().any(|l| l.starts_with("app,web01,")));
    assert!(csv.text().lines().any(|l| l.starts_with("app,BACKEND,")));
    let json = get(c.addr(), "/haproxy?stats;json", &[("Authorization", &auth)]);
    assert!(json.json().is_object());
}

#[test]
fn health_checks_take_a_server_down_after_fall_and_up_after_rise() {
    let c = cluster(Opts {
        listen: HEALTH,
        ..Default::default()
    });
    let web02 = c.backends[1].addr;
    let status = |c: &super::Cluster| {
        c.admin("show servers")
            .lines()
            .find(|l| l.contains(" web02 "))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        eventually(Duration::from_secs(5), || status(&c).contains("L7OK")),
        "{}",
        status(&c)
    );
    // Make web02's health page fail: it must go DOWN and get no traffic.
    let r = Conn::open(web02)
        .send(b"POST /health/fail HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        eventually(Duration::from_secs(5), || status(&c).contains(" DOWN ")),
        "{}",
        status(&c)
    );
    for _ in 0..4 {
        assert_eq!(get(c.addr(), "/", &[]).served_by(), "web01");
    }
    Conn::open(web02).send(b"POST /health/ok HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert!(
        eventually(Duration::from_secs(5), || status(&c).contains(" UP ")),
        "{}",
        status(&c)
    );
}

#[test]
fn drain_keeps_sticky_sessions_maint_stops_all_traffic() {
    let c = cluster(Opts::default());
    assert_eq!(c.admin("set server app/web02 state drain").trim(), "");
    for _ in 0..4 {
        assert_eq!(get(c.addr(), "/", &[]).served_by(), "web01");
    }
    assert_eq!(
        get(c.addr(), "/", &[("Cookie", "SERVERID=w2")]).served_by(),
        "web02"
    );
    c.admin("set server app/web02 state maint");
    assert_eq!(
        get(c.addr(), "/", &[("Cookie", "SERVERID=w2")]).served_by(),
        "web01"
    );
    c.admin("set server app/web02 state ready");
    let seen: Vec<String> = (0..4)
        .map(|_| get(c.addr(), "/", &[]).served_by().to_string())
        .collect();
    assert!(seen.contains(&"web02".to_string()), "{seen:?}");
    assert!(
        c.admin("set server app/web09 state drain")
            .contains("error: no server `web09`")
    );
}

#[test]
fn admin_weights_change_the_split() {
    let c = cluster(Opts::default());
    c.admin("set server app/web02 weight 0");
    for _ in 0..4 {
        assert_eq!(get(c.addr(), "/", &[]).served_by(), "web01");
    }
}

#[test]
fn sighup_reloads_without_dropping_keep_alive_connections_and_refuses_bad_configs() {
    let c = cluster(Opts::default());
    let mut conn = Conn::open(c.addr());
    assert_eq!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    c.proxy.reload(&c.config_with(&Opts {
        weights: &[1, 0],
        ..Default::default()
    }));
    assert!(eventually(Duration::from_secs(5), || (0..3).all(|_| get(
        c.addr(),
        "/",
        &[]
    )
    .served_by()
        == "web01")));
    // The idle keep-alive connection survived the reload.
    assert_eq!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    // A broken config is refused and the old one keeps serving.
    c.proxy.reload("this is = = not toml");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(c.addr(), "/", &[]).status, 200);
    assert!(
        c.proxy.output().contains("keeping the old one"),
        "{}",
        c.proxy.output()
    );
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let mut c = cluster(Opts::default());
    let addr = c.addr();
    let slow = std::thread::spawn(move || get(addr, "/echo?delay_ms=800", &[]).status);
    std::thread::sleep(Duration::from_millis(200));
    c.proxy.signal("TERM");
    assert_eq!(slow.join().unwrap(), 200);
    let status = c.proxy.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_connection_accepted_before_a_stop_gets_its_first_request_answered() {
    // A client that connected just before the stop sends its request after
    // it: the request is answered (then the connection closes), as a
    // browser's new connection must not be dropped unanswered.
    let mut c = cluster(Opts::default());
    let mut fresh = Conn::open(c.addr());
    std::thread::sleep(Duration::from_millis(200));
    c.proxy.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    let r = fresh.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    let status = c.proxy.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn requests_are_logged_in_httplog_format_to_syslog() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let global = format!(
        "log = \"udp://{}\"\nlog_facility = \"local0\"",
        sock.local_addr().unwrap()
    );
    let c = cluster(Opts {
        global: &global,
        ..Default::default()
    });
    get(c.addr(), "/echo?x=1", &[]);
    let mut buf = [0u8; 2048];
    let line = loop {
        let n = sock.recv(&mut buf).expect("a syslog datagram");
        let s = String::from_utf8_lossy(&buf[..n]).into_owned();
        if s.contains("GET /echo?x=1") {
            break s;
        }
    };
    assert!(line.starts_with("<134>"), "{line}");
    assert!(line.contains(" app app/web0"), "{line}");
    assert!(line.contains(" 200 "), "{line}");
    assert!(line.contains("--NI"), "{line}");
    // One line per datagram, ended by a newline as HAProxy's are.
    assert!(line.ends_with("\"GET /echo?x=1 HTTP/1.1\"\n"), "{line}");
}
