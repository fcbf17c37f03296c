//! `vakt vagrant`: the checked-in vagrant/Vagrantfile is what the inventory
//! renders (golden), it passes `vagrant validate` (Debian's vagrant; no VM
//! is started, no box downloaded), addresses VirtualBox refuses are warned
//! about, and recorded `vagrant ssh-config` output becomes the overlay that
//! `vakt check` then shows.

use std::path::Path;
use std::process::Command;

use crate::support::{TempDir, vakt};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn render_to(dir: &Path, inventory: &str) -> (bool, String) {
    let out = vakt()
        .current_dir(root())
        .args(["vagrant", "-i", inventory, "--out"])
        .arg(dir.join("Vagrantfile"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_checked_in_vagrantfile_is_a_fresh_rendering_and_vagrant_validates_it() {
    let dir = TempDir::new("vagrant");
    let (ok, err) = render_to(dir.path(), "inventory/vagrant.toml");
    assert!(ok, "{err}");
    assert!(!err.contains("outside 192.168.56.0/21"), "{err}");
    let fresh = std::fs::read_to_string(dir.path().join("Vagrantfile")).unwrap();
    let checked_in = std::fs::read_to_string(root().join("vagrant/Vagrantfile")).unwrap();
    assert_eq!(
        fresh, checked_in,
        "vagrant/Vagrantfile is stale: run `vakt vagrant -i inventory/vagrant.toml`"
    );
    for expected in [
        "config.vm.define \"db01\"",
        "node.vm.box = \"bento/almalinux-9\"",
        "node.vm.box = \"bento/rockylinux-9\"",
        "ip: \"192.168.56.13\"",
        "guest: 80, host: 8081",
        "lv.memory = 2048",
    ] {
        assert!(fresh.contains(expected), "missing {expected}:\n{fresh}");
    }

    let Ok(v) = Command::new("vagrant").arg("--version").output() else {
        println!("vagrant is not installed (.ci/run installs it); skipping `vagrant validate`");
        return;
    };
    println!("{}", String::from_utf8_lossy(&v.stdout).trim());
    let home = TempDir::new("vagrant-home");
    let out = Command::new("vagrant")
        .args(["validate", "--ignore-provider"])
        .current_dir(dir.path())
        .env("VAGRANT_HOME", home.path())
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("Vagrantfile validated successfully"),
        "{said}"
    );
}

#[test]
fn addresses_virtualbox_refuses_are_warned_about_with_the_fix() {
    let dir = TempDir::new("vagrant-range");
    let (ok, err) = render_to(dir.path(), "inventory/oslo.toml");
    assert!(ok, "{err}");
    assert!(
        err.contains("web01: 10.10.0.11 is outside 192.168.56.0/21")
            && err.contains("/etc/vbox/networks.conf"),
        "{err}"
    );
    // An OS without a box is an error naming the host and the choices.
    let inv = dir.path().join("bad.toml");
    std::fs::write(
        &inv,
        std::fs::read_to_string(root().join("inventory/vagrant.toml"))
            .unwrap()
            .replace("os = \"alma9\"", "os = \"solaris\""),
    )
    .unwrap();
    let (ok, err) = render_to(dir.path(), &inv.display().to_string());
    assert!(!ok);
    assert!(
        err.contains("db01: os \"solaris\" is not known: use one of rocky9, alma9"),
        "{err}"
    );
}

#[test]
fn vagrant_ssh_config_becomes_the_overlay_the_inventory_reads() {
    let dir = TempDir::new("vagrant-overlay");
    // A copy of the inventory, so that its overlay lands in the temp folder.
    let inv = dir.path().join("vagrant.toml");
    std::fs::copy(root().join("inventory/vagrant.toml"), &inv).unwrap();
    let out = vakt()
        .args(["vagrant", "inventory", "-i"])
        .arg(&inv)
        .arg("--ssh-config")
        .arg(root().join("tests/data/vagrant-ssh-config.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let overlay = std::fs::read_to_string(dir.path().join("vagrant-ssh.toml")).unwrap();
    insta::assert_snapshot!("vagrant_overlay", overlay);

    // The inventory now reaches each VM through its forwarded port.
    let out = vakt()
        .args(["check", "--format", "json", "-i"])
        .arg(&inv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let web02 = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "web02")
        .unwrap();
    assert_eq!(web02["ssh"]["address"], "127.0.0.1");
    assert_eq!(web02["ssh"]["port"], 2202);
    assert_eq!(web02["ssh"]["user"], "vagrant");
    assert_eq!(
        web02["ssh"]["identity"],
        "/home/op/vakt/vagrant/.vagrant/machines/web02/virtualbox/private_key"
    );

    // A machine the inventory does not know is refused.
    let stray = dir.path().join("stray.txt");
    std::fs::write(&stray, "Host web09\n  HostName 127.0.0.1\n  Port 2299\n").unwrap();
    let out = vakt()
        .args(["vagrant", "inventory", "-i"])
        .arg(&inv)
        .arg("--ssh-config")
        .arg(&stray)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("names `web09`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_next_step_runs_vagrant_and_ssh_config_in_the_out_folder() {
    let dir = TempDir::new("vagrant out");
    let (ok, err) = render_to(dir.path(), "inventory/vagrant.toml");
    assert!(ok, "{err}");
    let next = err
        .lines()
        .find_map(|l| l.strip_prefix("next: "))
        .unwrap_or_else(|| panic!("no next step:\n{err}"));
    // The folder has a space: it is quoted for the shell.
    let quoted = format!("'{}'", dir.path().display());
    assert_eq!(
        next,
        format!(
            "(cd {quoted} && vagrant up) && vakt vagrant inventory -i inventory/vagrant.toml --dir {quoted} && vakt up -i inventory/vagrant.toml"
        )
    );
    // With the default folder the printed step needs no --dir. (In a copy,
    // so that the checked-in Vagrantfile is never written by a test.)
    let work = TempDir::new("vagrant-default");
    std::fs::create_dir(work.path().join("inventory")).unwrap();
    std::fs::copy(
        root().join("inventory/vagrant.toml"),
        work.path().join("inventory/vagrant.toml"),
    )
    .unwrap();
    let default = vakt()
        .current_dir(work.path())
        .args(["vagrant", "-i", "inventory/vagrant.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&default.stderr);
    assert!(default.status.success(), "{err}");
    assert!(
        err.contains(
            "next: (cd vagrant && vagrant up) && vakt vagrant inventory -i inventory/vagrant.toml && vakt up"
        ),
        "{err}"
    );
    assert!(work.path().join("vagrant/Vagrantfile").is_file());
}
