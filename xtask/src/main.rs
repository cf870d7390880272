//! Project automation: `cargo xtask <task>`.
//!
//! - `schemas [--check]`: regenerate the JSON Schemas and the OpenAPI
//!   document (`openapi.json`) under `specs/`, or fail when they are stale
//!   (CI);
//! - `bench validate`: time `cairn validate` and `cairn plan` over a generated
//!   repository of 10,000 specs;
//! - `bench gateway`: the model gateway under load against a bare axum
//!   server and MLServer, and the inference event writer alone;
//! - `bench monitoring`: feedback ingestion, the accuracy aggregate and the
//!   model page's data over 1,000,000 inference events;
//! - `bench rollout`: what a canary's traffic split adds to a prediction;
//! - `bench plugins`: the WebAssembly plugin host beside native Rust;
//! - `bench build`: the rebuild after a one-line change in the planner;
//! - `bench tracking`: MLflow's tracking protocol, Cairn against MLflow's
//!   own server, through the real `mlflow` client;
//! - `plugins [NAME...]`: build the WebAssembly plugins under `plugins/` into
//!   components in `plugins/dist/`;
//! - `plugin new NAME --world WORLD`: scaffold a plugin crate;
//! - `tidy`: the house rules the compiler does not check (crate layers,
//!   pure crates, SQL in the store only, typed responses, long files).

mod auth;
mod bench;
mod bench_plugins;
mod build_time;
mod envs;
mod gateway;
mod monitoring;
mod plugins;
mod reconcile;
mod rollout;
mod tidy;
mod tracking;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Regenerate the JSON Schemas in specs/ from the Rust spec types, and
    /// specs/openapi.json from the server's routes.
    Schemas {
        /// Fail if the files in specs/ differ from the generated ones.
        #[arg(long)]
        check: bool,
    },
    /// Run a benchmark and print its results as Markdown.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// Build the WebAssembly plugins into components in plugins/dist/.
    Plugins {
        /// Accepted for clarity: components are always release builds.
        #[arg(long)]
        release: bool,
        /// Build another plugin workspace or crate (into its own dist/).
        #[arg(long, value_name = "PATH")]
        manifest_path: Option<PathBuf>,
        /// Plugins to build (package names); all when none are given.
        names: Vec<String>,
    },
    /// Check the house rules: crate layers, pure crates, SQL only in the
    /// store, typed responses in the server, long files.
    Tidy,
    /// Work on plugins.
    Plugin {
        #[command(subcommand)]
        action: PluginAction,
    },
}

#[derive(Subcommand)]
enum PluginAction {
    /// Scaffold a plugin crate: in plugins/NAME, or in --path.
    New {
        /// The plugin's name (a DNS-1123 label, e.g. `drift-mine`).
        name: String,
        /// The world it implements.
        #[arg(long, value_enum)]
        world: plugins::World,
        /// Where to create the crate (default: plugins/NAME, in the plugins workspace).
        #[arg(long)]
        path: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Schemas { check } => schemas(check),
        Task::Bench { which } => bench::run(which),
        Task::Tidy => tidy::run(),
        Task::Plugins {
            release: _,
            manifest_path,
            names,
        } => plugins::build(manifest_path.as_deref(), &names),
        Task::Plugin {
            action: PluginAction::New { name, world, path },
        } => plugins::new_plugin(&name, world, path.as_deref()).map(|_| ()),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn schemas(check: bool) -> Result<()> {
    let dir = root().join("specs");
    std::fs::create_dir_all(&dir)?;
    let mut stale = Vec::new();
    let generated = cairn_plan::schemas();
    let mut files = Vec::new();
    for (name, schema) in &generated {
        files.push((name.clone(), serde_json::to_string_pretty(schema)? + "\n"));
    }
    // The HTTP API, from the server's handlers and the contract's types.
    files.push((
        "openapi.json".to_string(),
        cairn_server::openapi::openapi_json(),
    ));
    for (name, text) in &files {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current != *text {
            if check {
                stale.push(name.clone());
            } else {
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote specs/{name}");
            }
        }
    }
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".schema.json") && !generated.iter().any(|(n, _)| *n == name) {
            if check {
                stale.push(format!("{name} (no longer generated)"));
            } else {
                std::fs::remove_file(dir.join(&name))?;
                println!("removed specs/{name}");
            }
        }
    }
    if !stale.is_empty() {
        bail!(
            "specs/ is stale: {}\nrun `cargo xtask schemas` and commit the result",
            stale.join(", ")
        );
    }
    if check {
        println!(
            "specs/ is up to date ({} schemas and openapi.json)",
            generated.len()
        );
    }
    Ok(())
}
