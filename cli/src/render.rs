//! Rendering: every file that lands on a host, from the minijinja templates
//! in `templates/` (embedded at build time; a `templates/` folder next to the
//! inventory overrides them by name). Pure: the caller reads overrides and
//! secrets first; output is deterministic (stable order, no timestamps).

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, context};
use serde::Serialize;

use crate::inventory::{Cidr, Host, Inventory, LogsTo, Role};
use crate::topology::{Service, services, vrrp_priority};

/// The embedded templates, by name.
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "proxy.toml.j2",
        include_str!("../../templates/proxy.toml.j2"),
    ),
    (
        "vakt-proxy.init.j2",
        include_str!("../../templates/vakt-proxy.init.j2"),
    ),
    (
        "vakt-proxy.service.j2",
        include_str!("../../templates/vakt-proxy.service.j2"),
    ),
    (
        "vakt-demo.init.j2",
        include_str!("../../templates/vakt-demo.init.j2"),
    ),
    (
        "vakt-demo.service.j2",
        include_str!("../../templates/vakt-demo.service.j2"),
    ),
    (
        "demo-web.toml.j2",
        include_str!("../../templates/demo-web.toml.j2"),
    ),
    (
        "keepalived.conf.j2",
        include_str!("../../templates/keepalived.conf.j2"),
    ),
    (
        "vakt-keepalived.init.j2",
        include_str!("../../templates/vakt-keepalived.init.j2"),
    ),
    (
        "vakt-notify.sh.j2",
        include_str!("../../templates/vakt-notify.sh.j2"),
    ),
    (
        "nftables.nft.j2",
        include_str!("../../templates/nftables.nft.j2"),
    ),
    ("logrotate.j2", include_str!("../../templates/logrotate.j2")),
    (
        "vakt-firewall.service.j2",
        include_str!("../../templates/vakt-firewall.service.j2"),
    ),
    (
        "vakt-firewall.init.j2",
        include_str!("../../templates/vakt-firewall.init.j2"),
    ),
    (
        "mariadb.cnf.j2",
        include_str!("../../templates/mariadb.cnf.j2"),
    ),
    (
        "mariadb-grants.sql.j2",
        include_str!("../../templates/mariadb-grants.sql.j2"),
    ),
    (
        "vakt-mariadb.init.j2",
        include_str!("../../templates/vakt-mariadb.init.j2"),
    ),
    (
        "vakt-mariadb.service.j2",
        include_str!("../../templates/vakt-mariadb.service.j2"),
    ),
    (
        "mariadb-restore.sql.j2",
        include_str!("../../templates/mariadb-restore.sql.j2"),
    ),
    (
        "vakt-backup.sh.j2",
        include_str!("../../templates/vakt-backup.sh.j2"),
    ),
    (
        "backup.cnf.j2",
        include_str!("../../templates/backup.cnf.j2"),
    ),
    (
        "vakt-backup.cron.j2",
        include_str!("../../templates/vakt-backup.cron.j2"),
    ),
    (
        "vakt-backup.init.j2",
        include_str!("../../templates/vakt-backup.init.j2"),
    ),
    (
        "vakt-backup.service.j2",
        include_str!("../../templates/vakt-backup.service.j2"),
    ),
    (
        "vakt-backup.timer.j2",
        include_str!("../../templates/vakt-backup.timer.j2"),
    ),
    ("acme.toml.j2", include_str!("../../templates/acme.toml.j2")),
    (
        "vakt-acme.cron.j2",
        include_str!("../../templates/vakt-acme.cron.j2"),
    ),
    (
        "Vagrantfile.j2",
        include_str!("../../templates/Vagrantfile.j2"),
    ),
];

/// Template sources: the embedded ones with overrides applied.
#[derive(Debug, Clone)]
pub struct Templates(BTreeMap<String, String>);

impl Templates {
    pub fn embedded() -> Self {
        Templates(
            TEMPLATES
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        )
    }

    /// The embedded templates, overridden by files of the same name in
    /// `dir/templates/` when that folder exists.
    pub fn with_overrides(dir: Option<&Path>) -> std::io::Result<Self> {
        let mut t = Self::embedded();
        if let Some(dir) = dir.map(|d| d.join("templates")).filter(|d| d.is_dir()) {
            for name in t.0.clone().keys() {
                let p = dir.join(name);
                if p.is_file() {
                    t.0.insert(name.clone(), std::fs::read_to_string(&p)?);
                }
            }
        }
        Ok(t)
    }

