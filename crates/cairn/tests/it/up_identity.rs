//! A model's identity is its project and its name: two projects that both
//! declare a model `clf` (with different artifacts) get two endpoints, two
//! event logs, two sets of business metrics and feedback, two registries
//! and two sets of access keys, each on `/projects/PROJECT/models/clf/...`,
//! `/api/v1/projects/PROJECT/models/clf/...` and the Open Inference
//! Protocol's `/v2/models/PROJECT.clf/...`; the bare `/models/clf/...`
//! answers 409 naming both projects, while a name that only one project
//! uses keeps working bare. Applications and jobs likewise.

use cairn_test_support::up::Up;
use cairn_test_support::{CLASSIFIER, SAMPLE_REQUEST, TestRepo};
use serde_json::{Value, json};
use sha2::Digest;
use std::time::Duration;

/// Every label of the quickstart classifier flipped.
const INVERTED: &str = cairn_test_support::INVERTED_CLASSIFIER;

const PROJECTS: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: alpha
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: Project
metadata:
  name: beta
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
";

/// Model `name` of `project` serving `artifact`, with access keys.
fn model(project: &str, name: &str, artifact: &str, auth: bool) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Model
metadata:
  name: {name}
  project: {project}
spec:
  runtime: onnx
  artifact: {artifact}
  task: classification
  auth: {{required: {auth}}}
  signature:
    inputs:
      - {{name: mean_radius, type: float}}
      - {{name: mean_texture, type: float}}
      - {{name: mean_smoothness, type: float}}
      - {{name: worst_concavity, type: float}}
    outputs:
      - {{name: label, type: int}}
      - {{name: probabilities, type: float, shape: [2]}}
"
    )
}

/// A manual job `name` of `project` that prints `text`.
fn job(project: &str, name: &str, text: &str) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Job
metadata:
  name: {name}
  project: {project}
spec:
  command: [sh, -c, 'echo {text}']
  trigger: {{manual: true}}
"
    )
}

/// Application `name` of `project`: a server that answers its project.
fn app(project: &str, name: &str) -> String {
    format!(
        "apiVersion: cairn/v1
kind: Application
metadata:
  name: {name}
  project: {project}
spec:
  framework: command
  command: [python3, server.py, \"$(PORT)\"]
  path: app
  healthPath: /healthz
  env:
    ANSWER: {project}
"
    )
}

/// The application: `/healthz`, and every other path answered with
/// `answer=$ANSWER path=PATH`.
const SERVER_PY: &str = r#"import http.server
import os
import sys

ANSWER = os.environ.get("ANSWER", "none")


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_GET(self):
        body = ("ok\n" if self.path == "/healthz" else f"answer={ANSWER} path={self.path}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// A repository with the two projects and `files`, committed; a running
/// `cairn up` on it that has synced the commit. Fields drop in order: the
/// server stops before its directories go.
struct Env {
    up: Up,
    _data: tempfile::TempDir,
    _repo: TestRepo,
}

impl Env {
    fn start(files: &[(&str, String)]) -> Env {
        let repo = TestRepo::new();
        repo.write("specs/projects.yaml", PROJECTS)
            .write(
                "models/classifier.onnx",
                std::fs::read(CLASSIFIER).expect("the quickstart model"),
            )
            .write(
                "models/inverted.onnx",
                std::fs::read(INVERTED).expect("the inverted model"),
            );
        for (path, text) in files {
            repo.write(path, text);
        }
        let commit = repo.commit("specs");
        let data = tempfile::tempdir().unwrap();
        let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
        up.wait_synced(&commit);
        Env {
            up,
            _data: data,
            _repo: repo,
        }
    }

    /// Waits until the resource `kind` `project/name` is Ready.
    fn wait_ready(&self, kind: &str, project: &str, name: &str) {
        self.up.wait_for(
            Duration::from_secs(60),
            &format!("{kind} {project}/{name} ready"),
            || {
                let s = self.up.get("/api/v1/status");
                s["resources"]
                    .as_array()?
                    .iter()
                    .any(|r| {
                        r["kind"] == kind
                            && r["project"] == project
                            && r["name"] == name
                            && r["phase"] == "Ready"
                    })
                    .then_some(())
            },
        );
    }
}

/// An answer: status and body.
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): HTTP {} {}", self.status, self.text))
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: HTTP {} {}", self.status, self.text))
            .to_string()
    }
}

