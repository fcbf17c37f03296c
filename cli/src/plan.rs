//! The plan: what `up` will do to one host, from what it should have
//! (rendered files, the binary, its services) and what it has now. Pure.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::render::File;
use crate::topology::Service;
use crate::transport::Init;

/// What the host has now.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    /// Current content of each file vakt manages (`None` = missing).
    pub files: BTreeMap<String, Option<String>>,
    pub binary_sha256: Option<String>,
    pub running: BTreeMap<Service, bool>,
    /// Packages a service needs that the host lacks (keepalived).
    pub missing: Vec<String>,
    /// How the host runs services: only its own kind of unit or init
    /// script restarts a service when it changes.
    pub init: Init,
    /// The firewall's side, when the host gets one.
    pub firewall: Option<FirewallState>,
}

/// The host's side of the firewall, as `read_state` found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FirewallState {
    /// `nft` is installed.
    pub nft: bool,
    /// The live table is the one vakt last loaded (see `firewall::STAMP_PATH`).
    pub in_force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    New,
    Changed,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilePlan {
    #[serde(serialize_with = "file_with_octal_mode")]
    pub file: File,
    pub change: Change,
    /// Unified diff against the host's version, when changed.
    pub diff: Option<String>,
}

/// A file as `plan --format json` shows it: its mode as people write modes,
/// an octal string ("0640"), not the number 416.
fn file_with_octal_mode<S: serde::Serializer>(f: &File, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Shown<'a> {
        path: &'a str,
        mode: String,
        content: &'a str,
    }
    Shown {
        path: &f.path,
        mode: format!("{:04o}", f.mode),
        content: if f.is_secret() {
            "(secret: not shown)"
        } else {
            &f.content
        },
    }
    .serialize(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    Start(Service),
    Reload(Service),
    Restart(Service),
    /// A new binary takes over the running proxy's sockets (no refused
    /// connection); other services restart.
    Upgrade(Service),
    /// Load the firewall's rules under a dead-man switch that puts the
    /// previous ones back after this many seconds unless confirmed.
    Firewall(u32),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Start(s) => write!(f, "start {}", s.name()),
            Action::Reload(s) => write!(f, "reload {}", s.name()),
            Action::Restart(s) => write!(f, "restart {}", s.name()),
            Action::Upgrade(s) => write!(f, "upgrade {}", s.name()),
            Action::Firewall(secs) => {
                write!(
                    f,
                    "load firewall rules (rolled back in {secs} s unless confirmed)"
                )
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub files: Vec<FilePlan>,
    pub binary: Change,
    /// Packages to install from the host's package manager first.
    pub install: Vec<String>,
    pub actions: Vec<Action>,
}

impl HostPlan {
    pub fn changes(&self) -> bool {
        self.binary != Change::Unchanged
            || !self.install.is_empty()
            || !self.actions.is_empty()
            || self.files.iter().any(|f| f.change != Change::Unchanged)
    }

    /// Applying it interrupts a running service (a restart, a binary
    /// upgrade), so `up` applies it in its one-host-at-a-time phase.
    pub fn interrupts(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Restart(_) | Action::Upgrade(_)))
    }
}

