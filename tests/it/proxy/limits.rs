//! Limits and timeouts: server maxconn with a bounded queue, slow clients,
//! slow servers. Errors are proper HTTP answers.

use std::time::{Duration, Instant};

use super::{Opts, cluster};
use crate::support::{Conn, get};

#[test]
fn a_full_server_queues_then_answers_503_after_timeout_queue() {
    let c = cluster(Opts {
        weights: &[1],
        server: "maxconn = 1",
        listen: "timeout = { connect = \"1s\", client = \"10s\", server = \"10s\", queue = \"300ms\", http_request = \"2s\" }",
        ..Default::default()
    });
    let addr = c.addr();
    let slow = std::thread::spawn(move || get(addr, "/echo?delay_ms=1500", &[]).status);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = get(c.addr(), "/echo", &[]);
    assert_eq!(r.status, 503);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "answered before the queue timeout"
    );
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn a_queued_request_is_served_when_a_slot_frees() {
    let c = cluster(Opts {
        weights: &[1],
        server: "maxconn = 1",
        ..Default::default()
    });
    let addr = c.addr();
    let slow = std::thread::spawn(move || get(addr, "/echo?delay_ms=400", &[]).status);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(c.addr(), "/echo", &[]).status, 200);
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn a_slow_client_head_is_cut_with_408() {
    let c = cluster(Opts {
        listen: "timeout = { connect = \"1s\", client = \"10s\", server = \"10s\", queue = \"2s\", http_request = \"500ms\" }",
        ..Default::default()
    });
    let mut conn = Conn::open(c.addr());
    conn.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    let t = Instant::now();
    let r = conn.read(false);
    assert_eq!(r.status, 408);
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_slow_server_gets_504() {
    let c = cluster(Opts {
        listen: "timeout = { connect = \"1s\", client = \"10s\", server = \"300ms\", queue = \"2s\", http_request = \"2s\" }",
        ..Default::default()
    });
    let r = get(c.addr(), "/echo?delay_ms=2000", &[]);
    assert_eq!(r.status, 504);
    assert!(r.text().contains("504"));
}

#[test]
fn all_servers_dead_gives_503_not_a_hang() {
    let mut c = cluster(Opts::default());
    c.backends[0].stop();
    c.backends[1].stop();
    let r = get(c.addr(), "/", &[]);
    assert_eq!(r.status, 503);
}

#[test]
fn keep_alive_and_http_close() {
    let c = cluster(Opts::default());
    let mut conn = Conn::open(c.addr());
    for _ in 0..3 {
        let r = conn.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.echoed("connection"),
            Vec::<String>::new(),
            "hop-by-hop header leaked"
        );
    }
    let c = cluster(Opts {
        listen: "http_close = true",
        ..Default::default()
    });
    let mut conn = Conn::open(c.addr());
    let r = conn.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.echoed("connection"), vec!["close".to_string()]);
    assert!(conn.closed_within(Duration::from_secs(2)));
}

#[test]
fn forwardfor_appends_a_header_line() {
    let c = cluster(Opts::default());
    let r = get(c.addr(), "/echo", &[("X-Forwarded-For", "198.51.100.7")]);
    assert_eq!(
        r.echoed("x-forwarded-for"),
        vec!["198.51.100.7".to_string(), "127.0.0.1".to_string()]
    );
    let r = get(
        c.addr(),
        "/echo",
        &[
            ("Keep-Alive", "timeout=5"),
            ("Connection", "X-Secret"),
            ("X-Secret", "1"),
        ],
    );
    assert!(
        r.echoed("keep-alive").is_empty() && r.echoed("x-secret").is_empty(),
        "{}",
        r.text()
    );
}

/// Between requests an idle keep-alive connection is parked (hyper's
/// connection and buffers are let go): it must go on serving whatever comes
/// next, heads split across reads, pipelined requests and bodies included,
/// and close quietly (no 408) once `timeout http-request` passes idle.
#[test]
fn a_parked_keep_alive_connection_serves_what_comes_next_and_closes_quietly_when_idle() {
    let c = cluster(Opts {
        listen: "timeout = { connect = \"1s\", client = \"10s\", server = \"10s\", queue = \"2s\", http_request = \"800ms\" }",
        ..Default::default()
    });
    let mut conn = Conn::open(c.addr());
    assert_eq!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    // Idle, but well inside the timeout: the next request is served.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status, 200);
    // A head whose first bytes wake the parked connection and whose rest
    // comes later.
    std::thread::sleep(Duration::from_millis(200));
    conn.write(b"GET /echo HT");
    std::thread::sleep(Duration::from_millis(100));
    conn.write(b"TP/1.1\r\nHost: t\r\nX-Part: two\r\n\r\n");
    let r = conn.read(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.echoed("x-part"), vec!["two".to_string()]);
    // A body, then two pipelined requests in one write.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(200));
    conn.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(conn.read(false).status, 200);
    assert_eq!(conn.read(false).status, 200);
    // Idle past `timeout http-request`: closed without an answer.
    let t = Instant::now();
    assert!(conn.closed_within(Duration::from_secs(3)));
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_millis(600) && idle < Duration::from_millis(2500),
        "closed after {idle:?}"
    );
}
