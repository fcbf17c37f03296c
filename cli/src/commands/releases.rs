//! `vakt releases`: each selected host's kept releases (see `releases.rs`),
//! oldest first, each with the history line of the `up` that made it; the
//! one the host runs is marked `*`.

use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use crate::releases;
use crate::selection::Selection;
use crate::target::{self, Secrets, TargetArgs};

/// `vakt releases`' flags.
#[derive(Args)]
pub struct ReleasesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    /// Report format (json: one object per host).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

#[derive(Serialize)]
struct HostReleases {
    host: String,
    #[serde(flatten)]
    store: releases::Store,
}

pub fn run(a: ReleasesArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_selected(&a.target, true, Secrets::IfKnown, &a.select)?;
    let read = t.each_host(10, |_, h| h.transport().and_then(releases::list));
    let mut all = Vec::new();
    let mut failed = false;
    for (h, r) in t.hosts.iter().zip(read) {
        match r {
            Ok(store) => all.push(HostReleases {
                host: h.host.name.clone(),
                store,
            }),
            Err(e) => {
                failed = true;
                eprintln!("{e:#}");
            }
        }
    }
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        super::Format::Text => {
            for h in &all {
                println!("{}:", h.host);
                if h.store.releases.is_empty() {
                    println!("  no releases yet: `vakt up` keeps the first one");
                }
                let newest = h.store.releases.last().map(|r| r.id.as_str());
                let current = h.store.current.as_deref().or(newest);
                for r in &h.store.releases {
                    let mark = if Some(r.id.as_str()) == current {
                        '*'
                    } else {
                        ' '
                    };
                    let e = &r.entry;
                    println!(
                        "{mark} {} {} `{}` inventory {} vakt {}: {} ({} file(s))",
                        r.id,
                        e.operator,
                        e.command,
                        e.inventory_sha256.get(..12).unwrap_or(&e.inventory_sha256),
                        e.version,
                        e.result,
                        e.files.len()
                    );
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
