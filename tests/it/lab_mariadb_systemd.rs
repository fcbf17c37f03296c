//! MariaDB and backups on systemd hosts (root only, as on CI): db01 and
//! backup01 boot systemd from the lab's root filesystem, which carries
//! Debian's mariadb-server and mariadb-client (the lab has no route out),
//! lb01 and web01 stay SysV hosts. `up` installs nothing, runs Debian's
//! mariadbd under vakt's unit on db01's private address alone (Debian's own
//! socket on `*:3306` and its instance stopped and disabled), the shop's
//! orders land in it, a second
//! `up` changes nothing; the dump schedule is an enabled timer on backup01,
//! `vakt backup` and the timer's unit both dump with a checksum,
//! `restore --check` counts the rows; `down` stops the server and the timer,
//! `remove` takes the timer with its boot registration.

use std::time::Instant;

use crate::lab::Lab;
use crate::lab_mariadb::root_sql;
use crate::lab_shop::{served_by, status};
use crate::lab_systemd::prop;
use crate::support::{TempDir, needs, vakt};

const DIR: &str = "/var/backups/vakt";

/// A cluster of its own (inventory/oslo.toml's shape, one web host) with
/// db01 on MariaDB and a backup host in Bergen; the shop's password is in
/// `password_file`.
fn inventory(password_file: &str) -> String {
    format!(
        r#"[cluster]
name = "oslo-sysdb"
port = 80

[ssh]
user = "root"
port = 22
host_keys = "strict"

[[hosts]]
name = "lb01"
roles = ["lb"]
public_ip = "203.0.113.11"
private_ip = "10.10.0.10"
location = {{ country = "NO", city = "Oslo", provider = "CoolVDS", site = "osl1" }}

[[hosts]]
name = "web01"
roles = ["web"]
private_ip = "10.10.0.11"
location = {{ country = "NO", city = "Oslo", provider = "CoolVDS", site = "osl1" }}
web = {{ port = 80, cookie = "w1", weight = 1, demo = true }}

[[hosts]]
name = "db01"
roles = ["db"]
private_ip = "10.10.0.20"
location = {{ country = "NO", city = "Oslo", provider = "CoolVDS", site = "osl1" }}
db = {{ engine = "mariadb", port = 3306, database = "shop", user = "shop", password_file = "{password_file}" }}

[[hosts]]
name = "backup01"
roles = ["backup"]
private_ip = "10.10.0.30"
location = {{ country = "NO", city = "Bergen", provider = "CoolVDS", site = "bgo1" }}

[[backups]]
name = "nightly"
kind = "mariadb-dump"
host = "backup01"
path = "{DIR}"
keep = 3
schedule = "daily"

[balancer]
balance = "roundrobin"
cookie = "SERVERID"
health = {{ path = "/health", interval = "2s", rise = 2, fall = 5 }}
retries = 3
redispatch = true
maxconn = 2000
stats = {{ uri = "/haproxy?stats", realm = "Strictly Private", user = "admin", password_env = "VAKT_STATS_PASSWORD" }}

[policy]
data_countries = ["NO"]

# The SysV lab hosts have no syslog daemon.
[logs]
to = "file"
keep_days = 14
"#
    )
}

