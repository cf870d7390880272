//! Benchmark: commit → reconciled latency of `cairn up`, through
//! file-system events (local repository) and push webhooks (remote
//! repository), and the controller's memory with 1,000 specs loaded.

use crate::bench::{commit, machine};
use anyhow::{Context, Result, bail};
use cairn_test_support::up::{Up, free_port};
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// 1,000 specs in 100 files: per file a dataset, a plugin, four manual jobs,
/// three models and an application-free mix, so that nothing runs.
fn write_specs(dir: &Path, generation: usize) -> Result<()> {
    std::fs::create_dir_all(dir.join("specs"))?;
    std::fs::write(
        dir.join("specs/project.yaml"),
        "apiVersion: cairn/v1\nkind: Project\nmetadata: {name: bench}\nspec: {}\n",
    )?;
    for i in 0..100 {
        let mut text = String::new();
        for j in 0..10 {
            let n = i * 10 + j;
            let kind = j % 5;
            let doc = match kind {
                0 => format!(
                    "kind: Dataset\nmetadata: {{name: d-{n}}}\nspec: {{source: warehouse.t{n}}}\n"
                ),
                1 => format!(
                    "kind: Plugin\nmetadata: {{name: p-{n}}}\nspec: {{builtin: drift-psi, world: drift-detector}}\n"
                ),
                2 | 3 => format!(
                    "kind: Job\nmetadata: {{name: j-{n}}}\nspec: {{command: [true], trigger: {{manual: true}}, params: {{g: {}}}}}\n",
                    if n == 2 { generation } else { 0 }
                ),
                _ => format!(
                    "kind: Model\nmetadata: {{name: m-{n}}}\nspec: {{runtime: process, function: \"p.py:f\"}}\n"
                ),
            };
            let _ = write!(text, "---\napiVersion: cairn/v1\n{doc}");
        }
        std::fs::write(dir.join(format!("specs/s{i}.yaml")), text)?;
    }
    Ok(())
}

/// Starts `cairn up` on `repo` (a path or a URL) with warnings logged only,
/// and waits until it answers.
pub(crate) fn start(cairn: &Path, repo: &str, data: &Path, extra: &[&str]) -> Result<Up> {
    Ok(Up::launch(
        cairn,
        Path::new(repo),
        data,
        free_port(),
        extra,
        &[("CAIRN_LOG", "warn")],
    )?)
}

pub(crate) fn get(server: &Up, path: &str) -> Result<Value> {
    let text = ureq::get(&format!("http://127.0.0.1:{}{path}", server.port))
        .call()?
        .body_mut()
        .read_to_string()?;
    Ok(serde_json::from_str(&text)?)
}

/// Waits for `commit` to be synced; returns the latency from `t0` (a
/// wall-clock time) to the server's recorded end of the sync.
pub(crate) fn latency(
    server: &Up,
    commit: &str,
    t0: chrono::DateTime<chrono::Utc>,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let s = get(server, "/api/v1/sync")?;
        if s["lastSync"]["commit"] == commit {
            let finished = chrono::DateTime::parse_from_rfc3339(
                s["lastSync"]["finishedAt"].as_str().context("finishedAt")?,
            )?;
            return Ok((finished.with_timezone(&chrono::Utc) - t0)
                .to_std()
                .unwrap_or_default());
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("commit {commit} was not synced");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn head(repo: &git2::Repository) -> Result<String> {
    Ok(repo.head()?.peel_to_commit()?.id().to_string())
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summarize(label: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "| {label} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
        v.len(),
        percentile(&v, 0.5).as_secs_f64() * 1000.0,
        percentile(&v, 0.95).as_secs_f64() * 1000.0,
        v.last().expect("samples").as_secs_f64() * 1000.0
    )
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub fn run(cairn: &Path, commits: usize) -> Result<()> {
    let tmp = tempfile::tempdir()?;

    // Local repository: file-system events.
    let local = tmp.path().join("local");
    let repo = git2::Repository::init(&local)?;
    write_specs(&local, 0)?;
    commit(&repo, "specs")?;
    let server = start(
        cairn,
        local.to_str().context("path")?,
        &tmp.path().join("data-local"),
        &[],
    )?;
    latency(&server, &head(&repo)?, chrono::Utc::now())?;
    let (rss, hwm) = rss_kib(server.pid().context("cairn up is running")?);
    let mut notify = Vec::new();
    for g in 1..=commits {
        write_specs(&local, g)?;
        let t0 = chrono::Utc::now();
        commit(&repo, &format!("change {g}"))?;
        notify.push(latency(&server, &head(&repo)?, t0)?);
    }
    drop(server);

    // Remote repository: push webhooks (polling set to an hour).
    let upstream = tmp.path().join("upstream");
    let up_repo = git2::Repository::init(&upstream)?;
    write_specs(&upstream, 0)?;
    commit(&up_repo, "specs")?;
    let url = format!("file://{}", upstream.display());
    let secret = "bench-secret";
    let server = start(
        cairn,
        &url,
        &tmp.path().join("data-remote"),
        &[
            "--poll-interval",
            "1h",
            "--webhook-secret",
            secret,
            "--rev",
            "master",
        ],
    )?;
    latency(&server, &head(&up_repo)?, chrono::Utc::now())?;
    let mut webhook = Vec::new();
    for g in 1..=commits {
        write_specs(&upstream, g)?;
        let t0 = chrono::Utc::now();
        commit(&up_repo, &format!("change {g}"))?;
        let id = head(&up_repo)?;
        let body = serde_json::json!({"ref": "refs/heads/master", "after": id, "repository": {"clone_url": url}}).to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())?;
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let status = ureq::post(&format!("http://127.0.0.1:{}/hooks/git", server.port))
            .header("X-GitHub-Event", "push")
            .header("X-Hub-Signature-256", &signature)
            .header("Content-Type", "application/json")
            .send(&body)?
            .status();
        if status.as_u16() != 202 {
            bail!("webhook answered {status}");
        }
        webhook.push(latency(&server, &id, t0)?);
    }
    drop(server);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Commit → reconciled latency, 1,001 specs in 101 files\n"
    );
    let _ = writeln!(out, "{}\n", machine());
    let _ = writeln!(out, "| path | commits | median | p95 | max |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "{}",
        summarize("local repository, file-system events", notify)
    );
    let _ = writeln!(
        out,
        "{}",
        summarize("remote repository, push webhook (incl. fetch)", webhook)
    );
    let _ = writeln!(
        out,
        "\nController memory with 1,001 specs loaded and synced: {:.1} MiB resident (peak {:.1} MiB).",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    print!("{out}");
    Ok(())
}
