//! Every command keeps the promise its help makes (issue 15): `down --check`
//! stops nothing, each command has exactly the flags it honours, local state
//! does not depend on the working directory, read-only commands write
//! nothing, secrets are asked for only where used, `status` exit codes,
//! JSON reports, `rolling` shows what its command printed, `down` works in
//! parallel and reports progress as plain lines off a terminal.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::deploy::{Cluster, run};
use super::{local_inventory, tmp};
use crate::support::{get, vakt};

/// Runs vakt in `cwd` with `env` (and NO_COLOR); no `--state-dir` unless
/// the caller passes one.
fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = vakt();
    cmd.args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("VAKT_TEST_STATS_PASSWORD")
        .env_remove("VAKT_STATS_PASSWORD")
        .env_remove("XDG_STATE_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file and folder under `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.insert(p.strip_prefix(dir).unwrap().to_path_buf());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

/// The repository's `inventory/` folder.
fn repo_inventory(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../inventory")
        .join(name)
}

#[test]
fn down_check_shows_what_would_stop_and_the_cluster_keeps_serving() {
    let c = Cluster::up("down-check");
    let (code, out, err) = run(&["down", "--check"], &c.inv, &c.state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("would stop vakt-proxy")),
        "{out}"
    );
    assert!(out.contains("nothing was stopped"), "{out}");
    assert_eq!(
        get(c.lb, "/", &[]).status,
        200,
        "still serves after down --check"
    );

    let (code, out, err) = run(&["down", "--check", "--format", "json"], &c.inv, &c.state);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let lb = v
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "lb01")
        .unwrap();
    assert_eq!(lb["running"], serde_json::json!(["vakt-proxy"]), "{out}");
    assert_eq!(lb["stopped"], serde_json::json!([]), "{out}");
    assert_eq!(get(c.lb, "/", &[]).status, 200);

    // Flags a command does not honour are refused (usage error, exit 2).
    for args in [
        &["plan", "--check"][..],
        &["down", "--binary", "/bin/true"],
        &["down", "--no-install"],
        &["maint", "web01", "--timeout", "5s"],
        &["ready", "web01", "--timeout", "5s"],
        &["check", "--state-dir", "/tmp"],
    ] {
        let (code, _, err) = run(args, &c.inv, &c.state);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("unexpected argument"), "{args:?}: {err}");
    }
}

#[test]
fn down_stops_hosts_in_parallel_and_reports_plain_lines_off_a_terminal() {
    let dir = tmp("down-par");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    // Each web host notes when its stop began, then takes a second: one
    // host after another, the second would begin a second after the first.
    let tpl = dir.path().join("templates");
    std::fs::create_dir_all(&tpl).unwrap();
    let demo = include_str!("../../../templates/vakt-demo.init.j2");
    let stop = "    pid=$(cat \"$PIDFILE\")\n    kill -TERM";
    assert!(demo.contains(stop));
    std::fs::write(
        tpl.join("vakt-demo.init.j2"),
        demo.replace(
            stop,
            &format!("    date +%s.%N >\"$PIDFILE.stop-began\"\n    sleep 1\n{stop}"),
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["up"], &inv, &state);
    let lb: std::net::SocketAddr = format!("{net}.1:{port}").parse().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let t = Instant::now();
    let (code, out, err) = run(&["down"], &inv, &state);
    let took = t.elapsed();
    println!("vakt down (3 hosts, web hosts 1 s more each): {took:?}");
    assert_eq!(code, 0, "{out}{err}");
    // One second of sleep, then stops that return once the process has
    // exited: an exited process that init has not reaped yet (a zombie)
    // counts as gone (this machine's init reaps orphans ~2 s late).
    assert!(took < Duration::from_millis(1900), "{took:?}");
    let began = |h: &str| -> f64 {
        let p = state.join(h).join("run/vakt/vakt-demo-web.pid.stop-began");
        std::fs::read_to_string(&p).unwrap().trim().parse().unwrap()
    };
    let apart = (began("web01") - began("web02")).abs();
    assert!(apart < 0.7, "the web hosts' stops began {apart:.2}s apart");
    for host in ["lb01", "web01", "web02"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(host) && l.contains("stopped vakt-")),
            "{out}"
        );
        // Progress off a terminal: one plain line per host on stderr.
        assert!(
            err.lines()
                .any(|l| l.starts_with(host) && l.contains("stopped vakt-")),
            "{err}"
        );
    }
    assert!(!err.contains('\x1b'), "{err}");
    assert!(std::net::TcpStream::connect_timeout(&lb, Duration::from_millis(300)).is_err());
}

