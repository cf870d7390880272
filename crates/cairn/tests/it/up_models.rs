// tidy: long file: every way a model is served, end to end; one repository fixture shared by its cases.
//! Models on `cairn up`, end to end: the real binary on a real Git
//! repository, talked to over HTTP (and through the CLI). ONNX models (the
//! quickstart's classifier, committed into each test repository or produced
//! by a job), `process` models (a small standard-library server) and
//! `function` models (a Python function behind the bundled runner); Cairn's
//! prediction API and the Open Inference Protocol v2; access keys; limits;
//! rollouts under load; durability across a crash; metrics.

use cairn_test_support::{CLASSIFIER, LAB_PROJECT as PROJECT, SAMPLE_BATCH, SAMPLE_REQUEST};

use cairn_test_support::TestRepo;
use cairn_test_support::up::Up;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The quickstart classifier's signature, as `spec` lines.
const SIGNATURE: &str = "signature:
  inputs:
    - {name: mean_radius, type: float}
    - {name: mean_texture, type: float}
    - {name: mean_smoothness, type: float}
    - {name: worst_concavity, type: float}
  outputs:
    - {name: label, type: int}
    - {name: probabilities, type: float, shape: [2]}";

/// A Model spec; `fields` are its `spec` lines, unindented.
fn model(name: &str, fields: &str) -> String {
    let mut out = format!("apiVersion: cairn/v1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n");
    for line in fields.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// The committed classifier served as `name`, with more `spec` lines.
fn classifier(name: &str, extra: &str) -> String {
    model(
        name,
        &format!("runtime: onnx\nartifact: models/classifier.onnx\n{SIGNATURE}\n{extra}"),
    )
}

/// A process model's server: the Python standard library only. It listens
/// on its first argument (or `$PORT`), answers `GET /healthz`, and `POST
/// /predict` `{"request": {"a": A, "b": B}}` with `{"response": {"sum":
/// A + B, "version": $VERSION, "pid": PID}}`.
const SERVER_PY: &str = r#"import http.server
import json
import os
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["PORT"])
VERSION = os.environ.get("VERSION", "none")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, "ok")
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/predict":
            self.reply(404, {"error": "not found"})
            return
        request = body.get("request") or {}
        self.reply(
            200,
            {"response": {"sum": request["a"] + request["b"], "version": VERSION, "pid": os.getpid()}},
        )


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
"#;

/// Function models: `predict` doubles `x` (and raises when asked to),
/// `sleepy` takes a second.
const PREDICT_PY: &str = r#"import time


def predict(request):
    if request.get("fail"):
        raise ValueError("cannot double " + str(request["x"]))
    return {"double": request["x"] * 2}


def sleepy(request):
    time.sleep(1)
    return {"slept": True}
"#;

/// A repository with the project, the classifier file and `files`,
/// committed; a running `cairn up` on it that has synced the commit. Fields
/// drop in order: the server stops before its directories go.
struct Env {
    up: Up,
    commit: String,
    data: tempfile::TempDir,
    repo: TestRepo,
}

impl Env {
    fn start(files: &[(&str, String)]) -> Env {
        let repo = TestRepo::new();
        repo.write("specs/project.yaml", PROJECT).write(
            "models/classifier.onnx",
            std::fs::read(CLASSIFIER).expect("the quickstart model"),
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
            commit,
            data,
            repo,
        }
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.data.path().join("state")
    }

    /// Writes `files`, commits and waits for the sync; returns the commit.
    fn change(&self, files: &[(&str, String)], message: &str) -> String {
        for (path, text) in files {
            self.repo.write(path, text);
        }
        let commit = self.repo.commit(message);
        self.up.wait_synced(&commit);
        commit
    }
}

// ------------------------------------------------------------------ HTTP --

/// An answer: status, headers, body.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): HTTP {} {}", self.status, self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error message of an error answer.
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: HTTP {} {}", self.status, self.text))
            .to_string()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A request: GET without a body, POST with one.
