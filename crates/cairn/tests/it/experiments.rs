//! Experiments end to end: the real `mlflow` Python client (mlflow-skinny)
//! logging to `cairn up` — experiments, runs, params, metric histories,
//! batches, tags, artifacts, searches and `mlflow.sklearn.autolog()`;
//! jobs whose runs are MLflow runs; a sweep; comparing and promoting runs
//! through the CLI; and the protocol's bad inputs.

use cairn_test_support::python::{MLFLOW_CLIENT, venv};
use cairn_test_support::up::Up;
use cairn_test_support::{CLASSIFIER, INVERTED_CLASSIFIER, LAB_PROJECT, TestRepo, cairn};
use serde_json::{Value, json};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Python with the MLflow client, made once per target directory.
fn mlflow_python() -> PathBuf {
    venv(Path::new(env!("CARGO_TARGET_TMPDIR")), MLFLOW_CLIENT)
}

/// Runs `script` with the MLflow client pointed at `up` with `token`;
/// its standard output as JSON.
fn run_client(up: &Up, token: &str, script: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.py");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(mlflow_python())
        .arg(&file)
        .current_dir(dir.path())
        .env("MLFLOW_TRACKING_URI", up.url(""))
        .env("MLFLOW_TRACKING_TOKEN", token)
        .env("GIT_PYTHON_REFRESH", "quiet")
        .env_remove("MLFLOW_EXPERIMENT_NAME")
        .env_remove("MLFLOW_RUN_ID")
        .output()
        .expect("run the MLflow client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed:\n{stdout}\n{}\n--- server log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        up.logs()
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

const CLIENT_SCRIPT: &str = r#"
import json, os, tempfile
import numpy as np
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from sklearn.linear_model import LogisticRegression

out = {}
c = MlflowClient()
mlflow.set_experiment("lab/probe")
with mlflow.start_run(run_name="manual") as run:
    rid = run.info.run_id
    mlflow.log_param("C", 1.0)
    for i in range(3):
        mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    mlflow.log_metrics({"accuracy": 0.91, "f1": 0.88})
    mlflow.set_tag("team", "vision")
    c.log_batch(rid, metrics=[Metric("batch", float(i), 1000 + i, i) for i in range(1000)],
                params=[Param("penalty", "l2")], tags=[RunTag("kind", "batch")])
    d = tempfile.mkdtemp()
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("hello")
    mlflow.log_artifact(os.path.join(d, "notes.txt"), artifact_path="docs")
    out["history"] = [[m.step, m.value] for m in c.get_metric_history(rid, "loss")]
    out["batch_points"] = len(c.get_metric_history(rid, "batch"))
    out["artifacts"] = [f.path for f in c.list_artifacts(rid, "docs")]
    with open(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="docs/notes.txt")) as f:
        out["download"] = f.read()
    try:
        mlflow.log_param("C", 2.0)
        out["param_change"] = "accepted"
    except Exception as e:
        out["param_change"] = str(e)
with mlflow.start_run(run_name="second") as r2:
    mlflow.log_param("C", 10.0)
    mlflow.log_metric("accuracy", 0.95)
mlflow.sklearn.autolog()
X = np.random.RandomState(0).rand(60, 3)
y = (X[:, 0] > 0.5).astype(int)
with mlflow.start_run(run_name="autolog") as r3:
    LogisticRegression(C=0.5).fit(X, y)
mlflow.sklearn.autolog(disable=True)
auto = c.get_run(r3.info.run_id)
out["autolog_params"] = auto.data.params
out["autolog_metrics"] = sorted(auto.data.metrics)
out["autolog_models"] = [m.model_id for m in auto.outputs.model_outputs] if auto.outputs else []
found = mlflow.search_runs(experiment_names=["lab/probe"], filter_string="metrics.accuracy > 0.9",
                           order_by=["metrics.accuracy DESC"], output_format="list")
out["search"] = [r.info.run_name for r in found]
out["by_param"] = [r.info.run_name for r in mlflow.search_runs(
    experiment_names=["lab/probe"], filter_string="params.C = '10.0'", output_format="list")]
out["runs"] = {"manual": rid, "second": r2.info.run_id, "autolog": r3.info.run_id}
out["status"] = c.get_run(rid).info.status
out["user"] = c.get_run(rid).info.user_id
print(json.dumps(out))
"#;

#[test]
fn the_mlflow_client_logs_to_cairn() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT);
    let commit = repo.commit("a project");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);

    let out = run_client(&up, up.token.as_deref().unwrap(), CLIENT_SCRIPT);
    let history: Vec<(i64, f64)> = serde_json::from_value(out["history"].clone()).unwrap();
    assert_eq!(history, vec![(0, 1.0), (1, 0.5), (2, 1.0 / 3.0)]);
    assert_eq!(out["batch_points"], 1000);
    assert_eq!(out["artifacts"], json!(["docs/notes.txt"]));
    assert_eq!(out["download"], "hello");
    let change = out["param_change"].as_str().unwrap();
    assert!(
        change.contains("Changing param values is not allowed"),
        "{change}"
    );
    assert_eq!(out["autolog_params"]["C"], "0.5");
    let auto_metrics = out["autolog_metrics"].to_string();
    assert!(
        auto_metrics.contains("training_accuracy_score"),
        "{auto_metrics}"
    );
    assert_eq!(out["autolog_models"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["search"], json!(["second", "manual"]));
    assert_eq!(out["by_param"], json!(["second"]));
    assert_eq!(out["status"], "FINISHED");
    // The run is recorded as the authenticated caller, not the client's claim.
    assert!(out["user"].as_str().unwrap().starts_with("token:"), "{out}");

    // Cairn's own view of the same runs.
    let list = up.get("/api/v1/experiments");
    let probe = list["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "lab/probe")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(probe["project"], "lab");
    let id = probe["id"].as_str().unwrap();
    let runs = up.get(&format!(
        "/api/v1/experiments/{id}/runs?orderBy=metrics.accuracy%20DESC"
    ));
    assert_eq!(runs["runs"].as_array().unwrap().len(), 3, "{runs}");
    assert_eq!(runs["runs"][0]["name"], "second");
    let manual = out["runs"]["manual"].as_str().unwrap();
    let second = out["runs"]["second"].as_str().unwrap();
    let history = up.get(&format!("/api/v1/experiments/runs/{manual}/metrics/loss"));
    assert_eq!(history["points"].as_array().unwrap().len(), 3);
    let cmp = up.get(&format!(
        "/api/v1/experiments/compare?runs={manual},{second}"
    ));
    let c_row = cmp["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "C")
        .unwrap();
    assert_eq!(c_row["values"], json!(["1.0", "10.0"]));
    assert_eq!(c_row["differs"], true);

    // The CLI over the same API.
    let server = up.url("");
    let listed = cairn()
        .args(["experiments", "runs", "lab/probe", "--server", &server])
        .args(["--filter", "metrics.accuracy > 0.9"])
        .env("CAIRN_TOKEN", up.token.as_deref().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(text.contains("second") && text.contains("manual"), "{text}");
    assert!(!text.contains("autolog"), "{text}");
    let compared = cairn()
        .args([
            "experiments",
            "compare",
            manual,
            second,
            "--diff",
            "--server",
            &server,
        ])
        .env("CAIRN_TOKEN", up.token.as_deref().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&compared.stdout);
    assert!(compared.status.success(), "{text}");
    assert!(text.contains("params.C *"), "{text}");
    assert!(text.contains("metrics.accuracy *"), "{text}");
}

/// POSTs `body` to MLflow's `endpoint` with `token`: (status, JSON body).
fn mlflow_post(up: &Up, token: Option<&str>, endpoint: &str, body: &Value) -> (u16, Value) {
    let agent = Up::agent_with(token, Duration::from_secs(10));
    let mut response = agent
        .post(&up.url(&format!("/api/2.0/mlflow/{endpoint}")))
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn bad_tracking_requests_are_refused_as_mlflow_refuses_them() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT);
    let commit = repo.commit("a project");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    let admin = up.token.as_deref();

    let (status, body) = mlflow_post(
        &up,
        admin,
        "experiments/create",
        &json!({"name": "lab/bad"}),
    );
    assert_eq!(status, 200, "{body}");
    let experiment = body["experiment_id"].as_str().unwrap().to_string();
    let (status, body) = mlflow_post(
        &up,
        admin,
        "runs/create",
        &json!({"experiment_id": experiment, "start_time": 1}),
    );
    assert_eq!(status, 200, "{body}");
    let run = body["run"]["info"]["run_id"].as_str().unwrap().to_string();

    // A metric that is not a number.
    let (status, body) = mlflow_post(
        &up,
        admin,
        "runs/log-metric",
        &json!({"run_id": run, "key": "m", "value": "high", "timestamp": 1, "step": 0}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
    // A batch that breaks a rule stores nothing of itself.
    let (status, body) = mlflow_post(
        &up,
        admin,
        "runs/log-batch",
        &json!({"run_id": run, "metrics": [{"key": "kept", "value": 1, "timestamp": 1, "step": 0}],
                "params": [{"key": "p", "value": "a"}, {"key": "p", "value": "b"}]}),
    );
    assert_eq!(status, 400, "{body}");
    let (_, got) = {
        let agent = Up::agent_with(admin, Duration::from_secs(10));
        let mut r = agent
            .get(&up.url(&format!("/api/2.0/mlflow/runs/get?run_id={run}")))
            .call()
            .unwrap();
        (
            r.status().as_u16(),
            serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap()).unwrap(),
        )
    };
    assert!(got["run"]["data"]["metrics"].is_null(), "{got}");
    // Too big a batch.
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": "m", "value": 1, "timestamp": 1, "step": i}))
        .collect();
    let (status, body) = mlflow_post(
        &up,
        admin,
        "runs/log-batch",
        &json!({"run_id": run, "metrics": metrics}),
    );
    assert_eq!(status, 400, "{body}");
    // Unknown ids.
    let (status, body) = mlflow_post(
        &up,
        admin,
        "runs/log-parameter",
        &json!({"run_id": "0".repeat(32), "key": "p", "value": "1"}),
    );
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST")),
        "{body}"
    );
    let (status, body) = mlflow_post(&up, admin, "experiments/get-by-name-please", &json!({}));
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("ENDPOINT_NOT_FOUND")),
        "{body}"
    );
    // No project in the name, and no project on the caller's token.
    let (status, body) = mlflow_post(&up, admin, "experiments/create", &json!({"name": "loose"}));
    assert_eq!(status, 400, "{body}");
    // Path traversal in an artifact path.
    let agent = Up::agent_with(admin, Duration::from_secs(10));
    let response = agent
        .put(&up.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/a/..%2F..%2F..%2Fescape.txt"
        )))
        .send(&b"x"[..])
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(!data.path().join("state/tracking/escape.txt").exists());

    // A client too old for the protocol is told so, by its version.
    let mut old = agent
        .get(&up.url("/api/2.0/mlflow/experiments/get-by-name?experiment_name=lab%2Fbad"))
        .header("user-agent", "mlflow-python-client/1.30.0")
        .call()
        .unwrap();
    assert_eq!(old.status().as_u16(), 400);
    assert!(old.body_mut().read_to_string().unwrap().contains("1.30.0"));

    // Who may do what: no token, and a viewer of the project.
    let (status, _) = mlflow_post(
        &up,
        None,
        "runs/create",
        &json!({"experiment_id": experiment}),
    );
    assert_eq!(status, 401);
    let viewer = cairn()
        .args([
            "tokens",
            "create",
            "--project",
            "lab",
            "--role",
            "viewer",
            "--server",
            &up.url(""),
        ])
        .env("CAIRN_TOKEN", admin.unwrap())
        .output()
        .unwrap();
    assert!(viewer.status.success());
    let viewer = String::from_utf8_lossy(&viewer.stdout).trim().to_string();
    let (status, body) = mlflow_post(
        &up,
        Some(&viewer),
        "runs/log-parameter",
        &json!({"run_id": run, "key": "p", "value": "1"}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = mlflow_post(
        &up,
        Some(&viewer),
        "runs/search",
        &json!({"experiment_ids": [experiment]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"].as_array().map(Vec::len), Some(1), "{body}");
}

/// A project, the sweep job `tune` and the job `report` after it.
fn sweep_specs(marks: &Path) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Job
metadata:
  name: tune
spec:
  command: |
    echo \"start $(date +%s%N)\" >> \"$MARKS/$CAIRN_RUN_ID\"
    sleep 1
    awk -v c=\"$CAIRN_PARAM_C\" 'BEGIN {{ d = c - 2; if (d < 0) d = -d; printf \"{{\\\"accuracy\\\": %.4f}}\", 1 - d / 20 }}' > \"$CAIRN_OUTPUT_DIR/metrics.json\"
    echo \"$CAIRN_PARAM_C\" > \"$CAIRN_OUTPUT_DIR/choice.txt\"
    echo \"end $(date +%s%N)\" >> \"$MARKS/$CAIRN_RUN_ID\"
  env: {{MARKS: {marks}}}
  trigger: {{manual: true}}
  params: {{C: 1}}
  experiment: {{metrics: metrics}}
  outputs:
    - {{name: metrics, path: metrics.json}}
    - {{name: choice, path: choice.txt}}
  sweep:
    grid: {{C: [0.5, 1, 2, 4, 8, 16]}}
    maxParallel: 2
    objective: {{metric: accuracy, goal: maximize}}
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: report
spec:
  command: cp \"$CAIRN_INPUT_DIR/choice.txt\" \"$CAIRN_OUTPUT_DIR/picked.txt\"
  dependsOn: [tune]
  trigger: {{manual: true}}
  outputs:
    - {{name: picked, path: picked.txt}}
",
        marks = marks.display()
    )
}

#[test]
fn a_sweep_runs_in_parallel_and_only_its_best_run_feeds_what_follows() {
    let marks = tempfile::tempdir().unwrap();
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("specs/jobs.yaml", sweep_specs(marks.path()));
    let commit = repo.commit("a sweep");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);

    let (status, started) = up.post("/api/v1/jobs/report/runs", &json!({}));
    assert_eq!(status, 202, "{started}");
    assert_eq!(
        started["pipeline"].as_array().unwrap().len(),
        7,
        "{started}"
    );
    let report = up.wait_run("report", 1);
    assert_eq!(report["state"], "succeeded", "{report}\n{}", up.logs());
    let tune = up.get("/api/v1/jobs/tune/runs?limit=10");
    let runs = tune["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6, "{tune}");
    assert!(
        runs.iter()
            .all(|r| r["state"] == "succeeded" && r["sweep"].is_string()),
        "{tune}"
    );
    let best: Vec<&Value> = runs.iter().filter(|r| r["best"] == true).collect();
    assert_eq!(best.len(), 1, "{tune}");
    assert_eq!(best[0]["params"]["C"], 2, "{tune}");

    // Downstream saw the best run's output only.
    let picked = up.get("/api/v1/jobs/report/runs/1");
    let path = picked["artifacts"][0]["path"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap().trim(), "2");

    // Never more than two at once, and two at once did happen.
    let mut events: Vec<(u128, i32)> = Vec::new();
    for entry in std::fs::read_dir(marks.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let (what, at) = line.split_once(' ').unwrap();
            events.push((at.parse().unwrap(), if what == "start" { 1 } else { -1 }));
        }
    }
    assert_eq!(events.len(), 12);
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    assert_eq!(
        most, 2,
        "at most maxParallel runs at once, and more than one"
    );

    // The sweep's MLflow runs: six children under a parent naming the best.
    let experiments = up.get("/api/v1/experiments");
    let tune_exp = experiments["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "lab/tune")
        .unwrap_or_else(|| panic!("{experiments}"));
    let id = tune_exp["id"].as_str().unwrap();
    let all = up.get(&format!(
        "/api/v1/experiments/{id}/runs?orderBy=metrics.accuracy%20DESC"
    ));
    let all = all["runs"].as_array().unwrap();
    assert_eq!(all.len(), 7, "six runs and their parent");
    let parent = all.iter().find(|r| r["jobRun"].is_null()).unwrap();
    let children: Vec<&Value> = all.iter().filter(|r| !r["jobRun"].is_null()).collect();
    assert!(children.iter().all(|r| r["parent"] == parent["id"]));
    assert_eq!(children[0]["params"]["C"], "2");
    assert_eq!(children[0]["metrics"]["accuracy"], 1.0);
    assert_eq!(children[0]["jobRun"]["best"], true);
    assert_eq!(parent["tags"]["cairn.sweep.best"], children[0]["id"]);
    assert_eq!(parent["status"], "FINISHED");
    assert!(children.iter().all(|r| r["status"] == "FINISHED"));
}

/// A model served from job `train`'s output; `train` copies the ONNX file
/// its `variant` names and logs through the MLflow client.
fn promote_specs(python: &Path) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: [{python}, train.py]
  workdir: jobs
  trigger: {{manual: true}}
  params: {{variant: a}}
  outputs:
    - {{name: model, path: model.onnx}}
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: clf
spec:
  runtime: onnx
  from: {{job: train, output: model}}
  task: classification
  signature:
    inputs:
      - {{name: mean_radius, type: float}}
      - {{name: mean_texture, type: float}}
      - {{name: mean_smoothness, type: float}}
      - {{name: worst_concavity, type: float}}
    outputs:
      - {{name: label, type: int}}
      - {{name: probabilities, type: float, shape: [2]}}
",
        python = python.display()
    )
}

