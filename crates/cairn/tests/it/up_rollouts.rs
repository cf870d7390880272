//! Closing the loop on `cairn up`, end to end: a job's new artifact is
//! promoted through Git (a commit pinning the model to its digest), rolled
//! out as a canary under live traffic with delayed labels, promoted when
//! healthy and rolled back automatically when its accuracy regresses; and
//! `cairn models rollback` serves an earlier version again through Git.

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use cairn_test_support::{CLASSIFIER, LAB_PROJECT, cairn};
use serde_json::{Value, json};
use sha2::Digest;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const RETRAINED: &str = cairn_test_support::RETRAINED_CLASSIFIER;
const INVERTED: &str = cairn_test_support::INVERTED_CLASSIFIER;

/// Rows of the quickstart sample batch with the classifier's labels.
const ROWS: [([f64; 4], i64); 5] = [
    ([19.55, 28.77, 0.0926, 0.4251], 0),
    ([11.13, 16.62, 0.08151, 0.0458], 1),
    ([13.82, 24.49, 0.1162, 0.3381], 0),
    ([16.5, 18.29, 0.09686, 0.1663], 0),
    ([21.56, 22.39, 0.111, 0.4107], 0),
];

const JOB: &str = "apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: cp \"models/$CAIRN_PARAM_MODEL\" \"$CAIRN_OUTPUT_DIR/model.onnx\"
  trigger: {manual: true}
  params: {model: classifier.onnx}
  outputs:
    - {name: model, path: model.onnx}
";

const MODEL: &str = "apiVersion: cairn/v1
kind: Model
metadata:
  name: clf
spec:
  runtime: onnx
  # The latest run of `train`, promoted through Git.
  from:
    job: train
    output: model
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
  rollout:
    strategy: canary
    steps: [50, 100]
    interval: 3s
    analysis: {maxErrorRate: 0.2, maxAccuracyDrop: 0.2}
  monitoring:
    drift:
      plugin: psi
      reference: data/reference.csv
      window: 1h
      threshold: 0.25
      onDrift: {retrain: train, promote: commit}
---
apiVersion: cairn/v1
kind: Plugin
metadata:
  name: psi
spec:
  builtin: drift-psi
  world: drift-detector
";

fn sha256_of(path: &str) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// Predictions with delayed labels, sent until stopped; counts what came
/// back by status.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(up: &Up) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let url = up.url("");
        let thread = std::thread::spawn({
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (row, label) = ROWS[i % ROWS.len()];
                    i += 1;
                    let body = json!({"request": {
                        "mean_radius": row[0], "mean_texture": row[1],
                        "mean_smoothness": row[2], "worst_concavity": row[3],
                    }});
                    let r = agent
                        .post(&format!("{url}/models/clf/predict"))
                        .send_json(&body);
                    let mut r = match r {
                        Ok(r) => r,
                        Err(e) => {
                            failed.lock().unwrap().push(e.to_string());
                            continue;
                        }
                    };
                    let status = r.status().as_u16();
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    if status != 200 {
                        failed.lock().unwrap().push(format!("{status}: {text}"));
                        continue;
                    }
                    ok.fetch_add(1, Ordering::Relaxed);
                    let v: Value = serde_json::from_str(&text).unwrap();
                    let _ = agent
                        .post(&format!("{url}/models/clf/feedback"))
                        .send_json(json!([{"uuid": v["uuid"], "label": label}]));
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Traffic {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.lock().unwrap().clone(),
        )
    }
}

/// Runs `train` with `model` and waits for it to succeed.
fn train(up: &Up, model: &str) -> Value {
    let (code, run) = up.post(
        "/api/v1/jobs/train/runs",
        &json!({"params": {"model": model}}),
    );
    assert_eq!(code, 202, "{run}");
    let run = up.wait_run("train", run["run"]["number"].as_i64().unwrap());
    assert_eq!(run["state"], "succeeded", "{run}");
    run
}