fn try_call(
    agent: &ureq::Agent,
    up: &Up,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Answer, ureq::Error> {
    let url = up.url(path);
    // The admin token on the API, unless the test sends its own
    // `Authorization` (predictions answer to the models' own keys).
    let bearer = up.token.as_ref().map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = headers.to_vec();
    if let Some(b) = &bearer
        && (path.starts_with("/api/") || path == "/metrics")
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        headers.push(("authorization", b));
    }
    let headers = headers.as_slice();
    let mut response = match (method, body) {
        ("GET", None) => {
            let mut req = agent.get(&url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.call()?
        }
        ("DELETE", None) => {
            let mut req = agent.delete(&url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.call()?
        }
        ("POST", body) => {
            let mut req = agent.post(&url).header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.send(body.unwrap_or_default())?
        }
        other => panic!("unsupported request {other:?}"),
    };
    Ok(Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.body_mut().read_to_string()?,
    })
}

fn call(
    up: &Up,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    try_call(&agent(), up, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", up.logs()))
}

fn get(up: &Up, path: &str) -> Answer {
    call(up, "GET", path, &[], None)
}

fn post(up: &Up, path: &str, body: &Value) -> Answer {
    call(up, "POST", path, &[], Some(body.to_string().as_bytes()))
}

/// `POST /models/NAME/predict` with `{"request": request}`.
fn predict(up: &Up, name: &str, request: Value) -> Answer {
    post(
        up,
        &format!("/models/{name}/predict"),
        &json!({ "request": request }),
    )
}

/// The `request` of a quickstart sample file.
fn sample(path: &str) -> Value {
    let body: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    body["request"].clone()
}

/// Waits until model `name` is served and ready (for a process model: a
/// replica answers its health check).
fn wait_ready(up: &Up, name: &str) {
    up.wait_for(
        Duration::from_secs(60),
        &format!("model {name} ready"),
        || {
            let (status, text) = up.get_raw(&format!("/v2/models/{name}/ready")).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            (status == 200 && v["ready"] == true).then_some(())
        },
    );
}

/// Waits until model `name` serves version `version`.
fn wait_version(up: &Up, name: &str, version: i64) {
    up.wait_for(
        Duration::from_secs(60),
        &format!("model {name} version {version}"),
        || {
            let (status, text) = up.get_raw("/api/v1/models").ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            (status == 200
                && v["models"]
                    .as_array()?
                    .iter()
                    .any(|m| m["name"] == name && m["version"] == version))
            .then_some(())
        },
    );
}

/// `cairn ARGS` with `CAIRN_SERVER` set → (success, stdout, stderr).
/// (The variable rather than `--server`: `cairn keys` takes `--server`
/// only before its subcommand.)
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

// ----------------------------------------------------------------- Tests --

#[test]
fn predictions_match_the_model_and_are_recorded() {
    let env = Env::start(&[("specs/model.yaml", classifier("classifier", ""))]);
    let up = &env.up;
    wait_ready(up, "classifier");

    // One row.
    let request = sample(SAMPLE_REQUEST);
    let a = predict(up, "classifier", request.clone());
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["response"]["label"], json!(0), "{body}");
    let p = body["response"]["probabilities"].as_array().unwrap();
    assert_eq!(p.len(), 2, "{body}");
    let (p0, p1) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
    assert!((p0 - 0.99979).abs() < 1e-4, "{body}");
    assert!((p0 + p1 - 1.0).abs() < 1e-5, "{body}");
    assert_eq!(body["model"]["name"], "classifier");
    assert_eq!(body["model"]["version"], "1");
    assert_eq!(body["model"]["commit"], env.commit.as_str());

    // The UUID: a v7, in the body and in the header.
    let id = body["uuid"].as_str().expect("a uuid").to_string();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert_eq!(uuid.get_version_num(), 7, "{id}");
    assert_eq!(a.header("cairn-inference-id"), Some(id.as_str()));

    // The stored event.
    let event = up.get(&format!("/api/v1/inferences/{id}"));
    assert_eq!(event["uuid"], id.as_str());
    assert_eq!(event["model"], "classifier");
    assert_eq!(event["version"], "1");
    assert_eq!(event["commit"], env.commit.as_str());
    assert_eq!(event["status"], 200);
    assert_eq!(event["inputs"], request);
    assert_eq!(event["outputs"], body["response"]);
    assert!(event["latencyUs"].as_u64().is_some(), "{event}");

    // A batch.
    let a = predict(up, "classifier", sample(SAMPLE_BATCH));
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["response"]["label"], json!([0, 1, 0, 0, 0]), "{body}");
    let rows = body["response"]["probabilities"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        let sum: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-5, "{body}");
    }
    let second = uuid::Uuid::parse_str(body["uuid"].as_str().unwrap()).unwrap();
    assert_ne!(second, uuid);
    assert!(second > uuid, "v7 ids sort by time");
    let event = up.get(&format!("/api/v1/inferences/{second}"));
    assert_eq!(event["outputs"]["label"], json!([0, 1, 0, 0, 0]));

    // Unknown ids.
    let a = get(up, &format!("/api/v1/inferences/{}", uuid::Uuid::now_v7()));
    assert_eq!(a.status, 404, "{}", a.text);
    assert_eq!(get(up, "/api/v1/inferences/not-a-uuid").status, 400);

    // The CLI, with a file holding a whole body.
    let (ok, stdout, stderr) = cli(
        up,
        &[
            "predict",
            "classifier",
            "--data",
            &format!("@{SAMPLE_REQUEST}"),
        ],
    );
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["response"]["label"], json!(0), "{stdout}");
    // An unknown model.
    let a = predict(up, "nope", request);
    assert_eq!(a.status, 404);
    assert!(a.error().contains("nope"), "{}", a.text);
}