    fn env(&self) -> Environment<'_> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // A double-quoted string, escaped as JSON (valid TOML and keepalived).
        env.add_filter("q", |s: String| {
            serde_json::to_string(&s).unwrap_or_default()
        });
        // A single-quoted SQL string (MariaDB's escapes: backslash and quote).
        env.add_filter("sql", |s: String| {
            format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        });
        // A single-quoted shell word.
        env.add_filter("sh", |s: String| format!("'{}'", s.replace('\'', "'\\''")));
        for (n, t) in &self.0 {
            // A template that does not parse fails at render time with its name.
            let _ = env.add_template(n, t);
        }
        env
    }

    /// Renders one template with `vars` (for files that land on the
    /// operator's machine, like the Vagrantfile).
    pub fn render(&self, name: &str, vars: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env().get_template(name)?.render(vars)
    }
}

/// Where `[tls] pem` lands on every LB (under the host's root).
pub const TLS_PEM: &str = "/etc/vakt/tls/site.pem";

/// One file for a host, at its path on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct File {
    pub path: String,
    pub mode: u32,
    pub content: String,
}

impl File {
    /// A file only its owner may read (mode 0600, a private key) is a
    /// secret: `plan` says it changed but never shows its content.
    pub fn is_secret(&self) -> bool {
        self.mode & 0o077 == 0
    }
}

/// What differs per host and is decided outside rendering.
#[derive(Debug, Clone)]
pub struct HostContext {
    /// Prefix of every path on the host: empty in production, the host's
    /// state folder for local hosts.
    pub root: String,
    pub admin_socket: String,
    /// `$6$` hash of the stats password.
    pub stats_hash: Option<String>,
    /// The address this deploy connects from, as the host sees it
    /// (`SSH_CLIENT`); the firewall's admin network when the inventory
    /// names none. `None` without a connection.
    pub deploy_source: Option<std::net::IpAddr>,
    /// With `[tls] acme`: the cluster's ACME keys, the same on every LB.
    pub acme: Option<AcmeKeys>,
    /// With `db.engine = "mariadb"`: the database user's password, when
    /// known (else the grants file carries [`DB_PASSWORD_PLACEHOLDER`]).
    pub db_password: Option<String>,
    /// With `[[backups]] kind = "mariadb-dump"`: the backup user's
    /// password (generated by `up`, kept in the state folder), when known
    /// (else [`BACKUP_PASSWORD_PLACEHOLDER`]).
    pub backup_password: Option<String>,
}

/// What the grants and the backup host's client settings hold for the
/// backup user's password before `up` made one.
pub const BACKUP_PASSWORD_PLACEHOLDER: &str = "PLACEHOLDER-no-backup-password-was-known";

pub use crate::inventory::BACKUP_USER;
/// The database `vakt restore --check` restores into, then drops.
pub const SCRATCH_DB: &str = "vakt_restore_check";
/// On a DB host: the rights `vakt restore --yes` lends the backup user
/// (the grants file takes them back).
pub const MARIADB_RESTORE: &str = "/etc/vakt/mariadb-restore.sql";
/// On a backup host: how it reaches the DB (a secret), the script that
/// dumps, checks and restores, and the schedule's cron entry as
/// `/etc/init.d/vakt-backup start` copies it into /etc/cron.d.
pub const BACKUP_CNF: &str = "/etc/vakt/backup.cnf";
pub const BACKUP_SCRIPT: &str = "/usr/local/sbin/vakt-backup";
pub const BACKUP_CRON: &str = "/etc/vakt/backup.cron";

/// What the grants file holds for the password when none is known
/// (`render` without `VAKT_DB_PASSWORD`); `up` and `plan` always know it.
pub const DB_PASSWORD_PLACEHOLDER: &str = "PLACEHOLDER-no-database-password-was-known";

/// vakt's MariaDB on a DB host: its settings, its grants (a secret: the
/// password is in it), its data and its socket, apart from the
/// distribution's own instance (/etc/mysql, /var/lib/mysql).
pub const MARIADB_CNF: &str = "/etc/vakt/mariadb.cnf";
pub const MARIADB_GRANTS: &str = "/etc/vakt/mariadb-grants.sql";
pub const MARIADB_DATADIR: &str = "/var/lib/vakt/mariadb";
/// vakt's MariaDB's temporary files (sorts, temporary tables: personal data
/// too), 0700 for mysql, beside the datadir rather than in a /tmp that every
/// user and process of the host shares.
pub const MARIADB_TMPDIR: &str = "/var/lib/vakt/mariadb-tmp";
/// In a folder of its own: the server runs as `mysql` and creates its
/// socket there, and /run/vakt stays root's.
pub const MARIADB_SOCKET: &str = "/run/vakt/mariadb/mariadb.sock";