/// The whole dumps on backup01, oldest first.
fn dumps(lab: &Lab) -> Vec<String> {
    let (_, ls) = lab.on("backup01", &["ls", "-1", DIR]);
    let mut v: Vec<String> = ls
        .lines()
        .filter(|l| l.ends_with(".sql.gz"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
#[cfg_attr(
    not(vakt_lab_systemd),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, debootstrap (README: Tests)"
)]
fn mariadb_and_its_backups_run_on_systemd_hosts_from_debians_packages() {
    needs::require("vakt_lab_systemd");
    let started = Instant::now();
    let (rootfs, _) = crate::lab_systemd::rootfs_settings();
    let o = vakt().args(["lab", "rootfs", &rootfs]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let dir = TempDir::new("labsysdb");
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, "shop 'pw'\n").unwrap();
    let inv = dir.path().join("oslo-sysdb.toml");
    std::fs::write(&inv, inventory(&pw.display().to_string())).unwrap();
    let inv_s = inv.display().to_string();
    let name = format!("sysdb{}", std::process::id() % 100_000);
    let o = vakt()
        .args(["lab", "--name", &name, "up", "-i", &inv_s])
        .args(["--systemd", "db01,backup01", "--rootfs", &rootfs])
        .output()
        .unwrap();
    let lab = Lab {
        name,
        inventory: inv_s,
    };
    assert!(
        o.status.success(),
        "lab up: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for h in ["db01", "backup01"] {
        let (_, pid1) = lab.on(h, &["cat", "/proc/1/comm"]);
        assert_eq!(pid1.trim(), "systemd", "{h}");
    }

    // As booted, the package's own socket holds port 3306 on every address
    // (Debian 12 activates its server through mariadb.socket).
    let (_, ss) = lab.on("db01", &["ss", "-ltnH", "sport = :3306"]);
    assert!(ss.contains("*:3306"), "{ss}");

    // Everything is there already: nothing to install.
    let (code, out, err) = lab.vakt(&["plan", "-i", &lab.inventory]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(!out.contains("will install"), "{out}");
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");

    // db01: Debian's mariadbd under vakt's unit, enabled, and the only
    // server (Debian's own socket and instance, enabled by the package, are
    // stopped and kept off).
    assert_eq!(prop(&lab, "db01", "vakt-mariadb", "ActiveState"), "active");
    assert_eq!(
        prop(&lab, "db01", "vakt-mariadb", "UnitFileState"),
        "enabled"
    );
    assert_eq!(
        prop(&lab, "db01", "vakt-mariadb", "FragmentPath"),
        "/etc/systemd/system/vakt-mariadb.service"
    );
    let db_pid = prop(&lab, "db01", "vakt-mariadb", "MainPID");
    let (_, exe) = lab.on("db01", &["readlink", &format!("/proc/{db_pid}/exe")]);
    assert_eq!(exe.trim(), "/usr/sbin/mariadbd", "MainPID {db_pid}");
    let (_, dpkg) = lab.on(
        "db01",
        &["dpkg-query", "-W", "-f", "${Status}", "mariadb-server"],
    );
    assert_eq!(dpkg.trim(), "install ok installed");
    for unit in ["mariadb.socket", "mariadb.service"] {
        assert_eq!(
            prop(&lab, "db01", unit, "ActiveState"),
            "inactive",
            "{unit}"
        );
        assert_eq!(
            prop(&lab, "db01", unit, "UnitFileState"),
            "disabled",
            "{unit}"
        );
    }
    let (_, servers) = lab.on("db01", &["pgrep", "-x", "mariadbd"]);
    assert_eq!(servers.trim(), db_pid, "one mariadbd: {servers}");
    let (_, ss) = lab.on("db01", &["ss", "-ltnH", "sport = :3306"]);
    let listening: Vec<&str> = ss
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(listening, vec!["10.10.0.20:3306"], "{ss}");
    for h in ["db01", "backup01"] {
        let (_, state) = lab.on(h, &["systemctl", "is-system-running"]);
        let (_, failed) = lab.on(h, &["systemctl", "--failed", "--no-legend"]);
        assert_eq!(state.trim(), "running", "{h}: {failed}");
    }

    // An order through the LB lands in MariaDB.
    let jar = format!("/run/vakt-lab/{}/shop-jar", lab.name);
    let shop = |args: &[&str]| {
        let mut all = vec!["-i", "-c", jar.as_str(), "-b", jar.as_str()];
        all.extend_from_slice(args);
        lab.curl(&all)
    };
    for item in ["brunost", "lefse"] {
        let r = shop(&["-X", "POST", &format!("http://10.10.0.10/cart?item={item}")]);
        assert_eq!(status(&r), 200, "{r}");
        assert_eq!(served_by(&r), "web01", "{r}");
    }
    let placed = shop(&["-X", "POST", "http://10.10.0.10/order"]);
    assert_eq!(status(&placed), 201, "{placed}");
    let id: u64 = placed
        .split("\"order\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no order id: {placed}"));
    let (code, rows) = root_sql(
        &lab,
        &format!("SELECT item FROM shop.order_items WHERE order_id = {id} ORDER BY pos"),
    );
    assert_eq!(code, 0, "{rows}");
    assert_eq!(
        rows.split_whitespace().collect::<Vec<_>>(),
        ["brunost", "lefse"]
    );

    // A second up changes nothing and restarts nothing.
    let (code, again, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("no changes: every host already runs what the inventory says"),
        "{again}"
    );
    assert_eq!(prop(&lab, "db01", "vakt-mariadb", "MainPID"), db_pid);

    // backup01's schedule: a timer, enabled and waiting, at the cron
    // entry's time; no cron entry.
    for (p, want) in [
        ("ActiveState", "active"),
        ("UnitFileState", "enabled"),
        ("FragmentPath", "/etc/systemd/system/vakt-backup.timer"),
    ] {
        assert_eq!(prop(&lab, "backup01", "vakt-backup.timer", p), want, "{p}");
    }
    let calendar = prop(&lab, "backup01", "vakt-backup.timer", "TimersCalendar");
    assert!(calendar.contains("OnCalendar=*-*-* 03:17:00"), "{calendar}");
    let (_, timers) = lab.on(
        "backup01",
        &["systemctl", "list-timers", "--all", "--no-legend"],
    );
    assert!(
        timers
            .lines()
            .any(|l| l.contains("vakt-backup.timer") && l.contains("vakt-backup.service")),
        "{timers}"
    );
    let (code, _) = lab.on("backup01", &["test", "-e", "/etc/cron.d/vakt-backup"]);
    assert_ne!(code, 0, "a cron entry on a systemd host");

    // vakt backup: a dump and its checksum under the path, on backup01.
    let (code, out, err) = lab.vakt(&["backup", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "nightly: backup01 dumped db01 to backup01:{DIR}/nightly-"
        )) && out.contains("bytes, sha256 "),
        "{out}"
    );
    let files = dumps(&lab);
    assert_eq!(files.len(), 1, "{files:?}");
    let (code, out) = lab.on(
        "backup01",
        &[
            "sh",
            "-c",
            &format!(
                "cd {DIR} && stat -c '%a' . {f} && sha256sum -c {f}.sha256 && gzip -dc {f} | grep -c lefse",
                f = files[0]
            ),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("700\n600\n"), "{out}");
    assert!(out.contains(": OK"), "{out}");

    // What the timer starts: the unit dumps too, as systemd runs it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (code, out) = lab.on(
        "backup01",
        &["systemctl", "start", "--wait", "vakt-backup.service"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        prop(&lab, "backup01", "vakt-backup.service", "Result"),
        "success"
    );
    let files = dumps(&lab);
    assert_eq!(files.len(), 2, "{files:?}");

    // restore --check: the newest dump's rows, in a scratch database.
    let (code, out, err) = lab.vakt(&["restore", "--check", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  order_items: 2 rows"), "{out}");
    assert!(out.contains(&files[1]), "{out}");
    let (code, dbs) = root_sql(&lab, "SHOW DATABASES");
    assert_eq!(code, 0, "{dbs}");
    assert!(!dbs.contains("vakt_restore_check"), "{dbs}");

    // down: the server and the schedule stop.
    let (code, out, err) = lab.vakt(&["down", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    for (h, unit) in [("db01", "vakt-mariadb"), ("backup01", "vakt-backup.timer")] {
        assert_eq!(prop(&lab, h, unit, "ActiveState"), "inactive", "{h} {unit}");
    }
    let (_, ss) = lab.on("db01", &["ss", "-ltnH", "sport = :3306"]);
    assert!(ss.trim().is_empty(), "{ss}");

    // remove takes the schedule's boot registration with the timer's file:
    // no link left in timers.target.wants to a unit that is gone.
    let (code, out, err) = lab.vakt(&[
        "remove",
        "-i",
        &lab.inventory,
        "--hosts",
        "backup01",
        "--yes",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out) = lab.on(
        "backup01",
        &["sh", "-c", "ls -l /etc/systemd/system/timers.target.wants/; test ! -e /etc/systemd/system/vakt-backup.timer && test ! -L /etc/systemd/system/timers.target.wants/vakt-backup.timer"],
    );
    assert_eq!(code, 0, "{out}");
    let (_, failed) = lab.on("backup01", &["systemctl", "--failed", "--no-legend"]);
    assert!(failed.trim().is_empty(), "{failed}");
    println!(
        "MariaDB and backups on systemd hosts: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
