//! Active health checks: one task per checked server that probes it every
//! `interval` (jittered by `spread_checks`), with an HTTP/1.0 GET of the check
//! path or a plain TCP connect, and flips the server DOWN after `fall`
//! consecutive failures and UP after `rise` consecutive successes.
//!
//! Servers start UP but unconfirmed, as in HAProxy: until a check has passed
//! once, a single failed check marks the server DOWN, so a server that is
//! dead at startup stops getting traffic after one interval, not `fall`.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::config::Check;
use crate::log::Logger;
use crate::pool::{CheckResult, Pool};

/// Starts a check task for every checked server of every pool.
pub(crate) fn spawn_all(
    pools: &[Arc<Pool>],
    spread: u8,
    logger: &Arc<Logger>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for pool in pools {
        for (i, s) in pool.servers.iter().enumerate() {
            if let Some(check) = s.conf.check.clone() {
                let pool = pool.clone();
                let logger = logger.clone();
                tasks.push(tokio::spawn(run(pool, i, check, spread, logger)));
            }
        }
    }
    tasks
}

fn jittered(interval: Duration, spread: u8) -> Duration {
    if spread == 0 {
        return interval;
    }
    let j = f64::from(spread) / 100.0;
    let f = rand::rng().random_range(1.0 - j..=1.0 + j);
    interval.mul_f64(f)
}

async fn run(pool: Arc<Pool>, idx: usize, check: Check, spread: u8, logger: Arc<Logger>) {
    // Spread the first checks over the first interval so a restart does not
    // hit every server at once.
    let first = rand::rng().random_range(0..=check.interval.as_millis().min(1000) as u64);
    tokio::time::sleep(Duration::from_millis(first)).await;
    loop {
        let server = &pool.servers[idx];
        let start = Instant::now();
        let (result, code, info) = probe(server.rt.addr, &check).await;
        let ms = start.elapsed().as_millis() as u64;
        server.rt.record_check(result, code, ms);
        let ok = matches!(result, CheckResult::L4Ok | CheckResult::L7Ok);
        apply(&pool, idx, &check, ok, &info, ms, &logger);
        tokio::time::sleep(jittered(check.interval, spread)).await;
    }
}

fn apply(pool: &Pool, idx: usize, check: &Check, ok: bool, info: &str, ms: u64, logger: &Logger) {
    let s = &pool.servers[idx];
    let rt = &s.rt;
    if !ok {
        rt.chkfail.fetch_add(1, Relaxed);
    }
    let up = rt.is_up();
    if ok {
        rt.confirm();
    }
    let streak = if ok != up {
        rt.streak.fetch_add(1, Relaxed) + 1
    } else {
        0
    };
    if ok == up {
        rt.streak.store(0, Relaxed);
        return;
    }
    let needed = if ok {
        check.rise
    } else if rt.is_confirmed() {
        check.fall
    } else {
        1
    };
    if streak < needed || !rt.set_up(ok) {
        return;
    }
    let active = pool
        .servers
        .iter()
        .filter(|x| !x.conf.backup && x.usable())
        .count();
    let backup = pool
        .servers
        .iter()
        .filter(|x| x.conf.backup && x.usable())
        .count();
    let msg = format!(
        "Server {}/{} is {}, reason: {}, check duration: {ms}ms. {active} active and {backup} backup servers {}.",
        pool.name,
        s.name,
        if ok { "UP" } else { "DOWN" },
        info,
        if ok { "online" } else { "left" },
    );
    if ok {
        tracing::info!("{msg}");
    } else {
        tracing::warn!("{msg}");
    }
    logger.event(&msg, if ok { 5 } else { 1 });
}

