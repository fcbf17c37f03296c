//! Rendering: golden snapshots of every template over each example
//! inventory, and the rendered files pass their own checkers (`sh -n`,
//! `systemd-analyze verify`, `vakt proxy --check`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TempDir, vakt};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out.sort();
    out
}

fn render(inventory: &str, out: &Path, state: &Path) {
    render_path(&format!("inventory/{inventory}"), out, state);
}

/// Renders the inventory at `inv`, a path relative to the repository.
fn render_path(inv: &str, out: &Path, state: &Path) {
    // Relative to the repository, as a user names it: the path is part of
    // the rendered header, so an absolute one would differ per checkout.
    let r = vakt()
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["render", "-i", inv, "--state-dir"])
        .arg(state)
        .arg("--out")
        .arg(out)
        .env("VAKT_STATS_PASSWORD", "snapshot-password")
        .env("VAKT_DB_PASSWORD", "snap'shot\\pw")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn rendered_files_match_their_snapshots() {
    for inventory in ["local.toml", "oslo.toml", "oslo-ha.toml"] {
        let out = TempDir::new("render");
        let state = TempDir::new("state");
        // oslo.toml's backup account: generated once on a real run.
        std::fs::write(state.path().join("backup-password"), "Bk4pSnapshot\n").unwrap();
        render(inventory, out.path(), state.path());
        for f in files(out.path()) {
            let rel = f.strip_prefix(out.path()).unwrap().display().to_string();
            let content = std::fs::read_to_string(&f)
                .unwrap()
                .replace(&state.path().display().to_string(), "[STATE]");
            let name = format!(
                "{}__{}",
                inventory.trim_end_matches(".toml"),
                rel.replace('/', "__")
            );
            insta::assert_snapshot!(name, content);
        }
    }
}

/// `[ha]` with neither `advert_int` nor `virtual_router_id`: keepalived gets
/// seconds (`advert_int 0.1`, never `100ms`) and an id from the cluster name.
#[test]
fn ha_defaults_render_keepalived_seconds_and_a_derived_router_id() {
    let out = TempDir::new("render");
    let state = TempDir::new("state");
    render_path(
        "tests/it/cli/fixtures/ha-defaults.toml",
        out.path(),
        state.path(),
    );
    for lb in ["lb01", "lb02"] {
        let conf =
            std::fs::read_to_string(out.path().join(lb).join("etc/keepalived/keepalived.conf"))
                .unwrap();
        assert!(conf.contains("    advert_int 0.1\n"), "{conf}");
        assert!(!conf.contains("ms\n"), "{conf}");
        insta::assert_snapshot!(format!("ha-defaults__{lb}__keepalived.conf"), conf);
    }
}

/// `[firewall]` on: every host gets one `table inet vakt` for its role
/// (LBs: public port, VRRP from the other LB; web: web port from the LBs;
/// db: DB port from the web hosts; all: SSH from `admin`), and the extra
/// rules land only on the hosts they name.
#[test]
fn firewall_renders_one_table_per_host_by_role() {
    let out = TempDir::new("render");
    let state = TempDir::new("state");
    render_path(
        "tests/it/cli/fixtures/firewall.toml",
        out.path(),
        state.path(),
    );
    for host in ["lb01", "lb02", "web01", "web02", "db01"] {
        let nft =
            std::fs::read_to_string(out.path().join(host).join("etc/vakt/nftables.nft")).unwrap();
        assert!(nft.trim_end().ends_with("drop\n    }\n}"), "{nft}");
        assert!(
            nft.contains("ip saddr @admin4 tcp dport 22 accept"),
            "{nft}"
        );
        insta::assert_snapshot!(format!("firewall__{host}__nftables.nft"), nft);
    }
    let db = std::fs::read_to_string(out.path().join("db01/etc/vakt/nftables.nft")).unwrap();
    assert!(
        db.contains("ip saddr { 10.10.0.11, 10.10.0.12 } tcp dport 3306 accept"),
        "{db}"
    );
    assert!(!db.contains("dport 80 "), "{db}");
    // [firewall] admin also guards the LBs' stats page and `[metrics]`
    // listener (private address, from the admin networks only).
    let lb = std::fs::read_to_string(out.path().join("lb01/etc/vakt/nftables.nft")).unwrap();
    assert!(
        lb.contains("ip saddr @admin4 tcp dport 9405 accept"),
        "{lb}"
    );
    assert!(
        lb.contains("ip6 saddr @admin6 tcp dport 9405 accept"),
        "{lb}"
    );
    let proxy = std::fs::read_to_string(out.path().join("lb01/etc/vakt/proxy.toml")).unwrap();
    let allow = r#"allow = ["198.51.100.0/24", "2001:db8::7/128"]"#;
    assert!(
        proxy.contains(&format!("{allow} }}\n\n[[listen.server]]")),
        "{proxy}"
    );
    assert!(
        proxy.contains(&format!(
            "bind = [\"10.10.0.10:9405\"]\nmetrics = {{ uri = \"/metrics\", {allow} }}"
        )),
        "{proxy}"
    );
    assert!(!db.contains("9405"), "{db}");
    for unit in [
        "etc/init.d/vakt-firewall",
        "etc/systemd/system/vakt-firewall.service",
    ] {
        let text = std::fs::read_to_string(out.path().join("db01").join(unit)).unwrap();
        insta::assert_snapshot!(format!("firewall__db01__{}", unit.replace('/', "__")), text);
    }
}

