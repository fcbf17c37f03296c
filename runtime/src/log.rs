//! Request logging in HAProxy's httplog format, to syslog (UDP, RFC 3164) or
//! stdout, without ever blocking the data path: syslog datagrams go out on a
//! non-blocking socket and stdout lines through a bounded queue to a writer
//! thread; when either is full the line is dropped and counted. Deciding
//! what to log (`dontlognull`, timers, termination state) is the proxy's job;
//! internal diagnostics go through `tracing`, not here.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDateTime, Timelike, Utc};

use crate::config::LogTarget;

/// Syslog severities (RFC 3164 §4.1.1) that vakt uses, for [`Logger::event`].
pub const ALERT: u8 = 1;
pub const ERR: u8 = 3;
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;

/// RFC 3164 §4.1: "The total length of the packet MUST be 1024 bytes or
/// less". HAProxy's default `len` is the same, so long request lines are cut
/// where HAProxy cuts them.
const DATAGRAM_MAX: usize = 1024;
/// Lines waiting for the stdout writer; past it, lines are dropped.
const STDOUT_QUEUE: usize = 4096;
/// The writer thread hands stdout this much at a time at most.
const STDOUT_BATCH: usize = 64 * 1024;
/// How long dropping a stdout [`Logger`] waits for queued lines to be written.
const STDOUT_DRAIN: Duration = Duration::from_secs(1);

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What one httplog line says (HAProxy's names). It borrows from the
/// request's state, so building one on the data path allocates nothing.
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
    /// 0 = no response was sent, printed as -1 like HAProxy.
    pub status: u16,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// Two-letter session state and two cookie flags, e.g. `*b"SC--"`.
    pub termination: [u8; 4],
    pub actconn: u64,
    pub feconn: u64,
    pub beconn: u64,
    pub srv_conn: u64,
    pub retries: u32,
    /// Printed as a `+` before `retries`.
    pub redispatched: bool,
    pub srv_queue: u64,
    pub backend_queue: u64,
    /// `GET /path HTTP/1.1`, or `<BADREQ>`; escaped when written.
    pub request_line: &'a str,
}

/// Writes `r` as HAProxy's httplog line (no syslog header, no newline), with
/// the accept date in local time:
/// `10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"`
pub fn format_httplog(r: &LogRecord, out: &mut String) {
    let date: DateTime<Local> = r.accept_date.into();
    write_httplog(r, &date.naive_local(), out);
}

/// [`format_httplog`] with the accept date at a fixed UTC offset.
pub fn format_httplog_with_offset(r: &LogRecord, offset: FixedOffset, out: &mut String) {
    let date: DateTime<Utc> = r.accept_date.into();
    write_httplog(r, &date.with_timezone(&offset).naive_local(), out);
}

fn write_httplog(r: &LogRecord, date: &NaiveDateTime, out: &mut String) {
    // Writing to a String cannot fail; the `let _` below discard `Ok(())`.
    // HAProxy prints the client as `ip:port` without IPv6 brackets.
    let _ = write!(out, "{}:{} [", r.client.ip(), r.client.port());
    let _ = write!(
        out,
        "{:02}/{}/{:04}:{:02}:{:02}:{:02}.{:03}",
        date.day(),
        MONTHS[date.month0() as usize],
        date.year(),
        date.hour(),
        date.minute(),
        date.second(),
        // A leap second shows as 1000+ ms in chrono; HAProxy has no such thing.
        (date.nanosecond() / 1_000_000).min(999),
    );
    let _ = write!(
        out,
        "] {} {}/{} {}/{}/{}/{}/{} ",
        r.frontend, r.backend, r.server, r.tq, r.tw, r.tc, r.tr, r.tt,
    );
    if r.status == 0 {
        out.push_str("-1");
    } else {
        let _ = write!(out, "{}", r.status);
    }
    // The two `-` are the captured request and response cookies, which vakt
    // does not capture.
    let _ = write!(out, " {} - - ", r.bytes);
    for &b in &r.termination {
        out.push(if b.is_ascii_graphic() {
            char::from(b)
        } else {
            '?'
        });
    }
    let _ = write!(
        out,
        " {}/{}/{}/{}/{}{} {}/{} \"",
        r.actconn,
        r.feconn,
        r.beconn,
        r.srv_conn,
        if r.redispatched { "+" } else { "" },
        r.retries,
        r.srv_queue,
        r.backend_queue,
    );
    push_escaped(out, r.request_line);
    out.push('"');
}

