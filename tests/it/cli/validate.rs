//! Every validation rule answers with its message, file:line:column and a
//! hint, and all problems of a file come out together.

use crate::support::{TempDir, vakt};

fn check(text: &str) -> (bool, String) {
    let dir = TempDir::new("inv");
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    let out = vakt().args(["check", "-i"]).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&p.display().to_string(), "bad.toml");
    (out.status.success(), err)
}

const BASE: &str = r#"[cluster]
name = "shop"
vip = "203.0.113.10"

[[hosts]]
name = "lb01"
roles = ["lb"]
public_ip = "203.0.113.11"
private_ip = "10.10.0.10"

[[hosts]]
name = "lb02"
roles = ["lb"]
public_ip = "203.0.113.12"
private_ip = "10.10.0.13"

[[hosts]]
name = "web01"
roles = ["web"]
private_ip = "10.10.0.11"
web = { port = 80, cookie = "w1" }

[[hosts]]
name = "db01"
roles = ["db"]
private_ip = "10.10.0.20"
location = { country = "NO", city = "Oslo" }
"#;

#[test]
fn the_base_inventory_is_valid() {
    let (ok, err) = check(BASE);
    assert!(ok, "{err}");
}

#[test]
fn each_rule_names_the_place_and_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "name = \"web01\"\nroles = [\"web\"]\nprivate_ip = \"10.10.0.11\"",
            "name = \"web01\"\nroles = [\"web\"]\nprivate_ip = \"10.10.0.300\"",
            "bad.toml:20:14: error: web01.private_ip \"10.10.0.300\" is not an IPv4 address",
        ),
        (
            "name = \"lb02\"",
            "name = \"lb01\"",
            "error: two hosts are named `lb01`",
        ),
        (
            "private_ip = \"10.10.0.13\"",
            "private_ip = \"10.10.0.10\"",
            "share the address 10.10.0.10",
        ),
        (
            "private_ip = \"10.10.0.20\"",
            "private_ip = \"203.0.113.20\"",
            "bad.toml:26:14: error: db01.private_ip 203.0.113.20 is not in a private range",
        ),
        (
            "public_ip = \"203.0.113.12\"",
            "public_ip = \"10.0.0.12\"",
            "bad.toml:14:13: error: lb02.public_ip 10.0.0.12 is a private address",
        ),
        (
            "country = \"NO\"",
            "country = \"XX\"",
            "bad.toml:27:24: error: db01.location.country \"XX\" is not an ISO 3166 code",
        ),
        (
            "location = { country = \"NO\", city = \"Oslo\" }\n",
            "",
            "`db01` holds data but has no location",
        ),
        (
            "roles = [\"web\"]",
            "roles = [\"www\"]",
            "bad.toml:19:10: error: `web01`: unknown role \"www\"",
        ),
        (
            "[cluster]\nname = \"shop\"",
            "[cluster]\nname = \"shop\"\nvipp = \"x\"",
            "bad.toml:3:1: error: unknown key `vipp` in `cluster`\n  hint: did you mean `vip`?",
        ),
    ];
    for (from, to, want) in cases {
        let text = BASE.replacen(from, to, 1);
        assert_ne!(text, BASE, "case {want:?} did not change the inventory");
        let (ok, err) = check(&text);
        assert!(!ok, "{want}: accepted");
        assert!(err.contains(want), "want {want:?}\ngot:\n{err}");
    }
}

