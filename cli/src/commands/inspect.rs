//! `vakt check`, `vakt render`, `vakt status`: look at a cluster without
//! changing it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::certs;
use crate::render;
use crate::rotation;
use crate::selection::Selection;
use crate::services;
use crate::target::{self, Secrets, TargetArgs};
use crate::topology;

/// `vakt check`'s flags: it reads the inventory and nothing else.
#[derive(Args)]
pub struct CheckArgs {
    /// The inventory (default: the embedded local cluster, inventory/local.toml).
    #[arg(short, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Report format (json: the inventory plus every diagnostic with file,
    /// line, column, message and hint).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

/// `vakt check --format json`: `valid`, `diagnostics` (errors and
/// warnings), and when valid the inventory's fields.
fn check_json(inventory: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let (mut doc, diagnostics, code) = match crate::inventory::load(inventory) {
        Ok((inv, warnings)) => (serde_json::to_value(&inv)?, warnings, ExitCode::SUCCESS),
        Err(d) => (serde_json::json!({}), d, ExitCode::from(1)),
    };
    doc["valid"] = serde_json::Value::Bool(!diagnostics.has_errors());
    doc["diagnostics"] = serde_json::to_value(&diagnostics.items)?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(code)
}

pub fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    if a.format == super::Format::Json {
        return check_json(a.inventory.as_deref());
    }
    let inv = target::inventory(a.inventory.as_deref())?;
    println!(
        "cluster `{}` ({}), port {}{}",
        inv.name,
        inv.file,
        inv.port,
        inv.vip.map(|v| format!(", VIP {v}")).unwrap_or_default()
    );
    println!(
        "{:<10} {:<12} {:<15} {:<15} {:<20} services",
        "host", "roles", "private", "public", "location"
    );
    for h in &inv.hosts {
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        let loc = h
            .location
            .as_ref()
            .map(|l| format!("{} {}", l.country, l.city.clone().unwrap_or_default()))
            .unwrap_or_else(|| "-".into());
        let svcs: Vec<&str> = topology::services(&inv, h)
            .iter()
            .map(|s| s.name())
            .collect();
        println!(
            "{:<10} {:<12} {:<15} {:<15} {:<20} {}",
            h.name,
            roles.join(","),
            h.private_ip,
            h.public_ip
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            loc.trim(),
            if svcs.is_empty() {
                "-".to_string()
            } else {
                svcs.join(", ")
            }
        );
    }
    println!("{}", firewall_line(&inv));
    println!("inventory is valid");
    Ok(ExitCode::SUCCESS)
}

/// What `[firewall]` does, in one line (who may SSH in, above all).
fn firewall_line(inv: &crate::inventory::Inventory) -> String {
    let fw = &inv.firewall;
    if !fw.enabled {
        return "firewall: off ([firewall] enabled = false): every port of every host is open to every host".into();
    }
    if let Some(note) = local_firewall_note(inv)
        && inv.hosts.iter().all(|h| h.is_local())
    {
        return note.to_string();
    }
    let admin = if fw.admin.is_empty() {
        "the address this deploy connects from, as each host sees it (SSH_CLIENT); set [firewall] admin = [\"CIDR\", ...] to fix it".to_string()
    } else {
        fw.admin
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let local = if inv.hosts.iter().any(|h| h.is_local()) {
        " but the local ones (they share this machine's network)"
    } else {
        ""
    };
    let pages = match (&inv.balancer.stats, &inv.metrics) {
        (Some(_), Some(_)) => "; the stats page and metrics answer the same networks only",
        (Some(_), None) => "; the stats page answers the same networks only",
        (None, Some(_)) => "; metrics answer the same networks only",
        (None, None) => "",
    };
    format!("firewall: nftables table inet vakt on every host{local}; SSH from {admin}{pages}")
}

/// The note `check` and `plan` print when the cluster has local hosts
/// (with the firewall on): they get no rules.
pub(super) fn local_firewall_note(inv: &crate::inventory::Inventory) -> Option<&'static str> {
    (inv.firewall.enabled && inv.hosts.iter().any(|h| h.is_local())).then_some(
        "firewall: none for local hosts: they share this machine's network, which vakt never filters",
    )
}

