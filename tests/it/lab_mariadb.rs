//! A real MariaDB on db01 in the lab (root only, as on CI): inventory/oslo.toml
//! with `db = { engine = "mariadb", .. }` deployed over SSH; the shop user
//! connects from web01's namespace and keeps a table, lb01 finds port 3306
//! closed, the server listens on db01's private address alone, `verify`
//! passes, a second `up` changes nothing, a new password is applied by the
//! next one, and a web host taken out of the inventory loses its grant.

use std::path::{Path, PathBuf};

use crate::lab::Lab;
use crate::support::{TempDir, needs};

/// inventory/oslo.toml with the shop's password in a file (`password`,
/// beside the inventory) instead of `VAKT_DB_PASSWORD`, so that a test can
/// change it between two `up`s; written into `dir`: the inventory's path.
pub(crate) fn oslo_with_password_file(dir: &Path, password: &str) -> PathBuf {
    let pw = dir.join("db-password");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let env = "password_env = \"VAKT_DB_PASSWORD\"";
    let oslo = include_str!("../../inventory/oslo.toml");
    assert!(oslo.contains(env), "inventory/oslo.toml's db01 changed");
    let oslo = oslo.replace(env, &format!("password_file = \"{}\"", pw.display()));
    let inv = dir.join("oslo.toml");
    std::fs::write(&inv, &oslo).unwrap();
    inv
}

/// `mariadb` as root on db01, over its socket: (exit code, output).
pub(crate) fn root_sql(lab: &Lab, query: &str) -> (i32, String) {
    lab.on(
        "db01",
        &[
            "mariadb",
            "--defaults-file=/etc/vakt/mariadb.cnf",
            "--user=root",
            "-N",
            "-B",
            "-e",
            query,
        ],
    )
}

/// `mariadb` as the shop user from inside a lab host: (exit code, output).
fn sql(lab: &Lab, host: &str, password: &str, query: &str) -> (i32, String) {
    lab.on(
        host,
        &[
            "mariadb",
            "--no-defaults",
            "--connect-timeout=5",
            "-h",
            "10.10.0.20",
            "-P",
            "3306",
            "-u",
            "shop",
            &format!("-p{password}"),
            "-N",
            "-B",
            "shop",
            "-e",
            query,
        ],
    )
}

#[test]
#[cfg_attr(
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn mariadb_on_db01_serves_the_web_hosts_only_on_its_private_address_and_up_is_idempotent() {
    needs::require("vakt_lab");
    let dir = TempDir::new("labmdb");
    let inv = oslo_with_password_file(dir.path(), "first 'secret'");
    let lab = Lab::up_file("mdb", &inv.display().to_string());
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");

    // The grants file is db01's root's alone; the data is in vakt's datadir.
    let (_, mode) = lab.on(
        "db01",
        &["stat", "-c", "%a", "/etc/vakt/mariadb-grants.sql"],
    );
    assert_eq!(mode.trim(), "600");
    let (code, ls) = lab.on("db01", &["ls", "/var/lib/vakt/mariadb"]);
    assert_eq!(code, 0, "{ls}");
    assert!(ls.contains("mysql"), "{ls}");

    // From web01: the shop user creates a table and reads it back.
    let (code, out) = sql(
        &lab,
        "web01",
        "first 'secret'",
        "CREATE TABLE IF NOT EXISTS carts (id INT PRIMARY KEY, item TEXT); \
         REPLACE INTO carts VALUES (1, 'tent'); SELECT item FROM carts WHERE id = 1;",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "tent");
    let (code, out) = sql(
        &lab,
        "web02",
        "first 'secret'",
        "SELECT COUNT(*) FROM carts;",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "1");

    // From lb01: the firewall drops the port (and no grant would let it in).
    let (code, out) = lab.on(
        "lb01",
        &["curl", "-s", "-m", "3", "telnet://10.10.0.20:3306"],
    );
    assert!(
        code == 28 || code == 7,
        "lb01 reached db01:3306 (curl exit {code}): {out}"
    );

    // Listening: the private address only, never 0.0.0.0 or [::].
    let (_, ss) = lab.on("db01", &["ss", "-ltnH", "sport = :3306"]);
    let listening: Vec<&str> = ss
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(listening, vec!["10.10.0.20:3306"], "{ss}");

    // verify's checks hold with the real server: the web hosts reach the
    // DB port, the LB does not, everything runs.
    let (code, out, err) = lab.vakt(&["verify", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");

    // A second up changes nothing.
    let (code, again, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("no changes: every host already runs what the inventory says"),
        "{again}"
    );

    // A new password: the next up applies it, the old one stops working,
    // and the data stays.
    std::fs::write(dir.path().join("db-password"), "second").unwrap();
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("db01"), "{out}");
    let (code, out) = sql(
        &lab,
        "web01",
        "second",
        "SELECT item FROM carts WHERE id = 1;",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "tent");
    let (code, out) = sql(&lab, "web01", "first 'secret'", "SELECT 1;");
    assert_ne!(code, 0, "the old password still works: {out}");

    // web02 leaves the inventory: its grant goes with the next up.
    let web02 = "[[hosts]]\nname = \"web02\"\nroles = [\"web\"]\nprivate_ip = \"10.10.0.12\"\n\
                 location = { country = \"NO\", city = \"Oslo\", provider = \"CoolVDS\", site = \"osl1\" }\n\
                 web = { port = 80, cookie = \"w2\", weight = 1, demo = true }\n\n";
    let oslo = std::fs::read_to_string(&inv).unwrap();
    assert!(oslo.contains(web02), "inventory/oslo.toml's web02 changed");
    std::fs::write(&inv, oslo.replace(web02, "")).unwrap();
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, users) = root_sql(
        &lab,
        "SELECT Host FROM mysql.user WHERE User = 'shop' ORDER BY Host",
    );
    assert_eq!(code, 0, "{users}");
    assert_eq!(users.trim(), "10.10.0.11");
}