#[test]
fn inventory_wide_rules() {
    let no_web = BASE
        .replace("roles = [\"web\"]", "roles = [\"db\"]")
        .replace(
            "web = { port = 80, cookie = \"w1\" }",
            "location = { country = \"NO\" }",
        );
    assert!(check(&no_web).1.contains("the inventory has no web hosts"));
    let two_cookies = BASE.replace(
        "[[hosts]]\nname = \"db01\"",
        "[[hosts]]\nname = \"web02\"\nroles = [\"web\"]\nprivate_ip = \"10.10.0.12\"\nweb = { port = 80, cookie = \"w1\" }\n\n[[hosts]]\nname = \"db01\"",
    );
    assert!(check(&two_cookies).1.contains("share the cookie \"w1\""));
    let one_lb = BASE.replacen("[[hosts]]\nname = \"lb02\"\nroles = [\"lb\"]\npublic_ip = \"203.0.113.12\"\nprivate_ip = \"10.10.0.13\"\n", "", 1);
    let (ok, err) = check(&one_lb);
    assert!(
        ok && err.contains("warning: a VIP with a single load balancer"),
        "{err}"
    );
    let no_public = BASE
        .replace("vip = \"203.0.113.10\"\n", "")
        .replace("public_ip = \"203.0.113.11\"\n", "");
    assert!(
        check(&no_public)
            .1
            .contains("load balancer `lb01` has no public_ip and the cluster has no vip")
    );
    let plain =
        format!("{BASE}\n[balancer]\nstats = {{ user = \"admin\", password = \"hunter2\" }}\n");
    let (ok, err) = check(&plain);
    assert!(
        !ok && err.contains("the stats password is written in the inventory")
            && err.contains("password_env"),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_together_and_nothing_is_touched() {
    let text = BASE
        .replace("10.10.0.300", "x")
        .replace(
            "private_ip = \"10.10.0.11\"",
            "private_ip = \"10.10.0.999\"",
        )
        .replace("country = \"NO\"", "country = \"ZZ\"");
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(
        err.contains("10.10.0.999") && err.contains("\"ZZ\""),
        "{err}"
    );
    assert!(
        err.contains("problems in the inventory; nothing was changed"),
        "{err}"
    );
}

#[test]
fn completions_and_the_manual_page_are_printed() {
    let out = vakt().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("_vakt()"));
    let out = vakt().arg("man").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(".TH vakt 1"));
}

#[test]
fn a_host_without_a_name_gives_one_error_not_unknown_keys() {
    let text = BASE.replacen("name = \"web01\"\n", "", 1);
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:17:1: error: `hosts[2]` has no name"),
        "{err}"
    );
    assert!(!err.contains("unknown key"), "{err}");
    assert!(err.contains("error: 1 problem in the inventory"), "{err}");
}

#[test]
fn a_misspelt_roles_key_is_one_error_with_did_you_mean() {
    let text = BASE.replacen("roles = [\"web\"]", "rolse = [\"web\"]", 1);
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(
        err.starts_with(
            "bad.toml:19:1: error: unknown key `rolse` in `hosts[2]`\n  hint: did you mean `roles`?"
        ),
        "{err}"
    );
    assert!(!err.contains("has no roles"), "{err}");
    assert!(!err.contains("no web hosts"), "{err}");
    assert!(err.contains("error: 1 problem in the inventory"), "{err}");
}

#[test]
fn the_private_ip_hint_suggests_a_free_address() {
    // Old hint: always "10.10.0.11", which web01 has here.
    let text = BASE.replacen("private_ip = \"10.10.0.20\"\n", "", 1);
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(err.contains("host `db01` has no private_ip"), "{err}");
    assert!(err.contains("add private_ip = \"10.10.0.12\""), "{err}");
}

#[test]
fn every_toml_syntax_error_is_reported() {
    let text = BASE
        .replacen("vip = \"203.0.113.10\"", "vip = = \"203.0.113.10\"", 1)
        .replacen("private_ip = \"10.10.0.11\"", "private_ip = 10.10.0.11", 1);
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(
        err.contains("bad.toml:3:7: error: invalid TOML: extra `=`"),
        "{err}"
    );
    assert!(err.contains("bad.toml:20:"), "{err}");
    assert!(err.contains("error: 2 problems in the inventory"), "{err}");
}

#[test]
fn a_cluster_without_a_name_is_an_error() {
    let text = BASE.replacen("name = \"shop\"\n", "", 1);
    let (ok, err) = check(&text);
    assert!(!ok, "{err}");
    assert!(
        err.contains("error: [cluster] has no name\n  hint: add name = \"shop\""),
        "{err}"
    );
}

