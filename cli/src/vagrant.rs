//! `vakt vagrant`: the inventory as a multi-machine Vagrantfile (one VM per
//! host on a host-only network with the inventory's private addresses), and
//! `vagrant ssh-config` output turned into an inventory overlay so that
//! `vakt up` reaches the VMs through Vagrant's forwarded SSH ports. Pure:
//! the command module reads and writes the files.

use std::net::Ipv4Addr;

use minijinja::context;
use serde::Serialize;

use crate::inventory::{Inventory, Role};
use crate::render::Templates;

/// Short OS names and the boxes they stand for. bento's boxes carry the
/// VirtualBox guest additions (centos/7 does not).
pub const BOXES: &[(&str, &str)] = &[
    ("rocky9", "bento/rockylinux-9"),
    ("alma9", "bento/almalinux-9"),
    ("centos7", "bento/centos-7"),
    ("debian12", "bento/debian-12"),
    ("ubuntu2204", "bento/ubuntu-22.04"),
];

/// VirtualBox 6.1.28+ allows host-only addresses only in this network
/// unless /etc/vbox/networks.conf says otherwise.
const VBOX_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(192, 168, 56, 0), 21);

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub name: String,
    #[serde(rename = "box")]
    pub box_name: String,
    pub private_ip: String,
    pub memory: u32,
    pub cpus: u32,
    /// Guest port forwarded to `forward_host` on 127.0.0.1 (the LBs' HTTP port).
    pub forward: Option<u16>,
    pub forward_host: u16,
}

fn in_vbox_range(ip: Ipv4Addr) -> bool {
    let mask = u32::MAX << (32 - VBOX_NET.1);
    u32::from(ip) & mask == u32::from(VBOX_NET.0) & mask
}

/// One machine per host, and the warnings the operator should read.
pub fn machines(inv: &Inventory) -> Result<(Vec<Machine>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut lb_index = 0u16;
    for h in &inv.hosts {
        let os = h.os.clone().unwrap_or_else(|| inv.vagrant.os.clone());
        let box_name = match (&h.box_name, BOXES.iter().find(|(o, _)| *o == os)) {
            (Some(b), _) => b.clone(),
            (None, Some((_, b))) => b.to_string(),
            (None, None) => {
                errors.push(format!(
                    "{}: os \"{os}\" is not known: use one of {} or name a box (box = \"...\")",
                    h.name,
                    BOXES.iter().map(|(o, _)| *o).collect::<Vec<_>>().join(", ")
                ));
                continue;
            }
        };
        if !in_vbox_range(h.private_ip) {
            warnings.push(format!(
                "{}: {} is outside 192.168.56.0/21, the only host-only network VirtualBox 6.1.28+ allows by default; use that range in the inventory, or allow yours in /etc/vbox/networks.conf (a line like `* 10.10.0.0/24`)",
                h.name, h.private_ip
            ));
        }
        let forward = h.has(Role::Lb).then_some(inv.port);
        let forward_host = inv.vagrant.forward_port + lb_index;
        if forward.is_some() {
            lb_index += 1;
        }
        out.push(Machine {
            name: h.name.clone(),
            box_name,
            private_ip: h.private_ip.to_string(),
            memory: h.memory.unwrap_or(inv.vagrant.memory),
            cpus: h.cpus.unwrap_or(inv.vagrant.cpus),
            forward,
            forward_host,
        });
    }
    if errors.is_empty() {
        Ok((out, warnings))
    } else {
        Err(errors.join("\n"))
    }
}

/// The Vagrantfile for `inv`; `inventory` is the path it names in its header.
pub fn vagrantfile(
    inv: &Inventory,
    machines: &[Machine],
    inventory: &str,
    t: &Templates,
) -> Result<String, minijinja::Error> {
    t.render(
        "Vagrantfile.j2",
        context! {
            inventory => inventory,
            hosts => machines,
            ssh_public_key => inv.vagrant.ssh_public_key,
        },
    )
}

