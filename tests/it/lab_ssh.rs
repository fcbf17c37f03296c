//! SSH as many production sites have it (root only, as on CI): a non-root
//! user with sudo, and web and DB hosts that only a jump host (LB01) can
//! reach — the control namespace gets no route to them. `vakt up` must
//! deploy through both, and a second run must change nothing.

use std::process::Command;

use crate::lab::Lab;
use crate::support::{TempDir, needs};

const USER: &str = "vaktlabop";
const SUDOERS: &str = "/etc/sudoers.d/vakt-lab-test";

/// A login user for the lab hosts (they share this machine's accounts),
/// allowed passwordless sudo; removed again on drop.
struct Operator;

impl Operator {
    fn create() -> Operator {
        let exists = Command::new("id")
            .arg(USER)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            assert!(
                Command::new("useradd")
                    .args(["-M", "-s", "/bin/sh", "-p", "*", USER])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        std::fs::write(SUDOERS, format!("{USER} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
        std::fs::set_permissions(SUDOERS, std::os::unix::fs::PermissionsExt::from_mode(0o440))
            .unwrap();
        Operator
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(SUDOERS);
        let _ = Command::new("userdel").arg(USER).status();
    }
}

#[test]
#[cfg_attr(
    not(vakt_lab_sudo),
    ignore = "lab: needs root and ip, sshd, ssh, curl, util-linux, mariadb-server, mariadb-client, sudo, passwd (README: Tests)"
)]
fn a_sudo_user_deploys_through_a_jump_host() {
    needs::require("vakt_lab_sudo");
    let _op = Operator::create();
    let dir = TempDir::new("labssh");
    let inv_path = dir.path().join("oslo.toml");
    let oslo = include_str!("../../inventory/oslo.toml")
        .replace(
            "[ssh]\nuser = \"root\"",
            &format!("[ssh]\nuser = \"{USER}\"\nsudo = true"),
        )
        .replace(
            "private_ip = \"10.10.0.11\"\n",
            "private_ip = \"10.10.0.11\"\nssh = { jump = \"lb01\" }\n",
        )
        .replace(
            "private_ip = \"10.10.0.12\"\n",
            "private_ip = \"10.10.0.12\"\nssh = { jump = \"lb01\" }\n",
        )
        .replace(
            "private_ip = \"10.10.0.20\"\n",
            "private_ip = \"10.10.0.20\"\nssh = { jump = \"lb01\" }\n",
        );
    assert_eq!(oslo.matches("jump = \"lb01\"").count(), 3, "{oslo}");
    assert!(oslo.contains("sudo = true"), "{oslo}");
    std::fs::write(&inv_path, &oslo).unwrap();
    let lab = Lab::up_file("sj", &inv_path.display().to_string());
    let inv = lab.inventory.clone();

    // From the control namespace only LB01 can be reached now.
    for ip in ["10.10.0.11", "10.10.0.12", "10.10.0.20"] {
        assert!(
            Command::new("ip")
                .args([
                    "-n",
                    &format!("{}-ctl", lab.name),
                    "route",
                    "add",
                    "blackhole"
                ])
                .arg(format!("{ip}/32"))
                .status()
                .unwrap()
                .success()
        );
    }
    let (code, _, _) = lab.ctl(&[
        "ssh",
        "-F",
        &format!("/run/vakt-lab/{}/ssh_config", lab.name),
        "-o",
        "ConnectTimeout=2",
        "web01",
        "true",
    ]);
    assert_ne!(code, 0, "web01 must not be reachable directly");

    let (code, out, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, again, err) = lab.vakt(&["up", "-i", &inv]);
    assert_eq!(code, 0, "{again}{err}");
    assert!(again.contains("no changes"), "{again}");

    // Files written through sudo belong to root; the cluster serves.
    let (_, owner) = lab.on(
        "web01",
        &["stat", "-c", "%U %a", "/etc/init.d/vakt-demo-web"],
    );
    assert_eq!(owner.trim(), "root 755");
    let (_, owner) = lab.on("lb01", &["stat", "-c", "%U", "/etc/vakt/proxy.toml"]);
    assert_eq!(owner.trim(), "root");
    let page = lab.curl(&["-i", "http://10.10.0.10/"]);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let log = std::fs::read_to_string(format!("/run/vakt-lab/{}/hosts/web01/sshd.log", lab.name))
        .unwrap_or_default();
    assert!(
        log.contains(&format!("for {USER} from 10.10.0.10")),
        "web01 was reached through lb01 (10.10.0.10) as {USER}:\n{log}"
    );

    // `exec` runs as the login user unless --sudo (here without ssh.sudo);
    // with ssh.sudo every command is root's already.
    let (code, out, err) = lab.vakt(&["exec", "-i", &inv, "--hosts", "web01", "--", "id -u"]);
    assert_eq!((code, out.as_str()), (0, "web01 | 0\n"), "{err}");
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, oslo.replace("sudo = true", "sudo = false")).unwrap();
    let plain = plain.display().to_string();
    let (code, out, err) = lab.vakt(&["exec", "-i", &plain, "--hosts", "web01", "--", "id -u"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_ne!(out, "web01 | 0\n", "{out}");
    let (code, out, err) = lab.vakt(&[
        "exec", "-i", &plain, "--hosts", "web01", "--sudo", "--", "id -u",
    ]);
    assert_eq!((code, out.as_str()), (0, "web01 | 0\n"), "{err}");
}
