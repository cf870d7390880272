//! `cairn up --runtime kubernetes` end to end against the in-process fake
//! API server: a real Git repository is reconciled into objects, a model
//! is served through its Service by `cairn model-server` (run the way its
//! pod runs it), status comes from the objects, drift is reverted, and
//! pruning never touches what a broken file describes.
//!
//! Services answer on port 80 of their cluster IP, so these tests bind
//! `127.0.0.N:80`: they run as root (as CI does) or with
//! `CAP_NET_BIND_SERVICE`.

use cairn_test_support::kube_api::FakeApi;
use cairn_test_support::up::Up;
use cairn_test_support::{CLASSIFIER, SAMPLE_REQUEST, TestRepo};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
const SERVICES: &str = "/api/v1/services";
const CRONJOBS: &str = "/apis/batch/v1/cronjobs";

const PROJECT: &str = "apiVersion: cairn/v1
kind: Project
metadata: {name: shop}
spec: {defaultPool: k8s}
---
apiVersion: cairn/v1
kind: ComputePool
metadata: {name: k8s}
spec: {kubernetes: {}}
";

const MODEL: &str = "apiVersion: cairn/v1
kind: Model
metadata: {name: classifier}
spec:
  runtime: onnx
  artifact: models/classifier.onnx
  replicas: 2
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

const APP: &str = "apiVersion: cairn/v1
kind: Application
metadata: {name: board}
spec:
  framework: command
  command: [python3, -m, http.server, '8080']
  path: board
  environment: {image: 'python:3.12-slim'}
---
apiVersion: cairn/v1
kind: Job
metadata: {name: nightly}
spec:
  command: [python, report.py]
  image: python:3.12-slim
  schedule: '0 2 * * *'
