//! Dependencies point one way: entry points (`module`) → request routing (`handler`) →
//! transports (`daemon`) → the Python runtime (`python`) and the Apache adapter (`httpd`)
//! → pure code. A `crate::` path to a layer that is not below fails here.

use std::path::{Path, PathBuf};

/// The pure layers: plain Rust, no Apache, no Python.
const PURE: &[&str] = &["config", "wsgi", "stats", "util", "log_ids"];

/// What each part of `src/` may name with `crate::` besides the pure layers, most specific
/// first (`module`, the entry points, may name anything and is not listed).
const RULES: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("wsgi", &[]),
    ("stats", &[]),
    ("util", &[]),
    ("log_ids.rs", &[]),
    ("httpd", &["sys", "httpd", "rwsgi_module"]),
    ("python", &["python"]),
    ("daemon/protocol.rs", &["daemon"]),
    ("daemon/spawner.rs", &["daemon"]),
    ("daemon/os.rs", &["daemon"]),
    ("daemon", &["sys", "httpd", "python", "daemon"]),
    ("handler/route.rs", &["handler"]),
    ("handler", &["sys", "httpd", "python", "daemon", "handler"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module names a line reaches with `crate::` (`crate::{a, b::c}` too).
fn crate_roots(line: &str) -> Vec<String> {
    let mut roots = Vec::new();
    for (i, _) in line.match_indices("crate::") {
        let rest = &line[i + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![rest],
        };
        for n in names {
            let n: String = n
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !n.is_empty() {
                roots.push(n);
            }
        }
    }
    roots
}

/// Every `crate::` path in `src/` that points up or sideways, as `file:line: root`.
fn violations() -> Vec<String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        let Some((_, allowed)) = RULES
            .iter()
            .find(|(prefix, _)| rel == *prefix || rel.starts_with(&format!("{prefix}/")))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for root in crate_roots(line) {
                if !PURE.contains(&root.as_str()) && !allowed.contains(&root.as_str()) {
                    bad.push(format!("src/{rel}:{}: crate::{root}", n + 1));
                }
            }
        }
    }
    bad
}

#[test]
fn dependencies_point_one_way() {
    let bad = violations();
    assert!(
        bad.is_empty(),
        "imports against the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn crate_roots_reads_paths_and_groups() {
    assert_eq!(crate_roots("use crate::httpd::log::Level;"), ["httpd"]);
    assert_eq!(
        crate_roots("use crate::{config::X, python::app};"),
        ["config", "python"]
    );
    assert_eq!(crate_roots("let x = 1;"), Vec::<String>::new());
}
