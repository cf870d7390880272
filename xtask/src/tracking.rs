//! Benchmark: MLflow's tracking protocol, Cairn against MLflow's own server.
//!
//! One Python client (the full `mlflow` package, [`MLFLOW`]) drives both
//! servers the same way: `log_batch` of 1,000 metrics repeated, single
//! `log_metric` calls, and `search_runs` with a filter and an order over
//! 10,000 runs. Cairn is `cairn up` on a repository declaring project
//! `lab`, its 10,000 runs written beforehand through the store's API;
//! MLflow is `mlflow server` with its SQLite backend and one worker, its
//! runs created through its REST API from a thread pool. Both hold the
//! same runs (the same accuracies and parameters), so the search must
//! answer the same top 100 on both.

use crate::bench::machine;
use anyhow::{Context, Result, bail};
use cairn_store::Store;
use cairn_store::tracking::{KeyValue, Metric, NewRun, RunStatus};
use cairn_test_support::up::{Up, free_port};
use cairn_test_support::{LAB_PROJECT, TestRepo};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The package of both the client and the reference server.
const MLFLOW: &str = "mlflow==3.17.2";

/// The experiment the logging goes to.
const LOG_EXPERIMENT: &str = "lab/bench";
/// The experiment of the searched runs.
const SEARCH_EXPERIMENT: &str = "lab/search";
/// The search, as MLflow's client sends it.
const FILTER: &str = "metrics.accuracy > 0.9 and params.C = '1.0'";
const ORDER: &str = "metrics.accuracy DESC";

/// The values of `params.C`, by run index modulo 4.
const C_VALUES: [&str; 4] = ["0.01", "0.1", "1.0", "10.0"];

/// Run `i`'s accuracy, in [0.5, 1): distinct for `i` < 10,007, spread
/// evenly (the same formula is in [`CLIENT`]).
fn accuracy(i: usize) -> f64 {
    0.5 + 0.5 * ((i * 7919) % 10007) as f64 / 10007.0
}

/// What the bench does, and how much.
pub struct Sizes {
    /// `log_batch` calls timed.
    pub batches: usize,
    /// Metrics per `log_batch` call.
    pub batch_size: usize,
    /// `log_metric` calls timed.
    pub singles: usize,
    /// Runs searched over.
    pub runs: usize,
    /// Searches timed (the median is reported).
    pub searches: usize,
}

/// The client: `populate` writes the searched runs into MLflow's database
/// with MLflow's own models, before its server starts; `bench` times
/// logging and searching. Each prints JSON on its last line.
const CLIENT: &str = r#"
import json, platform, sys, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

cfg = json.loads(sys.argv[1])
C_VALUES = ["0.01", "0.1", "1.0", "10.0"]

def accuracy(i):
    return 0.5 + 0.5 * ((i * 7919) % 10007) / 10007

def experiment(name):
    e = c.get_experiment_by_name(name)
    return e.experiment_id if e else c.create_experiment(name)

if cfg["mode"] == "populate":
    # The rows MLflow's store writes, in its own tables, in one transaction,
    # before the server starts (through its REST API this took about 1 s a run).
    import uuid
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag)
    t = time.perf_counter()
    store = SqlAlchemyStore(cfg["uri"], cfg["artifacts"])
    exp = store.get_experiment(store.create_experiment(cfg["search_experiment"]))
    now = int(time.time() * 1000)
    runs, tags, metrics, params = [], [], [], []
    for i in range(cfg["runs"]):
        rid, acc = uuid.uuid4().hex, accuracy(i)
        runs.append(dict(run_uuid=rid, name=f"r{i}", experiment_id=int(exp.experiment_id),
                         user_id="bench", status="FINISHED", start_time=now, end_time=now,
                         lifecycle_stage="active", source_type="LOCAL", source_name="",
                         entry_point_name="", source_version="",
                         artifact_uri=f"{exp.artifact_location}/{rid}/artifacts"))
        tags.append(dict(key="mlflow.runName", value=f"r{i}", run_uuid=rid))
        for key, value in (("accuracy", acc), ("loss", 1 - acc)):
            metrics.append(dict(key=key, value=value, timestamp=now, step=0, is_nan=False, run_uuid=rid))
        params.append(dict(key="C", value=C_VALUES[i % 4], run_uuid=rid))
        params.append(dict(key="penalty", value="l2", run_uuid=rid))
    with store.ManagedSessionMaker() as session:
        for model, rows in ((SqlRun, runs), (SqlTag, tags), (SqlMetric, metrics),
                            (SqlLatestMetric, metrics), (SqlParam, params)):
            session.execute(model.__table__.insert(), rows)
    print(json.dumps({"seconds": time.perf_counter() - t}))
    sys.exit(0)

