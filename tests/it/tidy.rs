//! Tidy checks on the source tree (rust-analyzer's `tidy` test is the
//! model): the structure rules ARCHITECTURE.md states, enforced. Module
//! imports between `crate::` modules form no cycle in either crate, and
//! every module opens with a `//!` header saying what it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src")
}

/// Every `.rs` file below `dir` with its module path (`upstream::conn`).
fn modules(dir: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The code of a file without its unit tests (they may import anything).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `crate::a::b` paths in `text`, each resolved to the longest module
/// name that exists; `crate::a::{b, c}` counts both.
fn imports(text: &str, names: &BTreeSet<String>) -> BTreeSet<String> {
    let resolve = |path: &str| {
        let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        while !segs.is_empty() {
            let n = segs.join("::");
            if names.contains(&n) {
                return Some(n);
            }
            segs.pop();
        }
        None
    };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + 7..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let base = rest[..end].trim_end_matches(':');
        if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
            let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
            for item in rest[end + 1..close].split(',') {
                let item = item.trim().split([' ', ':']).next().unwrap_or("");
                if let Some(m) = resolve(&format!("{base}::{item}")) {
                    out.insert(m);
                }
            }
        }
        if let Some(m) = resolve(base) {
            out.insert(m);
        }
    }
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.edges[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn import_graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(&src(krate));
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    mods.iter()
        .map(|(m, p)| {
            let mut deps = imports(&code(p), &names);
            // A module may name its own children and itself.
            deps.retain(|d| d != m && !d.starts_with(&format!("{m}::")) && !m.is_empty());
            (m.clone(), deps)
        })
        .collect()
}

#[test]
fn module_imports_form_no_cycle_in_either_crate() {
    for krate in ["runtime", "cli"] {
        let found = cycles(&import_graph(krate));
        assert!(
            found.is_empty(),
            "{krate}/src has import cycles (imports must point one way; a third, \
             smaller module is missing): {found:?}"
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
}

#[test]
fn every_module_opens_with_a_doc_header() {
    let mut missing = Vec::new();
    for krate in ["runtime", "cli"] {
        for (m, p) in modules(&src(krate)) {
            let text = std::fs::read_to_string(&p).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(format!("{krate}/src {m} ({})", p.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a `//!` header saying what they own: {missing:?}"
    );
}