#[test]
fn requiring_geoip_without_a_database_is_an_error() {
    let text = format!("{BASE}\n[policy]\nrequire = [\"declared\", \"geoip\"]\n");
    let (ok, err) = check(&text);
    assert!(!ok, "{err}");
    assert!(
        err.contains("policy.require lists \"geoip\" but there is no policy.geoip_db"),
        "{err}"
    );
    assert!(err.contains("add geoip_db = \"geo.mmdb\""), "{err}");
    let with_db = format!("{text}geoip_db = \"geo.mmdb\"\n");
    let (ok, err) = check(&with_db);
    assert!(ok, "{err}");
}

#[test]
fn a_misspelt_name_or_private_ip_is_one_error_each() {
    let text = BASE
        .replacen("name = \"web01\"", "nmae = \"web01\"", 1)
        .replacen(
            "private_ip = \"10.10.0.20\"",
            "privat_ip = \"10.10.0.20\"",
            1,
        );
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(
        err.contains("unknown key `nmae` in `hosts[2]`\n  hint: did you mean `name`?"),
        "{err}"
    );
    assert!(
        err.contains("unknown key `privat_ip` in `hosts[3]`\n  hint: did you mean `private_ip`?"),
        "{err}"
    );
    assert!(
        !err.contains("has no name") && !err.contains("has no private_ip"),
        "{err}"
    );
    assert!(err.contains("error: 2 problems in the inventory"), "{err}");
    // `data` is a key of its own, not a near miss of `name`.
    let text = BASE.replacen("name = \"web01\"\n", "data = true\n", 1);
    let (ok, err) = check(&text);
    assert!(!ok && err.contains("`hosts[2]` has no name"), "{err}");
}

/// `[firewall]`: a malformed network, an unknown proto, role or host, a
/// rule without a port and a rollback time out of range are each reported,
/// all at once, with the place and the fix.
#[test]
fn firewall_mistakes_are_reported_together_with_their_fix() {
    let text = format!(
        "{BASE}\n[firewall]\nadmin = [\"10.0.0.0/33\", \"198.51.100.7\"]\nrollback_after = \"1s\"\nextra = [\n  {{ port = 9100, proto = \"sctp\", roles = [\"cache\"], hosts = [\"web1\"] }},\n  {{ from = [\"10.10.0.5/32\"] }},\n]\n"
    );
    let (ok, err) = check(&text);
    assert!(!ok, "{err}");
    for expected in [
        "error: \"10.0.0.0/33\" is not a network",
        "\"10.10.0.0/24\"",
        "error: `firewall.rollback_after` must be between 2s and 1h",
        "error: firewall.extra: unknown proto \"sctp\"",
        "error: firewall.extra: unknown role \"cache\"",
        "error: firewall.extra: no host \"web1\" in the inventory",
        "did you mean \"web01\"?",
        "error: a firewall.extra rule has no port",
    ] {
        assert!(err.contains(expected), "missing `{expected}`:\n{err}");
    }
    assert!(
        err.contains("bad.toml:31:18: error: `firewall.rollback_after`"),
        "{err}"
    );
    // A good [firewall] passes, and check says who may SSH in.
    let good = format!("{BASE}\n[firewall]\nadmin = [\"198.51.100.0/24\"]\n");
    let dir = TempDir::new("inv");
    let p = dir.path().join("good.toml");
    std::fs::write(&p, good).unwrap();
    let out = vakt().args(["check", "-i"]).arg(&p).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout
            .contains("firewall: nftables table inet vakt on every host; SSH from 198.51.100.0/24"),
        "{stdout}"
    );
}