#[test]
fn the_open_inference_protocol_serves_onnx_models() {
    let env = Env::start(&[("specs/model.yaml", classifier("classifier", ""))]);
    let up = &env.up;
    wait_ready(up, "classifier");

    assert_eq!(up.get("/v2/health/live")["live"], true);
    let ready = get(up, "/v2/health/ready");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true);

    // Metadata.
    let meta = up.get("/v2/models/classifier");
    assert_eq!(meta["name"], "classifier");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(meta["platform"], "onnx");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]),
        "{meta}"
    );
    assert_eq!(
        meta["outputs"],
        json!([
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}
        ]),
        "{meta}"
    );
    assert_eq!(meta["parameters"]["commit"], env.commit.as_str());
    assert_eq!(meta["parameters"]["sha256"], sha256_of(CLASSIFIER));
    assert_eq!(up.get("/v2/models/classifier/versions/1"), meta);
    assert_eq!(up.get("/v2/models/classifier/ready")["ready"], true);
    assert_eq!(
        up.get("/v2/models/classifier/versions/1/ready")["ready"],
        true
    );
    for path in [
        "/v2/models/classifier/versions/2",
        "/v2/models/classifier/versions/2/ready",
        "/v2/models/nope",
        "/v2/models/nope/ready",
    ] {
        assert_eq!(get(up, path).status, 404, "{path}");
    }

    // An inference request as the KServe and MLServer documentation write it.
    let request = json!({
        "id": "42-abc",
        "inputs": [{
            "name": "input",
            "shape": [1, 4],
            "datatype": "FP32",
            "data": [19.55, 28.77, 0.0926, 0.4251]
        }]
    });
    for path in [
        "/v2/models/classifier/infer",
        "/v2/models/classifier/versions/1/infer",
    ] {
        let a = post(up, path, &request);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        let body = a.json();
        assert_eq!(body["id"], "42-abc", "{body}");
        assert_eq!(body["model_name"], "classifier");
        assert_eq!(body["model_version"], "1");
        let outputs = body["outputs"].as_array().expect("outputs");
        assert_eq!(outputs.len(), 2, "{body}");
        let label = outputs
            .iter()
            .find(|o| o["name"] == "label")
            .expect("label");
        assert_eq!(label["datatype"], "INT64");
        assert_eq!(label["shape"], json!([1]));
        assert_eq!(label["data"], json!([0]));
        let probs = outputs
            .iter()
            .find(|o| o["name"] == "probabilities")
            .expect("probabilities");
        assert_eq!(probs["datatype"], "FP32");
        assert_eq!(probs["shape"], json!([1, 2]));
        let p0 = probs["data"][0].as_f64().unwrap();
        assert!((p0 - 0.99979).abs() < 1e-4, "{body}");
        // The inference is recorded like any other.
        let id = body["parameters"]["cairn_inference_id"].as_str().unwrap();
        assert_eq!(a.header("cairn-inference-id"), Some(id));
        let event = up.get(&format!("/api/v1/inferences/{id}"));
        assert_eq!(event["status"], 200);
        assert_eq!(event["inputs"][0]["data"].as_array().unwrap().len(), 4);
    }

    // Several rows, nested data, per-tensor parameters, no id.
    let a = post(
        up,
        "/v2/models/classifier/infer",
        &json!({
            "parameters": {"content_type": "np"},
            "inputs": [{
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP32",
                "parameters": {"content_type": "np"},
                "data": [[19.55, 28.77, 0.0926, 0.4251], [11.13, 16.62, 0.08151, 0.0458]]
            }]
        }),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    let label = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .cloned()
        .unwrap();
    assert_eq!(label["shape"], json!([2]));
    assert_eq!(label["data"], json!([0, 1]));
    // Without an id, the response's id is the inference's.
    assert_eq!(body["id"], body["parameters"]["cairn_inference_id"]);

    // Versions and bad input.
    let a = post(up, "/v2/models/classifier/versions/7/infer", &request);
    assert_eq!(a.status, 404, "{}", a.text);
    assert!(a.error().contains('7'), "{}", a.text);
    assert_eq!(post(up, "/v2/models/nope/infer", &request).status, 404);
    let a = post(
        up,
        "/v2/models/classifier/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("[N, 4]"), "{}", a.text);
    let a = post(
        up,
        "/v2/models/classifier/infer",
        &json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP16", "data": [1, 2, 3, 4]}]}),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("inputs[0].datatype"), "{}", a.text);
}

#[test]
fn process_and_function_models_serve_predictions() {
    let env = Env::start(&[
        (
            "specs/models.yaml",
            format!(
                "{}---\n{}",
                model(
                    "adder",
                    "runtime: process\ncommand: [python3, server.py, \"$(PORT)\"]\nworkdir: server\n\
                     signature:\n  inputs:\n    - {name: a, type: float}\n    - {name: b, type: float}\n  \
                     outputs:\n    - {name: sum, type: float}"
                ),
                model(
                    "doubler",
                    "runtime: process\nfunction: predict.py:predict\nworkdir: fn"
                ),
            ),
        ),
        ("server/server.py", SERVER_PY.to_string()),
        ("fn/predict.py", PREDICT_PY.to_string()),
    ]);
    let up = &env.up;
    wait_ready(up, "adder");
    wait_ready(up, "doubler");

    // The user's server.
    let a = predict(up, "adder", json!({"a": 1.5, "b": 2}));
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["response"]["sum"], json!(3.5), "{body}");
    assert_eq!(body["model"]["name"], "adder");
    assert_eq!(body["model"]["version"], "1");
    assert_eq!(body["model"]["commit"], env.commit.as_str());
    let id = body["uuid"].as_str().unwrap();
    assert_eq!(a.header("cairn-inference-id"), Some(id));
    let event = up.get(&format!("/api/v1/inferences/{id}"));
    assert_eq!(event["inputs"], json!({"a": 1.5, "b": 2}));
    assert_eq!(event["outputs"]["sum"], json!(3.5));
    // Checked against the signature before it reaches the server.
    let a = predict(up, "adder", json!({"a": 1}));
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("`b`"), "{}", a.text);
    let a = predict(up, "adder", json!({"a": 1, "b": 2, "c": 3}));
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("`c`"), "{}", a.text);
    // Metadata comes from the signature.
    let meta = up.get("/v2/models/adder");
    assert_eq!(meta["platform"], "process");
    assert_eq!(meta["inputs"][1]["name"], "b");
    // OIP inference is for ONNX models.
    let a = post(
        up,
        "/v2/models/adder/infer",
        &json!({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}),
    );
    assert_eq!(a.status, 400, "{}", a.text);

    // A function behind the runner.
    let a = predict(up, "doubler", json!({"x": 21}));
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["response"], json!({"double": 42}), "{body}");
    assert_eq!(body["model"]["version"], "1");
    // Its exception: a 500 with the message, still recorded.
    let a = predict(up, "doubler", json!({"x": 7, "fail": true}));
    assert_eq!(a.status, 500, "{}", a.text);
    let message = a.error();
    assert!(message.contains("ValueError"), "{message}");
    assert!(message.contains("cannot double 7"), "{message}");
    let id = a.header("cairn-inference-id").expect("an id").to_string();
    let event = up.get(&format!("/api/v1/inferences/{id}"));
    assert_eq!(event["status"], 500);
    // The runner survives it.
    let a = predict(up, "doubler", json!({"x": 0.5}));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["response"], json!({"double": 1.0}));
}

