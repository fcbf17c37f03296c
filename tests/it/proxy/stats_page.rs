//! The HTML stats page as a person sees it: its headers and markup load
//! nothing external, and headless Chromium (no script allowed) logs in with
//! Basic auth and takes screenshots, kept under `target/test-artefacts/`,
//! whose rows carry HAProxy 2.6's colours at desktop and phone widths.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::chromium::{Shot, artefacts, screenshot, try_screenshot};
use crate::support::{Backend, Conn, Proxy, TempDir, eventually, free_addr, get, needs};

const USER: &str = "admin";
const PASSWORD: &str = "SuperSecret";

/// HAProxy 2.6's row colours (its stats page's `.active_up`, `.active_down`,
/// `.maintain`, `.active_draining` and `.backup_up`), as RGB.
const UP: [u8; 3] = [0xc0, 0xff, 0xc0];
const DOWN: [u8; 3] = [0xff, 0x90, 0x90];
const MAINT: [u8; 3] = [0xc0, 0x78, 0x20];
const DRAIN: [u8; 3] = [0x20, 0xa0, 0xff];
const BACKUP_UP: [u8; 3] = [0xb0, 0xd0, 0xff];

/// A proxy with stats behind Basic auth in front of web01..web05, brought
/// to one state per server: UP, DOWN (failing its check), MAINT, DRAIN and
/// a backup UP.
struct Page {
    proxy: Proxy,
    _backends: Vec<Backend>,
    _dir: TempDir,
}

