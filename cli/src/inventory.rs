//! The inventory: reading the TOML file that describes a cluster's hosts,
//! and validating all of it before anything touches a host. Every problem is
//! a `Diagnostic` with file:line:column and a hint, reported together; the
//! reader is the runtime's spanned TOML walker. Nothing here does IO beyond
//! reading the file.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use vakt_runtime::config::Diagnostics;
use vakt_runtime::config::Source;
use vakt_runtime::config::closest;
use vakt_runtime::config::reader::{self, Fields};

/// The inventory `vakt up` uses when no `-i` is given.
pub const LOCAL_DEFAULT: &str = include_str!("../../inventory/local.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Lb,
    Web,
    Db,
    /// Keeps the database's dumps (`[[backups]] kind = "mariadb-dump"`):
    /// no web or database service, but personal data all the same.
    Backup,
}

impl Role {
    /// The role as the inventory spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Lb => "lb",
            Role::Web => "web",
            Role::Db => "db",
            Role::Backup => "backup",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Location {
    pub country: String,
    pub city: Option<String>,
    pub provider: Option<String>,
    pub site: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Web {
    pub port: u16,
    pub cookie: String,
    pub weight: u32,
    /// Run `vakt demo-web` on this host.
    pub demo: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    pub identity: Option<String>,
    pub host_keys: HostKeys,
    pub jump: Option<String>,
    pub sudo: bool,
    /// Where to connect instead of the host's addresses (a Vagrant VM's
    /// forwarded port on 127.0.0.1, say).
    pub address: Option<String>,
}

/// `ssh.host_keys`: how OpenSSH treats a host key it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeys {
    /// Only keys already in known_hosts (`StrictHostKeyChecking yes`).
    Strict,
    /// Trust a first contact, refuse a changed key (`accept-new`).
    AcceptNew,
}

impl HostKeys {
    const ALL: [(&'static str, HostKeys); 2] = [
        ("strict", HostKeys::Strict),
        ("accept-new", HostKeys::AcceptNew),
    ];
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Host {
    pub name: String,
    pub roles: Vec<Role>,
    pub public_ip: Option<Ipv4Addr>,
    pub private_ip: Ipv4Addr,
    pub location: Option<Location>,
    pub web: Option<Web>,
    /// Database service port (role db), default 3306.
    pub db_port: u16,
    /// Run `vakt demo-db` on the db port (a stand-in that stores nothing):
    /// `engine = "demo"` or `demo = true`.
    pub db_demo: bool,
    /// `engine = "mariadb"`: a real MariaDB from the distribution's
    /// packages, run by vakt (`Service::MariaDb`).
    pub mariadb: Option<MariaDb>,
    /// Holds personal data (role db, or `data = true`).
    pub data: bool,
    pub ssh: Ssh,
    /// keepalived priority; default by LB order.
    pub priority: Option<u8>,
    /// For `vakt vagrant`: the OS (`rocky9`...), an explicit box, memory in
    /// MiB and CPUs; the `[vagrant]` defaults apply when unset.
    pub os: Option<String>,
    pub box_name: Option<String>,
    pub memory: Option<u32>,
    pub cpus: Option<u32>,
}

impl Host {
    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }

    /// Hosts on 127.0.0.0/8 run on this machine through the local transport.
    pub fn is_local(&self) -> bool {
        self.private_ip.is_loopback()
    }
}

/// A DB host's `db = { engine = "mariadb", .. }`: the one database and user
/// the web hosts get (granted from their private addresses only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MariaDb {
    pub database: String,
    pub user: String,
    pub password: Secret,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub path: String,
    pub interval: String,
    pub rise: u32,
    pub fall: u32,
}

/// Where a secret comes from; the value itself never sits in the inventory.
#[derive(Debug, Clone, serde::Serialize)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub uri: String,
    pub realm: String,
    pub user: String,
    pub password: Secret,
}

/// `balancer.balance`: the proxy's algorithm, written into proxy.toml as
/// the inventory spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    RoundRobin,
    LeastConn,
    Source,
}

impl Balance {
    const ALL: [(&'static str, Balance); 3] = [
        ("roundrobin", Balance::RoundRobin),
        ("leastconn", Balance::LeastConn),
        ("source", Balance::Source),
    ];
}

/// One kind of evidence `policy.require` asks the audit for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proof {
    /// The location the inventory declares.
    Declared,
    /// A GeoIP lookup of the host's public address.
    Geoip,
    /// The round-trip time from the probe host.
    Latency,
}

impl Proof {
    /// "rtt" is accepted as another name for "latency".
    const ALL: [(&'static str, Proof); 4] = [
        ("declared", Proof::Declared),
        ("geoip", Proof::Geoip),
        ("latency", Proof::Latency),
        ("rtt", Proof::Latency),
    ];

    /// The name the audit's evidence carries as its kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Proof::Declared => "declared",
            Proof::Geoip => "geoip",
            Proof::Latency => "latency",
        }
    }
}

impl std::fmt::Display for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value named `v` among `choices` (name, value).
fn lookup<T: Copy>(choices: &[(&str, T)], v: &str) -> Option<T> {
    choices.iter().find(|(n, _)| *n == v).map(|(_, t)| *t)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Balancer {
    pub balance: Balance,
    pub cookie: String,
    pub health: Health,
    pub retries: u32,
    pub redispatch: bool,
    pub maxconn: u32,
    pub stats: Option<Stats>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Policy {
    pub data_countries: Vec<String>,
    pub require: Vec<Proof>,
    pub geoip_db: Option<PathBuf>,
    pub rtt_probe: Option<String>,
    pub max_rtt_ms: Option<f64>,
    pub data_ports: Vec<u16>,
    /// Who decides why and how the personal data is processed (GDPR art. 4(7)),
    /// as the report names it: "Nordshop AS, org. nr. 999 999 999".
    pub controller: Option<String>,
    /// Who processes it on the controller's behalf (art. 28), each with where
    /// its data-processing agreement is recorded.
    pub processors: Vec<Processor>,
    /// Recorded transfers out of `data_countries`, with their legal basis
    /// (GDPR chapter V).
    pub transfers: Vec<Transfer>,
    /// How long personal data is kept, in the controller's words.
    pub retention: Option<String>,
}

/// `[policy] processors = [{ name, country, dpa }]`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Processor {
    pub name: String,
    /// ISO 3166 code of where it processes the data.
    pub country: String,
    /// Where the data-processing agreement is kept (a document, a URL).
    pub dpa: Option<String>,
}

/// `[policy] transfers = [{ to, basis, what }]`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transfer {
    /// ISO 3166 code of the receiving country.
    pub to: String,
    /// The legal basis: an adequacy decision, SCCs, BCRs (GDPR art. 45–49).
    pub basis: String,
    /// What is transferred, in words.
    pub what: Option<String>,
}

impl Policy {
    /// `require` as written in reports: "declared, geoip".
    pub fn required(&self) -> String {
        let names: Vec<&str> = self.require.iter().map(|p| p.as_str()).collect();
        names.join(", ")
    }
}

/// `[tls]`: HTTPS on the load balancers, one certificate for `domains`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tls {
    pub domains: Vec<String>,
    /// The PEM file (chain, leaf first, and key) on the operator's machine,
    /// resolved against the inventory's folder.
    pub pem: PathBuf,
    /// The PEM's text, read once when the inventory validates and pushed to
    /// every LB with mode 0600. A secret: never serialized or printed.
    #[serde(skip)]
    pub pem_text: String,
    /// The HTTPS port on every LB (443 unless given).
    pub port: u16,
    /// Plain HTTP answered with a redirect to https (on unless `false`).
    pub redirect: bool,
    /// The `Strict-Transport-Security` value, when wanted.
    pub hsts: Option<String>,
    /// Certificates from an ACME CA instead of `pem` (then `pem` is empty).
    pub acme: Option<Acme>,
}

/// `[tls] acme = { directory, email, ca_file }`: certificates ordered and
/// renewed on the LBs themselves (RFC 8555, HTTP-01).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Acme {
    /// The CA's ACME directory URL (https).
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// A CA certificate to trust for the ACME server itself (test servers),
    /// resolved against the inventory's folder.
    pub ca_file: Option<PathBuf>,
    /// Its text, read when the inventory validates and pushed to the LBs.
    #[serde(skip)]
    pub ca_text: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Ha {
    pub advert_int: String,
    /// The interface that carries the private network and the VIP.
    pub interface: String,
    pub nopreempt: bool,
    pub virtual_router_id: u8,
}

/// `[firewall]`: vakt's own nftables table on every host reached over SSH,
/// on unless `enabled = false` (also without a `[firewall]` table). Local
/// hosts never get one: they share this machine's network stack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Firewall {
    pub enabled: bool,
    /// Seconds after which a host puts its previous rules back unless `up`
    /// confirmed, over a new SSH connection, that it still gets in.
    pub rollback_after: u32,
    /// Networks that may SSH in (and see the stats page). Empty: the address
    /// the deploy connects from, as each host sees it (`SSH_CLIENT`).
    pub admin: Vec<Cidr>,
    pub extra: Vec<ExtraRule>,
}

impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            enabled: true,
            rollback_after: 30,
            admin: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// `[logs]`: where the proxy's request lines (client addresses: personal
/// data) go on each LB, and for how long.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Logs {
    /// `None`: the default, which depends on the host ([`Logs::to_for`]).
    pub to: Option<LogsTo>,
    /// Days a log file is kept (logrotate's daily `rotate`), also what the
    /// audit holds the files on the hosts to.
    pub keep_days: u32,
    /// Client IPv4 addresses cut to their /24 (IPv6: /48) in log lines.
    pub anonymize: bool,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            to: None,
            keep_days: 14,
            anonymize: false,
        }
    }
}

impl Logs {
    /// Where `host`'s proxy logs: `[logs] to`, else the host's own syslog
    /// daemon (as HAProxy's `log /dev/log local0`) on a remote host and
    /// vakt's own file on a local one (local hosts share this machine,
    /// whose syslog vakt leaves alone).
    pub fn to_for(&self, host: &Host) -> LogsTo {
        self.to.unwrap_or(if host.is_local() {
            LogsTo::File
        } else {
            LogsTo::Syslog
        })
    }
}