const TRAIN_PY: &str = r#"
import os, shutil
import mlflow
variant = os.environ["CAIRN_PARAM_VARIANT"]
shutil.copy(f"../models/{variant}.onnx", os.path.join(os.environ["CAIRN_OUTPUT_DIR"], "model.onnx"))
given = os.environ["MLFLOW_RUN_ID"]
with mlflow.start_run() as run:
    assert run.info.run_id == given
    mlflow.log_param("framework", "onnx")
    for epoch in range(3):
        mlflow.log_metric("score", {"a": 0.8, "b": 0.6}[variant] + epoch / 100, step=epoch)
"#;

#[test]
fn job_runs_are_mlflow_runs_and_a_run_is_promoted_through_git() {
    let python = mlflow_python();
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("specs/train.yaml", promote_specs(&python))
        .write("jobs/train.py", TRAIN_PY)
        .write("models/a.onnx", std::fs::read(CLASSIFIER).unwrap())
        .write("models/b.onnx", std::fs::read(INVERTED_CLASSIFIER).unwrap());
    let commit = repo.commit("a job and its model");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    let sha = |path: &str| hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()));

    for (n, variant) in [(1, "a"), (2, "b")] {
        let (status, body) = up.post(
            "/api/v1/jobs/train/runs",
            &json!({"params": {"variant": variant}}),
        );
        assert_eq!(status, 202, "{body}");
        let run = up.wait_run("train", n);
        assert_eq!(
            run["state"],
            "succeeded",
            "{run}\n{}",
            up.get_text(&format!("/api/v1/jobs/train/runs/{n}/logs"))
                .unwrap_or_default()
        );
    }
    // The latest run is served.
    let serving = |want: &str| {
        up.wait_for(Duration::from_secs(30), "the model to serve", || {
            let v = up.get("/api/v1/models/clf/versions");
            let current = v["current"].as_i64()?;
            let version = v["versions"]
                .as_array()?
                .iter()
                .find(|x| x["version"].as_i64() == Some(current))?
                .clone();
            (version["sha256"] == want).then_some(version)
        })
    };
    serving(&sha(INVERTED_CLASSIFIER));

    // Each job run is an MLflow run of experiment lab/train.
    let experiments = up.get("/api/v1/experiments");
    let train = experiments["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "lab/train")
        .unwrap_or_else(|| panic!("{experiments}"))
        .clone();
    let runs = up.get(&format!(
        "/api/v1/experiments/{}/runs?orderBy=params.variant",
        train["id"].as_str().unwrap()
    ));
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let first = &runs[0];
    assert_eq!(first["params"]["variant"], "a");
    assert_eq!(first["params"]["framework"], "onnx", "logged by the script");
    let score = first["metrics"]["score"].as_f64().unwrap();
    assert!(
        (score - 0.82).abs() < 1e-9,
        "the last step's value: {score}"
    );
    assert_eq!(first["status"], "FINISHED");
    assert_eq!(first["commit"], commit.as_str());
    assert_eq!(first["jobRun"]["number"], 1);
    assert_eq!(first["jobRun"]["artifacts"][0]["sha256"], sha(CLASSIFIER));
    let first_id = first["id"].as_str().unwrap().to_string();

    // Promote the first run: a commit pins its artifact, and it is served.
    let promoted = cairn()
        .args([
            "experiments",
            "promote",
            &first_id,
            "--model",
            "clf",
            "--server",
            &up.url(""),
        ])
        .env("CAIRN_TOKEN", up.token.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(
        promoted.status.success(),
        "{}{}",
        String::from_utf8_lossy(&promoted.stdout),
        String::from_utf8_lossy(&promoted.stderr)
    );
    let pin = String::from_utf8_lossy(&promoted.stdout).trim().to_string();
    up.wait_synced(&pin);
    let version = serving(&sha(CLASSIFIER));
    assert_eq!(version["trackedRun"], first_id.as_str());
    assert_eq!(version["experiment"], "lab/train");
    let spec = std::fs::read_to_string(repo.path().join("specs/train.yaml")).unwrap_or_default();
    let committed = Command::new("git")
        .args(["show", &format!("{pin}:specs/train.yaml")])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let committed = String::from_utf8_lossy(&committed.stdout);
    assert!(committed.contains(&sha(CLASSIFIER)), "{committed}\n{spec}");

    // A run that cannot be promoted to that model says why.
    let (status, body) = up.post(
        &format!("/api/v1/experiments/runs/{first_id}/promote"),
        &json!({"model": "nope"}),
    );
    assert_eq!(status, 404, "{body}");
}
