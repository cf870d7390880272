//! The OpenAPI document of the HTTP API (`specs/openapi.json`): current
//! with the server's handlers, valid OpenAPI 3.1 as a real validator
//! (`openapi-spec-validator`) reads it, and a true description of what the
//! real server answers: the bodies of the main routes, success and failure,
//! validate (with the `jsonschema` package, JSON Schema 2020-12) against the
//! schemas the document gives for their route and status, made strict (no
//! property the document does not name).

use cairn_test_support::up::Up;
use cairn_test_support::{CLASSIFIER, LAB_PROJECT, SAMPLE_REQUEST, TestRepo};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The document, as committed.
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../specs/openapi.json");

/// The document as committed.
fn committed() -> String {
    std::fs::read_to_string(SPEC).expect("specs/openapi.json")
}

/// (`UPDATE_SPECS=1` writes the generated document instead, as `cargo
/// xtask schemas` does.)
#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = cairn_server::openapi::openapi_json();
    if std::env::var_os("UPDATE_SPECS").is_some() {
        std::fs::write(SPEC, &generated).unwrap();
    }
    assert!(
        committed() == generated,
        "specs/openapi.json is stale: run `cargo xtask schemas` and commit the result"
    );
}

// ------------------------------------------------------------- validity --

/// A virtual environment with `openapi-spec-validator` (and `jsonschema`,
/// which it uses), made once per target directory; its Python.
fn validator_python() -> PathBuf {
    static MADE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-spec-validator");
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args(["-c", "import openapi_spec_validator"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready() {
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("run python3");
            assert!(
                out.status.success(),
                "{cmd:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "openapi-spec-validator==0.9.0",
        ]));
    }
    python
}

