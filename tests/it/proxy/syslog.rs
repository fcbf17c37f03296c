//! Request logs to a real syslog daemon: Debian's `rsyslogd`, run with a
//! config of its own (a unix socket in a temporary folder standing in for
//! `/dev/log`, a UDP port on loopback, one output file), never the
//! machine's. vakt's RFC 3164 and RFC 5424 lines must be parsed by it into
//! the right tag, app name, process id and message. (rsyslog reads RFC 5424
//! on a unix socket only with `UseSpecialParser="off"`: Debian's default
//! `/dev/log` input and journald's take RFC 3164, as README says.)

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Opts, cluster};
use crate::support::{TempDir, eventually, get, needs};

/// An rsyslogd in the foreground on `dir/log.sock` and `127.0.0.1:port`,
/// writing `TAG|APP-NAME|PROCID|MSG` per line to `dir/all.log`.
struct Rsyslog {
    child: Child,
    sock: PathBuf,
    udp: u16,
    out: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rsyslog {
    fn start(dir: &Path) -> Rsyslog {
        // A free UDP port: bound and let go (rsyslogd binds it next).
        let udp = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sock = dir.join("log.sock");
        let out = dir.join("all.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" UseSpecialParser="off")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="fields" type="string" string="%syslogtag%|%app-name%|%procid%|%syslogfacility-text%.%syslogseverity-text%|%msg%\n")
*.* action(type="omfile" file="{out}" template="fields")
"#,
                dir = dir.display(),
                sock = sock.display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run rsyslogd");
        assert!(
            eventually(Duration::from_secs(10), || sock.exists()),
            "rsyslogd did not make {}",
            sock.display()
        );
        Rsyslog {
            child,
            sock,
            udp,
            out,
        }
    }

    /// The output lines that contain `needle`, waiting up to 5 s for one.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let read = || {
            std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        eventually(Duration::from_secs(5), || !read().is_empty());
        read()
    }
}

/// A proxy logging to `log` with `format`, one request to `path`.
fn request_through(log: &str, format: &str, path: &str) {
    let global =
        format!("log = \"{log}\"\nsyslog_format = \"{format}\"\nlog_facility = \"local0\"");
    let c = cluster(Opts {
        global: &global,
        ..Opts::default()
    });
    // The demo backend's 404 is as good a request line as any.
    let r = get(c.proxy.addr, path, &[]);
    assert_eq!(r.status, 404);
}

#[test]
#[cfg_attr(
    not(vakt_rsyslog),
    ignore = "needs rsyslogd: apt-get install rsyslog (README: Tests)"
)]
fn rsyslog_reads_vakts_lines_over_its_unix_socket_and_udp_in_both_formats() {
    needs::require("vakt_rsyslog");
    let dir = TempDir::new("rsyslog");
    let rs = Rsyslog::start(dir.path());
    let sock = format!("unix://{}", rs.sock.display());
    let udp = format!("udp://127.0.0.1:{}", rs.udp);
    for (log, format, path) in [
        (&sock, "rfc3164", "/via-unix-3164"),
        (&sock, "rfc5424", "/via-unix-5424"),
        (&udp, "rfc3164", "/via-udp-3164"),
        (&udp, "rfc5424", "/via-udp-5424"),
    ] {
        request_through(log, format, path);
        let lines = rs.lines_with(path);
        assert_eq!(lines.len(), 1, "{path}: {lines:?}");
        let f: Vec<&str> = lines[0].splitn(5, '|').collect();
        // TAG|APP-NAME|PROCID|FACILITY.SEVERITY|MSG: rsyslog found vakt's
        // name and pid where each format puts them.
        assert!(f[0].starts_with("vakt"), "{path}: {lines:?}");
        assert_eq!(f[1], "vakt", "{path}: {lines:?}");
        assert!(f[2].parse::<u32>().is_ok(), "{path}: {lines:?}");
        assert_eq!(f[3], "local0.info", "{path}: {lines:?}");
        // The message is the httplog line itself, client first.
        let msg = f[4].trim_start();
        assert!(msg.starts_with("127.0.0.1:"), "{path}: {lines:?}");
        assert!(
            msg.contains(&format!("\"GET {path} HTTP/1.1\"")),
            "{path}: {lines:?}"
        );
    }
}