/// `[logs] to`: vakt's own file, or the host's syslog daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogsTo {
    /// `/var/log/vakt/access.log` (0640), rotated daily by logrotate.
    File,
    /// The host's syslog socket `/dev/log`, RFC 3164 headers.
    Syslog,
    /// The same with RFC 5424 headers.
    Syslog5424,
}

/// `[deploy]`: how deploys are kept on the hosts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deploy {
    /// Releases each host keeps in its release store (`vakt releases`,
    /// `vakt rollback --to/--steps`), the current one included.
    pub keep: u32,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy { keep: 5 }
    }
}

/// An IPv4 or IPv6 network as nft spells it (`10.0.0.0/8`, `2001:db8::/32`):
/// the runtime's, which a page's allow list uses too.
pub use vakt_runtime::config::Cidr;

/// One `[firewall] extra` entry: a port opened on the hosts it names (by
/// role or name; neither: every host), from `from` (empty: anywhere).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtraRule {
    pub port: u16,
    /// "tcp" or "udp".
    pub proto: String,
    pub from: Vec<Cidr>,
    pub roles: Vec<Role>,
    pub hosts: Vec<String>,
}

impl ExtraRule {
    pub fn applies_to(&self, host: &Host) -> bool {
        (self.roles.is_empty() && self.hosts.is_empty())
            || self.roles.iter().any(|r| host.has(*r))
            || self.hosts.contains(&host.name)
    }
}

/// `[metrics]`: the LBs' Prometheus page (HAProxy's exporter names) on
/// their private address, reachable from `[firewall] admin` only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metrics {
    /// Where it listens: `"private"`, the LB's private address (the only
    /// choice: the page is for the operator's Prometheus, not the public).
    pub listen: String,
    /// 8405 by default, as in HAProxy's documentation.
    pub port: u16,
}

/// A `[[backups]]` target: data-bearing wherever it is. A declared place
/// (any `kind` but "mariadb-dump", with its own `location`), or dumps vakt
/// makes (`dump`), which lie where their host is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backup {
    pub name: String,
    pub kind: String,
    pub location: Location,
    pub dump: Option<Dump>,
}

/// `kind = "mariadb-dump"`: the backup host (role backup, or the DB host
/// itself) dumps the DB host's MariaDB over the private network into
/// `path`, on `schedule` and on `vakt backup`, keeping the newest `keep`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Dump {
    /// The host that runs the dump and keeps the files.
    pub host: String,
    /// The DB host (`engine = "mariadb"`) it dumps.
    pub db: String,
    /// The folder of the dumps on `host` (absolute).
    pub path: String,
    pub keep: u32,
    pub schedule: Schedule,
}

/// How often a dump runs on its own (a systemd timer or a cron entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Hourly,
    Daily,
    Weekly,
}

impl Schedule {
    const ALL: [(&'static str, Schedule); 3] = [
        ("hourly", Schedule::Hourly),
        ("daily", Schedule::Daily),
        ("weekly", Schedule::Weekly),
    ];

    /// As the inventory spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Schedule::Hourly => "hourly",
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
        }
    }

    /// systemd's `OnCalendar=` for the same times as [`Schedule::cron`].
    pub fn on_calendar(self) -> &'static str {
        match self {
            Schedule::Hourly => "*-*-* *:17:00",
            Schedule::Daily => "*-*-* 03:17:00",
            Schedule::Weekly => "Sun *-*-* 03:17:00",
        }
    }

    /// The cron time fields: at 03:17 (hourly: minute 17), out of the
    /// round hours when other jobs run.
    pub fn cron(self) -> &'static str {
        match self {
            Schedule::Hourly => "17 * * * *",
            Schedule::Daily => "17 3 * * *",
            Schedule::Weekly => "17 3 * * 0",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Inventory {
    /// The file as given (or `<embedded local default>`).
    pub file: String,
    /// sha256 of the file's bytes, for audit reports.
    pub sha256: String,
    /// Folder of the file, where a `templates/` override may live.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
    pub name: String,
    pub vip: Option<Ipv4Addr>,
    pub port: u16,
    pub hosts: Vec<Host>,
    pub balancer: Balancer,
    pub policy: Policy,
    pub ha: Ha,
    pub tls: Option<Tls>,
    pub firewall: Firewall,
    pub deploy: Deploy,
    pub logs: Logs,
    pub metrics: Option<Metrics>,
    /// `[artifacts] binary`: the vakt binary to push instead of the running
    /// one (another architecture), relative to the inventory's folder.
    pub binary: Option<PathBuf>,
    pub backups: Vec<Backup>,
    pub vagrant: VagrantDefaults,
    /// Files whose `[[hosts]]` entries override this inventory's SSH
    /// settings per host (`vakt vagrant inventory` writes one), relative to
    /// the inventory's folder.
    pub overlays: Vec<String>,
}

/// `[vagrant]`: what `vakt vagrant` uses when a host says nothing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VagrantDefaults {
    pub os: String,
    pub memory: u32,
    pub cpus: u32,
    /// The operator's public key, authorised on every VM.
    pub ssh_public_key: String,
    /// Port on the operator's machine forwarded to the first LB's HTTP port.
    pub forward_port: u16,
}

impl Inventory {
    pub fn lbs(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.has(Role::Lb))
    }

    pub fn webs(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.has(Role::Web))
    }
}

/// A `location = { country, city, provider, site }` table of `owner`.
fn parse_location(mut l: Fields<'_>, owner: &str, src: &Source, d: &mut Diagnostics) -> Location {
    let country = match l.str("country", d) {
        Some((c, span)) => {
            if !ISO_3166.split(' ').any(|x| x == c) {
                d.error_hint(
                    src,
                    Some(span),
                    format!("{owner}.location.country \"{c}\" is not an ISO 3166 code"),
                    "use two capital letters, e.g. \"NO\"",
                );
            }
            c.to_string()
        }
        None => {
            d.error_hint(
                src,
                l.span(),
                format!("{owner}.location has no country"),
                "add country = \"NO\"",
            );
            String::new()
        }
    };
    let loc = Location {
        country,
        city: l.string("city", d),
        provider: l.string("provider", d),
        site: l.string("site", d),
    };
    l.finish(d);
    loc
}

/// Reads `-i FILE`, or the embedded local default when `None`.
pub fn load(path: Option<&Path>) -> Result<(Inventory, Diagnostics), Diagnostics> {
    let (name, text, dir) = match path {
        None => (
            "<embedded inventory/local.toml>".to_string(),
            LOCAL_DEFAULT.to_string(),
            None,
        ),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                let mut d = Diagnostics::new();
                d.error_hint(
                    &Source::new(p.display().to_string(), ""),
                    None,
                    format!("cannot read the inventory: {e}"),
                    "check the path given to -i",
                );
                d
            })?;
            (
                p.display().to_string(),
                text,
                p.parent().map(Path::to_path_buf),
            )
        }
    };
    let (mut inv, mut warnings) = parse(&Source::new(name, text), dir.as_deref())?;
    inv.dir = dir;
    let mut d = Diagnostics::new();
    for o in inv.overlays.clone() {
        let path = inv
            .dir
            .as_deref()
            .map_or(PathBuf::from(&o), |dir| dir.join(&o));
        match std::fs::read_to_string(&path) {
            Ok(text) => apply_overlay(
                &mut inv,
                &Source::new(path.display().to_string(), text),
                &mut d,
            ),
            Err(e) => d.warning(
                &Source::new(inv.file.clone(), ""),
                None,
                format!(
                    "overlay {}: {e}; the inventory's own SSH settings apply",
                    path.display()
                ),
                Some("for Vagrant VMs: `vagrant up`, then `vakt vagrant inventory -i INV`".into()),
            ),
        }
    }
    if d.has_errors() {
        return Err(d);
    }
    warnings.extend(d);
    Ok((inv, warnings))
}

/// Applies an overlay file: `[[hosts]]` entries with a `name` and an `ssh`
/// table, merged into that host's SSH settings.
fn apply_overlay(inv: &mut Inventory, src: &Source, d: &mut Diagnostics) {
    let doc = match reader::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            d.extend(e);
            return;
        }
    };
    let mut root = Fields::root(src, &doc);
    for mut h in root.tables("hosts", d) {
        let Some((name, span)) = h.str("name", d) else {
            d.error_hint(
                src,
                h.span(),
                "an overlay [[hosts]] entry has no name",
                "add name = \"lb01\"",
            );
            continue;
        };
        match inv.hosts.iter_mut().find(|x| x.name == name) {
            Some(host) => {
                if let Some(mut s) = h.table("ssh", d) {
                    read_ssh(&mut s, &mut host.ssh, d);
                    s.finish(d);
                }
            }
            None => d.error_hint(
                src,
                Some(span),
                format!(
                    "the overlay names host `{name}`, which {} does not have",
                    inv.file
                ),
                "regenerate the overlay from the matching Vagrantfile",
            ),
        }
        h.finish(d);
    }
    root.finish(d);
}

const ISO_3166: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

fn is_private(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.is_loopback()
}

/// An IPv4 address under `key`; `label` names it in messages (`web01.private_ip`).
fn ip(
    f: &mut Fields,
    key: &'static str,
    label: &str,
    d: &mut Diagnostics,
) -> Option<(Ipv4Addr, std::ops::Range<usize>)> {
    let (s, span) = f.str(key, d)?;
    match s.parse::<Ipv4Addr>() {
        Ok(a) => Some((a, span)),
        Err(_) => {
            d.error_hint(
                f.source(),
                Some(span),
                format!("{label}.{key} \"{s}\" is not an IPv4 address"),
                "write four numbers 0-255, e.g. \"10.10.0.11\"",
            );
            None
        }
    }
}

/// How many TOML syntax errors one check reports at most.
const SYNTAX_ERRORS_MAX: usize = 10;

