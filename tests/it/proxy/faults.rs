//! The proxy under faults and hostile input (issue #14): a timer on every
//! phase, early answers, hop-by-hop headers, one answer per request, strict
//! chunked framing, absolute-form targets, bounded numbers. Each scenario
//! runs against vakt and, where HAProxy 2.6 behaves the same, against
//! HAProxy too with the same haproxy.cfg, behind scripted raw-TCP servers
//! that misbehave on purpose.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::haproxy::require_haproxy;
use crate::support::{Conn, TempDir, eventually, free_addr, vakt};

/// A server whose every connection runs `script` (on a thread of its own).
struct Scripted {
    addr: SocketAddr,
    /// Connections accepted so far.
    conns: Arc<AtomicU32>,
}

impl Scripted {
    fn spawn(script: fn(TcpStream)) -> Self {
        let l = TcpListener::bind(free_addr()).expect("bind scripted server");
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(AtomicU32::new(0));
        let n = conns.clone();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                n.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || script(s));
            }
        });
        Scripted { addr, conns }
    }

    fn conns(&self) -> u32 {
        self.conns.load(Ordering::SeqCst)
    }
}

/// Reads one request head (up to the blank line); returns it.
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    head
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Answers with what it received (head and body) as the response body.
fn echo_raw(mut s: TcpStream) {
    loop {
        let head = read_head(&mut s);
        if head.is_empty() {
            return;
        }
        let mut body = vec![0; content_length(&head)];
        if s.read_exact(&mut body).is_err() {
            return;
        }
        let mut all = head;
        all.extend_from_slice(&body);
        let mut out =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", all.len()).into_bytes();
        out.extend_from_slice(&all);
        if s.write_all(&out).is_err() {
            return;
        }
    }
}

/// Sends a head promising 1000 bytes, then 10 of them, then nothing.
fn stalls_mid_body(mut s: TcpStream) {
    read_head(&mut s);
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    thread::sleep(Duration::from_secs(30));
}