c = MlflowClient()
out = {"mlflow": mlflow.__version__, "python": platform.python_version()}
rid = c.create_run(experiment(cfg["experiment"]), run_name="throughput").info.run_id

def batch(b):
    now = int(time.time() * 1000)
    return [Metric(f"m{j % 10}", float(b * cfg["batch"] + j), now, b * cfg["batch"] // 10 + j // 10)
            for j in range(cfg["batch"])]

c.log_batch(rid, metrics=batch(0))
batches = [batch(b + 1) for b in range(cfg["batches"])]
calls = []
t0 = time.perf_counter()
for ms in batches:
    t = time.perf_counter()
    c.log_batch(rid, metrics=ms)
    calls.append(time.perf_counter() - t)
out["batch_total_s"] = time.perf_counter() - t0
out["batch_calls_s"] = calls
out["history_points"] = len(c.get_metric_history(rid, "m0"))

c.log_metric(rid, "single", 0.0, step=0)
t0 = time.perf_counter()
for i in range(cfg["singles"]):
    c.log_metric(rid, "single", float(i), step=i + 1)
out["single_total_s"] = time.perf_counter() - t0

sid = experiment(cfg["search_experiment"])
def search():
    return c.search_runs([sid], filter_string=cfg["filter"], order_by=[cfg["order"]], max_results=100)
found = search()
times = []
for _ in range(cfg["searches"]):
    t = time.perf_counter()
    search()
    times.append(time.perf_counter() - t)
out["search_s"] = times
expected = sorted((accuracy(i) for i in range(cfg["runs"]) if i % 4 == 2 and accuracy(i) > 0.9), reverse=True)[:100]
out["found"] = len(found)
out["search_correct"] = [r.data.metrics.get("accuracy") for r in found] == expected \
    and all(r.data.params.get("C") == "1.0" for r in found)
print(json.dumps(out))
"#;

/// What one server measured.
struct Figures {
    mlflow: String,
    python: String,
    batch_total: f64,
    batch_calls: Vec<f64>,
    history_points: u64,
    single_total: f64,
    search: Vec<f64>,
    found: u64,
    search_correct: bool,
    /// Seconds to create the searched runs.
    populate: f64,
}

impl Figures {
    fn from_json(v: &Value, populate: f64) -> Result<Figures> {
        let list = |k: &str| -> Result<Vec<f64>> {
            v[k].as_array()
                .with_context(|| format!("no {k} in {v}"))?
                .iter()
                .map(|x| x.as_f64().context("a number"))
                .collect()
        };
        let num = |k: &str| v[k].as_f64().with_context(|| format!("no {k} in {v}"));
        Ok(Figures {
            mlflow: v["mlflow"].as_str().unwrap_or("?").to_string(),
            python: v["python"].as_str().unwrap_or("?").to_string(),
            batch_total: num("batch_total_s")?,
            batch_calls: list("batch_calls_s")?,
            history_points: v["history_points"].as_u64().unwrap_or(0),
            single_total: num("single_total_s")?,
            search: list("search_s")?,
            found: v["found"].as_u64().unwrap_or(0),
            search_correct: v["search_correct"].as_bool().unwrap_or(false),
            populate,
        })
    }
}

/// The `q` quantile (nearest rank) of `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs the client in `mode` against `uri`; its last line as JSON.
fn client(python: &Path, uri: &str, token: Option<&str>, config: &Value) -> Result<Value> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT)?;
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(config.to_string())
        .current_dir(dir.path())
        .env("MLFLOW_TRACKING_URI", uri)
        .env("GIT_PYTHON_REFRESH", "quiet")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env_remove("MLFLOW_EXPERIMENT_NAME")
        .env_remove("MLFLOW_RUN_ID");
    if let Some(t) = token {
        cmd.env("MLFLOW_TRACKING_TOKEN", t);
    }
    let out = cmd.output().context("running the MLflow client")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the MLflow client failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("the client's output: {stdout}"))
}