#[test]
fn local_state_is_one_place_per_cluster_whatever_the_working_directory_or_path_spelling() {
    let dir = tmp("anchor");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let xdg = dir.path().join("xdg");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let env = [("XDG_STATE_HOME", xdg.as_path())];
    let cluster = std::fs::read_to_string(&inv).unwrap();
    let cluster = cluster
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    struct Down<'a>(&'a Path, &'a [(&'a str, &'a Path)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            run_in(self.0, &["down", "-i", "inventory.toml"], self.1);
        }
    }
    let _down = Down(dir.path(), &env);

    let (code, out, err) = run_in(dir.path(), &["up", "-i", "inventory.toml"], &env);
    assert!(code == 0, "{out}{err}");
    let state = xdg.join("vakt").join(&cluster);
    assert!(
        out.contains(&format!("local hosts' files: {}", state.display())),
        "{out}"
    );
    assert!(state.join("lb01/etc/vakt/proxy.toml").is_file());
    assert!(!dir.path().join(".vakt").exists());

    // From another folder, with the path spelled three other ways: the same
    // state, the same rendered bytes, nothing to do.
    let absolute = inv.display().to_string();
    for (cwd, path) in [
        (elsewhere.as_path(), "../inventory.toml"),
        (elsewhere.as_path(), absolute.as_str()),
        (dir.path(), "./inventory.toml"),
    ] {
        let (code, out, err) = run_in(cwd, &["plan", "-i", path], &env);
        assert_eq!(code, 0, "plan -i {path} from {}: {out}{err}", cwd.display());
        assert!(!out.contains("new file"), "{out}");
    }
    let (code, out, err) = run_in(&elsewhere, &["up", "-i", "../inventory.toml"], &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no changes"), "{out}");
    assert!(!elsewhere.join(".vakt").exists());
}

#[test]
fn up_fails_a_host_whose_process_exits_at_once_and_shows_its_log() {
    let dir = tmp("addr-in-use");
    let (inv, net, port) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    // Someone else already listens on web01's address.
    let _squatter = std::net::TcpListener::bind(format!("{net}.2:{port}")).unwrap();
    struct Down<'a>(&'a Path, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            run(&["down"], self.0, self.1);
        }
    }
    let _down = Down(&inv, &state);
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 1, "{out}{err}");
    let web01 = out.lines().find(|l| l.starts_with("web01")).unwrap_or("");
    assert!(web01.contains("FAILED"), "{out}");
    assert!(
        out.contains("vakt-demo-web exited right after it started")
            && out.contains("Address already in use"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("web02") && !l.contains("FAILED")),
        "{out}"
    );
    // The init script itself says so.
    let script = state.join("web01/etc/init.d/vakt-demo-web");
    let o = std::process::Command::new("sh")
        .arg(&script)
        .arg("start")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Address already in use"));
}