/// Every TOML syntax error it can find in `src`. toml_edit stops at the
/// first error and gives one message, so after each error the offending line
/// is blanked (same byte length, so later positions stay right) and the text
/// parsed again. It stops where blanking would invent errors: an error on a
/// table header (`[[hosts]`), whose keys would then land in the previous
/// table, or one that spans several lines (an unterminated string or array).
fn syntax_errors(src: &Source) -> Diagnostics {
    let mut all = Diagnostics::new();
    let mut text = src.text().to_string();
    while all.items.len() < SYNTAX_ERRORS_MAX {
        // Lines keep their numbers and the lines after a blanked one keep
        // their columns, so each diagnostic points into the file as written.
        let Err(one) = reader::parse(&Source::new(src.name(), text.clone())) else {
            break;
        };
        let Some(diag) = one.items.into_iter().next() else {
            break;
        };
        let Some(span) = diag.span.clone() else {
            all.items.push(diag);
            break;
        };
        let start = text[..span.start.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        all.items.push(diag);
        let multi_line = span.end > end + 1;
        let header = text[start..end].trim_start().starts_with('[');
        if multi_line || header || start == end {
            break;
        }
        text.replace_range(start..end, &" ".repeat(end - start));
    }
    all
}

/// Parses and validates an inventory: every table in turn, then the rules
/// about the whole inventory; every problem is reported at once. Files it
/// names (`[tls] pem`) are read relative to `dir`, the inventory's folder
/// (the working directory when `None`).
pub fn parse(src: &Source, dir: Option<&Path>) -> Result<(Inventory, Diagnostics), Diagnostics> {
    let doc = reader::parse(src).map_err(|_| syntax_errors(src))?;
    let mut d = Diagnostics::new();
    let mut root = Fields::root(src, &doc);
    let cluster = read_cluster(&mut root, &mut d);
    let mut ssh = Ssh {
        user: "root".into(),
        port: 22,
        identity: None,
        host_keys: HostKeys::Strict,
        jump: None,
        sudo: false,
        address: None,
    };
    if let Some(mut s) = root.table("ssh", &mut d) {
        read_ssh(&mut s, &mut ssh, &mut d);
        s.finish(&mut d);
    }
    let hosts = read_hosts(&mut root, &ssh, &mut d);
    let mut balancer = Balancer {
        balance: Balance::RoundRobin,
        cookie: "SERVERID".into(),
        health: Health {
            path: "/health".into(),
            interval: "2s".into(),
            rise: 2,
            fall: 5,
        },
        retries: 3,
        redispatch: true,
        maxconn: 2000,
        stats: None,
    };
    if let Some(mut b) = root.table("balancer", &mut d) {
        read_balancer(&mut b, &mut balancer, &mut d);
        b.finish(&mut d);
    }
    let (policy, policy_span) = read_policy(&mut root, &mut d);
    let ha = read_ha(&mut root, &cluster.name, &mut d);
    let tls = read_tls(&mut root, dir, cluster.port, &mut d);
    let firewall = read_firewall(&mut root, &hosts.hosts, &mut d);
    let deploy = read_deploy(&mut root, &mut d);
    let logs = read_logs(&mut root, &mut d);
    let metrics = read_metrics(&mut root, cluster.port, &mut d);
    let mut binary = None;
    if let Some(mut a) = root.table("artifacts", &mut d) {
        binary = a.string("binary", &mut d).map(PathBuf::from);
        a.finish(&mut d);
    }
    let backups = read_backups(&mut root, &hosts.hosts, &mut d);
    let vagrant = read_vagrant(&mut root, &mut d);
    let overlays: Vec<String> = root
        .strings("overlays", &mut d)
        .unwrap_or_default()
        .into_iter()
        .map(|(o, _)| o.to_string())
        .collect();
    root.finish(&mut d);

    let by_ip = check_unique(src, &hosts, cluster.vip, &mut d);
    if policy.require.contains(&Proof::Geoip) && policy.geoip_db.is_none() {
        d.error_hint(
            src,
            policy_span,
            "policy.require lists \"geoip\" but there is no policy.geoip_db to look addresses up in",
            "add geoip_db = \"geo.mmdb\" (an IP-to-country database in MaxMind's mmdb format), or drop \"geoip\" from require",
        );
    }
    check_roles(src, &hosts, &cluster, &by_ip, &mut d);
    d.sort();
    if d.has_errors() {
        return Err(d);
    }
    let sha256 = hex::encode(Sha256::digest(src.text().as_bytes()));
    Ok((
        Inventory {
            file: src.name().to_string(),
            sha256,
            dir: None,
            name: cluster.name,
            vip: cluster.vip,
            port: cluster.port,
            hosts: hosts.hosts,
            balancer,
            policy,
            backups,
            vagrant,
            overlays,
            ha,
            tls,
            firewall,
            deploy,
            logs,
            metrics,
            binary,
        },
        d,
    ))
}

/// `[cluster]` as read (with the VIP's place, for later rules).
struct Cluster {
    name: String,
    vip: Option<Ipv4Addr>,
    vip_span: Option<std::ops::Range<usize>>,
    port: u16,
}

/// Reads `[cluster]` (name, vip, port); a missing table or name is reported.
fn read_cluster(root: &mut Fields, d: &mut Diagnostics) -> Cluster {
    let src = root.source();
    let mut out = Cluster {
        name: String::new(),
        vip: None,
        vip_span: None,
        port: 80,
    };
    let Some(mut c) = root.table("cluster", d) else {
        d.error_hint(
            src,
            None,
            "no [cluster] table",
            "add [cluster] name = \"shop\"",
        );
        return out;
    };
    if c.get("name").is_none() {
        d.error_hint(
            src,
            c.span(),
            "[cluster] has no name",
            "add name = \"shop\" (it names the state folder, the rendered files and the VRRP instance)",
        );
    }
    if let Some((n, span)) = c.str("name", d) {
        if n.is_empty()
            || !n
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            d.error_hint(
                src,
                Some(span),
                format!("cluster name \"{n}\" is not valid"),
                "use letters, digits, - and _",
            );
        }
        out.name = n.to_string();
    }
    if let Some((a, span)) = ip(&mut c, "vip", "cluster", d) {
        out.vip = Some(a);
        out.vip_span = Some(span);
    }
    if let Some(p) = c.int("port", 1, 65535, d) {
        out.port = p as u16;
    }
    c.finish(d);
    out
}

/// Every `[[hosts]]` entry as read, with what the whole-inventory rules
/// need: each host's place, and the problems already reported.
struct Hosts {
    hosts: Vec<Host>,
    spans: Vec<std::ops::Range<usize>>,
    no_private_ip: Vec<(String, std::ops::Range<usize>)>,
    /// False when a host was dropped (no name) or its roles could not be
    /// read: that was reported, and the rules about the whole inventory's
    /// roles ("no web hosts") would only repeat it in other words.
    roles_known: bool,
}

/// Reads every `[[hosts]]` entry; `ssh` is the cluster-wide `[ssh]`.
fn read_hosts(root: &mut Fields, ssh: &Ssh, d: &mut Diagnostics) -> Hosts {
    let mut out = Hosts {
        hosts: Vec::new(),
        spans: Vec::new(),
        no_private_ip: Vec::new(),
        roles_known: true,
    };
    for mut h in root.tables("hosts", d) {
        let span = h.span().unwrap_or(0..0);
        match read_host(&mut h, ssh, d) {
            Some(entry) => {
                out.roles_known &= entry.roles_readable;
                if entry.private_ip_missing {
                    out.no_private_ip
                        .push((entry.host.name.clone(), span.clone()));
                }
                out.hosts.push(entry.host);
                out.spans.push(span);
            }
            None => out.roles_known = false,
        }
        h.finish(d);
    }
    out
}

/// Reads `[policy]` (defaults when absent) and its place.
fn read_policy(root: &mut Fields, d: &mut Diagnostics) -> (Policy, Option<std::ops::Range<usize>>) {
    let src = root.source();
    let mut policy = Policy {
        data_countries: vec!["NO".into()],
        require: vec![Proof::Declared],
        geoip_db: None,
        rtt_probe: None,
        max_rtt_ms: None,
        data_ports: vec![3306, 5432, 6379, 27017, 9200, 11211],
        controller: None,
        processors: Vec::new(),
        transfers: Vec::new(),
        retention: None,
    };
    let Some(mut p) = root.table("policy", d) else {
        return (policy, None);
    };
    let span = p.span();
    if let Some(list) = p.strings("data_countries", d) {
        policy.data_countries = Vec::new();
        for (c, span) in list {
            if c != "EEA" && !ISO_3166.split(' ').any(|x| x == c) {
                d.error_hint(
                    src,
                    Some(span),
                    format!("\"{c}\" is not an ISO 3166 country code"),
                    "use two capital letters, e.g. \"NO\", or the group \"EEA\"",
                );
            }
            policy.data_countries.push(c.to_string());
        }
    }
    if let Some(list) = p.strings("require", d) {
        policy.require = Vec::new();
        for (r, span) in list {
            match lookup(&Proof::ALL, r) {
                Some(proof) => policy.require.push(proof),
                None => d.error_hint(
                    src,
                    Some(span),
                    format!("unknown evidence \"{r}\""),
                    "use \"declared\", \"geoip\" or \"latency\"",
                ),
            }
        }
    }
    policy.geoip_db = p.string("geoip_db", d).map(PathBuf::from);
    policy.rtt_probe = p.string("rtt_probe", d);
    if let Some(f) = p.get("max_rtt_ms") {
        match f
            .item
            .as_float()
            .or_else(|| f.item.as_integer().map(|i| i as f64))
        {
            Some(v) if v > 0.0 => policy.max_rtt_ms = Some(v),
            _ => d.error(
                src,
                Some(f.span()),
                "`policy.max_rtt_ms` must be a positive number",
            ),
        }
    }
    if let Some(f) = p.get("data_ports")
        && let Some(arr) = f.item.as_array()
    {
        policy.data_ports = arr
            .iter()
            .filter_map(|v| v.as_integer())
            .filter(|n| (1..=65535).contains(n))
            .map(|n| n as u16)
            .collect();
    }
    policy.controller = p.string("controller", d);
    policy.retention = p.string("retention", d);
    policy.processors = read_processors(&mut p, d);
    policy.transfers = read_transfers(&mut p, d);
    p.finish(d);
    (policy, span)
}