/// One check. Returns the result, the HTTP status (0 = none) and a reason.
async fn probe(addr: std::net::SocketAddr, check: &Check) -> (CheckResult, u16, String) {
    let deadline = tokio::time::Instant::now() + check.timeout;
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Err(_) => return (CheckResult::L4Tout, 0, "Layer4 timeout".into()),
        Ok(Err(e)) => {
            return (
                CheckResult::L4Con,
                0,
                format!("Layer4 connection problem, info: \"{e}\""),
            );
        }
        Ok(Ok(s)) => s,
    };
    let Some(path) = &check.path else {
        return (CheckResult::L4Ok, 0, "Layer4 check passed".into());
    };
    match tokio::time::timeout_at(deadline, http_status(stream, addr, path)).await {
        Err(_) => (CheckResult::L7Tout, 0, "Layer7 timeout".into()),
        Ok(Err(e)) => (
            CheckResult::L7Rsp,
            0,
            format!("Layer7 invalid response, info: \"{e}\""),
        ),
        Ok(Ok(code)) if check.expect.matches(code) => (
            CheckResult::L7Ok,
            code,
            format!("Layer7 check passed, code: {code}"),
        ),
        Ok(Ok(code)) => (
            CheckResult::L7Sts,
            code,
            format!("Layer7 wrong status, code: {code}"),
        ),
    }
}

/// Sends `GET path HTTP/1.0` and reads the status code of the answer.
async fn http_status(
    mut s: TcpStream,
    addr: std::net::SocketAddr,
    path: &str,
) -> std::io::Result<u16> {
    let req = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: vakt-check\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let line = &buf[..n];
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    if n < 12 || !line.starts_with(b"HTTP/1.") || line[8] != b' ' {
        return Err(bad());
    }
    std::str::from_utf8(&line[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

    use crate::config::{Source, from_toml};
    use crate::state::State;

    /// A server whose /health answers 200 while `healthy` is set, 503 else;
    /// counts the checks it answered.
    async fn server(healthy: Arc<AtomicBool>, seen: Arc<AtomicU32>) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let status = if healthy.load(Relaxed) {
                    "200 OK"
                } else {
                    "503 Down"
                };
                let _ = s
                    .write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
                seen.fetch_add(1, Relaxed);
            }
        });
        addr
    }

    /// Rise and fall on paused time: the 2 s intervals pass at once, so
    /// the test counts checks, not seconds.
    #[tokio::test(start_paused = true)]
    async fn a_server_goes_down_after_fall_failures_and_up_after_rise_successes() {
        let healthy = Arc::new(AtomicBool::new(true));
        let seen = Arc::new(AtomicU32::new(0));
        let addr = server(healthy.clone(), seen.clone()).await;
        let text = format!(
            "[global]\nlog = \"off\"\n[[listen]]\nname = \"app\"\nbind = [\"127.0.0.1:1\"]\ncheck = {{ path = \"/health\", interval = \"2s\", rise = 2, fall = 3 }}\n[[listen.server]]\nname = \"w\"\naddr = \"{addr}\"\n"
        );
        let (config, _) = from_toml(&Source::new("t.toml", text)).unwrap();
        let logger = Arc::new(Logger::new(&crate::log::LogSettings::off()).unwrap());
        let state = State::build(
            config,
            None,
            logger.clone(),
            Arc::new(AtomicU64::new(0)),
            &HashMap::new(),
        );
        let tasks = spawn_all(&state.pools, 0, &logger);
        let rt = &state.pools[0].servers[0].rt;
        // Waits until `n` more checks were answered and applied (the next
        // one is 2 s away, so 100 ms after the answer it has been applied).
        let after = |n: u32| {
            let target = seen.load(Relaxed) + n;
            let seen = seen.clone();
            async move {
                while seen.load(Relaxed) < target {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        after(1).await;
        assert!(
            rt.is_up() && rt.is_confirmed(),
            "UP and confirmed by a passing check"
        );
        healthy.store(false, Relaxed);
        after(2).await;
        assert!(rt.is_up(), "two failures are fewer than fall = 3");
        after(1).await;
        assert!(!rt.is_up(), "DOWN after the third failure");
        healthy.store(true, Relaxed);
        after(1).await;
        assert!(!rt.is_up(), "one success is fewer than rise = 2");
        after(1).await;
        assert!(rt.is_up(), "UP after the second success");
        for t in tasks {
            t.abort();
        }
    }
}