/// `db = { engine = "mariadb" }`: db01 gets vakt's own MariaDB (config on
/// its private address only, grants for each web host's address with the
/// password SQL-escaped, mode 0600; init script and unit), the firewall
/// still opens 3306 to the web hosts alone, and no stand-in runs.
#[test]
fn mariadb_renders_its_config_grants_and_service_on_the_db_host() {
    let out = TempDir::new("render");
    let state = TempDir::new("state");
    render_path("inventory/oslo.toml", out.path(), state.path());
    let db = out.path().join("db01");
    let cnf = std::fs::read_to_string(db.join("etc/vakt/mariadb.cnf")).unwrap();
    assert!(cnf.contains("\nbind-address = 10.10.0.20\n"), "{cnf}");
    assert_eq!(cnf.matches("\nbind-address").count(), 1, "{cnf}");
    assert!(cnf.contains("\ndatadir = /var/lib/vakt/mariadb\n"), "{cnf}");
    let grants = std::fs::read_to_string(db.join("etc/vakt/mariadb-grants.sql")).unwrap();
    for web in ["10.10.0.11", "10.10.0.12"] {
        assert!(
            grants.contains(&format!(
                "GRANT ALL PRIVILEGES ON `shop`.* TO 'shop'@'{web}';"
            )),
            "{grants}"
        );
    }
    assert!(
        grants.contains(r"IDENTIFIED BY 'snap\'shot\\pw';"),
        "{grants}"
    );
    assert!(
        !grants.contains("10.10.0.10"),
        "the LB gets no grant: {grants}"
    );
    let r = Command::new("sh")
        .arg("-n")
        .arg(db.join("etc/init.d/vakt-mariadb"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!db.join("etc/init.d/vakt-demo-db").exists());
    let nft = std::fs::read_to_string(db.join("etc/vakt/nftables.nft")).unwrap();
    assert!(
        nft.contains("ip saddr { 10.10.0.11, 10.10.0.12 } tcp dport 3306 accept"),
        "{nft}"
    );

    // Each web host's shop keeps its carts there: its settings (no secret),
    // the password alone in a 0600 file, which the unit hands over as a
    // systemd credential and the init script through the settings.
    let web = out.path().join("web01");
    let pw = web.join("etc/vakt/demo-web-db.password");
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), "snap'shot\\pw\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let toml = std::fs::read_to_string(web.join("etc/vakt/demo-web.toml")).unwrap();
    assert!(!toml.contains("snap'shot"), "{toml}");
    let r = Command::new("sh")
        .arg("-n")
        .arg(web.join("etc/init.d/vakt-demo-web"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// The firewall is on by default for hosts reached over SSH (oslo.toml has
/// no `[firewall]` table), off with `enabled = false`, and never on local
/// hosts, which share this machine's network: `check` and `plan` say so in
/// one line.
#[test]
fn firewall_is_on_by_default_but_never_for_local_hosts_or_when_disabled() {
    let nft_files = |inv: &str| {
        let (out, state) = (TempDir::new("render"), TempDir::new("state"));
        render_path(inv, out.path(), state.path());
        files(out.path())
            .into_iter()
            .filter(|f| f.ends_with("etc/vakt/nftables.nft"))
            .count()
    };
    assert_eq!(nft_files("inventory/oslo.toml"), 5, "one table per host");
    assert_eq!(nft_files("inventory/local.toml"), 0);
    let dir = TempDir::new("fwoff");
    let off = dir.path().join("oslo-off.toml");
    let oslo = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../inventory/oslo.toml"
    ))
    .unwrap();
    std::fs::write(&off, format!("{oslo}\n[firewall]\nenabled = false\n")).unwrap();
    assert_eq!(nft_files(&off.display().to_string()), 0);

    let note = "firewall: none for local hosts: they share this machine's network, which vakt never filters";
    let state = TempDir::new("state");
    for args in [&["check"][..], &["plan", "--state-dir"][..]] {
        let mut cmd = vakt();
        cmd.args(args);
        if args.len() > 1 {
            cmd.arg(state.path());
        }
        let r = cmd
            .env("VAKT_STATS_PASSWORD", "pw")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&r.stdout);
        assert!(
            out.contains(note),
            "{args:?}: {out}{}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let r = vakt().args(["check", "-i"]).arg(&off).output().unwrap();
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("firewall: off ([firewall] enabled = false)"),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
}

#[test]
fn rendering_is_deterministic() {
    let state = TempDir::new("state");
    let (a, b) = (TempDir::new("ra"), TempDir::new("rb"));
    render("oslo-ha.toml", a.path(), state.path());
    render("oslo-ha.toml", b.path(), state.path());
    for f in files(a.path()) {
        let other = b.path().join(f.strip_prefix(a.path()).unwrap());
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(&other).unwrap(),
            "{}",
            f.display()
        );
        let first = std::fs::read_to_string(&f).unwrap();
        assert!(
            first
                .lines()
                .take(2)
                .any(|l| l.contains("generated by vakt")),
            "{} lacks the generated-by line",
            f.display()
        );
    }
}

#[test]
fn rendered_files_pass_their_checkers() {
    let out = TempDir::new("render");
    let state = TempDir::new("state");
    // oslo-ha.toml with [firewall]: every file oslo-ha gets, plus the
    // firewall's boot unit and init script.
    render_path(
        "tests/it/cli/fixtures/firewall.toml",
        out.path(),
        state.path(),
    );
    let bin = env!("CARGO_BIN_EXE_vakt");
    for f in files(out.path()) {
        let path = f.display().to_string();
        if path.contains("/init.d/") || path.ends_with(".sh") {
            let r = Command::new("sh").arg("-n").arg(&f).output().unwrap();
            assert!(
                r.status.success(),
                "sh -n {path}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
        if path.ends_with("proxy.toml") {
            let r = vakt()
                .args(["proxy", "--check", "--config"])
                .arg(&f)
                .output()
                .unwrap();
            assert!(
                r.status.success(),
                "{path}: {}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
        if path.ends_with("keepalived.conf") {
            // keepalived checks that its scripts exist: point them at the
            // test binary and the rendered notify script.
            let dir = TempDir::new("keepalived");
            let copy = dir.path().join("keepalived.conf");
            let notify = f.with_file_name("vakt-notify.sh");
            std::fs::write(
                &copy,
                std::fs::read_to_string(&f)
                    .unwrap()
                    .replace("/usr/local/bin/vakt", bin)
                    .replace(
                        "/etc/keepalived/vakt-notify.sh",
                        &notify.display().to_string(),
                    ),
            )
            .unwrap();
            match Command::new("keepalived")
                .args(["--config-test", "-f"])
                .arg(&copy)
                .output()
            {
                Err(_) => println!("keepalived is not installed; skipping {path}"),
                Ok(r) => assert!(
                    r.status.success(),
                    "keepalived --config-test {path}: {}{}",
                    String::from_utf8_lossy(&r.stdout),
                    String::from_utf8_lossy(&r.stderr)
                ),
            }
        }
        if path.ends_with(".service") {
            // systemd-analyze wants the ExecStart binary to exist: verify a
            // copy pointing at the test binary instead of /usr/local/bin.
            let Ok(v) = Command::new("systemd-analyze").arg("--version").output() else {
                println!("systemd-analyze is not installed; skipping {path}");
                continue;
            };
            let _ = v;
            let dir = TempDir::new("unit");
            let copy = dir.path().join(f.file_name().unwrap());
            std::fs::write(
                &copy,
                std::fs::read_to_string(&f)
                    .unwrap()
                    .replace("/usr/local/bin/vakt", bin)
                    .replace("/usr/sbin/nft", bin),
            )
            .unwrap();
            let r = Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&copy)
                .output()
                .unwrap();
            assert!(
                r.status.success(),
                "systemd-analyze verify {path}: {}{}",
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            );
        }
    }
}

/// `[tls] acme`: every LB gets the settings `vakt acme renew` reads (peers:
/// the other LBs; the first orders at a third, the others at a sixth), the
/// cron entry, and a proxy init script that makes the placeholder first;
/// no PEM is rendered (the LBs keep it), and without `up`'s keys none are.
#[test]
fn acme_renders_settings_and_cron_on_every_lb_and_no_certificate() {
    let out = TempDir::new("render");
    let state = TempDir::new("state");
    render_path("tests/it/cli/fixtures/acme.toml", out.path(), state.path());
    for host in ["lb01", "lb02"] {
        for f in ["etc/vakt/acme.toml", "etc/cron.d/vakt-acme"] {
            let text = std::fs::read_to_string(out.path().join(host).join(f)).unwrap();
            insta::assert_snapshot!(format!("acme__{host}__{}", f.replace('/', "__")), text);
        }
        assert!(!out.path().join(host).join("etc/vakt/tls/site.pem").exists());
        assert!(
            !out.path()
                .join(host)
                .join("etc/vakt/acme/cert.key")
                .exists()
        );
        let init =
            std::fs::read_to_string(out.path().join(host).join("etc/init.d/vakt-proxy")).unwrap();
        assert!(init.contains("acme placeholder --config"), "{init}");
        let unit = std::fs::read_to_string(
            out.path()
                .join(host)
                .join("etc/systemd/system/vakt-proxy.service"),
        )
        .unwrap();
        assert!(
            unit.contains("ExecStartPre=+/usr/local/bin/vakt acme placeholder"),
            "{unit}"
        );
    }
    assert!(!out.path().join("web01/etc/vakt/acme.toml").exists());
}

/// `[[backups]] kind = "mariadb-dump"`: backup01 gets its client settings
/// (0600, the generated password), the dump script and both schedules
/// (timer and unit; cron entry and the init script that installs it);
/// db01's grants give the backup account read-only rights on `shop` and
/// the scratch database from backup01's address alone, the rights a real
/// restore borrows are a file of their own, and the firewall lets
/// backup01 reach the DB port by a rule of its own.
#[test]
fn a_dump_target_renders_its_script_schedule_grants_and_firewall_rule() {
    let out = TempDir::new("render");
    let state = TempDir::new("state");
    std::fs::write(state.path().join("backup-password"), "Bk4pSnapshot\n").unwrap();
    render_path("inventory/oslo.toml", out.path(), state.path());
    let backup = out.path().join("backup01");
    let db = out.path().join("db01");
    let cnf = std::fs::read_to_string(backup.join("etc/vakt/backup.cnf")).unwrap();
    assert!(
        cnf.contains("host = 10.10.0.20\n") && cnf.contains("password = Bk4pSnapshot\n"),
        "{cnf}"
    );
    let grants = std::fs::read_to_string(db.join("etc/vakt/mariadb-grants.sql")).unwrap();
    assert!(
        grants.contains(
            "GRANT SELECT, LOCK TABLES, SHOW VIEW, TRIGGER, EVENT ON `shop`.* TO 'vakt_backup'@'10.10.0.30';"
        ) && grants
            .contains("GRANT ALL PRIVILEGES ON `vakt_restore_check`.* TO 'vakt_backup'@'10.10.0.30';"),
        "{grants}"
    );
    let nft = std::fs::read_to_string(db.join("etc/vakt/nftables.nft")).unwrap();
    assert!(
        nft.contains("ip saddr { 10.10.0.11, 10.10.0.12 } tcp dport 3306 accept")
            && nft.contains("ip saddr { 10.10.0.30 } tcp dport 3306 accept"),
        "{nft}"
    );
    for (shell, script) in [
        ("bash", "usr/local/sbin/vakt-backup"),
        ("sh", "etc/init.d/vakt-backup"),
    ] {
        let r = Command::new(shell)
            .arg("-n")
            .arg(backup.join(script))
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    // Only the backup host gets them; the web hosts' firewall does not
    // know backup01.
    assert!(!out.path().join("web01/usr/local/sbin/vakt-backup").exists());
    let web = std::fs::read_to_string(out.path().join("web01/etc/vakt/nftables.nft")).unwrap();
    assert!(!web.contains("10.10.0.30"), "{web}");
}