/// A country code of `[policy]`'s records: two capital letters of ISO 3166.
fn check_country(src: &Source, span: Option<std::ops::Range<usize>>, c: &str, d: &mut Diagnostics) {
    if !ISO_3166.split(' ').any(|x| x == c) {
        d.error_hint(
            src,
            span,
            format!("\"{c}\" is not an ISO 3166 country code"),
            "use two capital letters, e.g. \"NO\" or \"US\"",
        );
    }
}

/// `[policy] processors = [{ name = "...", country = "NO", dpa = "..." }]`.
fn read_processors(p: &mut Fields, d: &mut Diagnostics) -> Vec<Processor> {
    let src = p.source();
    let mut out = Vec::new();
    for mut t in p.tables("processors", d) {
        let span = t.span();
        let name = t.string("name", d);
        let country = t.string("country", d);
        if let Some(c) = &country {
            check_country(src, span.clone(), c, d);
        }
        let dpa = t.string("dpa", d);
        t.finish(d);
        match (name, country) {
            (Some(name), Some(country)) => out.push(Processor { name, country, dpa }),
            _ => d.error_hint(
                src,
                span,
                "a processor needs a name and a country",
                "write { name = \"CoolVDS AS\", country = \"NO\", dpa = \"contracts/coolvds-dpa-2026.pdf\" }",
            ),
        }
    }
    out
}

/// `[policy] transfers = [{ to = "US", basis = "...", what = "..." }]`.
fn read_transfers(p: &mut Fields, d: &mut Diagnostics) -> Vec<Transfer> {
    let src = p.source();
    let mut out = Vec::new();
    for mut t in p.tables("transfers", d) {
        let span = t.span();
        let to = t.string("to", d);
        if let Some(c) = &to {
            check_country(src, span.clone(), c, d);
        }
        let basis = t.string("basis", d);
        let what = t.string("what", d);
        t.finish(d);
        match (to, basis) {
            (Some(to), Some(basis)) if !basis.trim().is_empty() => {
                out.push(Transfer { to, basis, what })
            }
            _ => d.error_hint(
                src,
                span,
                "a transfer needs the receiving country and its legal basis",
                "write { to = \"US\", basis = \"EU-US Data Privacy Framework (adequacy, art. 45)\", what = \"support tickets\" }",
            ),
        }
    }
    out
}

/// Reads `[ha]` (defaults when absent; the router id from `cluster`).
fn read_ha(root: &mut Fields, cluster: &str, d: &mut Diagnostics) -> Ha {
    let src = root.source();
    let mut ha = Ha {
        // keepalived wants seconds ("0.1"), never a unit.
        advert_int: "0.1".into(),
        interface: "eth0".into(),
        nopreempt: false,
        virtual_router_id: virtual_router_id(cluster),
    };
    let Some(mut h) = root.table("ha", d) else {
        return ha;
    };
    if let Some(v) = h.duration("advert_int", d) {
        if v < Duration::from_millis(10) || v > Duration::from_secs(255) {
            d.error(
                src,
                h.span(),
                "`ha.advert_int` must be between 10ms and 255s",
            );
        }
        ha.advert_int = format!("{:.2}", v.as_secs_f64())
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
    }
    if let Some(i) = h.string("interface", d) {
        ha.interface = i;
    }
    if let Some(b) = h.bool("nopreempt", d) {
        ha.nopreempt = b;
    }
    if let Some(n) = h.int("virtual_router_id", 1, 255, d) {
        ha.virtual_router_id = n as u8;
    }
    h.finish(d);
    ha
}

/// Reads `[tls]` (none when absent): the domains, the PEM file (read here,
/// and checked as the proxy will: a chain, a key that fits it, and a name for
/// every domain), the port (443; it must differ from the cluster's plain
/// port), `redirect` (on) and `hsts`. `dir` is where a relative `pem` lives.
fn read_tls(
    root: &mut Fields,
    dir: Option<&Path>,
    plain_port: u16,
    d: &mut Diagnostics,
) -> Option<Tls> {
    let src = root.source();
    let mut t = root.table("tls", d)?;
    let span = t.span();
    let domains = t.strings("domains", d).unwrap_or_default();
    if domains.is_empty() {
        d.error_hint(
            src,
            span.clone(),
            "[tls] has no domains",
            "add domains = [\"shop.example\"] (the names clients reach the cluster by)",
        );
    }
    let acme = t.table("acme", d).map(|mut a| {
        let out = read_acme(&mut a, dir, d);
        a.finish(d);
        out
    });
    let pem = match t.str("pem", d) {
        Some((_, pem_span)) if acme.is_some() => {
            d.error_hint(
                src,
                Some(pem_span),
                "[tls] has both pem and acme",
                "keep one: pem = a certificate you bring, acme = certificates the LBs order and renew",
            );
            None
        }
        Some((p, pem_span)) => {
            let path = dir.map_or_else(|| PathBuf::from(p), |dir| dir.join(p));
            read_pem(src, &path, pem_span, &domains, d).map(|text| (path, text))
        }
        None if acme.is_some() => Some((PathBuf::new(), String::new())),
        None => {
            d.error_hint(
                src,
                span.clone(),
                "[tls] has no pem and no acme",
                "add pem = \"site.pem\" (the certificate chain and its key in one PEM file, next to the inventory), or acme = { directory = \"https://acme-v02.api.letsencrypt.org/directory\", email = \"ops@example.org\" }",
            );
            None
        }
    };
    let port = t.int("port", 1, 65535, d).map_or(443, |p| p as u16);
    if port == plain_port {
        d.error_hint(
            src,
            span,
            format!("tls.port {port} is also the cluster's plain HTTP port"),
            "give [tls] another port (443 unless set) or [cluster] another port",
        );
    }
    let redirect = t.bool("redirect", d).unwrap_or(true);
    let hsts = match t.str("hsts", d) {
        Some((h, hsts_span)) if !h.starts_with("max-age=") => {
            d.error_hint(
                src,
                Some(hsts_span),
                format!("tls.hsts \"{h}\" does not start with max-age="),
                "write the header's value, e.g. hsts = \"max-age=31536000\"",
            );
            None
        }
        h => h.map(|(h, _)| h.to_string()),
    };
    t.finish(d);
    let (pem, pem_text) = pem?;
    let acme = match acme {
        Some(Some(a)) => Some(a),
        Some(None) => return None,
        None => None,
    };
    Some(Tls {
        domains: domains.into_iter().map(|(n, _)| n.to_string()).collect(),
        pem,
        pem_text,
        port,
        redirect,
        hsts,
        acme,
    })
}

/// `[tls] acme`: `directory` (https), `email`, `ca_file`; `None` after
/// reporting a problem.
fn read_acme(a: &mut Fields, dir: Option<&Path>, d: &mut Diagnostics) -> Option<Acme> {
    let src = a.source();
    let span = a.span();
    let directory = match a.str("directory", d) {
        Some((u, _)) if u.starts_with("https://") => Some(u.to_string()),
        Some((u, s)) => {
            d.error_hint(
                src,
                Some(s),
                format!("tls.acme.directory \"{u}\" is not an https URL"),
                "ACME runs over HTTPS (RFC 8555 §6.1): e.g. \"https://acme-v02.api.letsencrypt.org/directory\"",
            );
            None
        }
        None => {
            d.error_hint(
                src,
                span,
                "tls.acme has no directory",
                "add directory = \"https://acme-v02.api.letsencrypt.org/directory\" (the CA's ACME directory URL)",
            );
            None
        }
    };
    let email = match a.str("email", d) {
        Some((e, s)) if !e.contains('@') || e.contains(char::is_whitespace) => {
            d.error_hint(
                src,
                Some(s),
                format!("tls.acme.email \"{e}\" is not an email address"),
                "write the address the CA may warn about expiring certificates, e.g. \"ops@shop.example\"",
            );
            None
        }
        e => e.map(|(e, _)| e.to_string()),
    };
    let ca = match a.str("ca_file", d) {
        Some((f, s)) => {
            let path = dir.map_or_else(|| PathBuf::from(f), |dir| dir.join(f));
            match std::fs::read_to_string(&path) {
                Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => Some((path, text)),
                Ok(_) => {
                    d.error_hint(
                        src,
                        Some(s),
                        format!(
                            "tls.acme.ca_file {} holds no PEM certificate",
                            path.display()
                        ),
                        "ca_file is the CA certificate (PEM) the ACME server's HTTPS chains to",
                    );
                    return None;
                }
                Err(e) => {
                    d.error_hint(
                        src,
                        Some(s),
                        format!("tls.acme.ca_file {}: {e}", path.display()),
                        "ca_file is relative to the inventory's folder",
                    );
                    return None;
                }
            }
        }
        None => None,
    };
    Some(Acme {
        directory: directory?,
        email,
        ca_file: ca.as_ref().map(|(p, _)| p.clone()),
        ca_text: ca.map(|(_, t)| t),
    })
}

/// Reads `[tls] pem` at `path` and checks it as the proxy will, and that its
/// certificate names every domain; problems point at `pem` or the domain.
fn read_pem(
    src: &Source,
    path: &Path,
    pem_span: std::ops::Range<usize>,
    domains: &[(&str, std::ops::Range<usize>)],
    d: &mut Diagnostics,
) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            d.error_hint(
                src,
                Some(pem_span),
                format!("tls.pem {}: {e}", path.display()),
                "pem is relative to the inventory's folder; it holds the certificate chain and its key",
            );
            return None;
        }
    };
    let names = match vakt_runtime::pem_names(path) {
        Ok(names) => names,
        Err(e) => {
            d.error_hint(
                src,
                Some(pem_span),
                format!("tls.pem {e}"),
                "one PEM file with the certificate chain (leaf first) and its private key, as HAProxy's crt wants",
            );
            return None;
        }
    };
    let mut covered = true;
    for (domain, span) in domains {
        if !names.iter().any(|n| covers(n, domain)) {
            covered = false;
            d.error_hint(
                src,
                Some(span.clone()),
                format!(
                    "tls.domains \"{domain}\" is not a name of the certificate in {} (it has: {})",
                    path.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
                "get a certificate that names it, or drop it from domains",
            );
        }
    }
    covered.then_some(text)
}