#[test]
fn access_keys_are_enforced() {
    let env = Env::start(&[(
        "specs/model.yaml",
        format!(
            "{}---\n{}",
            classifier("classifier", "auth: {required: true}"),
            classifier("other", "auth: {required: true}")
        ),
    )]);
    let up = &env.up;
    wait_ready(up, "classifier");
    wait_ready(up, "other");
    let body = json!({ "request": sample(SAMPLE_REQUEST) }).to_string();
    let with = |key: Option<&str>| {
        let header = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("authorization", h.as_str()))
            .collect();
        call(
            up,
            "POST",
            "/models/classifier/predict",
            &headers,
            Some(body.as_bytes()),
        )
    };

    // No key, a wrong one.
    let a = with(None);
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.error().contains("Bearer"), "{}", a.text);
    assert_eq!(with(Some("cairn_0000")).status, 401);
    let a = call(
        up,
        "POST",
        "/models/classifier/predict",
        &[("authorization", "Basic dXNlcjpwYXNz")],
        Some(body.as_bytes()),
    );
    assert_eq!(a.status, 401, "{}", a.text);
    // OIP is guarded too.
    let infer = json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]});
    assert_eq!(post(up, "/v2/models/classifier/infer", &infer).status, 401);

    // A key of another model, created with the API.
    let a = post(up, "/api/v1/models/other/keys", &json!({}));
    assert_eq!(a.status, 201, "{}", a.text);
    let other_key = a.json()["key"].as_str().unwrap().to_string();
    assert!(other_key.starts_with("cairn_"));
    let a = with(Some(&other_key));
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(post(up, "/api/v1/models/nope/keys", &json!({})).status, 404);

    // A key created with the CLI works, through HTTP and the CLI.
    let (ok, stdout, stderr) = cli(up, &["keys", "create", "classifier"]);
    assert!(ok, "{stderr}");
    let key = stdout.trim().to_string();
    assert!(key.starts_with("cairn_") && key.len() == 70, "{stdout}");
    let a = with(Some(&key));
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["response"]["label"], json!(0));
    let a = call(
        up,
        "POST",
        "/v2/models/classifier/infer",
        &[("authorization", &format!("Bearer {key}"))],
        Some(infer.to_string().as_bytes()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let request_file = format!("@{SAMPLE_REQUEST}");
    let (ok, stdout, stderr) = cli(
        up,
        &[
            "predict",
            "classifier",
            "--data",
            &request_file,
            "--key",
            &key,
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(&stdout).unwrap()["response"]["label"],
        json!(0)
    );
    let (ok, _, stderr) = cli(up, &["predict", "classifier", "--data", &request_file]);
    assert!(!ok, "a prediction without a key must fail");
    assert!(stderr.contains("access key"), "{stderr}");

    // Listing shows ids and prefixes, never the secret.
    let listed = up.get("/api/v1/models/classifier/keys");
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{listed}");
    let id = keys[0]["id"].as_str().unwrap().to_string();
    assert!(!listed.to_string().contains(&key[6..]), "{listed}");
    let (ok, stdout, stderr) = cli(up, &["keys", "list", "classifier"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&id), "{stdout}");
    assert!(stdout.contains(&key[..14]), "the prefix: {stdout}");
    assert!(!stdout.contains(&key[6..]), "{stdout}");
    assert!(!stdout.contains(&key[..20]), "{stdout}");
    assert!(!stderr.contains(&key[6..]), "{stderr}");

    // Revoked: 401.
    let (ok, _, stderr) = cli(up, &["keys", "revoke", "classifier", &id]);
    assert!(ok, "{stderr}");
    let a = with(Some(&key));
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.error().contains("revoked"), "{}", a.text);
    let (_, stdout, _) = cli(up, &["keys", "list", "classifier"]);
    assert!(stdout.contains("revoked"), "{stdout}");
    // Revoking an unknown key, or another model's, is a 404.
    let a = call(
        up,
        "DELETE",
        "/api/v1/models/other/keys/key_00000000",
        &[],
        None,
    );
    assert_eq!(a.status, 404, "{}", a.text);
    let a = call(
        up,
        "DELETE",
        &format!("/api/v1/models/other/keys/{id}"),
        &[],
        None,
    );
    assert_eq!(a.status, 404, "{}", a.text);
    // The other model's key still works there.
    let a = call(
        up,
        "POST",
        "/models/other/predict",
        &[("authorization", &format!("Bearer {other_key}"))],
        Some(body.as_bytes()),
    );
    assert_eq!(a.status, 200, "{}", a.text);
}

#[test]
fn limits_are_enforced() {
    let env = Env::start(&[
        (
            "specs/models.yaml",
            format!(
                "{}---\n{}---\n{}",
                classifier("classifier", "limits: {maxBodySize: 1Ki}"),
                model(
                    "sleepy",
                    "runtime: process\nfunction: predict.py:sleepy\nworkdir: fn\nlimits: {timeout: 200ms}"
                ),
                model(
                    "single",
                    "runtime: process\nfunction: predict.py:sleepy\nworkdir: fn\n\
                     limits: {maxConcurrency: 1, maxQueue: 0}"
                ),
            ),
        ),
        ("fn/predict.py", PREDICT_PY.to_string()),
    ]);
    let up = &env.up;
    wait_ready(up, "classifier");
    wait_ready(up, "sleepy");
    wait_ready(up, "single");

    // The body limit, with a Content-Length...
    let small = json!({ "request": sample(SAMPLE_REQUEST) }).to_string();
    assert!(small.len() < 1024);
    assert_eq!(
        call(
            up,
            "POST",
            "/models/classifier/predict",
            &[],
            Some(small.as_bytes())
        )
        .status,
        200
    );
    let big = format!(
        "{{\"request\": {}, \"padding\": \"{}\"}}",
        sample(SAMPLE_REQUEST),
        "x".repeat(2048)
    );
    assert!(big.len() > 2048);
    let a = call(
        up,
        "POST",
        "/models/classifier/predict",
        &[],
        Some(big.as_bytes()),
    );
    assert_eq!(a.status, 413, "{}", a.text);
    assert!(a.error().contains("1024"), "{}", a.text);
    // ... and without one (chunked).
    let (status, text) = post_chunked(up, "/models/classifier/predict", big.as_bytes());
    assert_eq!(status, 413, "{text}");
    let (status, text) = post_chunked(up, "/models/classifier/predict", small.as_bytes());
    assert_eq!(status, 200, "{text}");
    let a = call(
        up,
        "POST",
        "/v2/models/classifier/infer",
        &[],
        Some(big.as_bytes()),
    );
    assert_eq!(a.status, 413, "{}", a.text);

    // Malformed JSON.
    let a = call(
        up,
        "POST",
        "/models/classifier/predict",
        &[],
        Some(b"{\"request\": {\"mean_radius\": 1.0,"),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("JSON"), "{}", a.text);
    let a = call(
        up,
        "POST",
        "/models/classifier/predict",
        &[],
        Some(b"{\"mean_radius\": 1}"),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("request"), "{}", a.text);
    // A missing feature, a misspelt one, a string for a number.
    let a = predict(
        up,
        "classifier",
        json!({"mean_radius": 19.55, "mean_texture": 28.77, "mean_smoothness": 0.0926}),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("worst_concavity"), "{}", a.text);
    let a = predict(
        up,
        "classifier",
        json!({"mean_radus": 19.55, "mean_texture": 28.77, "mean_smoothness": 0.0926, "worst_concavity": 0.4}),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("mean_radus"), "{}", a.text);
    let a = predict(
        up,
        "classifier",
        json!({"mean_radius": "big", "mean_texture": 28.77, "mean_smoothness": 0.0926, "worst_concavity": 0.4}),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("mean_radius"), "{}", a.text);
    let a = predict(
        up,
        "classifier",
        json!({"instances": [[1, 2, 3, 4], [1, 2, 3]]}),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(a.error().contains("instances[1]"), "{}", a.text);

    // The timeout.
    let started = Instant::now();
    let a = predict(up, "sleepy", json!({}));
    let took = started.elapsed();
    assert_eq!(a.status, 504, "{}", a.text);
    assert!(a.error().contains("200ms"), "{}", a.text);
    assert!(took < Duration::from_millis(900), "answered after {took:?}");
    let id = a.header("cairn-inference-id").expect("an id").to_string();
    assert_eq!(up.get(&format!("/api/v1/inferences/{id}"))["status"], 504);

    // One request at a time, none waiting: the others get 503 at once.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| {
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(i * 100));
                    predict(up, "single", json!({})).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        2,
        "{statuses:?}"
    );
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no length) → (status, body).
fn post_chunked(up: &Up, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", up.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(100) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    // The server may answer (and close) before reading everything.
    let _ = stream.write_all(&out);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// What a client loop saw: per response, its status, the model version it
/// reports and the body.
type Seen = Vec<(u16, String, Value)>;

/// Runs `threads` client loops POSTing `request` to model `name` until
/// `stop`; returns what each saw.
fn client_loops(
    up: &Up,
    name: &str,
    request: &Value,
    threads: usize,
    stop: &AtomicBool,
    during: impl FnOnce(),
) -> Vec<Seen> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let agent = agent();
                    let body = json!({ "request": request }).to_string();
                    let path = format!("/models/{name}/predict");
                    let mut seen = Seen::new();
                    while !stop.load(Ordering::Relaxed) {
                        let a = try_call(&agent, up, "POST", &path, &[], Some(body.as_bytes()))
                            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
                        let v: Value = serde_json::from_str(&a.text).unwrap_or(Value::Null);
                        let version = v["model"]["version"].as_str().unwrap_or("").to_string();
                        seen.push((a.status, version, v));
                    }
                    seen
                })
            })
            .collect();
        during();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Every response was a 200; each loop saw version 1, then version 2,
