//! HTTPS on the proxy (issue #17): TLS termination with certificates chosen
//! by SNI, HTTP/2 by ALPN, redirect of plain HTTP, HSTS, X-Forwarded-Proto,
//! certificates reloaded when their files change, and a handshake timeout.
//! Real clients only: curl (with nghttp2) and `openssl s_client`;
//! certificates made by `openssl req` for each test.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Cluster, Opts, cluster};
use crate::support::{TempDir, eventually, free_addr, vakt};

/// A self-signed certificate for `names`, valid two days.
fn cert(dir: &Path, file: &str, names: &[&str], ecdsa: bool) -> PathBuf {
    crate::support::pem::self_signed(dir, file, names, ecdsa, 2)
}

struct Https {
    c: Cluster,
    tls: SocketAddr,
    dir: TempDir,
    shop: PathBuf,
}

fn https(extra_tls: &str) -> Https {
    let dir = TempDir::new("tls");
    let shop = cert(dir.path(), "shop", &["shop.test", "www.shop.test"], true);
    let other = cert(dir.path(), "other", &["*.other.test"], false);
    let tls = free_addr();
    let listen = format!(
        "tls = {{ bind = [\"{tls}\"], crt = [\"{}\", \"{}\"], hsts = \"max-age=600\"{extra_tls} }}",
        shop.display(),
        other.display()
    );
    let c = cluster(Opts {
        listen: &listen,
        ..Opts::default()
    });
    assert!(eventually(Duration::from_secs(5), || TcpStream::connect(
        tls
    )
    .is_ok()));
    Https { c, tls, dir, shop }
}