/// Whether certificate name `name` (exact, or a `*.` wildcard one label
/// deep, RFC 6125 §6.4.3) covers `domain`.
pub(crate) fn covers(name: &str, domain: &str) -> bool {
    let (name, domain) = (name.to_ascii_lowercase(), domain.to_ascii_lowercase());
    match name.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == domain,
    }
}

/// A list of networks at `name`, each checked; a malformed one is reported.
fn read_cidrs(
    list: Vec<(&str, std::ops::Range<usize>)>,
    src: &Source,
    d: &mut Diagnostics,
) -> Vec<Cidr> {
    let mut out = Vec::new();
    for (c, span) in list {
        match Cidr::parse(c) {
            Some(n) => out.push(n),
            None => d.error_hint(
                src,
                Some(span),
                format!("\"{c}\" is not a network"),
                "write an address or address/prefix: \"198.51.100.7\", \"10.10.0.0/24\", \"2001:db8::/32\"",
            ),
        }
    }
    out
}

/// Reads `[firewall]` (on when absent): `enabled`, `admin` networks and
/// `extra` rules.
fn read_firewall(root: &mut Fields, known: &[Host], d: &mut Diagnostics) -> Firewall {
    let src = root.source();
    let Some(mut f) = root.table("firewall", d) else {
        return Firewall::default();
    };
    let mut fw = Firewall {
        enabled: f.bool("enabled", d).unwrap_or(true),
        ..Firewall::default()
    };
    if let Some(list) = f.strings("admin", d) {
        fw.admin = read_cidrs(list, src, d);
    }
    if let Some(field) = f.get("rollback_after")
        && let Some(v) = field.as_duration("firewall.rollback_after", d)
    {
        if v < Duration::from_secs(2) || v > Duration::from_secs(3600) {
            d.error_hint(
                src,
                Some(field.span()),
                "`firewall.rollback_after` must be between 2s and 1h",
                "write rollback_after = \"30s\" (time for a new SSH connection to prove it still gets in)",
            );
        } else {
            fw.rollback_after = v.as_secs() as u32;
        }
    }
    for mut e in f.tables("extra", d) {
        let span = e.span();
        let port = e.int("port", 1, 65535, d).map(|p| p as u16);
        let proto = e.string("proto", d).unwrap_or_else(|| "tcp".into());
        if proto != "tcp" && proto != "udp" {
            d.error_hint(
                src,
                span.clone(),
                format!("firewall.extra: unknown proto \"{proto}\""),
                "use proto = \"tcp\" or \"udp\"",
            );
        }
        let from = e
            .strings("from", d)
            .map(|l| read_cidrs(l, src, d))
            .unwrap_or_default();
        let mut roles = Vec::new();
        for (r, rspan) in e.strings("roles", d).unwrap_or_default() {
            match r {
                "lb" => roles.push(Role::Lb),
                "web" => roles.push(Role::Web),
                "db" => roles.push(Role::Db),
                _ => d.error_hint(
                    src,
                    Some(rspan),
                    format!("firewall.extra: unknown role \"{r}\""),
                    "use \"lb\", \"web\" or \"db\"",
                ),
            }
        }
        let mut hosts = Vec::new();
        let names: Vec<&str> = known.iter().map(|h| h.name.as_str()).collect();
        for (h, hspan) in e.strings("hosts", d).unwrap_or_default() {
            if !names.contains(&h) {
                let hint = match closest(h, &names) {
                    Some(c) => format!("did you mean \"{c}\"?"),
                    None => format!("name one of the [[hosts]]: {}", names.join(", ")),
                };
                d.error_hint(
                    src,
                    Some(hspan),
                    format!("firewall.extra: no host \"{h}\" in the inventory"),
                    hint,
                );
            }
            hosts.push(h.to_string());
        }
        e.finish(d);
        match port {
            Some(port) => fw.extra.push(ExtraRule {
                port,
                proto,
                from,
                roles,
                hosts,
            }),
            None => d.error_hint(
                src,
                span,
                "a firewall.extra rule has no port",
                "add port = 9100 (and from = [\"10.10.0.5/32\"] to limit who may reach it)",
            ),
        }
    }
    f.finish(d);
    fw
}

/// Reads `[metrics]` (none when absent): `listen = "private"` and `port`,
/// which must not be the cluster's own port.
fn read_metrics(root: &mut Fields, cluster_port: u16, d: &mut Diagnostics) -> Option<Metrics> {
    let src = root.source();
    let mut m = root.table("metrics", d)?;
    let span = m.span();
    let listen = match m.str("listen", d) {
        Some(("private", _)) => "private".to_string(),
        Some((other, span)) => {
            d.error_hint(
                src,
                Some(span),
                format!("metrics.listen \"{other}\" is not a place vakt serves metrics"),
                "write listen = \"private\" (the LB's private address; Prometheus scrapes it from an admin network)",
            );
            "private".to_string()
        }
        None => {
            d.error_hint(
                src,
                span.clone(),
                "[metrics] has no listen",
                "add listen = \"private\" (the LB's private address, port 8405)",
            );
            "private".to_string()
        }
    };
    let port = m.int("port", 1, 65535, d).map_or(8405, |p| p as u16);
    if port == cluster_port {
        d.error_hint(
            src,
            span,
            format!("metrics.port {port} is the cluster's own port"),
            "leave port out for HAProxy's 8405, or pick a free port",
        );
    }
    m.finish(d);
    Some(Metrics { listen, port })
}

/// Reads every `[[backups]]` entry: a declared place (its own location),
/// or a `kind = "mariadb-dump"` target checked against `hosts` (its host
/// has role backup or is the DB host, there is a MariaDB to dump, one
/// target per host, an absolute path, `keep` and `schedule` in range). An
/// entry with problems is reported and dropped.
fn read_backups(root: &mut Fields, hosts: &[Host], d: &mut Diagnostics) -> Vec<Backup> {
    let src = root.source();
    let mut backups: Vec<Backup> = Vec::new();
    for mut b in root.tables("backups", d) {
        let name = b.string("name", d).unwrap_or_else(|| {
            d.error_hint(
                src,
                b.span(),
                "a [[backups]] entry has no name",
                "add name = \"offsite\"",
            );
            String::new()
        });
        let kind = b.string("kind", d).unwrap_or_else(|| "backup".into());
        if kind == DUMP_KIND {
            let errors = d.items.len();
            let dump = read_dump(&mut b, &name, hosts, &backups, d);
            b.finish(d);
            if let Some((dump, location)) = dump.filter(|_| d.items.len() == errors) {
                backups.push(Backup {
                    name,
                    kind,
                    location,
                    dump: Some(dump),
                });
            }
            continue;
        }
        for k in DUMP_KEYS {
            if let Some(f) = b.get(k) {
                let span = f.span();
                d.error_hint(
                    src,
                    Some(span),
                    format!("backups.{name}.{k} is set but the kind is not \"{DUMP_KIND}\""),
                    format!("add kind = \"{DUMP_KIND}\" for dumps vakt makes, or drop the key"),
                );
            }
        }
        let location = match b.table("location", d) {
            Some(l) => Some(parse_location(l, &format!("backups.{name}"), src, d)),
            None => {
                d.error_hint(
                    src,
                    b.span(),
                    format!("backup `{name}` has no location"),
                    "add location = { country = \"NO\", city = \"Bergen\" } (backups hold personal data too)",
                );
                None
            }
        };
        b.finish(d);
        if let Some(location) = location {
            backups.push(Backup {
                name,
                kind,
                location,
                dump: None,
            });
        }
    }
    backups
}

/// The MariaDB account backup hosts dump and restore with (so no shop
/// user may be called that).
pub const BACKUP_USER: &str = "vakt_backup";

/// The `[[backups]]` kind whose dumps vakt makes and restores.
pub const DUMP_KIND: &str = "mariadb-dump";

/// The keys only a `kind = "mariadb-dump"` target has.
const DUMP_KEYS: [&str; 5] = ["host", "db", "path", "keep", "schedule"];