/// The head commit's message and the spec file at the head.
fn head(repo: &TestRepo) -> (String, String) {
    let git = git2::Repository::open(repo.path()).unwrap();
    let commit = git.head().unwrap().peel_to_commit().unwrap();
    let blob = commit
        .tree()
        .unwrap()
        .get_path(std::path::Path::new("specs/model.yaml"))
        .unwrap()
        .to_object(&git)
        .unwrap()
        .peel_to_blob()
        .unwrap();
    (
        commit.message().unwrap().to_string(),
        String::from_utf8(blob.content().to_vec()).unwrap(),
    )
}

/// The registry's view of `clf` (null while it is not served).
fn versions(up: &Up) -> Value {
    match up.get_raw("/api/v1/models/clf/versions") {
        Ok((200, text)) => serde_json::from_str(&text).unwrap(),
        _ => Value::Null,
    }
}

fn version(v: &Value, number: i64) -> Value {
    v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["version"] == number)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn new_artifacts_are_promoted_through_git_and_rolled_out_as_canaries() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("specs/job.yaml", JOB)
        .write("specs/model.yaml", MODEL)
        .write("models/classifier.onnx", std::fs::read(CLASSIFIER).unwrap())
        .write("models/retrained.onnx", std::fs::read(RETRAINED).unwrap())
        .write("models/inverted.onnx", std::fs::read(INVERTED).unwrap())
        .write(
            "data/reference.csv",
            std::fs::read(cairn_test_support::REFERENCE_CSV).unwrap(),
        );
    let first = repo.commit("specs");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&first);

    // 1. The first artifact: promoted by a commit, then served as v1.
    train(&up, "classifier.onnx");
    let v1_sha = sha256_of(CLASSIFIER);
    up.wait_for(Duration::from_secs(30), "v1 serving", || {
        (versions(&up)["current"] == 1).then_some(())
    });
    let (message, spec) = head(&repo);
    assert!(
        message.starts_with("Promote model clf to artifact sha256"),
        "{message}"
    );
    assert!(
        spec.contains(&format!("    output: model\n    sha256: {v1_sha}\n")),
        "{spec}"
    );
    assert!(spec.contains("  # The latest run of `train`, promoted through Git."));

    // 2. A healthy retrained artifact: a canary at 50 %, then promoted.
    let traffic = Traffic::start(&up);
    train(&up, "retrained.onnx");
    let v2_sha = sha256_of(RETRAINED);
    up.wait_for(Duration::from_secs(30), "v2 canary", || {
        let v = versions(&up);
        (v["canary"]["version"] == 2).then_some(())
    });
    let v = versions(&up);
    assert_eq!(v["canary"]["weight"], 50, "{v}");
    assert_eq!(version(&v, 2)["traffic"], 50, "{v}");
    assert_eq!(version(&v, 1)["traffic"], 50, "{v}");
    assert_eq!(version(&v, 2)["sha256"], v2_sha.as_str());
    up.wait_for(Duration::from_secs(30), "v2 promoted", || {
        let v = versions(&up);
        (v["current"] == 2 && v["canary"].is_null()).then_some(())
    });
    let v = versions(&up);
    assert_eq!(version(&v, 2)["state"], "serving", "{v}");
    assert_eq!(version(&v, 2)["traffic"], 100, "{v}");
    assert_eq!(version(&v, 1)["state"], "retired", "{v}");
    let v2 = version(&v, 2);
    let steps: Vec<&str> = v2["rollout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["decision"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["start", "promote"], "{v}");
    // The canary really took traffic, and it was right.
    let promote = &version(&v, 2)["rollout"][1]["detail"];
    assert!(
        promote.as_str().unwrap().contains("accuracy 1.000"),
        "{promote}"
    );

    // 3. A bad artifact (every label inverted): rolled back on accuracy.
    train(&up, "inverted.onnx");
    let v3_sha = sha256_of(INVERTED);
    up.wait_for(Duration::from_secs(30), "v3 canary", || {
        (versions(&up)["canary"]["version"] == 3).then_some(())
    });
    up.wait_for(Duration::from_secs(30), "v3 rolled back", || {
        (version(&versions(&up), 3)["state"] == "rolled-back").then_some(())
    });
    let v = versions(&up);
    assert_eq!(v["current"], 2, "{v}");
    assert!(v["canary"].is_null(), "{v}");
    assert_eq!(version(&v, 2)["traffic"], 100, "{v}");
    let rollback = version(&v, 3)["rollout"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .unwrap();
    assert_eq!(rollback["decision"], "rollback", "{v}");
    assert!(
        rollback["detail"]
            .as_str()
            .unwrap()
            .starts_with("accuracy 0.000 vs 1.000"),
        "{rollback}"
    );
    let status = up.resource("Model", "clf").unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("canary of version 3 rolled back"),
        "{status}"
    );
    // Git still pins the bad artifact, which is not rolled out again.
    let (_, spec) = head(&repo);
    assert!(spec.contains(&v3_sha), "{spec}");
    let (traffic_ok, failed) = traffic.stop();
    assert!(
        failed.is_empty(),
        "requests failed during rollouts: {failed:?}"
    );
    assert!(traffic_ok > 100, "{traffic_ok} predictions");

    // 4. `cairn models rollback` serves v1 again, through Git.
    let out = cairn()
        .args([
            "models",
            "rollback",
            "clf",
            "--to",
            "1",
            "--server",
            &up.url(""),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("pinned `clf` to version 1"), "{printed}");
    let (message, spec) = head(&repo);
    assert!(
        message.starts_with("Roll back model clf to version 1"),
        "{message}"
    );
    assert!(spec.contains(&v1_sha), "{spec}");
    up.wait_for(Duration::from_secs(30), "v1 serving again", || {
        let v = versions(&up);
        (v["current"] == 1 && v["canary"].is_null()).then_some(())
    });
    // The history, as people read it.
    let out = cairn()
        .args(["models", "history", "clf", "--server", &up.url("")])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    for expected in [
        "v3",
        "rolled-back",
        "v1",
        "serving",
        "100%",
        "Rollouts:",
        "rollback",
    ] {
        assert!(
            printed.contains(expected),
            "`{expected}` missing from:\n{printed}"
        );
    }
    // Every decision is in the audit log.
    let audit = up.get("/api/v1/audit?limit=200").to_string();
    for action in [
        "pin",
        "rollout-start",
        "rollout-promote",
        "rollout-rollback",
    ] {
        assert!(
            audit.contains(action),
            "{action} missing from the audit log"
        );
    }
    // Bad requests get clear errors.
    let (code, body) = up.post("/api/v1/models/clf/rollback", &json!({"version": 42}));
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("has no version 42")
    );
    let (code, body) = up.post("/api/v1/models/clf/rollback", &json!({"to": 1}));
    assert_eq!(code, 400, "{body}");
}

