//! `cargo xtask tidy`: the house rules that the compiler does not check,
//! as rust-analyzer keeps its own (`xtask/src/tidy.rs` there).
//!
//! - the crates form layers (see [`LAYERS`] and docs/architecture.md): a
//!   crate depends only on crates of lower layers, so the graph reads as
//!   the data flow and has no circle;
//! - the vocabulary and the planner (`cairn-spec`, `cairn-plan`) depend on
//!   no I/O crate, directly or through another dependency;
//! - SQL is written in `cairn-store` only: no other crate depends on
//!   rusqlite or holds a SQL statement;
//! - the server builds its responses from `cairn-api` types: no `json!` in
//!   `cairn-server` outside its tests;
//! - a source file over 1,000 lines says why at its top
//!   (`// tidy: long file: REASON` within its first ten lines).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace crates, lowest layer first. A crate may depend on the
/// crates of lower layers only.
pub const LAYERS: &[&[&str]] = &[
    &["cairn-spec", "cairn-api"],
    &["cairn-plan"],
    &["cairn-source", "cairn-store", "cairn-plugin-host"],
    &["cairn-gateway"],
    &["cairn-monitor", "cairn-runtime"],
    &["cairn-runtime-embedded", "cairn-runtime-kubernetes"],
    &["cairn-controller"],
    &["cairn-server"],
    &["cairn-test-support", "cairn"],
];

/// Crates that do I/O: none may reach the pure crates.
const IO_CRATES: &[&str] = &[
    "tokio",
    "git2",
    "rusqlite",
    "axum",
    "hyper",
    "wasmtime",
    "kube",
    "notify",
    "ureq",
    "reqwest",
    "tract-onnx",
    "nvml-wrapper",
];

/// Crates that must stay pure.
const PURE: &[&str] = &["cairn-spec", "cairn-plan"];

/// The only crate that writes SQL.
const STORE: &str = "cairn-store";

/// The line count over which a file must say why it is long.
const LONG_FILE: usize = 1_000;

/// Runs every check and fails with the list of violations.
pub fn run() -> Result<()> {
    let root = crate::root();
    let mut problems = Vec::new();
    let metadata = metadata(&root)?;
    problems.extend(layers(&metadata)?);
    problems.extend(purity(&metadata)?);
    for file in rust_files(&root.join("crates"))? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        problems.extend(sql_outside_store(&rel, &text));
        problems.extend(json_responses(&rel, &text));
        problems.extend(long_file(&rel, &text));
    }
    for file in rust_files(&root.join("xtask"))? {
        let text = std::fs::read_to_string(&file)?;
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        problems.extend(long_file(&rel, &text));
    }
    if problems.is_empty() {
        println!("tidy: all house rules hold");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("{} house rule(s) broken", problems.len())
}