/// A `kind = "mariadb-dump"` entry past its name and kind: the dump and
/// the location it has (its host's). `None` when it cannot be read;
/// problems are reported here.
fn read_dump(
    b: &mut Fields,
    name: &str,
    hosts: &[Host],
    earlier: &[Backup],
    d: &mut Diagnostics,
) -> Option<(Dump, Location)> {
    let src = b.source();
    if !name.is_empty()
        && (name.len() > 40 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        d.error_hint(
            src,
            b.get("name").map(|f| f.span()),
            format!("backup name \"{name}\" is not a plain name (dumps are named after it)"),
            "use up to 40 letters, digits and -, e.g. \"nightly\"",
        );
    }
    if let Some(f) = b.get("location") {
        let span = f.span();
        d.error_hint(
            src,
            Some(span),
            format!("backups.{name}.location: a {DUMP_KIND} target lies where its host is"),
            "drop location here and give the backup host its location",
        );
    }
    let mariadbs: Vec<&Host> = hosts
        .iter()
        .filter(|h| h.has(Role::Db) && h.mariadb.is_some())
        .collect();
    let db = match b.str("db", d) {
        Some((v, span)) => match mariadbs.iter().find(|h| h.name == v) {
            Some(h) => Some(*h),
            None => {
                let names: Vec<&str> = mariadbs.iter().map(|h| h.name.as_str()).collect();
                d.error_hint(
                    src,
                    Some(span),
                    format!("backups.{name}.db `{v}` is no DB host with engine = \"mariadb\""),
                    match closest(v, &names) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => format!("name one of: {}", names.join(", ")),
                    },
                );
                None
            }
        },
        None => match mariadbs.as_slice() {
            [one] => Some(*one),
            [] => {
                d.error_hint(
                    src,
                    b.span(),
                    format!("backup `{name}` dumps MariaDB, but no DB host has engine = \"mariadb\""),
                    "give the db host db = { engine = \"mariadb\", .. }, or use another kind for a backup vakt does not make",
                );
                None
            }
            _ => {
                d.error_hint(
                    src,
                    b.span(),
                    format!("backup `{name}`: the inventory has several MariaDB hosts"),
                    "say which one it dumps: db = \"db01\"",
                );
                None
            }
        },
    };
    if let Some(db) = db
        && db.mariadb.as_ref().is_some_and(|m| m.user == BACKUP_USER)
    {
        d.error_hint(
            src,
            b.span(),
            format!(
                "backup `{name}`: {}.db.user is {BACKUP_USER}, the backup account's name",
                db.name
            ),
            "give the shop's database user another name (e.g. user = \"shop\")",
        );
    }
    let host = match b.str("host", d) {
        Some((v, span)) => match hosts.iter().find(|h| h.name == v) {
            Some(h) if h.has(Role::Backup) || db.is_some_and(|db| db.name == h.name) => Some(h),
            Some(h) => {
                d.error_hint(
                    src,
                    Some(span),
                    format!(
                        "backups.{name}.host `{v}` has role {} and is not the DB host",
                        h.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    format!("give `{v}` roles = [\"backup\"] (it then runs nothing else), or name a backup host"),
                );
                None
            }
            None => {
                let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
                d.error_hint(
                    src,
                    Some(span),
                    format!("backups.{name}.host `{v}` is not a host of the inventory"),
                    match closest(v, &names) {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => "add a [[hosts]] with roles = [\"backup\"] and name it here".into(),
                    },
                );
                None
            }
        },
        None => {
            d.error_hint(
                src,
                b.span(),
                format!("backup `{name}` has no host"),
                "add host = \"backup01\" (a host with roles = [\"backup\"], or the DB host)",
            );
            None
        }
    };
    if let Some(h) = host
        && let Some(other) = earlier
            .iter()
            .find(|o| o.dump.as_ref().is_some_and(|x| x.host == h.name))
    {
        d.error_hint(
            src,
            b.get("host").map(|f| f.span()),
            format!(
                "backups `{}` and `{name}` are both dumps on `{}`",
                other.name, h.name
            ),
            "one dump target per host: give this one another backup host",
        );
    }
    let path = match b.str("path", d) {
        Some((p, span)) => {
            let parts: Vec<&str> = p.split('/').collect();
            if !p.starts_with('/')
                || parts.contains(&"..")
                || parts.iter().filter(|c| !c.is_empty()).count() < 2
                || p.chars().any(|c| c.is_control())
            {
                d.error_hint(
                    src,
                    Some(span),
                    format!("backups.{name}.path \"{p}\" is not an absolute folder of its own"),
                    "use an absolute path at least two levels deep without .., e.g. \"/var/backups/vakt\"",
                );
            }
            p.trim_end_matches('/').to_string()
        }
        None => {
            d.error_hint(
                src,
                b.span(),
                format!("backup `{name}` has no path"),
                "add path = \"/var/backups/vakt\" (a folder on the backup host, made 0700)",
            );
            String::new()
        }
    };
    let keep = b.int("keep", 1, 365, d).unwrap_or(7) as u32;
    let schedule = match b.str("schedule", d) {
        None => Schedule::Daily,
        Some((v, span)) => lookup(&Schedule::ALL, v).unwrap_or_else(|| {
            d.error_hint(
                src,
                Some(span),
                format!("backups.{name}.schedule \"{v}\" is not known"),
                "use \"hourly\", \"daily\" or \"weekly\"",
            );
            Schedule::Daily
        }),
    };
    let (host, db) = (host?, db?);
    Some((
        Dump {
            host: host.name.clone(),
            db: db.name.clone(),
            path,
            keep,
            schedule,
        },
        host.location.clone()?,
    ))
}

/// Reads `[deploy]` (`keep`: 1..=50 releases per host, default 5).
fn read_deploy(root: &mut Fields, d: &mut Diagnostics) -> Deploy {
    let mut deploy = Deploy::default();
    let Some(mut t) = root.table("deploy", d) else {
        return deploy;
    };
    if let Some(k) = t.int("keep", 1, 50, d) {
        deploy.keep = k as u32;
    }
    t.finish(d);
    deploy
}

/// Reads `[logs]` (defaults when absent: see [`Logs::to_for`], 14 days).
fn read_logs(root: &mut Fields, d: &mut Diagnostics) -> Logs {
    let src = root.source();
    let mut logs = Logs::default();
    let Some(mut t) = root.table("logs", d) else {
        return logs;
    };
    if let Some((to, span)) = t.str("to", d) {
        match to {
            "file" => logs.to = Some(LogsTo::File),
            "syslog" => logs.to = Some(LogsTo::Syslog),
            "syslog-rfc5424" => logs.to = Some(LogsTo::Syslog5424),
            other => d.error_hint(
                src,
                Some(span),
                format!("logs.to \"{other}\" is not a place vakt logs to"),
                "write to = \"file\" (/var/log/vakt/access.log, rotated), \"syslog\" (the host's /dev/log) or \"syslog-rfc5424\"",
            ),
        }
    }
    if let Some(k) = t.int("keep_days", 1, 3650, d) {
        logs.keep_days = k as u32;
    }
    if let Some(a) = t.bool("anonymize", d) {
        logs.anonymize = a;
    }
    t.finish(d);
    logs
}

/// Reads `[vagrant]` (defaults when absent).
fn read_vagrant(root: &mut Fields, d: &mut Diagnostics) -> VagrantDefaults {
    let mut vagrant = VagrantDefaults {
        os: "rocky9".into(),
        memory: 1024,
        cpus: 1,
        ssh_public_key: "~/.ssh/id_ed25519.pub".into(),
        forward_port: 8080,
    };
    let Some(mut v) = root.table("vagrant", d) else {
        return vagrant;
    };
    if let Some(o) = v.string("os", d) {
        vagrant.os = o;
    }
    if let Some(m) = v.int("memory", 256, 1 << 20, d) {
        vagrant.memory = m as u32;
    }
    if let Some(c) = v.int("cpus", 1, 256, d) {
        vagrant.cpus = c as u32;
    }
    if let Some(k) = v.string("ssh_public_key", d) {
        vagrant.ssh_public_key = k;
    }
    if let Some(p) = v.int("forward_port", 1, 65535, d) {
        vagrant.forward_port = p as u16;
    }
    v.finish(d);
    vagrant
}

/// Whole-inventory rules about names, addresses and cookies: each unique,
/// and a suggested free address for every host without one. Returns every
/// host address and its host (the VIP rule needs them).
fn check_unique<'h>(
    src: &Source,
    hosts: &'h Hosts,
    vip: Option<Ipv4Addr>,
    d: &mut Diagnostics,
) -> HashMap<Ipv4Addr, &'h str> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut by_ip: HashMap<Ipv4Addr, &str> = HashMap::new();
    let mut by_cookie: HashMap<&str, &str> = HashMap::new();
    for (h, span) in hosts.hosts.iter().zip(&hosts.spans) {
        if by_name.insert(&h.name, 0).is_some() {
            d.error_hint(
                src,
                Some(span.clone()),
                format!("two hosts are named `{}`", h.name),
                "host names must be unique",
            );
        }
        for a in [Some(h.private_ip), h.public_ip]
            .into_iter()
            .flatten()
            .filter(|a| !a.is_unspecified())
        {
            if let Some(other) = by_ip.insert(a, &h.name) {
                d.error_hint(
                    src,
                    Some(span.clone()),
                    format!("`{}` and `{other}` share the address {a}", h.name),
                    "give each host its own addresses",
                );
            }
        }
        if let Some(w) = &h.web
            && let Some(other) = by_cookie.insert(&w.cookie, &h.name)
        {
            d.error_hint(
                src,
                Some(span.clone()),
                format!(
                    "web hosts `{other}` and `{}` share the cookie \"{}\"",
                    h.name, w.cookie
                ),
                "give each web host its own web.cookie",
            );
        }
    }
    for (host, span) in &hosts.no_private_ip {
        d.error_hint(
            src,
            Some(span.clone()),
            format!("host `{host}` has no private_ip"),
            format!(
                "add private_ip = \"{}\" (an address no other host has)",
                free_private_ip(&hosts.hosts, vip)
            ),
        );
    }
    by_ip
}

/// Whole-inventory rules about roles, the VIP and data: web hosts and a load
/// balancer exist, the VIP is no host's address, every LB can be reached,
/// every data-bearing host has a location.
fn check_roles(
    src: &Source,
    hosts: &Hosts,
    cluster: &Cluster,
    by_ip: &HashMap<Ipv4Addr, &str>,
    d: &mut Diagnostics,
) {
    let (list, vip) = (&hosts.hosts, cluster.vip);
    let lbs = list.iter().filter(|h| h.has(Role::Lb)).count();
    if hosts.roles_known && list.iter().all(|h| !h.has(Role::Web)) {
        d.error_hint(
            src,
            None,
            "the inventory has no web hosts",
            "add a [[hosts]] with roles = [\"web\"]",
        );
    }
    if hosts.roles_known && lbs == 0 {
        d.error_hint(
            src,
            None,
            "the inventory has no load balancer",
            "add a [[hosts]] with roles = [\"lb\"]",
        );
    }
    if vip.is_some() && lbs == 1 {
        d.warning(
            src,
            cluster.vip_span.clone(),
            "a VIP with a single load balancer moves nowhere when it fails",
            Some("add a second lb host, or drop cluster.vip".into()),
        );
    }
    if let Some(v) = vip
        && by_ip.contains_key(&v)
    {
        d.error(
            src,
            cluster.vip_span.clone(),
            format!("the VIP {v} is also a host's address"),
        );
    }
    for (h, span) in list.iter().zip(&hosts.spans) {
        if h.has(Role::Lb) && h.public_ip.is_none() && vip.is_none() && !h.is_local() {
            d.error_hint(
                src,
                Some(span.clone()),
                format!(
                    "load balancer `{}` has no public_ip and the cluster has no vip",
                    h.name
                ),
                "set public_ip on the lb, or cluster.vip",
            );
        }
        if h.has(Role::Backup)
            && (h.roles.len() > 1 || h.web.is_some() || h.mariadb.is_some() || h.db_demo)
        {
            d.error_hint(
                src,
                Some(span.clone()),
                format!("`{}` has role backup and runs a service too", h.name),
                "a backup host keeps dumps only: give it roles = [\"backup\"] and no web or db table (the DB host itself may keep dumps: name it as the backup's host)",
            );
        }
        if h.data && h.location.is_none() {
            d.error_hint(src, Some(span.clone()), format!("`{}` holds data but has no location", h.name), "add location = { country = \"NO\", city = \"Oslo\" } (the data-placement policy needs it)");
        }
    }
}