#[test]
fn read_only_commands_write_nothing_and_say_so() {
    let dir = tmp("read-only");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let home = dir.path().join("home");
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let out_dir = std::env::temp_dir().join(format!("vakt-it-render-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let env = [("HOME", home.as_path())];
    let inv_s = inv.display().to_string();
    let out_s = out_dir.display().to_string();
    let before = tree(dir.path());
    for args in [
        &["check", "-i", &inv_s][..],
        &["check", "-i", &inv_s, "--format", "json"],
        &["plan", "-i", &inv_s],
        &["plan", "-i", &inv_s, "--format", "json"],
        &["status", "-i", &inv_s],
        &["verify", "-i", &inv_s],
        &["audit", "-i", &inv_s],
        &["audit", "-i", &inv_s, "--offline"],
        &["render", "-i", &inv_s, "--out", &out_s],
        &["releases", "-i", &inv_s],
        &["remove", "-i", &inv_s],
    ] {
        let (code, out, err) = run_in(&cwd, args, &env);
        assert!((0..=2).contains(&code), "{args:?}: {out}{err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(tree(dir.path()), before, "{args:?} wrote something");
    }
    // render wrote only under --out, with the placeholder marked as such.
    let conf = std::fs::read_to_string(out_dir.join("lb01/etc/vakt/proxy.toml")).unwrap();
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(conf.contains("PLACEHOLDER-not-a-hash"), "{conf}");
    for cmd in ["check", "plan", "status", "verify", "releases"] {
        let (_, help, _) = run_in(&cwd, &[cmd, "--help"], &env);
        assert!(help.contains("Writes nothing"), "{cmd} --help: {help}");
    }
}

#[test]
fn render_and_offline_audit_need_no_secret_and_a_placeholder_never_deploys() {
    let dir = tmp("no-secret");
    let oslo = repo_inventory("oslo.toml").display().to_string();
    let out = dir.path().join("out");
    let (code, o, err) = run_in(
        dir.path(),
        &["render", "-i", &oslo, "--out", &out.display().to_string()],
        &[],
    );
    assert_eq!(code, 0, "{o}{err}");
    let conf = out.join("lb01/etc/vakt/proxy.toml");
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("PLACEHOLDER-not-a-hash"),
    );
    // The proxy refuses such a file.
    let (code, o, err) = run_in(
        dir.path(),
        &["proxy", "--check", "--config", &conf.display().to_string()],
        &[],
    );
    assert_ne!(code, 0, "{o}{err}");
    assert!(
        format!("{o}{err}").contains("not a sha-crypt hash"),
        "{o}{err}"
    );

    let (code, o, err) = run_in(dir.path(), &["audit", "--offline", "-i", &oslo], &[]);
    assert!(code == 0 || code == 1, "{o}{err}");
    assert!(!err.contains("VAKT_STATS_PASSWORD"), "{err}");
    assert!(!o.is_empty());
    // Where the secret is used, its absence is named with the fix.
    let (code, _, err) = run_in(dir.path(), &["plan", "-i", &oslo], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("export VAKT_STATS_PASSWORD="), "{err}");
}

#[test]
fn status_exit_codes_say_whether_all_runs_and_is_healthy() {
    let c = Cluster::up("status");
    let (code, out, err) = run(&["status"], &c.inv, &c.state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all running and healthy"), "{out}");

    let (code, out, _) = run(&["status", "--format", "json"], &c.inv, &c.state);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    let lb = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "lb01")
        .unwrap();
    assert_eq!(lb["services"][0]["name"], "vakt-proxy");
    assert_eq!(lb["services"][0]["running"], true);
    let servers = lb["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{out}");
    assert_eq!(servers[0]["status"], "UP");
    assert!(
        servers[0]["weight"].is_u64() && servers[0]["scur"].is_u64(),
        "{out}"
    );

    // A server in maintenance: exit 1 and the reason on the LB's line.
    let (code, _, _) = run(&["maint", "web01"], &c.inv, &c.state);
    assert_eq!(code, 0);
    let (code, out, _) = run(&["status"], &c.inv, &c.state);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("lb01") && l.contains("web01 MAINT")),
        "{out}"
    );

    // Everything stopped: exit 1, the reason per host, no raw socket error.
    let (code, _, _) = run(&["down"], &c.inv, &c.state);
    assert_eq!(code, 0);
    let (code, out, err) = run(&["status"], &c.inv, &c.state);
    assert_eq!(code, 1, "{out}{err}");
    for (host, svc) in [("lb01", "vakt-proxy"), ("web01", "vakt-demo-web")] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(host) && l.contains(&format!("{svc} is stopped"))),
            "{out}"
        );
    }
    assert!(
        !out.contains("admin socket:") && !err.contains("os error"),
        "{out}{err}"
    );
}

