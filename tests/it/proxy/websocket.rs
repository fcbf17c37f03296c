//! WebSocket tunnels through `vakt proxy`: a real WebSocket handshake to a
//! small server on loopback that answers 101 and then echoes, pushes a line
//! of its own, refuses on `/refuse` and answers plain requests with the
//! head it received.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Opts, config};
use crate::support::{Conn, Proxy, TempDir, free_addr, get, set_cookie_value};

/// RFC 6455 §1.3's example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A WebSocket server: 101 (then its line `hi from NAME\n`, then an echo
/// of every byte), 400 on `/refuse`, and 200 with the received head for
/// anything that asks no upgrade. Every head it read is kept.
pub struct WsServer {
    pub name: String,
    pub addr: SocketAddr,
    pub heads: Arc<Mutex<Vec<String>>>,
}

impl WsServer {
    pub fn spawn(name: &str) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<String>>> = Default::default();
        let (n, h) = (name.to_string(), heads.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (n, h) = (n.clone(), h.clone());
                std::thread::spawn(move || serve(s, &n, &h));
            }
        });
        WsServer {
            name: name.to_string(),
            addr,
            heads,
        }
    }

    pub fn last_head(&self) -> String {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn serve(s: TcpStream, name: &str, heads: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(s);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        heads.lock().unwrap().push(head.clone());
        let lower = head.to_ascii_lowercase();
        let w = r.get_mut();
        if head.starts_with("GET /refuse") {
            let _ = w.write_all(
                format!("HTTP/1.1 400 Bad Request\r\nx-served-by: {name}\r\ncontent-length: 7\r\n\r\nrefused").as_bytes(),
            );
        } else if lower.contains("\r\nupgrade: websocket\r\n") {
            let _ = w.write_all(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\nx-served-by: {name}\r\n\r\nhi from {name}\n"
                )
                .as_bytes(),
            );
            // Echo until the client's end, then close ours.
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        if r.get_mut().write_all(&buf[..k]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = r.get_mut().shutdown(std::net::Shutdown::Write);
            return;
        } else {
            let _ = w.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nx-served-by: {name}\r\ncontent-length: {}\r\n\r\n{head}",
                    head.len()
                )
                .as_bytes(),
            );
        }
    }
}

struct Setup {
    proxy: Proxy,
    servers: Vec<WsServer>,
    _dir: TempDir,
}

fn setup(n: usize, o: Opts) -> Setup {
    let servers: Vec<WsServer> = (1..=n)
        .map(|i| WsServer::spawn(&format!("ws0{i}")))
        .collect();
    let list: Vec<(String, SocketAddr)> =
        servers.iter().map(|s| (s.name.clone(), s.addr)).collect();
    let dir = TempDir::new("ws");
    let addr = free_addr();
    let weights = vec![1; n];
    let o = Opts {
        weights: &weights,
        ..o
    };
    let proxy = Proxy::start(
        &config(addr, &list, &dir.path().join("admin.sock"), &o),
        addr,
    );
    Setup {
        proxy,
        servers,
        _dir: dir,
    }
}

