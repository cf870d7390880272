//! `cargo xtask bench build`: what a one-line change in the planner costs
//! to rebuild (the `cairn` binary, and the test binaries that a
//! `cargo test` of the planner's users compiles), in this tree and in
//! another checkout of the project (an older layout), side by side.
//!
//! Both trees must have been built once (`cargo build --workspace
//! --all-targets`) so that only the change is rebuilt. The change appends a
//! function to the planner's module and is undone after each run.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where the planner lives in either layout.
const PLANNERS: &[&str] = &[
    "crates/cairn-plan/src/plan/mod.rs",
    "controller/src/plan/mod.rs",
];

/// One tree's timings.
struct Timings {
    tree: PathBuf,
    binary: Duration,
    tests: Duration,
}

/// Times `runs` rebuilds after a one-line change in each tree.
pub fn run(other: Option<&Path>, runs: usize) -> Result<()> {
    let mut trees = vec![crate::root()];
    if let Some(o) = other {
        trees.push(
            o.canonicalize()
                .with_context(|| format!("{}", o.display()))?,
        );
    }
    let mut results = Vec::new();
    for tree in &trees {
        let planner = PLANNERS
            .iter()
            .map(|p| tree.join(p))
            .find(|p| p.is_file())
            .with_context(|| format!("no planner under {}", tree.display()))?;
        // Warm: whatever is stale is built before the clock starts (the
        // binary alone may resolve other features than the workspace).
        cargo(tree, &["build", "--bin", "cairn"])?;
        cargo(tree, &["build", "--workspace", "--all-targets"])?;
        let mut binary = Vec::new();
        let mut tests = Vec::new();
        for i in 0..runs {
            binary.push(after_change(
                tree,
                &planner,
                i,
                &["build", "--bin", "cairn"],
            )?);
            tests.push(after_change(
                tree,
                &planner,
                i,
                &["build", "--workspace", "--all-targets"],
            )?);
        }
        cargo(tree, &["build", "--workspace", "--all-targets"])?;
        results.push(Timings {
            tree: tree.clone(),
            binary: median(binary),
            tests: median(tests),
        });
    }
    let mut out = String::new();
    writeln!(out, "### Rebuild after a one-line change in the planner\n")?;
    writeln!(out, "{}\n", crate::bench::machine())?;
    writeln!(
        out,
        "| tree | `cargo build --bin cairn` | `cargo build --workspace --all-targets` |"
    )?;
    writeln!(out, "|---|---|---|")?;
    for r in &results {
        writeln!(
            out,
            "| {} | {:.1} s | {:.1} s |",
            r.tree.display(),
            r.binary.as_secs_f64(),
            r.tests.as_secs_f64()
        )?;
    }
    if let [new, old] = &results[..] {
        writeln!(
            out,
            "\nRatio (this tree / other): binary {:.2}, all targets {:.2} (median of {runs}).",
            new.binary.as_secs_f64() / old.binary.as_secs_f64(),
            new.tests.as_secs_f64() / old.tests.as_secs_f64()
        )?;
    }
    print!("{out}");
    Ok(())
}

/// Appends a function to the planner, rebuilds, and restores the file.
fn after_change(tree: &Path, planner: &Path, i: usize, args: &[&str]) -> Result<Duration> {
    let original = std::fs::read_to_string(planner)?;
    let changed = format!(
        "{original}\n/// A change for the rebuild benchmark.\npub fn rebuild_probe_{i}() -> usize {{ {i} }}\n"
    );
    std::fs::write(planner, changed)?;
    let started = Instant::now();
    let built = cargo(tree, args);
    let took = started.elapsed();
    std::fs::write(planner, original)?;
    built?;
    Ok(took)
}

fn cargo(tree: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .arg("--quiet")
        .current_dir(tree)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed in {}", args.join(" "), tree.display());
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
