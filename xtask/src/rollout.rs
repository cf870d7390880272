//! Benchmark: what a canary's traffic split adds to a prediction.
//!
//! 1. In process: the gateway's choice of version for a request
//!    ([`Endpoint::route`]) without a canary and with one at 50 %, timed
//!    per call.
//! 2. Over HTTP: the release `cairn up` serving the quickstart classifier
//!    twice — `plain` with one version, `classifier` with a canary (the
//!    same model retrained, another digest) taking 50 % — measured with
//!    `wrk` at one connection (latency, not throughput), alternating
//!    between the two so that the machine's drift touches both alike.

use crate::bench::{commit, machine};
use crate::reconcile::get;
use anyhow::{Result, bail};
use cairn_gateway::service::{Backend, Gateway, Version};
use cairn_plan::loader::ResourceKey;
use cairn_spec::{Kind, ModelSpec};
use cairn_store::events::{EventLog, EventLogConfig};
use cairn_store::keys::KeyStore;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn version(number: i64) -> Version {
    Version {
        number,
        commit: "0".repeat(40),
        sha256: format!("{number:064}"),
        backend: Backend::Process {
            upstream: Arc::new(|| None),
        },
    }
}

/// Per-call nanoseconds of `f`: (median, p99) over `n` timed calls, less
/// the cost of reading the clock twice.
pub(crate) fn per_call(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let clock = {
        let mut v: Vec<u64> = (0..n)
            .map(|_| {
                let t = Instant::now();
                t.elapsed().as_nanos() as u64
            })
            .collect();
        v.sort_unstable();
        v[n / 2] as f64
    };
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    (
        (v[n / 2] as f64 - clock).max(0.0),
        (v[n * 99 / 100] as f64 - clock).max(0.0),
    )
}

const SPECS: &str = "apiVersion: cairn/v1
kind: Model
metadata:
  name: classifier
spec:
  runtime: onnx
  artifact: models/classifier.onnx
  task: classification
  rollout:
    strategy: canary
    steps: [50, 100]
    interval: 1h
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: plain
spec:
  runtime: onnx
  artifact: models/plain.onnx
  task: classification
";

fn wrk_p50_us(script: &Path, url: &str, seconds: u64) -> Result<(u64, u64)> {
    let out = Command::new("wrk")
        .args(["-t1", "-c1", &format!("-d{seconds}s"), "-s"])
        .arg(script)
        .arg(url)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        bail!("wrk printed no result:\n{stdout}");
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    Ok((v[0], v[1]))
}

/// The in-process measurement alone.
pub fn in_process() -> Result<()> {
    let (plain, split, share) = route_cost()?;
    println!("## Canary traffic split (in process)\n");
    println!("{}", machine());
    println!(
        "`cargo xtask bench rollout --in-process` ({} build).\n",
        if cfg!(debug_assertions) {
            "dev-profile"
        } else {
            "release"
        }
    );
    println!(
        "Version choice per request: one version p50 {:.0} ns · p99 {:.0} ns; canary at 50 % p50 {:.0} ns · p99 {:.0} ns; added p50 {:.0} ns (goal < 20 µs {}). Share routed to the canary: {:.2} %.",
        plain.0,
        plain.1,
        split.0,
        split.1,
        split.0 - plain.0,
        if split.0 - plain.0 < 20_000.0 {
            "✓"
        } else {
            "✗"
        },
        share * 100.0
    );
    Ok(())
}

type Cost = (f64, f64);

/// Timed calls per measurement.
const N: usize = 2_000_000;

/// Per-call cost of [`Endpoint::route`] without and with a canary at 50 %,
/// and the share of requests the canary got.
fn route_cost() -> Result<(Cost, Cost, f64)> {
    let dir = tempfile::tempdir()?;
    let gateway = Gateway::new(
        EventLog::open(&dir.path().join("events.db"), EventLogConfig::default())?,
        KeyStore::open(&dir.path().join("keys.db"))?,
    );
    let key = ResourceKey {
        kind: Kind::Model,
        project: None,
        name: "classifier".parse().map_err(anyhow::Error::msg)?,
    };
    let spec: ModelSpec = serde_json::from_value(serde_json::json!({"runtime": "onnx"}))?;
    gateway.install(&key, &spec, version(1));
    let endpoint = gateway.endpoint(&key).expect("installed");

    let (plain_p50, plain_p99) = per_call(N, || {
        std::hint::black_box(endpoint.route());
    });
    gateway.start_canary(&key, &spec, version(2), 50);
    let endpoint = gateway.endpoint(&key).expect("installed");
    let mut to_canary = 0u64;
    let (split_p50, split_p99) = per_call(N, || {
        if endpoint.route().number == 2 {
            to_canary += 1;
        }
    });
    let share = to_canary as f64 / N as f64;
    Ok(((plain_p50, plain_p99), (split_p50, split_p99), share))
}