/// HAProxy's `url_encode_map` (log.c): `"`, `#`, control bytes and bytes
/// from 0x7f up are written as `#XX` in upper-case hex, so a request line
/// can never break the log line or forge another one.
fn push_escaped(out: &mut String, s: &str) {
    for b in s.bytes() {
        if !(0x20..0x7f).contains(&b) || b == b'"' || b == b'#' {
            let _ = write!(out, "#{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

/// RFC 3164 §4.1.2 TIMESTAMP, local time: `Feb  6 12:14:14` (day padded
/// with a space, not a zero).
fn push_syslog_date(out: &mut String, now: SystemTime) {
    let t: DateTime<Local> = now.into();
    let _ = write!(
        out,
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[t.month0() as usize],
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
}

/// This host's name as syslog headers carry it (RFC 3164 §4.1.2: no
/// domain); "localhost" when the kernel does not say.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|h| h.trim().split('.').next().map(str::to_string))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

thread_local! {
    /// Each thread formats its datagrams here, so syslog logging allocates
    /// nothing once the buffer has grown to the longest line seen.
    static DATAGRAM: RefCell<String> = RefCell::new(String::with_capacity(DATAGRAM_MAX));
}

#[derive(Debug)]
enum Sink {
    Off,
    Udp(UdpSocket),
    Stdout(StdoutSink),
}

#[derive(Debug)]
struct StdoutSink {
    /// Set to `None` when the logger is dropped, which closes the channel:
    /// the writer thread then writes what is queued and exits.
    lines: Option<SyncSender<String>>,
    /// Disconnects when the writer thread exits (it holds the sender). Only
    /// `Drop` reads it, through `get_mut`; the mutex just makes the logger
    /// `Sync` (a `Receiver` is not).
    finished: Mutex<Receiver<()>>,
    /// `" HOST vakt[PID]: "` for `stdout-rfc3164`, which puts a syslog
    /// header (priority, date, this) before each line; `None` = raw lines.
    syslog_tag: Option<String>,
}

/// Where log lines go: syslog over UDP, stdout, or nowhere. Shared by every
/// task behind an `Arc`; a call never blocks and never awaits.
#[derive(Debug)]
pub struct Logger {
    sink: Sink,
    /// Syslog facility code (local0 = 16); `<PRI>` = facility * 8 + severity.
    facility: u8,
    pid: u32,
    /// Lines lost: queue full, socket full, or the target refused them.
    /// Shared with the stdout writer thread, which counts failed writes.
    dropped: Arc<AtomicU64>,
}

impl Logger {
    pub fn new(target: &LogTarget, facility: u8) -> std::io::Result<Logger> {
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = match target {
            LogTarget::Off => Sink::Off,
            LogTarget::Udp(addr) => {
                let local = if addr.is_ipv4() {
                    SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
                } else {
                    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
                };
                let s = UdpSocket::bind(local)?;
                s.connect(addr)?;
                s.set_nonblocking(true)?;
                Sink::Udp(s)
            }
            LogTarget::Stdout | LogTarget::StdoutRfc3164 => {
                let (tx, rx) = sync_channel::<String>(STDOUT_QUEUE);
                let (done_tx, done_rx) = sync_channel::<()>(0);
                let counter = dropped.clone();
                std::thread::Builder::new()
                    .name("vakt-log".into())
                    .spawn(move || {
                        let _done = done_tx;
                        write_lines(&rx, &counter, |bytes| {
                            let mut out = std::io::stdout().lock();
                            out.write_all(bytes)?;
                            out.flush()
                        });
                    })?;
                Sink::Stdout(StdoutSink {
                    lines: Some(tx),
                    finished: Mutex::new(done_rx),
                    syslog_tag: (*target == LogTarget::StdoutRfc3164)
                        .then(|| format!(" {} vakt[{}]: ", hostname(), std::process::id())),
                })
            }
        };
        Ok(Logger {
            sink,
            facility,
            pid: std::process::id(),
            dropped,
        })
    }

    /// Whether lines go to stdout, which usually shares a file with stderr
    /// (an init script's `>>LOG 2>&1`): the caller then skips repeating an
    /// event on stderr.
    pub fn writes_to_stdout(&self) -> bool {
        matches!(self.sink, Sink::Stdout(_))
    }

    /// Lines lost so far because the sink was full or failing.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Logs one request at severity info.
    pub fn log(&self, r: &LogRecord) {
        self.emit(INFO, |out| format_httplog(r, out));
    }

    /// Logs an event (server state changes, reloads) at a syslog severity:
    /// [`ALERT`], [`ERR`], [`NOTICE`] or [`INFO`].
    pub fn event(&self, message: &str, severity: u8) {
        self.emit(severity, |out| out.push_str(message));
    }

    fn emit(&self, severity: u8, body: impl FnOnce(&mut String)) {
        match &self.sink {
            Sink::Off => {}
            Sink::Udp(socket) => {
                // `body` only formats (it never logs), so the buffer cannot
                // be borrowed twice on this thread.
                DATAGRAM.with_borrow_mut(|buf| {
                    buf.clear();
                    let pri = u16::from(self.facility) * 8 + u16::from(severity.min(7));
                    let _ = write!(buf, "<{pri}>");
                    push_syslog_date(buf, SystemTime::now());
                    let _ = write!(buf, " vakt[{}]: ", self.pid);
                    body(buf);
                    truncate_at_char(buf, DATAGRAM_MAX);
                    // WouldBlock (socket buffer full) or a refusal from the
                    // target (ICMP port unreachable, reported by a later
                    // send): either way the line is lost, and counted.
                    if socket.send(buf.as_bytes()).is_err() {
                        self.dropped.fetch_add(1, Relaxed);
                    }
                });
            }
            Sink::Stdout(StdoutSink {
                lines: Some(tx),
                syslog_tag,
                ..
            }) => {
                let mut line = String::with_capacity(256);
                if let Some(tag) = syslog_tag {
                    let pri = u16::from(self.facility) * 8 + u16::from(severity.min(7));
                    let _ = write!(line, "<{pri}>");
                    push_syslog_date(&mut line, SystemTime::now());
                    line.push_str(tag);
                }
                body(&mut line);
                line.push('\n');
                // Full (the writer is behind) or disconnected (it died):
                // never wait for it.
                if tx.try_send(line).is_err() {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
            Sink::Stdout(StdoutSink { lines: None, .. }) => {}
        }
    }
}

impl Drop for Logger {
    /// Lets the stdout writer finish what is queued ("Proxy stopping." and
    /// the last requests of a graceful stop), without ever hanging shutdown
    /// on a stdout that does not drain.
    fn drop(&mut self) {
        if let Sink::Stdout(s) = &mut self.sink {
            s.lines = None;
            let finished = s.finished.get_mut().unwrap_or_else(|e| e.into_inner());
            let _ = finished.recv_timeout(STDOUT_DRAIN);
        }
    }
}

/// The stdout writer thread's loop: takes every line already queued at once,
/// so a burst costs one write instead of one per line.
fn write_lines(
    rx: &Receiver<String>,
    dropped: &AtomicU64,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) {
    let mut batch = String::new();
    while let Ok(line) = rx.recv() {
        batch.push_str(&line);
        let mut lines = 1;
        while batch.len() < STDOUT_BATCH {
            match rx.try_recv() {
                Ok(line) => {
                    batch.push_str(&line);
                    lines += 1;
                }
                Err(_) => break,
            }
        }
        if write(batch.as_bytes()).is_err() {
            dropped.fetch_add(lines, Relaxed);
        }
        batch.clear();
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 \"GET /index.html HTTP/1.1\"";

    /// The record behind HAProxy's documented httplog example.
    fn record(line: &str) -> LogRecord<'_> {
        LogRecord {
            client: "10.0.1.2:33317".parse().unwrap(),
            // 2009-02-06 12:14:14.655 UTC.
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

    fn utc(r: &LogRecord) -> String {
        let mut out = String::new();
        format_httplog_with_offset(r, FixedOffset::east_opt(0).unwrap(), &mut out);
        out
    }

    #[test]
    fn the_httplog_layout_is_haproxys() {
        assert_eq!(utc(&record("GET /index.html HTTP/1.1")), EXAMPLE);
    }

    #[test]
    fn the_accept_date_follows_the_offset_and_local_time() {
        let r = record("GET / HTTP/1.1");
        let mut east = String::new();
        format_httplog_with_offset(&r, FixedOffset::east_opt(3600).unwrap(), &mut east);
        assert!(east.contains(" [06/Feb/2009:13:14:14.655] "), "{east}");
        let mut local = String::new();
        format_httplog(&r, &mut local);
        let offset = *DateTime::<Local>::from(r.accept_date).offset();
        let mut expected = String::new();
        format_httplog_with_offset(&r, offset, &mut expected);
        assert_eq!(local, expected);
    }

    #[test]
    fn unreached_stages_redispatch_and_no_response_print_like_haproxy() {
        let mut r = record("GET / HTTP/1.1");
        r.client = "[::1]:8080".parse().unwrap();
        r.server = "<NOSRV>";
        (r.tc, r.tr, r.tt) = (-1, -1, 3003);
        r.status = 0;
        r.termination = *b"CD--";
        (r.retries, r.redispatched) = (3, true);
        let line = utc(&r);
        assert!(
            line.starts_with("::1:8080 [06/Feb/2009:12:14:14.655] http-in static/<NOSRV> 10/0/-1/-1/3003 -1 2750 - - CD-- 1/1/1/1/+3 0/0 "),
            "{line}"
        );
    }

    #[test]
    fn request_lines_are_escaped() {
        let line = utc(&record("GET /a\"b#c\x01\x7f\té HTTP/1.1"));
        assert!(
            line.ends_with(" \"GET /a#22b#23c#01#7F#09#C3#A9 HTTP/1.1\""),
            "{line}"
        );
    }

    #[test]
    fn syslog_datagrams_carry_priority_date_tag_and_line() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let logger = Logger::new(&LogTarget::Udp(rx.local_addr().unwrap()), 16).unwrap();
        logger.log(&record("GET /index.html HTTP/1.1"));
        logger.event("Server app/web01 is DOWN", ALERT);
        let mut buf = [0u8; 2048];

        let n = rx.recv(&mut buf).unwrap();
        let s = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(s.starts_with("<134>"), "local0.info: {s}");
        // `<134>Feb  6 12:14:14 vakt[42]: ` then the line.
        let date = &s[5..20];
        assert!(MONTHS.contains(&&date[..3]), "{s}");
        assert_eq!(&date[3..4], " ", "{s}");
        assert!(date[4..6].trim_start().parse::<u8>().is_ok(), "{s}");
        assert_eq!(date.as_bytes()[9], b':', "{s}");
        let rest = &s[20..];
        let tag = format!(" vakt[{}]: ", std::process::id());
        assert!(rest.starts_with(&tag), "{s}");
        let line = &rest[tag.len()..];
        let mut expected = String::new();
        format_httplog(&record("GET /index.html HTTP/1.1"), &mut expected);
        assert_eq!(line, expected);

        let n = rx.recv(&mut buf).unwrap();
        let s = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(s.starts_with("<129>"), "local0.alert: {s}");
        assert!(s.ends_with("]: Server app/web01 is DOWN"), "{s}");
        assert_eq!(logger.dropped(), 0);
    }

    #[test]
    fn syslog_datagrams_stop_at_1024_bytes() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let logger = Logger::new(&LogTarget::Udp(rx.local_addr().unwrap()), 16).unwrap();
        let long = format!("GET /{} HTTP/1.1", "a".repeat(3000));
        logger.log(&record(&long));
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, DATAGRAM_MAX);
        assert!(buf[..n].ends_with(b"aaaa"));
    }

    #[test]
    fn a_truncated_line_never_splits_a_character() {
        let mut s = "é".repeat(10);
        truncate_at_char(&mut s, 5);
        assert_eq!(s, "éé");
    }

    #[test]
    fn an_off_logger_sends_nothing() {
        let logger = Logger::new(&LogTarget::Off, 16).unwrap();
        logger.log(&record("GET / HTTP/1.1"));
        logger.event("x", NOTICE);
        assert_eq!(logger.dropped(), 0);
    }

    #[test]
    fn stdout_lines_are_batched_and_written_without_a_header() {
        let (tx, rx) = sync_channel::<String>(8);
        for l in ["one\n", "two\n", "three\n"] {
            tx.send(l.into()).unwrap();
        }
        drop(tx);
        let (mut writes, dropped) = (Vec::new(), AtomicU64::new(0));
        write_lines(&rx, &dropped, |b| {
            writes.push(String::from_utf8(b.to_vec()).unwrap());
            Ok(())
        });
        assert_eq!(writes, ["one\ntwo\nthree\n"]);
        assert_eq!(dropped.load(Relaxed), 0);
    }

    #[test]
    fn failed_stdout_writes_are_counted() {
        let (tx, rx) = sync_channel::<String>(8);
        tx.send("one\n".into()).unwrap();
        tx.send("two\n".into()).unwrap();
        drop(tx);
        let dropped = AtomicU64::new(0);
        write_lines(
            &rx,
            &dropped,
            |_| Err(std::io::ErrorKind::BrokenPipe.into()),
        );
        assert_eq!(dropped.load(Relaxed), 2);
    }

    #[test]
    fn a_full_stdout_queue_drops_and_counts_instead_of_blocking() {
        let (tx, rx) = sync_channel::<String>(1);
        let (done_tx, done_rx) = sync_channel::<()>(0);
        // No writer thread: nothing drains the queue.
        drop(done_tx);
        let logger = Logger {
            sink: Sink::Stdout(StdoutSink {
                lines: Some(tx),
                finished: Mutex::new(done_rx),
                syslog_tag: None,
            }),
            facility: 16,
            pid: 1,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        logger.log(&record("GET /1 HTTP/1.1"));
        logger.log(&record("GET /2 HTTP/1.1"));
        logger.event("Proxy stopping.", NOTICE);
        assert_eq!(logger.dropped(), 2);
        let mut first = String::new();
        format_httplog(&record("GET /1 HTTP/1.1"), &mut first);
        first.push('\n');
        assert_eq!(rx.try_recv().unwrap(), first);
    }

    #[test]
    fn stdout_rfc3164_lines_carry_the_five_fields_halog_skips() {
        let (tx, rx) = sync_channel::<String>(4);
        let (done_tx, done_rx) = sync_channel::<()>(0);
        drop(done_tx);
        let logger = Logger {
            sink: Sink::Stdout(StdoutSink {
                lines: Some(tx),
                finished: Mutex::new(done_rx),
                syslog_tag: Some(" lb1 vakt[7]: ".into()),
            }),
            facility: 16,
            pid: 7,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        logger.log(&record("GET /1 HTTP/1.1"));
        let line = rx.try_recv().unwrap();
        let mut httplog = String::new();
        format_httplog(&record("GET /1 HTTP/1.1"), &mut httplog);
        // `<134>Dec  1 15:04:41 lb1 vakt[7]: ` as HAProxy's `log stdout
        // format rfc3164 local0` writes it: local0.info, then the line.
        assert!(line.starts_with("<134>"), "{line}");
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[3..5], ["lb1", "vakt[7]:"], "{line}");
        assert_eq!(fields[5..].join(" "), httplog.trim_end(), "{line}");
    }

    #[test]
    fn a_logger_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Logger>();
    }
}