/// curl against `https://NAME:PORT/PATH` resolved to the TLS address,
/// trusting `ca`; returns (status, http version, headers+body text).
fn curl(
    tls: SocketAddr,
    name: &str,
    path: &str,
    ca: &Path,
    extra: &[&str],
) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args([
            "--resolve",
            &format!("{name}:{}:{}", tls.port(), tls.ip()),
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .args(extra)
        .arg(format!("https://{name}:{}{path}", tls.port()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "curl: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text.lines().last().unwrap_or("").to_string();
    let mut it = last.split_whitespace();
    let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = it.next().unwrap_or("").to_string();
    (status, version, text)
}

/// The subject `openssl s_client` sees for SNI `name` (None: no SNI), and
/// whether the handshake worked, with extra flags (`-tls1_1`, …).
fn handshake(addr: SocketAddr, name: Option<&str>, flags: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()]);
    match name {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd
        .args(flags)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let subject = text
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or("")
        .to_string();
    (out.status.success() && !subject.is_empty(), subject)
}

#[test]
fn https_over_http1_reaches_the_server_with_x_forwarded_proto_and_hsts() {
    let h = https("");
    let (status, version, text) = curl(h.tls, "shop.test", "/echo", &h.shop, &["--http1.1"]);
    assert_eq!((status, version.as_str()), (200, "1.1"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age=600"),
        "{text}"
    );
    assert!(lower.contains(r#"["x-forwarded-proto","https"]"#), "{text}");
}

#[test]
fn h2_is_negotiated_and_the_cart_sticks_over_it() {
    let h = https("");
    let jar = h.dir.path().join("jar");
    let jar = jar.to_str().unwrap();
    let mut served = Vec::new();
    for _ in 0..4 {
        let (status, version, text) = curl(
            h.tls,
            "shop.test",
            "/echo",
            &h.shop,
            &["--http2", "-c", jar, "-b", jar],
        );
        assert_eq!((status, version.as_str()), (200, "2"), "{text}");
        let by = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-served-by: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        served.push(by.trim().to_string());
    }
    assert!(
        served.iter().all(|s| s == &served[0]),
        "sticky over h2: {served:?}"
    );
}

#[test]
fn plain_http_is_redirected_to_https_keeping_path_and_query() {
    let h = https("");
    let plain = h.c.addr();
    for (method, want) in [("GET", "301"), ("POST", "308")] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-i",
                "--max-time",
                "5",
                "-X",
                method,
                "-H",
                "Host: shop.test",
            ])
            .arg(format!("http://{plain}/cart?item=apple"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert!(
            text.starts_with(&format!("http/1.1 {want}")),
            "{method}: {text}"
        );
        assert!(
            text.contains(&format!(
                "location: https://shop.test:{}/cart?item=apple",
                h.tls.port()
            )),
            "{method}: {text}"
        );
    }
}

#[test]
fn sni_picks_the_certificate_and_tls_1_1_is_refused() {
    let h = https("");
    let (ok, subject) = handshake(h.tls, Some("shop.test"), &[]);
    assert!(ok && subject.contains("shop.test"), "{subject}");
    let (ok, subject) = handshake(h.tls, Some("api.other.test"), &[]);
    assert!(ok && subject.contains("other.test"), "wildcard: {subject}");
    let (ok, subject) = handshake(h.tls, None, &[]);
    assert!(
        ok && subject.contains("shop.test"),
        "default for no SNI: {subject}"
    );
    assert!(
        handshake(h.tls, Some("shop.test"), &["-tls1_2"]).0,
        "TLS 1.2 accepted"
    );
    assert!(
        handshake(h.tls, Some("shop.test"), &["-tls1_3"]).0,
        "TLS 1.3 accepted"
    );
    assert!(
        !handshake(h.tls, Some("shop.test"), &["-tls1_1"]).0,
        "TLS 1.1 refused"
    );
}

#[test]
fn a_renewed_certificate_file_is_served_to_new_handshakes() {
    let h = https("");
    let (_, before) = handshake(h.tls, Some("shop.test"), &[]);
    assert!(before.contains("shop.test"), "{before}");
    // A renewal writes a new PEM over the old one (another subject here, to
    // tell them apart; still valid for the name).
    let renewed = cert(
        h.dir.path(),
        "renewed",
        &["renewed.shop.test", "shop.test"],
        true,
    );
    std::fs::rename(&renewed, &h.shop).unwrap();
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || handshake(
            h.tls,
            Some("shop.test"),
            &[]
        )
        .1
        .contains("renewed.shop.test")),
        "the new certificate was not picked up"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_client_that_never_finishes_the_handshake_is_closed() {
    let h = https("");
    let mut s = TcpStream::connect(h.tls).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    let mut b = [0u8; 1];
    let n = std::io::Read::read(&mut s, &mut b).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    // `timeout http_request` is 2 s in the test cluster.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn check_names_a_missing_certificate_file() {
    let dir = TempDir::new("tlscheck");
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "[global]\nlog = \"off\"\n[[listen]]\nname = \"a\"\nbind = [\"127.0.0.1:1\"]\ntls = {{ bind = [\"127.0.0.1:2\"], crt = [\"{}/missing.pem\"] }}\n[[listen.server]]\nname = \"w\"\naddr = \"127.0.0.1:3\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = vakt()
        .args(["proxy", "--config"])
        .arg(&cfg)
        .arg("--check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("missing.pem"), "{err}");
}

/// The same haproxy.cfg with HAProxy's HTTPS spelling on vakt and on
/// HAProxy 2.6: same redirect, same headers at the server, same protocol,
/// same certificate by SNI, same refusal of TLS 1.1.
#[test]
#[cfg_attr(
    not(vakt_haproxy),
    ignore = "needs haproxy 2.x: apt-get install haproxy (README: Tests)"
)]
fn haproxy_cfg_https_spelling_behaves_as_haproxy_does() {
    crate::haproxy::require_haproxy();
    let dir = TempDir::new("tlsdiff");
    let shop = cert(dir.path(), "shop", &["shop.test"], true);
    let other = cert(dir.path(), "other", &["*.other.test"], false);
    let backend = crate::support::Backend::spawn("web01");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\nfrontend web\n    bind \"${{PLAIN}}\"\n    bind \"${{TLS}}\" ssl crt {} crt {} alpn h2,http/1.1 ssl-min-ver TLSv1.2\n    http-request redirect scheme https code 301 unless {{ ssl_fc }}\n    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n    http-response set-header Strict-Transport-Security \"max-age=600\"\n    default_backend app\nbackend app\n    server web01 {}\n",
            shop.display(),
            other.display(),
            backend.addr
        ),
    )
    .unwrap();
    let mut seen = Vec::new();
    for peer in ["vakt", "haproxy"] {
        let (plain, tls) = (free_addr(), free_addr());
        let mut cmd = if peer == "vakt" {
            let mut c = vakt();
            c.arg("proxy");
            c
        } else {
            Command::new("haproxy")
        };
        let mut child = cmd
            .args(["-db", "-f"])
            .arg(&cfg)
            .env("PLAIN", plain.to_string())
            .env("TLS", tls.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(eventually(Duration::from_secs(10), || {
            TcpStream::connect(plain).is_ok() && TcpStream::connect(tls).is_ok()
        }));
        let redirect = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "5", "-H", "Host: shop.test"])
            .arg(format!("http://{plain}/cart?item=apple"))
            .output()
            .unwrap();
        let redirect = String::from_utf8_lossy(&redirect.stdout).to_ascii_lowercase();
        let redirect_line = redirect.lines().next().unwrap_or("").trim().to_string();
        let location = redirect
            .lines()
            .find(|l| l.starts_with("location:"))
            .unwrap_or("")
            .trim()
            .to_string();
        let (s1, v1, t1) = curl(tls, "shop.test", "/echo", &shop, &["--http1.1"]);
        let (s2, v2, _) = curl(tls, "shop.test", "/echo", &shop, &["--http2"]);
        let t1 = t1.to_ascii_lowercase();
        let facts = (
            redirect_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string(),
            location,
            (s1, v1, s2, v2),
            t1.contains("strict-transport-security: max-age=600"),
            t1.contains(r#"["x-forwarded-proto","https"]"#),
            handshake(tls, Some("shop.test"), &[])
                .1
                .contains("shop.test"),
            handshake(tls, Some("api.other.test"), &[])
                .1
                .contains("other.test"),
            handshake(tls, Some("shop.test"), &["-tls1_1"]).0,
        );
        let _ = child.kill();
        let _ = child.wait();
        seen.push(facts);
    }
    assert_eq!(seen[0], seen[1], "vakt (left) and HAProxy (right) differ");
    assert_eq!(seen[0].0, "301");
    assert!(
        seen[0].1.contains("https://shop.test/cart?item=apple"),
        "{:?}",
        seen[0]
    );
}

/// A TLS keep-alive connection parks between requests like a plain one
/// (hyper lets go of it; the TLS session stays): a request after an idle
/// gap is served on the same session.
#[test]
fn a_tls_keep_alive_connection_serves_a_request_after_an_idle_gap() {
    use std::io::{Read, Write};
    let h = https("");
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &h.tls.to_string()])
        .args(["-servername", "shop.test"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    stdin
        .write_all(b"GET /echo HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    drop(stdin);
    let out = reader.join().unwrap();
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert!(out.contains("x-forwarded-proto"), "{out}");
}
