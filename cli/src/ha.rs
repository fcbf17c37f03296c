//! The load balancers' VRRP state as the hosts themselves report it: who
//! holds the VIP (the address on a non-loopback interface), whether
//! keepalived runs, and with which priority it was configured. `verify`
//! checks it; `failover` acts on it; `up` waits for it to settle.

use std::net::Ipv4Addr;

use anyhow::Context;

use crate::services;
use crate::target::{HostTarget, Target};
use crate::topology::{self, Service};

/// One load balancer's part in the VRRP group.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LbState {
    pub host: String,
    /// The VIP is configured on one of its interfaces other than `lo`.
    pub holds_vip: bool,
    pub keepalived: bool,
    /// The priority the inventory gives it.
    pub priority: u8,
    /// The priority its keepalived.conf says (what the host really runs).
    pub configured_priority: Option<u8>,
}

/// Whether the VIP is on one of the host's interfaces other than `lo`
/// (`failover` parks it on `lo` while the old master drains).
fn holds(h: &HostTarget, vip: Ipv4Addr) -> anyhow::Result<bool> {
    let out = h.transport()?.run("ip -o -4 addr show")?;
    if !out.ok() {
        anyhow::bail!(
            "{}: `ip -o -4 addr show` failed: {}",
            h.host.name,
            out.stderr.trim()
        );
    }
    Ok(out.stdout.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1] != "lo" && f[3].split('/').next() == Some(&vip.to_string())
    }))
}

/// The priority line of the host's keepalived.conf.
fn configured_priority(h: &HostTarget) -> Option<u8> {
    let t = h.transport().ok()?;
    let conf = t
        .run(&format!(
            "cat {}",
            crate::transport::sh(&format!("{}/etc/keepalived/keepalived.conf", t.root()))
        ))
        .ok()?;
    conf.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("priority ")?.trim().parse().ok())
}

/// Reads every LB's VRRP state (LBs in inventory order).
pub fn survey(t: &Target) -> anyhow::Result<Vec<LbState>> {
    let vip = t.inv.vip.context("the inventory has no cluster.vip")?;
    t.hosts
        .iter()
        .filter(|h| h.services.contains(&Service::Keepalived))
        .map(|h| {
            Ok(LbState {
                host: h.host.name.clone(),
                holds_vip: holds(h, vip)?,
                keepalived: services::is_running(h.transport()?, Service::Keepalived)
                    .with_context(|| format!("{}: keepalived status", h.host.name))?,
                priority: topology::vrrp_priority(&t.inv, &h.host),
                configured_priority: configured_priority(h),
            })
        })
        .collect()
}

/// Waits until `host` holds the VIP; the time it took.
pub fn wait_holder(
    t: &Target,
    host: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<std::time::Duration> {
    let vip = t.inv.vip.context("the inventory has no cluster.vip")?;
    let h = t
        .hosts
        .iter()
        .find(|h| h.host.name == host)
        .with_context(|| format!("no host `{host}`"))?;
    let start = std::time::Instant::now();
    loop {
        if holds(h, vip)? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            anyhow::bail!(
                "{host} did not take the VIP {vip} within {}s; see its /var/log/vakt/keepalived.log",
                timeout.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until the VRRP group has settled: exactly one LB holds the VIP and,
/// with preemption, it is the running LB with the highest priority. `up`
/// waits for this before it prints the VIP as the cluster's address: a
/// freshly started keepalived needs a few advert intervals (and its track
/// script a few runs) before the right host takes the address. Returns the
/// holder.
pub fn wait_settled(t: &Target, timeout: std::time::Duration) -> anyhow::Result<String> {
    let vip = t.inv.vip.context("the inventory has no cluster.vip")?;
    let start = std::time::Instant::now();
    loop {
        let lbs = survey(t)?;
        let holders: Vec<&LbState> = lbs.iter().filter(|l| l.holds_vip).collect();
        let expected = lbs
            .iter()
            .filter(|l| l.keepalived)
            .max_by_key(|l| l.priority)
            .map(|l| l.host.as_str());
        if let [one] = holders.as_slice()
            && (t.inv.ha.nopreempt || Some(one.host.as_str()) == expected)
        {
            return Ok(one.host.clone());
        }
        if start.elapsed() > timeout {
            let who: Vec<&str> = holders.iter().map(|l| l.host.as_str()).collect();
            anyhow::bail!(
                "the VIP {vip} has not settled after {}s: held by [{}], expected {}; see /var/log/vakt/keepalived.log on the load balancers",
                timeout.as_secs(),
                who.join(", "),
                expected.unwrap_or("one load balancer (none runs keepalived)")
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