/// On each demo web host of a cluster whose DB host runs MariaDB: the
/// shop's settings (where the database is; no secret) and the database
/// password (0600, a secret; systemd hands it to the unit's DynamicUser
/// as the credential `db-password`).
pub const DEMO_WEB_CONFIG: &str = "/etc/vakt/demo-web.toml";
pub const DEMO_WEB_PASSWORD: &str = "/etc/vakt/demo-web-db.password";

/// The cluster's DB host when it runs MariaDB (`db.engine = "mariadb"`):
/// the database the demo shop keeps its carts in.
pub fn shop_db(inv: &Inventory) -> Option<&Host> {
    inv.hosts
        .iter()
        .find(|h| h.has(Role::Db) && h.mariadb.is_some())
}

/// The ACME account key and the certificate key (PKCS#8 PEM, secrets) and
/// the account's JWK thumbprint, which the proxies answer challenges with.
#[derive(Debug, Clone)]
pub struct AcmeKeys {
    pub account_key: String,
    pub cert_key: String,
    pub thumbprint: String,
}

#[derive(Debug, thiserror::Error)]
#[error("template {template} for {host}: {source}")]
pub struct RenderError {
    pub template: String,
    pub host: String,
    #[source]
    pub source: minijinja::Error,
}

#[derive(Serialize)]
struct ServerCtx {
    name: String,
    addr: String,
    cookie: String,
    weight: u32,
}

/// The inventory as a rendered header names it: the file name only, so the
/// bytes do not depend on how its path was spelled (`-i x.toml`, `-i
/// ./x.toml`, an absolute path); the embedded default is `local.toml`, as
/// `-i inventory/local.toml` is.
fn header_name(inv: &Inventory) -> String {
    match inv.dir {
        None => "local.toml".to_string(),
        Some(_) => std::path::Path::new(&inv.file)
            .file_name()
            .map_or_else(|| inv.file.clone(), |n| n.to_string_lossy().into_owned()),
    }
}

