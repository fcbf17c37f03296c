//! Property tests of the request path (proptest): valid requests of every
//! shape (method, target, end-to-end and hop-by-hop headers, no body, a
//! Content-Length body, or a chunked body cut at random with extensions and
//! trailers) go through a real `vakt proxy` to a backend that records the
//! raw bytes it gets. Every such request must be accepted, and the backend
//! must see the same method, target, end-to-end headers and body bytes. And
//! a chunked body with flawed framing (bare LF, space before the size, bare
//! CR, a trailer without a colon) is refused with 400 before the server gets
//! a request, or passed whole: never a 502 blamed on the server.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestCaseError, TestRunner};

use crate::support::{Conn, Proxy, free_addr};

/// What the recording backend got: method, target, headers, decoded body.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A raw HTTP/1.1 server on loopback that decodes each request's framing
/// itself (not through hyper, so what it records is what went over the
/// wire), sends every request to the test, and answers 200.
struct Recorder {
    addr: SocketAddr,
    seen: mpsc::Receiver<Result<Seen, String>>,
}

impl Recorder {
    fn spawn() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let addr = listener.local_addr().expect("recorder address");
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let tx = tx.clone();
                std::thread::spawn(move || serve(conn, &tx));
            }
        });
        Recorder { addr, seen }
    }
}