/// Writes the searched runs into Cairn's store at `data` (closed after):
/// per run, as the client would, a start, one batch (accuracy, loss, C,
/// penalty) and the end.
fn populate_cairn(data: &Path, runs: usize) -> Result<f64> {
    std::fs::create_dir_all(data)?;
    let store = Store::open(&data.join("cairn.db"))?;
    let tracking = store.tracking();
    let start = Instant::now();
    let experiment = tracking.create_experiment(SEARCH_EXPERIMENT, Some("lab"), None, &[])?;
    for i in 0..runs {
        let now = cairn_store::tracking::now_ms();
        let run = tracking.create_run(&NewRun {
            experiment_id: experiment.id,
            name: Some(format!("r{i}")),
            user: "bench".into(),
            start_ms: Some(now),
            ..NewRun::default()
        })?;
        let point = |key: &str, value: f64| Metric {
            key: key.into(),
            value,
            timestamp_ms: now,
            step: 0,
        };
        let acc = accuracy(i);
        tracking.log_batch(
            &run.info.id,
            &[point("accuracy", acc), point("loss", 1.0 - acc)],
            &[
                KeyValue::new("C", C_VALUES[i % 4]),
                KeyValue::new("penalty", "l2"),
            ],
            &[],
        )?;
        tracking.update_run(&run.info.id, Some(RunStatus::Finished), Some(now), None)?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// MLflow's SQLite database in `dir`, as a URI.
fn mlflow_db(dir: &Path) -> String {
    format!("sqlite:///{}", dir.join("mlflow.db").display())
}

/// `mlflow server` in its own process group, stopped (the group) on drop.
struct MlflowServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl MlflowServer {
    fn start(venv_python: &Path, dir: &Path) -> Result<MlflowServer> {
        let port = free_port();
        let log = dir.join("mlflow-server.log");
        let out = std::fs::File::create(&log)?;
        let mlflow = venv_python.with_file_name("mlflow");
        let child = Command::new(&mlflow)
            .arg("server")
            .arg("--backend-store-uri")
            .arg(mlflow_db(dir))
            .arg("--default-artifact-root")
            .arg(dir.join("artifacts"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--workers", "1"])
            .current_dir(dir)
            .env("GIT_PYTHON_REFRESH", "quiet")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", mlflow.display()))?;
        let mut server = MlflowServer { child, port, log };
        let start = Instant::now();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        loop {
            let up = agent
                .get(&format!("{}/health", server.url()))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if up {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("mlflow server exited with {status}:\n{}", server.logs());
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("mlflow server did not answer in 300 s:\n{}", server.logs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: signals the process group this server leads.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above; whatever of the group is left.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `n` with thousands separated by commas.
fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The load averages (1, 5, 15 minutes), as `uptime` prints them.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the benchmark with the `cairn` binary `cairn` (built in
/// `profile`) and prints Markdown.
pub fn run(cairn: &Path, profile: &str, sizes: Sizes) -> Result<()> {
    let target = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("the target directory")?
        .to_path_buf();
    eprintln!("tracking: the Python environment ({MLFLOW}) ...");
    let python = cairn_test_support::python::venv(&target.join("bench-venvs"), &[MLFLOW]);
    let load_before = load();
    let config = |mode: &str| {
        json!({
            "mode": mode,
            "experiment": LOG_EXPERIMENT,
            "search_experiment": SEARCH_EXPERIMENT,
            "filter": FILTER,
            "order": ORDER,
            "batch": sizes.batch_size,
            "batches": sizes.batches,
            "singles": sizes.singles,
            "runs": sizes.runs,
            "searches": sizes.searches,
        })
    };

    // Cairn.
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT);
    let commit = repo.commit("project lab");
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("cairn");
    eprintln!("tracking: {} runs into Cairn's store ...", sizes.runs);
    let populate = populate_cairn(&data, sizes.runs)?;
    let mut up = Up::launch(
        cairn,
        repo.path(),
        &data,
        free_port(),
        &[],
        &[("CAIRN_LOG", "warn")],
    )?;
    up.wait_synced(&commit);
    eprintln!("tracking: measuring Cairn ...");
    let out = client(&python, &up.url(""), up.token.as_deref(), &config("bench"))
        .map_err(|e| anyhow::anyhow!("{e:#}\n--- cairn up log ---\n{}", up.logs()))?;
    let cairn_fig = Figures::from_json(&out, populate)?;
    up.stop();

    // MLflow's server.
    let dir = tmp.path().join("mlflow");
    std::fs::create_dir_all(&dir)?;
    eprintln!("tracking: {} runs into MLflow's database ...", sizes.runs);
    let mut populate = config("populate");
    populate["uri"] = mlflow_db(&dir).into();
    populate["artifacts"] = dir.join("artifacts").to_string_lossy().into_owned().into();
    let pop = client(&python, &mlflow_db(&dir), None, &populate)?;
    let populate = pop["seconds"].as_f64().context("populate seconds")?;
    eprintln!("tracking: starting mlflow server ...");
    let server = MlflowServer::start(&python, &dir)?;
    eprintln!("tracking: measuring MLflow ...");
    let out = client(&python, &server.url(), None, &config("bench"))
        .map_err(|e| anyhow::anyhow!("{e:#}\n--- server log ---\n{}", server.logs()))?;
    let ml_fig = Figures::from_json(&out, populate)?;
    drop(server);

    print!(
        "{}",
        report(&sizes, profile, &load_before, &load(), &ml_fig, &cairn_fig)
    );
    Ok(())
}

fn report(
    sizes: &Sizes,
    profile: &str,
    load_before: &str,
    load_after: &str,
    ml: &Figures,
    cairn: &Figures,
) -> String {
    let metrics_s = |f: &Figures| (sizes.batches * sizes.batch_size) as f64 / f.batch_total;
    let singles_s = |f: &Figures| sizes.singles as f64 / f.single_total;
    let ms = |s: f64| s * 1000.0;
    let search = |f: &Figures| quantile(&f.search, 0.5);
    let check = |f: &Figures| {
        if f.search_correct {
            format!("{} runs, the expected top 100", f.found)
        } else {
            format!("{} runs, **not** the expected top 100", f.found)
        }
    };
    let batch_ratio = metrics_s(cairn) / metrics_s(ml);
    let search_ms = ms(search(cairn));
    let mut s = String::new();
    s += "### MLflow tracking: Cairn against MLflow's server\n\n";
    s += &format!("{}\n", machine());
    s += &format!("Load average (`uptime`): {load_before} before, {load_after} after.\n");
    s += &format!(
        "`cargo xtask bench tracking`: Cairn {profile}; client and reference server MLflow {} \
         (the full `{MLFLOW}` package, one virtual environment), Python {}.\n\n",
        cairn.mlflow, cairn.python
    );
    s += "| measure | MLflow server (SQLite, 1 worker) | Cairn (`cairn up`) | Cairn vs MLflow | goal |\n";
    s += "|---|---:|---:|---:|---|\n";
    s += &format!(
        "| `log_batch` of {} metrics × {}: metrics/s | {} | {} | **{:.1}×** | ≥ 5× {} |\n",
        thousands(sizes.batch_size as f64),
        sizes.batches,
        thousands(metrics_s(ml)),
        thousands(metrics_s(cairn)),
        batch_ratio,
        if batch_ratio >= 5.0 { "✓" } else { "✗" }
    );
    s += &format!(
        "| per `log_batch` call: p50 · p95 | {:.1} ms · {:.1} ms | {:.1} ms · {:.1} ms | — | — |\n",
        ms(quantile(&ml.batch_calls, 0.5)),
        ms(quantile(&ml.batch_calls, 0.95)),
        ms(quantile(&cairn.batch_calls, 0.5)),
        ms(quantile(&cairn.batch_calls, 0.95)),
    );
    s += &format!(
        "| `log_metric` × {}: calls/s | {:.0} | {:.0} | {:.1}× | — |\n",
        sizes.singles,
        singles_s(ml),
        singles_s(cairn),
        singles_s(cairn) / singles_s(ml)
    );
    s += &format!(
        "| `search_runs` over {} runs: median of {} (min · max) | {:.1} ms ({:.1} · {:.1}) | {:.1} ms ({:.1} · {:.1}) | {:.1}× faster | Cairn < 100 ms {} |\n",
        thousands(sizes.runs as f64),
        sizes.searches,
        ms(search(ml)),
        ms(quantile(&ml.search, 0.0)),
        ms(quantile(&ml.search, 1.0)),
        search_ms,
        ms(quantile(&cairn.search, 0.0)),
        ms(quantile(&cairn.search, 1.0)),
        search(ml) / search(cairn),
        if search_ms < 100.0 { "✓" } else { "✗" }
    );
    s += &format!(
        "| search answered | {} | {} | — | — |\n\n",
        check(ml),
        check(cairn)
    );
    s += &format!(
        "The search: `{FILTER}`, ordered by `{ORDER}`, `max_results=100`, through \
         `MlflowClient().search_runs` (one warm-up first). Each run has metrics `accuracy` \
         (distinct, even in [0.5, 1)) and `loss`, params `C` (four values) and `penalty`, \
         status `FINISHED`. Both were filled before their server started (not compared): Cairn \
         through its store's API, three transactions a run as the client's calls would make, \
         {:.1} s; MLflow by inserting the same rows into its own tables (its SQLAlchemy \
         models) in one transaction, {:.1} s (through its REST API, a trial under heavy load \
         took about 1 s a run).\n\n",
        cairn.populate, ml.populate
    );
    s += &format!(
        "The logging: one run, {} `MlflowClient().log_batch` calls (one warm-up first), each \
         {} `Metric`s over 10 keys, then {} `log_metric` calls; metric `m0` then held {} \
         points on MLflow and {} on Cairn. Both servers held the {} searched runs while \
         logging. The client builds each request in Python, the same work for both servers.\n",
        sizes.batches,
        thousands(sizes.batch_size as f64),
        sizes.singles,
        thousands(ml.history_points as f64),
        thousands(cairn.history_points as f64),
        thousands(sizes.runs as f64)
    );
    s
}