/// The variables of proxy.toml.j2 for LB `host`.
fn proxy_vars(inv: &Inventory, host: &Host, ctx: &HostContext) -> minijinja::Value {
    let servers: Vec<ServerCtx> = inv
        .webs()
        .filter_map(|w| {
            let web = w.web.as_ref()?;
            Some(ServerCtx {
                name: w.name.clone(),
                addr: format!("{}:{}", w.private_ip, web.port),
                cookie: web.cookie.clone(),
                weight: web.weight,
            })
        })
        .collect();
    // Production binds every address so the proxy answers on the
    // VIP whichever LB holds it (no ip_nonlocal_bind needed);
    // local hosts bind their own loopback address.
    let bind = if host.is_local() {
        format!("{}:{}", host.private_ip, inv.port)
    } else {
        format!("0.0.0.0:{}", inv.port)
    };
    let tls = inv.tls.as_ref().map(|t| {
        let addr = if host.is_local() {
            host.private_ip.to_string()
        } else {
            "0.0.0.0".to_string()
        };
        context! {
            bind => format!("{addr}:{}", t.port),
            crt => format!("{}{TLS_PEM}", ctx.root),
            redirect => t.redirect,
            hsts => t.hsts,
            acme_thumbprint => t.acme.as_ref().and(ctx.acme.as_ref()).map(|k| k.thumbprint.clone()),
        }
    });
    // With the firewall on, the pages answer the admin networks only (the
    // proxy's own check, behind the firewall's): the stats page on every
    // address, the metrics page on the private one.
    let allow: Vec<String> = if has_firewall(inv, host) {
        admin_networks(inv, ctx)
            .iter()
            .map(|c| c.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let stats = inv
        .balancer
        .stats
        .as_ref()
        .zip(ctx.stats_hash.as_ref())
        .map(|(s, h)| {
            context! { uri => s.uri, realm => s.realm, user => s.user, hash => h, allow => allow }
        });
    let metrics = inv.metrics.as_ref().map(|m| {
        context! {
            bind => format!("{}:{}", host.private_ip, m.port),
            allow => allow,
        }
    });
    let (log, syslog_format) = match inv.logs.to_for(host) {
        LogsTo::File => (format!("file://{}{ACCESS_LOG}", ctx.root), None),
        LogsTo::Syslog => ("unix:///dev/log".to_string(), None),
        LogsTo::Syslog5424 => ("unix:///dev/log".to_string(), Some("rfc5424")),
    };
    context! {
        inventory => header_name(inv),
        cluster => inv.name,
        log => log,
        syslog_format => syslog_format,
        log_anonymize => inv.logs.anonymize,
        global_maxconn => inv.balancer.maxconn.max(4096),
        admin_socket => ctx.admin_socket,
        balancer => inv.balancer,
        bind => bind,
        stats => stats,
        metrics => metrics,
        tls => tls,
        servers => servers,
    }
}

/// Where an LB's proxy writes its request lines with `[logs] to = "file"`
/// (0640; client addresses are personal data).
pub const ACCESS_LOG: &str = "/var/log/vakt/access.log";

/// logrotate's rules for vakt's files under /var/log/vakt, every host.
pub const LOGROTATE: &str = "/etc/logrotate.d/vakt";

/// Where `vakt acme renew` reads its settings on every LB.
pub const ACME_CONFIG: &str = "/etc/vakt/acme.toml";

/// What an LB of a `[tls] acme` cluster gets: both keys (0600), the ACME
/// server's CA when given, the settings `vakt acme renew` reads, and the
/// cron entry that runs it. Without known keys (a command that creates
/// none, before the first `up`), the settings alone.
fn acme_files(
    inv: &Inventory,
    host: &Host,
    tls: &crate::inventory::Tls,
    acme: &crate::inventory::Acme,
    ctx: &HostContext,
    render: &dyn Fn(&str, minijinja::Value) -> Result<String, RenderError>,
) -> Result<Vec<File>, RenderError> {
    let root = ctx.root.as_str();
    let mut files = Vec::new();
    if let Some(keys) = &ctx.acme {
        files.push(File {
            path: "/etc/vakt/acme/account.key".into(),
            mode: 0o600,
            content: keys.account_key.clone(),
        });
        files.push(File {
            path: "/etc/vakt/acme/cert.key".into(),
            mode: 0o600,
            content: keys.cert_key.clone(),
        });
    }
    if let Some(ca) = &acme.ca_text {
        files.push(File {
            path: "/etc/vakt/acme/ca.pem".into(),
            mode: 0o644,
            content: ca.clone(),
        });
    }
    let lbs: Vec<&Host> = inv.hosts.iter().filter(|h| h.has(Role::Lb)).collect();
    let first = lbs.first().is_some_and(|h| h.name == host.name);
    let peers: Vec<String> = lbs
        .iter()
        .filter(|h| h.name != host.name)
        .map(|h| format!("{}:{}", h.private_ip, tls.port))
        .collect();
    let vars = context! {
        inventory => header_name(inv),
        directory => acme.directory,
        email => acme.email,
        ca_file => acme.ca_text.as_ref().map(|_| format!("{root}/etc/vakt/acme/ca.pem")),
        domains => tls.domains,
        pem => format!("{root}{TLS_PEM}"),
        account_key => format!("{root}/etc/vakt/acme/account.key"),
        cert_key => format!("{root}/etc/vakt/acme/cert.key"),
        account_state => format!("{root}/var/lib/vakt/acme/account.json"),
        peers => peers,
        own => format!("{}:{}", host.private_ip, tls.port),
        order_below => if first { 3 } else { 6 },
    };
    files.push(File {
        path: ACME_CONFIG.into(),
        mode: 0o640,
        content: render("acme.toml.j2", vars)?,
    });
    let vars = context! { root => root, first => first };
    files.push(File {
        path: "/etc/cron.d/vakt-acme".into(),
        mode: 0o644,
        content: render("vakt-acme.cron.j2", vars)?,
    });
    Ok(files)
}

/// What a DB host with `engine = "mariadb"` gets: the server's settings,
/// the grants (mode 0600) and its init script and unit. The grants let the
/// user in from each web host's private address only, and drop the user at
/// any other address (a web host that left the inventory).
fn mariadb_files(
    inv: &Inventory,
    host: &Host,
    ctx: &HostContext,
    render: &dyn Fn(&str, minijinja::Value) -> Result<String, RenderError>,
) -> Result<Vec<File>, RenderError> {
    let Some(db) = &host.mariadb else {
        return Ok(Vec::new());
    };
    let root = ctx.root.as_str();
    let web_ips: Vec<String> = inv.webs().map(|w| w.private_ip.to_string()).collect();
    let backup_ips: Vec<String> = crate::topology::dumpers_of(inv, host)
        .iter()
        .map(|a| a.to_string())
        .collect();
    let vars = context! {
        inventory => header_name(inv),
        name => host.name,
        root => root,
        service => Service::MariaDb.name(),
        cnf => format!("{root}{MARIADB_CNF}"),
        grants => format!("{root}{MARIADB_GRANTS}"),
        datadir => format!("{root}{MARIADB_DATADIR}"),
        tmpdir => format!("{root}{MARIADB_TMPDIR}"),
        socket => format!("{root}{MARIADB_SOCKET}"),
        pidfile => format!("{root}/run/vakt/mariadb/mariadb.pid"),
        bind => host.private_ip.to_string(),
        port => host.db_port,
        database => db.database,
        user => db.user,
        password => ctx.db_password.as_deref().unwrap_or(DB_PASSWORD_PLACEHOLDER),
        web_ips => web_ips,
        backup_user => BACKUP_USER,
        backup_password => ctx.backup_password.as_deref().unwrap_or(BACKUP_PASSWORD_PLACEHOLDER),
        backup_ips => backup_ips,
        scratch => SCRATCH_DB,
    };
    let mut files = Vec::new();
    if !backup_ips.is_empty() {
        files.push(File {
            path: MARIADB_RESTORE.into(),
            mode: 0o600,
            content: render("mariadb-restore.sql.j2", vars.clone())?,
        });
    }
    files.extend([
        File {
            path: MARIADB_CNF.into(),
            mode: 0o644,
            content: render("mariadb.cnf.j2", vars.clone())?,
        },
        File {
            path: MARIADB_GRANTS.into(),
            mode: 0o600,
            content: render("mariadb-grants.sql.j2", vars.clone())?,
        },
        File {
            path: "/etc/init.d/vakt-mariadb".into(),
            mode: 0o755,
            content: render("vakt-mariadb.init.j2", vars.clone())?,
        },
        File {
            path: "/etc/systemd/system/vakt-mariadb.service".into(),
            mode: 0o644,
            content: render("vakt-mariadb.service.j2", vars)?,
        },
    ]);
    Ok(files)
}

/// What a backup host gets for its `[[backups]] kind = "mariadb-dump"`
/// target: the client settings to reach the DB (0600), the script that
/// dumps, checks and restores (0700), and its schedule both ways (systemd
/// timer and unit; the cron entry with the init script that installs it).
fn backup_files(
    inv: &Inventory,
    host: &Host,
    ctx: &HostContext,
    render: &dyn Fn(&str, minijinja::Value) -> Result<String, RenderError>,
) -> Result<Vec<File>, RenderError> {
    let Some((b, dump)) =
        crate::topology::dump_on(inv, host).and_then(|b| Some((b, b.dump.as_ref()?)))
    else {
        return Ok(Vec::new());
    };
    let Some((db, maria)) = inv
        .hosts
        .iter()
        .find(|h| h.name == dump.db)
        .and_then(|h| Some((h, h.mariadb.as_ref()?)))
    else {
        return Ok(Vec::new());
    };
    let root = ctx.root.as_str();
    let vars = context! {
        inventory => header_name(inv),
        name => b.name,
        host => host.name,
        db => db.name,
        db_addr => db.private_ip.to_string(),
        db_port => db.db_port,
        database => maria.database,
        user => BACKUP_USER,
        password => ctx.backup_password.as_deref().unwrap_or(BACKUP_PASSWORD_PLACEHOLDER),
        scratch => SCRATCH_DB,
        dir => format!("{root}{}", dump.path),
        keep => dump.keep,
        schedule => dump.schedule.as_str(),
        cron => dump.schedule.cron(),
        on_calendar => dump.schedule.on_calendar(),
        cnf => format!("{root}{BACKUP_CNF}"),
        script => format!("{root}{BACKUP_SCRIPT}"),
        cron_source => format!("{root}{BACKUP_CRON}"),
        cron_entry => format!("{root}/etc/cron.d/vakt-backup"),
        log => format!("{root}/var/log/vakt/{}.log", Service::Backup.log_name()),
    };
    Ok(vec![
        File {
            path: BACKUP_CNF.into(),
            mode: 0o600,
            content: render("backup.cnf.j2", vars.clone())?,
        },
        File {
            path: BACKUP_SCRIPT.into(),
            mode: 0o700,
            content: render("vakt-backup.sh.j2", vars.clone())?,
        },
        File {
            path: BACKUP_CRON.into(),
            mode: 0o644,
            content: render("vakt-backup.cron.j2", vars.clone())?,
        },
        File {
            path: "/etc/init.d/vakt-backup".into(),
            mode: 0o755,
            content: render("vakt-backup.init.j2", vars.clone())?,
        },
        File {
            path: "/etc/systemd/system/vakt-backup.service".into(),
            mode: 0o644,
            content: render("vakt-backup.service.j2", vars.clone())?,
        },
        File {
            path: "/etc/systemd/system/vakt-backup.timer".into(),
            mode: 0o644,
            content: render("vakt-backup.timer.j2", vars)?,
        },
    ])
}

/// The variables of the keepalived templates for LB `host`.
fn keepalived_vars(inv: &Inventory, host: &Host, ctx: &HostContext) -> minijinja::Value {
    let root = ctx.root.as_str();
    let lbs: Vec<&Host> = inv.lbs().collect();
    let priority = vrrp_priority(inv, host);
    let master = lbs
        .iter()
        .all(|o| o.name == host.name || vrrp_priority(inv, o) < priority);
    let peers: Vec<String> = lbs
        .iter()
        .filter(|o| o.name != host.name)
        .map(|o| o.private_ip.to_string())
        .collect();
    context! {
        root => root,
        name => host.name,
        cluster => inv.name,
        vip => inv.vip.map(|v| v.to_string()),
        interface => inv.ha.interface,
        virtual_router_id => inv.ha.virtual_router_id,
        priority => priority,
        master => master,
        nopreempt => inv.ha.nopreempt,
        advert_int => inv.ha.advert_int,
        private_ip => host.private_ip.to_string(),
        peers => peers,
        admin_socket => ctx.admin_socket,
    }
}

/// Where the firewall's rules land on a host (loaded at boot by the
/// distribution's nftables service or vakt's unit).
pub const FIREWALL_PATH: &str = "/etc/vakt/nftables.nft";

/// The networks that may SSH in: `[firewall] admin`, else the deploy's own
/// address as the host sees it.
pub fn admin_networks(inv: &Inventory, ctx: &HostContext) -> Vec<Cidr> {
    if !inv.firewall.admin.is_empty() {
        return inv.firewall.admin.clone();
    }
    ctx.deploy_source
        .map(|addr| Cidr {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        })
        .into_iter()
        .collect()
}

/// The variables of nftables.nft.j2 for `host`.
fn firewall_vars(inv: &Inventory, host: &Host, ctx: &HostContext) -> minijinja::Value {
    let split = |nets: &[Cidr]| -> (Vec<String>, Vec<String>) {
        let (v4, v6): (Vec<&Cidr>, Vec<&Cidr>) = nets.iter().partition(|c| c.is_ipv4());
        (
            v4.iter().map(|c| c.to_string()).collect(),
            v6.iter().map(|c| c.to_string()).collect(),
        )
    };
    let (admin4, admin6) = split(&admin_networks(inv, ctx));
    let ips = |role: Role| -> Vec<String> {
        inv.hosts
            .iter()
            .filter(|h| h.has(role))
            .map(|h| h.private_ip.to_string())
            .collect()
    };
    let (lb_ips, web_ips) = (ips(Role::Lb), ips(Role::Web));
    let lb = host.has(Role::Lb);
    // The plain port, and the HTTPS port when `[tls]` is on.
    let public_ports: Vec<u16> = if lb {
        std::iter::once(inv.port)
            .chain(inv.tls.as_ref().map(|t| t.port))
            .collect()
    } else {
        Vec::new()
    };
    let vrrp_peers: Vec<String> = if lb && crate::topology::ha_enabled(inv) {
        inv.lbs()
            .filter(|o| o.name != host.name)
            .map(|o| o.private_ip.to_string())
            .collect()
    } else {
        Vec::new()
    };
    // A rule needs someone to let in: no LBs, no web port rule.
    let web_port = host
        .web
        .as_ref()
        .filter(|_| !lb_ips.is_empty())
        .map(|w| w.port);
    let db_port = (host.has(Role::Db) && !web_ips.is_empty()).then_some(host.db_port);
    // The hosts that dump this DB reach its port too (the DB host's own
    // dumps go over loopback, which is let in anyway).
    let backup_ips: Vec<String> = if host.mariadb.is_some() {
        crate::topology::dumpers_of(inv, host)
            .into_iter()
            .filter(|a| *a != host.private_ip)
            .map(|a| a.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let metrics_port = inv.metrics.as_ref().filter(|_| lb).map(|m| m.port);
    // `[policy] rtt_probe` times a TCP handshake to a data host's SSH port:
    // the host answers its SYN with a reset (a round trip, no way in).
    let rtt_probe: Option<String> = inv
        .policy
        .rtt_probe
        .as_ref()
        .filter(|_| host.data || host.has(Role::Db))
        .and_then(|p| {
            inv.hosts
                .iter()
                .find(|h| &h.name == p && h.name != host.name)
        })
        .map(|p| p.private_ip.to_string());
    let extra: Vec<minijinja::Value> = inv
        .firewall
        .extra
        .iter()
        .filter(|r| r.applies_to(host))
        .map(|r| {
            let (from4, from6) = split(&r.from);
            context! { port => r.port, proto => r.proto, from4 => from4, from6 => from6 }
        })
        .collect();
    context! {
        inventory => header_name(inv),
        cluster => inv.name,
        name => host.name,
        roles => host.roles,
        admin4 => admin4,
        admin6 => admin6,
        ssh_port => host.ssh.port,
        public_ports => public_ports,
        vrrp_peers => vrrp_peers,
        web_port => web_port,
        lb_ips => lb_ips,
        db_port => db_port,
        web_ips => web_ips,
        backup_ips => backup_ips,
        db_listen_port => host.db_port,
        metrics_port => metrics_port,
        rtt_probe => rtt_probe,
        extra => extra,
    }
}

/// Whether `host` gets vakt's firewall: `[firewall]` on (the default), and
/// a remote host (local hosts share this machine's network stack, which
/// vakt never filters).
pub fn has_firewall(inv: &Inventory, host: &Host) -> bool {
    inv.firewall.enabled && !host.is_local()
}

/// Every file `host` needs, in a stable order.
pub fn render_host(
    inv: &Inventory,
    host: &Host,
    ctx: &HostContext,
    t: &Templates,
) -> Result<Vec<File>, RenderError> {
    let env = t.env();
    let render = |template: &str, vars: minijinja::Value| -> Result<String, RenderError> {
        env.get_template(template)
            .and_then(|tpl| tpl.render(vars))
            .map_err(|source| RenderError {
                template: template.to_string(),
                host: host.name.clone(),
                source,
            })
    };
    let root = ctx.root.as_str();
    let mut files = Vec::new();
    for svc in services(inv, host) {
        match svc {
            Service::Proxy => {
                let vars = proxy_vars(inv, host, ctx);
                files.push(File {
                    path: "/etc/vakt/proxy.toml".into(),
                    mode: 0o640,
                    content: render("proxy.toml.j2", vars)?,
                });
                let acme = inv.tls.as_ref().and_then(|t| t.acme.as_ref());
                match (&inv.tls, acme) {
                    // The LBs' own file, which `vakt acme renew` keeps.
                    (Some(tls), Some(acme)) => {
                        files.extend(acme_files(inv, host, tls, acme, ctx, &render)?)
                    }
                    // Not a template: the operator's own file, byte for byte.
                    (Some(tls), None) => files.push(File {
                        path: TLS_PEM.into(),
                        mode: 0o600,
                        content: tls.pem_text.clone(),
                    }),
                    (None, _) => {}
                }
                let vars = context! {
                    root => root,
                    port => inv.port,
                    admin_socket => ctx.admin_socket,
                    acme => acme.is_some(),
                };
                files.push(File {
                    path: "/etc/init.d/vakt-proxy".into(),
                    mode: 0o755,
                    content: render("vakt-proxy.init.j2", vars.clone())?,
                });
                files.push(File {
                    path: "/etc/systemd/system/vakt-proxy.service".into(),
                    mode: 0o644,
                    content: render("vakt-proxy.service.j2", vars)?,
                });
            }
            Service::DemoWeb | Service::DemoDb => {
                let (listen, command, description) = if svc == Service::DemoWeb {
                    let port = host.web.as_ref().map_or(80, |w| w.port);
                    (
                        format!("{}:{port}", host.private_ip),
                        "demo-web",
                        "vakt demo shop",
                    )
                } else {
                    (
                        format!("{}:{}", host.private_ip, host.db_port),
                        "demo-db",
                        "vakt stand-in database (listens, stores nothing)",
                    )
                };
                // The shop keeps carts in the cluster's MariaDB when there
                // is one: its settings and password file, which the init
                // script and unit pass on.
                let db = (svc == Service::DemoWeb)
                    .then(|| shop_db(inv))
                    .flatten()
                    .and_then(|h| h.mariadb.as_ref().map(|m| (h, m)));
                if let Some((db_host, m)) = db {
                    let vars = context! {
                        inventory => header_name(inv),
                        host => db_host.private_ip.to_string(),
                        port => db_host.db_port,
                        database => m.database,
                        user => m.user,
                        password_file => format!("{root}{DEMO_WEB_PASSWORD}"),
                    };
                    files.push(File {
                        path: DEMO_WEB_CONFIG.into(),
                        mode: 0o644,
                        content: render("demo-web.toml.j2", vars)?,
                    });
                    let password = ctx
                        .db_password
                        .as_deref()
                        .unwrap_or(DB_PASSWORD_PLACEHOLDER);
                    files.push(File {
                        path: DEMO_WEB_PASSWORD.into(),
                        mode: 0o600,
                        content: format!("{password}\n"),
                    });
                }
                let vars = context! {
                    root => root,
                    listen => listen,
                    name => host.name,
                    service => svc.name(),
                    command => command,
                    description => description,
                    config => db.map(|_| format!("{root}{DEMO_WEB_CONFIG}")),
                    password_file => db.map(|_| format!("{root}{DEMO_WEB_PASSWORD}")),
                };
                files.push(File {
                    path: format!("/etc/init.d/{}", svc.name()),
                    mode: 0o755,
                    content: render("vakt-demo.init.j2", vars.clone())?,
                });
                files.push(File {
                    path: format!("/etc/systemd/system/{}.service", svc.name()),
                    mode: 0o644,
                    content: render("vakt-demo.service.j2", vars)?,
                });
            }
            Service::MariaDb => files.extend(mariadb_files(inv, host, ctx, &render)?),
            Service::Backup => files.extend(backup_files(inv, host, ctx, &render)?),
            Service::Keepalived => {
                let vars = keepalived_vars(inv, host, ctx);
                files.push(File {
                    path: "/etc/keepalived/keepalived.conf".into(),
                    mode: 0o640,
                    content: render("keepalived.conf.j2", vars.clone())?,
                });
                files.push(File {
                    path: "/etc/init.d/vakt-keepalived".into(),
                    mode: 0o755,
                    content: render("vakt-keepalived.init.j2", vars.clone())?,
                });
                files.push(File {
                    path: "/etc/keepalived/vakt-notify.sh".into(),
                    mode: 0o755,
                    content: render("vakt-notify.sh.j2", vars)?,
                });
            }
        }
    }
    let lb = host.has(Role::Lb);
    files.push(File {
        path: LOGROTATE.into(),
        mode: 0o644,
        content: render(
            "logrotate.j2",
            context! {
                inventory => header_name(inv),
                root => root,
                access_log => (lb && inv.logs.to_for(host) == LogsTo::File).then(|| format!("{root}{ACCESS_LOG}")),
                keep_days => inv.logs.keep_days,
                local => host.is_local(),
                files => services(inv, host).iter().map(|s| format!("{root}/var/log/vakt/{}.log", s.log_name())).collect::<Vec<_>>(),
            },
        )?,
    });
    if has_firewall(inv, host) {
        files.push(File {
            path: FIREWALL_PATH.into(),
            mode: 0o600,
            content: render("nftables.nft.j2", firewall_vars(inv, host, ctx))?,
        });
        // Loads the rules at boot (firewall::load enables whichever the
        // host's init system uses).
        let vars = context! { path => FIREWALL_PATH };
        files.push(File {
            path: "/etc/init.d/vakt-firewall".into(),
            mode: 0o755,
            content: render("vakt-firewall.init.j2", vars.clone())?,
        });
        files.push(File {
            path: "/etc/systemd/system/vakt-firewall.service".into(),
            mode: 0o644,
            content: render("vakt-firewall.service.j2", vars)?,
        });
    }
    Ok(files)
}
