//! `vakt history`: each host's append-only record of what changed it (up,
//! rollback, down), with operator, vakt version and inventory hash, merged by
//! time; `--hosts` narrows it.

use super::deploy::{Cluster, run};

#[test]
fn up_rollback_and_down_leave_an_append_only_history_per_host() {
    let c = Cluster::up("history");
    let (inv, state) = (c.inv.clone(), c.state.clone());
    let file = state.join("lb01/var/lib/vakt/history.jsonl");
    let first = std::fs::read_to_string(&file).unwrap();
    assert_eq!(first.lines().count(), 1, "{first}");

    let text = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, text.replacen("weight = 1", "weight = 3", 1)).unwrap();
    let (code, out, err) = run(&["up"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["rollback", "--hosts", "lb01"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(now.starts_with(&first), "history was rewritten:\n{now}");
    assert_eq!(now.lines().count(), 3, "{now}");

    let (code, out, err) = run(&["history", "--hosts", "lb01"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let version = format!("vakt {} (git ", env!("CARGO_PKG_VERSION"));
    for l in &lines {
        assert!(
            l.contains(" lb01 ") && l.contains(&version) && l.contains('@'),
            "{l}"
        );
    }
    assert!(
        lines[0].contains("`vakt up -i") && lines[0].contains(": changed ["),
        "{out}"
    );
    assert!(lines[1].contains("/etc/vakt/proxy.toml"), "{out}");
    assert!(
        lines[2].contains("`vakt rollback --hosts lb01")
            && lines[2].contains(": rolled back to 20"),
        "{out}"
    );
    // The two ups ran with different inventories.
    let hash = |l: &str| l.split(" inventory ").nth(1).unwrap()[..12].to_string();
    assert_ne!(hash(lines[0]), hash(lines[1]));

    // Every host, merged by time; json carries the same entries.
    let (code, out, _) = run(&["history", "--format", "json"], &inv, &state);
    assert_eq!(code, 0);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let times: Vec<&str> = all.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for h in ["lb01", "web01", "web02"] {
        assert!(all.iter().any(|e| e["host"] == h), "{out}");
    }

    let (code, out, err) = run(&["down"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = run(&["history", "--hosts", "web02"], &inv, &state);
    let last = out.lines().last().unwrap_or("");
    assert!(
        last.contains("`vakt down") && last.contains(": stopped vakt-demo-web"),
        "{out}"
    );
}