#[test]
fn logs_settings_are_checked_with_their_place_and_the_fix() {
    let (ok, err) = check(&format!(
        "{BASE}\n[logs]\nto = \"journal\"\nkeep_days = 0\nanonymise = true\n"
    ));
    assert!(!ok);
    assert!(
        err.contains("logs.to \"journal\" is not a place vakt logs to")
            && err.contains("write to = \"file\""),
        "{err}"
    );
    assert!(err.contains("keep_days"), "{err}");
    assert!(
        err.contains("unknown key `anonymise`") && err.contains("did you mean `anonymize`?"),
        "{err}"
    );
    let (ok, err) = check(&format!(
        "{BASE}\n[logs]\nto = \"syslog-rfc5424\"\nkeep_days = 30\nanonymize = true\n"
    ));
    assert!(ok, "{err}");
}

/// `db = { engine = .. }`: a password written in the inventory is refused
/// at its line with the fix, and so are an unknown engine, MariaDB keys
/// without `engine = "mariadb"`, both password sources, a database name
/// that is not a plain name, MariaDB with `demo = true`, and MariaDB on a
/// local host; `engine = "mariadb"` with `password_env` or `password_file`
/// is valid, as is `engine = "demo"`.
#[test]
fn the_db_engine_is_checked_and_its_password_never_sits_in_the_inventory() {
    let line = BASE.lines().count() + 1;
    let with = |db: &str| format!("{BASE}db = {{ {db} }}\n");
    for good in [
        r#"engine = "mariadb", port = 3306, database = "shop", user = "shop", password_env = "VAKT_DB_PASSWORD""#,
        r#"engine = "mariadb", password_file = "/etc/vakt-db-password""#,
        r#"engine = "demo""#,
        r#"port = 3306, demo = true"#,
    ] {
        let (ok, err) = check(&with(good));
        assert!(ok, "{good}: {err}");
    }
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"engine = "mariadb", password = "hunter2""#,
            "db01.db.password: the database password is written in the inventory",
            "use password_env = \"VAKT_DB_PASSWORD\" or password_file",
        ),
        (
            r#"engine = "mysql""#,
            "db01.db.engine \"mysql\" is not known",
            "use engine = \"mariadb\"",
        ),
        (
            r#"database = "shop""#,
            "db01.db.database is set but the engine is not mariadb",
            "add engine = \"mariadb\"",
        ),
        (
            r#"engine = "mariadb", password_env = "A", password_file = "/b""#,
            "db01.db gives both password_env and password_file",
            "give either password_env or password_file, not both",
        ),
        (
            r#"engine = "mariadb", database = "shop-db""#,
            "db01.db.database \"shop-db\" is not a plain name",
            "use 1 to 32 letters, digits and _",
        ),
        (
            r#"engine = "mariadb", demo = true"#,
            "db01.db has engine = \"mariadb\" and demo = true",
            "drop demo = true",
        ),
    ];
    for (db, message, hint) in cases {
        let (ok, err) = check(&with(db));
        assert!(!ok, "{db}: accepted");
        assert!(
            err.contains(&format!("bad.toml:{line}:")) && err.contains(message),
            "{db}: {err}"
        );
        assert!(err.contains(hint), "{db}: {err}");
    }
    let local = with(r#"engine = "mariadb""#).replace("10.10.0.20", "127.0.0.20");
    let (ok, err) = check(&local);
    assert!(
        !ok && err.contains("engine = \"mariadb\" needs a remote host")
            && err.contains("use engine = \"demo\" for a local cluster"),
        "{err}"
    );
}

