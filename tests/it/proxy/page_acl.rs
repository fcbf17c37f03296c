//! The stats and metrics pages' `allow` lists (TOML front end) on loopback:
//! the client picks its source address (any 127/8 address works there), so
//! one test is both an admin network and a stranger. A stranger gets
//! HAProxy's 403 before any login; an allowed client gets the login or the
//! page. (haproxy.cfg's spelling is in `haproxy::differential`, against
//! HAProxy itself.)

use std::net::IpAddr;

use crate::support::{Backend, Conn, Proxy, Resp, free_addr};

const ALLOWED: &str = "127.77.0.2";
const STRANGER: &str = "127.77.0.3";

fn get_from(from: &str, addr: std::net::SocketAddr, path: &str, auth: Option<&str>) -> Resp {
    let from: IpAddr = from.parse().unwrap();
    let auth = auth
        .map(|a| {
            format!(
                "Authorization: Basic {}\r\n",
                crate::support::base64(a.as_bytes())
            )
        })
        .unwrap_or_default();
    Conn::open_from(from, addr).send(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn only_allowed_networks_see_the_stats_and_metrics_pages() {
    let web = Backend::spawn("web01");
    let (addr, metrics) = (free_addr(), free_addr());
    let hash = vakt_runtime::auth::hash_password("pw");
    let toml = format!(
        r#"[global]
log = "off"

[[listen]]
name = "app"
bind = ["{addr}"]
stats = {{ uri = "/haproxy?stats", users = ["admin:{hash}"], allow = ["{ALLOWED}", "10.0.0.0/8"] }}

[[listen.server]]
name = "web01"
addr = "{}"

[[listen]]
name = "prometheus"
bind = ["{metrics}"]
metrics = {{ uri = "/metrics", allow = ["127.77.0.0/30"] }}
"#,
        web.addr
    );
    let proxy = Proxy::start(&toml, addr);

    // A stranger: 403 with HAProxy's body, whatever the credentials.
    for auth in [None, Some("admin:pw")] {
        let r = get_from(STRANGER, addr, "/haproxy?stats", auth);
        assert_eq!(r.status, 403, "{}", proxy.output());
        assert_eq!(
            r.text(),
            "<html><body><h1>403 Forbidden</h1>\nRequest forbidden by administrative rules.\n</body></html>\n"
        );
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
    }
    // An admin network: the login, then the page.
    assert_eq!(get_from(ALLOWED, addr, "/haproxy?stats", None).status, 401);
    let page = get_from(ALLOWED, addr, "/haproxy?stats;csv", Some("admin:pw"));
    assert_eq!(page.status, 200);
    assert!(page.text().contains("web01"), "{}", page.text());
    // The site itself stays open to everyone.
    assert_eq!(get_from(STRANGER, addr, "/", None).status, 200);

    // The metrics listener: a network, not one address.
    let r = get_from(STRANGER, metrics, "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("haproxy_process_"), "{}", r.text());
    assert_eq!(
        get_from("127.77.0.9", metrics, "/metrics", None).status,
        403
    );
}

#[test]
fn a_bad_allow_entry_is_an_error_with_its_place() {
    let dir = crate::support::TempDir::new("acl-bad");
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "[[listen]]\nname = \"m\"\nbind = [\"127.0.0.1:8405\"]\nmetrics = { uri = \"/metrics\", allow = [\"10.0.0.0/33\"] }\n",
    )
    .unwrap();
    let out = crate::support::vakt()
        .args(["proxy", "-c", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("proxy.toml:4:")
            && err.contains("\"10.0.0.0/33\" is not an address or network"),
        "{err}"
    );
}