fn call(up: &Up, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = up.url(path);
    // A model's key when given, else the admin token.
    let auth = key.or(up.token.as_deref()).map(|k| format!("Bearer {k}"));
    let response = match method {
        "GET" => {
            let mut req = agent.get(&url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        }
        "POST" => {
            let mut req = agent.post(&url).header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.send(body.unwrap_or(&json!({})).to_string())
        }
        other => panic!("unsupported method {other}"),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", up.logs()));
    Answer {
        status: response.status().as_u16(),
        text: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

fn get(up: &Up, path: &str) -> Answer {
    call(up, "GET", path, None, None)
}

fn post(up: &Up, path: &str, key: Option<&str>, body: &Value) -> Answer {
    call(up, "POST", path, key, Some(body))
}

/// The quickstart's sample request.
fn sample() -> Value {
    let body: Value =
        serde_json::from_str(&std::fs::read_to_string(SAMPLE_REQUEST).unwrap()).unwrap();
    body["request"].clone()
}

/// The same row as an OIP v2 request.
fn oip_request() -> Value {
    let r = sample();
    let row: Vec<Value> = [
        "mean_radius",
        "mean_texture",
        "mean_smoothness",
        "worst_concavity",
    ]
    .iter()
    .map(|f| r[*f].clone())
    .collect();
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": row}]})
}

/// The label of an OIP answer.
fn oip_label(answer: &Value) -> Value {
    let outputs = answer["outputs"].as_array().expect("outputs");
    let label = outputs
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap_or_else(|| panic!("no label output: {answer}"));
    label["data"][0].clone()
}

/// Asserts a 409 whose message names both projects.
fn assert_ambiguous(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 409, "{what}: {}", answer.text);
    let message = answer.error();
    assert!(
        message.contains("alpha") && message.contains("beta"),
        "{what}: {message}"
    );
}

/// `cairn ARGS` with `CAIRN_SERVER` set → (success, stdout, stderr).
fn cli(up: &Up, args: &[&str]) -> (bool, String, String) {
    let out = cairn_test_support::cairn()
        .args(args)
        .env("CAIRN_SERVER", up.url(""))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sha256_of(path: &str) -> String {
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn two_projects_serve_models_of_the_same_name_apart() {
    let env = Env::start(&[
        (
            "specs/alpha.yaml",
            model("alpha", "clf", "models/classifier.onnx", true),
        ),
        (
            "specs/beta.yaml",
            model("beta", "clf", "models/inverted.onnx", true),
        ),
        (
            "specs/solo.yaml",
            model("alpha", "solo", "models/classifier.onnx", false),
        ),
    ]);
    let up = &env.up;
    for (project, name) in [("alpha", "clf"), ("beta", "clf"), ("alpha", "solo")] {
        env.wait_ready("Model", project, name);
    }

    // Both are served, each with its own artifact.
    let listed = up.get("/api/v1/models");
    let mut clfs: Vec<(String, String)> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == "clf")
        .map(|m| {
            (
                m["project"].as_str().unwrap_or_default().to_string(),
                m["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    clfs.sort();
    assert_eq!(
        clfs,
        vec![
            ("alpha".to_string(), sha256_of(CLASSIFIER)),
            ("beta".to_string(), sha256_of(INVERTED)),
        ],
        "both projects' clf are listed: {listed}"
    );

    // Access keys, per project.
    let mut keys = Vec::new();
    for project in ["alpha", "beta"] {
        let a = post(
            up,
            &format!("/api/v1/projects/{project}/models/clf/keys"),
            None,
            &json!({}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        keys.push(a.json()["key"].as_str().unwrap().to_string());
    }
    let (alpha_key, beta_key) = (keys[0].as_str(), keys[1].as_str());
    let listed = get(up, "/api/v1/projects/alpha/models/clf/keys").json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    assert_ambiguous(&get(up, "/api/v1/models/clf/keys"), "bare keys");

    // Predictions: each project's model answers with its own artifact.
    let a = post(
        up,
        "/projects/alpha/models/clf/predict",
        Some(alpha_key),
        &json!({"request": sample()}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let alpha_answer = a.json();
    assert_eq!(
        alpha_answer["response"]["label"],
        json!(0),
        "{alpha_answer}"
    );
    assert_eq!(alpha_answer["model"]["project"], "alpha", "{alpha_answer}");
    let alpha_uuid = alpha_answer["uuid"].as_str().unwrap().to_string();
    let a = post(
        up,
        "/projects/beta/models/clf/predict",
        Some(beta_key),
        &json!({"request": sample()}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let beta_answer = a.json();
    assert_eq!(beta_answer["response"]["label"], json!(1), "{beta_answer}");
    assert_eq!(beta_answer["model"]["project"], "beta", "{beta_answer}");
    let beta_uuid = beta_answer["uuid"].as_str().unwrap().to_string();
    // A key opens its own project's model only.
    let a = post(
        up,
        "/projects/beta/models/clf/predict",
        Some(alpha_key),
        &json!({"request": sample()}),
    );
    assert_eq!(a.status, 403, "{}", a.text);
    // The bare route is ambiguous; an unknown project is a 404.
    assert_ambiguous(
        &post(
            up,
            "/models/clf/predict",
            Some(alpha_key),
            &json!({"request": sample()}),
        ),
        "bare predict",
    );
    let a = post(
        up,
        "/projects/gamma/models/clf/predict",
        None,
        &json!({"request": sample()}),
    );
    assert_eq!(a.status, 404, "{}", a.text);

    // The Open Inference Protocol: `PROJECT.NAME`.
    for (project, key, label) in [("alpha", alpha_key, 0), ("beta", beta_key, 1)] {
        let a = get(up, &format!("/v2/models/{project}.clf/ready"));
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json()["ready"], true);
        let a = get(up, &format!("/v2/models/{project}.clf/versions/1/ready"));
        assert_eq!(a.status, 200, "{}", a.text);
        let a = post(
            up,
            &format!("/v2/models/{project}.clf/infer"),
            Some(key),
            &oip_request(),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(oip_label(&a.json()), json!(label), "{project}: {}", a.text);
    }
    assert_ambiguous(&get(up, "/v2/models/clf/ready"), "bare OIP ready");
    assert_ambiguous(
        &post(up, "/v2/models/clf/infer", Some(alpha_key), &oip_request()),
        "bare OIP infer",
    );

    // Events name their project.
    let event = up.get(&format!("/api/v1/inferences/{alpha_uuid}"));
    assert_eq!(
        (&event["project"], &event["model"]),
        (&json!("alpha"), &json!("clf")),
        "{event}"
    );
    let event = up.get(&format!("/api/v1/inferences/{beta_uuid}"));
    assert_eq!(
        (&event["project"], &event["model"]),
        (&json!("beta"), &json!("clf")),
        "{event}"
    );

    // Feedback and business metrics join the project's own inferences
    // only.
    let a = post(
        up,
        "/projects/alpha/models/clf/feedback",
        Some(alpha_key),
        &json!([{"uuid": alpha_uuid, "label": 0}]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["matched"], 1);
    let a = post(
        up,
        "/projects/alpha/models/clf/feedback",
        Some(alpha_key),
        &json!([{"uuid": beta_uuid, "label": 0}]),
    );
    assert_eq!(a.status, 404, "another project's inference: {}", a.text);
    let a = post(
        up,
        "/projects/beta/models/clf/feedback",
        Some(beta_key),
        &json!([{"uuid": beta_uuid, "label": 0}]),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let a = post(
        up,
        "/projects/alpha/models/clf/metrics",
        Some(alpha_key),
        &json!({"uuid": alpha_uuid, "metrics": {"revenue": 10}}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_ambiguous(
        &post(
            up,
            "/models/clf/feedback",
            Some(alpha_key),
            &json!([{"uuid": alpha_uuid, "label": 0}]),
        ),
        "bare feedback",
    );

    // Aggregates per project: alpha predicted 0 and was right, beta
    // predicted 1 and was wrong; the revenue is alpha's.
    for (project, accuracy, revenue) in [("alpha", 1.0, Some(1)), ("beta", 0.0, None)] {
        let agg = up.get(&format!(
            "/api/v1/projects/{project}/models/clf/metrics/aggregate?window=36500d"
        ));
        let windows = agg["windows"].as_array().unwrap();
        let v1 = windows
            .iter()
            .find(|w| w["version"] == "1")
            .unwrap_or_else(|| panic!("{project}: {agg}"));
        // The Cairn prediction and the OIP inference.
        assert_eq!(v1["requests"], 2, "{project}: {agg}");
        assert_eq!(v1["labeled"], 1, "{project}: {agg}");
        assert_eq!(v1["accuracy"], json!(accuracy), "{project}: {agg}");
        assert_eq!(
            v1["businessMetrics"]["revenue"]["count"].as_u64(),
            revenue,
            "{project}: {agg}"
        );
    }
    assert_ambiguous(
        &get(up, "/api/v1/models/clf/metrics/aggregate"),
        "bare aggregate",
    );

    // The registry, technical metrics and drift, per project.
    let versions = up.get("/api/v1/projects/beta/models/clf/versions");
    assert_eq!(versions["project"], "beta", "{versions}");
    assert_eq!(
        versions["versions"][0]["sha256"],
        sha256_of(INVERTED),
        "{versions}"
    );
    assert_ambiguous(&get(up, "/api/v1/models/clf/versions"), "bare versions");
    let series = up.get("/api/v1/projects/alpha/models/clf/metrics");
    assert_eq!(series["project"], "alpha", "{series}");
    assert_ambiguous(&get(up, "/api/v1/models/clf/metrics"), "bare metrics");
    let drift = up.get("/api/v1/projects/alpha/models/clf/drift");
    assert_eq!(drift["monitored"], false, "{drift}");
    assert_ambiguous(&get(up, "/api/v1/models/clf/drift"), "bare drift");
    let text = up.get_text("/metrics").unwrap();
    for project in ["alpha", "beta"] {
        let needle = format!(r#"project="{project}",model="clf""#);
        assert!(
            text.lines()
                .any(|l| l.starts_with("cairn_model_requests_total{") && l.contains(&needle)),
            "{needle}:\n{text}"
        );
    }

    // A name one project uses keeps working bare.
    let a = post(
        up,
        "/models/solo/predict",
        None,
        &json!({"request": sample()}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["model"]["project"], "alpha");
    let a = get(up, "/v2/models/solo/ready");
    assert_eq!(a.status, 200, "{}", a.text);
    let a = get(up, "/api/v1/models/solo/versions");
    assert_eq!(a.status, 200, "{}", a.text);

    // The CLI takes PROJECT/NAME, and names the projects of an ambiguous
    // name.
    let request = sample().to_string();
    let (ok, stdout, stderr) = cli(
        up,
        &["predict", "beta/clf", "--key", beta_key, "--data", &request],
    );
    assert!(ok, "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["response"]["label"], json!(1), "{stdout}");
    let (ok, _, stderr) = cli(
        up,
        &["predict", "clf", "--key", beta_key, "--data", &request],
    );
    assert!(!ok);
    assert!(
        stderr.contains("alpha") && stderr.contains("beta"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = cli(up, &["metrics", "alpha/clf", "--window", "36500d"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("alpha/clf"), "{stdout}");
    let (ok, stdout, stderr) = cli(up, &["keys", "list", "beta/clf"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("key_").count(), 1, "{stdout}");
    let (ok, stdout, stderr) = cli(up, &["models", "history", "beta/clf"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&sha256_of(INVERTED)[..12]), "{stdout}");
}

#[test]
fn two_projects_run_applications_and_jobs_of_the_same_name_apart() {
    let env = Env::start(&[
        (
            "specs/alpha.yaml",
            format!(
                "{}---\n{}",
                app("alpha", "web"),
                job("alpha", "train", "from-alpha")
            ),
        ),
        (
            "specs/beta.yaml",
            format!(
                "{}---\n{}",
                app("beta", "web"),
                job("beta", "train", "from-beta")
            ),
        ),
        ("app/server.py", SERVER_PY.to_string()),
    ]);
    let up = &env.up;
    env.wait_ready("Application", "alpha", "web");
    env.wait_ready("Application", "beta", "web");

    // Applications: each project's under its own prefix.
    for project in ["alpha", "beta"] {
        let text = up
            .get_text(&format!("/projects/{project}/apps/web/hello"))
            .unwrap_or_else(|e| panic!("{project}: {e}\n{}", up.logs()));
        assert!(text.contains(&format!("answer={project}")), "{text}");
        assert!(text.contains("path=/hello"), "{text}");
    }
    let (status, text) = up.get_raw("/apps/web/").unwrap();
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("alpha") && text.contains("beta"), "{text}");

    // Jobs: runs per project.
    for project in ["alpha", "beta"] {
        let a = post(
            up,
            &format!("/api/v1/projects/{project}/jobs/train/runs"),
            None,
            &json!({}),
        );
        assert_eq!(a.status, 202, "{}", a.text);
        assert_eq!(a.json()["run"]["project"], project, "{}", a.text);
    }
    assert_ambiguous(&get(up, "/api/v1/jobs/train/runs"), "bare job runs");
    for project in ["alpha", "beta"] {
        up.wait_for(
            Duration::from_secs(60),
            &format!("{project}/train run #1"),
            || {
                let a = get(up, &format!("/api/v1/projects/{project}/jobs/train/runs/1"));
                (a.status == 200 && a.json()["state"] == "succeeded").then_some(())
            },
        );
        let runs = up.get(&format!("/api/v1/projects/{project}/jobs/train/runs"));
        assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
        let log = up
            .get_text(&format!(
                "/api/v1/projects/{project}/jobs/train/runs/1/logs"
            ))
            .unwrap();
        assert!(log.contains(&format!("from-{project}")), "{log}");
    }

    // The CLI: PROJECT/NAME for runs and logs.
    let (ok, _, stderr) = cli(up, &["run", "beta/train", "--follow"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = cli(up, &["logs", "beta/train"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("from-beta"), "{stdout}");
    let (ok, _, stderr) = cli(up, &["logs", "train"]);
    assert!(!ok);
    assert!(
        stderr.contains("alpha") && stderr.contains("beta"),
        "{stderr}"
    );
}