impl Page {
    fn start() -> Self {
        let backends: Vec<Backend> = (1..=5)
            .map(|i| Backend::spawn(&format!("web0{i}")))
            .collect();
        let dir = TempDir::new("stats-page");
        let admin = dir.path().join("admin.sock");
        let addr = free_addr();
        let hash = vakt_runtime::auth::hash_password(PASSWORD);
        let mut toml = format!(
            r#"[global]
log = "off"
admin_socket = "{}"

[[listen]]
name = "app"
bind = ["{addr}"]
stats = {{ uri = "/haproxy?stats", realm = "Strictly Private", users = ["{USER}:{hash}"], refresh = "5s", admin = true }}
"#,
            admin.display()
        );
        for (i, b) in backends.iter().enumerate() {
            toml.push_str(&format!(
                "\n[[listen.server]]\nname = \"{}\"\naddr = \"{}\"\nbackup = {}\n\
                 check = {{ path = \"/health\", interval = \"100ms\", rise = 1, fall = 1 }}\n",
                b.name,
                b.addr,
                i == 4
            ));
        }
        let proxy = Proxy::start(&toml, addr);
        let r = Conn::open(backends[1].addr)
            .send(b"POST /health/fail HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.status, 200);
        for (server, state) in [("web03", "maint"), ("web04", "drain")] {
            let out = proxy.admin(&admin, &format!("set server app/{server} state {state}"));
            assert_eq!(out.trim(), "", "{server}");
        }
        let page = Page {
            proxy,
            _backends: backends,
            _dir: dir,
        };
        let want = [
            ("web01", "UP"),
            ("web02", "DOWN"),
            ("web03", "MAINT"),
            ("web04", "DRAIN"),
            ("web05", "UP"),
        ];
        let reached = |csv: &str| {
            want.iter().all(|(server, status)| {
                csv.lines().any(|l| {
                    let cells: Vec<&str> = l.split(',').collect();
                    cells.len() > 17 && (cells[1], cells[17]) == (*server, *status)
                })
            })
        };
        assert!(
            eventually(Duration::from_secs(10), || reached(
                &page.get(";csv").text()
            )),
            "servers did not reach their states:\n{}",
            page.get(";csv").text()
        );
        page
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }

    fn get(&self, suffix: &str) -> crate::support::Resp {
        let auth = format!(
            "Basic {}",
            crate::support::base64(format!("{USER}:{PASSWORD}").as_bytes())
        );
        get(
            self.addr(),
            &format!("/haproxy?stats{suffix}"),
            &[("Authorization", &auth)],
        )
    }
}

#[test]
fn stats_page_loads_nothing_external_and_says_so_in_its_csp() {
    let page = Page::start();
    let r = page.get("");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-security-policy"),
        Some(vakt_runtime::stats::CSP)
    );
    let csp = vakt_runtime::stats::CSP;
    for directive in [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data:",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    let html = r.text();
    // Auto-refresh without script.
    assert!(
        html.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{html}"
    );
    // Nothing to fetch or run: no script, no URL with a scheme or a network
    // path, no stylesheet or font from elsewhere.
    for needle in [
        "<script", " src=", "http:", "https:", "\"//", "@import", "url(", "<link", "<iframe",
    ] {
        assert!(!html.contains(needle), "{needle} in the page:\n{html}");
    }
    // Every link stays on this page.
    for href in html.split("href=\"").skip(1) {
        assert!(href.starts_with("/haproxy?stats"), "link {href}");
    }
}

/// The server rows, top to bottom, carry HAProxy's colours over at least
/// `min` pixels of their width each.
fn assert_rows_coloured(shot: &Shot, path: &Path, min: usize) {
    let mut last = 0;
    for (state, colour) in [
        ("UP", UP),
        ("DOWN", DOWN),
        ("MAINT", MAINT),
        ("DRAIN", DRAIN),
        ("backup UP", BACKUP_UP),
    ] {
        let y = shot
            .first_row_with(colour, min)
            .unwrap_or_else(|| panic!("no {state} row ({colour:02x?}) in {}", path.display()));
        assert!(y > last, "{state} row at y={y} above the previous one");
        last = y;
    }
}

#[test]
#[cfg_attr(
    not(vakt_chromium),
    ignore = "needs chromium: apt-get install chromium (README: Tests)"
)]
fn stats_page_in_chromium_colours_rows_as_haproxy_at_desktop_and_phone_width() {
    needs::require("vakt_chromium");
    let page = Page::start();
    // Basic auth from the URL's user info, as a person would type it.
    let url = format!("http://{USER}:{PASSWORD}@{}/haproxy?stats", page.addr());
    let dir = artefacts();

    let desktop = dir.join("stats-page-1280.png");
    screenshot(&url, 1280, 900, &desktop);
    let shot = Shot::read(&desktop);
    assert_eq!((shot.width, shot.height), (1280, 900));
    // At 1280 px the whole table fits: each row is coloured across most of
    // the window.
    assert_rows_coloured(&shot, &desktop, 1000);

    let phone = dir.join("stats-page-390.png");
    screenshot(&url, 390, 844, &phone);
    let shot = Shot::read(&phone);
    assert_eq!((shot.width, shot.height), (390, 844));
    // On a phone the table scrolls sideways; the visible part of each row
    // still shows its colour.
    assert_rows_coloured(&shot, &phone, 200);

    // Without credentials (or with wrong ones) Chromium gets no page at all.
    let bare = format!("http://{USER}:wrong@{}/haproxy?stats", page.addr());
    let denied = dir.join("stats-page-denied.png");
    let err = try_screenshot(&bare, 1280, 900, &denied).expect_err("a page without login");
    assert!(err.contains("ERR_INVALID_AUTH_CREDENTIALS"), "{err}");
}