/// `openapi-spec-validator --schema 3.1 FILE` → (success, output).
fn validate_openapi(python: &Path, file: &Path) -> (bool, String) {
    let out = Command::new(python)
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(file)
        .output()
        .expect("run openapi-spec-validator");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let python = validator_python();
    let doc: Value = serde_json::from_str(&committed()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (ok, out) = validate_openapi(&python, Path::new(SPEC));
    assert!(ok, "specs/openapi.json is not valid OpenAPI 3.1:\n{out}");

    // The validator does check: a reference to a schema that is not there
    // and a path parameter that is not declared are refused.
    let dir = tempfile::tempdir().unwrap();
    let mut broken = doc.clone();
    broken["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("ErrorBody");
    let file = dir.path().join("dangling.json");
    std::fs::write(&file, broken.to_string()).unwrap();
    let (ok, out) = validate_openapi(&python, &file);
    assert!(!ok, "a dangling $ref passed:\n{out}");
    let mut broken = doc;
    broken["paths"]["/api/v1/models/{name}/versions"]["get"]["parameters"] = json!([]);
    let file = dir.path().join("undeclared.json");
    std::fs::write(&file, broken.to_string()).unwrap();
    let (ok, out) = validate_openapi(&python, &file);
    assert!(!ok, "an undeclared path parameter passed:\n{out}");
}

// ------------------------------------------------------------ responses --

/// Makes every object schema that lists its properties refuse others (the
/// document leaves them open, so that clients may ignore new fields).
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(strict);
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// The document, made strict, and the server that must answer as it says.
struct Api {
    doc: Value,
    up: Up,
    /// What was called: `METHOD ROUTE STATUS`, the schema its answer must
    /// fit, and the answer.
    checked: std::cell::RefCell<Vec<(String, Value, Value)>>,
}

/// Validates each body against its schema, whose references point into
/// `doc`: the schema's keywords are set at the document's root, beside
/// `openapi`, `paths` and `components`, which JSON Schema ignores.
const VALIDATE_PY: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
doc = json.load(open(sys.argv[1]))
failures = []
for label, schema, body in json.load(open(sys.argv[2])):
    root = dict(doc)
    root.update(schema)
    for e in Draft202012Validator(root).iter_errors(body):
        failures.append("%s: %s at /%s\n%s" % (
            label, e.message, "/".join(map(str, e.absolute_path)), json.dumps(body, indent=1)))
print("\n\n".join(failures))
sys.exit(1 if failures else 0)
"#;

/// An answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Api {
    /// Sends `method path` (`route` is the document's template of `path`)
    /// with an optional body of `content_type`, and checks that the status
    /// is one the document lists for the route and that the body fits its
    /// schema for that status.
    fn call(
        &self,
        method: &str,
        route: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let agent = self.up.agent();
        let url = self.up.url(path);
        let mut response = match (method, body) {
            ("GET", None) => headers
                .iter()
                .fold(agent.get(&url), |r, (k, v)| r.header(*k, *v))
                .call(),
            ("DELETE", None) => agent.delete(&url).call(),
            ("POST", Some((content_type, bytes))) => headers
                .iter()
                .fold(agent.post(&url), |r, (k, v)| r.header(*k, *v))
                .header("content-type", content_type)
                .send(bytes),
            ("POST", None) => agent.post(&url).send_empty(),
            _ => unreachable!("{method}"),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let operation = &self.doc["paths"][route][method.to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {route} is not in the document"
        );
        let documented = &operation["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which the document does not list: {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let schema = documented["content"]["application/json"]["schema"].clone();
        assert!(
            schema.is_object(),
            "{method} {route} {status} has no JSON schema"
        );
        self.checked.borrow_mut().push((
            format!("{method} {route} {status} ({path})"),
            schema,
            body.clone(),
        ));
        Answer { status, body }
    }

    /// Validates (label, schema, body) triples → (all fit, what did not).
    fn fit(&self, cases: &[(String, Value, Value)]) -> (bool, String) {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("openapi.json");
        std::fs::write(&doc, self.doc.to_string()).unwrap();
        let file = dir.path().join("answers.json");
        std::fs::write(&file, serde_json::to_string(cases).unwrap()).unwrap();
        let out = Command::new(validator_python())
            .args(["-c", VALIDATE_PY])
            .arg(&doc)
            .arg(&file)
            .output()
            .expect("run python");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Checks every answer received against its schema, after checking
    /// that the check refuses what it should.
    fn validate_answers(&self) {
        let error = json!({"$ref": "#/components/schemas/ErrorBody"});
        for wrong in [json!({"error": "x", "detail": 1}), json!({"message": "x"})] {
            let (ok, _) = self.fit(&[("wrong".into(), error.clone(), wrong.clone())]);
            assert!(!ok, "{wrong} passed as an ErrorBody");
        }
        let (ok, out) = self.fit(&self.checked.borrow());
        assert!(ok, "answers that do not fit the document:\n{out}");
    }

    fn get(&self, route: &str, path: &str) -> Answer {
        self.call("GET", route, path, None, &[])
    }

    fn post(&self, route: &str, path: &str, body: &Value) -> Answer {
        self.call(
            "POST",
            route,
            path,
            Some(("application/json", body.to_string().as_bytes())),
            &[],
        )
    }
}

/// The quickstart classifier served as `clf`, its drift not monitored (so
/// `drift/evaluate` refuses).
const CLF: &str = cairn_test_support::CLF_MODEL;

/// A job, run by hand, that writes an artifact.
const JOB: &str = "apiVersion: cairn/v1
kind: Job
metadata:
  name: train
spec:
  command: |
    echo epochs $CAIRN_PARAM_EPOCHS
    echo ok > \"$CAIRN_OUTPUT_DIR/report.txt\"
  trigger: {manual: true}
  params: {epochs: 3}
  outputs:
    - {name: report, path: report.txt}
";

#[test]
fn the_servers_answers_fit_the_document() {
    let mut doc: Value = serde_json::from_str(&committed()).unwrap();
    strict(&mut doc["components"]);
    strict(&mut doc["paths"]);

    let repo = TestRepo::new();
    repo.write("specs/project.yaml", LAB_PROJECT)
        .write("specs/clf.yaml", CLF)
        .write("specs/train.yaml", JOB)
        .write("models/classifier.onnx", std::fs::read(CLASSIFIER).unwrap());
    let commit = repo.commit("a model and a job");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(repo.path(), &data.path().join("state"), &[], &[]);
    up.wait_synced(&commit);
    let api = Api {
        doc,
        up,
        checked: Default::default(),
    };
    api.up.wait_for(Duration::from_secs(60), "clf ready", || {
        let (status, _) = api.up.get_raw("/v2/models/clf/ready").ok()?;
        (status == 200).then_some(())
    });

    // The controller.
    let status = api.get("/api/v1/status", "/api/v1/status").body;
    assert_eq!(status["lastSync"]["commit"], commit.as_str());
    assert_eq!(status["origin"]["type"], "commit");
    api.get("/api/v1/sync", "/api/v1/sync");
    let runs = "/api/v1/jobs/{name}/runs";
    let started = api.post(
        runs,
        "/api/v1/jobs/train/runs",
        &json!({"params": {"epochs": 5}}),
    );
    assert_eq!(started.status, 202);
    assert_eq!(started.body["run"]["params"]["epochs"], 5);
    let run = api.up.wait_run("train", 1);
    assert_eq!(run["state"], "succeeded", "{run}\n{}", api.up.logs());
    let one = api.get(
        "/api/v1/jobs/{name}/runs/{number}",
        "/api/v1/jobs/train/runs/1",
    );
    assert_eq!(one.body["artifacts"][0]["output"], "report", "{}", one.body);
    api.get(runs, "/api/v1/jobs/train/runs?limit=5");
    api.get("/api/v1/runs", "/api/v1/runs");
    api.get("/api/v1/audit", "/api/v1/audit?limit=10");
    assert_eq!(api.get(runs, "/api/v1/jobs/nope/runs").status, 404);
    assert_eq!(
        api.get(
            "/api/v1/jobs/{name}/runs/{number}",
            "/api/v1/jobs/train/runs/9"
        )
        .status,
        404
    );
    assert_eq!(
        api.post(runs, "/api/v1/jobs/train/runs", &json!({"nope": 1}))
            .status,
        400
    );

    // Experiments: the job's run is an MLflow run of `lab/train`.
    let experiments = api.get("/api/v1/experiments", "/api/v1/experiments").body;
    assert_eq!(
        experiments["experiments"][0]["name"], "lab/train",
        "{experiments}"
    );
    let exp = experiments["experiments"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let one = "/api/v1/experiments/{id}";
    api.get(one, &format!("/api/v1/experiments/{exp}"));
    assert_eq!(api.get(one, "/api/v1/experiments/999").status, 404);
    assert_eq!(api.get(one, "/api/v1/experiments/x").status, 400);
    let runs = "/api/v1/experiments/{id}/runs";
    let listed = api
        .get(
            runs,
            &format!("/api/v1/experiments/{exp}/runs?orderBy=params.epochs%20DESC"),
        )
        .body;
    let tracked = listed["runs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed["runs"][0]["params"]["epochs"], "5", "{listed}");
    assert_eq!(
        api.get(
            runs,
            &format!("/api/v1/experiments/{exp}/runs?filter=metrics.a%20%3E")
        )
        .status,
        400
    );
    let run = "/api/v1/experiments/runs/{run}";
    api.get(run, &format!("/api/v1/experiments/runs/{tracked}"));
    assert_eq!(api.get(run, "/api/v1/experiments/runs/nope").status, 404);
    api.get(
        "/api/v1/experiments/runs/{run}/metrics/{key}",
        &format!("/api/v1/experiments/runs/{tracked}/metrics/loss"),
    );
    let compare = "/api/v1/experiments/compare";
    api.get(compare, &format!("{compare}?runs={tracked},{tracked}"));
    assert_eq!(
        api.get(compare, &format!("{compare}?runs={tracked}"))
            .status,
        400
    );
    let promote = "/api/v1/experiments/runs/{run}/promote";
    let path = format!("/api/v1/experiments/runs/{tracked}/promote");
    // `clf` is served from a committed file, not from the job's output.
    assert_eq!(
        api.post(promote, &path, &json!({"model": "clf"})).status,
        422
    );
    assert_eq!(
        api.post(promote, &path, &json!({"model": "nope"})).status,
        404
    );
    assert_eq!(api.post(promote, &path, &json!({"nope": 1})).status, 400);

    // The model registry.
    let models = api.get("/api/v1/models", "/api/v1/models").body;
    assert_eq!(models["models"][0]["name"], "clf");
    api.get(
        "/api/v1/models/{name}/versions",
        "/api/v1/models/clf/versions",
    );
    let rollback = "/api/v1/models/{name}/rollback";
    assert_eq!(
        api.post(
            rollback,
            "/api/v1/models/clf/rollback",
            &json!({"version": 7})
        )
        .status,
        404
    );
    assert_eq!(
        api.post(rollback, "/api/v1/models/clf/rollback", &json!({"v": 1}))
            .status,
        400
    );

    // The gateway, and what it logged.
    let request: Value =
        serde_json::from_str(&std::fs::read_to_string(SAMPLE_REQUEST).unwrap()).unwrap();
    let predict = "/models/{name}/predict";
    let prediction = api.post(predict, "/models/clf/predict", &request);
    assert_eq!(prediction.status, 200);
    let uuid = prediction.body["uuid"].as_str().unwrap().to_string();
    let refused = api.post(
        predict,
        "/models/clf/predict",
        &json!({"request": {"mean_radius": "big"}}),
    );
    assert_eq!(refused.status, 400);
    assert_eq!(
        api.post(predict, "/models/nope/predict", &request).status,
        404
    );
    let inference = "/api/v1/inferences/{uuid}";
    api.get(inference, &format!("/api/v1/inferences/{uuid}"));
    assert_eq!(api.get(inference, "/api/v1/inferences/x").status, 400);

    // Monitoring.
    let metrics = "/models/{name}/metrics";
    api.post(
        metrics,
        "/models/clf/metrics",
        &json!({"uuid": uuid, "metrics": {"revenue": 12.5, "segment": "a"}}),
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let none = api.post(
        metrics,
        "/models/clf/metrics",
        &json!({"uuid": unknown, "metrics": {"revenue": 1}}),
    );
    assert_eq!(none.status, 404);
    let feedback = "/models/{name}/feedback";
    let matched = api.post(
        feedback,
        "/models/clf/feedback",
        &json!({"uuid": uuid, "label": 0}),
    );
    assert_eq!(matched.body["matched"], 1);
    api.call(
        "POST",
        feedback,
        "/models/clf/feedback",
        Some(("text/csv", format!("uuid,label\n{uuid},0\n").as_bytes())),
        &[],
    );
    let report = api
        .get(
            "/api/v1/models/{name}/metrics/aggregate",
            "/api/v1/models/clf/metrics/aggregate?window=hour",
        )
        .body;
    let window = &report["windows"][0];
    assert_eq!(window["accuracy"], 1.0, "{report}");
    assert_eq!(
        window["businessMetrics"]["revenue"]["sum"], 12.5,
        "{report}"
    );
    assert_eq!(
        api.get(
            "/api/v1/models/{name}/metrics/aggregate",
            "/api/v1/models/clf/metrics/aggregate?window=never",
        )
        .status,
        400
    );
    api.get(
        "/api/v1/models/{name}/metrics",
        "/api/v1/models/clf/metrics",
    );
    let drift = api.get("/api/v1/models/{name}/drift", "/api/v1/models/clf/drift");
    assert_eq!(drift.body["monitored"], false);
    let evaluate = api.call(
        "POST",
        "/api/v1/models/{name}/drift/evaluate",
        "/api/v1/models/clf/drift/evaluate",
        None,
        &[],
    );
    assert_eq!(evaluate.status, 409);

    // Access keys.
    let keys = "/api/v1/models/{name}/keys";
    let created = api.post(keys, "/api/v1/models/clf/keys", &json!({}));
    assert_eq!(created.status, 201);
    let id = created.body["info"]["id"].as_str().unwrap().to_string();
    api.get(keys, "/api/v1/models/clf/keys");
    let key = "/api/v1/models/{name}/keys/{id}";
    api.call(
        "DELETE",
        key,
        &format!("/api/v1/models/clf/keys/{id}"),
        None,
        &[],
    );
    assert_eq!(
        api.call("DELETE", key, "/api/v1/models/clf/keys/key_0", None, &[])
            .status,
        404
    );

    // The same routes in the project of the model and the job.
    let job_runs = "/api/v1/projects/{project}/jobs/{name}/runs";
    let in_lab = api.get(job_runs, "/api/v1/projects/lab/jobs/train/runs");
    assert_eq!(in_lab.body["runs"][0]["number"], 1, "{}", in_lab.body);
    assert_eq!(
        api.post(
            job_runs,
            "/api/v1/projects/lab/jobs/train/runs",
            &json!({"nope": 1})
        )
        .status,
        400
    );
    assert_eq!(
        api.get(job_runs, "/api/v1/projects/other/jobs/train/runs")
            .status,
        404
    );
    api.get(
        "/api/v1/projects/{project}/jobs/{name}/runs/{number}",
        "/api/v1/projects/lab/jobs/train/runs/1",
    );
    let lab = |route: &str, rest: &str| {
        (
            format!("/api/v1/projects/{{project}}/models/{{name}}{route}"),
            format!("/api/v1/projects/lab/models/clf{rest}"),
        )
    };
    for rest in [
        "/versions",
        "/metrics",
        "/metrics/aggregate",
        "/drift",
        "/keys",
    ] {
        let (route, path) = lab(rest, rest);
        assert_eq!(api.get(&route, &path).status, 200, "{path}");
    }
    let (route, path) = lab("/drift/evaluate", "/drift/evaluate");
    assert_eq!(api.call("POST", &route, &path, None, &[]).status, 409);
    let (route, path) = lab("/rollback", "/rollback");
    assert_eq!(api.post(&route, &path, &json!({"v": 1})).status, 400);
    let (route, path) = lab("/keys", "/keys");
    let created = api.post(&route, &path, &json!({}));
    assert_eq!(created.body["info"]["project"], "lab", "{}", created.body);
    let (route, path) = lab("/keys/{id}", "/keys/key_0");
    assert_eq!(api.call("DELETE", &route, &path, None, &[]).status, 404);
    let predicted = api.post(
        "/projects/{project}/models/{name}/predict",
        "/projects/lab/models/clf/predict",
        &request,
    );
    assert_eq!(predicted.body["model"]["project"], "lab");
    let uuid = predicted.body["uuid"].as_str().unwrap().to_string();
    api.post(
        "/projects/{project}/models/{name}/metrics",
        "/projects/lab/models/clf/metrics",
        &json!({"uuid": uuid, "metrics": {"revenue": 1.5}}),
    );
    api.post(
        "/projects/{project}/models/{name}/feedback",
        "/projects/lab/models/clf/feedback",
        &json!({"uuid": uuid, "label": 0}),
    );

    // The Open Inference Protocol.
    api.get("/v2", "/v2");
    api.get("/v2/health/live", "/v2/health/live");
    api.get("/v2/health/ready", "/v2/health/ready");
    api.get("/v2/models/{name}", "/v2/models/clf");
    api.get(
        "/v2/models/{name}/versions/{version}",
        "/v2/models/clf/versions/1",
    );
    api.get("/v2/models/{name}/ready", "/v2/models/clf/ready");
    api.get(
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/clf/versions/1/ready",
    );
    let tensors = json!({"id": "r1", "inputs": [{
        "name": "x", "shape": [1, 4], "datatype": "FP32",
        "data": [19.55, 23.21, 0.0827, 0.2]
    }]});
    let inferred = api.post("/v2/models/{name}/infer", "/v2/models/clf/infer", &tensors);
    assert_eq!(inferred.body["id"], "r1");
    api.post(
        "/v2/models/{name}/versions/{version}/infer",
        "/v2/models/clf/versions/1/infer",
        &tensors,
    );
    assert_eq!(
        api.post(
            "/v2/models/{name}/versions/{version}/infer",
            "/v2/models/clf/versions/9/infer",
            &tensors,
        )
        .status,
        404
    );

    // The Git webhook.
    let hook = |git_ref: &str| {
        api.call(
            "POST",
            "/hooks/git",
            "/hooks/git",
            Some((
                "application/json",
                json!({"ref": git_ref, "after": commit})
                    .to_string()
                    .as_bytes(),
            )),
            &[("x-github-event", "push")],
        )
    };
    assert_eq!(hook("refs/heads/elsewhere").status, 200);
    assert_eq!(hook("refs/heads/main").status, 202);

    // Identity and access.
    let who = api.get("/api/v1/whoami", "/api/v1/whoami");
    assert_eq!(who.body["admin"], true, "{}", who.body);
    let table = api.get("/api/v1/routes", "/api/v1/routes");
    assert!(table.body["routes"].as_array().unwrap().len() > 50);
    let made = api.post(
        "/api/v1/tokens",
        "/api/v1/tokens",
        &json!({"name": "ci", "project": "lab", "role": "viewer", "expiresIn": "90d"}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        api.post(
            "/api/v1/tokens",
            "/api/v1/tokens",
            &json!({"name": "x", "role": "root"})
        )
        .status,
        400
    );
    assert_eq!(
        api.post(
            "/api/v1/tokens",
            "/api/v1/tokens",
            &json!({"name": "x", "project": "nowhere", "role": "viewer"})
        )
        .status,
        404
    );
    api.get("/api/v1/tokens", "/api/v1/tokens");
    let id = made.body["info"]["id"].as_str().unwrap();
    api.call(
        "DELETE",
        "/api/v1/tokens/{id}",
        &format!("/api/v1/tokens/{id}"),
        None,
        &[],
    );
    assert_eq!(
        api.call(
            "DELETE",
            "/api/v1/tokens/{id}",
            "/api/v1/tokens/tok_00000000",
            None,
            &[]
        )
        .status,
        404
    );

    // The document itself.
    let served = api.up.get_text("/api/v1/openapi.json").unwrap();
    assert_eq!(served, committed());

    // Every answer fits, and every route of the document was called.
    api.validate_answers();
    let checked = api.checked.borrow();
    for (route, operations) in api.doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let called = checked.iter().any(|(c, _, _)| {
                c.starts_with(&format!("{} {route} ", method.to_ascii_uppercase()))
            });
            let text_only = ["/healthz", "/metrics", "/api/v1/openapi.json"]
                .contains(&route.as_str())
                || route.ends_with("/logs");
            assert!(called || text_only, "{method} {route} was not checked");
        }
    }
}
