//! Benchmarks. Each prints Markdown ready for docs/benchmarks.md, with the
//! machine and date.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum Which {
    /// Commit → reconciled latency of `cairn up` (file-system events and
    /// webhooks) and the controller's memory with 1,000 specs.
    Reconcile {
        /// Commits measured per path.
        #[arg(long, default_value_t = 50)]
        commits: usize,
    },
    /// Job start overhead with a cached environment, and cold builds of the
    /// quickstart environment with uv and with pip.
    Envs {
        /// Runs per job for the start overhead.
        #[arg(long, default_value_t = 30)]
        runs: usize,
    },
    /// The model gateway under load (`wrk`): a bare axum ceiling, Cairn's
    /// gateway and MLServer on the quickstart model, and the event writer.
    Gateway {
        /// `wrk` threads.
        #[arg(long, default_value_t = 2)]
        threads: u32,
        /// Open connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Seconds measured per target.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of warm-up per target.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Skip MLServer (no pip install).
        #[arg(long)]
        no_mlserver: bool,
    },
    /// What the authentication layer adds to a request, on the predict
    /// path and on the API, beside the same routes without it.
    Auth {
        /// Requests timed per row.
        #[arg(long, default_value_t = 200_000)]
        requests: usize,
    },
    /// What a canary's traffic split adds to a prediction.
    Rollout {
        /// Seconds per `wrk` round.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Rounds of each (the median is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Measure this build and `target/debug/cairn` as they are instead
        /// of rebuilding in release (the report names the profile).
        #[arg(long)]
        as_built: bool,
        /// Only the in-process measurement (no `cairn up`, no `wrk`).
        #[arg(long)]
        in_process: bool,
    },
    /// Model monitoring over 1,000,000 inference events: feedback
    /// ingestion, the hourly accuracy aggregate and the model page's data.
    Monitoring {
        /// Inference events (and labels).
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Labels per feedback call.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Runs per read (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The plugin host: a trivial call, instantiation, and drift-psi and
    /// drift-ks over a large window, each beside native Rust.
    Plugins {
        /// Trivial calls timed.
        #[arg(long, default_value_t = 100_000)]
        calls: usize,
        /// Rows of the drift reference and window.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Features of the drift reference and window.
        #[arg(long, default_value_t = 20)]
        features: usize,
        /// Runs per drift measurement (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Measure this build as it is instead of rebuilding in release
        /// (the report names the profile).
        #[arg(long)]
        as_built: bool,
    },
    /// Rebuild time after a one-line change in the planner, here and in
    /// another checkout (an older layout) for comparison.
    Build {
        /// Another checkout of the project, built once.
        #[arg(long)]
        other: Option<std::path::PathBuf>,
        /// Runs per tree (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// MLflow's tracking protocol through the real `mlflow` client: Cairn
    /// against `mlflow server` (SQLite): `log_batch` throughput, single
    /// `log_metric` calls, `search_runs` over 10,000 runs.
    Tracking {
        /// `log_batch` calls timed.
        #[arg(long, default_value_t = 50)]
        batches: usize,
        /// Metrics per `log_batch` call (MLflow accepts at most 1,000).
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// `log_metric` calls timed.
        #[arg(long, default_value_t = 200)]
        singles: usize,
        /// Runs searched over.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Searches timed (the median is reported).
        #[arg(long, default_value_t = 10)]
        searches: usize,
        /// Measure this build's `cairn` as it is instead of rebuilding in
        /// release (the report names the profile).
        #[arg(long)]
        as_built: bool,
    },
    /// `cairn validate` and `cairn plan` over a generated repository.
    Validate {
        /// Number of files (10 specs each).
        #[arg(long, default_value_t = 1000)]
        files: usize,
        /// Runs per command (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub fn run(which: Which) -> Result<()> {
    match which {
        Which::Auth { requests } => crate::auth::run(requests),
        Which::Rollout {
            seconds,
            rounds,
            as_built,
            in_process,
        } => {
            if cfg!(debug_assertions) && !as_built {
                return rerun_in_release();
            }
            if in_process {
                return crate::rollout::in_process();
            }
            let cairn = if cfg!(debug_assertions) {
                crate::root().join("target/debug/cairn")
            } else {
                release_binary()?
            };
            crate::rollout::run(&cairn, seconds, rounds)
        }
        Which::Validate { files, runs } => validate(files, runs),
        Which::Tracking {
            batches,
            batch_size,
            singles,
            runs,
            searches,
            as_built,
        } => {
            if cfg!(debug_assertions) && !as_built {
                return rerun_in_release();
            }
            let profile = if cfg!(debug_assertions) {
                "dev profile (dependencies at opt-level 1, the workspace's crates at 0)"
            } else {
                release_binary()?;
                "release build"
            };
            crate::tracking::run(
                &cairn_test_support::cairn_binary(),
                profile,
                crate::tracking::Sizes {
                    batches,
                    batch_size,
                    singles,
                    runs,
                    searches,
                },
            )
        }
        Which::Build { other, runs } => crate::build_time::run(other.as_deref(), runs),
        Which::Plugins {
            calls,
            rows,
            features,
            runs,
            as_built,
        } => {
            if cfg!(debug_assertions) && !as_built {
                return rerun_in_release();
            }
            crate::bench_plugins::run(crate::bench_plugins::Sizes {
                calls,
                rows,
                features,
                runs,
            })
        }
        Which::Reconcile { commits } => crate::reconcile::run(&release_binary()?, commits),
        Which::Envs { runs } => crate::envs::run(&release_binary()?, runs),
        Which::Monitoring {
            events,
            batch,
            runs,
        } => {
            if cfg!(debug_assertions) {
                return rerun_in_release();
            }
            crate::monitoring::run(&release_binary()?, events, batch, runs)
        }
        Which::Gateway {
            threads,
            connections,
            seconds,
            warmup,
            no_mlserver,
        } => {
            // The ceiling server and the event writer run in this process:
            // measure them optimized.
            if cfg!(debug_assertions) {
                return rerun_in_release();
            }
            crate::gateway::run(
                &release_binary()?,
                crate::gateway::Load {
                    threads,
                    connections,
                    seconds,
                    warmup,
                },
                !no_mlserver,
            )
        }
    }
}

/// Builds the release binary and returns its path.
pub(crate) fn release_binary() -> Result<std::path::PathBuf> {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "cairn",
            "--bin",
            "cairn",
        ])
        .current_dir(crate::root())
        .status()?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    Ok(crate::root().join("target/release/cairn"))
}

/// Runs this same xtask command with a release build of xtask.
fn rerun_in_release() -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--package", "xtask"])
        .current_dir(crate::root())
        .status()?;
    if !status.success() {
        bail!("cargo build --release --package xtask failed");
    }
    let status = Command::new(crate::root().join("target/release/xtask"))
        .args(std::env::args_os().skip(1))
        .status()?;
    if !status.success() {
        bail!("the release xtask failed ({status})");
    }
    Ok(())
}