pub fn run(cairn: &Path, seconds: u64, rounds: usize) -> Result<()> {
    let ((plain_p50, plain_p99), (split_p50, split_p99), share) = route_cost()?;

    // 2. Over HTTP.
    let tmp = tempfile::tempdir()?;
    let repo_dir = tmp.path().join("repo");
    let repo = git2::Repository::init(&repo_dir)?;
    std::fs::create_dir_all(repo_dir.join("models"))?;
    std::fs::create_dir_all(repo_dir.join("specs"))?;
    std::fs::copy(
        cairn_test_support::CLASSIFIER,
        repo_dir.join("models/classifier.onnx"),
    )?;
    std::fs::copy(
        cairn_test_support::CLASSIFIER,
        repo_dir.join("models/plain.onnx"),
    )?;
    std::fs::write(repo_dir.join("specs/model.yaml"), SPECS)?;
    commit(&repo, "classifier")?;
    let server = crate::gateway::start_cairn(cairn, &repo_dir, &tmp.path().join("data"))?;
    let url = format!("http://127.0.0.1:{}/models/classifier/predict", server.port);
    let body = std::fs::read_to_string(cairn_test_support::SAMPLE_REQUEST)?;
    let script = tmp.path().join("predict.lua");
    std::fs::write(
        &script,
        format!(
            r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d\n", math.floor(latency:percentile(50)), summary.requests))
end
"#
        ),
    )?;
    // The canary: the same model retrained (another digest).
    std::fs::copy(
        cairn_test_support::RETRAINED_CLASSIFIER,
        repo_dir.join("models/classifier.onnx"),
    )?;
    commit(&repo, "retrained")?;
    let start = Instant::now();
    loop {
        let v = get(&server, "/api/v1/models/classifier/versions")?;
        if v["canary"]["weight"] == 50 {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("no canary after 30 s: {v}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let plain_url = url.replace("/classifier/", "/plain/");
    wrk_p50_us(&script, &plain_url, 2)?;
    wrk_p50_us(&script, &url, 2)?;
    let mut without = Vec::new();
    let mut with = Vec::new();
    for _ in 0..rounds {
        without.push(wrk_p50_us(&script, &plain_url, seconds)?.0);
        with.push(wrk_p50_us(&script, &url, seconds)?.0);
    }
    drop(server);
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (w0, w1) = (median(&mut without.clone()), median(&mut with.clone()));

    let mut out = String::new();
    writeln!(out, "## Canary traffic split\n")?;
    writeln!(out, "{}", machine())?;
    writeln!(
        out,
        "`cargo xtask bench rollout` ({} build).\n",
        if cfg!(debug_assertions) {
            "dev-profile (`--as-built`): an upper bound of the release figures"
        } else {
            "release"
        }
    )?;
    writeln!(
        out,
        "| Measure | One version | Canary at 50 % | Added | Goal |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| version choice per request, in process (p50 · p99 of {N} calls) | {plain_p50:.0} ns · {plain_p99:.0} ns | {split_p50:.0} ns · {split_p99:.0} ns | {:.0} ns p50 | < 20 µs p50 {} |",
        split_p50 - plain_p50,
        if split_p50 - plain_p50 < 20_000.0 {
            "✓"
        } else {
            "✗"
        }
    )?;
    writeln!(
        out,
        "| `POST /models/classifier/predict` p50 over HTTP, 1 connection (median of {rounds} × {seconds} s; rounds {without:?} vs {with:?} µs) | {w0} µs | {w1} µs | {} µs | < 20 µs p50 {} |",
        w1 as i64 - w0 as i64,
        if (w1 as i64 - w0 as i64) < 20 {
            "✓"
        } else {
            "✗"
        }
    )?;
    writeln!(
        out,
        "\nShare of requests routed to the canary in process: {:.2} % (50 % asked).",
        share * 100.0
    )?;
    print!("{out}");
    Ok(())
}
