//! `vakt remove`: a preview that changes nothing, then `--yes`, which
//! stops everything and leaves no vakt file on the hosts but their data
//! (history, logs); `--purge-data` wants the cluster's name.

use std::path::Path;

use super::deploy::{Cluster, run};

/// Every file under `root`, relative to it.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn remove_previews_then_leaves_only_the_data() {
    let c = Cluster::up("remove");
    let (inv, state) = (c.inv.clone(), c.state.clone());
    let before = files(&state.join("lb01"));
    assert!(
        before.iter().any(|f| f == "usr/local/bin/vakt"),
        "{before:?}"
    );

    let (code, out, err) = run(&["remove"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("lb01:")
            && out.contains("  would stop vakt-proxy")
            && out.contains("  would remove /usr/local/bin/vakt")
            && out.contains("  would remove /etc/vakt")
            && out.contains("  would remove /var/lib/vakt/releases")
            && out.contains("  keeps /var/lib/vakt/history.jsonl (data; --purge-data removes it)")
            && out.contains("nothing was changed (preview)"),
        "{out}"
    );
    assert_eq!(
        files(&state.join("lb01")),
        before,
        "the preview changed lb01"
    );
    assert!(crate::support::get(c.lb, "/", &[]).status == 200);

    let (code, _, err) = run(&["remove", "--yes", "--purge-data"], &inv, &state);
    assert_eq!(code, 1);
    assert!(err.contains("--confirm t"), "{err}");
    assert!(state.join("lb01/usr/local/bin/vakt").exists());

    let (code, out, err) = run(&["remove", "--yes"], &inv, &state);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("  stop vakt-demo-web"), "{out}");
    for h in ["lb01", "web01", "web02"] {
        let left = files(&state.join(h));
        let vakts: Vec<&String> = left
            .iter()
            .filter(|f| *f != "var/lib/vakt/history.jsonl" && !f.starts_with("var/log/vakt/"))
            .collect();
        assert!(vakts.is_empty(), "{h} keeps vakt files: {vakts:?}");
        assert!(
            left.iter().any(|f| f == "var/lib/vakt/history.jsonl"),
            "{h}: {left:?}"
        );
    }
    assert!(
        std::net::TcpStream::connect(c.lb).is_err(),
        "the LB still answers"
    );
    let (_, out, _) = run(&["history", "--hosts", "web01"], &inv, &state);
    assert!(
        out.lines().last().unwrap().contains("removed (data kept)"),
        "{out}"
    );

    // Then the data, with the cluster's name typed out.
    let name = std::fs::read_to_string(&inv)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("name = \"")
                .map(|n| n.trim_end_matches('"').to_string())
        })
        .unwrap();
    let (code, out, err) = run(
        &["remove", "--yes", "--purge-data", "--confirm", &name],
        &inv,
        &state,
    );
    assert_eq!(code, 0, "{out}{err}");
    for h in ["lb01", "web01", "web02"] {
        assert_eq!(files(&state.join(h)), Vec::<String>::new(), "{h}");
    }
}
