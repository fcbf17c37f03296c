//! The cluster's topology: which `Service`s each host runs, the load
//! balancers' VRRP priorities, and whether the cluster runs keepalived at
//! all. Derived from the inventory alone (pure); rendering, planning and
//! every command that looks for "the LBs" or "the web hosts" ask here.

use serde::Serialize;

use crate::inventory::{Backup, Host, Inventory, Role};

/// A service vakt runs on a host, named as its init script and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Service {
    Proxy,
    DemoWeb,
    DemoDb,
    /// vakt's own MariaDB instance (`db.engine = "mariadb"`): the
    /// distribution's binaries with vakt's datadir, config and socket.
    MariaDb,
    Keepalived,
    /// The schedule of a backup host's dump (`[[backups]] kind =
    /// "mariadb-dump"`): a systemd timer, or on SysV hosts an init script
    /// whose start puts the cron entry in place and whose stop removes it.
    Backup,
}

impl Service {
    /// What plans, summaries and `status` call it: its systemd unit's name
    /// (keepalived's is the distribution's own), except the backup schedule,
    /// which is a timer on systemd hosts and a cron entry on SysV hosts.
    pub fn name(self) -> &'static str {
        match self {
            Service::Proxy => "vakt-proxy",
            Service::DemoWeb => "vakt-demo-web",
            Service::DemoDb => "vakt-demo-db",
            Service::MariaDb => "vakt-mariadb",
            Service::Keepalived => "keepalived",
            Service::Backup => "vakt-backup",
        }
    }

    /// Its systemd unit: [`Service::name`], but the backup schedule's is its
    /// timer (`vakt-backup.service` is the dump the timer starts).
    pub fn unit(self) -> &'static str {
        match self {
            Service::Backup => "vakt-backup.timer",
            s => s.name(),
        }
    }

    /// The name its log goes by: `/var/log/vakt/NAME.log` on SysV hosts
    /// (the init script's output), and `vakt logs NAME`.
    pub fn log_name(self) -> &'static str {
        match self {
            Service::Proxy => "proxy",
            Service::Keepalived => "keepalived",
            Service::DemoWeb => "demo-web",
            Service::DemoDb => "demo-db",
            Service::MariaDb => "mariadb",
            Service::Backup => "backup",
        }
    }

    /// The distribution's systemd units that this service's own unit stands
    /// in for, which must not run beside it: the mariadb-server package's
    /// server on its own datadir, and (Debian 12) the socket that activates
    /// it, which listens on `*:3306` and so keeps vakt's server off its
    /// address. (keepalived's unit is the one vakt runs.)
    pub fn replaces(self) -> &'static [&'static str] {
        match self {
            Service::MariaDb => &["mariadb.socket", "mariadb.service"],
            _ => &[],
        }
    }

    /// The SysV init script vakt installs in `/etc/init.d`.
    pub fn script(self) -> &'static str {
        match self {
            Service::Keepalived => "vakt-keepalived",
            Service::Backup => "vakt-backup",
            other => other.name(),
        }
    }
}

/// The services a host runs.
pub fn services(inv: &Inventory, host: &Host) -> Vec<Service> {
    let mut s = Vec::new();
    if host.has(Role::Lb) {
        s.push(Service::Proxy);
        if ha_enabled(inv) {
            s.push(Service::Keepalived);
        }
    }
    if host.web.as_ref().is_some_and(|w| w.demo) {
        s.push(Service::DemoWeb);
    }
    if host.has(Role::Db) && host.db_demo {
        s.push(Service::DemoDb);
    }
    if host.has(Role::Db) && host.mariadb.is_some() {
        s.push(Service::MariaDb);
    }
    if dump_on(inv, host).is_some() {
        s.push(Service::Backup);
    }
    s
}

/// The `[[backups]]` target whose dumps `host` makes and keeps, if any
/// (the inventory allows one per host).
pub fn dump_on<'a>(inv: &'a Inventory, host: &Host) -> Option<&'a Backup> {
    inv.backups
        .iter()
        .find(|b| b.dump.as_ref().is_some_and(|d| d.host == host.name))
}

/// The private addresses of the hosts that dump `db`'s database (the DB
/// host's own among them when it keeps its dumps itself).
pub fn dumpers_of(inv: &Inventory, db: &Host) -> Vec<std::net::Ipv4Addr> {
    inv.backups
        .iter()
        .filter_map(|b| b.dump.as_ref())
        .filter(|d| d.db == db.name)
        .filter_map(|d| inv.hosts.iter().find(|h| h.name == d.host))
        .map(|h| h.private_ip)
        .collect()
}

/// A load balancer's VRRP priority: `priority` in the inventory, else 150
/// for the first LB, 140 for the second, and so on (inventory order).
pub fn vrrp_priority(inv: &Inventory, host: &Host) -> u8 {
    host.priority.unwrap_or_else(|| {
        let idx = inv.lbs().position(|h| h.name == host.name).unwrap_or(0);
        150u8.saturating_sub(u8::try_from(10 * idx).unwrap_or(u8::MAX))
    })
}

/// keepalived runs with a VIP and two or more load balancers.
pub fn ha_enabled(inv: &Inventory) -> bool {
    inv.vip.is_some() && inv.lbs().count() >= 2
}