/// Posts predictions for `rows` (each four features).
fn predict_rows(up: &Up, rows: &[[f64; 4]]) {
    for r in rows {
        let (code, body) = up.post(
            "/models/clf/predict",
            &json!({"request": {
                "mean_radius": r[0], "mean_texture": r[1],
                "mean_smoothness": r[2], "worst_concavity": r[3],
            }}),
        );
        assert_eq!(code, 200, "{body}");
    }
}

fn reference_rows() -> Vec<[f64; 4]> {
    std::fs::read_to_string(cairn_test_support::REFERENCE_CSV)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let v: Vec<f64> = l.split(',').map(|c| c.parse().unwrap()).collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time.
fn ms(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap_or_else(|| panic!("a time: {t}")))
        .unwrap()
        .timestamp_millis()
}

#[test]
fn drift_retrains_promotes_through_git_and_rolls_out() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write(
            "specs/job.yaml",
            JOB.replace(
                "params: {model: classifier.onnx}",
                "params: {model: retrained.onnx}",
            ),
        )
        .write("specs/model.yaml", MODEL)
        .write("models/classifier.onnx", std::fs::read(CLASSIFIER).unwrap())
        .write("models/retrained.onnx", std::fs::read(RETRAINED).unwrap())
        .write(
            "data/reference.csv",
            std::fs::read(cairn_test_support::REFERENCE_CSV).unwrap(),
        );
    let first = repo.commit("specs");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&first);
    train(&up, "classifier.onnx");
    up.wait_for(Duration::from_secs(30), "v1 serving", || {
        (versions(&up)["current"] == 1).then_some(())
    });

    // Inputs like the reference: no drift.
    let reference = reference_rows();
    predict_rows(&up, &reference[..300]);
    let (code, verdict) = up.post("/api/v1/models/clf/drift/evaluate", &json!({}));
    assert_eq!(code, 200, "{verdict}");
    assert_eq!(verdict["drifted"], false, "{verdict}");

    // Inputs that shift: larger tumours, smoother textures.
    let shifted: Vec<[f64; 4]> = reference
        .iter()
        .map(|r| [r[0] * 1.6, r[1] * 0.6, r[2], r[3] * 1.5])
        .collect();
    predict_rows(&up, &shifted);
    // One drifted window is not enough (hysteresis: 2 in a row).
    let (_, verdict) = up.post("/api/v1/models/clf/drift/evaluate", &json!({}));
    assert_eq!(verdict["drifted"], true, "{verdict}");
    std::thread::sleep(Duration::from_millis(300));
    let runs = up.get("/api/v1/jobs/train/runs");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");
    let (_, verdict) = up.post("/api/v1/models/clf/drift/evaluate", &json!({}));
    assert_eq!(verdict["drifted"], true, "{verdict}");
    let drifted_at = verdict["timeMs"].as_i64().unwrap();

    // The retraining run, with the drifted window as parameters.
    let run = up.wait_for(Duration::from_secs(30), "a drift-triggered run", || {
        let runs = up.get("/api/v1/jobs/train/runs");
        runs["runs"]
            .as_array()?
            .iter()
            .find(|r| r["trigger"] == "drift" && r["state"] == "succeeded")
            .cloned()
    });
    assert!(run["params"]["drift_from"].is_string(), "{run}");
    assert!(
        run["params"]["drift_score"].as_f64().unwrap() > 0.25,
        "{run}"
    );
    let traffic = Traffic::start(&up);

    // Promoted through Git, rolled out as a canary, then serving everything.
    up.wait_for(Duration::from_secs(30), "v2 canary", || {
        (versions(&up)["canary"]["version"] == 2).then_some(())
    });
    let (message, spec) = head(&repo);
    assert!(
        message.contains("Retrained after drift was detected"),
        "{message}"
    );
    assert!(spec.contains(&sha256_of(RETRAINED)), "{spec}");
    up.wait_for(Duration::from_secs(30), "v2 promoted", || {
        let v = versions(&up);
        (v["current"] == 2 && v["canary"].is_null()).then_some(())
    });
    let (served, failed) = traffic.stop();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(served > 20, "{served}");

    // The timeline, from the verdict that started it.
    let v2 = version(&versions(&up), 2);
    let audit = up.get("/api/v1/audit?limit=200");
    let entries = audit["entries"].as_array().unwrap();
    let at = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .map(|e| ms(&e["at"]))
            .unwrap_or_else(|| panic!("no `{action}` in the audit log: {audit}"))
    };
    let steps = v2["rollout"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["decision"], "promote");
    let timeline = [
        ("drift verdict (2nd in a row)", drifted_at),
        ("retraining run started", ms(&run["startedAt"])),
        ("retraining run finished", ms(&run["finishedAt"])),
        ("promotion committed", at("pin")),
        ("canary at 50 %", ms(&steps[0]["at"])),
        ("canary promoted, 100 %", ms(&steps.last().unwrap()["at"])),
    ];
    println!("timeline (ms after the verdict):");
    for (what, t) in timeline {
        println!("  {:>7}  {what}", t - drifted_at);
    }
    let mut previous = drifted_at;
    for (what, t) in timeline {
        assert!(t >= previous - 1, "{what} out of order: {timeline:?}");
        previous = t;
    }
}
