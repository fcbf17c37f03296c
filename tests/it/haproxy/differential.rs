//! Differential suite: HAProxy 2.6 (Debian's package) and vakt load the same
//! file (tests/data/differential.cfg) in front of the same two demo backends,
//! get the same requests, and must agree on the status, the server chosen,
//! Set-Cookie, Cache-Control, what the server received, and health state.
//!
//! Differences kept on purpose (asserted, and listed in README):
//! - a head over the size limit: HAProxy 400, vakt 431 (RFC 6585);
//! - Transfer-Encoding together with Content-Length: HAProxy drops the
//!   Content-Length and forwards, vakt refuses with 400 (RFC 9112 §6.3
//!   allows both; refusing closes the smuggling door in front of PHP apps).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::require_haproxy;
use crate::support::{Backend, Conn, Resp, TempDir, eventually, free_addr, set_cookie_value, vakt};

struct Pair {
    haproxy: (SocketAddr, SocketAddr),
    vakt: (SocketAddr, SocketAddr),
    children: Vec<Child>,
    backends: Vec<Backend>,
    _dir: TempDir,
}

impl Drop for Pair {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start() -> Pair {
    require_haproxy();
    let backends = vec![Backend::spawn("web01"), Backend::spawn("web02")];
    let cfg = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/differential.cfg"
    );
    let dir = TempDir::new("diff");
    let mut children = Vec::new();
    let mut spawn = |mut cmd: Command| -> (SocketAddr, SocketAddr) {
        let (a, b) = (free_addr(), free_addr());
        cmd.env("APP_ADDR", a.to_string())
            .env("APP2_ADDR", b.to_string())
            .env("WEB01", backends[0].addr.port().to_string())
            .env("WEB02", backends[1].addr.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(cmd.spawn().expect("start proxy"));
        assert!(eventually(
            Duration::from_secs(10),
            || std::net::TcpStream::connect(a).is_ok() && std::net::TcpStream::connect(b).is_ok()
        ));
        (a, b)
    };
    let mut h = Command::new("haproxy");
    h.args(["-db", "-f", cfg]);
    let haproxy = spawn(h);
    let mut v = vakt();
    v.args(["proxy", "-db", "-f", cfg]);
    let vakt = spawn(v);
    let p = Pair {
        haproxy,
        vakt,
        children,
        backends,
        _dir: dir,
    };
    // Both have checked both servers once.
    assert!(eventually(Duration::from_secs(5), || up(&p, "web01")
        == (Some(true), Some(true))
        && up(&p, "web02") == (Some(true), Some(true))));
    p
}

fn both(p: &Pair, raw: &[u8]) -> (Resp, Resp) {
    (
        Conn::open(p.haproxy.0).send(raw),
        Conn::open(p.vakt.0).send(raw),
    )
}

/// Whether each proxy reports `server` UP in every listener (each listener
/// checks its servers on its own): `Some(true)` all UP, `Some(false)` all
/// DOWN, `None` while they disagree.
fn up(p: &Pair, server: &str) -> (Option<bool>, Option<bool>) {
    let auth = format!(
        "Basic {}",
        crate::support::base64(b"admin:SuperSecretPassword123")
    );
    let req = format!(
        "GET /haproxy?stats;csv HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    let (h, v) = both(p, req.as_bytes());
    let state = |r: &Resp| {
        let rows: Vec<bool> = r
            .text()
            .lines()
            .filter(|l| l.split(',').nth(1) == Some(server))
            .map(|l| l.split(',').nth(17).is_some_and(|s| s.starts_with("UP")))
            .collect();
        if rows.len() < 2 {
            None
        } else if rows.iter().all(|&u| u) {
            Some(true)
        } else if rows.iter().all(|&u| !u) {
            Some(false)
        } else {
            None
        }
    };
    (state(&h), state(&v))
}

/// Headers the server saw, minus the ones each proxy adds for its own
/// connection handling.
fn seen(r: &Resp) -> Vec<(String, String)> {
    let v = r.json();
    let mut out: Vec<(String, String)> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_ascii_lowercase(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn cache_control(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> = r
        .all("cache-control")
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.sort();
    v
}

fn agree(what: &str, h: &Resp, v: &Resp) {
    assert_eq!(h.status, v.status, "{what}: status");
    assert_eq!(
        h.header("x-served-by").is_some(),
        v.header("x-served-by").is_some(),
        "{what}: reached a server"
    );
    assert_eq!(
        set_cookie_value(h, "SERVERID").is_some(),
        set_cookie_value(v, "SERVERID").is_some(),
        "{what}: Set-Cookie SERVERID\nhaproxy {:?}\nvakt {:?}",
        h.headers,
        v.headers
    );
    for r in [h, v] {
        if let Some(sid) = set_cookie_value(r, "SERVERID") {
            let expect = if r.served_by() == "web01" { "w1" } else { "w2" };
            assert_eq!(
                sid, expect,
                "{what}: the cookie names the server that answered"
            );
            let line = r
                .all("set-cookie")
                .into_iter()
                .find(|c| c.starts_with("SERVERID="))
                .unwrap()
                .to_string();
            assert_eq!(line, format!("SERVERID={sid}; path=/"), "{what}");
        }
    }
    assert_eq!(cache_control(h), cache_control(v), "{what}: Cache-Control");
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn the_same_requests_get_the_same_answers() {
    let p = start();
    let get =
        |extra: &str| format!("GET /echo HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n");

    let (h, v) = both(&p, get("").as_bytes());
    agree("no cookie", &h, &v);
    assert_eq!(seen(&h), seen(&v), "headers the server saw (no cookie)");

    let (h, v) = both(&p, get("Cookie: PHPSESSID=abc; SERVERID=w2\r\n").as_bytes());
    agree("valid cookie", &h, &v);
    assert_eq!((h.served_by(), v.served_by()), ("web02", "web02"));
    assert_eq!(seen(&h), seen(&v), "headers the server saw (valid cookie)");
    assert!(seen(&v).contains(&("cookie".into(), "PHPSESSID=abc".into())));

    let (h, v) = both(&p, get("X-Forwarded-For: 198.51.100.7\r\n").as_bytes());
    agree("XFF present", &h, &v);
    assert_eq!(seen(&h), seen(&v), "headers the server saw (XFF present)");

    for cc in ["public,max-age=60", "max-age=60", "no-cache"] {
        let req = format!(
            "GET /echo?cache-control={cc} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        let (h, v) = both(&p, req.as_bytes());
        agree(&format!("nocache with {cc}"), &h, &v);
    }

    let (h, v) = both(
        &p,
        b"HEAD /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    agree("HEAD", &h, &v);

    let (h, v) = both(
        &p,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    agree("POST", &h, &v);
    assert_eq!(
        (h.json()["body_len"].clone(), v.json()["body_len"].clone()),
        (5.into(), 5.into())
    );

    let chunked = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let (h, v) = both(&p, chunked);
    agree("chunked POST", &h, &v);
    assert_eq!(
        (h.json()["body_len"].clone(), v.json()["body_len"].clone()),
        (11.into(), 11.into())
    );

    let (h, v) = both(&p, b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n");
    assert_eq!((h.status, v.status), (400, 400), "NUL in a header");
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn expect_100_continue_is_honoured_by_both() {
    let p = start();
    for addr in [p.haproxy.0, p.vakt.0] {
        let mut c = Conn::open(addr);
        c.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n");
        let interim = c.read(false);
        assert_eq!(interim.status, 100, "{addr}");
        c.write(b"hello");
        let r = c.read(false);
        assert_eq!(r.status, 200, "{addr}");
        assert_eq!(r.json()["body_len"], 5);
    }
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn deliberate_differences_are_what_the_readme_says() {
    let p = start();
    let mut big = b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    big.extend_from_slice(b"\r\n\r\n");
    let (h, v) = both(&p, &big);
    assert_eq!((h.status, v.status), (400, 431), "oversized head");

    let tecl = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
    let (h, v) = both(&p, tecl);
    assert_eq!((h.status, v.status), (200, 400), "TE with CL");
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn a_cookie_for_a_down_server_is_redispatched_with_and_without_redispatch() {
    let p = start();
    let web02 = p.backends[1].addr;
    Conn::open(web02).send(b"POST /health/fail HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert!(
        eventually(Duration::from_secs(5), || up(&p, "web02")
            == (Some(false), Some(false))),
        "both see web02 DOWN"
    );
    for (h_addr, v_addr, what) in [
        (p.haproxy.0, p.vakt.0, "redispatch"),
        (p.haproxy.1, p.vakt.1, "no redispatch"),
    ] {
        let req =
            b"GET /echo HTTP/1.1\r\nHost: t\r\nCookie: SERVERID=w2\r\nConnection: close\r\n\r\n";
        let h = Conn::open(h_addr).send(req);
        let v = Conn::open(v_addr).send(req);
        agree(what, &h, &v);
        assert_eq!((h.served_by(), v.served_by()), ("web01", "web01"), "{what}");
        assert_eq!(
            set_cookie_value(&v, "SERVERID").as_deref(),
            Some("w1"),
            "{what}"
        );
    }
    Conn::open(web02).send(b"POST /health/ok HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert!(
        eventually(Duration::from_secs(5), || up(&p, "web02")
            == (Some(true), Some(true))),
        "both see web02 UP again"
    );
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn the_pages_refuse_strangers_as_haproxy_does_in_every_spelling() {
    require_haproxy();
    let web = Backend::spawn("web01");
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/page-acl.cfg");
    let mut children = Vec::new();
    let mut spawn = |mut cmd: Command| -> [SocketAddr; 3] {
        let addrs = [free_addr(), free_addr(), free_addr()];
        cmd.env("INLINE_ADDR", addrs[0].to_string())
            .env("NAMED_ADDR", addrs[1].to_string())
            .env("METRICS_ADDR", addrs[2].to_string())
            .env("WEB01", web.addr.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(cmd.spawn().expect("start proxy"));
        assert!(eventually(Duration::from_secs(10), || addrs
            .iter()
            .all(|a| std::net::TcpStream::connect(a).is_ok())));
        addrs
    };
    let mut h = Command::new("haproxy");
    h.args(["-db", "-f", cfg]);
    let haproxy = spawn(h);
    let mut v = vakt();
    v.args(["proxy", "-db", "-f", cfg]);
    let vakt = spawn(v);
    let _stop = Children(children);

    let ask = |addr: SocketAddr, from: &str, path: &str| {
        Conn::open_from(from.parse().unwrap(), addr)
            .send(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
    };
    let (admin, stranger) = ("127.77.0.2", "127.77.0.3");
    for (i, path) in [
        (0, "/haproxy?stats"),
        (1, "/haproxy?stats"),
        (2, "/haproxy?stats"),
        (2, "/metrics"),
    ] {
        let what = format!("section {i} {path}");
        let (h, v) = (ask(haproxy[i], admin, path), ask(vakt[i], admin, path));
        assert_eq!((h.status, v.status), (200, 200), "{what} from the admin");
        let (h, v) = (
            ask(haproxy[i], stranger, path),
            ask(vakt[i], stranger, path),
        );
        assert_eq!((h.status, v.status), (403, 403), "{what} from a stranger");
        assert_eq!(h.text(), v.text(), "{what}: the 403's body");
        for name in ["content-type", "cache-control", "connection"] {
            assert_eq!(h.header(name), v.header(name), "{what}: {name}");
        }
    }
    // The site itself is not guarded.
    let (h, v) = (ask(haproxy[2], stranger, "/"), ask(vakt[2], stranger, "/"));
    assert_eq!((h.status, v.status), (200, 200));
}

/// Kills the proxies when the test ends, also when it fails.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
