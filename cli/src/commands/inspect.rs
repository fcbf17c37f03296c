//! `vakt check`, `vakt render`, `vakt status`: look at a cluster without
//! changing it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::target::{self, TargetArgs};
use crate::inventory::Role;
use crate::render;
use crate::services;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

pub fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let inv = target::inventory(a.target.inventory.as_deref())?;
    if a.format == super::Format::Json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
        return Ok(ExitCode::SUCCESS);
    }
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
        let roles: Vec<&str> = h
            .roles
            .iter()
            .map(|r| match r {
                Role::Lb => "lb",
                Role::Web => "web",
                Role::Db => "db",
            })
            .collect();
        let loc = h
            .location
            .as_ref()
            .map(|l| format!("{} {}", l.country, l.city.clone().unwrap_or_default()))
            .unwrap_or_else(|| "-".into());
        let svcs: Vec<&str> = render::services(&inv, h).iter().map(|s| s.name()).collect();
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
    println!("inventory is valid");
    Ok(ExitCode::SUCCESS)
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
    let t = target::open_with(&a.target, false)?;
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

#[derive(Serialize)]
struct HostStatus {
    host: String,
    services: Vec<(String, bool)>,
    binary_sha256: Option<String>,
    config_sha256: Option<String>,
    servers: Option<String>,
}

pub fn status(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let mut all = Vec::new();
    for h in &t.hosts {
        let tr = h.transport()?;
        let services = h
            .services
            .iter()
            .map(|s| {
                (
                    s.name().to_string(),
                    services::is_running(tr, *s).unwrap_or(false),
                )
            })
            .collect();
        let servers = h.services.contains(&render::Service::Proxy).then(|| {
            services::admin(tr, &h.ctx.admin_socket, "show servers")
                .unwrap_or_else(|e| format!("admin socket: {e}\n"))
        });
        all.push(HostStatus {
            host: h.host.name.clone(),
            services,
            binary_sha256: tr.sha256(services::BINARY_PATH).ok().flatten(),
            config_sha256: tr.sha256("/etc/vakt/proxy.toml").ok().flatten(),
            servers,
        });
    }
    if a.format == super::Format::Json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    for s in &all {
        let svc: Vec<String> = s
            .services
            .iter()
            .map(|(n, up)| format!("{n} {}", if *up { "running" } else { "stopped" }))
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
        if let Some(servers) = &s.servers {
            for l in servers.lines().filter(|l| !l.trim().is_empty()) {
                println!("           {l}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
