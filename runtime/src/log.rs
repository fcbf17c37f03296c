//! Request logging in HAProxy's httplog format, to syslog (UDP or a unix
//! datagram socket such as /dev/log, RFC 3164 or RFC 5424 headers), stdout
//! or vakt's own file, without ever blocking the data path: datagrams go out
//! on non-blocking sockets and stdout or file lines through a bounded queue
//! to a writer thread; when either is full the line is dropped and counted.
//! Client addresses can be cut to their network (`anonymize`). Deciding what
//! to log (`dontlognull`, timers, termination state) is the proxy's job;
//! internal diagnostics go through `tracing`, not here.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDateTime, Timelike, Utc};

use crate::config::{LogTarget, SyslogFormat};

/// Syslog severities (RFC 3164 §4.1.1) that vakt uses, for [`Logger::event`].
pub const ALERT: u8 = 1;
pub const ERR: u8 = 3;
pub const NOTICE: u8 = 5;
pub const INFO: u8 = 6;

/// RFC 3164 §4.1: "The total length of the packet MUST be 1024 bytes or
/// less". HAProxy's default `len` is the same, so long request lines are cut
/// where HAProxy cuts them.
const DATAGRAM_MAX: usize = 1024;
/// Lines waiting for the stdout or file writer; past it, lines are dropped.
const LINE_QUEUE: usize = 4096;
/// The writer thread hands stdout or the file this much at a time at most.
const LINE_BATCH: usize = 64 * 1024;
/// How long dropping a line [`Logger`] waits for queued lines to be written.
const LINE_DRAIN: Duration = Duration::from_secs(1);
/// vakt's own log files: never world-readable (client addresses are
/// personal data).
pub const FILE_MODE: u32 = 0o640;

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

/// `ip` cut to its network, for logs that must not identify a person: the
/// /24 of an IPv4 address (`192.0.2.77` → `192.0.2.0`), the /48 of an IPv6
/// one (a site's prefix under RFC 6177), and an IPv4-mapped IPv6 address
/// as the IPv4 address it carries.
pub fn anonymize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(Ipv4Addr::from(u32::from(v4) & 0xffff_ff00).to_ipv6_mapped()),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 48))),
        },
    }
}

/// A client's address as a log may show it: cut to its network when
/// `anonymize` is on (the port stays: it identifies no one).
pub fn shown(client: SocketAddr, anonymize: bool) -> SocketAddr {
    if anonymize {
        SocketAddr::new(self::anonymize(client.ip()), client.port())
    } else {
        client
    }
}

/// Writes `r` as HAProxy's httplog line (no syslog header, no newline), with
/// the accept date in local time:
/// `10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET /index.html HTTP/1.1"`
pub fn format_httplog(r: &LogRecord, out: &mut String) {
    let date: DateTime<Local> = r.accept_date.into();
    write_httplog(r, r.client, &date.naive_local(), out);
}

/// [`format_httplog`] with the accept date at a fixed UTC offset.
pub fn format_httplog_with_offset(r: &LogRecord, offset: FixedOffset, out: &mut String) {
    let date: DateTime<Utc> = r.accept_date.into();
    write_httplog(r, r.client, &date.with_timezone(&offset).naive_local(), out);
}

