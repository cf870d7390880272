//! Benchmark: the model gateway under load, with one load generator (`wrk`)
//! on loopback for every server:
//!
//! 1. the ceiling, a bare axum server in this process, against Cairn's
//!    gateway (`cairn up`) serving the quickstart classifier;
//! 2. the same model served by MLServer (scikit-learn original) against
//!    Cairn's Open Inference Protocol endpoint and its own API;
//! 3. the inference event writer alone ([`EventLog`]), batched and durable.

use crate::bench::{commit, machine};
use crate::reconcile::{head, latency};
use anyhow::{Context, Result, bail};
use cairn_store::events::{EventLog, EventLogConfig, InferenceEvent};
use cairn_test_support::up::{Up, free_port};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Settings of the load generator.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// `wrk` threads.
    pub threads: u32,
    /// Open connections.
    pub connections: u32,
    /// Seconds measured per target.
    pub seconds: u64,
    /// Seconds of warm-up per target (not measured).
    pub warmup: u64,
}

pub(crate) const MODEL_SPECS: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: bench
spec:
  owners: [ml-team@example.com]
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: classifier
spec:
  description: Predicts whether a tumour is benign (1) or malignant (0).
  runtime: onnx
  artifact: models/classifier.onnx
  replicas: 2
  resources: {cpu: 500m, memory: 256Mi}
  task: classification
  signature:
    inputs:
      - {name: mean_radius, type: float}
      - {name: mean_texture, type: float}
      - {name: mean_smoothness, type: float}
      - {name: worst_concavity, type: float}
    outputs:
      - {name: label, type: int}
      - {name: probabilities, type: float, shape: [2]}
";

/// One row of FP32 [1, 4], the sample request's features in order.
const OIP_BODY: &str = r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[19.55,28.77,0.0926,0.4251]}]}"#;

/// The quickstart pipeline (train.py) without the ONNX export, saved with
/// joblib for MLServer.
const TRAIN_SKLEARN: &str = r#"import csv, os, sys
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["mean_radius", "mean_texture", "mean_smoothness", "worst_concavity"]
with open(os.path.join(sys.argv[1], "train.csv"), newline="") as f:
    rows = list(csv.DictReader(f))
X = np.array([[float(r[c]) for c in FEATURES] for r in rows], dtype=np.float32)
y = np.array([int(r["label"]) for r in rows], dtype=np.int64)
model = Pipeline([
    ("scaler", StandardScaler()),
    ("classifier", LogisticRegression(C=1.0, max_iter=1000)),
])
model.fit(X, y)
joblib.dump(model, sys.argv[2])
print(f"trained on {len(y)} rows")
"#;

/// What `wrk` measured.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    socket_errors: u64,
    non_2xx: u64,
    timeouts: u64,
}

impl Measured {
    fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }

    fn errors(&self) -> String {
        let mut parts = Vec::new();
        if self.non_2xx > 0 {
            parts.push(format!("{} non-2xx", self.non_2xx));
        }
        if self.socket_errors > 0 {
            parts.push(format!("{} socket", self.socket_errors));
        }
        if self.timeouts > 0 {
            parts.push(format!("{} timeouts", self.timeouts));
        }
        if parts.is_empty() {
            "0".into()
        } else {
            parts.join(", ")
        }
    }

    /// `| requests/s | p50 | p99 | errors |`
    fn cells(&self) -> String {
        format!(
            "{} | {} | {} | {}",
            thousands(self.rps()),
            ms(self.p50_us),
            ms(self.p99_us),
            self.errors()
        )
    }
}

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

/// A Lua script for `wrk`: POSTs `body` as JSON and prints one parsable line.
fn write_script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    if body.contains("]==]") {
        bail!("body cannot be quoted for Lua");
    }
    let script = format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK-RESULT %d %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script)?;
    Ok(path)
}