#[derive(Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write each host's files under DIR/<host>/<path>.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn render(a: RenderArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_with(&a.target, false, Secrets::IfKnown)?;
    let mut n = 0;
    for h in &t.hosts {
        for f in render::render_host(&t.inv, &h.host, &h.ctx, &t.templates)? {
            let p = a
                .out
                .join(&h.host.name)
                .join(f.path.trim_start_matches('/'));
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&p, &f.content)?;
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode))?;
            }
            n += 1;
        }
    }
    println!("wrote {n} files under {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `vakt status`'s flags.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    /// Report format (json: typed fields per host, service and server).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

#[derive(Serialize)]
struct ServiceStatus {
    name: &'static str,
    running: bool,
}

#[derive(Serialize)]
struct HostStatus {
    host: String,
    services: Vec<ServiceStatus>,
    binary_sha256: Option<String>,
    config_sha256: Option<String>,
    /// On a load balancer: its servers as its proxy reports them (`None`
    /// elsewhere, or when the proxy does not answer).
    servers: Option<Vec<rotation::Row>>,
    /// On a load balancer of a cluster with `[tls]`: the certificate it holds.
    certificate: Option<certs::Cert>,
    /// Why this host is not running and healthy; empty when it is.
    problems: Vec<String>,
}

fn host_status(h: &target::HostTarget, tls: bool) -> HostStatus {
    let mut st = HostStatus {
        host: h.host.name.clone(),
        services: Vec::new(),
        binary_sha256: None,
        config_sha256: None,
        servers: None,
        certificate: None,
        problems: Vec::new(),
    };
    let tr = match h.transport() {
        Ok(tr) => tr,
        Err(e) => {
            st.problems.push(format!("{e:#}"));
            return st;
        }
    };
    for &s in &h.services {
        let running = services::is_running(tr, s).unwrap_or(false);
        if !running {
            st.problems.push(format!(
                "{} is stopped (`vakt up` starts it; its log is under {}/var/log/vakt)",
                s.name(),
                tr.root()
            ));
        }
        st.services.push(ServiceStatus {
            name: s.name(),
            running,
        });
    }
    st.binary_sha256 = tr.sha256(services::BINARY_PATH).ok().flatten();
    st.config_sha256 = tr.sha256("/etc/vakt/proxy.toml").ok().flatten();
    if tls && h.services.contains(&topology::Service::Proxy) {
        match certs::read(tr) {
            Ok(c) => st.certificate = Some(c),
            Err(e) => st.problems.push(format!("certificate: {e}")),
        }
    }
    let proxy_running = st
        .services
        .iter()
        .any(|s| s.name == topology::Service::Proxy.name() && s.running);
    if proxy_running {
        match rotation::read(h) {
            Ok(rows) => {
                for r in rows.iter().filter(|r| !r.serving()) {
                    st.problems.push(format!(
                        "its proxy sees {}/{} {} (check {})",
                        r.backend, r.server, r.status, r.check
                    ));
                }
                if rows.is_empty() {
                    st.problems.push("its proxy reports no servers".into());
                }
                st.servers = Some(rows);
            }
            Err(e) => {
                tracing::debug!(host = %h.host.name, "admin socket: {e}");
                st.problems.push(format!(
                    "its proxy runs but its admin socket {} does not answer (see {}/var/log/vakt/proxy.log; `vakt up` restarts what is wrong)",
                    h.ctx.admin_socket,
                    tr.root()
                ));
            }
        }
    }
    st
}

/// `vakt status`: exit 0 when every service runs and every LB sees every
/// server UP, 1 otherwise (with the reason per host). Writes nothing.
pub fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_selected(&a.target, true, Secrets::IfKnown, &a.select)?;
    let tls = t.inv.tls.is_some();
    let all = t.each_host(10, |_, h| host_status(h, tls));
    let problems: usize = all.iter().map(|s| s.problems.len()).sum();
    let code = if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if a.format == super::Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "cluster": t.inv.name,
                "ok": problems == 0,
                "hosts": all,
            }))?
        );
        return Ok(code);
    }
    for s in &all {
        let svc: Vec<String> = s
            .services
            .iter()
            .map(|x| {
                format!(
                    "{} {}",
                    x.name,
                    if x.running { "running" } else { "stopped" }
                )
            })
            .collect();
        println!(
            "{:<10} {:<40} binary {}  config {}",
            s.host,
            if svc.is_empty() {
                "-".to_string()
            } else {
                svc.join(", ")
            },
            s.binary_sha256.as_deref().map_or("-", |x| &x[..12]),
            s.config_sha256.as_deref().map_or("-", |x| &x[..12]),
        );
        if let Some(c) = &s.certificate {
            println!("           certificate {}", c.summary());
        }
        for r in s.servers.iter().flatten() {
            println!(
                "           {}/{} {} {} weight {} sessions {} check {}",
                r.backend, r.server, r.addr, r.status, r.weight, r.scur, r.check
            );
        }
    }
    if problems == 0 {
        println!("all running and healthy");
    } else {
        for s in &all {
            for p in &s.problems {
                println!("{:<10} {p}", s.host);
            }
        }
        println!("{problems} problem(s): not all running and healthy");
    }
    Ok(code)
}