/// Which service a file belongs to on a host run by `init`, and whether a
/// change to it needs a restart (the process itself changes) or a reload
/// (its config changes). Every host gets both the systemd unit and the SysV
/// script (they stay right if the host changes init system); the one its
/// init system does not use restarts nothing.
fn owner(path: &str, init: Init) -> Option<(Service, bool)> {
    let unused = match init {
        Init::Systemd => "/etc/init.d/",
        Init::SysV => "/etc/systemd/system/",
    };
    if path.starts_with(unused) {
        return None;
    }
    match path {
        // A new certificate: the proxy also notices the file itself, but a
        // reload makes the switch happen before `up` goes on.
        "/etc/vakt/proxy.toml" | crate::render::TLS_PEM => Some((Service::Proxy, false)),
        "/etc/init.d/vakt-proxy" | "/etc/systemd/system/vakt-proxy.service" => {
            Some((Service::Proxy, true))
        }
        // The shop reads its settings and the DB password at start: a new
        // password reaches it by a restart.
        "/etc/init.d/vakt-demo-web"
        | "/etc/systemd/system/vakt-demo-web.service"
        | crate::render::DEMO_WEB_CONFIG
        | crate::render::DEMO_WEB_PASSWORD => Some((Service::DemoWeb, true)),
        "/etc/init.d/vakt-demo-db" | "/etc/systemd/system/vakt-demo-db.service" => {
            Some((Service::DemoDb, true))
        }
        // The grants are applied by the init script's reload; the server's
        // own settings take a restart.
        crate::render::MARIADB_GRANTS => Some((Service::MariaDb, false)),
        crate::render::MARIADB_CNF
        | "/etc/init.d/vakt-mariadb"
        | "/etc/systemd/system/vakt-mariadb.service" => Some((Service::MariaDb, true)),
        "/etc/keepalived/keepalived.conf" => Some((Service::Keepalived, false)),
        // The schedule: a timer cannot reload, and the init script's start
        // is what copies the cron entry. The script and its client settings
        // are read afresh by every run.
        crate::render::BACKUP_CRON
        | "/etc/init.d/vakt-backup"
        | "/etc/systemd/system/vakt-backup.timer"
        | "/etc/systemd/system/vakt-backup.service" => Some((Service::Backup, true)),
        "/etc/init.d/vakt-keepalived" => Some((Service::Keepalived, true)),
        _ => None,
    }
}

/// What the host's services need once `changed` files (and the binary,
/// when `binary_changed`) are in place: start what is stopped, take a new
/// binary over (proxy) or restart on it, restart on a new init script or
/// unit, reload on a new config. `up` and `rollback` share it.
pub fn actions(
    services: &[Service],
    running: &BTreeMap<Service, bool>,
    init: Init,
    binary_changed: bool,
    changed: &[&str],
) -> Vec<Action> {
    let mut reload: Vec<Service> = Vec::new();
    let mut restart: Vec<Service> = Vec::new();
    for (svc, needs_restart) in changed.iter().filter_map(|p| owner(p, init)) {
        if needs_restart {
            restart.push(svc)
        } else {
            reload.push(svc)
        }
    }
    let mut actions = Vec::new();
    for &svc in services {
        let running = running.get(&svc).copied().unwrap_or(false);
        // Keepalived and MariaDB are the host's own packages, and the
        // backup schedule runs no vakt: a new vakt binary restarts none.
        let binary_restart = binary_changed
            && !matches!(
                svc,
                Service::Keepalived | Service::MariaDb | Service::Backup
            );
        if !running {
            actions.push(Action::Start(svc));
        } else if binary_restart && svc == Service::Proxy && !restart.contains(&svc) {
            actions.push(Action::Upgrade(svc));
        } else if binary_restart || restart.contains(&svc) {
            actions.push(Action::Restart(svc));
        } else if reload.contains(&svc) {
            actions.push(Action::Reload(svc));
        }
    }
    actions
}