fn wrk(load: &Load, script: &Path, url: &str, seconds: u64) -> Result<Measured> {
    let out = Command::new("wrk")
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .stderr(Stdio::inherit())
        .output()
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK-RESULT "))
        .with_context(|| format!("wrk printed no result for {url}:\n{stdout}"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("parsing wrk's result")?;
    if v.len() != 9 {
        bail!("unexpected wrk result: {line}");
    }
    Ok(Measured {
        requests: v[0],
        duration_us: v[1],
        p50_us: v[2],
        p99_us: v[3],
        socket_errors: v[4] + v[5] + v[6],
        non_2xx: v[7],
        timeouts: v[8],
    })
}

/// A warm-up, then the measured load.
fn measure(load: &Load, script: &Path, url: &str) -> Result<Measured> {
    eprintln!("load: {url}");
    if load.warmup > 0 {
        wrk(load, script, url, load.warmup)?;
    }
    wrk(load, script, url, load.seconds)
}

/// [`measure`] for Cairn, with the gateway's own counts over the measured
/// load (read once the requests cut off by `wrk` have settled).
fn measure_cairn(
    load: &Load,
    script: &Path,
    url: &str,
    port: u16,
) -> Result<(Measured, GatewayCounts)> {
    eprintln!("load: {url}");
    if load.warmup > 0 {
        wrk(load, script, url, load.warmup)?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = gateway_counts(port)?;
    let m = wrk(load, script, url, load.seconds)?;
    std::thread::sleep(Duration::from_millis(500));
    let after = gateway_counts(port)?;
    Ok((
        m,
        GatewayCounts {
            ok: after.ok - before.ok,
            not_ok: after.not_ok - before.not_ok,
            in_flight: after.in_flight,
        },
    ))
}

/// One request, checked before loading a server; returns the response.
fn post(url: &str, body: &str) -> Result<Value> {
    let text = ureq::post(url)
        .header("Content-Type", "application/json")
        .send(body)?
        .body_mut()
        .read_to_string()?;
    Ok(serde_json::from_str(&text)?)
}

fn wait_for(url: &str, timeout: Duration, alive: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    loop {
        if ureq::get(url).call().is_ok() {
            return Ok(());
        }
        alive()?;
        if start.elapsed() > timeout {
            bail!("{url} not ready after {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// --- The ceiling: a bare axum server on its own runtime thread. ---

struct Ceiling {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn hello(_body: axum::body::Bytes) -> axum::Json<Value> {
    axum::Json(json!({"hello": "world"}))
}

fn start_ceiling() -> Result<Ceiling> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread =
        std::thread::Builder::new()
            .name("ceiling".into())
            .spawn(move || -> Result<()> {
                // Like `cairn up`: a multi-threaded runtime, one worker per core.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let app = axum::Router::new().route("/predict", axum::routing::post(hello));
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await?;
                    Ok(())
                })
            })?;
    Ok(Ceiling {
        port,
        stop: Some(stop),
        thread: Some(thread),
    })
}

// --- Cairn. ---

/// Starts `cairn up` on `repo` with warnings logged only (its log:
/// [`Up::log`]), and waits until the classifier is ready.
pub(crate) fn start_cairn(cairn: &Path, repo: &Path, data: &Path) -> Result<Up> {
    let mut server = Up::launch(
        cairn,
        repo,
        data,
        free_port(),
        &[],
        &[("CAIRN_LOG", "warn")],
    )?;
    let git = git2::Repository::open(repo)?;
    latency(&server, &head(&git)?, chrono::Utc::now())?;
    wait_for(
        &server.url("/v2/models/classifier/ready"),
        Duration::from_secs(30),
        &mut || match server.exited() {
            Some(status) => bail!("cairn up exited with {status}"),
            None => Ok(()),
        },
    )?;
    Ok(server)
}

/// Cairn's own count of the classifier's requests (by status class) and
/// requests in flight, from `/metrics`.
#[derive(Debug, Default)]
struct GatewayCounts {
    ok: u64,
    not_ok: u64,
    in_flight: i64,
}

fn gateway_counts(port: u16) -> Result<GatewayCounts> {
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let mut c = GatewayCounts::default();
    for line in text.lines().filter(|l| l.contains("model=\"classifier\"")) {
        let value = line.rsplit(' ').next().unwrap_or("0");
        if line.starts_with("cairn_model_requests_total") {
            let n = value.parse::<f64>().unwrap_or(0.0) as u64;
            if line.contains("status=\"2xx\"") {
                c.ok += n;
            } else {
                c.not_ok += n;
            }
        } else if line.starts_with("cairn_model_in_flight_requests") {
            c.in_flight += value.parse::<f64>().unwrap_or(0.0) as i64;
        }
    }
    Ok(c)
}

// --- MLServer. ---

/// MLServer and its inference workers, in their own process group.
struct MlServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl MlServer {
    fn signal(&self, signal: i32) {
        // SAFETY: signals the process group this benchmark started.
        unsafe {
            libc::kill(-(self.child.id() as i32), signal);
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for MlServer {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The virtual environment with MLServer and the trained model repository.
struct MlServerSetup {
    venv: PathBuf,
    models: PathBuf,
    versions: String,
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: cannot start"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        bail!(
            "{what} failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        );
    }
    Ok(())
}

/// Installs MLServer into a fresh virtual environment and trains the
/// scikit-learn original of the quickstart model in it.
fn setup_mlserver(tmp: &Path) -> Result<MlServerSetup> {
    let venv = tmp.join("mlserver-venv");
    eprintln!(
        "MLServer: creating a virtual environment and installing mlserver, mlserver-sklearn ..."
    );
    run_ok(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    // uvloop 0.22 breaks MLServer 1.7's inference workers ("There is no
    // current event loop", SeldonIO/MLServer#2286): pin it below.
    run_ok(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "mlserver",
            "mlserver-sklearn",
            "uvloop<0.22",
        ]),
        "pip install mlserver mlserver-sklearn",
    )?;
    let python = venv.join("bin/python");
    let versions = Command::new(&python)
        .args([
            "-c",
            "import mlserver, sklearn; print(f'MLServer {mlserver.__version__}, scikit-learn {sklearn.__version__}')",
        ])
        .output()?;
    let versions = String::from_utf8_lossy(&versions.stdout).trim().to_string();

    eprintln!("MLServer: training the scikit-learn pipeline ...");
    let prepared = tmp.join("prepared");
    run_ok(
        Command::new(&python)
            .arg(Path::new(cairn_test_support::QUICKSTART).join("jobs/prepare.py"))
            .env("CAIRN_OUTPUT_DIR", &prepared),
        "prepare.py",
    )?;
    let models = tmp.join("mlserver-models");
    let model_dir = models.join("classifier");
    std::fs::create_dir_all(&model_dir)?;
    let train = tmp.join("train_sklearn.py");
    std::fs::write(&train, TRAIN_SKLEARN)?;
    run_ok(
        Command::new(&python)
            .arg(&train)
            .arg(&prepared)
            .arg(model_dir.join("model.joblib")),
        "training",
    )?;
    std::fs::write(
        model_dir.join("model-settings.json"),
        serde_json::to_string_pretty(&json!({
            "name": "classifier",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }))?,
    )?;
    Ok(MlServerSetup {
        venv,
        models,
        versions,
    })
}

fn start_mlserver(setup: &MlServerSetup, tmp: &Path) -> Result<MlServer> {
    use std::os::unix::process::CommandExt;
    let http = std::net::TcpListener::bind("127.0.0.1:0")?;
    let grpc = std::net::TcpListener::bind("127.0.0.1:0")?;
    let (port, grpc_port) = (http.local_addr()?.port(), grpc.local_addr()?.port());
    drop((http, grpc));
    std::fs::write(
        setup.models.join("settings.json"),
        serde_json::to_string_pretty(&json!({
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": grpc_port,
            // No metrics server, no access log.
            "metrics_endpoint": null,
            "debug": false,
        }))?,
    )?;
    let log = tmp.join("mlserver.log");
    let file = std::fs::File::create(&log)?;
    let child = Command::new(setup.venv.join("bin/mlserver"))
        .arg("start")
        .arg(&setup.models)
        .current_dir(&setup.models)
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0)
        .spawn()
        .context("starting mlserver")?;
    let mut server = MlServer { child, port, log };
    let base = format!("http://127.0.0.1:{port}");
    let child = &mut server.child;
    let ready = wait_for(
        &format!("{base}/v2/health/ready"),
        Duration::from_secs(120),
        &mut || match child.try_wait()? {
            Some(status) => bail!("mlserver exited with {status}"),
            None => Ok(()),
        },
    )
    .and_then(|()| {
        wait_for(
            &format!("{base}/v2/models/classifier/ready"),
            Duration::from_secs(60),
            &mut || Ok(()),
        )
    });
    if let Err(e) = ready {
        bail!("{e}; its log ends with:\n{}", server.log_tail());
    }
    Ok(server)
}

// --- The event writer alone. ---

fn event_template() -> InferenceEvent {
    InferenceEvent {
        uuid: uuid::Uuid::now_v7(),
        model: cairn_spec::ResourceKey {
            kind: cairn_spec::Kind::Model,
            project: Some("bench".parse().expect("a name")),
            name: "classifier".parse().expect("a name"),
        },
        version: "1".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        time: chrono::Utc::now(),
        latency_us: 250,
        status: 200,
        inputs: json!({
            "mean_radius": 19.55, "mean_texture": 28.77,
            "mean_smoothness": 0.0926, "worst_concavity": 0.4251
        }),
        outputs: json!({"label": 0, "probabilities": [0.9997929, 0.00020712614]}),
    }
}

fn new_event(template: &InferenceEvent) -> InferenceEvent {
    let mut e = template.clone();
    e.uuid = uuid::Uuid::now_v7();
    e.time = chrono::Utc::now();
    e
}

struct WriterResult {
    events: u64,
    wall: Duration,
    batches: u64,
    /// Per-event wait of durable appends, sorted (µs).
    waits_us: Vec<u64>,
    stored: u64,
}

async fn writer_async(path: &Path, events: u64) -> Result<WriterResult> {
    let log = EventLog::open(path, EventLogConfig::default())?;
    let template = event_template();
    let start = Instant::now();
    for _ in 0..events {
        log.append(new_event(&template))?;
    }
    log.flush().await?;
    let wall = start.elapsed();
    Ok(WriterResult {
        events,
        wall,
        batches: log.stats().batches,
        waits_us: Vec::new(),
        stored: log.count()?,
    })
}

async fn writer_durable(path: &Path, events: u64, tasks: u64) -> Result<WriterResult> {
    let log = EventLog::open(path, EventLogConfig::default())?;
    let template = event_template();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let log = log.clone();
            let template = template.clone();
            let n = events / tasks + u64::from(t < events % tasks);
            tokio::spawn(async move {
                let mut waits = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let sent = Instant::now();
                    log.append_durable(new_event(&template)).await?;
                    waits.push(sent.elapsed().as_micros() as u64);
                }
                anyhow::Ok(waits)
            })
        })
        .collect();
    let mut waits_us = Vec::with_capacity(events as usize);
    for h in handles {
        waits_us.extend(h.await??);
    }
    let wall = start.elapsed();
    waits_us.sort_unstable();
    Ok(WriterResult {
        events,
        wall,
        batches: log.stats().batches,
        waits_us,
        stored: log.count()?,
    })
}

/// The file system type holding `path`, from /proc/mounts.
fn fs_type(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} ({})", f[2], f[0])))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, t)| t)
}

// --- The benchmark. ---

pub fn run(cairn: &Path, load: Load, mlserver: bool) -> Result<()> {
    let wrk_version = Command::new("wrk").arg("-v").output().map_err(|e| {
        anyhow::anyhow!("wrk is needed ({e}); install it, e.g. `apt-get install -y wrk`")
    })?;
    let wrk_version = String::from_utf8_lossy(&wrk_version.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string();
    let tmp = tempfile::tempdir()?;
    let sample = std::fs::read_to_string(cairn_test_support::SAMPLE_REQUEST)?;
    let predict_lua = write_script(tmp.path(), "predict", &sample)?;
    let oip_lua = write_script(tmp.path(), "oip", OIP_BODY)?;

    // MLServer first: its install is the slow, fallible part.
    let ml_setup = if mlserver {
        setup_mlserver(tmp.path()).map_err(|e| format!("{e:#}"))
    } else {
        Err("skipped (--no-mlserver)".to_string())
    };

    // The repository: a project and the quickstart model.
    let repo_dir = tmp.path().join("repo");
    let repo = git2::Repository::init(&repo_dir)?;
    std::fs::create_dir_all(repo_dir.join("models"))?;
    std::fs::create_dir_all(repo_dir.join("specs"))?;
    std::fs::copy(
        cairn_test_support::CLASSIFIER,
        repo_dir.join("models/classifier.onnx"),
    )?;
    std::fs::write(repo_dir.join("specs/model.yaml"), MODEL_SPECS)?;
    commit(&repo, "quickstart model")?;

    // 1. Ceiling, then Cairn's API, then Cairn's OIP endpoint.
    let ceiling = start_ceiling()?;
    let ceiling_url = format!("http://127.0.0.1:{}/predict", ceiling.port);
    post(&ceiling_url, &sample)?;
    let bare = measure(&load, &predict_lua, &ceiling_url)?;
    drop(ceiling);

    let server = start_cairn(cairn, &repo_dir, &tmp.path().join("data"))?;
    let cairn_log = server.log.clone();
    let base = format!("http://127.0.0.1:{}", server.port);
    let predict_url = format!("{base}/models/classifier/predict");
    let oip_url = format!("{base}/v2/models/classifier/infer");
    let r = post(&predict_url, &sample)?;
    if r["response"]["label"].is_null() || r["uuid"].is_null() {
        bail!("unexpected answer from Cairn's predict: {r}");
    }
    let r = post(&oip_url, OIP_BODY)?;
    if r["outputs"].as_array().is_none_or(Vec::is_empty) {
        bail!("unexpected answer from Cairn's OIP endpoint: {r}");
    }
    let (cairn_predict, predict_counts) =
        measure_cairn(&load, &predict_lua, &predict_url, server.port)?;
    let (cairn_oip, oip_counts) = measure_cairn(&load, &oip_lua, &oip_url, server.port)?;
    let cairn_rss_kib = std::fs::read_to_string(format!(
        "/proc/{}/status",
        server.pid().context("cairn up is running")?
    ))
    .unwrap_or_default()
    .lines()
    .find_map(|l| l.strip_prefix("VmHWM:"))
    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    .unwrap_or(0);
    drop(server);
    let cairn_warnings: Vec<String> = std::fs::read_to_string(&cairn_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_string)
        .collect();

    // 2. MLServer.
    let ml = ml_setup.and_then(|setup| {
        let server = start_mlserver(&setup, tmp.path()).map_err(|e| format!("{e:#}"))?;
        let url = format!(
            "http://127.0.0.1:{}/v2/models/classifier/infer",
            server.port
        );
        let r = post(&url, OIP_BODY).map_err(|e| format!("first request: {e:#}"))?;
        if r["outputs"].as_array().is_none_or(Vec::is_empty) {
            return Err(format!("unexpected answer: {r}"));
        }
        let m = measure(&load, &oip_lua, &url).map_err(|e| format!("{e:#}"))?;
        Ok((m, setup.versions))
    });

    // 3. The event writer alone.
    eprintln!("event writer ...");
    let runtime = tokio::runtime::Runtime::new()?;
    let batched = runtime.block_on(writer_async(&tmp.path().join("async.db"), 1_000_000))?;
    let durable = runtime.block_on(writer_durable(&tmp.path().join("durable.db"), 200_000, 512))?;
    drop(runtime);

    // The report.
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut out = String::new();
    let _ = writeln!(out, "### Gateway throughput\n");
    let _ = writeln!(out, "{}\n", machine());
    let _ = writeln!(
        out,
        "Load: `wrk` {wrk_version}, {} threads, {} connections, {} s per target after a {} s warm-up, \
         on loopback; `wrk` shares the {threads} cores with the server under test. \
         Cairn: release `cairn up`, the quickstart classifier (ONNX, `replicas: 2`, default \
         `durability: sync`: each response waits for its event's group commit).\n",
        load.threads, load.connections, load.seconds, load.warmup,
    );

    let ratio = cairn_predict.rps() / bare.rps();
    let _ = writeln!(
        out,
        "#### Ceiling: a bare axum server against Cairn's gateway\n\n\
         Both receive `examples/quickstart/data/sample-request.json` ({} bytes).\n",
        sample.len()
    );
    let _ = writeln!(out, "| server | requests/s | p50 | p99 | errors | goal |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| bare axum 0.8, POST → small JSON (in-process, own tokio runtime) | {} | ceiling |",
        bare.cells()
    );
    let _ = writeln!(
        out,
        "| Cairn `POST /models/classifier/predict` | {} | {:.0} % of the ceiling; goal ≥ 60 %: {} |",
        cairn_predict.cells(),
        ratio * 100.0,
        met(ratio >= 0.6)
    );

    let _ = writeln!(
        out,
        "\n#### Cairn against MLServer, same model\n\n\
         MLServer serves the scikit-learn original (quickstart `prepare.py`, then StandardScaler + \
         LogisticRegression as in `train.py`, saved with joblib; `mlserver_sklearn.SKLearnModel`, \
         default settings: one inference worker process, adaptive batching off; metrics server \
         and access log off). The OIP body is one row of FP32 [1, 4] for both; MLServer answers \
         the label, Cairn the label and the probabilities.\n"
    );
    let _ = writeln!(
        out,
        "| server | endpoint | requests/s | p50 | p99 | errors | goal |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let cairn_rows = |out: &mut String, baseline: Option<&Measured>| {
        for (label, m, same) in [
            ("`POST /v2/models/classifier/infer` (OIP)", &cairn_oip, ""),
            (
                "`POST /models/classifier/predict`",
                &cairn_predict,
                " (the run above)",
            ),
        ] {
            let goal = match baseline {
                Some(b) => {
                    let x = m.rps() / b.rps();
                    format!(
                        "{x:.1}× MLServer, p99 {} vs {}; goal ≥ 10× and a lower p99: {}",
                        ms(m.p99_us),
                        ms(b.p99_us),
                        met(x >= 10.0 && m.p99_us < b.p99_us)
                    )
                }
                None => "no MLServer figure".into(),
            };
            let _ = writeln!(out, "| Cairn | {label}{same} | {} | {goal} |", m.cells());
        }
    };
    match &ml {
        Ok((m, versions)) => {
            let _ = writeln!(
                out,
                "| {versions} | `POST /v2/models/classifier/infer` | {} | baseline |",
                m.cells()
            );
            cairn_rows(&mut out, Some(m));
        }
        Err(why) => {
            cairn_rows(&mut out, None);
            let _ = writeln!(out, "\nMLServer was not measured: {why}");
        }
    }

    let _ = writeln!(
        out,
        "\nCairn's gateway by its own `/metrics`, per measured load: predict {} answered 2xx \
         and {} not, for {} responses received by `wrk`, in-flight gauge afterwards {}; OIP {} \
         and {}, for {}, in-flight afterwards {} (the gauge is cumulative; requests cut off when \
         `wrk` stops count only on the server). Peak resident memory {:.1} MiB; {} warning or \
         error lines logged.",
        predict_counts.ok,
        predict_counts.not_ok,
        cairn_predict.requests,
        predict_counts.in_flight,
        oip_counts.ok,
        oip_counts.not_ok,
        cairn_oip.requests,
        oip_counts.in_flight,
        cairn_rss_kib as f64 / 1024.0,
        cairn_warnings.len()
    );
    for w in cairn_warnings.iter().take(3) {
        let _ = writeln!(out, "\n    {w}");
    }

    let _ = writeln!(
        out,
        "\n#### The event writer alone\n\n\
         `cairn_store::events::EventLog` with its default settings (batches of up to 4,096 \
         events, SQLite WAL, `synchronous=FULL`) on {}; events like the gateway's (the \
         classifier's inputs and outputs as JSON), each built and serialized by the caller.\n",
        fs_type(tmp.path())
    );
    let _ = writeln!(
        out,
        "| mode | events | wall time | events/s | transactions (mean batch) | wait per event p50 / p99 | goal |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for (label, r) in [
        ("`append` (async), then one `flush`", &batched),
        ("`append_durable` from 512 concurrent tasks", &durable),
    ] {
        let rate = r.events as f64 / r.wall.as_secs_f64();
        let waits = if r.waits_us.is_empty() {
            "—".to_string()
        } else {
            let p = |q: f64| r.waits_us[((r.waits_us.len() - 1) as f64 * q).round() as usize];
            format!("{} / {}", ms(p(0.5)), ms(p(0.99)))
        };
        let _ = writeln!(
            out,
            "| {label} | {} | {:.2} s | {} | {} ({}) | {waits} | ≥ 200,000/s: {} |",
            thousands(r.events as f64),
            r.wall.as_secs_f64(),
            thousands(rate),
            thousands(r.batches as f64),
            thousands(r.events as f64 / r.batches.max(1) as f64),
            met(rate >= 200_000.0)
        );
        if r.stored != r.events {
            let _ = writeln!(
                out,
                "\n**{label}: {} events stored for {} appended.**\n",
                r.stored, r.events
            );
        }
    }
    print!("{out}");
    Ok(())
}
