//! Loading a host's rendered firewall (`table inet vakt`) with a dead-man
//! switch, as `iptables-apply` does: a detached rollback is scheduled on the
//! host first, the rules go in atomically (`nft -f`), and only a second,
//! new SSH connection that still gets in cancels the rollback. Also the
//! read-side fragment that tells `plan` whether the loaded rules are still
//! the ones vakt loaded. The rules themselves come from `render`.

use std::time::Duration;

use crate::plan::FirewallState;
use crate::render::FIREWALL_PATH;
use crate::transport::{Init, Output, Transport, sh};

/// Why the rules could not be loaded (and whether the host rolls back).
#[derive(Debug, thiserror::Error)]
#[error("{host}: firewall: {reason}")]
pub struct Error {
    pub host: String,
    pub reason: String,
}

/// sha256 of `nft -s list table inet vakt` right after vakt loaded it: a
/// table changed or flushed since then no longer matches, and `up` loads
/// the rules again although the file did not change.
pub const STAMP_PATH: &str = "/etc/vakt/nftables.loaded";

/// A shell fragment printing `W <nft 0|1> <live sha|-> <stamp|->`.
pub fn state_script(root: &str) -> String {
    let stamp = sh(&format!("{root}{STAMP_PATH}"));
    format!(
        "if command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; then \
         live=$(PATH=\"$PATH:/usr/sbin\" nft -s list table inet vakt 2>/dev/null | sha256sum | cut -d' ' -f1); \
         [ -n \"$(PATH=\"$PATH:/usr/sbin\" nft -s list table inet vakt 2>/dev/null)\" ] || live=-; \
         echo \"W 1 $live $(cat {stamp} 2>/dev/null || echo -)\"; else echo 'W 0 - -'; fi; "
    )
}

/// Reads the line `state_script` printed (without its `W `).
pub fn parse_state(line: &str) -> Option<FirewallState> {
    let mut w = line.split_whitespace();
    let nft = w.next()? == "1";
    let (live, stamp) = (w.next()?, w.next()?);
    Some(FirewallState {
        nft,
        in_force: nft && live != "-" && live == stamp,
    })
}

fn failed(t: &dyn Transport, reason: String) -> Error {
    Error {
        host: t.host().to_string(),
        reason,
    }
}

/// Runs `cmd` with /usr/sbin on PATH (a non-root login's PATH may lack it).
fn run(t: &dyn Transport, cmd: &str) -> Result<Output, Error> {
    t.run(&format!("PATH=\"$PATH:/usr/sbin:/sbin\"; {cmd}"))
        .map_err(|e| failed(t, e.to_string()))
}

/// Refuses, with the fix, a host without `nft` (checked before `up` writes
/// anything there).
pub fn require_nft(t: &dyn Transport) -> Result<(), Error> {
    // (`command -v` exits 127 in dash when nothing is found, which the SSH
    // transport reads as a command that could not run: hence the `if`.)
    if run(
        t,
        "if command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; then exit 0; else exit 1; fi",
    )?
    .ok()
    {
        return Ok(());
    }
    Err(failed(
        t,
        "nft is not installed: install the nftables package (apt-get install nftables, dnf install nftables) or set [firewall] enabled = false in the inventory".into(),
    ))
}

