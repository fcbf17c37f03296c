//! `vakt verify`: proof that a deployed cluster works, one check per line
//! with its evidence. Checks run from the operator's machine (requests to
//! the cluster's entry points) and on the hosts over their transport (what
//! the private network looks like from an LB or a web host). Nothing is
//! changed; the order is LBs, web hosts, the cluster, DB hosts, policy.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use crate::certs;
use crate::inventory::{Role, Tls, covers};
use crate::probe;
use crate::render;
use crate::render::TLS_PEM;
use crate::rotation;
use crate::services::{self, BINARY_PATH};
use crate::target::{HostTarget, Target};
use crate::topology::{self, Service};
use crate::transport::{Transport, sh};

const TIMEOUT: Duration = Duration::from_secs(3);

/// One check and the evidence behind its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The host the check is about, or `cluster`.
    pub subject: String,
    pub name: String,
    pub ok: bool,
    pub evidence: String,
}

fn check(subject: &str, name: &str, r: Result<String, String>) -> Check {
    let (ok, evidence) = match r {
        Ok(e) => (true, e),
        Err(e) => (false, e),
    };
    Check {
        subject: subject.to_string(),
        name: name.to_string(),
        ok,
        evidence,
    }
}

fn sha256_on(t: &dyn Transport, path: &str) -> Option<String> {
    let out = t
        .run(&format!("sha256sum {}", sh(&format!("{}{path}", t.root()))))
        .ok()?;
    out.ok().then(|| {
        out.stdout
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Where clients reach the cluster: the VIP, else each LB's public address
/// (its private one when it has none).
pub fn entries(t: &Target) -> Vec<String> {
    match t.inv.vip {
        Some(v) => vec![format!("{v}:{}", t.inv.port)],
        None => t
            .inv
            .lbs()
            .map(|h| format!("{}:{}", h.public_ip.unwrap_or(h.private_ip), t.inv.port))
            .collect(),
    }
}

/// Where a client sends requests to the cluster entry `plain` (an
/// `entries` address): with `[tls]`, its https port under the first
/// domain, the way browsers come (plain HTTP may only redirect there).
fn endpoint(t: &Target, plain: &str) -> probe::Endpoint {
    match &t.inv.tls {
        None => probe::Endpoint::plain(plain),
        Some(tls) => {
            let ip = plain.rsplit_once(':').map_or(plain, |(ip, _)| ip);
            probe::Endpoint {
                addr: format!("{ip}:{}", tls.port),
                tls_name: tls.domains.first().cloned(),
            }
        }
    }
}

/// One request to `ep` (no certificate wanted).
fn get(
    ep: &probe::Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<probe::Response> {
    probe::request(ep, method, path, headers, TIMEOUT).map(|(r, _)| r)
}

/// Every check, in report order.
/// Runs every check; `step` hears what is being checked (for progress).
pub fn run(t: &Target, binary_sha: &str, step: &dyn Fn(&str)) -> Vec<Check> {
    let mut out = Vec::new();
    let lbs: Vec<&HostTarget> = t
        .hosts
        .iter()
        .filter(|h| h.services.contains(&Service::Proxy))
        .collect();
    for lb in &lbs {
        step(&format!("checking load balancer {}", lb.host.name));
        out.extend(lb_checks(t, lb, binary_sha));
        if let Some(m) = &t.inv.metrics {
            out.push(metrics_check(t, lb, m.port));
        }
    }
    if let Some(tls) = &t.inv.tls {
        step("checking the certificates");
        out.extend(cert_checks(&lbs, tls, &t.inv.balancer.health.path));
    }
    for web in t.hosts.iter().filter(|h| h.host.has(Role::Web)) {
        step(&format!("checking web host {}", web.host.name));
        out.extend(web_checks(t, web, &lbs));
    }
    step("checking round robin and persistence");
    out.extend(cluster_checks(t));
    if topology::ha_enabled(&t.inv) {
        step("checking the VIP");
        out.extend(ha_checks(t));
    }
    for db in t.hosts.iter().filter(|h| h.host.has(Role::Db)) {
        step(&format!("checking database host {}", db.host.name));
        out.extend(db_checks(t, db));
    }
    if t.inv.firewall.enabled {
        step("checking the firewall's paths");
        out.extend(firewall_checks(t));
    }
    let placement = crate::audit::declared_summary(&t.inv);
    out.push(check("cluster", "data placement (declared)", placement));
    out
}

fn lb_checks(t: &Target, lb: &HostTarget, binary_sha: &str) -> Vec<Check> {
    let name = &lb.host.name;
    let mut out = Vec::new();
    let tr = match lb.transport() {
        Ok(tr) => tr,
        Err(e) => return vec![check(name, "reachable", Err(format!("{e:#}")))],
    };
    // The version the proxy reports, and the binary it runs from.
    let version = services::admin(tr, &lb.ctx.admin_socket, "show info")
        .map_err(|e| format!("the proxy does not answer on its admin socket: {e}"))
        .and_then(|info| {
            let v = info
                .lines()
                .find_map(|l| l.strip_prefix("Version: "))
                .unwrap_or("?")
                .to_string();
            let sha = sha256_on(tr, BINARY_PATH).unwrap_or_default();
            if v != env!("CARGO_PKG_VERSION") {
                Err(format!(
                    "runs vakt {v}, up pushes {}",
                    env!("CARGO_PKG_VERSION")
                ))
            } else if sha != binary_sha {
                Err(format!(
                    "{BINARY_PATH} is {} but up pushes {}: run `vakt up`",
                    short(&sha),
                    short(binary_sha)
                ))
            } else {
                Ok(format!("vakt {v}, binary sha256 {}", short(&sha)))
            }
        });
    out.push(check(name, "proxy version", version));
    // The config file is what `up` renders, and the proxy runs it.
    let rendered = render::render_host(&t.inv, &lb.host, &lb.ctx, &t.templates)
        .ok()
        .and_then(|files| files.into_iter().find(|f| f.path == "/etc/vakt/proxy.toml"));
    let config = match rendered {
        None => Err("the inventory does not render a proxy.toml for this host".into()),
        Some(f) => {
            use sha2::Digest;
            let want = hex::encode(sha2::Sha256::digest(f.content.as_bytes()));
            let have = sha256_on(tr, "/etc/vakt/proxy.toml").unwrap_or_default();
            if want == have {
                Ok(format!(
                    "/etc/vakt/proxy.toml sha256 {} as rendered",
                    short(&have)
                ))
            } else {
                Err(format!(
                    "/etc/vakt/proxy.toml is {} but the inventory renders {}: run `vakt plan` to see the difference",
                    short(&have),
                    short(&want)
                ))
            }
        }
    };
    out.push(check(name, "config checksum", config));
    // Listening on the cluster port, on its own address.
    let addr = format!(
        "{}:{}",
        lb.host.public_ip.unwrap_or(lb.host.private_ip),
        t.inv.port
    );
    let listens = probe::connect_times(&addr, 1, TIMEOUT)
        .map(|d| {
            format!(
                "{addr} accepts connections ({:.1} ms)",
                d[0].as_secs_f64() * 1e3
            )
        })
        .map_err(|e| format!("{addr}: {e}"));
    out.push(check(name, "listens", listens));
    // The stats page wants credentials and takes the configured ones.
    if let Some(s) = &t.inv.balancer.stats {
        let ep = endpoint(t, &addr);
        let addr = ep.to_string();
        let anon = get(&ep, "GET", &s.uri, &[]);
        let auth = t.stats_password.as_ref().map(|pw| {
            let token = base64_encode(format!("{}:{pw}", s.user).as_bytes());
            get(
                &ep,
                "GET",
                &s.uri,
                &[("Authorization", &format!("Basic {token}"))],
            )
        });
        let r = match (anon, auth) {
            (Err(e), _) => Err(format!("{addr}{}: {e}", s.uri)),
            (Ok(a), _) if a.status != 401 => Err(format!(
                "{} answers {} without credentials (want 401)",
                s.uri, a.status
            )),
            (_, None) => Err("the stats password is not available here (see the inventory's password_env/password_file)".into()),
            (_, Some(Err(e))) => Err(format!("{addr}{}: {e}", s.uri)),
            (_, Some(Ok(r))) if r.status != 200 => Err(format!(
                "{} refuses user `{}` with the configured password ({}); the password deployed differs: run `vakt up`",
                s.uri, s.user, r.status
            )),
            _ => Ok(format!(
                "{} answers 401 without credentials, 200 for `{}`",
                s.uri, s.user
            )),
        };
        out.push(check(name, "stats page auth", r));
    }
    out
}

/// `[metrics]`: the LB's Prometheus page, scraped from here (an admin
/// network, as Prometheus would), parses as HAProxy's exporter: process
/// families present and one `haproxy_server_status` line per web host.
fn metrics_check(t: &Target, lb: &HostTarget, port: u16) -> Check {
    let addr = format!("{}:{port}", lb.host.private_ip);
    let r = match get(
        &probe::Endpoint::plain(addr.clone()),
        "GET",
        "/metrics",
        &[],
    ) {
        Err(e) => Err(format!(
            "{addr}/metrics: {e}: scrape from an admin network ([firewall] admin), where Prometheus runs"
        )),
        Ok(r) if r.status == 403 => Err(format!(
            "{addr}/metrics refuses this machine (403): its address is not in [firewall] admin"
        )),
        Ok(r) if r.status != 200 => Err(format!("{addr}/metrics answers {}", r.status)),
        Ok(r) => {
            let text = String::from_utf8_lossy(&r.body);
            let families = text
                .lines()
                .filter(|l| l.starts_with("# TYPE haproxy_"))
                .count();
            let missing: Vec<&str> = t
                .inv
                .webs()
                .map(|w| w.name.as_str())
                .filter(|w| {
                    !text.lines().any(|l| {
                        l.starts_with("haproxy_server_status{")
                            && l.contains(&format!("server=\"{w}\""))
                    })
                })
                .collect();
            if !text.lines().any(|l| l.starts_with("haproxy_process_")) {
                Err(format!(
                    "{addr}/metrics has no haproxy_process_ family: not HAProxy's exporter format"
                ))
            } else if !missing.is_empty() {
                Err(format!(
                    "{addr}/metrics has no haproxy_server_status for {}: the proxy does not know them (run `vakt up`)",
                    missing.join(", ")
                ))
            } else {
                Ok(format!(
                    "{addr}/metrics: {families} HAProxy families, haproxy_server_status for every web host"
                ))
            }
        }
    };
    check(&lb.host.name, "metrics", r)
}

/// Each LB's certificate (readable, naming every domain, at least
/// `certs::MIN_DAYS` left, shown in a TLS handshake on its https port when
/// `path` is asked for), then one check that every LB has the same one.
fn cert_checks(lbs: &[&HostTarget], tls: &Tls, path: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let mut seen: Vec<(&str, Result<certs::Cert, String>)> = Vec::new();
    for lb in lbs {
        let cert = lb
            .transport()
            .map_err(|e| format!("{e:#}"))
            .and_then(certs::read);
        let verdict = cert.clone().and_then(|c| {
            let missing: Vec<&str> = tls
                .domains
                .iter()
                .map(String::as_str)
                .filter(|d| !c.names.iter().any(|n| covers(n, d)))
                .collect();
            // The fix depends on where certificates come from: the
            // operator's PEM, or the LBs' own ACME renewals.
            let (renew, push) = if tls.acme.is_some() {
                (
                    format!(
                        "{0} renews it itself, and did not: see why with `vakt exec --hosts {0} -- vakt acme renew --config /etc/vakt/acme.toml`",
                        lb.host.name
                    ),
                    "run `vakt up` to order one for the inventory's domains",
                )
            } else {
                (
                    "renew it (a new [tls] pem, then `vakt up`)".to_string(),
                    "run `vakt up` to push the inventory's pem",
                )
            };
            if c.days_left < certs::MIN_DAYS {
                Err(format!(
                    "{}: under {} days left; {renew}",
                    c.summary(),
                    certs::MIN_DAYS
                ))
            } else if !missing.is_empty() {
                Err(format!(
                    "{}: does not name {} from [tls] domains; {push}",
                    c.summary(),
                    missing.join(", ")
                ))
            } else {
                Ok(c.summary())
            }
        });
        out.push(check(&lb.host.name, "certificate", verdict));
        if let Ok(c) = &cert {
            let ep = probe::Endpoint {
                addr: format!(
                    "{}:{}",
                    lb.host.public_ip.unwrap_or(lb.host.private_ip),
                    tls.port
                ),
                tls_name: tls.domains.first().cloned(),
            };
            let served = match probe::request(&ep, "GET", path, &[], TIMEOUT) {
                Err(e) => Err(format!("{ep}: {e}")),
                Ok((_, Some(shown))) if shown == c.sha256 => Ok(format!(
                    "{ep} shows the certificate of {TLS_PEM} (SHA-256 {shown})"
                )),
                Ok((_, shown)) => Err(format!(
                    "{ep} shows SHA-256 {} but {TLS_PEM} holds {}: the proxy has not loaded it; `vakt up` reloads it",
                    shown.as_deref().unwrap_or("-"),
                    c.sha256
                )),
            };
            out.push(check(&lb.host.name, "serves its certificate", served));
        }
        seen.push((&lb.host.name, cert));
    }
    let unread: Vec<&str> = seen
        .iter()
        .filter(|(_, c)| c.is_err())
        .map(|(n, _)| *n)
        .collect();
    let prints: BTreeSet<&str> = seen
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .map(|c| c.sha256.as_str())
        .collect();
    let same = if !unread.is_empty() {
        Err(format!(
            "the certificate on {} cannot be read (see its certificate check)",
            unread.join(", ")
        ))
    } else if prints.len() > 1 {
        let each: Vec<String> = seen
            .iter()
            .filter_map(|(n, c)| Some(format!("{n} has {}", c.as_ref().ok()?.sha256)))
            .collect();
        Err(format!(
            "the LBs serve different certificates ({}); `vakt up` pushes the inventory's pem to every LB",
            each.join(", ")
        ))
    } else {
        Ok(format!(
            "every LB has the certificate with SHA-256 {}",
            prints.first().copied().unwrap_or("-")
        ))
    };
    out.push(check("cluster", "same certificate on every LB", same));
    out
}

fn web_checks(t: &Target, web: &HostTarget, lbs: &[&HostTarget]) -> Vec<Check> {
    let name = &web.host.name;
    let port = web.host.web.as_ref().map_or(80, |w| w.port);
    let url = format!(
        "http://{}:{port}{}",
        web.host.private_ip, t.inv.balancer.health.path
    );
    let mut out = Vec::new();
    for lb in lbs {
        let r = lb
            .transport()
            .map_err(|e| format!("{e:#}"))
            .and_then(|tr| probe::on_host(tr, true, &format!("http {}", sh(&url))))
            .and_then(|answer| {
                if answer.starts_with("http 200") {
                    Ok(format!("{url} answers 200 from {}", lb.host.name))
                } else {
                    Err(format!("{url} from {}: {answer}", lb.host.name))
                }
            });
        out.push(check(name, &format!("health from {}", lb.host.name), r));
        let up = rotation::read(lb)
            .map_err(|e| format!("admin socket: {e:#}"))
            .and_then(|rows| {
                match rows
                    .iter()
                    .find(|r| r.backend == t.inv.name && r.server == *name)
                {
                    Some(r) if r.serving() => Ok(format!("{} reports it UP", lb.host.name)),
                    Some(r) => Err(format!(
                        "{} reports it {} (check {})",
                        lb.host.name, r.status, r.check
                    )),
                    None => Err(format!("{} has no server `{name}`", lb.host.name)),
                }
            });
        out.push(check(name, &format!("UP on {}", lb.host.name), up));
    }
    out
}

fn cluster_checks(t: &Target) -> Vec<Check> {
    let mut out = Vec::new();
    let cookie = &t.inv.balancer.cookie;
    let webs: Vec<(String, String, bool)> = t
        .inv
        .webs()
        .filter_map(|w| {
            let web = w.web.as_ref()?;
            Some((w.name.clone(), web.cookie.clone(), web.demo))
        })
        .collect();
    for plain in entries(t) {
        if t.inv.tls.as_ref().is_some_and(|tls| tls.redirect) {
            out.push(check(
                "cluster",
                &format!("{plain} redirects to https"),
                redirects(&plain),
            ));
        }
        let entry = endpoint(t, &plain);
        // Round robin: fresh clients reach every web host.
        let n = webs.len().max(1) * 3;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut errors = Vec::new();
        for _ in 0..n {
            match get(&entry, "GET", "/", &[]) {
                Ok(r) => {
                    if let Some(c) = r.set_cookie(cookie)
                        && let Some((w, _, _)) = webs.iter().find(|(_, wc, _)| *wc == c)
                    {
                        seen.insert(w.clone());
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let missing: Vec<&str> = webs
            .iter()
            .map(|(w, _, _)| w.as_str())
            .filter(|w| !seen.contains(*w))
            .collect();
        let rr = if !errors.is_empty() {
            Err(format!(
                "{} of {n} requests to {entry} failed: {}",
                errors.len(),
                errors[0]
            ))
        } else if missing.is_empty() {
            Ok(format!(
                "{n} requests without a cookie to {entry} reached {}",
                seen.into_iter().collect::<Vec<_>>().join(", ")
            ))
        } else {
            Err(format!(
                "{n} requests to {entry} never reached {}",
                missing.join(", ")
            ))
        };
        out.push(check("cluster", &format!("round robin via {entry}"), rr));
        out.push(check(
            "cluster",
            &format!("session persistence via {entry}"),
            persistence(&entry, cookie, &webs),
        ));
    }
    out
}

/// One session: its cookie keeps 20 requests on one web host (no new
/// cookie is set), and on demo hosts its cart survives them.
fn persistence(
    entry: &probe::Endpoint,
    cookie: &str,
    webs: &[(String, String, bool)],
) -> Result<String, String> {
    let first =
        get(entry, "POST", "/cart?item=verify", &[]).map_err(|e| format!("{entry}: {e}"))?;
    let server = first
        .set_cookie(cookie)
        .ok_or_else(|| format!("{entry} set no {cookie} cookie on a new session"))?;
    let (host, _, demo) = webs
        .iter()
        .find(|(_, c, _)| *c == server)
        .ok_or_else(|| format!("{cookie}={server} names no web host of the inventory"))?;
    let mut jar = format!("{cookie}={server}");
    for c in first.all("set-cookie") {
        if let Some(kv) = c.split(';').next()
            && !kv.starts_with(&format!("{cookie}="))
        {
            jar.push_str("; ");
            jar.push_str(kv);
        }
    }
    for i in 1..=20 {
        let r = get(entry, "GET", "/cart", &[("Cookie", &jar)])
            .map_err(|e| format!("request {i}: {e}"))?;
        if let Some(moved) = r.set_cookie(cookie) {
            return Err(format!(
                "request {i} with {cookie}={server} went to another server ({cookie}={moved})"
            ));
        }
        if *demo && !String::from_utf8_lossy(&r.body).contains("verify") {
            return Err(format!("request {i}: the cart on {host} lost its item"));
        }
    }
    Ok(format!(
        "20 requests with {cookie}={server} stayed on {host}{}",
        if *demo { " and kept the cart" } else { "" }
    ))
}

/// Plain HTTP to `plain` answers a redirect to the same path on https.
fn redirects(plain: &str) -> Result<String, String> {
    let r = probe::http(plain, "GET", "/cart?item=x", &[], TIMEOUT)
        .map_err(|e| format!("{plain}: {e}"))?;
    let location = r.all("location").next().unwrap_or("");
    if matches!(r.status, 301 | 308)
        && location.starts_with("https://")
        && location.ends_with("/cart?item=x")
    {
        Ok(format!(
            "GET /cart?item=x answers {} to {location}",
            r.status
        ))
    } else {
        Err(format!(
            "GET /cart?item=x answers {} (Location: {location:?}), want a 301 to https: run `vakt up`",
            r.status
        ))
    }
}

fn ha_checks(t: &Target) -> Vec<Check> {
    let lbs = match crate::ha::survey(t) {
        Ok(l) => l,
        Err(e) => return vec![check("cluster", "VIP owner", Err(format!("{e:#}")))],
    };
    let vip = t.inv.vip.map(|v| v.to_string()).unwrap_or_default();
    let holders: Vec<&str> = lbs
        .iter()
        .filter(|l| l.holds_vip)
        .map(|l| l.host.as_str())
        .collect();
    let owner = match holders.as_slice() {
        [one] => Ok(format!("{one} alone holds {vip}")),
        [] => Err(format!("no load balancer holds {vip} (orphan VIP)")),
        many => Err(format!("split brain: {} all hold {vip}", many.join(", "))),
    };
    let mut out = vec![check("cluster", "VIP owner", owner)];
    for l in &lbs {
        out.push(check(
            &l.host,
            "keepalived",
            if l.keepalived {
                Ok("keepalived runs".into())
            } else {
                Err("keepalived is not running: `vakt up` starts it".into())
            },
        ));
        out.push(check(
            &l.host,
            "VRRP priority",
            match l.configured_priority {
                Some(p) if p == l.priority => Ok(format!("priority {p} as configured")),
                Some(p) => Err(format!(
                    "keepalived.conf says priority {p}, the inventory {}: run `vakt up`",
                    l.priority
                )),
                None => Err("no priority in /etc/keepalived/keepalived.conf".into()),
            },
        ));
    }
    out
}

fn db_checks(t: &Target, db: &HostTarget) -> Vec<Check> {
    let name = &db.host.name;
    let port = db.host.db_port;
    let private = format!("{}:{port}", db.host.private_ip);
    let mut out = Vec::new();
    for web in t.hosts.iter().filter(|h| h.host.has(Role::Web)) {
        let has_binary = !web.services.is_empty();
        let r = web
            .transport()
            .map_err(|e| format!("{e:#}"))
            .and_then(|tr| probe::on_host(tr, has_binary, &format!("tcp {private}")))
            .map(|e| {
                let how = e
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("median_us="))
                    .and_then(|us| us.parse::<f64>().ok())
                    .map_or(e.clone(), |us| format!("connect {:.2} ms", us / 1000.0));
                format!("{private} reachable from {} ({how})", web.host.name)
            })
            .map_err(|e| format!("{private} not reachable from {}: {e}", web.host.name));
        out.push(check(name, &format!("db port from {}", web.host.name), r));
    }
    if let Some(public) = db.host.public_ip {
        let addr = format!("{public}:{port}");
        let r = match probe::connect_times(&addr, 1, Duration::from_secs(1)) {
            Ok(_) => Err(format!(
                "{addr} accepts connections from here: firewall the database's public address"
            )),
            Err(e) => Ok(format!("{addr} is closed from outside ({e})")),
        };
        out.push(check(name, "db port closed on public address", r));
    }
    out
}

/// One path through the firewall: `port` on `to`, from `from` (`None`:
/// this machine), that must be `open` or closed; `rule` is the accept rule
/// in `to`'s table that opens it.
struct FwPath<'a> {
    from: Option<&'a HostTarget>,
    to: &'a HostTarget,
    port: u16,
    open: bool,
    rule: String,
}

/// The paths `[firewall]` promises, open and closed: LB → web port and web
/// → DB port open; LB → DB, DB → web, web → web closed; SSH from an LB
/// closed on the other hosts unless `admin` lets the LB in; and from this
/// machine (outside the cluster) the web and DB ports closed.
fn firewall_paths(t: &Target) -> Vec<FwPath<'_>> {
    let hosts: Vec<&HostTarget> = t
        .hosts
        .iter()
        .filter(|h| render::has_firewall(&t.inv, &h.host))
        .collect();
    let role = |r: Role| hosts.iter().copied().filter(move |h| h.host.has(r));
    let ips = |r: Role| {
        t.inv
            .hosts
            .iter()
            .filter(|h| h.has(r))
            .map(|h| h.private_ip.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let web_port = |h: &HostTarget| h.host.web.as_ref().map_or(80, |w| w.port);
    let mut out = Vec::new();
    let mut add = |from, to, port, open, rule| {
        out.push(FwPath {
            from,
            to,
            port,
            open,
            rule,
        })
    };
    for web in role(Role::Web) {
        let port = web_port(web);
        let rule = format!("ip saddr {{ {} }} tcp dport {port} accept", ips(Role::Lb));
        for lb in role(Role::Lb) {
            add(Some(lb), web, port, true, rule.clone());
        }
        for other in role(Role::Web).filter(|o| !o.host.has(Role::Lb)) {
            add(Some(other), web, port, false, rule.clone());
        }
        for db in role(Role::Db).filter(|d| !d.host.has(Role::Lb) && !d.host.has(Role::Web)) {
            add(Some(db), web, port, false, rule.clone());
        }
        add(None, web, port, false, rule);
    }
    for db in role(Role::Db) {
        let port = db.host.db_port;
        let rule = format!("ip saddr {{ {} }} tcp dport {port} accept", ips(Role::Web));
        for web in role(Role::Web) {
            add(Some(web), db, port, true, rule.clone());
        }
        for lb in role(Role::Lb).filter(|l| !l.host.has(Role::Web)) {
            add(Some(lb), db, port, false, rule.clone());
        }
        add(None, db, port, false, rule);
        // The backup hosts that dump it, by their own rule.
        let dumpers = crate::topology::dumpers_of(&t.inv, &db.host);
        let rule = format!(
            "ip saddr {{ {} }} tcp dport {port} accept",
            dumpers
                .iter()
                .filter(|a| **a != db.host.private_ip)
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for b in hosts
            .iter()
            .copied()
            .filter(|b| dumpers.contains(&b.host.private_ip))
        {
            add(Some(b), db, port, true, rule.clone());
        }
    }
    // A backup host reaches the DB and nothing of the web hosts.
    for b in role(Role::Backup) {
        for web in role(Role::Web) {
            let port = web_port(web);
            let rule = format!("ip saddr {{ {} }} tcp dport {port} accept", ips(Role::Lb));
            add(Some(b), web, port, false, rule);
        }
    }
    if let Some(lb) = role(Role::Lb).next() {
        let admin = render::admin_networks(&t.inv, &lb.ctx);
        if !admin.iter().any(|c| c.contains(lb.host.private_ip.into())) {
            for h in hosts.iter().copied().filter(|h| !h.host.has(Role::Lb)) {
                let rule = "ip saddr @admin4 tcp dport 22 accept".to_string();
                add(Some(lb), h, h.host.ssh.port, false, rule);
            }
        }
    }
    // `[metrics]`: a web host that is no admin cannot scrape an LB.
    if let Some(m) = &t.inv.metrics {
        for lb in role(Role::Lb) {
            let admin = render::admin_networks(&t.inv, &lb.ctx);
            let rule = format!("ip saddr @admin4 tcp dport {} accept", m.port);
            for web in role(Role::Web).filter(|w| {
                !w.host.has(Role::Lb) && !admin.iter().any(|c| c.contains(w.host.private_ip.into()))
            }) {
                add(Some(web), lb, m.port, false, rule.clone());
            }
        }
    }
    // This machine may itself be a cluster host (an LB running `verify`):
    // then its "outside" probes prove nothing and are left out.
    let inside = |h: &HostTarget| {
        h.ctx.deploy_source.is_some_and(|s| {
            t.inv
                .hosts
                .iter()
                .any(|o| std::net::IpAddr::V4(o.private_ip) == s)
        })
    };
    out.retain(|p| match p.from {
        // A host reaching itself goes over loopback: nothing to prove.
        Some(f) => f.host.name != p.to.host.name,
        None => !inside(p.to),
    });
    out
}

/// Probes every path of [`firewall_paths`]; a failing one names the host,
/// the port and the rule that is missing (or the final drop that is).
fn firewall_checks(t: &Target) -> Vec<Check> {
    let mut out = Vec::new();
    for p in firewall_paths(t) {
        let addr = format!("{}:{}", p.to.host.private_ip, p.port);
        let from_name = p.from.map_or("here", |f| f.host.name.as_str());
        // A dropped SYN only times out: a second says "closed" on a private
        // network without slowing verify down much.
        let reached = match p.from {
            Some(f) => f.transport().map_err(|e| format!("{e:#}")).and_then(|tr| {
                probe::on_host(
                    tr,
                    !f.services.is_empty(),
                    &format!("tcp {addr} --count 1 --timeout 1s"),
                )
            }),
            None => probe::connect_times(&addr, 1, Duration::from_secs(1))
                .map(|_| "tcp ok".to_string())
                .map_err(|e| e.to_string()),
        };
        let to = &p.to.host.name;
        let r = match (p.open, reached) {
            (true, Ok(_)) => Ok(format!("{addr} open from {from_name}")),
            (true, Err(e)) => Err(format!(
                "{to}: port {} closed from {from_name} ({e}): table inet vakt on {to} lacks `{}`; run `vakt up`",
                p.port, p.rule
            )),
            (false, Err(_)) => Ok(format!("{addr} closed from {from_name}")),
            (false, Ok(_)) => Err(format!(
                "{to}: port {} open from {from_name}, which only `{}` should reach: table inet vakt on {to} lacks its final `drop` (flushed or not loaded? `nft list table inet vakt`); run `vakt up`",
                p.port, p.rule
            )),
        };
        let verb = if p.open { "open" } else { "closed" };
        out.push(check(
            to,
            &format!("firewall: {} from {from_name} {verb}", p.port),
            r,
        ));
    }
    out
}

/// Standard base64 (for a Basic authorization header).
fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}
