//! Helpers shared by the integration suites: the `vakt` binary, demo backends
//! on 127.0.0.1:0, a proxy process with a given config, and a raw HTTP/1.1
//! client that shows exactly what went over the wire.

#![allow(dead_code)] // each suite uses a different subset

pub mod chromium;
pub mod mmdb;
pub mod needs;
pub mod pebble;
pub mod pem;
pub mod relay;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The vakt binary. Proxies started by tests park every idle keep-alive
/// connection (by default only above 128 open connections), so that the
/// whole proxy and differential suite runs through parking; the labs start
/// theirs through init scripts, with the default.
pub fn vakt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vakt"));
    c.env("VAKT_PARK_IDLE_ABOVE", "0");
    c
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "vakt-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback address nobody listens on, on an IP of its own: 127.0.0.0/8
/// is all loopback, and a port probed free can be taken by a parallel test
/// before we bind it, but not on an address no other test uses.
pub fn free_addr() -> SocketAddr {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let ip = std::net::Ipv4Addr::new(
        127,
        100 + (std::process::id() % 100) as u8,
        (n / 250 % 250) as u8,
        (n % 250 + 1) as u8,
    );
    let l = TcpListener::bind((ip, 0)).expect("bind a loopback address");
    l.local_addr().expect("local addr")
}

/// A `vakt demo-web` backend running in this process on its own thread.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Backend {
    pub fn spawn(name: &str) -> Self {
        Self::spawn_at(name, "127.0.0.1:0".parse().unwrap())
    }

    pub fn spawn_at(name: &str, addr: SocketAddr) -> Self {
        let std_listener = TcpListener::bind(addr).expect("bind backend");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let owned = name.to_string();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let _ = vakt_runtime::demo::run(l, owned, async {
                    let _ = rx.await;
                })
                .await;
            });
        });
        Backend {
            addr,
            name: name.to_string(),
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// Stops the backend; its port then refuses connections.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `vakt proxy` process.
pub struct Proxy {
    pub child: Child,
    pub dir: TempDir,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Proxy {
    /// Writes `toml` and starts `vakt proxy --config` on it; waits until
    /// `addr` accepts connections.
    pub fn start(toml: &str, addr: SocketAddr) -> Self {
        let dir = TempDir::new("proxy");
        let config = dir.path().join("proxy.toml");
        std::fs::write(&config, toml).unwrap();
        let log = dir.path().join("proxy.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = vakt()
            .args(["proxy", "--config"])
            .arg(&config)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start vakt proxy");
        let mut p = Proxy {
            child,
            dir,
            config,
            addr,
            log,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("vakt proxy exited ({status}):\n{}", self.output());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                // Listening, and it is ours: the process is still alive.
                thread::sleep(Duration::from_millis(20));
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("vakt proxy exited ({status}):\n{}", self.output());
                }
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "vakt proxy did not listen on {} in time:\n{}",
            self.addr,
            self.output()
        );
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Rewrites the config and sends SIGHUP.
    pub fn reload(&self, toml: &str) {
        std::fs::write(&self.config, toml).unwrap();
        self.signal("HUP");
    }

    pub fn admin(&self, socket: &Path, cmd: &str) -> String {
        let out = vakt()
            .args(["proxy", "admin", "--socket"])
            .arg(socket)
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(25));
    }
    false
}

/// One HTTP response as read off the wire.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn served_by(&self) -> &str {
        self.header("x-served-by").unwrap_or("<none>")
    }

    /// The headers the backend received, from demo-web's `/echo`.
    pub fn echoed(&self, name: &str) -> Vec<String> {
        let v = self.json();
        v["headers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|p| p[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                    .filter_map(|p| p[1].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A client connection that can carry several requests (keep-alive).
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// A connection from source address `from` (any 127.0.0.0/8 address
    /// works on loopback), for tests of who may reach a page.
    pub fn open_from(from: std::net::IpAddr, addr: SocketAddr) -> Self {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .expect("socket");
        s.bind(&SocketAddr::new(from, 0).into())
            .expect("bind the source address");
        s.connect(&addr.into()).expect("connect");
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn::from_stream(s)
    }

    /// A client on a socket the test already opened.
    pub fn from_stream(s: TcpStream) -> Self {
        Conn {
            reader: BufReader::new(s),
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, raw: &[u8]) -> Resp {
        self.write(raw);
        self.read(raw.starts_with(b"HEAD "))
    }

    pub fn write(&mut self, raw: &[u8]) {
        self.reader.get_mut().write_all(raw).expect("write request");
    }

    /// Reads one response; `None` if the connection closed first.
    pub fn try_read(&mut self, head_only: bool) -> Option<Resp> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if !line.trim().is_empty() {
                break;
            }
        }
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).ok()?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
            return Some(r);
        }
        if r.header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).ok()?;
                let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                r.body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(len) = r
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).ok()?;
            r.body = body;
        } else {
            self.reader.read_to_end(&mut r.body).ok()?;
        }
        Some(r)
    }

    pub fn read(&mut self, head_only: bool) -> Resp {
        self.try_read(head_only).expect("a response")
    }

    /// Exactly `n` bytes past the last response (a tunnel's).
    pub fn read_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.reader.read_exact(&mut b).expect("tunnel bytes");
        b
    }

    /// True when the server closed the connection (EOF) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.reader
            .get_mut()
            .set_read_timeout(Some(timeout))
            .unwrap();
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

/// A GET on a fresh connection, with extra header lines.
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    Conn::open(addr).send(req.as_bytes())
}

/// Raw bytes on a fresh connection; the first response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    Conn::open(addr).send(bytes)
}