fn read_ssh(s: &mut Fields, out: &mut Ssh, d: &mut Diagnostics) {
    if let Some(u) = s.string("user", d) {
        out.user = u;
    }
    if let Some(p) = s.int("port", 1, 65535, d) {
        out.port = p as u16;
    }
    if let Some(i) = s.string("identity", d) {
        out.identity = Some(i);
    }
    if let Some((k, span)) = s.str("host_keys", d) {
        match lookup(&HostKeys::ALL, k) {
            Some(keys) => out.host_keys = keys,
            None => d.error_hint(
                s.source(),
                Some(span),
                format!("host_keys \"{k}\" is not known"),
                "use \"strict\" or \"accept-new\"",
            ),
        }
    }
    if let Some(j) = s.string("jump", d) {
        out.jump = Some(j);
    }
    if let Some(b) = s.bool("sudo", d) {
        out.sudo = b;
    }
    if let Some(a) = s.string("address", d) {
        out.address = Some(a);
    }
}

/// Whether the table holds a near miss of `key` (`rolse`): `finish` reports
/// it as unknown with "did you mean `roles`?", so saying "no roles" as well
/// would report one typo twice.
fn misspelt(h: &Fields, key: &str) -> bool {
    h.keys()
        .filter(|k| !HOST_KEYS.contains(k))
        .any(|k| closest(k, &HOST_KEYS) == Some(key))
}

/// The keys `read_host` reads (`finish` knows them once they are read).
const HOST_KEYS: [&str; 14] = [
    "name",
    "roles",
    "private_ip",
    "public_ip",
    "location",
    "web",
    "db",
    "data",
    "ssh",
    "ha",
    "os",
    "box",
    "memory",
    "cpus",
];

/// One `[[hosts]]` entry as read, with what the whole-inventory rules need
/// to know about the problems already reported in it.
struct HostEntry {
    host: Host,
    /// No `private_ip` key: reported with the whole inventory, where the hint
    /// can suggest an address that no other host has.
    private_ip_missing: bool,
    /// False when the roles were missing, misspelt or unknown (reported).
    roles_readable: bool,
}

/// Reads one `[[hosts]]` entry, every key of it even when the name is
/// missing (so that `finish` does not call the other keys unknown); an
/// entry without a name is reported and dropped.
fn read_host(h: &mut Fields, ssh: &Ssh, d: &mut Diagnostics) -> Option<HostEntry> {
    let src = h.source();
    let given_name = match h.str("name", d) {
        Some((n, span)) => {
            if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                d.error_hint(
                    src,
                    Some(span),
                    format!("host name \"{n}\" is not valid"),
                    "use letters, digits and -",
                );
            }
            Some(n.to_string())
        }
        None => {
            if h.get("name").is_none() && !misspelt(h, "name") {
                d.error_hint(
                    src,
                    h.span(),
                    format!("`{}` has no name", h.path()),
                    "add name = \"web01\"",
                );
            }
            None
        }
    };
    // Messages about the rest of a nameless entry name it by position.
    let name = given_name.clone().unwrap_or_else(|| h.path().to_string());
    let (roles, roles_readable) = read_roles(h, &name, d);
    let private = ip(h, "private_ip", &name, d);
    let private_ip_missing = h.get("private_ip").is_none() && !misspelt(h, "private_ip");
    if let Some((a, span)) = &private
        && !is_private(*a)
    {
        d.error_hint(
            src,
            Some(span.clone()),
            format!("{}.private_ip {a} is not in a private range", name),
            "use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (127.0.0.0/8 for a local cluster)",
        );
    }
    let public = ip(h, "public_ip", &name, d);
    if let Some((a, span)) = &public
        && (is_private(*a) || a.is_link_local() || a.is_unspecified())
    {
        d.error_hint(
            src,
            Some(span.clone()),
            format!("{}.public_ip {a} is a private address", name),
            "put it in private_ip; public_ip is the address the Internet reaches",
        );
    }
    let location = h
        .table("location", d)
        .map(|l| parse_location(l, &name, src, d));
    let web = h.table("web", d).map(|w| read_web(w, &name, d));
    if roles.contains(&Role::Web) && web.is_none() {
        d.error_hint(
            src,
            h.span(),
            format!("web host `{name}` has no web table"),
            "add web = { port = 80, cookie = \"w1\" }",
        );
    }
    let mut db_demo = false;
    let mut mariadb = None;
    let db_port = h.table("db", d).map(|mut t| {
        let p = t.int("port", 1, 65535, d).unwrap_or(3306) as u16;
        (db_demo, mariadb) = read_db(&mut t, &name, private.as_ref().map(|a| a.0), d);
        t.finish(d);
        p
    });
    let data = h.bool("data", d).unwrap_or(false)
        || roles.contains(&Role::Db)
        || roles.contains(&Role::Backup);
    let mut host_ssh = ssh.clone();
    if let Some(mut s) = h.table("ssh", d) {
        read_ssh(&mut s, &mut host_ssh, d);
        s.finish(d);
    }
    let priority = h.table("ha", d).and_then(|mut t| {
        let p = t.int("priority", 1, 254, d).map(|n| n as u8);
        t.finish(d);
        p
    });
    let os = h.string("os", d);
    let box_name = h.string("box", d);
    let memory = h.int("memory", 256, 1 << 20, d).map(|n| n as u32);
    let cpus = h.int("cpus", 1, 256, d).map(|n| n as u32);
    // A bad or missing address was reported above; keep the host (with no
    // address) so that rules about the whole inventory do not cascade.
    let private_ip = private.map_or(Ipv4Addr::UNSPECIFIED, |(a, _)| a);
    let host = Host {
        name: given_name?,
        roles,
        public_ip: public.map(|(a, _)| a),
        private_ip,
        location,
        web,
        db_port: db_port.unwrap_or(3306),
        db_demo,
        mariadb,
        data,
        ssh: host_ssh,
        priority,
        os,
        box_name,
        memory,
        cpus,
    };
    Some(HostEntry {
        host,
        private_ip_missing,
        roles_readable,
    })
}

/// A host's `db` table past its port: `engine` ("demo", today's stand-in,
/// or "mariadb") with, for MariaDB, the database, the user and where the
/// password comes from (never the inventory itself). Returns (demo, mariadb).
fn read_db(
    t: &mut Fields,
    name: &str,
    private_ip: Option<Ipv4Addr>,
    d: &mut Diagnostics,
) -> (bool, Option<MariaDb>) {
    let src = t.source();
    let demo = t.bool("demo", d);
    let engine = t.str("engine", d).map(|(v, s)| (v.to_string(), s));
    let mariadb = match &engine {
        None => false,
        Some((v, _)) if v == "demo" => false,
        Some((v, _)) if v == "mariadb" => true,
        Some((v, span)) => {
            d.error_hint(
                src,
                Some(span.clone()),
                format!("{name}.db.engine \"{v}\" is not known"),
                "use engine = \"mariadb\" (a real MariaDB) or engine = \"demo\" (the stand-in that stores nothing)",
            );
            false
        }
    };
    let keys = [
        "database",
        "user",
        "password",
        "password_env",
        "password_file",
    ];
    if !mariadb {
        // The MariaDB keys mean nothing to the stand-in: say so, not "unknown key".
        for k in keys {
            if let Some(f) = t.get(k) {
                let span = f.span();
                d.error_hint(
                    src,
                    Some(span),
                    format!("{name}.db.{k} is set but the engine is not mariadb"),
                    "add engine = \"mariadb\" to this db table, or drop the key",
                );
            }
        }
        return (demo.unwrap_or(engine.is_some()), None);
    }
    if demo == Some(true) {
        d.error_hint(
            src,
            t.span(),
            format!("{name}.db has engine = \"mariadb\" and demo = true"),
            "drop demo = true: the stand-in and MariaDB cannot share the port",
        );
    }
    if private_ip.is_some_and(|a| a.is_loopback()) {
        d.error_hint(
            src,
            t.span(),
            format!("{name}.db: engine = \"mariadb\" needs a remote host, and {name} is local (127.0.0.0/8)"),
            "use engine = \"demo\" for a local cluster, or try MariaDB in `vakt lab`",
        );
    }
    let mut ident = |key: &'static str, default: &str, d: &mut Diagnostics| -> String {
        match t.str(key, d) {
            None => default.to_string(),
            Some((v, span)) => {
                if v.is_empty()
                    || v.len() > 32
                    || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    d.error_hint(
                        src,
                        Some(span),
                        format!("{name}.db.{key} \"{v}\" is not a plain name"),
                        "use 1 to 32 letters, digits and _ (e.g. \"shop\")",
                    );
                }
                v.to_string()
            }
        }
    };
    let database = ident("database", "shop", d);
    let user = ident("user", "shop", d);
    if let Some(f) = t.get("password") {
        let span = f.span();
        d.error_hint(
            src,
            Some(span),
            format!("{name}.db.password: the database password is written in the inventory"),
            "keep secrets out of inventories: use password_env = \"VAKT_DB_PASSWORD\" or password_file = \"/path\"",
        );
    }
    let password = match (t.string("password_env", d), t.string("password_file", d)) {
        (Some(e), None) => Secret::Env(e),
        (None, Some(f)) => Secret::File(f.into()),
        (None, None) => Secret::Env("VAKT_DB_PASSWORD".into()),
        (Some(_), Some(_)) => {
            d.error_hint(
                src,
                t.span(),
                format!("{name}.db gives both password_env and password_file"),
                "give either password_env or password_file, not both",
            );
            Secret::Env("VAKT_DB_PASSWORD".into())
        }
    };
    (
        false,
        Some(MariaDb {
            database,
            user,
            password,
        }),
    )
}

