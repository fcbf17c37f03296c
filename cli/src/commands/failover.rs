//! `vakt failover [--to HOST]`: a planned switchover of the VIP before an
//! LB's maintenance. The master's keepalived stops gracefully (it sends a
//! priority-0 advertisement, so the backup takes over at once); until the
//! drain time has passed the old master keeps the VIP on `lo`, so replies to
//! requests it had already accepted still leave it, while new connections
//! reach the new master.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::ha;
use crate::services;
use crate::target::{self, TargetArgs};
use crate::topology::Service;

#[derive(Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub lock: crate::lock::LockArgs,
    /// The LB that takes the VIP (default: the backup with the highest priority).
    #[arg(long, value_name = "HOST")]
    pub to: Option<String>,
    /// How long the old master keeps answering connections it already has.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    vakt_runtime::config::reader::parse_duration(s)
}

pub fn run(a: FailoverArgs) -> anyhow::Result<ExitCode> {
    let t = target::open(&a.target)?;
    let _lock = crate::lock::take(&t, &a.lock, false)?;
    let vip = t.inv.vip.with_context(|| {
        format!(
            "{} has no cluster.vip: there is nothing to fail over",
            t.inv.file
        )
    })?;
    if !crate::topology::ha_enabled(&t.inv) {
        bail!(
            "{} has one load balancer: failover needs two or more",
            t.inv.file
        );
    }
    let lbs = ha::survey(&t)?;
    let holders: Vec<&ha::LbState> = lbs.iter().filter(|l| l.holds_vip).collect();
    let from = match holders.as_slice() {
        [one] => one.host.clone(),
        [] => bail!("no load balancer holds the VIP {vip}; run `vakt verify` and `vakt up`"),
        many => bail!(
            "split brain: {} all hold the VIP {vip}; fix that first (`vakt verify`)",
            many.iter()
                .map(|l| l.host.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut candidates: Vec<&ha::LbState> = lbs
        .iter()
        .filter(|l| l.host != from && l.keepalived)
        .collect();
    candidates.sort_by_key(|l| std::cmp::Reverse(l.priority));
    let to = match &a.to {
        Some(to) if *to == from => {
            println!("{to} already holds the VIP {vip}; nothing to do");
            return Ok(ExitCode::SUCCESS);
        }
        Some(to) => {
            let Some(c) = lbs.iter().find(|l| l.host == *to) else {
                bail!("`{to}` is not a load balancer of {}", t.inv.file);
            };
            if !c.keepalived {
                bail!("keepalived does not run on {to}; start it with `vakt up` first");
            }
            if candidates.first().is_some_and(|best| best.host != *to) {
                bail!(
                    "when {from} steps down, {} takes the VIP (the highest priority); set `priority` in the inventory so that {to} is highest, `vakt up`, then fail over",
                    candidates[0].host
                );
            }
            to.clone()
        }
        None => match candidates.first() {
            Some(c) => c.host.clone(),
            None => bail!(
                "no other load balancer runs keepalived: stopping {from} would drop the VIP {vip}"
            ),
        },
    };
    let old = t
        .hosts
        .iter()
        .find(|h| h.host.name == from)
        .context("the master")?;
    let tr = old.transport()?;
    // The VIP stays local to the old master (on lo, which answers no ARP
    // for the LAN) while its accepted requests finish.
    let park = format!("ip addr add {vip}/32 dev lo 2>/dev/null; true");
    tr.run(&park)?;
    let stopped = tr.run(&services::init_command(tr, Service::Keepalived, "stop"))?;
    if !stopped.ok() {
        let _ = tr.run(&format!("ip addr del {vip}/32 dev lo"));
        bail!(
            "{from}: stopping keepalived failed: {}",
            format!("{}{}", stopped.stdout, stopped.stderr).trim()
        );
    }
    let took = ha::wait_holder(&t, &to, Duration::from_secs(10));
    std::thread::sleep(a.drain);
    let unpark = tr.run(&format!("ip addr del {vip}/32 dev lo 2>&1"))?;
    let took = took?;
    if !unpark.ok() {
        eprintln!(
            "warning: {from}: removing the parked VIP from lo failed: {}; remove it with `ip addr del {vip}/32 dev lo`",
            unpark.stdout.trim()
        );
    }
    println!(
        "the VIP {vip} moved from {from} to {to} in {:.2}s",
        took.as_secs_f64()
    );
    println!(
        "keepalived on {from} is stopped: maintain it now; `vakt up` starts it again{}",
        if t.inv.ha.nopreempt {
            " (nopreempt: it stays backup)"
        } else {
            " and it takes the VIP back (preemption)"
        }
    );
    Ok(ExitCode::SUCCESS)
}
