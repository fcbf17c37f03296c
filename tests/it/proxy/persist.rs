//! Cookie persistence, `insert indirect nocache`, exactly as HAProxy 2.6 does
//! it (measured, see shared/reference/README.md).

use std::time::Duration;

use super::{Opts, cluster};
use crate::support::{Conn, eventually, get, set_cookie_value};

#[test]
fn first_response_inserts_the_server_cookie_with_path() {
    let c = cluster(Opts::default());
    let r = get(c.addr(), "/", &[]);
    let cookie = r
        .all("set-cookie")
        .into_iter()
        .find(|v| v.starts_with("SERVERID="))
        .unwrap()
        .to_string();
    let expected = if r.served_by() == "web01" {
        "SERVERID=w1; path=/"
    } else {
        "SERVERID=w2; path=/"
    };
    assert_eq!(cookie, expected);
}

#[test]
fn a_valid_cookie_sticks_without_set_cookie_and_is_hidden_from_the_server() {
    let c = cluster(Opts::default());
    for _ in 0..4 {
        let r = get(
            c.addr(),
            "/echo",
            &[("Cookie", "PHPSESSID=abc; SERVERID=w2")],
        );
        assert_eq!(r.served_by(), "web02");
        assert_eq!(set_cookie_value(&r, "SERVERID"), None);
        assert_eq!(r.echoed("cookie"), vec!["PHPSESSID=abc".to_string()]);
    }
}

#[test]
fn a_cookie_for_a_down_server_is_rebalanced_and_reinserted() {
    let mut c = cluster(Opts {
        listen: "check = { path = \"/health\", interval = \"100ms\", rise = 1, fall = 1 }",
        ..Default::default()
    });
    c.backends[1].stop();
    assert!(eventually(Duration::from_secs(5), || c
        .admin("show servers")
        .contains("web02")
        && c.admin("show servers")
            .lines()
            .any(|l| l.contains(" web02 ") && l.contains("DOWN"))));
    let r = get(c.addr(), "/", &[("Cookie", "SERVERID=w2")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.served_by(), "web01");
    assert_eq!(set_cookie_value(&r, "SERVERID").as_deref(), Some("w1"));
}

#[test]
fn a_refused_persisted_connection_is_redispatched() {
    // No health checks: the proxy learns web02 is gone only by connecting.
    let mut c = cluster(Opts::default());
    c.backends[1].stop();
    let r = get(c.addr(), "/", &[("Cookie", "SERVERID=w2")]);
    assert_eq!(r.status, 200, "redispatch must save the request");
    assert_eq!(r.served_by(), "web01");
}

#[test]
fn nocache_marks_cacheable_responses_that_carry_an_inserted_cookie() {
    let c = cluster(Opts::default());
    let cases = [
        ("GET", "public,max-age=60", true),
        ("GET", "max-age=60", true),
        ("GET", "no-cache", false),
        ("GET", "", false),
        ("POST", "max-age=60", false),
    ];
    for (method, cc, want_private) in cases {
        let path = if cc.is_empty() {
            "/echo".to_string()
        } else {
            format!("/echo?cache-control={cc}")
        };
        let mut conn = Conn::open(c.addr());
        let r = conn.send(format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(set_cookie_value(&r, "SERVERID").is_some());
        let private = r.all("cache-control").iter().any(|v| v.trim() == "private");
        assert_eq!(
            private, want_private,
            "{method} cache-control={cc:?}: {:?}",
            r.headers
        );
    }
}

#[test]
fn the_cart_survives_through_the_proxy() {
    let c = cluster(Opts::default());
    let r = get(c.addr(), "/", &[]);
    let sid = set_cookie_value(&r, "SERVERID").unwrap();
    let demo = set_cookie_value(&r, "DEMOSESSID").unwrap();
    let cookie = format!("SERVERID={sid}; DEMOSESSID={demo}");
    let mut conn = Conn::open(c.addr());
    let add = conn.send(format!("POST /cart?item=apple HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(add.status, 200);
    for _ in 0..5 {
        let cart = conn
            .send(format!("GET /cart HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n").as_bytes());
        assert_eq!(cart.json()["items"][0], "apple", "{}", cart.text());
    }
}