/// A host's `roles`, and whether they could be read (missing, misspelt or
/// unknown roles are reported here).
fn read_roles(h: &mut Fields, name: &str, d: &mut Diagnostics) -> (Vec<Role>, bool) {
    let src = h.source();
    let mut roles = Vec::new();
    let mut roles_readable = true;
    match h.strings("roles", d) {
        Some(list) => {
            for (r, span) in list {
                match r {
                    "lb" => roles.push(Role::Lb),
                    "web" => roles.push(Role::Web),
                    "db" => roles.push(Role::Db),
                    "backup" => roles.push(Role::Backup),
                    _ => {
                        roles_readable = false;
                        d.error_hint(
                            src,
                            Some(span),
                            format!("`{name}`: unknown role \"{r}\""),
                            "roles are \"lb\", \"web\", \"db\" and \"backup\"",
                        )
                    }
                }
            }
        }
        None => {
            roles_readable = false;
            // A value of the wrong type was reported by `strings`.
            if h.get("roles").is_none() && !misspelt(h, "roles") {
                d.error_hint(
                    src,
                    h.span(),
                    format!("host `{name}` has no roles"),
                    "add roles = [\"web\"]",
                );
            }
        }
    }
    (roles, roles_readable)
}

/// A host's `web` table (`name` is the host, for messages).
fn read_web(mut w: Fields, name: &str, d: &mut Diagnostics) -> Web {
    let src = w.source();
    let web = Web {
        port: w.int("port", 1, 65535, d).unwrap_or(80) as u16,
        cookie: w.string("cookie", d).unwrap_or_default(),
        weight: w.int("weight", 0, 256, d).unwrap_or(1) as u32,
        demo: w.bool("demo", d).unwrap_or(false),
    };
    if web.cookie.is_empty()
        || !web
            .cookie
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        d.error_hint(
            src,
            w.span(),
            format!("{name}.web needs a cookie value (letters and digits)"),
            "add cookie = \"w1\"",
        );
    }
    w.finish(d);
    web
}

/// A private address to suggest for a host that has none: the first free
/// one from .11 up in the network of the first host that has an address
/// (10.10.0.0/24 when none has), never one another host or the VIP holds.
fn free_private_ip(hosts: &[Host], vip: Option<Ipv4Addr>) -> Ipv4Addr {
    let taken: Vec<Ipv4Addr> = hosts
        .iter()
        .flat_map(|h| [Some(h.private_ip), h.public_ip])
        .flatten()
        .chain(vip)
        .collect();
    let [a, b, c, _] = hosts
        .iter()
        .map(|h| h.private_ip)
        .find(|ip| !ip.is_unspecified())
        .unwrap_or(Ipv4Addr::new(10, 10, 0, 0))
        .octets();
    (11..=254)
        .chain(2..=10)
        .map(|last| Ipv4Addr::new(a, b, c, last))
        .find(|ip| !taken.contains(ip))
        .unwrap_or(Ipv4Addr::new(a, b, c, 254))
}

/// keepalived's `virtual_router_id` when the inventory sets none: derived
/// from the cluster name (sha256, into 1..=255) so that two clusters on one
/// network rarely collide, and stable across runs so a redeploy keeps it.
/// VRRP routers with the same id on one segment would join one group.
fn virtual_router_id(cluster: &str) -> u8 {
    let digest = Sha256::digest(cluster.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    // n % 255 is 0..=254, so the sum fits in a u8 and is never 0.
    (n % 255) as u8 + 1
}

fn read_balancer(b: &mut Fields, out: &mut Balancer, d: &mut Diagnostics) {
    let src = b.source();
    if let Some((v, span)) = b.str("balance", d) {
        match lookup(&Balance::ALL, v) {
            Some(balance) => out.balance = balance,
            None => d.error_hint(
                src,
                Some(span),
                format!("unknown balance \"{v}\""),
                "use \"roundrobin\", \"leastconn\" or \"source\"",
            ),
        }
    }
    if let Some(c) = b.string("cookie", d) {
        out.cookie = c;
    }
    if let Some(mut h) = b.table("health", d) {
        if let Some(p) = h.string("path", d) {
            out.health.path = p;
        }
        if let Some((v, span)) = h.str("interval", d) {
            if let Err(e) = reader::parse_duration(v) {
                d.error(src, Some(span), format!("balancer.health.interval: {e}"));
            }
            out.health.interval = v.to_string();
        }
        if let Some(n) = h.int("rise", 1, 100, d) {
            out.health.rise = n as u32;
        }
        if let Some(n) = h.int("fall", 1, 100, d) {
            out.health.fall = n as u32;
        }
        h.finish(d);
    }
    if let Some(n) = b.int("retries", 0, 100, d) {
        out.retries = n as u32;
    }
    if let Some(v) = b.bool("redispatch", d) {
        out.redispatch = v;
    }
    if let Some(n) = b.int("maxconn", 1, 1_000_000, d) {
        out.maxconn = n as u32;
    }
    if let Some(mut s) = b.table("stats", d) {
        if let Some(f) = s.get("password") {
            d.error_hint(src, Some(f.span()), "the stats password is written in the inventory", "keep secrets out of inventories: use password_env = \"VAKT_STATS_PASSWORD\" or password_file = \"/path\"");
        }
        let password = match (s.string("password_env", d), s.string("password_file", d)) {
            (Some(e), None) => Secret::Env(e),
            (None, Some(f)) => Secret::File(f.into()),
            (None, None) => Secret::Env("VAKT_STATS_PASSWORD".into()),
            (Some(_), Some(_)) => {
                d.error(
                    src,
                    s.span(),
                    "give either password_env or password_file, not both",
                );
                Secret::Env("VAKT_STATS_PASSWORD".into())
            }
        };
        out.stats = Some(Stats {
            uri: s
                .string("uri", d)
                .unwrap_or_else(|| "/haproxy?stats".into()),
            realm: s
                .string("realm", d)
                .unwrap_or_else(|| "vakt statistics".into()),
            user: s.string("user", d).unwrap_or_else(|| "admin".into()),
            password,
        });
        s.finish(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let (inv, warnings) = load(None).unwrap();
        assert!(warnings.items.is_empty(), "{warnings}");
        assert_eq!(inv.lbs().count(), 1);
        assert_eq!(inv.webs().count(), 2);
        assert!(inv.hosts.iter().all(Host::is_local));
    }

    #[test]
    fn a_wildcard_name_covers_one_label_and_no_more() {
        assert!(covers("shop.example", "SHOP.example"));
        assert!(covers("*.shop.example", "www.shop.example"));
        assert!(!covers("*.shop.example", "shop.example"));
        assert!(!covers("*.shop.example", "a.b.shop.example"));
        assert!(!covers("shop.example", "www.shop.example"));
    }

    #[test]
    fn virtual_router_id_is_stable_nonzero_and_differs_between_clusters() {
        let a = virtual_router_id("oslo-ha");
        assert_eq!(a, virtual_router_id("oslo-ha"));
        assert_ne!(a, virtual_router_id("bergen-ha"));
        assert!((1..=255).contains(&a));
        assert!((0..2000).all(|i| virtual_router_id(&format!("c{i}")) != 0));
    }

    #[test]
    fn ha_defaults_are_keepalived_seconds_and_a_derived_id_unless_set() {
        let base = LOCAL_DEFAULT.to_string();
        let (inv, _) = parse(
            &Source::new("t", format!("{base}\n[ha]\ninterface = \"eth1\"\n")),
            None,
        )
        .unwrap();
        assert_eq!(inv.ha.advert_int, "0.1");
        assert_eq!(inv.ha.virtual_router_id, virtual_router_id("local"));
        let (inv, _) = parse(
            &Source::new(
                "t",
                format!("{base}\n[ha]\nadvert_int = \"1s\"\nvirtual_router_id = 7\n"),
            ),
            None,
        )
        .unwrap();
        assert_eq!(inv.ha.advert_int, "1");
        assert_eq!(inv.ha.virtual_router_id, 7);
    }

    #[test]
    fn host_keys_lists_every_key_read_host_reads() {
        // A key read_host reads but HOST_KEYS lacks would count as a typo.
        // (Calls on `h`, the host's table; sub-tables have their own keys.)
        let src = include_str!("inventory.rs");
        let body =
            &src[src.find("fn read_host(").unwrap()..src.find("fn free_private_ip(").unwrap()];
        for call in [
            "h.str(\"",
            "h.string(\"",
            "h.strings(\"",
            "h.table(\"",
            "h.bool(\"",
            "h.int(\"",
            "h.get(\"",
        ] {
            for (i, _) in body.match_indices(call) {
                let rest = &body[i + call.len()..];
                let key = &rest[..rest.find('"').unwrap()];
                assert!(HOST_KEYS.contains(&key), "HOST_KEYS lacks {key}");
            }
        }
    }

    #[test]
    fn a_network_contains_its_addresses_only() {
        let net = Cidr::parse("10.10.0.0/24").unwrap();
        assert!(net.contains("10.10.0.20".parse().unwrap()));
        assert!(!net.contains("10.10.1.20".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains("2001:db8::7".parse().unwrap())
        );
        assert_eq!(
            Cidr::parse("198.51.100.7").unwrap().to_string(),
            "198.51.100.7/32"
        );
        for bad in ["10.0.0.0/33", "10.0.0", "::/129", "x/8"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }
}
