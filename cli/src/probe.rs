//! Small network probes, run from the operator's machine or, as the hidden
//! `vakt probe` command, on a cluster host over SSH (so that a check sees
//! the private network the way that host does): a TCP connect timer and a
//! one-shot HTTP/1.1 client, plain or over TLS (rustls, as the proxy), and
//! `on_host` to run one there. Blocking std sockets; nothing is kept open.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::transport::{Transport, sh};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use sha2::{Digest, Sha256};

/// An HTTP response, body de-chunked.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a cookie the response sets.
    pub fn set_cookie(&self, cookie: &str) -> Option<String> {
        self.all("set-cookie").find_map(|v| {
            let (n, rest) = v.split_once('=')?;
            (n.trim() == cookie).then(|| rest.split(';').next().unwrap_or("").to_string())
        })
    }
}

fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr}: no address")))
}

/// Where a request goes: an address, over TLS with an SNI name or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: String,
    /// `Some(name)`: https, sending `name` as SNI and `Host`.
    pub tls_name: Option<String>,
}

impl Endpoint {
    pub fn plain(addr: impl Into<String>) -> Self {
        Endpoint {
            addr: addr.into(),
            tls_name: None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls_name {
            None => f.write_str(&self.addr),
            Some(name) => write!(f, "https://{name} at {}", self.addr),
        }
    }
}

/// One request with `Connection: close`; `headers` are added as given.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Response> {
    request(&Endpoint::plain(addr), method, path, headers, timeout).map(|(r, _)| r)
}

/// One request to `ep` with `Connection: close`, and over TLS the SHA-256
/// of the certificate the server showed (`AB:CD:…`, as `openssl x509
/// -fingerprint` writes it).
pub fn request(
    ep: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<(Response, Option<String>)> {
    let sa = resolve(&ep.addr)?;
    let s = TcpStream::connect_timeout(&sa, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let host = ep.tls_name.as_deref().unwrap_or(&ep.addr);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    let (raw, cert) = match &ep.tls_name {
        None => (exchange(s, req.as_bytes())?, None),
        Some(name) => {
            let mut tls = StreamOwned::new(tls_client(name)?, s);
            let raw = exchange(&mut tls, req.as_bytes())?;
            let cert = tls
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|leaf| fingerprint(leaf));
            (raw, cert)
        }
    };
    let r = parse(&raw).ok_or_else(|| io::Error::other("malformed HTTP response"))?;
    Ok((r, cert))
}

/// Writes `req` and reads until the server closes.
fn exchange(mut s: impl Read + Write, req: &[u8]) -> io::Result<Vec<u8>> {
    s.write_all(req)?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A TLS server may close without close_notify after a complete
        // `Connection: close` answer; what arrived is the answer.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

/// `AB:CD:…`: SHA-256 of a DER certificate, in `openssl x509 -fingerprint`'s spelling.
pub fn fingerprint(der: &[u8]) -> String {
    let hex = hex::encode_upper(Sha256::digest(der));
    let pairs: Vec<&str> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| hex.get(i..i + 2))
        .collect();
    pairs.join(":")
}

/// A TLS client for `name` that accepts any certificate (its signatures
/// still checked): `verify` proves the LB shows the certificate the
/// inventory deployed, by its fingerprint, not that some CA vouches for it
/// (test and private CAs are fine).
fn tls_client(name: &str) -> io::Result<ClientConnection> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server = ServerName::try_from(name.to_string())
        .map_err(|e| io::Error::other(format!("{name}: {e}")))?;
    ClientConnection::new(Arc::new(config), server).map_err(io::Error::other)
}

/// Accepts the server's certificate; handshake signatures are verified.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..i]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[i + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// TCP connect times to `addr`, `count` attempts; errors end the series.
pub fn connect_times(addr: &str, count: usize, timeout: Duration) -> io::Result<Vec<Duration>> {
    let sa = resolve(addr)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        TcpStream::connect_timeout(&sa, timeout)?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// Like [`connect_times`], but a refused connection (the host's kernel
/// answering with a reset) is a round trip too: what `audit` times to a
/// data host whose firewall resets the RTT probe's SYN instead of letting
/// it in.
pub fn round_trips(addr: &str, count: usize, timeout: Duration) -> io::Result<Vec<Duration>> {
    let sa = resolve(addr)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let t = Instant::now();
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e),
        }
        out.push(t.elapsed());
    }
    Ok(out)
}

/// The median of some durations (the lower middle for an even count).
pub fn median(d: &[Duration]) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// Runs `vakt probe ARGS` on a host with the vakt binary; for hosts
/// without it (a web host that runs no demo), bash's /dev/tcp stands in for
/// TCP probes.
pub fn on_host(t: &dyn Transport, has_binary: bool, args: &str) -> Result<String, String> {
    let cmd = if has_binary {
        format!(
            "{} probe {args}",
            sh(&format!("{}{}", t.root(), crate::services::BINARY_PATH))
        )
    } else if let Some(addr) = args.strip_prefix("tcp ") {
        let (ip, port) = addr
            .split_whitespace()
            .next()
            .and_then(|a| a.rsplit_once(':'))
            .ok_or("bad address")?;
        format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' && echo 'tcp ok (bash /dev/tcp)'")
    } else {
        return Err("no vakt binary on this host to probe with".into());
    };
    let out = t.run(&cmd).map_err(|e| e.to_string())?;
    if out.ok() {
        Ok(out.stdout.trim().to_string())
    } else {
        Err(format!("{}{}", out.stdout, out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined_and_cookies_found() {
        let r = parse(b"HTTP/1.1 200 OK\r\nSet-Cookie: SERVERID=w1; path=/\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.set_cookie("SERVERID").as_deref(), Some("w1"));
        assert_eq!(
            median(&[
                Duration::from_millis(3),
                Duration::from_millis(1),
                Duration::from_millis(2)
            ]),
            Duration::from_millis(2)
        );
    }
}