/// never going back.
fn assert_rolled_over(seen: &[Seen]) {
    for loop_seen in seen {
        assert!(!loop_seen.is_empty());
        for (status, _, body) in loop_seen {
            assert_eq!(*status, 200, "a failure during the rollout: {body}");
        }
        let versions: Vec<&str> = loop_seen.iter().map(|(_, v, _)| v.as_str()).collect();
        assert_eq!(versions[0], "1");
        assert_eq!(*versions.last().unwrap(), "2");
        let switch = versions.iter().position(|v| *v == "2").unwrap();
        assert!(
            versions[switch..].iter().all(|v| *v == "2"),
            "version went back to 1"
        );
    }
}

#[test]
fn a_rollout_under_load_loses_no_request() {
    let adder = |version: &str| {
        model(
            "adder",
            &format!(
                "runtime: process\ncommand: [python3, server.py]\nworkdir: server\nreplicas: 2\n\
                 env: {{VERSION: \"{version}\"}}"
            ),
        )
    };
    let env = Env::start(&[
        ("specs/model.yaml", classifier("classifier", "replicas: 1")),
        ("specs/adder.yaml", adder("a")),
        ("server/server.py", SERVER_PY.to_string()),
    ]);
    let first = env.commit.clone();
    wait_ready(&env.up, "classifier");
    wait_ready(&env.up, "adder");

    // The ONNX model: more replicas and a label make version 2.
    let stop = AtomicBool::new(false);
    let second = Mutex::new(String::new());
    let seen = client_loops(
        &env.up,
        "classifier",
        &sample(SAMPLE_REQUEST),
        2,
        &stop,
        || {
            std::thread::sleep(Duration::from_millis(300));
            let spec = classifier("classifier", "replicas: 2").replace(
                "metadata:\n  name: classifier\n",
                "metadata:\n  name: classifier\n  labels: {team: ml}\n",
            );
            *second.lock().unwrap() = env.change(&[("specs/model.yaml", spec)], "two replicas");
            wait_version(&env.up, "classifier", 2);
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::Relaxed);
        },
    );
    let second = second.into_inner().unwrap();
    assert_rolled_over(&seen);
    for (_, version, body) in seen.iter().flatten() {
        assert_eq!(body["response"]["label"], json!(0), "{body}");
        let commit = if version == "1" { &first } else { &second };
        assert_eq!(body["model"]["commit"], commit.as_str(), "{body}");
    }
    let versions = env.up.get("/api/v1/models/classifier/versions");
    assert_eq!(versions["current"], 2, "{versions}");
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{versions}");
    assert_eq!(list[0]["version"], 2);
    assert_eq!(list[0]["commit"], second.as_str());
    assert_eq!(list[1]["version"], 1);
    assert_eq!(list[1]["commit"], first.as_str());
    for v in list {
        assert_eq!(v["sha256"], sha256_of(CLASSIFIER), "{versions}");
        assert!(v["createdAt"].as_str().is_some(), "{versions}");
    }

    // The process model: a new environment variable makes version 2, served
    // by new replicas once they are ready.
    let stop = AtomicBool::new(false);
    let third = Mutex::new(String::new());
    let seen = client_loops(&env.up, "adder", &json!({"a": 1, "b": 2}), 2, &stop, || {
        std::thread::sleep(Duration::from_millis(300));
        *third.lock().unwrap() = env.change(&[("specs/adder.yaml", adder("b"))], "VERSION=b");
        wait_version(&env.up, "adder", 2);
        // Until the old replicas are gone (2 s after the new ones are ready).
        let up = &env.up;
        up.wait_for(
            Duration::from_secs(60),
            "adder replicas of VERSION=b only",
            || {
                let answers: Vec<Value> = (0..6)
                    .map(|_| predict(up, "adder", json!({"a": 1, "b": 2})).json())
                    .collect();
                answers
                    .iter()
                    .all(|v| v["response"]["version"] == "b")
                    .then_some(())
            },
        );
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    let third = third.into_inner().unwrap();
    assert_rolled_over(&seen);
    for (_, version, body) in seen.iter().flatten() {
        assert_eq!(body["response"]["sum"], json!(3), "{body}");
        // The version reported is the one that answered.
        let (served_by, commit) = if version == "1" {
            ("a", &first)
        } else {
            ("b", &third)
        };
        assert_eq!(body["response"]["version"], served_by, "{body}");
        assert_eq!(body["model"]["commit"], commit.as_str(), "{body}");
    }
    let versions = env.up.get("/api/v1/models/adder/versions");
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{versions}");
    assert_eq!(list[0]["commit"], third.as_str());
    assert_eq!(list[1]["commit"], first.as_str());
}

#[test]
fn acknowledged_predictions_survive_a_crash() {
    let mut env = Env::start(&[("specs/model.yaml", classifier("classifier", ""))]);
    wait_ready(&env.up, "classifier");
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let request = json!({ "request": sample(SAMPLE_REQUEST) }).to_string();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let received = received.clone();
            let request = request.clone();
            let url = env.up.url("/models/classifier/predict");
            std::thread::spawn(move || {
                let agent = agent();
                let mut errors = 0;
                // Until the server is gone.
                loop {
                    let response = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(request.as_bytes());
                    let mut response = match response {
                        Ok(r) => r,
                        Err(_) => {
                            errors += 1;
                            if errors > 2 {
                                return;
                            }
                            continue;
                        }
                    };
                    if response.status().as_u16() != 200 {
                        continue;
                    }
                    let Ok(text) = response.body_mut().read_to_string() else {
                        continue;
                    };
                    let v: Value = serde_json::from_str(&text).unwrap();
                    received
                        .lock()
                        .unwrap()
                        .push(v["uuid"].as_str().unwrap().to_string());
                }
            })
        })
        .collect();
    // Crash mid-load.
    let start = Instant::now();
    while received.lock().unwrap().len() < 200 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    env.up.crash();
    for c in clients {
        c.join().unwrap();
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() >= 50,
        "only {} predictions before the crash",
        received.len()
    );
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "duplicate UUIDs");

    // Restart on the same data directory: every acknowledged prediction is there.
    env.up = Up::start(env.repo.path(), &env.state_dir(), &[], &[]);
    let agent = agent();
    for id in &received {
        let a = try_call(
            &agent,
            &env.up,
            "GET",
            &format!("/api/v1/inferences/{id}"),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(
            a.status,
            200,
            "inference {id} acknowledged but lost ({} acknowledged in all): {}",
            received.len(),
            a.text
        );
        let event = a.json();
        assert_eq!(event["status"], 200);
        assert_eq!(event["model"], "classifier");
        assert_eq!(event["outputs"]["label"], json!(0));
    }
    // And it serves again.
    env.up.wait_synced(&env.commit);
    wait_ready(&env.up, "classifier");
    assert_eq!(
        predict(&env.up, "classifier", sample(SAMPLE_REQUEST)).status,
        200
    );
}