/// Wall time and peak resident memory of one run.
struct Measure {
    wall: Duration,
    max_rss_kib: i64,
    exit: i32,
}

fn measure(cmd: &mut Command) -> Result<Measure> {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `usage` is a valid out-pointer.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if pid < 0 {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok(Measure {
        wall: start.elapsed(),
        max_rss_kib: usage.ru_maxrss,
        exit: libc::WEXITSTATUS(status),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Writes a spec repository of `files` files with 10 specs each, commits it,
/// then commits a change (edits, removals, additions) for `cairn plan`.
fn generate(dir: &Path, files: usize) -> Result<(usize, usize)> {
    let repo = git2::Repository::init(dir)?;
    std::fs::create_dir_all(dir.join("jobs"))?;
    std::fs::write(dir.join("jobs/run.py"), "print('hello')\n")?;
    std::fs::create_dir_all(dir.join("apps/web"))?;
    std::fs::write(dir.join("apps/web/app.py"), "print('app')\n")?;
    let teams = 10;
    let mut projects = String::new();
    for t in 0..teams {
        let _ = write!(
            projects,
            "apiVersion: cairn/v1\nkind: Project\nmetadata:\n  name: team-{t}\nspec:\n  owners: [team-{t}@example.com]\n  defaultPool: cpu\n---\n"
        );
    }
    projects.push_str(
        "apiVersion: cairn/v1\nkind: ComputePool\nmetadata:\n  name: cpu\nspec:\n  local: {}\n",
    );
    std::fs::write(dir.join("projects.yaml"), projects)?;
    for i in 0..files {
        write_service(dir, i, teams, "1.0")?;
    }
    commit(&repo, "generated specs")?;
    // The change: 10 % of files edited, 1 % removed, 1 % added.
    let mut changed = 0;
    for i in (0..files).step_by(10) {
        write_service(dir, i, teams, "2.0")?;
        changed += 1;
    }
    for i in (5..files).step_by(100) {
        std::fs::remove_file(service_path(dir, i, teams))?;
    }
    for i in files..files + files / 100 {
        write_service(dir, i, teams, "1.0")?;
    }
    commit(&repo, "change")?;
    Ok((files * 10 + teams + 1, changed))
}

fn service_path(dir: &Path, i: usize, teams: usize) -> std::path::PathBuf {
    dir.join(format!("team-{}/svc-{i}.yaml", i % teams))
}

fn write_service(dir: &Path, i: usize, teams: usize, c: &str) -> Result<()> {
    let t = i % teams;
    let path = service_path(dir, i, teams);
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    let text = format!(
        r#"# Service {i}
apiVersion: cairn/v1
kind: Dataset
metadata: {{name: data-{i}, project: team-{t}}}
spec: {{source: warehouse.team{t}.table{i}, format: table, owner: team-{t}@example.com}}
---
apiVersion: cairn/v1
kind: Job
metadata: {{name: prep-{i}, project: team-{t}}}
spec:
  command: [python3, run.py, prep]
  workdir: jobs
  resources: {{cpu: 500m, memory: 512Mi}}
  outputs: [{{name: features, path: features.csv}}]
  lineage: {{reads: [data-{i}]}}
---
apiVersion: cairn/v1
kind: Job
metadata: {{name: train-{i}, project: team-{t}}}
spec:
  command: [python3, run.py, train]
  workdir: jobs
  dependsOn: [prep-{i}]
  params: {{C: {c}}}
  retries: 2
  timeout: 30m
  schedule: {{cron: "0 3 * * *", timezone: Europe/Paris}}
  outputs: [{{name: model, path: model.onnx}}]
---
apiVersion: cairn/v1
kind: Job
metadata: {{name: eval-{i}, project: team-{t}}}
spec:
  command: python3 run.py eval
  workdir: jobs
  dependsOn: [train-{i}]
---
apiVersion: cairn/v1
kind: Job
metadata: {{name: report-{i}, project: team-{t}}}
spec:
  command: [python3, run.py, report]
  workdir: jobs
  dependsOn: [eval-{i}, prep-{i}]
---
apiVersion: cairn/v1
kind: Plugin
metadata: {{name: psi-{i}, project: team-{t}}}
spec: {{builtin: drift-psi, world: drift-detector, config: {{bins: 10}}}}
---
apiVersion: cairn/v1
kind: Model
metadata: {{name: model-{i}, project: team-{t}, labels: {{service: svc-{i}}}}}
spec:
  runtime: onnx
  from: {{job: train-{i}, output: model}}
  replicas: 2
  resources: {{cpu: 250m, memory: 256Mi}}
  monitoring:
    drift: {{plugin: psi-{i}, reference: jobs/run.py, window: 1h, threshold: 0.2, onDrift: {{retrain: train-{i}}}}}
---
apiVersion: cairn/v1
kind: Model
metadata: {{name: shadow-{i}, project: team-{t}}}
spec:
  runtime: process
  function: predict.py:predict
  workdir: jobs
---
apiVersion: cairn/v1
kind: Model
metadata: {{name: canary-{i}, project: team-{t}}}
spec:
  runtime: onnx
  from: {{job: train-{i}, output: model}}
  rollout: {{strategy: canary, steps: [10, 50, 100], interval: 5m}}
---
apiVersion: cairn/v1
kind: Application
metadata: {{name: app-{i}, project: team-{t}}}
spec: {{framework: streamlit, path: apps/web, resources: {{cpu: 250m, memory: 256Mi}}}}
"#
    );
    std::fs::write(path, text)?;
    Ok(())
}

pub(crate) fn commit(repo: &git2::Repository, message: &str) -> Result<()> {
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.update_all(["*"], None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("bench", "bench@example.com")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    Ok(())
}

fn validate(files: usize, runs: usize) -> Result<()> {
    let cairn = release_binary()?;
    let dir = tempfile::tempdir()?;
    let (specs, changed) = generate(dir.path(), files)?;
    let repo = dir.path().to_str().context("utf-8 temp path")?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "### `cairn validate` and `cairn plan`: {specs} specs in {} files\n",
        files + 1
    );
    let _ = writeln!(out, "{}\n", machine());
    let _ = writeln!(
        out,
        "| command | median wall time ({runs} runs) | peak memory |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let from = "HEAD~1".to_string();
    let cases: [(&str, Vec<&str>); 2] = [
        ("cairn validate", vec!["validate", repo]),
        (
            "cairn plan --from HEAD~1 --to HEAD",
            vec!["plan", repo, "--from", &from, "--to", "HEAD"],
        ),
    ];
    for (label, args) in cases {
        let mut walls = Vec::new();
        let mut rss = 0;
        for _ in 0..runs {
            let m = measure(Command::new(&cairn).args(&args))?;
            if m.exit != 0 {
                bail!("{label} exited {}", m.exit);
            }
            walls.push(m.wall);
            rss = rss.max(m.max_rss_kib);
        }
        let _ = writeln!(
            out,
            "| `{label}` | {:.0} ms | {:.1} MiB |",
            median(walls).as_secs_f64() * 1000.0,
            rss as f64 / 1024.0
        );
    }
    let _ = writeln!(
        out,
        "\nThe change planned: {changed} files edited (a job parameter), {} removed, {} added.",
        files.div_ceil(100),
        files / 100
    );
    print!("{out}");
    Ok(())
}

/// The machine and date, for benchmark records.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    let date = Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("Machine: {cpu}, {cores} cores, {mem} GiB; {date}.")
}