/// Serves one keep-alive connection from the proxy until it closes.
fn serve(conn: TcpStream, tx: &mpsc::Sender<Result<Seen, String>>) {
    let mut out = conn.try_clone().expect("clone the recorder's socket");
    let mut r = BufReader::new(conn);
    loop {
        match read_request(&mut r) {
            Ok(None) => return,
            Ok(Some(seen)) => {
                let _ = tx.send(Ok(seen));
                if out
                    .write_all(b"HTTP/1.1 200 OK\r\nX-Recorded: 1\r\nContent-Length: 0\r\n\r\n")
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

fn line(r: &mut impl BufRead) -> Result<String, String> {
    let mut l = Vec::new();
    r.read_until(b'\n', &mut l).map_err(|e| e.to_string())?;
    let Some(l) = l.strip_suffix(b"\r\n") else {
        return Err(format!("a line not ended by CRLF: {l:?}"));
    };
    String::from_utf8(l.to_vec()).map_err(|e| e.to_string())
}

/// One request off the wire; `None` at a clean end of the connection.
fn read_request(r: &mut impl BufRead) -> Result<Option<Seen>, String> {
    if r.fill_buf().map_err(|e| e.to_string())?.is_empty() {
        return Ok(None);
    }
    let start = line(r)?;
    let mut parts = start.split(' ');
    let (Some(method), Some(target), Some("HTTP/1.1"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {start:?}"));
    };
    let mut headers = Vec::new();
    loop {
        let l = line(r)?;
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or(format!("bad header line {l:?}"))?;
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mut body = Vec::new();
    match (
        get("content-length").as_slice(),
        get("transfer-encoding").as_slice(),
    ) {
        ([], []) => {}
        ([n], []) => {
            let n: usize = n.parse().map_err(|_| format!("bad length {n:?}"))?;
            body.resize(n, 0);
            r.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
        ([], ["chunked"]) => loop {
            let size = line(r)?;
            let hex = size.split(';').next().unwrap_or_default();
            let n =
                usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
            if n == 0 {
                while !line(r)?.is_empty() {}
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if !chunk.ends_with(b"\r\n") {
                return Err("chunk data not followed by CRLF".into());
            }
            body.extend_from_slice(&chunk[..n]);
        },
        (cl, te) => return Err(format!("ambiguous framing: length {cl:?}, coding {te:?}")),
    }
    Ok(Some(Seen {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
    }))
}

/// A request to send, and what the server should see of it.
#[derive(Debug, Clone)]
struct Case {
    method: String,
    target: String,
    /// End-to-end headers (Host first), as sent and as expected.
    headers: Vec<(String, String)>,
    /// Hop-by-hop header lines sent but not expected at the server.
    hop: Vec<(String, String)>,
    body: Framing,
}

#[derive(Debug, Clone)]
enum Framing {
    None,
    Length(Vec<u8>),
    /// Chunks (each with its extension and its size's spelling) and
    /// trailer lines.
    Chunked(Vec<Chunk>, Vec<(String, String)>),
}

#[derive(Debug, Clone)]
struct Chunk {
    data: Vec<u8>,
    upper: bool,
    zeros: usize,
    ext: String,
}

impl Case {
    fn body(&self) -> Vec<u8> {
        match &self.body {
            Framing::None => Vec::new(),
            Framing::Length(b) => b.clone(),
            Framing::Chunked(c, _) => c.iter().flat_map(|c| c.data.clone()).collect(),
        }
    }

    fn wire(&self) -> Vec<u8> {
        let mut w = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (k, v) in self.headers.iter().chain(&self.hop) {
            w.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        match &self.body {
            Framing::None => w.extend_from_slice(b"\r\n"),
            Framing::Length(b) => {
                w.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
                w.extend_from_slice(b);
            }
            Framing::Chunked(chunks, trailers) => {
                w.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for c in chunks.iter().filter(|c| !c.data.is_empty()) {
                    let size = if c.upper {
                        format!("{:X}", c.data.len())
                    } else {
                        format!("{:x}", c.data.len())
                    };
                    let zeros = "0".repeat(c.zeros);
                    w.extend_from_slice(format!("{zeros}{size}{}\r\n", c.ext).as_bytes());
                    w.extend_from_slice(&c.data);
                    w.extend_from_slice(b"\r\n");
                }
                w.extend_from_slice(b"0\r\n");
                for (k, v) in trailers {
                    w.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                w.extend_from_slice(b"\r\n");
            }
        }
        w
    }
}

/// Header names a generated end-to-end header must not take: framing,
/// hop-by-hop, and those the proxy acts on.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "x-forwarded-for",
];

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9-]{0,15}"
}

fn header() -> impl Strategy<Value = (String, String)> {
    let name = token().prop_filter("reserved header name", |n| {
        !RESERVED.contains(&n.to_ascii_lowercase().as_str())
    });
    // Visible ASCII with inner spaces; no leading or trailing whitespace,
    // which is not part of a field value (RFC 9110 §5.5).
    let value = "[!-~]([ !-~]{0,30}[!-~])?";
    (name, value)
}

fn chunk() -> impl Strategy<Value = Chunk> {
    let ext = prop_oneof![
        Just(String::new()),
        token().prop_map(|n| format!(";{n}")),
        (token(), token()).prop_map(|(n, v)| format!(";{n}={v}")),
        (token(), "[ !#-~]{0,12}").prop_map(|(n, v)| format!(";{n}=\"{v}\"")),
    ];
    (
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
        0usize..3,
        ext,
    )
        .prop_map(|(data, upper, zeros, ext)| Chunk {
            data,
            upper,
            zeros,
            ext,
        })
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("PATCH"),
        Just("DELETE"),
        Just("OPTIONS"),
    ];
    let target =
        "(/[A-Za-z0-9._~!$&'()*+,;=:@-]{0,12}|/%[0-9A-F]{2}){1,4}(\\?[A-Za-z0-9=&%/?-]{0,20})?";
    let hop = prop_oneof![
        Just(vec![]),
        Just(vec![("Connection".to_string(), "keep-alive".to_string())]),
        Just(vec![
            ("Connection".to_string(), "keep-alive".to_string()),
            ("Keep-Alive".to_string(), "timeout=5".to_string()),
        ]),
        Just(vec![("Connection".to_string(), "close".to_string())]),
    ];
    let body = prop_oneof![
        Just(Framing::None),
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(Framing::Length),
        (
            proptest::collection::vec(chunk(), 0..8),
            proptest::collection::vec(header(), 0..2)
        )
            .prop_map(|(c, t)| Framing::Chunked(c, t)),
    ];
    (
        method,
        target,
        "[a-z]{1,10}(\\.[a-z]{1,6}){0,2}(:[1-9][0-9]{0,3})?",
        proptest::collection::vec(header(), 0..6),
        hop,
        body,
    )
        .prop_map(|(method, target, host, extra, hop, body)| {
            let mut headers = vec![("Host".to_string(), host)];
            headers.extend(extra);
            Case {
                method: method.to_string(),
                target,
                headers,
                hop,
                body,
            }
        })
}

/// Headers as a server compares them: lowercase names, framing and
/// hop-by-hop ones left out, values of one name in their order.
fn comparable(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "content-length" | "transfer-encoding" | "connection" | "keep-alive"
            )
        })
        .collect();
    // Stable: the order of one name's values is kept, and must be.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn config(listen: SocketAddr, server: SocketAddr) -> String {
    format!(
        r#"[global]
maxconn = 100
log = "off"

[defaults]
timeout = {{ connect = "1s", client = "5s", server = "5s", queue = "1s", http_request = "5s" }}

[[listen]]
name = "props"
bind = ["{listen}"]

[[listen.server]]
name = "recorder"
addr = "{server}"
"#
    )
}

fn check(proxy: SocketAddr, rec: &Recorder, case: &Case) -> Result<(), TestCaseError> {
    while rec.seen.try_recv().is_ok() {}
    let wire = case.wire();
    let mut conn = Conn::open(proxy);
    conn.write(&wire);
    let resp = conn.try_read(false);
    let shown = String::from_utf8_lossy(&wire);
    let resp = resp.ok_or_else(|| TestCaseError::fail(format!("no answer to\n{shown}")))?;
    prop_assert_eq!(
        resp.status,
        200,
        "a valid request was refused\n{}\nanswer: {:?}",
        shown,
        resp.text()
    );
    prop_assert_eq!(resp.header("x-recorded"), Some("1"));
    let seen = rec
        .seen
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| TestCaseError::fail(format!("the backend recorded nothing: {e}")))?
        .map_err(|e| TestCaseError::fail(format!("the backend got a bad request: {e}")))?;
    prop_assert_eq!(&seen.method, &case.method);
    prop_assert_eq!(&seen.target, &case.target);
    prop_assert_eq!(
        comparable(&seen.headers),
        comparable(&case.headers),
        "{}",
        shown
    );
    prop_assert!(
        seen.body == case.body(),
        "body: sent {} bytes, the backend got {}\n{}",
        case.body().len(),
        seen.body.len(),
        shown
    );
    Ok(())
}

#[test]
fn any_valid_request_reaches_the_server_with_its_method_target_end_to_end_headers_and_body() {
    let rec = Recorder::spawn();
    let addr = free_addr();
    let proxy = Proxy::start(&config(addr, rec.addr), addr);
    let mut runner = TestRunner::new(PropConfig {
        cases: 64,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let result = runner.run(&case(), |c| check(proxy.addr, &rec, &c));
    if let Err(e) = result {
        panic!("{e}\nproxy output:\n{}", proxy.output());
    }
}

/// A flaw put into a chunked body's framing (issue #14 item 7's cases).
#[derive(Debug, Clone, Copy)]
enum Flaw {
    /// The first chunk-size line ends in a bare LF.
    LfLine,
    /// Whitespace before the chunk size.
    SpaceFirst,
    /// A bare CR right after the first size digit.
    BareCr,
    /// A trailer line without a colon.
    TrailerNoColon,
}

/// `wire` (a chunked request) with `flaw` put into its body.
fn flawed(wire: &[u8], flaw: Flaw) -> Vec<u8> {
    let body = wire
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(wire.len(), |i| i + 4);
    let mut w = wire.to_vec();
    match flaw {
        Flaw::LfLine => {
            let eol = body + w[body..].windows(2).position(|p| p == b"\r\n").unwrap_or(0);
            w.remove(eol);
        }
        Flaw::SpaceFirst => w.insert(body, b' '),
        Flaw::BareCr => w.insert(body + 1, b'\r'),
        Flaw::TrailerNoColon => {
            let end = w.len() - 2;
            w.splice(end..end, b"no-colon\r\n".iter().copied());
        }
    }
    w
}

#[test]
fn a_chunked_body_with_flawed_framing_is_refused_before_the_server_sees_it_or_passed_whole() {
    let rec = Recorder::spawn();
    let addr = free_addr();
    let proxy = Proxy::start(&config(addr, rec.addr), addr);
    let chunked = (
        case(),
        proptest::collection::vec(chunk(), 0..4),
        prop_oneof![
            Just(Flaw::LfLine),
            Just(Flaw::SpaceFirst),
            Just(Flaw::BareCr),
            Just(Flaw::TrailerNoColon),
        ],
    )
        .prop_map(|(mut c, chunks, flaw)| {
            c.body = Framing::Chunked(chunks, vec![]);
            (c, flaw)
        });
    let mut runner = TestRunner::new(PropConfig {
        cases: 64,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let result = runner.run(&chunked, |(case, flaw)| {
        while rec.seen.try_recv().is_ok() {}
        let wire = flawed(&case.wire(), flaw);
        let shown = String::from_utf8_lossy(&wire).into_owned();
        let mut conn = Conn::open(proxy.addr);
        conn.write(&wire);
        let resp = conn
            .try_read(false)
            .ok_or_else(|| TestCaseError::fail(format!("no answer to\n{shown}")))?;
        match resp.status {
            400 => {
                let seen = rec.seen.recv_timeout(Duration::from_millis(50));
                prop_assert!(
                    seen.is_err(),
                    "refused, yet the server got {seen:?}\n{shown}"
                );
            }
            200 => {
                let seen = rec
                    .seen
                    .recv_timeout(Duration::from_secs(5))
                    .map_err(|e| TestCaseError::fail(format!("nothing recorded: {e}")))?
                    .map_err(|e| TestCaseError::fail(format!("a bad request went out: {e}")))?;
                prop_assert!(seen.body == case.body(), "body changed\n{}", shown);
            }
            s => prop_assert!(
                false,
                "{flaw:?}: answered {s}, neither refused nor passed\n{shown}"
            ),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nproxy output:\n{}", proxy.output());
    }
}