";

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cairn model-server` the way the model's pod does: the Deployment's
/// command and environment, the artifact from this crate, listening on the
/// Service's cluster IP.
fn serve_like_the_pod(deployment: &Value, ip: &str) -> Killed {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        command[..4],
        ["cairn", "model-server", "--listen", "0.0.0.0:8080"]
    );
    // The Service's port 80 forwards to the pod's 8080; here they are one.
    command[3] = format!("{ip}:80");
    let mut cmd = Command::new(cairn_test_support::cairn_binary());
    cmd.args(&command[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for var in container["env"].as_array().unwrap() {
        if let Some(value) = var["value"].as_str() {
            cmd.env(var["name"].as_str().unwrap(), value);
        }
    }
    cmd.env("CAIRN_MODEL_ARTIFACT", CLASSIFIER);
    let child = Killed(cmd.spawn().unwrap());
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect((ip, 80)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the model server did not start on {ip}:80 (binding port 80 needs root or CAP_NET_BIND_SERVICE)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn up_on_kubernetes_applies_serves_reports_reverts_drift_and_prunes_safely() {
    // Services get cluster IPs on a loopback address of their own.
    let ip_base = 60 + (std::process::id() % 150) as u8;
    let api = FakeApi::start(ip_base);
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", PROJECT)
        .write("specs/model.yaml", MODEL)
        .write("specs/app.yaml", APP)
        .write("board/index.html", "<h1>board</h1>\n")
        .write("models/classifier.onnx", std::fs::read(CLASSIFIER).unwrap());
    let first = repo.commit("shop on Kubernetes");
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(state.path());
    let start = || {
        Up::start(
            repo.path(),
            &state.path().join("data"),
            &[
                "--runtime",
                "kubernetes",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--repo-url",
                "https://git.example.com/shop.git",
                "--status-interval",
                "200ms",
                // Git wins over `kubectl edit` (the default reports instead).
                "--conflicts",
                "force",
            ],
            &[],
        )
    };
    let up = start();
    up.wait_synced(&first);

    // Every object, applied with Cairn's labels.
    let deployment = api
        .get(DEPLOYMENTS, Some("shop"), "model-classifier")
        .unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["metadata"]["labels"]["cairn.dev/commit"], first);
    assert!(api.get(SERVICES, Some("shop"), "app-board").is_some());
    let cron = api.get(CRONJOBS, Some("shop"), "job-nightly").unwrap();
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    assert!(api.get("/api/v1/namespaces", None, "shop").is_some());
    for p in api.requests_with("PATCH") {
        assert!(p.query.contains("fieldManager=cairn"), "{p:?}");
    }

    // A prediction through the gateway reaches the model's Service.
    let service = api.get(SERVICES, Some("shop"), "model-classifier").unwrap();
    let ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    let _server = serve_like_the_pod(&deployment, &ip);
    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(SAMPLE_REQUEST).unwrap()).unwrap();
    let (status, body) = up.post("/models/classifier/predict", &request);
    assert_eq!(status, 200, "{body}\n{}", up.logs());
    assert_eq!(body["response"]["label"], 0, "{body}");
    let id = body["uuid"].as_str().unwrap_or_default().to_string();
    assert_eq!(id.len(), 36, "an inference UUID: {body}");
    // Bad input is a 400 with the model server's message.
    let (status, body) = up.post(
        "/models/classifier/predict",
        &json!({"request": {"mean_radius": "big"}}),
    );
    assert_eq!(status, 400, "{body}");

    // Status from the Deployment's conditions and its pods.
    api.put(
        "/api/v1/pods",
        Some("shop"),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "model-classifier-1", "namespace": "shop",
                "labels": {"cairn.dev/project": "shop", "cairn.dev/kind": "model", "cairn.dev/name": "classifier"}},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}}),
    );
    up.wait_for(
        Duration::from_secs(20),
        "the scheduling failure in the status",
        || {
            let r = up.resource("Model", "classifier")?;
            (r["message"]
                .as_str()?
                .contains("Insufficient nvidia.com/gpu"))
            .then_some(())
        },
    );
    api.edit(
        DEPLOYMENTS,
        Some("shop"),
        "model-classifier",
        "kube-controller-manager",
        |d| {
            d["status"] = json!({"observedGeneration": d["metadata"]["generation"], "replicas": 2,
            "updatedReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Available", "status": "True"}]});
        },
    );
    up.wait_for(Duration::from_secs(20), "the model to be ready", || {
        let r = up.resource("Model", "classifier")?;
        (r["phase"] == "Ready" && r["message"] == "2/2 replicas available").then_some(())
    });

    // Someone scales the Deployment by hand: Git wins again.
    api.edit(
        DEPLOYMENTS,
        Some("shop"),
        "model-classifier",
        "kubectl-edit",
        |d| {
            d["spec"]["replicas"] = json!(7);
        },
    );
    api.wait_until(Duration::from_secs(20), "the drift to be reverted", |api| {
        api.get(DEPLOYMENTS, Some("shop"), "model-classifier")
            .unwrap()["spec"]["replicas"]
            == 2
    });
    up.wait_for(
        Duration::from_secs(10),
        "the drift in the audit log",
        || {
            let audit = up.get("/api/v1/audit");
            audit
                .to_string()
                .contains("drifted from Git; reverted")
                .then_some(())
        },
    );

    // Applications are proxied to their Service.
    let app_ip = api.get(SERVICES, Some("shop"), "app-board").unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let _app = Killed(
        Command::new("python3")
            .args(["-m", "http.server", "80", "--bind", &app_ip])
            .current_dir(repo.path().join("board"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let page = up.wait_for(
        Duration::from_secs(20),
        "the application behind its Service",
        || up.get_text("/apps/board/").ok(),
    );
    assert_eq!(page, "<h1>board</h1>\n");

    // After a restart, the model is served again and drift is still repaired.
    drop(up);
    let up = start();
    let (status, body) = up.post("/models/classifier/predict", &request);
    assert_eq!(status, 200, "{body}\n{}", up.logs());
    api.edit(
        DEPLOYMENTS,
        Some("shop"),
        "model-classifier",
        "kubectl-edit",
        |d| {
            d["spec"]["replicas"] = json!(9);
        },
    );
    api.wait_until(
        Duration::from_secs(20),
        "the drift to be reverted after a restart",
        |api| {
            api.get(DEPLOYMENTS, Some("shop"), "model-classifier")
                .unwrap()["spec"]["replicas"]
                == 2
        },
    );
    // Deleted by hand: created again.
    api.delete(SERVICES, Some("shop"), "model-classifier");
    api.wait_until(
        Duration::from_secs(20),
        "the Service to be re-created",
        |api| {
            api.get(SERVICES, Some("shop"), "model-classifier")
                .is_some()
        },
    );

    // A broken model file and a removed application in one commit: the
    // broken file could have held anything, so nothing is deleted.
    repo.write(
        "specs/model.yaml",
        "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: classifier\n",
    );
    repo.remove("specs/app.yaml");
    let broken = repo.commit("break the model, drop the app");
    up.wait_for(
        Duration::from_secs(20),
        "the broken commit to be seen",
        || {
            let s = up.get("/api/v1/status");
            (s["lastSync"]["commit"] == broken).then_some(())
        },
    );
    assert!(
        api.requests_with("DELETE").is_empty(),
        "{:?}",
        api.summary()
    );
    for name in ["model-classifier", "app-board"] {
        assert!(api.get(DEPLOYMENTS, Some("shop"), name).is_some(), "{name}");
        assert!(api.get(SERVICES, Some("shop"), name).is_some(), "{name}");
    }
    let model = up.resource("Model", "classifier").unwrap();
    assert_eq!(model["phase"], "Invalid", "{model}");

    // The model file fixed, the application's removal goes through alone.
    repo.write("specs/model.yaml", MODEL);
    let fixed = repo.commit("fix the model");
    up.wait_synced(&fixed);
    api.wait_until(
        Duration::from_secs(10),
        "the app's objects to be pruned",
        |api| {
            api.get(DEPLOYMENTS, Some("shop"), "app-board").is_none()
                && api.get(SERVICES, Some("shop"), "app-board").is_none()
                && api.get(CRONJOBS, Some("shop"), "job-nightly").is_none()
        },
    );
    let deleted: Vec<String> = api
        .requests_with("DELETE")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        deleted.iter().all(|p| !p.contains("classifier")),
        "{deleted:?}"
    );
    assert!(
        api.get(DEPLOYMENTS, Some("shop"), "model-classifier")
            .is_some()
    );

    // Removed from a clean repository, the model goes too.
    repo.remove("specs/model.yaml");
    let clean = repo.commit("retire the classifier");
    up.wait_synced(&clean);
    api.wait_until(
        Duration::from_secs(10),
        "the model's objects to be pruned",
        |api| {
            api.get(DEPLOYMENTS, Some("shop"), "model-classifier")
                .is_none()
                && api
                    .get(SERVICES, Some("shop"), "model-classifier")
                    .is_none()
        },
    );
    assert!(api.get("/api/v1/namespaces", None, "shop").is_some());
    let (status, _) = up.post("/models/classifier/predict", &request);
    assert_eq!(status, 404);
}

const PIPELINE: &str = "apiVersion: cairn/v1
kind: Job
metadata: {name: prepare}
spec:
  command: [python, prepare.py]
  image: python:3.12-slim
---
apiVersion: cairn/v1
kind: Job
metadata: {name: train}
spec:
  command: [python, train.py]
  image: python:3.12-slim
  dependsOn: [prepare]
  params: {epochs: 3}
";

const JOBS: &str = "/apis/batch/v1/jobs";

/// Marks a run's Job as finished the way the Job controller does.
fn finish(api: &FakeApi, name: &str, condition: &str) {
    api.edit(JOBS, Some("shop"), name, "kube-controller-manager", |j| {
        j["status"] = json!({"conditions": [{"type": condition, "status": "True",
            "reason": if condition == "Failed" { "BackoffLimitExceeded" } else { "Completed" },
            "message": if condition == "Failed" { "Job has reached the specified backoff limit" } else { "" }}]});
    });
}

#[test]
fn pipelines_run_as_jobs_step_after_step_and_runs_are_recorded() {
    let api = FakeApi::start(40);
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", PROJECT)
        .write("specs/jobs.yaml", PIPELINE);
    let first = repo.commit("a pipeline");
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(state.path());
    let up = Up::start(
        repo.path(),
        &state.path().join("data"),
        &[
            "--runtime",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--status-interval",
            "200ms",
        ],
        &[],
    );
    up.wait_synced(&first);

    // The sync runs both jobs as one pipeline: `train` waits, suspended.
    api.wait_until(Duration::from_secs(10), "the runs' Jobs", |api| {
        api.get(JOBS, Some("shop"), "job-prepare-1").is_some()
            && api.get(JOBS, Some("shop"), "job-train-1").is_some()
    });
    let prepare = api.get(JOBS, Some("shop"), "job-prepare-1").unwrap();
    let train = api.get(JOBS, Some("shop"), "job-train-1").unwrap();
    assert_ne!(prepare["spec"]["suspend"], true);
    assert_eq!(train["spec"]["suspend"], true);
    assert_eq!(
        train["metadata"]["annotations"]["cairn.dev/depends-on"],
        "prepare"
    );
    assert_eq!(
        train["metadata"]["labels"]["cairn.dev/pipeline"],
        prepare["metadata"]["labels"]["cairn.dev/pipeline"]
    );
    up.wait_for(Duration::from_secs(10), "train to wait for prepare", || {
        let r = up.resource("Job", "train")?;
        (r["phase"] == "Idle" && r["message"] == "waiting for prepare").then_some(())
    });

    // `prepare` succeeds: `train` is resumed, and the run is recorded.
    finish(&api, "job-prepare-1", "Complete");
    api.wait_until(Duration::from_secs(10), "train to be resumed", |api| {
        api.get(JOBS, Some("shop"), "job-train-1").unwrap()["spec"]["suspend"] == false
    });
    // Only `suspend` changes: the fields the API server filled in stay.
    let resume = api
        .requests_with("PATCH")
        .into_iter()
        .rfind(|r| r.path.ends_with("/jobs/job-train-1"))
        .unwrap();
    assert_eq!(resume.body, Some(json!({"spec": {"suspend": false}})));
    let run = up.wait_run("prepare", 1);
    assert_eq!(run["state"], "succeeded", "{run}");

    // `train` fails: its run and status say why.
    finish(&api, "job-train-1", "Failed");
    let run = up.wait_run("train", 1);
    assert_eq!(run["state"], "failed", "{run}");
    up.wait_for(Duration::from_secs(10), "train's failure in the status", || {
        let r = up.resource("Job", "train")?;
        (r["phase"] == "Failed"
            && r["message"]
                == "the run failed: BackoffLimitExceeded: Job has reached the specified backoff limit")
            .then_some(())
    });

    // A manual run of `train` with a parameter runs its upstream job first.
    let (status, body) = up.post(
        "/api/v1/jobs/train/runs",
        &json!({"params": {"epochs": 10}}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["pipeline"].as_array().unwrap().len(), 2, "{body}");
    let manual = api.get(JOBS, Some("shop"), "job-train-2").unwrap();
    assert_eq!(manual["spec"]["suspend"], true);
    let env = &manual["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "CAIRN_PARAM_EPOCHS" && e["value"] == "10"),
        "{env}"
    );
    assert!(api.get(JOBS, Some("shop"), "job-prepare-2").is_some());

    // Its upstream run fails: it is skipped, never started.
    finish(&api, "job-prepare-2", "Failed");
    let run = up.wait_run("train", 2);
    assert_eq!(run["state"], "skipped", "{run}");
    assert_eq!(
        api.get(JOBS, Some("shop"), "job-train-2").unwrap()["spec"]["suspend"],
        true
    );
    up.wait_for(
        Duration::from_secs(10),
        "train to be reported skipped",
        || {
            let r = up.resource("Job", "train")?;
            (r["message"] == "skipped: upstream job `prepare` failed").then_some(())
        },
    );

    // A run's log is read from its pod.
    api.put(
        "/api/v1/pods",
        Some("shop"),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "job-train-1-x7k2p", "namespace": "shop",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"job-name": "job-train-1", "cairn.dev/name": "train"}}}),
    );
    api.set_log("job-train-1-x7k2p", "epoch 1/3\nTraceback: out of memory\n");
    let text = up.get_text("/api/v1/jobs/train/runs/1/logs").unwrap();
    assert_eq!(text, "epoch 1/3\nTraceback: out of memory\n");
    let (status, text) = up.get_raw("/api/v1/jobs/prepare/runs/9/logs").unwrap();
    assert_eq!(status, 404, "{text}");
}

/// Scale figures (run with `--ignored --nocapture`): the first sync of many
/// resources onto the fake API server, a sync that changes one of them,
/// and `cairn plan --runtime kubernetes` for all of them.
#[test]
#[ignore = "a measurement, not a check"]
fn scale_figures() {
    let n: usize = std::env::var("CAIRN_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let api = FakeApi::start(2);
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", PROJECT)
        .write("board/index.html", "hi\n")
        .write("models/classifier.onnx", std::fs::read(CLASSIFIER).unwrap());
    let mut specs = String::new();
    for i in 0..n {
        specs.push_str(&MODEL.replace("name: classifier", &format!("name: model-{i}")));
        specs.push_str("---\n");
        specs.push_str(
            &APP.replace("name: board", &format!("name: board-{i}"))
                .replace("name: nightly", &format!("name: nightly-{i}")),
        );
        specs.push_str("---\n");
    }
    repo.write("specs/many.yaml", &specs);
    let first = repo.commit("many workloads");
    let state = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(state.path());
    let up = Up::start(
        repo.path(),
        &state.path().join("data"),
        &[
            "--runtime",
            "kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--repo-url",
            "https://git.example.com/shop.git",
        ],
        &[],
    );
    up.wait_for(Duration::from_secs(300), "the first sync", || {
        let s = up.get("/api/v1/status");
        (s["lastSync"]["commit"] == first).then_some(())
    });
    let first_ms = up.get("/api/v1/sync")["lastSync"]["durationMs"]
        .as_i64()
        .unwrap_or(-1);
    let patches = api.requests_with("PATCH").len();
    repo.write(
        "specs/many.yaml",
        specs.replacen("replicas: 2", "replicas: 3", 1),
    );
    let second = repo.commit("scale one model");
    up.wait_synced(&second);
    let second_ms = up.get("/api/v1/sync")["lastSync"]["durationMs"]
        .as_i64()
        .unwrap_or(-1);
    // The plan of every object, from a commit with none of them.
    repo.write("specs/many.yaml", "");
    let none = repo.commit("nothing");
    let started = std::time::Instant::now();
    let out = cairn_test_support::cairn()
        .args([
            "plan",
            &repo.arg(),
            "--from",
            &none,
            "--to",
            &second,
            "--runtime",
            "kubernetes",
        ])
        .args(["--repo-url", "https://git.example.com/shop.git"])
        .output()
        .unwrap();
    let plan_ms = started.elapsed().as_millis();
    let yaml = String::from_utf8(out.stdout).unwrap();
    println!(
        "{} resources ({} objects): first sync {first_ms} ms ({patches} applies), \
         a one-model change {second_ms} ms, cairn plan --runtime kubernetes {plan_ms} ms ({} KiB of YAML)",
        3 * n + 2,
        yaml.matches("\nkind: ").count() + usize::from(yaml.starts_with("kind: ")),
        yaml.len() / 1024
    );
}