#[test]
fn metrics_are_exposed_in_prometheus_format() {
    let env = Env::start(&[("specs/model.yaml", classifier("classifier", ""))]);
    let up = &env.up;
    wait_ready(up, "classifier");
    for _ in 0..3 {
        assert_eq!(
            predict(up, "classifier", sample(SAMPLE_REQUEST)).status,
            200
        );
    }
    assert_eq!(
        predict(up, "classifier", json!({"mean_radius": 1})).status,
        400
    );

    // The Prometheus text format by default...
    let a = get(up, "/metrics");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = a.text.clone();
    assert!(
        text.contains("# TYPE cairn_model_requests_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    assert!(
        text.contains(
            r#"cairn_model_requests_total{project="lab",model="classifier",version="1",status="2xx"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cairn_model_requests_total{project="lab",model="classifier",version="1",status="4xx"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cairn_model_request_duration_seconds_count{project="lab",model="classifier",version="1"} 4"#
        ),
        "{text}"
    );

    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Err(e) => eprintln!(
            "note: promtool is not available ({e}); skipping `promtool check metrics` \
             (install Debian's `prometheus` package to run it)"
        ),
        Ok(mut child) => {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics rejected /metrics:\n{}{}\n--- metrics ---\n{text}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // ... and OpenMetrics to those who ask for it, as Prometheus does.
    let a = call(
        up,
        "GET",
        "/metrics",
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
        None,
    );
    assert_eq!(a.status, 200);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        a.headers
    );
    assert!(
        a.text.contains("# TYPE cairn_model_requests counter\n"),
        "{}",
        a.text
    );
    assert!(
        a.text.contains(
            r#"cairn_model_requests_total{project="lab",model="classifier",version="1",status="2xx"} 3"#
        ),
        "{}",
        a.text
    );
    assert!(a.text.ends_with("# EOF\n"), "{}", a.text);

    // The JSON API knows the model.
    let a = get(up, "/api/v1/models/classifier/metrics");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["name"], "classifier");
    assert_eq!(get(up, "/api/v1/models/nope/metrics").status, 404);
}

