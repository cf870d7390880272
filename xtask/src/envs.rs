//! Benchmark: what environments cost. Job start overhead with a cached
//! environment against a bare process start, and cold builds of the
//! quickstart's environment with uv and with pip.

use crate::bench::{commit, machine};
use crate::reconcile::{get, head, latency, percentile, start};
use anyhow::{Context, Result, bail};
use cairn_runtime_embedded::envs::EnvManager;
use cairn_spec::EnvironmentSpec;
use cairn_test_support::up::Up;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

const SPECS: &str = "apiVersion: cairn/v1
kind: Project
metadata: {name: bench}
spec: {}
---
apiVersion: cairn/v1
kind: Environment
metadata: {name: cached}
spec: {python: \">=3.8\", env: {FROM_ENV: \"1\"}}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: bare}
spec: {command: [\"true\"], trigger: {manual: true}}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: with-env}
spec: {command: [\"true\"], environment: cached, trigger: {manual: true}}
";

/// Server-side duration of one run: created → finished.
fn run_once(server: &Up, job: &str) -> Result<Duration> {
    let text = ureq::post(&format!(
        "http://127.0.0.1:{}/api/v1/jobs/{job}/runs",
        server.port
    ))
    .send_json(serde_json::json!({}))?
    .body_mut()
    .read_to_string()?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let number = v["run"]["number"].as_i64().context("run number")?;
    let start = Instant::now();
    loop {
        let r = get(server, &format!("/api/v1/jobs/{job}/runs/{number}"))?;
        match r["state"].as_str() {
            Some("succeeded") => {
                let t = |k: &str| {
                    chrono::DateTime::parse_from_rfc3339(r[k].as_str().unwrap_or_default())
                };
                let (c, f) = (t("createdAt")?, t("finishedAt")?);
                return Ok((f - c).to_std().unwrap_or_default());
            }
            Some("failed" | "skipped") => bail!("{job} run failed: {r}"),
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(120) {
            bail!("{job} run did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Builds the quickstart environment from scratch with `installer`, with
/// empty package caches; returns the build time.
async fn cold_build(root: &Path, installer: &'static str) -> Result<Duration> {
    let quickstart = Path::new(cairn_test_support::QUICKSTART);
    let spec = EnvironmentSpec {
        python: Some(">=3.10".into()),
        requirements: Some(
            "jobs/requirements.txt"
                .parse()
                .map_err(anyhow::Error::msg)?,
        ),
        ..Default::default()
    };
    let manager = EnvManager::with_installer(&root.join(installer), Some(installer));
    let started = Instant::now();
    manager
        .ensure(&spec, quickstart, &|line| eprintln!("  {line}"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(started.elapsed())
}

pub fn run(cairn: &Path, runs: usize) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let repo_dir = tmp.path().join("repo");
    let repo = git2::Repository::init(&repo_dir)?;
    std::fs::write(repo_dir.join("specs.yaml"), SPECS)?;
    commit(&repo, "specs")?;
    let server = start(
        cairn,
        repo_dir.to_str().context("path")?,
        &tmp.path().join("data"),
        &[],
    )?;
    latency(&server, &head(&repo)?, chrono::Utc::now())?;
    // Warm up: builds the (empty) environment once.
    run_once(&server, "with-env")?;
    run_once(&server, "bare")?;
    let mut bare = Vec::new();
    let mut with_env = Vec::new();
    for _ in 0..runs {
        bare.push(run_once(&server, "bare")?);
        with_env.push(run_once(&server, "with-env")?);
    }
    drop(server);
    bare.sort();
    with_env.sort();
    let (b50, e50) = (percentile(&bare, 0.5), percentile(&with_env, 0.5));

    // Cold builds: uv from PyPI into its own virtual environment.
    let tools = tmp.path().join("tools");
    let ok = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tools)
        .status()?
        .success()
        && std::process::Command::new(tools.join("bin/pip"))
            .args(["install", "--quiet", "uv"])
            .status()?
            .success();
    if !ok {
        bail!("could not install uv");
    }
    let uv_version = std::process::Command::new(tools.join("bin/uv"))
        .arg("--version")
        .output()?;
    let path = format!(
        "{}:{}",
        tools.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // SAFETY: set before the async runtime starts; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("PATH", &path);
        std::env::set_var("UV_CACHE_DIR", tmp.path().join("uv-cache"));
        std::env::set_var("PIP_NO_CACHE_DIR", "1");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    eprintln!("cold build with uv ...");
    let uv = runtime.block_on(cold_build(tmp.path(), "uv"))?;
    eprintln!("cold build with pip ...");
    let pip = runtime.block_on(cold_build(tmp.path(), "pip"))?;

    let mut out = String::new();
    let _ = writeln!(out, "### Environments\n");
    let _ = writeln!(out, "{}\n", machine());
    let _ = writeln!(
        out,
        "Job start to finish of `true`, created → finished as recorded by the server, {runs} runs each:\n"
    );
    let _ = writeln!(out, "| job | median | p95 |");
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| bare process | {:.1} ms | {:.1} ms |",
        ms(b50),
        ms(percentile(&bare, 0.95))
    );
    let _ = writeln!(
        out,
        "| with a cached environment | {:.1} ms | {:.1} ms |",
        ms(e50),
        ms(percentile(&with_env, 0.95))
    );
    let _ = writeln!(
        out,
        "\nOverhead of a cached environment (median): {:.1} ms (goal < 50 ms).\n",
        ms(e50.saturating_sub(b50))
    );
    let _ = writeln!(
        out,
        "Cold build of the quickstart environment (scikit-learn, skl2onnx, onnx; empty package caches, downloads from PyPI):\n"
    );
    let _ = writeln!(out, "| installer | time |");
    let _ = writeln!(out, "|---|---|");
    let _ = writeln!(
        out,
        "| {} | {:.1} s |",
        String::from_utf8_lossy(&uv_version.stdout).trim(),
        uv.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| pip (python -m venv + pip) | {:.1} s |",
        pip.as_secs_f64()
    );
    print!("{out}");
    Ok(())
}