/// One `Host` block of `vagrant ssh-config` output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SshEntry {
    pub host: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity: Option<String>,
}

/// Parses `vagrant ssh-config` output (ssh_config syntax, one `Host` block
/// per machine; keywords are case-insensitive).
pub fn parse_ssh_config(text: &str) -> Result<Vec<SshEntry>, String> {
    let mut out: Vec<SshEntry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(|c: char| c.is_whitespace() || c == '=')
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .ok_or_else(|| format!("line {}: `{line}` is not `Keyword value`", n + 1))?;
        if key == "host" {
            out.push(SshEntry {
                host: value,
                port: 22,
                ..Default::default()
            });
            continue;
        }
        let Some(e) = out.last_mut() else {
            return Err(format!("line {}: `{line}` comes before any `Host`", n + 1));
        };
        match key.as_str() {
            "hostname" => e.address = value,
            "user" => e.user = value,
            "port" => {
                e.port = value
                    .parse()
                    .map_err(|_| format!("line {}: port `{value}` is not a number", n + 1))?;
            }
            "identityfile" => e.identity = Some(value),
            _ => {}
        }
    }
    for e in &out {
        if e.address.is_empty() {
            return Err(format!("Host {} has no HostName", e.host));
        }
    }
    Ok(out)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The overlay for `inv` from `vagrant ssh-config` entries: per host the
/// address and port Vagrant forwards, its user (with sudo) and key. VMs
/// get new host keys when they are recreated, so keys are accepted on
/// first contact. Also returns warnings for inventory hosts with no entry.
pub fn overlay(inv: &Inventory, entries: &[SshEntry]) -> Result<(String, Vec<String>), String> {
    let mut text = String::from(
        "# generated by `vakt vagrant inventory` from `vagrant ssh-config` — do not edit\n\
         # Listed in the inventory's `overlays`; each entry overrides that host's SSH settings.\n",
    );
    for e in entries {
        if !inv.hosts.iter().any(|h| h.name == e.host) {
            return Err(format!(
                "`vagrant ssh-config` names `{}`, which {} does not have: render the Vagrantfile from this inventory (`vakt vagrant -i {}`)",
                e.host, inv.file, inv.file
            ));
        }
        text.push_str(&format!(
            "\n[[hosts]]\nname = {}\nssh = {{ address = {}, port = {}, user = {}, sudo = true, host_keys = \"accept-new\"{} }}\n",
            toml_str(&e.host),
            toml_str(&e.address),
            e.port,
            toml_str(&e.user),
            e.identity
                .as_ref()
                .map(|i| format!(", identity = {}", toml_str(i)))
                .unwrap_or_default()
        ));
    }
    let warnings = inv
        .hosts
        .iter()
        .filter(|h| !entries.iter().any(|e| e.host == h.name))
        .map(|h| format!("{}: no VM in `vagrant ssh-config` (is it up?)", h.name))
        .collect();
    Ok((text, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtualbox_range_is_192_168_56_0_21() {
        assert!(in_vbox_range("192.168.56.10".parse().unwrap()));
        assert!(in_vbox_range("192.168.63.254".parse().unwrap()));
        assert!(!in_vbox_range("192.168.64.1".parse().unwrap()));
        assert!(!in_vbox_range("10.10.0.11".parse().unwrap()));
    }

    #[test]
    fn ssh_config_blocks_are_read() {
        let e = parse_ssh_config(
            "Host lb01\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  IdentityFile \"/x/private_key\"\n",
        )
        .unwrap();
        assert_eq!(
            e,
            vec![SshEntry {
                host: "lb01".into(),
                address: "127.0.0.1".into(),
                port: 2222,
                user: "vagrant".into(),
                identity: Some("/x/private_key".into()),
            }]
        );
        assert!(parse_ssh_config("  User vagrant\n").is_err());
    }
}