fn handshake(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Opens a tunnel; returns the connection past the 101 and the server's
/// pushed line.
fn open(addr: SocketAddr, extra: &str) -> (Conn, crate::support::Resp) {
    let mut c = Conn::open(addr);
    c.write(handshake("/chat", extra).as_bytes());
    let r = c.read(true);
    assert_eq!(r.status, 101, "{r:?}");
    (c, r)
}

#[test]
fn a_websocket_handshake_is_tunnelled_and_echoes_both_ways() {
    let s = setup(1, Opts::default());
    let (mut c, r) = open(s.proxy.addr, "");
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("upgrade"))
    );
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    // The server's unprompted line, sent right behind its 101.
    assert_eq!(c.read_bytes(13), b"hi from ws01\n");
    for msg in [
        &b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"[..],
        b"second",
        &[0u8, 255, 10, 13],
    ] {
        c.write(msg);
        assert_eq!(c.read_bytes(msg.len()), msg);
    }
    let head = s.servers[0].last_head().to_ascii_lowercase();
    for want in [
        "get /chat http/1.1\r\n",
        "connection: upgrade\r\n",
        "upgrade: websocket\r\n",
        &format!("sec-websocket-key: {}\r\n", KEY.to_ascii_lowercase()),
        "sec-websocket-version: 13\r\n",
        "x-forwarded-for: 127.0.0.1\r\n",
    ] {
        assert!(head.contains(want), "{want:?} not in {head}");
    }
    // The client's close ends the tunnel: the server's close comes back.
    c.stream().shutdown(std::net::Shutdown::Write).unwrap();
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn a_websocket_sticks_to_the_cookie_of_a_prior_request() {
    let s = setup(2, Opts::default());
    for _ in 0..2 {
        let r = get(s.proxy.addr, "/", &[]);
        let cookie = set_cookie_value(&r, "SERVERID").expect("cookie inserted");
        for _ in 0..3 {
            let (mut c, ws) = open(s.proxy.addr, &format!("Cookie: SERVERID={cookie}\r\n"));
            assert_eq!(ws.served_by(), r.served_by());
            let line = format!("hi from {}\n", r.served_by());
            assert_eq!(c.read_bytes(line.len()), line.as_bytes());
        }
    }
}

#[test]
fn timeout_tunnel_closes_an_idle_tunnel_and_the_request_is_logged_at_its_end() {
    let s = setup(
        1,
        Opts {
            listen: "timeout = { tunnel = \"300ms\" }",
            global: "log = \"stdout\"",
            ..Default::default()
        },
    );
    let (mut c, _) = open(s.proxy.addr, "");
    assert_eq!(c.read_bytes(13), b"hi from ws01\n");
    // Activity keeps it open past the limit.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(150));
        c.write(b"tick");
        assert_eq!(c.read_bytes(4), b"tick");
    }
    let idle = Instant::now();
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "idle tunnel not closed"
    );
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(2000),
        "closed after {waited:?}"
    );
    // One line, at the end: status 101, the tunnel's bytes, `cD`. The
    // proxy writes it just after closing, so it may trail the close a bit.
    let deadline = Instant::now() + Duration::from_secs(3);
    let log = loop {
        let log = s.proxy.output();
        if log.contains("GET /chat") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let line = log
        .lines()
        .find(|l| l.contains("GET /chat"))
        .unwrap_or_else(|| panic!("no log line:\n{log}"));
    assert!(line.contains(" 101 "), "{line}");
    assert!(line.contains(" cD"), "{line}");
}

#[test]
fn a_refused_upgrade_passes_through_and_the_connection_stays_http() {
    let s = setup(1, Opts::default());
    let mut c = Conn::open(s.proxy.addr);
    c.write(handshake("/refuse", "").as_bytes());
    let r = c.read(false);
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "refused");
    assert_eq!(r.header("upgrade"), None);
    // The next request on the connection is HTTP again.
    let r = c.send(b"GET /after HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("GET /after"), "{}", r.text());
}

#[test]
fn a_non_websocket_upgrade_is_still_stripped() {
    let s = setup(1, Opts::default());
    let r = get(
        s.proxy.addr,
        "/h2c",
        &[
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
        ],
    );
    // `get` adds `Connection: close`; ask for the upgrade in the same field.
    assert_eq!(r.status, 200);
    let head = r.text().to_ascii_lowercase();
    assert!(!head.contains("upgrade:"), "{head}");
    let mut c = Conn::open(s.proxy.addr);
    let r = c.send(b"GET /h2c HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    assert_eq!(r.status, 200);
    let head = r.text().to_ascii_lowercase();
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!head.contains("http2-settings"), "{head}");
}

/// A proxy process on `tests/data/websocket.cfg`, its stdout (the log) in
/// a file.
struct Peer {
    child: std::process::Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn start(mut cmd: std::process::Command, server: &WsServer, dir: &TempDir, tag: &str) -> Peer {
        let addr = free_addr();
        let log = dir.path().join(format!("{tag}.log"));
        let out = std::fs::File::create(&log).unwrap();
        cmd.args([
            "-db",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/websocket.cfg"),
        ])
        .env("WS_ADDR", addr.to_string())
        .env("WS01", server.addr.port().to_string())
        .stdout(out)
        .stderr(std::process::Stdio::null());
        let child = cmd.spawn().expect("start proxy");
        assert!(crate::support::eventually(Duration::from_secs(10), || {
            TcpStream::connect(addr).is_ok()
        }));
        Peer { child, addr, log }
    }

