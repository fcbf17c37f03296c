//! Request logging in HAProxy's httplog format, to syslog (UDP, RFC 3164) or
//! stdout, without ever blocking the data path: syslog datagrams go out on a
//! non-blocking socket and stdout lines through a bounded queue to a writer
//! thread; when either is full the line is dropped and counted.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

use chrono::{DateTime, Local};

use crate::config::LogTarget;

/// What one httplog line says (HAProxy names).
#[derive(Debug)]
pub struct LogRecord<'a> {
    pub client: SocketAddr,
    pub accept_date: SystemTime,
    pub frontend: &'a str,
    pub backend: &'a str,
    /// `<NOSRV>` when none was chosen, `<STATS>` for the stats page.
    pub server: &'a str,
    /// Milliseconds; -1 = that stage was not reached.
    pub tq: i64,
    pub tw: i64,
    pub tc: i64,
    pub tr: i64,
    pub tt: i64,
    pub status: u16,
    /// Bytes sent to the client.
    pub bytes: u64,
    pub termination: [u8; 4],
    pub actconn: u64,
    pub feconn: u64,
    pub beconn: u64,
    pub srv_conn: u64,
    pub retries: u32,
    pub redispatched: bool,
    pub srv_queue: u64,
    pub backend_queue: u64,
    /// `GET /path HTTP/1.1`, or `<BADREQ>`.
    pub request_line: &'a str,
}

/// Writes `r` as HAProxy's httplog line (without the syslog header):
/// `10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"`
pub fn format_httplog(r: &LogRecord, out: &mut String) {
    let date: DateTime<Local> = r.accept_date.into();
    let _ = write!(
        out,
        "{} [{}] {} {}/{} {}/{}/{}/{}/{} {} {} - - {} {}/{}/{}/{}/{}{} {}/{} \"",
        r.client,
        date.format("%d/%b/%Y:%H:%M:%S%.3f"),
        r.frontend,
        r.backend,
        r.server,
        r.tq,
        r.tw,
        r.tc,
        r.tr,
        r.tt,
        r.status,
        r.bytes,
        String::from_utf8_lossy(&r.termination),
        r.actconn,
        r.feconn,
        r.beconn,
        r.srv_conn,
        if r.redispatched { "+" } else { "" },
        r.retries,
        r.srv_queue,
        r.backend_queue,
    );
    // HAProxy escapes '"', '#' and control bytes in the request as #XX.
    for b in r.request_line.bytes() {
        if b < 0x20 || b == b'"' || b == b'#' || b >= 0x7f {
            let _ = write!(out, "#{b:02X}");
        } else {
            out.push(b as char);
        }
    }
    out.push('"');
}

#[derive(Debug)]
enum Sink {
    Off,
    Udp(UdpSocket),
    Stdout(SyncSender<String>),
}

/// Where log lines go. Cheap to call from any task.
#[derive(Debug)]
pub struct Logger {
    sink: Sink,
    facility: u8,
    pid: u32,
    dropped: AtomicU64,
}

impl Logger {
    pub fn new(target: &LogTarget, facility: u8) -> std::io::Result<Logger> {
        let sink = match target {
            LogTarget::Off => Sink::Off,
            LogTarget::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                }
                .parse()
                .expect("a literal address");
                let s = UdpSocket::bind(local)?;
                s.connect(addr)?;
                s.set_nonblocking(true)?;
                Sink::Udp(s)
            }
            LogTarget::Stdout => {
                let (tx, rx) = sync_channel::<String>(4096);
                std::thread::Builder::new()
                    .name("vakt-log".into())
                    .spawn(move || {
                        let stdout = std::io::stdout();
                        for line in rx {
                            let mut out = stdout.lock();
                            let _ = out.write_all(line.as_bytes());
                            let _ = out.flush();
                        }
                    })?;
                Sink::Stdout(tx)
            }
        };
        Ok(Logger {
            sink,
            facility,
            pid: std::process::id(),
            dropped: AtomicU64::new(0),
        })
    }

    /// Lines lost because the sink was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Logs one request at severity info.
    pub fn log(&self, r: &LogRecord) {
        if matches!(self.sink, Sink::Off) {
            return;
        }
        let mut line = String::with_capacity(256);
        format_httplog(r, &mut line);
        self.emit(&line, 6);
    }

    /// Logs an event (server state changes, reloads) at a syslog severity
    /// (1 alert, 3 error, 5 notice, 6 info).
    pub fn event(&self, message: &str, severity: u8) {
        self.emit(message, severity);
    }

    fn emit(&self, message: &str, severity: u8) {
        match &self.sink {
            Sink::Off => {}
            Sink::Udp(s) => {
                let pri = u16::from(self.facility) * 8 + u16::from(severity.min(7));
                let now: DateTime<Local> = SystemTime::now().into();
                let datagram = format!(
                    "<{pri}>{} vakt[{}]: {message}",
                    now.format("%b %e %H:%M:%S"),
                    self.pid
                );
                if s.send(datagram.as_bytes()).is_err() {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
            Sink::Stdout(tx) => {
                if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                    tx.try_send(format!("{message}\n"))
                {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(line: &str) -> LogRecord<'_> {
        LogRecord {
            client: "10.0.1.2:33317".parse().unwrap(),
            accept_date: SystemTime::UNIX_EPOCH + Duration::from_millis(1_233_922_454_655),
            frontend: "http-in",
            backend: "static",
            server: "srv1",
            tq: 10,
            tw: 0,
            tc: 30,
            tr: 69,
            tt: 109,
            status: 200,
            bytes: 2750,
            termination: *b"----",
            actconn: 1,
            feconn: 1,
            beconn: 1,
            srv_conn: 1,
            retries: 0,
            redispatched: false,
            srv_queue: 0,
            backend_queue: 0,
            request_line: line,
        }
    }

    #[test]
    fn the_httplog_layout_is_haproxys() {
        let mut out = String::new();
        format_httplog(&record("GET /index.html HTTP/1.1"), &mut out);
        let date: DateTime<Local> = record("").accept_date.into();
        let expected = format!(
            "10.0.1.2:33317 [{}] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 \"GET /index.html HTTP/1.1\"",
            date.format("%d/%b/%Y:%H:%M:%S%.3f")
        );
        assert_eq!(out, expected);
        assert!(out.contains(":14.655]"), "{out}");
    }

    #[test]
    fn request_lines_are_escaped() {
        let mut out = String::new();
        format_httplog(&record("GET /a\"b#c\x01 HTTP/1.1"), &mut out);
        assert!(out.ends_with("\"GET /a#22b#23c#01 HTTP/1.1\""), "{out}");
    }

    #[test]
    fn syslog_datagrams_carry_the_priority() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let logger = Logger::new(&LogTarget::Udp(rx.local_addr().unwrap()), 16).unwrap();
        logger.log(&record("GET / HTTP/1.1"));
        let mut buf = [0u8; 1024];
        let n = rx.recv(&mut buf).unwrap();
        let s = String::from_utf8_lossy(&buf[..n]);
        assert!(s.starts_with("<134>"), "{s}");
        assert!(s.contains(" vakt["), "{s}");
        assert!(s.ends_with("\"GET / HTTP/1.1\""), "{s}");
    }
}