#[test]
fn a_model_from_a_job_serves_once_the_job_ran() {
    let job = "apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: cp models/classifier.onnx \"$CAIRN_OUTPUT_DIR/model.onnx\"
  trigger: {manual: true}
  outputs:
    - {name: model, path: model.onnx}
";
    let env = Env::start(&[
        ("specs/job.yaml", job.to_string()),
        (
            "specs/model.yaml",
            model(
                "clf",
                &format!("runtime: onnx\nfrom: {{job: train, output: model}}\n{SIGNATURE}"),
            ),
        ),
    ]);
    let up = &env.up;

    // Before any run: waiting, not served.
    let status = up.resource("Model", "clf").expect("model status");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("waiting") && message.contains("`train`"),
        "{status}"
    );
    assert_ne!(status["phase"], "Ready", "{status}");
    let a = predict(up, "clf", sample(SAMPLE_REQUEST));
    assert_eq!(a.status, 404, "{}", a.text);

    // A run produces the model.
    let (code, run) = up.post("/api/v1/jobs/train/runs", &json!({}));
    assert_eq!(code, 202, "{run}");
    let number = run["run"]["number"].as_i64().expect("a run number");
    let run = up.wait_run("train", number);
    assert_eq!(run["state"], "succeeded", "{run}");
    wait_ready(up, "clf");
    up.wait_for(Duration::from_secs(20), "model clf Ready", || {
        (up.resource("Model", "clf")?["phase"] == "Ready").then_some(())
    });

    let a = predict(up, "clf", sample(SAMPLE_REQUEST));
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["response"]["label"], json!(0));
    assert_eq!(body["model"]["version"], "1");
    assert_eq!(body["model"]["commit"], env.commit.as_str());
    let a = predict(up, "clf", sample(SAMPLE_BATCH));
    assert_eq!(a.json()["response"]["label"], json!([0, 1, 0, 0, 0]));

    // The version records the run that produced it.
    let versions = up.get("/api/v1/models/clf/versions");
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{versions}");
    assert_eq!(list[0]["runId"], run["id"], "{versions}\n{run}");
    assert_eq!(list[0]["sha256"], sha256_of(CLASSIFIER));
    assert_eq!(list[0]["commit"], env.commit.as_str());
}