fn metadata(root: &Path) -> Result<Value> {
    let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Package id → (name, normal dependencies' ids), from the resolved graph.
fn graph(metadata: &Value) -> BTreeMap<String, (String, Vec<String>)> {
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    metadata["resolve"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let id = n["id"].as_str()?;
            let deps = n["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|k| k["kind"].is_null())
                })
                .filter_map(|d| d["pkg"].as_str().map(str::to_string))
                .collect();
            Some((id.to_string(), (names.get(id)?.to_string(), deps)))
        })
        .collect()
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

/// Every workspace crate has a layer and depends only on lower ones.
pub fn layers(metadata: &Value) -> Result<Vec<String>> {
    let graph = graph(metadata);
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .context("workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut problems = Vec::new();
    for id in &members {
        let Some((name, deps)) = graph.get(*id) else {
            continue;
        };
        if name == "xtask" {
            continue;
        }
        let Some(layer) = layer_of(name) else {
            problems.push(format!(
                "crate `{name}` has no layer: add it to LAYERS in xtask/src/tidy.rs and to docs/architecture.md"
            ));
            continue;
        };
        for dep in deps {
            let dep_name = &graph[dep].0;
            if let Some(dep_layer) = layer_of(dep_name)
                && dep_layer >= layer
            {
                problems.push(format!(
                    "`{name}` (layer {layer}) depends on `{dep_name}` (layer {dep_layer}): a crate may use lower layers only"
                ));
            }
        }
    }
    Ok(problems)
}

/// The pure crates reach no I/O crate through any chain of dependencies.
pub fn purity(metadata: &Value) -> Result<Vec<String>> {
    let graph = graph(metadata);
    let mut problems = Vec::new();
    for pure in PURE {
        let Some(start) = graph.iter().find(|(_, (n, _))| n == pure).map(|(id, _)| id) else {
            problems.push(format!("crate `{pure}` is missing"));
            continue;
        };
        // Breadth-first, remembering through which crate each was reached.
        let mut via: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = vec![start.as_str()];
        while let Some(id) = queue.pop() {
            for dep in &graph[id].1 {
                if via.contains_key(dep.as_str()) {
                    continue;
                }
                via.insert(dep, id);
                queue.push(dep);
            }
        }
        for (id, _) in via.iter() {
            let name = &graph[*id].0;
            if IO_CRATES.contains(&name.as_str()) {
                let mut chain = vec![name.clone()];
                let mut at = *id;
                while let Some(prev) = via.get(at) {
                    chain.push(graph[*prev].0.clone());
                    at = prev;
                }
                chain.reverse();
                problems.push(format!(
                    "`{pure}` must do no I/O but reaches `{name}` ({})",
                    chain.join(" → ")
                ));
            }
        }
    }
    Ok(problems)
}

/// The crate a workspace path belongs to (`crates/NAME/...`).
fn crate_of(rel: &str) -> Option<&str> {
    rel.strip_prefix("crates/")?.split('/').next()
}

/// SQL statements and rusqlite outside the store crate.
pub fn sql_outside_store(rel: &str, text: &str) -> Vec<String> {
    if crate_of(rel) == Some(STORE) {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if code.contains("rusqlite") {
            problems.push(format!(
                "{rel}:{}: rusqlite outside {STORE}: SQL belongs in the store crate",
                i + 1
            ));
        }
        for keyword in [
            "\"SELECT ",
            "\"INSERT ",
            "\"UPDATE ",
            "\"DELETE FROM",
            "\"CREATE TABLE",
        ] {
            if code.contains(keyword) {
                problems.push(format!("{rel}:{}: a SQL statement outside {STORE}", i + 1));
            }
        }
    }
    problems
}

/// `json!` in the server crate, outside its tests.
pub fn json_responses(rel: &str, text: &str) -> Vec<String> {
    if crate_of(rel) != Some("cairn-server") {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        if line.contains("json!") && !line.trim_start().starts_with("//") {
            found.push(i + 1);
        }
    }
    found
        .iter()
        .map(|line| {
            format!("{rel}:{line}: `json!` in cairn-server: build the body from a cairn-api type")
        })
        .collect()
}

/// A long file without a reason at its top.
pub fn long_file(rel: &str, text: &str) -> Vec<String> {
    let lines = text.lines().count();
    if lines <= LONG_FILE {
        return Vec::new();
    }
    if text
        .lines()
        .take(10)
        .any(|l| l.trim_start().starts_with("// tidy: long file:"))
    {
        return Vec::new();
    }
    vec![format!(
        "{rel}: {lines} lines: split it by job, or say why at its top (`// tidy: long file: REASON`)"
    )]
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "target" && name != "fixtures" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_is_found_outside_the_store_only() {
        let code =
            "let q = \"SELECT 1 FROM t\";\nuse rusqlite::Connection;\n// rusqlite in a comment\n";
        assert_eq!(
            sql_outside_store("crates/cairn-monitor/src/a.rs", code).len(),
            2
        );
        assert!(sql_outside_store("crates/cairn-store/src/a.rs", code).is_empty());
    }

    #[test]
    fn json_macros_count_in_the_server_until_its_tests() {
        let code = "fn a() { json!({}) }\n#[cfg(test)]\nmod tests { fn b() { json!({}) } }\n";
        assert_eq!(
            json_responses("crates/cairn-server/src/a.rs", code).len(),
            1
        );
        assert!(json_responses("crates/cairn-gateway/src/a.rs", code).is_empty());
    }

    #[test]
    fn long_files_need_a_reason() {
        let long = "x\n".repeat(LONG_FILE + 1);
        assert_eq!(long_file("a.rs", &long).len(), 1);
        let reasoned = format!("// tidy: long file: one table of cases\n{long}");
        assert!(long_file("a.rs", &reasoned).is_empty());
        assert!(long_file("a.rs", "short\n").is_empty());
    }

    #[test]
    fn every_layer_name_is_unique() {
        let mut seen = BTreeSet::new();
        for name in LAYERS.iter().flat_map(|l| l.iter()) {
            assert!(seen.insert(name), "{name} twice");
        }
    }

    #[test]
    fn the_workspace_keeps_its_layers_and_pure_crates() {
        let metadata = metadata(&crate::root()).unwrap();
        assert_eq!(layers(&metadata).unwrap(), Vec::<String>::new());
        assert_eq!(purity(&metadata).unwrap(), Vec::<String>::new());
    }
}
