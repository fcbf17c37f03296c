//! Which hosts a command works on: `--hosts a,b` and `--roles web,lb`
//! (Ansible's `--limit`, Kamal's `--hosts/--roles`), checked against the
//! inventory before any host is touched. Pure; the commands apply the
//! answer to their `Target`.

use std::collections::BTreeSet;

use anyhow::bail;
use clap::Args;
use vakt_runtime::config::closest;

use crate::inventory::{Inventory, Role};

/// The targeting flags, flattened into each command that honours them.
#[derive(Args, Clone, Default)]
pub struct Selection {
    /// Only these hosts (comma-separated names from the inventory).
    #[arg(long, value_name = "HOST,...", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// Only hosts with one of these roles (lb, web, db, backup; comma-separated).
    #[arg(long, value_name = "ROLE,...", value_delimiter = ',', value_parser = ["lb", "web", "db", "backup"])]
    pub roles: Vec<String>,
}

impl Selection {
    /// Whether any flag narrows the selection.
    pub fn narrows(&self) -> bool {
        !self.hosts.is_empty() || !self.roles.is_empty()
    }

    /// The selected host names, in inventory order: those named by
    /// `--hosts` and those with a role in `--roles` (both flags: either);
    /// every host when neither is given. An unknown name or a selection
    /// that matches no host is an error naming the hosts there are.
    pub fn pick(&self, inv: &Inventory) -> anyhow::Result<BTreeSet<String>> {
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        let mut problems = Vec::new();
        for n in &self.hosts {
            if !names.contains(&n.as_str()) {
                let hint = closest(n, &names)
                    .map(|c| format!("did you mean `{c}`? "))
                    .unwrap_or_default();
                problems.push(format!(
                    "--hosts: no host `{n}` in {} ({hint}its hosts: {})",
                    inv.file,
                    names.join(", ")
                ));
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("\n"));
        }
        let roles: Vec<Role> = self
            .roles
            .iter()
            .filter_map(|r| match r.as_str() {
                "lb" => Some(Role::Lb),
                "web" => Some(Role::Web),
                "db" => Some(Role::Db),
                "backup" => Some(Role::Backup),
                // clap's value_parser admits only the four above.
                _ => None,
            })
            .collect();
        let picked: BTreeSet<String> = inv
            .hosts
            .iter()
            .filter(|h| {
                !self.narrows() || self.hosts.contains(&h.name) || roles.iter().any(|&r| h.has(r))
            })
            .map(|h| h.name.clone())
            .collect();
        if picked.is_empty() {
            bail!(
                "--roles {} matches no host in {}: its hosts are {}",
                self.roles.join(","),
                inv.file,
                names.join(", ")
            );
        }
        Ok(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv() -> Inventory {
        let src = vakt_runtime::config::Source::new(
            "t.toml",
            crate::inventory::LOCAL_DEFAULT.to_string(),
        );
        crate::inventory::parse(&src, None)
            .expect("the local inventory is valid")
            .0
    }

    fn sel(hosts: &[&str], roles: &[&str]) -> Selection {
        Selection {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            roles: roles.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn no_flag_selects_every_host() {
        let inv = inv();
        assert_eq!(sel(&[], &[]).pick(&inv).unwrap().len(), inv.hosts.len());
    }

    #[test]
    fn hosts_and_roles_select_either() {
        let picked = sel(&["lb01"], &["web"]).pick(&inv()).unwrap();
        let v: Vec<&str> = picked.iter().map(String::as_str).collect();
        assert_eq!(v, ["lb01", "web01", "web02"]);
    }

    #[test]
    fn an_unknown_host_is_named_with_a_suggestion() {
        let e = sel(&["web1"], &[]).pick(&inv()).unwrap_err().to_string();
        assert!(
            e.contains("no host `web1`") && e.contains("did you mean `web01`"),
            "{e}"
        );
    }
}
