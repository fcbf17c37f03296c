//! The quick start as a new user meets it: the demo shop is a page a person
//! can click through (every link and button works, nothing is loaded from
//! elsewhere), and the "stop it with:" line `vakt up` prints runs as printed.

use std::process::Command;

use super::{local_inventory, tmp};
use crate::support::{Backend, get, raw, set_cookie_value, vakt};

/// Every value of `attr="…"` in `html`.
fn attr_values(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .filter_map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

#[test]
fn the_shop_page_links_and_buttons_all_work_without_outside_resources() {
    let shop = Backend::spawn("web01");
    let home = get(shop.addr, "/", &[]);
    assert_eq!(home.status, 200);
    assert!(
        home.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = home.text();
    for banned in ["http://", "https://", "src=", "<script", "@import"] {
        assert!(
            !html.contains(banned),
            "the page loads from elsewhere ({banned}):\n{html}"
        );
    }
    let sid = set_cookie_value(&home, "DEMOSESSID").expect("a session cookie");
    let cookie = format!("DEMOSESSID={sid}");

    let links = attr_values(&html, "href");
    for want in ["/", "/cart/view", "/cart", "/health", "/echo"] {
        assert!(
            links.iter().any(|l| l == want),
            "no link to {want}:\n{html}"
        );
    }
    for link in &links {
        let r = get(shop.addr, link, &[("Cookie", &cookie)]);
        assert_eq!(r.status, 200, "GET {link}: {}", r.text());
    }

    let buttons = attr_values(&html, "action");
    assert!(buttons.len() >= 2, "{html}");
    // What a browser sends for a form without fields.
    let first = &buttons[0];
    let r = raw(
        shop.addr,
        format!(
            "POST {first} HTTP/1.1\r\nHost: t\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/cart/view"));
    let item = first.split("item=").nth(1).unwrap();
    let cart = get(shop.addr, "/cart/view", &[("Cookie", &cookie)]);
    assert!(
        cart.text().contains(&format!("<li>{item}</li>")),
        "{}",
        cart.text()
    );
    let home = get(shop.addr, "/", &[("Cookie", &cookie)]);
    assert!(
        home.text().contains("Your cart holds 1 item(s)"),
        "{}",
        home.text()
    );

    // The API keeps answering JSON to clients that do not ask for HTML.
    let api = raw(
        shop.addr,
        format!(
            "POST /cart?item=tea HTTP/1.1\r\nHost: t\r\nAccept: */*\r\nCookie: {cookie}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["items"], serde_json::json!([item, "tea"]));
}

/// Stops the cluster with the test's own binary when the test ends, also
/// when the printed command failed (before the folder is removed).
struct Down<'a>(&'a std::path::Path, &'a std::path::Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = vakt()
            .current_dir(self.0)
            .args(["down", "-i"])
            .arg(self.1)
            .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
            .output();
    }
}

#[test]
fn the_printed_stop_command_runs_as_printed() {
    let dir = tmp("quickstart");
    let (inv, _net, _port) = local_inventory(dir.path(), "");
    let _down = Down(dir.path(), &inv);
    // No --state-dir: as a user runs it, from a folder of their own.
    let up = vakt()
        .current_dir(dir.path())
        .arg("up")
        .arg("-i")
        .arg(&inv)
        .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    let stop = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stop it with: "))
        .map(str::to_string);
    let Some(stop) = stop else {
        panic!(
            "no stop line:\n{stdout}{}",
            String::from_utf8_lossy(&up.stderr)
        );
    };
    // The test binary's vakt is not on PATH: the line must say where it is.
    let down = Command::new("sh")
        .arg("-c")
        .arg(&stop)
        .current_dir(dir.path())
        .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        down.status.success(),
        "`{stop}` failed: {}{}",
        String::from_utf8_lossy(&down.stdout),
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(up.status.success(), "{stdout}");
}

#[test]
fn the_printed_stop_command_names_a_state_folder_given_to_up() {
    let dir = tmp("quickstate");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let state = dir.path().join("my state");
    let state_arg = state.display().to_string();
    let run = |args: &[&str]| {
        vakt()
            .current_dir(dir.path())
            .args(args)
            .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let inv_arg = inv.display().to_string();
    struct Stop<'a>(&'a dyn Fn(&[&str]) -> std::process::Output, [&'a str; 5]);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&self.1);
        }
    }
    let _down = Stop(&run, ["down", "-i", &inv_arg, "--state-dir", &state_arg]);
    let up = run(&["up", "-i", &inv_arg, "--state-dir", &state_arg]);
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(up.status.success(), "{stdout}");
    let stop = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stop it with: "))
        .unwrap_or_else(|| panic!("no stop line:\n{stdout}"))
        .to_string();
    assert!(stop.contains("--state-dir '"), "{stop}");
    let down = Command::new("sh")
        .arg("-c")
        .arg(&stop)
        .current_dir(dir.path())
        .env("VAKT_TEST_STATS_PASSWORD", "test-pw")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(
        down.status.success() && said.contains("stopped vakt-proxy"),
        "`{stop}`: {said}{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let lb: std::net::SocketAddr = format!("{net}.1:{port}").parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&lb, std::time::Duration::from_millis(300)).is_err(),
        "{lb} still listens after `{stop}`"
    );
}