#[test]
fn stats_page_buttons_drain_and_ready_servers_with_a_csrf_token() {
    let page = Page::start();
    let html = page.get("").text();
    let token = html
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|t| t.split('"').next())
        .expect("a token in the page's forms")
        .to_string();
    assert!(html.contains("<button name=\"action\" value=\"ready\">Ready</button>"));
    let auth = format!(
        "Authorization: Basic {}\r\n",
        crate::support::base64(format!("{USER}:{PASSWORD}").as_bytes())
    );
    let post = |auth: &str, body: &str| {
        Conn::open(page.addr()).send(
            format!(
                "POST /haproxy?stats HTTP/1.1\r\nHost: t\r\n{auth}\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let status = |server: &str| {
        let csv = page.get(";csv").text();
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("app,{server},")))
            .unwrap_or_default()
            .to_string();
        line.split(',').nth(17).unwrap_or_default().to_string()
    };

    let r = post(&auth, &format!("token={token}&s=app%2Fweb01&action=drain"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/haproxy?stats"));
    assert_eq!(status("web01"), "DRAIN");
    let r = post(&auth, &format!("token={token}&s=app%2Fweb04&action=ready"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(status("web04"), "UP");
    // web01 drained, web02 down, web03 in maintenance: web04 takes it all.
    for _ in 0..4 {
        assert_eq!(get(page.addr(), "/", &[]).served_by(), "web04");
    }

    // A post from another site carries the login (the browser adds it) but
    // cannot know the token.
    let r = post(&auth, "s=app%2Fweb01&action=ready");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("reload the stats page"), "{}", r.text());
    let r = post(&auth, &format!("token={token}&s=app%2Fweb09&action=ready"));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("no server `app/web09`"), "{}", r.text());
    // Without the login nothing happens at all.
    let r = post("", &format!("token={token}&s=app%2Fweb01&action=ready"));
    assert_eq!(r.status, 401);
    assert_eq!(status("web01"), "DRAIN");
}

/// HAProxy 2.6's own page, in the same states, shows the colours this file
/// holds vakt's page to (and leaves a screenshot to compare by eye).
#[test]
#[cfg_attr(
    not(vakt_chromium_haproxy),
    ignore = "needs chromium and haproxy: apt-get install chromium haproxy (README: Tests)"
)]
fn haproxys_own_stats_page_has_the_colours_vakt_copies() {
    needs::require("vakt_chromium_haproxy");
    let backends: Vec<Backend> = (1..=5)
        .map(|i| Backend::spawn(&format!("web0{i}")))
        .collect();
    let dir = TempDir::new("haproxy-stats");
    let socket = dir.path().join("admin.sock");
    let addr = free_addr();
    let mut cfg = format!(
        "global\n  stats socket {} level admin\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
         listen app\n  bind {addr}\n  stats enable\n  stats uri /haproxy?stats\n  \
         stats auth {USER}:{PASSWORD}\n  option httpchk GET /health\n",
        socket.display()
    );
    for (i, b) in backends.iter().enumerate() {
        let extra = match i {
            2 => " disabled",
            4 => " backup",
            _ => "",
        };
        cfg.push_str(&format!(
            "  server {} {} check inter 100 rise 1 fall 1{extra}\n",
            b.name, b.addr
        ));
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut haproxy = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut haproxy);
    assert!(eventually(Duration::from_secs(10), || socket.exists()
        && std::net::TcpStream::connect(addr).is_ok()));
    let r = Conn::open(backends[1].addr)
        .send(b"POST /health/fail HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 200);
    {
        use std::io::{Read as _, Write as _};
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(b"set server app/web04 state drain\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert_eq!(answer.trim(), "", "haproxy: {answer}");
    }
    let auth = format!(
        "Basic {}",
        crate::support::base64(format!("{USER}:{PASSWORD}").as_bytes())
    );
    assert!(eventually(Duration::from_secs(10), || {
        get(addr, "/haproxy?stats;csv", &[("Authorization", &auth)])
            .text()
            .lines()
            .any(|l| l.starts_with("app,web02,") && l.split(',').nth(17) == Some("DOWN"))
    }));

    let out = artefacts().join("haproxy-stats-page-1280.png");
    let url = format!("http://{USER}:{PASSWORD}@{addr}/haproxy?stats");
    screenshot(&url, 1280, 900, &out);
    assert_rows_coloured(&Shot::read(&out), &out, 1000);
}