pub fn build(
    host: &str,
    files: Vec<File>,
    services: &[Service],
    state: &HostState,
    binary_sha256: &str,
    rollback_after: u32,
) -> HostPlan {
    let binary = match &state.binary_sha256 {
        None => Change::New,
        Some(s) if s == binary_sha256 => Change::Unchanged,
        Some(_) => Change::Changed,
    };
    let files: Vec<FilePlan> = files
        .into_iter()
        .map(|f| {
            let (change, diff) = match state.files.get(&f.path).cloned().flatten() {
                None => (Change::New, None),
                Some(old) if old == f.content => (Change::Unchanged, None),
                Some(_) if f.is_secret() => (Change::Changed, None),
                Some(old) => {
                    let d = similar::TextDiff::from_lines(&old, &f.content)
                        .unified_diff()
                        .header(
                            &format!("{host}:{} (now)", f.path),
                            &format!("{host}:{} (after up)", f.path),
                        )
                        .to_string();
                    (Change::Changed, Some(d))
                }
            };
            FilePlan {
                file: f,
                change,
                diff,
            }
        })
        .collect();
    let changed: Vec<&str> = files
        .iter()
        .filter(|f| f.change != Change::Unchanged)
        .map(|f| f.file.path.as_str())
        .collect();
    let mut actions = actions(
        services,
        &state.running,
        state.init,
        binary != Change::Unchanged,
        &changed,
    );
    // The rules go in when their file changes, or when the live table is
    // no longer the one vakt loaded (flushed, edited, lost in a reboot
    // without the boot unit); otherwise a no-change `up` leaves them be.
    let firewall_changed = changed.contains(&crate::render::FIREWALL_PATH);
    if files
        .iter()
        .any(|f| f.file.path == crate::render::FIREWALL_PATH)
        && (firewall_changed || !state.firewall.is_some_and(|f| f.in_force))
    {
        actions.push(Action::Firewall(rollback_after));
    }
    HostPlan {
        host: host.to_string(),
        files,
        binary,
        install: state.missing.clone(),
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> File {
        File {
            path: path.into(),
            mode: 0o644,
            content: content.into(),
        }
    }

    #[test]
    fn a_plan_in_json_gives_modes_as_octal_strings() {
        let mut f = file("/etc/init.d/vakt-proxy", "#!/bin/sh");
        f.mode = 0o750;
        let p = build("lb01", vec![f], &[], &HostState::default(), "abc", 30);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["files"][0]["file"]["mode"], "0750");
        assert_eq!(v["files"][0]["file"]["path"], "/etc/init.d/vakt-proxy");
    }

    #[test]
    fn a_changed_secret_shows_no_diff_and_no_content_and_reloads_the_proxy() {
        let mut st = HostState {
            binary_sha256: Some("abc".into()),
            ..Default::default()
        };
        st.files.insert(
            crate::render::TLS_PEM.into(),
            Some("old PRIVATE KEY\n".into()),
        );
        st.running.insert(Service::Proxy, true);
        let mut f = file(crate::render::TLS_PEM, "new PRIVATE KEY\n");
        f.mode = 0o600;
        let p = build("lb01", vec![f], &[Service::Proxy], &st, "abc", 30);
        assert_eq!(p.files[0].change, Change::Changed);
        assert!(p.files[0].diff.is_none());
        assert_eq!(p.actions, vec![Action::Reload(Service::Proxy)]);
        let json = serde_json::to_string(&p).unwrap();
        assert!(!json.contains("PRIVATE KEY"), "{json}");
        assert!(json.contains("(secret: not shown)"), "{json}");
    }

    #[test]
    fn mariadb_reloads_on_new_grants_restarts_on_new_settings_and_ignores_a_new_binary() {
        let (grants, cnf) = (crate::render::MARIADB_GRANTS, crate::render::MARIADB_CNF);
        let mut st = HostState {
            binary_sha256: Some("old".into()),
            ..Default::default()
        };
        st.files.insert(grants.into(), Some("old password".into()));
        st.files.insert(cnf.into(), Some("[mysqld]".into()));
        st.running.insert(Service::MariaDb, true);
        let mut secret = file(grants, "new password");
        secret.mode = 0o600;
        let svc = [Service::MariaDb];
        // A new vakt binary alone leaves the distribution's server running.
        let same = vec![file(grants, "old password"), file(cnf, "[mysqld]")];
        let p = build("db01", same, &svc, &st, "new", 30);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let p = build(
            "db01",
            vec![secret.clone(), file(cnf, "[mysqld]")],
            &svc,
            &st,
            "old",
            30,
        );
        assert_eq!(p.actions, vec![Action::Reload(Service::MariaDb)]);
        assert!(p.files[0].diff.is_none(), "the grants hold the password");
        let p = build(
            "db01",
            vec![secret, file(cnf, "[mysqld]\nport = 3307")],
            &svc,
            &st,
            "old",
            30,
        );
        assert_eq!(p.actions, vec![Action::Restart(Service::MariaDb)]);
    }

    #[test]
    fn nothing_to_do_when_everything_matches_and_runs() {
        let mut st = HostState {
            binary_sha256: Some("abc".into()),
            ..Default::default()
        };
        st.files
            .insert("/etc/vakt/proxy.toml".into(), Some("x".into()));
        st.running.insert(Service::Proxy, true);
        let p = build(
            "lb01",
            vec![file("/etc/vakt/proxy.toml", "x")],
            &[Service::Proxy],
            &st,
            "abc",
            30,
        );
        assert!(!p.changes(), "{p:?}");
    }

    #[test]
    fn a_config_change_reloads_a_new_binary_upgrades_the_proxy_and_restarts_the_rest() {
        let mut st = HostState {
            binary_sha256: Some("abc".into()),
            ..Default::default()
        };
        st.files
            .insert("/etc/vakt/proxy.toml".into(), Some("a\n".into()));
        st.running.insert(Service::Proxy, true);
        let p = build(
            "lb01",
            vec![file("/etc/vakt/proxy.toml", "b\n")],
            &[Service::Proxy],
            &st,
            "abc",
            30,
        );
        assert_eq!(p.actions, vec![Action::Reload(Service::Proxy)]);
        assert!(p.files[0].diff.as_ref().unwrap().contains("-a\n+b"));
        let p = build(
            "lb01",
            vec![file("/etc/vakt/proxy.toml", "a\n")],
            &[Service::Proxy],
            &st,
            "new",
            30,
        );
        assert_eq!(p.actions, vec![Action::Upgrade(Service::Proxy)]);
        let p = build(
            "web01",
            vec![],
            &[Service::DemoWeb],
            &HostState {
                binary_sha256: Some("abc".into()),
                running: [(Service::DemoWeb, true)].into(),
                ..Default::default()
            },
            "new",
            30,
        );
        assert_eq!(p.actions, vec![Action::Restart(Service::DemoWeb)]);
    }

    #[test]
    fn only_the_unit_or_script_of_the_hosts_init_system_restarts_its_service() {
        let running = BTreeMap::from([(Service::DemoWeb, true)]);
        let unit = "/etc/systemd/system/vakt-demo-web.service";
        let script = "/etc/init.d/vakt-demo-web";
        let restart = vec![Action::Restart(Service::DemoWeb)];
        let svc = [Service::DemoWeb];
        assert_eq!(
            actions(&svc, &running, Init::Systemd, false, &[unit]),
            restart
        );
        assert_eq!(
            actions(&svc, &running, Init::SysV, false, &[script]),
            restart
        );
        assert!(actions(&svc, &running, Init::SysV, false, &[unit]).is_empty());
        assert!(actions(&svc, &running, Init::Systemd, false, &[script]).is_empty());
    }

    #[test]
    fn a_stopped_service_is_started() {
        let p = build(
            "web01",
            vec![],
            &[Service::DemoWeb],
            &HostState::default(),
            "abc",
            30,
        );
        assert_eq!(p.actions, vec![Action::Start(Service::DemoWeb)]);
        assert_eq!(p.binary, Change::New);
    }

    #[test]
    fn firewall_rules_load_when_their_file_changes_or_the_live_table_drifted() {
        let rules = || vec![file(crate::render::FIREWALL_PATH, "table inet vakt\n")];
        let mut st = HostState {
            binary_sha256: Some("abc".into()),
            ..Default::default()
        };
        st.files.insert(
            crate::render::FIREWALL_PATH.into(),
            Some("table inet vakt\n".into()),
        );
        st.firewall = Some(FirewallState {
            nft: true,
            in_force: true,
        });
        let p = build("db01", rules(), &[], &st, "abc", 30);
        assert!(p.actions.is_empty(), "{p:?}");
        st.firewall = Some(FirewallState {
            nft: true,
            in_force: false,
        });
        let p = build("db01", rules(), &[], &st, "abc", 30);
        assert_eq!(p.actions, vec![Action::Firewall(30)]);
        assert!(!p.interrupts());
        st.files
            .insert(crate::render::FIREWALL_PATH.into(), Some("old\n".into()));
        st.firewall = Some(FirewallState {
            nft: true,
            in_force: true,
        });
        let p = build("db01", rules(), &[], &st, "abc", 30);
        assert_eq!(p.actions, vec![Action::Firewall(30)]);
    }
}
