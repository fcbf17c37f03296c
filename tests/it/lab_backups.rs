//! Backups in the lab (root only, as on CI): inventory/oslo.toml with a real
//! MariaDB on db01 and a `backup01` host (role backup) keeping `mariadb-dump`
//! dumps. `up` schedules them; `vakt backup` dumps over the private network
//! (0600 files in a 0700 folder, each with a sha256 that verifies), pruned
//! to `keep`; `restore --check` counts a table's rows in a scratch database
//! and drops it; `restore --yes` brings deleted rows back and the backup
//! user's rights are read-only again afterwards; the firewall lets
//! backup01, and only it besides the web hosts, reach the DB port.

use crate::lab::Lab;
use crate::support::{TempDir, needs};

const DIR: &str = "/var/backups/vakt";

/// `mariadb` as the shop user from web01: (exit code, output).
fn shop_sql(lab: &Lab, query: &str) -> (i32, String) {
    lab.on(
        "web01",
        &[
            "mariadb",
            "--no-defaults",
            "--connect-timeout=5",
            "-h",
            "10.10.0.20",
            "-u",
            "shop",
            "-plab-db-pw",
            "-N",
            "-B",
            "shop",
            "-e",
            query,
        ],
    )
}

/// The dumps on backup01, oldest first.
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
    not(vakt_lab),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client (README: Tests)"
)]
fn backups_go_from_db01_to_backup01_are_pruned_verified_and_restore() {
    needs::require("vakt_lab");
    let dir = TempDir::new("labbak");
    // inventory/oslo.toml as it is, but keeping 2 dumps instead of 7.
    let oslo = include_str!("../../inventory/oslo.toml");
    assert!(
        oslo.contains("\nkeep = 7\n"),
        "inventory/oslo.toml's backups changed"
    );
    let inv = dir.path().join("oslo.toml");
    std::fs::write(&inv, oslo.replace("\nkeep = 7\n", "\nkeep = 2\n")).unwrap();
    let lab = Lab::up_file("bak", &inv.display().to_string());
    let (code, out, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");

    // The schedule: backup01 is a SysV host here, so a cron entry.
    let (code, cron) = lab.on("backup01", &["cat", "/etc/cron.d/vakt-backup"]);
    assert_eq!(code, 0, "{cron}");
    assert!(
        cron.contains("17 3 * * * root '/usr/local/sbin/vakt-backup' run"),
        "{cron}"
    );
    let (_, mode) = lab.on("backup01", &["stat", "-c", "%a", "/etc/vakt/backup.cnf"]);
    assert_eq!(mode.trim(), "600");

    // Something to back up.
    let (code, out) = shop_sql(
        &lab,
        "CREATE TABLE carts (id INT PRIMARY KEY, item TEXT); \
         INSERT INTO carts VALUES (1, 'tent'), (2, 'stove'), (3, 'brunost');",
    );
    assert_eq!(code, 0, "{out}");

    // Three dumps with keep = 2: the oldest goes.
    let mut reported = Vec::new();
    for _ in 0..3 {
        let (code, out, err) = lab.vakt(&["backup", "-i", &lab.inventory]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains("nightly: backup01 dumped db01 to backup01:/var/backups/vakt/nightly-")
                && out.contains("bytes, sha256 "),
            "{out}"
        );
        reported.push(out);
    }
    let files = dumps(&lab);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        reported[2].contains(&files[1]) && reported[1].contains(&files[0]),
        "{reported:?} {files:?}"
    );
    let (_, modes) = lab.on(
        "backup01",
        &["sh", "-c", &format!("stat -c '%a %n' {DIR} {DIR}/*")],
    );
    for l in modes.lines() {
        let want = if l.ends_with(DIR) { "700 " } else { "600 " };
        assert!(l.starts_with(want), "{modes}");
    }
    let (code, out) = lab.on(
        "backup01",
        &[
            "sh",
            "-c",
            &format!(
                "cd {DIR} && sha256sum -c {}.sha256 && gzip -dc {} | grep -c brunost",
                files[1], files[1]
            ),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": OK"), "{out}");

    // The firewall: backup01 reaches the DB port, lb01 does not; verify agrees.
    let connects = |from: &str| {
        lab.on(
            from,
            &[
                "timeout",
                "3",
                "bash",
                "-c",
                "exec 3<>/dev/tcp/10.10.0.20/3306",
            ],
        )
        .0 == 0
    };
    assert!(connects("backup01"), "backup01 cannot reach db01:3306");
    assert!(!connects("lb01"), "lb01 reached db01:3306");
    let (code, out, err) = lab.vakt(&["verify", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");

    // restore --check: the rows of the newest dump, in a scratch database
    // that is gone afterwards.
    let (code, out, err) = lab.vakt(&["restore", "--check", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  carts: 3 rows"), "{out}");
    assert!(out.contains(&files[1]), "{out}");
    let root_sql = |q: &str| crate::lab_mariadb::root_sql(&lab, q);
    let (code, dbs) = root_sql("SHOW DATABASES");
    assert_eq!(code, 0, "{dbs}");
    assert!(!dbs.contains("vakt_restore_check"), "{dbs}");

    // Without --yes, restore only says what it would do.
    let (code, out, err) = lab.vakt(&["restore", "-i", &lab.inventory]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("--yes"), "{out}");

    // A lost row comes back with --yes; the backup user is read-only again.
    let (code, out) = shop_sql(
        &lab,
        "DELETE FROM carts WHERE id > 1; SELECT COUNT(*) FROM carts;",
    );
    assert_eq!((code, out.trim()), (0, "1"), "{out}");
    let (code, out, err) = lab.vakt(&["restore", "--yes", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  carts: 3 rows"), "{out}");
    let (code, out) = shop_sql(&lab, "SELECT item FROM carts ORDER BY id;");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["tent", "stove", "brunost"]
    );
    let (code, grants) = root_sql("SHOW GRANTS FOR 'vakt_backup'@'10.10.0.30'");
    assert_eq!(code, 0, "{grants}");
    assert!(
        grants.contains("GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `shop`.*")
            && !grants.contains("ALL PRIVILEGES ON `shop`"),
        "{grants}"
    );

    // The audit: backup01 and the target are judged with what it holds.
    let (code, out, err) = lab.vakt(&["audit", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("backup01 holds /var/backups/vakt/nightly-"),
        "{out}{err}"
    );
    // The evidence an auditor files: what db01's datadir holds, that
    // backup01 has no port open for its data, and only the sources used.
    let datadir = out
        .lines()
        .find(|l| l.contains("holds     MariaDB's datadir /var/lib/vakt/mariadb: "))
        .unwrap_or_else(|| panic!("no datadir evidence: {out}"));
    assert!(datadir.contains(" MiB ("), "{datadir}");
    for line in [
        "reach     it has no data port for anyone to reach",
        "Evidence gathered: from the hosts over SSH (read-only)\n",
        "lb01 request log kept in a file (client addresses (personal data)): compliant",
        "Data controller: Nordshop AS",
        "Processors: CoolVDS AS (NO; DPA: contracts/coolvds-dpa-2026.pdf)",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }

    // Declared in Stockholm, backup01 with its real dumps is a violation
    // named with what it holds.
    let abroad = format!("{}.abroad.toml", lab.inventory);
    let text = std::fs::read_to_string(&lab.inventory).unwrap();
    let moved = text.replace(
        "location = { country = \"NO\", city = \"Bergen\", provider = \"CoolVDS\", site = \"bgo1\" }",
        "location = { country = \"SE\", city = \"Stockholm\" }",
    );
    assert_ne!(
        moved, text,
        "backup01's location is not in {}",
        lab.inventory
    );
    std::fs::write(&abroad, moved).unwrap();
    let (code, out, err) = lab.vakt(&["audit", "-i", &abroad]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "backup nightly: its dumps lie on backup01, which the inventory says SE, Stockholm, outside NO"
        ) && out.contains("backup01 holds /var/backups/vakt/nightly-"),
        "{out}"
    );
    std::fs::remove_file(&abroad).unwrap();

    // A second up changes nothing.
    let (code, again, err) = lab.vakt(&["up", "-i", &lab.inventory]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("no changes: every host already runs what the inventory says"),
        "{again}"
    );
}
