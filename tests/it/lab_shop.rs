//! The demo shop on a real MariaDB in the lab (root only, as on CI):
//! inventory/oslo.toml with `db = { engine = "mariadb", .. }`. A cart made
//! through the LB (the persistence cookie pins one web host) is still there
//! when that host goes into maintenance and the other answers; an order
//! acknowledged with 201 survives a SIGKILL of mariadbd and its restart,
//! and the shop answers 503 meanwhile and reconnects by itself. web02 boots
//! systemd (the unit's `StandardInput=file:` password), web01 and db01 are
//! SysV hosts.

use std::time::{Duration, Instant};

use crate::lab::Lab;
use crate::support::{TempDir, needs};

/// The `x-served-by` header of a `curl -i` answer (empty without one).
pub(crate) fn served_by(resp: &str) -> String {
    resp.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-served-by: ")
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default()
}

/// The status code of a `curl -i` answer (0 without one).
pub(crate) fn status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
#[cfg_attr(
    not(all(vakt_lab, vakt_lab_systemd)),
    ignore = "lab mariadb + systemd: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client, debootstrap (README: Tests)"
)]
fn carts_survive_their_web_host_and_orders_survive_a_killed_mariadbd() {
    needs::require("vakt_lab");
    needs::require("vakt_lab_systemd");
    let dir = TempDir::new("labshop");
    let inv = crate::lab_mariadb::oslo_with_password_file(dir.path(), "shop 'pw'");
    // web02 boots systemd (the unit hands the password over), web01 and
    // db01 are SysV hosts (the init scripts do).
    let (rootfs, _) = crate::lab_systemd::rootfs_settings();
    let o = crate::support::vakt()
        .args(["lab", "rootfs", &rootfs])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let name = format!("shop{}", std::process::id() % 100_000);
    let inv_s = inv.display().to_string();
    let o = crate::support::vakt()
        .args(["lab", "--name", &name, "up", "-i", &inv_s])
        .args(["--systemd", "web02", "--rootfs", &rootfs])
        .output()
        .unwrap();
    let lab = Lab {
        name,
        inventory: inv_s,
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, pid1) = lab.on("web02", &["cat", "/proc/1/comm"]);
    assert_eq!(pid1.trim(), "systemd");
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, mode) = lab.on(
        "web01",
        &["stat", "-c", "%a", "/etc/vakt/demo-web-db.password"],
    );
    assert_eq!(mode.trim(), "600");

    // A cart through the LB: the persistence cookie pins one web host.
    let jar = format!("/run/vakt-lab/{}/shop-jar", lab.name);
    let shop = |args: &[&str]| {
        let mut all = vec!["-i", "-c", jar.as_str(), "-b", jar.as_str()];
        all.extend_from_slice(args);
        lab.curl(&all)
    };
    let first = shop(&["-X", "POST", "http://10.10.0.10/cart?item=brunost"]);
    assert_eq!(status(&first), 200, "{first}");
    let pinned = served_by(&first);
    let second = shop(&["-X", "POST", "http://10.10.0.10/cart?item=lefse"]);
    assert_eq!(served_by(&second), pinned, "{second}");
    assert!(
        second.contains("\"items\":[\"brunost\",\"lefse\"]"),
        "{second}"
    );

    // That host goes into maintenance: the other one answers, same cart.
    let (code, out, err) = lab.vakt(&["maint", "-i", &lab.inventory, &pinned]);
    assert_eq!(code, 0, "{out}{err}");
    let cart = shop(&["http://10.10.0.10/cart"]);
    let other = served_by(&cart);
    assert!(!other.is_empty() && other != pinned, "{cart}");
    assert!(cart.contains("\"items\":[\"brunost\",\"lefse\"]"), "{cart}");

    // An order: 201 with its id, only after COMMIT.
    let placed = shop(&["-X", "POST", "http://10.10.0.10/order"]);
    assert_eq!(status(&placed), 201, "{placed}");
    let id: u64 = placed
        .split("\"order\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no order id: {placed}"));
    assert!(
        placed.contains(&format!("location: /order/{id}")),
        "{placed}"
    );
    let empty = shop(&["http://10.10.0.10/cart"]);
    assert!(empty.contains("\"items\":[]"), "{empty}");

    // SIGKILL mariadbd: no shutdown, no flush but InnoDB's own.
    let (code, out) = lab.on(
        "db01",
        &["sh", "-c", "kill -9 \"$(cat /run/vakt/vakt-mariadb.pid)\""],
    );
    assert_eq!(code, 0, "{out}");
    let t = Instant::now();
    let url = format!("http://10.10.0.10/order/{id}");
    let down = shop(&[&url]);
    assert_eq!(status(&down), 503, "{down}");
    assert!(
        down.contains("the shop's database at 10.10.0.20:3306"),
        "{down}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    let (code, out) = lab.on("db01", &["/etc/init.d/vakt-mariadb", "start"]);
    assert_eq!(code, 0, "{out}");
    // The shop reconnects by itself: the order is there, with its items.
    let deadline = Instant::now() + Duration::from_secs(20);
    let back = loop {
        let r = shop(&[&url]);
        if status(&r) == 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(status(&back), 200, "{back}");
    assert!(
        back.contains(&format!("\"items\":[\"brunost\",\"lefse\"],\"order\":{id}")),
        "{back}"
    );
    let (code, rows) = crate::lab_mariadb::root_sql(
        &lab,
        &format!("SELECT COUNT(*) FROM shop.order_items WHERE order_id = {id}"),
    );
    assert_eq!(code, 0, "{rows}");
    assert_eq!(rows.trim(), "2");
    // Another session does not see it.
    let stranger = lab.curl(&["-i", &url]);
    assert_eq!(status(&stranger), 404, "{stranger}");

    let (code, out, err) = lab.vakt(&["ready", "-i", &lab.inventory, &pinned]);
    assert_eq!(code, 0, "{out}{err}");
}