/// `[[backups]] kind = "mariadb-dump"` and role backup: each mistake is
/// named at its line with the fix (an unknown host with "did you mean", a
/// host that is neither a backup host nor the DB, no MariaDB to dump, two
/// dumps on one host, a relative path, `keep` out of range, an unknown
/// schedule, a location of its own, dump keys on another kind, a backup
/// host that runs a service too, a shop user named like the backup
/// account); the fixture itself is valid.
#[test]
fn backup_targets_are_checked_with_their_place_and_the_fix() {
    let good = include_str!("../../../inventory/oslo.toml");
    let (ok, err) = check(good);
    assert!(ok, "{err}");
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases: &[(&str, &str, &str, &str, usize)] = &[
        (
            "host = \"backup01\"",
            "host = \"backup1\"",
            "backups.nightly.host `backup1` is not a host of the inventory",
            "did you mean `backup01`?",
            line_of("host = \"backup01\""),
        ),
        (
            "host = \"backup01\"",
            "host = \"web01\"",
            "backups.nightly.host `web01` has role web and is not the DB host",
            "give `web01` roles = [\"backup\"]",
            line_of("host = \"backup01\""),
        ),
        (
            "path = \"/var/backups/vakt\"",
            "path = \"backups\"",
            "backups.nightly.path \"backups\" is not an absolute folder of its own",
            "e.g. \"/var/backups/vakt\"",
            line_of("path = \"/var/backups/vakt\""),
        ),
        ("keep = 7", "keep = 0", "keep", "1", line_of("keep = 7")),
        (
            "schedule = \"daily\"",
            "schedule = \"nightly\"",
            "backups.nightly.schedule \"nightly\" is not known",
            "use \"hourly\", \"daily\" or \"weekly\"",
            line_of("schedule = \"daily\""),
        ),
        (
            "schedule = \"daily\"",
            "schedule = \"daily\"\nlocation = { country = \"NO\" }",
            "backups.nightly.location: a mariadb-dump target lies where its host is",
            "drop location here",
            line_of("schedule = \"daily\"") + 1,
        ),
        (
            "kind = \"mariadb-dump\"\nhost",
            "kind = \"restic\"\nlocation = { country = \"NO\" }\nhost",
            "backups.nightly.host is set but the kind is not \"mariadb-dump\"",
            "add kind = \"mariadb-dump\"",
            line_of("host = \"backup01\"") + 1,
        ),
        (
            "roles = [\"backup\"]",
            "roles = [\"backup\", \"web\"]\nweb = { port = 80, cookie = \"w3\" }",
            "`backup01` has role backup and runs a service too",
            "give it roles = [\"backup\"]",
            line_of("name = \"backup01\"") - 1,
        ),
        (
            "db = { engine = \"mariadb\", port = 3306, database = \"shop\", user = \"shop\", password_env = \"VAKT_DB_PASSWORD\" }",
            "db = { port = 3306, demo = true }",
            "backup `nightly` dumps MariaDB, but no DB host has engine = \"mariadb\"",
            "give the db host db = { engine = \"mariadb\"",
            line_of("name = \"nightly\"") - 1,
        ),
    ];
    for (from, to, message, hint, line) in cases {
        assert!(good.contains(from), "{from}");
        let (ok, err) = check(&good.replacen(from, to, 1));
        assert!(!ok, "{to}: accepted");
        assert!(
            err.contains(&format!("bad.toml:{line}:")) && err.contains(message),
            "{to}: line {line}, {message}: {err}"
        );
        assert!(err.contains(hint), "{to}: {err}");
    }
    // The shop's user may not take the backup account's name.
    let (ok, err) = check(&good.replace("user = \"shop\"", "user = \"vakt_backup\""));
    assert!(
        !ok && err.contains(&format!("bad.toml:{}:", line_of("name = \"nightly\"") - 1))
            && err.contains("db01.db.user is vakt_backup, the backup account's name"),
        "{err}"
    );
    // Two dumps on one host.
    let twice = format!(
        "{good}\n[[backups]]\nname = \"hourly\"\nkind = \"mariadb-dump\"\nhost = \"backup01\"\npath = \"/var/backups/hourly\"\n"
    );
    let (ok, err) = check(&twice);
    assert!(
        !ok && err.contains("backups `nightly` and `hourly` are both dumps on `backup01`"),
        "{err}"
    );
    // The DB host may keep its own dumps.
    let (ok, err) = check(&good.replace("host = \"backup01\"", "host = \"db01\""));
    assert!(ok, "{err}");
}
