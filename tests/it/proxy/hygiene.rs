//! Request hygiene: ambiguous or dangerous requests are answered 400/431 by
//! the proxy and never reach a server. Each case is sent as raw bytes.

use super::{Opts, cluster};
use crate::support::{Conn, raw};

fn refused(c: &super::Cluster, bytes: &[u8], status: u16) {
    let before = c.admin("show stat");
    let r = raw(c.addr(), bytes);
    assert_eq!(r.status, status, "for {:?}", String::from_utf8_lossy(bytes));
    assert_eq!(r.header("x-served-by"), None, "a server saw it");
    // No server session was opened for it.
    let stot = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("app,web"))
            .map(|l| l.split(',').nth(7).unwrap_or("").to_string())
            .collect()
    };
    let after = c.admin("show stat");
    assert_eq!(
        stot(&before),
        stot(&after),
        "before:\n{before}\nafter:\n{after}"
    );
}

#[test]
fn duplicate_or_conflicting_content_length_is_refused() {
    let c = cluster(Opts::default());
    refused(
        &c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    );
    refused(
        &c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
    refused(
        &c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc",
        400,
    );
}

#[test]
fn transfer_encoding_with_content_length_is_refused() {
    let c = cluster(Opts::default());
    refused(&c, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

#[test]
fn transfer_codings_other_than_chunked_are_refused() {
    let c = cluster(Opts::default());
    refused(
        &c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        400,
    );
    refused(
        &c,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
        400,
    );
}

#[test]
fn bare_cr_nul_and_obs_fold_are_refused() {
    let c = cluster(Opts::default());
    refused(
        &c,
        b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
        400,
    );
    refused(
        &c,
        b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
        400,
    );
    refused(
        &c,
        b"GET /echo HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        400,
    );
}

#[test]
fn oversized_headers_get_431() {
    let c = cluster(Opts::default());
    let mut req = b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 20_000));
    req.extend_from_slice(b"\r\n\r\n");
    refused(&c, &req, 431);
}

#[test]
fn a_chunked_body_is_forwarded_with_the_same_framing() {
    let c = cluster(Opts::default());
    let r = raw(c.addr(), b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 11, "{}", r.text());
}

#[test]
fn a_good_request_pipelined_before_a_bad_one_is_still_answered() {
    let c = cluster(Opts::default());
    let mut conn = Conn::open(c.addr());
    conn.write(
        b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\nX: \0\r\n\r\n",
    );
    assert_eq!(conn.read(false).status, 200);
    assert_eq!(conn.read(false).status, 400);
}

#[test]
fn host_headers_must_be_exactly_one() {
    let c = cluster(Opts::default());
    refused(&c, b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    refused(&c, b"GET /echo HTTP/1.1\r\nX: y\r\n\r\n", 400);
    assert_eq!(raw(c.addr(), b"GET /echo HTTP/1.0\r\n\r\n").status, 200);
}
