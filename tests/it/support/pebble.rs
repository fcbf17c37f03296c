//! A real ACME server for the tests: Debian's `pebble` (RFC 8555, made for
//! testing clients) on loopback, with `pebble-challtestsrv` as its DNS so
//! that the test's domains resolve to the LB under test and nothing else.
//! Its API speaks HTTPS with a certificate made here (`ca`); what it issues
//! chains to a root it makes at start (`root`). In the lab it runs inside
//! the control namespace (`start_in`), on that namespace's address on the
//! lab's private network, so the LBs reach its API and it validates through
//! the VIP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, free_addr};

pub struct Pebble {
    children: Vec<Child>,
    pub dir: TempDir,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA of pebble's own HTTPS (what `[tls] acme.ca_file` names).
    pub ca: PathBuf,
    management: SocketAddr,
    /// The network namespace it runs in (`None`: this one).
    netns: Option<String>,
}

/// Where pebble runs: a namespace and an address in it.
pub struct Place<'a> {
    pub netns: &'a str,
    pub ip: std::net::IpAddr,
}

impl Pebble {
    /// Pebble on loopback, validating HTTP-01 on `http_port` of
    /// `resolve_to` (every name resolves there), issuing certificates valid
    /// `validity` seconds.
    pub fn start(http_port: u16, resolve_to: &str, validity: u64) -> Pebble {
        Self::start_in(None, http_port, resolve_to, validity)
    }

    /// Pebble at `place` (a namespace of the test's own, where fixed ports
    /// are free), or on loopback when `None`.
    pub fn start_in(
        place: Option<Place<'_>>,
        http_port: u16,
        resolve_to: &str,
        validity: u64,
    ) -> Pebble {
        let dir = TempDir::new("pebble");
        let mut next_port = 14000;
        let mut addr = || match &place {
            Some(p) => {
                next_port += 1;
                SocketAddr::new(p.ip, next_port)
            }
            None => free_addr(),
        };
        let netns = place.as_ref().map(|p| p.netns.to_string());
        let command = |program: &str| in_netns(netns.as_deref(), program);
        let api = addr();
        let management = addr();
        let ca = super::pem::ca_signed(
            dir.path(),
            "api",
            &[
                "localhost",
                &format!("IP:{}", api.ip()),
                &format!("IP:{}", management.ip()),
            ],
        );
        let dns = addr();
        let tls = addr();
        let challtest_management = addr();
        let config = dir.path().join("pebble.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble": {{"listenAddress": "{api}", "managementListenAddress": "{management}",
  "certificate": "{crt}", "privateKey": "{key}", "httpPort": {http_port}, "tlsPort": {tls},
  "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "certificateValidityPeriod": {validity}}}}}"#,
                crt = dir.path().join("api.crt").display(),
                key = dir.path().join("api.key").display(),
                tls = tls.port(),
            ),
        )
        .unwrap();
        let log =
            |name: &str| std::fs::File::create(dir.path().join(name)).expect("pebble log file");
        let dns_srv = command("pebble-challtestsrv")
            .args(["-dns01", &dns.to_string(), "-http01", "", "-https01", ""])
            .args(["-tlsalpn01", "", "-management"])
            .arg(challtest_management.to_string())
            .args(["-defaultIPv4", resolve_to, "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = command("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &dns.to_string()])
            // No random pauses before validating, no rejected nonces, a
            // fresh authorization per order (so every order is validated).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let p = Pebble {
            children: vec![pebble, dns_srv],
            directory: format!("https://{api}/dir"),
            ca,
            dir,
            management,
            netns,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.curl(&p.directory).is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble did not answer at {}: {}",
                p.directory,
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn curl(&self, url: &str) -> Result<String, String> {
        let out = in_netns(self.netns.as_deref(), "curl")
            .args(["-sSf", "--max-time", "5", "--cacert"])
            .arg(&self.ca)
            .arg(url)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The root its certificates chain to, written as `root.pem`.
    pub fn root(&self) -> PathBuf {
        let pem = self
            .curl(&format!("https://{}/roots/0", self.management))
            .expect("pebble's root");
        let path = self.dir.path().join("root.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }

    /// What pebble logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

/// `program` run in network namespace `netns` (`ip netns exec` execs it, so
/// killing the child kills the program), or here.
fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