    /// The log line of the request for `path`, once written.
    fn line(&self, path: &str) -> String {
        let mut found = String::new();
        crate::support::eventually(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            found = text
                .lines()
                .find(|l| l.contains(path))
                .unwrap_or("")
                .to_string();
            !found.is_empty()
        });
        found
    }
}

/// The head the server saw, each proxy's own connection handling aside
/// (the order of fields may differ; the set may not).
fn fields(head: &str) -> Vec<String> {
    let mut v: Vec<String> = head
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    v.sort();
    v
}

/// The termination state in an httplog line (raw format, no syslog header).
fn termination(line: &str) -> String {
    line.split_whitespace().nth(9).unwrap_or("").to_string()
}

#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn haproxy_and_vakt_tunnel_the_same_way() {
    crate::haproxy::require_haproxy();
    let server = WsServer::spawn("ws01");
    let dir = TempDir::new("ws-diff");
    let h = Peer::start(
        std::process::Command::new("haproxy"),
        &server,
        &dir,
        "haproxy",
    );
    let mut v = crate::support::vakt();
    v.arg("proxy");
    let v = Peer::start(v, &server, &dir, "vakt");
    let mut seen = Vec::new();
    let mut answers = Vec::new();
    for p in [&h, &v] {
        // A tunnel the client closes.
        let (mut c, r) = open(p.addr, "");
        assert_eq!(c.read_bytes(13), b"hi from ws01\n");
        c.write(b"echo me");
        assert_eq!(c.read_bytes(7), b"echo me");
        seen.push(fields(&server.last_head()));
        let head: String = r
            .headers
            .iter()
            // hyper adds a Date; HAProxy passes the server's (none).
            .filter(|(k, _)| !k.eq_ignore_ascii_case("date"))
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        let a = fields(&format!("HTTP/1.1 101\n{head}"));
        answers.push(a);
        c.stream().shutdown(std::net::Shutdown::Write).unwrap();
        assert!(c.closed_within(Duration::from_secs(5)));
        // A tunnel left idle past `timeout tunnel`.
        let mut c = Conn::open(p.addr);
        c.write(handshake("/idle", "").as_bytes());
        assert_eq!(c.read(true).status, 101);
        assert_eq!(c.read_bytes(13), b"hi from ws01\n");
        assert!(c.closed_within(Duration::from_secs(5)));
    }
    assert_eq!(seen[0], seen[1], "heads at the server: HAProxy, then vakt");
    assert_eq!(answers[0], answers[1], "101 heads: HAProxy, then vakt");
    // Measured on HAProxy 2.6: `--` for a tunnel both ends closed, `cD`
    // for one `timeout tunnel` ended (cookie `NI`: none sent, inserted).
    for (path, state) in [("/chat", "--NI"), ("/idle", "cDNI")] {
        let (hl, vl) = (h.line(path), v.line(path));
        assert_eq!(termination(&hl), state, "HAProxy: {hl}");
        assert_eq!(termination(&vl), state, "vakt: {vl}");
        for l in [&hl, &vl] {
            assert!(l.contains(" 101 "), "{l}");
        }
    }
}

/// A WebSocket over HTTPS (HTTP/1.1 by ALPN): `openssl s_client` speaks
/// the handshake and a message through the TLS listener, and the echo
/// comes back decrypted.
#[test]
fn a_websocket_over_tls_is_tunnelled() {
    use std::process::{Command, Stdio};
    let dir = TempDir::new("ws-tls");
    let crt = crate::support::pem::self_signed(dir.path(), "ws", &["ws.test"], true, 2);
    let tls = free_addr();
    let listen = format!(
        "tls = {{ bind = [\"{tls}\"], crt = [\"{}\"] }}",
        crt.display()
    );
    let s = setup(
        1,
        Opts {
            listen: &listen,
            ..Opts::default()
        },
    );
    assert!(crate::support::eventually(Duration::from_secs(5), || {
        TcpStream::connect(tls).is_ok()
    }));
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &tls.to_string()])
        .args(["-servername", "ws.test", "-alpn", "http/1.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a line from the tunnel within 5 s")
    };
    stdin.write_all(handshake("/chat", "").as_bytes()).unwrap();
    stdin.flush().unwrap();
    assert_eq!(next().trim_end(), "HTTP/1.1 101 Switching Protocols");
    let mut line = next();
    while !line.trim_end().is_empty() {
        line = next();
    }
    assert_eq!(next(), "hi from ws01");
    stdin.write_all(b"over tls\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next(), "over tls");
    let head = s.servers[0].last_head().to_ascii_lowercase();
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    let _ = child.kill();
    let _ = child.wait();
}