/// Answers 413 as soon as the head is in, then closes gracefully (shuts
/// down its side and drains what still comes, as nginx does).
fn refuses_uploads(mut s: TcpStream) {
    read_head(&mut s);
    let _ = s.write_all(
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
    );
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut sink = [0u8; 65536];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

/// Answers with a 100 KiB response head.
fn huge_head(mut s: TcpStream) {
    read_head(&mut s);
    let mut out = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    out.extend(std::iter::repeat_n(b'a', 100 * 1024));
    out.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
    let _ = s.write_all(&out);
    thread::sleep(Duration::from_secs(5));
}

/// Reads the request head and whatever follows, never answering.
fn never_answers(mut s: TcpStream) {
    read_head(&mut s);
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

/// Reads the request and closes without a byte (a "query of death").
fn dies_on_request(mut s: TcpStream) {
    read_head(&mut s);
}

/// Which proxy a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Peer {
    Vakt,
    Haproxy,
}

/// A proxy (vakt or HAProxy) on a haproxy.cfg in front of `servers`.
struct Front {
    addr: SocketAddr,
    child: Child,
    _dir: TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CFG: &str = "global
    maxconn 100
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 2s
    timeout http-request 2s
    retries 2
    option redispatch
listen app
    bind \"${APP_ADDR}\"
";

fn front(peer: Peer, servers: &[SocketAddr]) -> Front {
    front_with(peer, servers, CFG)
}

fn front_with(peer: Peer, servers: &[SocketAddr], cfg: &str) -> Front {
    let dir = TempDir::new("faults");
    let mut cfg = cfg.to_string();
    for (i, s) in servers.iter().enumerate() {
        cfg.push_str(&format!("    server s{} {s}\n", i + 1));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let addr = free_addr();
    let mut cmd = match peer {
        Peer::Vakt => {
            let mut c = vakt();
            c.arg("proxy");
            c
        }
        Peer::Haproxy => {
            require_haproxy();
            Command::new("haproxy")
        }
    };
    let child = cmd
        .args(["-db", "-f"])
        .arg(&path)
        .env("APP_ADDR", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start proxy");
    let f = Front {
        addr,
        child,
        _dir: dir,
    };
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
        "{peer:?} did not listen"
    );
    f
}

/// Runs `scenario` against vakt, then HAProxy.
fn on_both(servers: &[SocketAddr], scenario: impl Fn(Peer, SocketAddr)) {
    for peer in [Peer::Vakt, Peer::Haproxy] {
        let f = front(peer, servers);
        scenario(peer, f.addr);
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until EOF (or error); returns the bytes and when it ended.
fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (all, Instant::now()),
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_of(bytes: &[u8]) -> u16 {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn count_answers(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes).matches("HTTP/1.1 ").count()
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn a_server_that_stalls_mid_body_is_cut_at_timeout_server() {
    let server = Scripted::spawn(stalls_mid_body);
    on_both(&[server.addr], |peer, addr| {
        let mut c = connect(addr);
        let start = Instant::now();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let (bytes, end) = read_to_close(&mut c);
        let took = end - start;
        assert_eq!(status_of(&bytes), 200, "{peer:?}");
        assert!(
            bytes.ends_with(b"0123456789"),
            "{peer:?}: the 10 bytes came through"
        );
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
            "{peer:?}: closed after {took:?}, want ~2 s (timeout server)"
        );
    });
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn a_slow_upload_is_governed_by_timeout_client_not_timeout_server() {
    let server = Scripted::spawn(echo_raw);
    on_both(&[server.addr], |peer, addr| {
        let mut c = connect(addr);
        c.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
            .unwrap();
        // 10 bytes, one every 0.4 s: 4 s in all, twice `timeout server`.
        for b in b"0123456789" {
            thread::sleep(Duration::from_millis(400));
            c.write_all(std::slice::from_ref(b)).unwrap();
        }
        let r = Conn::from_stream(c).read(false);
        assert_eq!(r.status, 200, "{peer:?}");
        assert!(r.body.ends_with(b"0123456789"), "{peer:?}: whole body");
    });
}

#[test]
fn an_upload_that_stalls_past_timeout_client_gets_one_408() {
    let server = Scripted::spawn(never_answers);
    let cfg = CFG.replace("timeout client 5s", "timeout client 1s");
    let f = front_with(Peer::Vakt, &[server.addr], &cfg);
    let mut c = connect(f.addr);
    let start = Instant::now();
    c.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n012")
        .unwrap();
    let (bytes, end) = read_to_close(&mut c);
    assert_eq!(
        status_of(&bytes),
        408,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(
        count_answers(&bytes),
        1,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let took = end - start;
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn an_early_answer_reaches_the_client_at_once_and_the_upload_stops() {
    let server = Scripted::spawn(refuses_uploads);
    on_both(&[server.addr], |peer, addr| {
        let mut c = connect(addr);
        let start = Instant::now();
        c.write_all(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 8388608\r\n\r\n")
            .unwrap();
        let mut w = c.try_clone().unwrap();
        let writer = thread::spawn(move || {
            let chunk = vec![0u8; 65536];
            for _ in 0..128 {
                if w.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        let r = Conn::from_stream(c).read(false);
        let took = start.elapsed();
        assert_eq!(r.status, 413, "{peer:?}");
        assert_eq!(r.body, b"too large", "{peer:?}");
        assert!(
            took < Duration::from_secs(1),
            "{peer:?}: 413 after {took:?}"
        );
        let _ = writer.join();
    });
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn end_to_end_headers_named_in_connection_are_kept() {
    let server = Scripted::spawn(echo_raw);
    on_both(&[server.addr], |peer, addr| {
        let mut c = Conn::open(addr);
        let r = c.send(
            b"GET /c HTTP/1.1\r\nHost: shop.test\r\nAuthorization: Basic eDp5\r\nConnection: Host, Authorization, X-Custom\r\nX-Custom: 1\r\n\r\n",
        );
        assert_eq!(r.status, 200, "{peer:?}");
        let seen = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
        assert!(seen.contains("host: shop.test"), "{peer:?}: {seen}");
        assert!(
            seen.contains("authorization: basic edp5"),
            "{peer:?}: {seen}"
        );
        // HAProxy forwards the Connection header itself; vakt drops it, as
        // RFC 9110 §7.6.1 asks of a proxy.
        if peer == Peer::Vakt {
            assert!(!seen.contains("connection:"), "{peer:?}: {seen}");
        }
    });
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn absolute_form_targets_use_their_authority_as_host() {
    let server = Scripted::spawn(echo_raw);
    on_both(&[server.addr], |peer, addr| {
        let r = Conn::open(addr)
            .send(b"GET http://other.test/abs?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n");
        assert_eq!(r.status, 200, "{peer:?}");
        let seen = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
        // vakt sends the origin form to servers (RFC 9112 §3.2.1, what a
        // gateway sends an origin server); HAProxy passes the target on.
        let target = match peer {
            Peer::Vakt => "get /abs?q=1 http/1.1",
            Peer::Haproxy => "get http://other.test/abs?q=1 http/1.1",
        };
        assert!(seen.starts_with(target), "{peer:?}: {seen}");
    });
    // RFC 9112 §3.2.2: the authority replaces a Host that differs. HAProxy
    // 2.6 refuses such a request with 400 instead; either way the server
    // never routes on one host and reads the other.
    let f = front(Peer::Vakt, &[server.addr]);
    let r =
        Conn::open(f.addr).send(b"GET http://other.test/abs HTTP/1.1\r\nHost: adv.test\r\n\r\n");
    assert_eq!(r.status, 200);
    let seen = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
    assert!(seen.contains("host: other.test"), "{seen}");
    assert!(!seen.contains("adv.test"), "{seen}");
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn fragments_raw_utf8_and_userinfo_in_targets_are_refused() {
    let server = Scripted::spawn(echo_raw);
    on_both(&[server.addr], |peer, addr| {
        for req in [
            &b"GET /a#frag HTTP/1.1\r\nHost: t\r\n\r\n"[..],
            "GET /bl\u{e5}b\u{e6}r HTTP/1.1\r\nHost: t\r\n\r\n".as_bytes(),
        ] {
            let r = Conn::open(addr).send(req);
            assert_eq!(r.status, 400, "{peer:?}: {}", String::from_utf8_lossy(req));
        }
    });
    // HAProxy 2.6 forwards userinfo; RFC 9110 §4.2.4 says it must not be sent.
    let f = front(Peer::Vakt, &[server.addr]);
    let r = Conn::open(f.addr).send(b"GET http://u:p@other.test/ HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(server.conns(), 0, "nothing reached the server");
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn a_response_head_over_the_limit_is_a_502() {
    let server = Scripted::spawn(huge_head);
    on_both(&[server.addr], |peer, addr| {
        let r = Conn::open(addr).send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 502, "{peer:?}");
    });
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn a_silent_connection_gets_408_at_timeout_http_request() {
    let server = Scripted::spawn(echo_raw);
    on_both(&[server.addr], |peer, addr| {
        let mut c = connect(addr);
        let start = Instant::now();
        let (bytes, end) = read_to_close(&mut c);
        assert_eq!(
            status_of(&bytes),
            408,
            "{peer:?}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let took = end - start;
        assert!(took < Duration::from_secs(4), "{peer:?}: {took:?}");
    });
}

#[test]
fn a_bad_chunk_after_the_head_gets_exactly_one_answer() {
    let server = Scripted::spawn(never_answers);
    let f = front(Peer::Vakt, &[server.addr]);
    let mut c = connect(f.addr);
    c.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    c.write_all(b"0x10\r\n0123456789abcdef\r\n0\r\n\r\n")
        .unwrap();
    let (bytes, _) = read_to_close(&mut c);
    assert_eq!(
        count_answers(&bytes),
        1,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(
        status_of(&bytes),
        400,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn chunked_framing_hyper_would_refuse_is_a_400_and_reaches_no_server() {
    let server = Scripted::spawn(echo_raw);
    let f = front(Peer::Vakt, &[server.addr]);
    for body in [
        &b" 5\r\nhello\r\n0\r\n\r\n"[..],
        b"1 0\r\n0123456789abcdef\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5;ext\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nno colon\r\n\r\n",
    ] {
        let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        let mut c = connect(f.addr);
        c.write_all(&req).unwrap();
        let (bytes, _) = read_to_close(&mut c);
        assert_eq!(
            status_of(&bytes),
            400,
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            count_answers(&bytes),
            1,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
    assert_eq!(server.conns(), 0, "no server saw any of them");
}

#[test]
fn a_request_that_kills_its_server_is_tried_once_elsewhere_at_once() {
    let dying = Scripted::spawn(dies_on_request);
    let good = Scripted::spawn(echo_raw);
    let f = front(Peer::Vakt, &[dying.addr, good.addr]);
    // Round robin: within two requests one lands on the dying server first.
    for _ in 0..2 {
        let start = Instant::now();
        let r = Conn::open(f.addr).send(b"GET /qod HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
    }
    assert_eq!(dying.conns(), 1, "the dying server got the request once");
}

#[test]
fn durations_and_numbers_too_large_are_errors_with_their_line_never_panics() {
    let dir = TempDir::new("bounds");
    let cases: [(&str, &str, &str); 6] = [
        (
            "t1.toml",
            "[defaults]\ntimeout = { connect = \"18446744073709551615s\" }\n",
            "too large",
        ),
        (
            "t2.toml",
            "[defaults]\ntimeout = { queue = \"307445734561825862m\" }\n",
            "too large",
        ),
        (
            "t3.toml",
            "[global]\nstop_timeout = \"18446744073709551615s\"\n",
            "too large",
        ),
        (
            "h1.cfg",
            "defaults\n    mode http\n    timeout connect 18446744073709551615s\n",
            "too large",
        ),
        (
            "h2.cfg",
            "defaults\n    mode http\n    timeout server 99999999999999\n",
            "too large",
        ),
        (
            "h3.cfg",
            "global\n    maxconn 18446744073709551616\n",
            "out of range",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let flag = if name.ends_with(".cfg") {
            "-f"
        } else {
            "--config"
        };
        let out = vakt()
            .args(["proxy", flag])
            .arg(&path)
            .arg(if flag == "-f" { "-c" } else { "--check" })
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains(&format!("{name}:")),
            "{name}: the file and line: {err}"
        );
    }
}