/// The value of cookie `name` among a response's Set-Cookie headers.
pub fn set_cookie_value(r: &Resp, name: &str) -> Option<String> {
    r.all("set-cookie").iter().find_map(|c| {
        c.split(';')
            .next()
            .and_then(|kv| kv.trim().strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    })
}

/// Standard base64, for Basic auth headers.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Conn {
    /// Like `open`, without panicking.
    pub fn try_open(addr: SocketAddr) -> Option<Self> {
        Self::try_open_within(addr, Duration::from_secs(5), Duration::from_secs(20))
    }

    /// Like `try_open`, with the connect and read timeouts given.
    pub fn try_open_within(addr: SocketAddr, connect: Duration, read: Duration) -> Option<Self> {
        let s = TcpStream::connect_timeout(&addr, connect).ok()?;
        s.set_read_timeout(Some(read)).ok()?;
        Some(Conn {
            reader: BufReader::new(s),
        })
    }

    /// One request; `None` when the connection failed before a response.
    pub fn try_send(&mut self, raw: &[u8]) -> Option<Resp> {
        self.reader.get_mut().write_all(raw).ok()?;
        self.try_read(raw.starts_with(b"HEAD "))
    }
}

/// What a load stream saw.
#[derive(Debug, Default)]
pub struct Totals {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// Requests resent on a fresh connection because a kept-alive one closed
    /// before answering (what browsers do, RFC 9112 §9.3.1).
    pub resent: u64,
    pub max_latency: Duration,
    /// Longest time between two successful responses (one client's view).
    pub max_gap: Duration,
    pub failures: Vec<String>,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} ok {} failed {} resent {} max latency {:?} longest gap between successes {:?}",
            self.sent, self.ok, self.failed, self.resent, self.max_latency, self.max_gap
        )
    }
}

/// A continuous stream of GETs from `clients` keep-alive connections,
/// bounded in count and time; `stop` returns the totals.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<thread::JoinHandle<Totals>>,
}

/// Where and how a [`Load`] connects.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// A network namespace (`ip netns` name) the clients run in.
    pub netns: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            netns: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(20),
        }
    }
}

/// Moves the calling thread into a network namespace: sockets it opens
/// afterwards live there (the namespace is per thread).
pub fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/run/netns/{name}")).expect("open netns");
    // SAFETY: a valid namespace fd; affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

impl Load {
    pub fn start(
        addr: SocketAddr,
        path: &str,
        clients: usize,
        max_requests: u64,
        max_time: Duration,
    ) -> Load {
        Self::start_with(
            addr,
            path,
            clients,
            max_requests,
            max_time,
            LoadOptions::default(),
        )
    }

    pub fn start_with(
        addr: SocketAddr,
        path: &str,
        clients: usize,
        max_requests: u64,
        max_time: Duration,
        opts: LoadOptions,
    ) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                let opts = opts.clone();
                let req = format!("GET {path} HTTP/1.1\r\nHost: load\r\n\r\n").into_bytes();
                thread::spawn(move || {
                    if let Some(ns) = &opts.netns {
                        enter_netns(ns);
                    }
                    let open =
                        || Conn::try_open_within(addr, opts.connect_timeout, opts.read_timeout);
                    let deadline = Instant::now() + max_time;
                    let mut t = Totals::default();
                    let mut last_ok: Option<Instant> = None;
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && t.sent < max_requests
                    {
                        t.sent += 1;
                        let start = Instant::now();
                        let reused = conn.is_some();
                        let mut resp = conn.as_mut().and_then(|c| c.try_send(&req));
                        if resp.is_none() && reused {
                            t.resent += 1;
                            conn = open();
                            resp = conn.as_mut().and_then(|c| c.try_send(&req));
                        } else if resp.is_none() {
                            conn = open();
                            resp = conn.as_mut().and_then(|c| c.try_send(&req));
                        }
                        t.max_latency = t.max_latency.max(start.elapsed());
                        match resp {
                            Some(r) if r.status == 200 => {
                                t.ok += 1;
                                let now = Instant::now();
                                if let Some(l) = last_ok {
                                    t.max_gap = t.max_gap.max(now - l);
                                }
                                last_ok = Some(now);
                                if r.header("connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    conn = None;
                                }
                            }
                            Some(r) => {
                                t.failed += 1;
                                t.failures.push(format!("status {}", r.status));
                                conn = None;
                            }
                            None => {
                                t.failed += 1;
                                t.failures.push("no response".into());
                                conn = None;
                                // A browser would not hammer a dead address either.
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    t
                })
            })
            .collect();
        Load { stop, threads }
    }

    pub fn stop(self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Totals::default();
        for t in self.threads {
            let t = t.join().expect("load thread");
            all.sent += t.sent;
            all.ok += t.ok;
            all.failed += t.failed;
            all.resent += t.resent;
            all.max_latency = all.max_latency.max(t.max_latency);
            all.max_gap = all.max_gap.max(t.max_gap);
            all.failures.extend(t.failures);
        }
        all
    }
}

/// A `vakt demo-web` process, for tests that kill a server hard.
pub struct DemoProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub name: String,
}

impl DemoProcess {
    pub fn spawn(name: &str) -> Self {
        let addr = free_addr();
        let child = vakt()
            .args(["demo-web", "--bind", &addr.to_string(), "--name", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start vakt demo-web");
        assert!(
            eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
            "demo-web {name} did not start"
        );
        DemoProcess {
            child,
            addr,
            name: name.to_string(),
        }
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        self.kill_hard();
    }
}
