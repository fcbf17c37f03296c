//! Colour codes only on a terminal: stderr to a file (as the local cluster's
//! init script sends the proxy's) holds no ANSI escapes, and the proxy says
//! it started once, not once per stream.

use crate::proxy::{Opts, cluster};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{eventually, free_addr, vakt};

#[test]
fn proxy_log_file_has_no_escape_codes_and_says_started_once() {
    // The local cluster's proxy.toml logs to stdout; the init script sends
    // stdout and stderr to one file, which is what `Proxy::start` does too.
    let c = cluster(Opts {
        global: "log = \"stdout\"",
        ..Default::default()
    });
    assert!(
        eventually(Duration::from_secs(5), || c
            .proxy
            .output()
            .contains("started")),
        "{}",
        c.proxy.output()
    );
    let log = c.proxy.output();
    assert!(!log.contains('\u{1b}'), "ANSI escape in proxy.log:\n{log}");
    let started = log.lines().filter(|l| l.contains("started")).count();
    assert_eq!(started, 1, "{log}");
}

#[test]
fn verbose_stderr_to_a_file_has_no_escape_codes() {
    let dir = super::tmp("colour");
    let err = dir.path().join("stderr");
    let cfg = dir.path().join("proxy.toml");
    let addr = free_addr();
    let backend = free_addr();
    std::fs::write(
        &cfg,
        format!(
            "[global]\nlog = \"off\"\n\n[[listen]]\nname = \"app\"\nbind = [\"{addr}\"]\n\n[[listen.server]]\nname = \"a\"\naddr = \"{backend}\"\n"
        ),
    )
    .unwrap();
    let mut child = vakt()
        .args(["-vv", "proxy", "--config"])
        .arg(&cfg)
        .env_remove("NO_COLOR")
        .env_remove("VAKT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&err).unwrap_or_default();
    let up = eventually(Duration::from_secs(10), || read().contains("started"));
    let _ = child.kill();
    let _ = child.wait();
    let text = read();
    assert!(up, "the proxy did not say it started:\n{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape in stderr:\n{text}");
}