fn write_httplog(r: &LogRecord, client: SocketAddr, date: &NaiveDateTime, out: &mut String) {
    // Writing to a String cannot fail; the `let _` below discard `Ok(())`.
    // HAProxy prints the client as `ip:port` without IPv6 brackets.
    let _ = write!(out, "{}:{} [", client.ip(), client.port());
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
fn push_rfc3164_date(out: &mut String, now: SystemTime) {
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

/// RFC 5424 §6.2.3 TIMESTAMP as HAProxy writes it: local time with
/// microseconds and the offset, `2026-12-02T09:01:02.123456+00:00`.
fn push_rfc5424_date(out: &mut String, now: SystemTime) {
    let t: DateTime<Local> = now.into();
    let _ = write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.6f%:z"));
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

/// What goes before each line, by [`SyslogFormat`].
#[derive(Debug)]
struct Header {
    format: SyslogFormat,
    /// Syslog facility code (local0 = 16); `<PRI>` = facility * 8 + severity.
    facility: u8,
    host: String,
    pid: u32,
}

impl Header {
    /// Writes the header. `with_host`: whether an RFC 3164 header names the
    /// host. HAProxy leaves it out of datagrams, where the daemon adds it
    /// (measured, HAProxy 2.6: `<134>Dec  2 09:20:50 haproxy[1980]: ...`),
    /// and writes it on stdout. RFC 5424 always has a HOSTNAME field; vakt
    /// fills it where HAProxy writes `-` unless `log-send-hostname`.
    fn push(&self, out: &mut String, severity: u8, now: SystemTime, with_host: bool) {
        let pri = u16::from(self.facility) * 8 + u16::from(severity.min(7));
        match self.format {
            SyslogFormat::Raw => {}
            SyslogFormat::Rfc3164 => {
                let _ = write!(out, "<{pri}>");
                push_rfc3164_date(out, now);
                if with_host {
                    let _ = write!(out, " {}", self.host);
                }
                let _ = write!(out, " vakt[{}]: ", self.pid);
            }
            SyslogFormat::Rfc5424 => {
                let _ = write!(out, "<{pri}>1 ");
                push_rfc5424_date(out, now);
                // APP-NAME, PROCID, then no MSGID and no STRUCTURED-DATA.
                let _ = write!(out, " {} vakt {} - - ", self.host, self.pid);
            }
        }
    }
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
    Unix(UnixSink),
    Lines(LineSink),
}

/// A syslog daemon's unix datagram socket. The socket is unbound and each
/// datagram names the path, so a daemon that restarts (and makes its socket
/// anew) gets the next line without vakt reconnecting.
#[derive(Debug)]
struct UnixSink {
    socket: UnixDatagram,
    path: PathBuf,
    /// Set once the "nothing listens there" warning went out: one warning,
    /// not one per request.
    warned: AtomicBool,
}

/// Stdout or vakt's own file, written by a thread of its own.
#[derive(Debug)]
struct LineSink {
    /// Set to `None` when the logger is dropped, which closes the channel:
    /// the writer thread then writes what is queued and exits.
    lines: Option<SyncSender<String>>,
    /// Disconnects when the writer thread exits (it holds the sender). Only
    /// `Drop` reads it, through `get_mut`; the mutex just makes the logger
    /// `Sync` (a `Receiver` is not).
    finished: Mutex<Receiver<()>>,
    /// Set by [`Logger::reopen`]; the file writer opens its path again
    /// before its next write (after logrotate moved the file away).
    reopen: Arc<AtomicBool>,
    /// A file, not stdout.
    to_file: bool,
}

/// Where log lines go: syslog over UDP or a unix socket, stdout, a file, or
/// nowhere. Shared by every task behind an `Arc`; a call never blocks and
/// never awaits.
#[derive(Debug)]
pub struct Logger {
    sink: Sink,
    header: Header,
    /// Client addresses cut to their network ([`anonymize`]).
    anonymize: bool,
    /// What it was made from: a reload with other settings makes a new one.
    settings: LogSettings,
    /// Lines lost: queue full, socket full, or the target refused them.
    /// Shared with the writer thread, which counts failed writes.
    dropped: Arc<AtomicU64>,
}

/// What [`Logger::new`] needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub target: LogTarget,
    pub format: SyslogFormat,
    pub facility: u8,
    pub anonymize: bool,
}

impl LogSettings {
    pub fn of(g: &crate::config::Global) -> LogSettings {
        LogSettings {
            target: g.log.clone(),
            format: g.syslog_format,
            facility: g.log_facility,
            anonymize: g.log_anonymize,
        }
    }

    /// Raw lines nowhere: for tests and tools that need a logger.
    pub fn off() -> LogSettings {
        LogSettings {
            target: LogTarget::Off,
            format: SyslogFormat::Raw,
            facility: 16,
            anonymize: false,
        }
    }
}

/// Opens (or creates) vakt's own log file for appending, mode 0640 also when
/// it existed with a wider one.
fn open_log_file(path: &Path) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

impl Logger {
    pub fn new(settings: &LogSettings) -> std::io::Result<Logger> {
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = match &settings.target {
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
            LogTarget::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                let warned = AtomicBool::new(false);
                if !path.exists() {
                    warned.store(true, Relaxed);
                    tracing::warn!(
                        path = %path.display(),
                        "no syslog socket there (is a syslog daemon running?): log lines are dropped until one listens"
                    );
                }
                Sink::Unix(UnixSink {
                    socket,
                    path: path.clone(),
                    warned,
                })
            }
            LogTarget::Stdout => Sink::Lines(spawn_writer(&dropped, None)?),
            LogTarget::File(path) => {
                let file = open_log_file(path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("log file {}: {e}", path.display()))
                })?;
                Sink::Lines(spawn_writer(&dropped, Some((path.clone(), file)))?)
            }
        };
        Ok(Logger {
            sink,
            header: Header {
                format: settings.format,
                facility: settings.facility,
                host: hostname(),
                pid: std::process::id(),
            },
            anonymize: settings.anonymize,
            settings: settings.clone(),
            dropped,
        })
    }

    /// Whether lines go to stdout, which usually shares a file with stderr
    /// (an init script's `>>LOG 2>&1`): the caller then skips repeating an
    /// event on stderr.
    pub fn writes_to_stdout(&self) -> bool {
        matches!(&self.sink, Sink::Lines(l) if !l.to_file)
    }

    /// The settings it was made from.
    pub fn settings(&self) -> &LogSettings {
        &self.settings
    }

    /// Whether client addresses are cut to their network.
    pub fn anonymizes(&self) -> bool {
        self.anonymize
    }

    /// Lines lost so far because the sink was full or failing.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Makes a file logger open its path again before its next line (after
    /// logrotate renamed the file); nothing for other targets.
    pub fn reopen(&self) {
        if let Sink::Lines(l) = &self.sink {
            l.reopen.store(true, Relaxed);
        }
    }

    /// Logs one request at severity info.
    pub fn log(&self, r: &LogRecord) {
        let client = shown(r.client, self.anonymize);
        self.emit(INFO, |out| {
            let date: DateTime<Local> = r.accept_date.into();
            write_httplog(r, client, &date.naive_local(), out)
        });
    }

    /// Logs an event (server state changes, reloads) at a syslog severity:
    /// [`ALERT`], [`ERR`], [`NOTICE`] or [`INFO`].
    pub fn event(&self, message: &str, severity: u8) {
        self.emit(severity, |out| out.push_str(message));
    }

    /// One datagram: header, `body`, cut to `len` with its newline, handed
    /// to `send`.
    fn datagram(
        &self,
        severity: u8,
        body: impl FnOnce(&mut String),
        send: impl FnOnce(&[u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        // `body` only formats (it never logs), so the buffer cannot be
        // borrowed twice on this thread.
        DATAGRAM.with_borrow_mut(|buf| {
            buf.clear();
            self.header.push(buf, severity, SystemTime::now(), false);
            body(buf);
            // HAProxy ends each datagram with a newline, within `len`.
            truncate_at_char(buf, DATAGRAM_MAX - 1);
            buf.push('\n');
            send(buf.as_bytes())
        })
    }

    fn emit(&self, severity: u8, body: impl FnOnce(&mut String)) {
        match &self.sink {
            Sink::Off => {}
            Sink::Udp(socket) => {
                // WouldBlock (socket buffer full) or a refusal from the
                // target (ICMP port unreachable, reported by a later
                // send): either way the line is lost, and counted.
                if self.datagram(severity, body, |b| socket.send(b)).is_err() {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
            Sink::Unix(u) => {
                // WouldBlock: the daemon's queue is full; NotFound or
                // ConnectionRefused: no daemon there (yet, or any more).
                if let Err(e) = self.datagram(severity, body, |b| u.socket.send_to(b, &u.path)) {
                    self.dropped.fetch_add(1, Relaxed);
                    if e.kind() != std::io::ErrorKind::WouldBlock && !u.warned.swap(true, Relaxed) {
                        tracing::warn!(
                            path = %u.path.display(),
                            cause = %e,
                            "cannot send to the syslog socket: log lines are dropped (warned once)"
                        );
                    }
                }
            }
            Sink::Lines(LineSink {
                lines: Some(tx), ..
            }) => {
                let mut line = String::with_capacity(256);
                self.header
                    .push(&mut line, severity, SystemTime::now(), true);
                body(&mut line);
                line.push('\n');
                // Full (the writer is behind) or disconnected (it died):
                // never wait for it.
                if tx.try_send(line).is_err() {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
            Sink::Lines(LineSink { lines: None, .. }) => {}
        }
    }
}

/// Starts the writer thread for stdout (`file` = `None`) or a file.
fn spawn_writer(
    dropped: &Arc<AtomicU64>,
    file: Option<(PathBuf, File)>,
) -> std::io::Result<LineSink> {
    let (tx, rx) = sync_channel::<String>(LINE_QUEUE);
    let (done_tx, done_rx) = sync_channel::<()>(0);
    let counter = dropped.clone();
    let reopen = Arc::new(AtomicBool::new(false));
    let flag = reopen.clone();
    let to_file = file.is_some();
    std::thread::Builder::new()
        .name("vakt-log".into())
        .spawn(move || {
            let _done = done_tx;
            match file {
                None => write_lines(&rx, &counter, |bytes| {
                    let mut out = std::io::stdout().lock();
                    out.write_all(bytes)?;
                    out.flush()
                }),
                Some((path, mut f)) => write_lines(&rx, &counter, |bytes| {
                    if flag.swap(false, Relaxed) {
                        match open_log_file(&path) {
                            Ok(new) => f = new,
                            Err(e) => tracing::warn!(
                                path = %path.display(),
                                cause = %e,
                                "cannot reopen the log file; still writing the old one"
                            ),
                        }
                    }
                    f.write_all(bytes)
                }),
            }
        })?;
    Ok(LineSink {
        lines: Some(tx),
        finished: Mutex::new(done_rx),
        reopen,
        to_file,
    })
}

impl Drop for Logger {
    /// Lets the writer finish what is queued ("Proxy stopping." and the
    /// last requests of a graceful stop), without ever hanging shutdown on a
    /// stdout that does not drain.
    fn drop(&mut self) {
        if let Sink::Lines(s) = &mut self.sink {
            s.lines = None;
            let finished = s.finished.get_mut().unwrap_or_else(|e| e.into_inner());
            let _ = finished.recv_timeout(LINE_DRAIN);
        }
    }
}

/// The writer thread's loop: takes every line already queued at once, so a
/// burst costs one write instead of one per line.
fn write_lines(
    rx: &Receiver<String>,
    dropped: &AtomicU64,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) {
    let mut batch = String::new();
    while let Ok(line) = rx.recv() {
        batch.push_str(&line);
        let mut lines = 1;
        while batch.len() < LINE_BATCH {
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

    fn udp_logger(rx: &UdpSocket, format: SyslogFormat) -> Logger {
        Logger::new(&LogSettings {
            target: LogTarget::Udp(rx.local_addr().unwrap()),
            format,
            facility: 16,
            anonymize: false,
        })
        .unwrap()
    }

    /// A line logger with no writer thread: lines stay in the queue for
    /// the test to read (host "lb1", pid 7).
    fn queued(
        tx: SyncSender<String>,
        done_rx: Receiver<()>,
        format: SyslogFormat,
        anonymize: bool,
    ) -> Logger {
        Logger {
            sink: Sink::Lines(LineSink {
                lines: Some(tx),
                finished: Mutex::new(done_rx),
                reopen: Arc::new(AtomicBool::new(false)),
                to_file: false,
            }),
            header: Header {
                format,
                facility: 16,
                host: "lb1".into(),
                pid: 7,
            },
            anonymize,
            settings: LogSettings::off(),
            dropped: Arc::new(AtomicU64::new(0)),
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
        let logger = udp_logger(&rx, SyslogFormat::Rfc3164);
        logger.log(&record("GET /index.html HTTP/1.1"));
        logger.event("Server app/web01 is DOWN", ALERT);
        let mut buf = [0u8; 2048];

        let n = rx.recv(&mut buf).unwrap();
        let s = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim_end_matches('\n');
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
        let s = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim_end_matches('\n');
        assert!(s.starts_with("<129>"), "local0.alert: {s}");
        assert!(s.ends_with("]: Server app/web01 is DOWN"), "{s}");
        assert_eq!(logger.dropped(), 0);
    }

    #[test]
    fn a_truncated_line_never_splits_a_character() {
        let mut s = "é".repeat(10);
        truncate_at_char(&mut s, 5);
        assert_eq!(s, "éé");
    }

    #[test]
    fn an_off_logger_sends_nothing() {
        let logger = Logger::new(&LogSettings::off()).unwrap();
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
        let logger = queued(tx, done_rx, SyslogFormat::Raw, false);
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
        let logger = queued(tx, done_rx, SyslogFormat::Rfc3164, false);
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
    fn syslog_datagrams_end_in_a_newline_within_1024_bytes() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let logger = udp_logger(&rx, SyslogFormat::Rfc3164);
        let long = format!("GET /{} HTTP/1.1", "a".repeat(3000));
        logger.log(&record(&long));
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(n, DATAGRAM_MAX);
        assert!(buf[..n].ends_with(b"aaaa\n"));
    }

    #[test]
    fn rfc5424_datagrams_carry_version_timestamp_host_app_and_pid() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let logger = udp_logger(&rx, SyslogFormat::Rfc5424);
        logger.log(&record("GET / HTTP/1.1"));
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).unwrap();
        let s = std::str::from_utf8(&buf[..n]).unwrap();
        // <134>1 2026-12-02T09:01:02.123456+01:00 host vakt 42 - - LINE
        let f: Vec<&str> = s.splitn(8, ' ').collect();
        assert_eq!(f[0], "<134>1", "{s}");
        assert!(
            DateTime::parse_from_rfc3339(f[1]).is_ok() && f[1].len() == 32,
            "{s}"
        );
        assert_eq!(f[2], hostname(), "{s}");
        assert_eq!((f[3], f[5], f[6]), ("vakt", "-", "-"), "{s}");
        assert_eq!(f[4], std::process::id().to_string(), "{s}");
        let mut expected = String::new();
        format_httplog(&record("GET / HTTP/1.1"), &mut expected);
        assert_eq!(f[7], format!("{expected}\n"));
    }

    #[test]
    fn unix_datagrams_reach_a_syslog_socket_and_a_missing_one_is_counted() {
        let dir = std::env::temp_dir().join(format!("vakt-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let settings = LogSettings {
            target: LogTarget::Unix(path.clone()),
            format: SyslogFormat::Rfc3164,
            facility: 16,
            anonymize: false,
        };
        // Nothing listens yet: the line is lost and counted, no error.
        let early = Logger::new(&settings).unwrap();
        early.log(&record("GET /lost HTTP/1.1"));
        assert_eq!(early.dropped(), 1);
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The same logger reaches the daemon once it listens.
        early.log(&record("GET /found HTTP/1.1"));
        let mut buf = [0u8; 2048];
        let n = rx.recv(&mut buf).unwrap();
        let s = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(s.starts_with("<134>"), "{s}");
        assert!(s.ends_with("\"GET /found HTTP/1.1\"\n"), "{s}");
        assert_eq!(early.dropped(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_log_file_is_0640_and_is_reopened_after_a_rename() {
        let dir = std::env::temp_dir().join(format!("vakt-logfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let _ = std::fs::remove_file(&path);
        let logger = Logger::new(&LogSettings {
            target: LogTarget::File(path.clone()),
            format: SyslogFormat::Raw,
            facility: 16,
            anonymize: true,
        })
        .unwrap();
        assert!(!logger.writes_to_stdout());
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), FILE_MODE);
        logger.log(&record("GET /1 HTTP/1.1"));
        let wait_for = |p: &Path, want: &str| {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if std::fs::read_to_string(p).is_ok_and(|t| t.contains(want)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("{want} never reached {}", p.display());
        };
        wait_for(&path, "GET /1 ");
        // logrotate: rename, then the reload's reopen.
        let rotated = dir.join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        logger.reopen();
        logger.log(&record("GET /2 HTTP/1.1"));
        wait_for(&path, "GET /2 ");
        let old = std::fs::read_to_string(&rotated).unwrap();
        assert!(!old.contains("GET /2 "), "{old}");
        // anonymize: 10.0.1.2 is logged as its /24.
        assert!(old.starts_with("10.0.1.0:33317 ["), "{old}");
        assert_eq!(mode(&path), FILE_MODE);
        drop(logger);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn anonymize_keeps_the_network_only() {
        for (ip, net) in [
            ("192.0.2.77", "192.0.2.0"),
            ("203.0.113.255", "203.0.113.0"),
            ("2001:db8:1234:5678::1", "2001:db8:1234::"),
            ("::ffff:198.51.100.9", "::ffff:198.51.100.0"),
        ] {
            assert_eq!(anonymize(ip.parse().unwrap()).to_string(), net, "{ip}");
        }
        let (tx, rx) = sync_channel::<String>(4);
        let (done_tx, done_rx) = sync_channel::<()>(0);
        drop(done_tx);
        let logger = queued(tx, done_rx, SyslogFormat::Raw, true);
        logger.log(&record("GET / HTTP/1.1"));
        assert!(rx.try_recv().unwrap().starts_with("10.0.1.0:33317 ["));
    }

    #[test]
    fn a_logger_can_be_shared_between_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Logger>();
    }
}
