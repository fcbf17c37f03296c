//! `vakt history`: what changed each selected host, when, by whom and with
//! which vakt and inventory, merged by time from the hosts' own append-only
//! files (see `history.rs`).

use std::process::ExitCode;

use clap::Args;

use crate::history;
use crate::selection::Selection;
use crate::target::{self, Secrets, TargetArgs};

/// `vakt history`'s flags.
#[derive(Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub select: Selection,
    /// Report format (json: one object per entry).
    #[arg(long, value_enum, default_value = "text")]
    pub format: super::Format,
}

pub fn run(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let t = target::open_selected(&a.target, true, Secrets::IfKnown, &a.select)?;
    let read = t.each_host(10, |_, h| {
        h.transport()
            .and_then(history::read)
            .map_err(|e| format!("{}: reading {}: {e:#}", h.host.name, history::HISTORY_FILE))
    });
    let mut all = Vec::new();
    let mut failed = false;
    for (h, r) in t.hosts.iter().zip(read) {
        match r {
            Ok((entries, bad)) => {
                if bad > 0 {
                    eprintln!(
                        "warning: {}: {bad} line(s) of {} are not history entries (skipped)",
                        h.host.name,
                        history::HISTORY_FILE
                    );
                }
                all.extend(entries);
            }
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    let all = history::merge(all);
    match a.format {
        super::Format::Json => println!("{}", serde_json::to_string_pretty(&all)?),
        super::Format::Text => {
            let width = t.hosts.iter().map(|h| h.host.name.len()).max().unwrap_or(0);
            for e in &all {
                let files = if e.files.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", e.files.join(", "))
                };
                println!(
                    "{} {:<width$} {} `{}` inventory {} vakt {}: {}{files}",
                    e.time,
                    e.host,
                    e.operator,
                    e.command,
                    e.inventory_sha256.get(..12).unwrap_or(&e.inventory_sha256),
                    e.version,
                    e.result
                );
            }
            if all.is_empty() {
                println!("no history yet: `vakt up` writes the first entries");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