#[test]
fn json_reports_carry_diagnostics_and_octal_modes() {
    let dir = tmp("json");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[cluster]\nname = \"x\"\n\n[[hosts]]\nname = \"web01\"\nrolse = [\"web\"]\nprivate_ip = \"127.0.0.2\"\n",
    )
    .unwrap();
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "check",
            "--format",
            "json",
            "-i",
            &bad.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false);
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message"].as_str().unwrap_or("").contains("rolse"))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(d["severity"], "error", "{out}");
    assert!(d["file"].as_str().unwrap().ends_with("bad.toml"), "{out}");
    assert_eq!(d["line"], 6, "{out}");
    assert_eq!(d["column"], 1, "{out}");
    assert!(d["hint"].as_str().unwrap_or("").contains("roles"), "{out}");

    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let (code, out, err) = run(&["plan", "--format", "json"], &inv, &state);
    assert_eq!(code, 2, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let modes: BTreeSet<String> = v
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["files"].as_array().unwrap().iter())
        .map(|f| {
            f["file"]["mode"]
                .as_str()
                .unwrap_or_else(|| panic!("{f}"))
                .to_string()
        })
        .collect();
    assert!(
        modes.contains("0755") && modes.contains("0644"),
        "{modes:?}"
    );
}

#[test]
fn rolling_shows_what_the_command_printed() {
    let c = Cluster::up("rolling-out");
    let (code, out, err) = run(
        &["rolling", "--exec", "echo hello from $(basename $PWD)"],
        &c.inv,
        &c.state,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("hello from web01") && out.contains("hello from web02"),
        "{out}"
    );
    let (code, out, err) = run(
        &[
            "rolling",
            "--hosts",
            "web01",
            "--exec",
            "echo out-line; echo err-line >&2; exit 3",
        ],
        &c.inv,
        &c.state,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("failed (exit 3)")
            && err.contains("stdout:\n    out-line")
            && err.contains("stderr:\n    err-line"),
        "{err}"
    );
    let (code, _, err) = run(
        &["rolling", "--exec", "exit 3", "--hosts", "web01"],
        &c.inv,
        &c.state,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("`exit 3` failed (exit 3) and printed nothing"),
        "{err}"
    );
}

#[test]
fn verify_audit_and_drain_report_progress_as_plain_lines_off_a_terminal() {
    let c = Cluster::up("progress");
    let (_, _, err) = run(&["verify"], &c.inv, &c.state);
    assert!(
        err.lines()
            .any(|l| l.starts_with("verify") && l.contains("checks")),
        "{err}"
    );
    let (_, _, err) = run(&["audit"], &c.inv, &c.state);
    assert!(
        err.lines()
            .any(|l| l.starts_with("audit") && l.contains("evidence gathered")),
        "{err}"
    );
    let (code, _, err) = run(&["drain", "web01"], &c.inv, &c.state);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("web01") && l.contains("drained")),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "{err}");
}

#[test]
fn down_draws_progress_on_a_terminal() {
    // `script` (util-linux) gives the command a pseudo-terminal.
    let dir = tmp("down-tty");
    let (inv, _, _) = local_inventory(dir.path(), "");
    let state = dir.path().join("state");
    let cmd = format!(
        "'{}' down --check -i '{}' --state-dir '{}'",
        env!("CARGO_BIN_EXE_vakt"),
        inv.display(),
        state.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs the command on a pseudo-terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // indicatif redraws its lines in place (cursor movements).
    assert!(
        text.contains("\x1b[1A") || text.contains("\x1b[2K"),
        "{text:?}"
    );
    assert!(text.contains("nothing running"), "{text:?}");
}