/// RFC 8441 over h2: an extended CONNECT with `:protocol = websocket` on a
/// TLS listener (ALPN h2) with hyper's h2 client; the server gets the
/// HTTP/1.1 upgrade it knows, the h2 client a 200 and the tunnel on its
/// stream.
#[test]
fn a_websocket_over_h2_extended_connect_is_tunnelled_on_its_stream() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    let dir = TempDir::new("ws-h2");
    // rustls refuses a self-signed CA certificate as a server's.
    let ca_path = crate::support::pem::ca_signed(dir.path(), "ws", &["ws.test"]);
    let crt = dir.path().join("ws.pem");
    let mut pem = std::fs::read(dir.path().join("ws.crt")).unwrap();
    pem.extend(std::fs::read(dir.path().join("ws.key")).unwrap());
    std::fs::write(&crt, pem).unwrap();
    let tls = free_addr();
    let listen = format!(
        "tls = {{ bind = [\"{tls}\"], crt = [\"{}\"] }}",
        crt.display()
    );
    let s = setup(
        1,
        Opts {
            listen: &listen,
            ..Opts::default()
        },
    );
    assert!(crate::support::eventually(Duration::from_secs(5), || {
        TcpStream::connect(tls).is_ok()
    }));
    let ca = std::fs::read(&ca_path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, accept, lines) = rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(tls).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("ws.test").unwrap();
        let session = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(session))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("https://ws.test/chat")
            .header("sec-websocket-version", "13")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let resp = send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let accept = resp.headers().contains_key("sec-websocket-accept");
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        let mut io = tokio::io::BufReader::new(TokioIo::new(upgraded));
        let mut lines = Vec::new();
        let mut line = String::new();
        io.read_line(&mut line).await.unwrap();
        lines.push(std::mem::take(&mut line));
        io.get_mut().write_all(b"over h2\n").await.unwrap();
        io.get_mut().flush().await.unwrap();
        io.read_line(&mut line).await.unwrap();
        lines.push(std::mem::take(&mut line));
        // The connection's other streams go on beside the tunnel; another
        // extended CONNECT protocol is refused.
        let get = http::Request::get("https://ws.test/plain")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let plain = send.send_request(get).await.unwrap().status().as_u16();
        let mut other = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri("https://ws.test/udp")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        other
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("connect-udp"));
        let refused = send.send_request(other).await.unwrap().status().as_u16();
        io.get_mut().write_all(b"still open\n").await.unwrap();
        io.read_line(&mut line).await.unwrap();
        lines.push(line);
        assert_eq!((plain, refused), (200, 405));
        (status, accept, lines)
    });
    assert_eq!(status, 200);
    assert!(!accept, "the client got the server's Sec-WebSocket-Accept");
    assert_eq!(lines, ["hi from ws01\n", "over h2\n", "still open\n"]);
    let heads = s.servers[0].heads.lock().unwrap().clone();
    let head = heads
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .find(|h| h.starts_with("get /chat "))
        .unwrap_or_else(|| panic!("no GET /chat reached the server: {heads:?}"));
    assert!(head.starts_with("get /chat http/1.1\r\n"), "{head}");
    for field in [
        "upgrade: websocket\r\n",
        "connection: upgrade\r\n",
        "sec-websocket-version: 13\r\n",
        "sec-websocket-key: ",
    ] {
        assert!(head.contains(field), "missing {field:?}: {head}");
    }
}