/// Loads the rules in `FIREWALL_PATH` (already written) under a dead-man
/// switch that puts the previous table back after `rollback_after` unless
/// a new SSH connection still gets in. On `Err`, the rollback is left to
/// fire by itself when the confirmation failed, and cancelled otherwise.
pub fn load(t: &dyn Transport, rollback_after: Duration) -> Result<(), Error> {
    let root = t.root();
    let file = sh(&format!("{root}{FIREWALL_PATH}"));
    let stamp = sh(&format!("{root}{STAMP_PATH}"));
    let secs = rollback_after.as_secs().max(1);
    require_nft(t)?;
    // The switch: the table as it is now, and a detached process (its own
    // session, so a closed SSH channel does not end it) that puts it back.
    // Started before the new rules so nothing can come between them.
    // Whoever removes `armed` first wins (rm of one file succeeds once):
    // the rollback after its sleep, or the confirmation; so a confirmation
    // that comes as the rollback starts cannot count as in force.
    let arm = format!(
        "set -e; d=$(mktemp -d /tmp/vakt-fw.XXXXXX); touch \"$d/armed\"; \
         nft list table inet vakt > \"$d/before\" 2>/dev/null || rm -f \"$d/before\"; \
         setsid sh -c 'sleep {secs}; rm \"$0/armed\" 2>/dev/null || exit 0; if [ -s \"$0/before\" ]; then {{ echo \"table inet vakt\"; echo \"delete table inet vakt\"; cat \"$0/before\"; }} | nft -f -; else nft delete table inet vakt; fi; rm -rf \"$0\"' \"$d\" </dev/null >/dev/null 2>&1 & \
         echo \"$! $d\""
    );
    let armed = run(t, &arm)?;
    let mut w = armed.stdout.split_whitespace();
    let (Some(pid), Some(dir)) = (w.next(), w.next()) else {
        return Err(failed(
            t,
            format!(
                "could not schedule the rollback, so the rules were not loaded: {}",
                armed.stderr.trim()
            ),
        ));
    };
    let (pid, dir) = (pid.to_string(), sh(dir));
    let disarm = |t: &dyn Transport| -> Result<bool, Error> {
        // `armed` already gone: the rollback has run, or is running.
        let out = run(
            t,
            &format!(
                "rm {dir}/armed 2>/dev/null || exit 1; kill -- -{pid} 2>/dev/null || kill {pid} 2>/dev/null; rm -rf {dir}; exit 0"
            ),
        )?;
        Ok(out.ok())
    };
    let loaded = run(t, &format!("nft -f {file} 2>&1"))?;
    if !loaded.ok() {
        disarm(t)?;
        return Err(failed(
            t,
            format!(
                "`nft -f {FIREWALL_PATH}` refused the rules (nothing changed): {}",
                loaded.stdout.trim()
            ),
        ));
    }
    // Half the switch's time for the proof, so the answer comes before the
    // rollback would.
    let wait = Duration::from_secs((secs / 2).max(1));
    if let Err(e) = t.confirm_new_connection(wait) {
        return Err(failed(
            t,
            format!(
                "the new rules cut SSH (a new connection failed: {e}); the host puts its previous rules back by itself within {secs} s; check [firewall] admin (who may SSH in)"
            ),
        ));
    }
    if !disarm(t)? {
        return Err(failed(
            t,
            format!(
                "confirming took longer than the {secs} s rollback: the previous rules are back; raise [firewall] rollback_after"
            ),
        ));
    }
    // From now on the host loads these rules at boot too.
    let boot = match t.init() {
        Init::Systemd => {
            "systemctl daemon-reload && systemctl enable --quiet vakt-firewall".to_string()
        }
        Init::SysV => {
            "if command -v update-rc.d >/dev/null 2>&1; then update-rc.d vakt-firewall defaults; \
             elif command -v chkconfig >/dev/null 2>&1; then chkconfig --add vakt-firewall; \
             else echo 'neither update-rc.d nor chkconfig is installed'; exit 1; fi"
                .to_string()
        }
    };
    let enabled = run(t, &format!("{{ {boot}; }} 2>&1"))?;
    if !enabled.ok() {
        // The rules are in force; only a reboot would come up without them.
        tracing::warn!(
            "{}: the firewall is loaded but not enabled at boot: {}",
            t.host(),
            enabled.stdout.trim()
        );
    }
    let stamped = run(
        t,
        &format!("nft -s list table inet vakt | sha256sum | cut -d' ' -f1 > {stamp}"),
    )?;
    if !stamped.ok() {
        // The rules are in force; only the next `up` reloads them needlessly.
        tracing::warn!(
            "{}: recording the loaded rules: {}",
            t.host(),
            stamped.stderr.trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_in_force_only_when_the_live_table_matches_the_stamp() {
        assert_eq!(
            parse_state("1 abc abc"),
            Some(FirewallState {
                nft: true,
                in_force: true
            })
        );
        assert!(!parse_state("1 abc def").unwrap().in_force);
        assert!(!parse_state("1 - -").unwrap().in_force);
        assert_eq!(
            parse_state("0 - -"),
            Some(FirewallState {
                nft: false,
                in_force: false
            })
        );
        assert_eq!(parse_state("1"), None);
    }
}
