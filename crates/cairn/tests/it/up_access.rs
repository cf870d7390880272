//! Who may do what, over HTTP on the real server: every route of the
//! server's own route table (`GET /api/v1/routes`) refuses an anonymous
//! caller (401), refuses a caller without the role (403) and accepts the
//! right one; the table covers every operation of the OpenAPI document.
//! Also: key minting needs `editor`, an inference's inputs are hidden from
//! a `viewer`, tokens expire and are revoked, the audit log names the
//! actor, a workload's own token works in its project only and dies with
//! it, and the local command line finds the admin token by itself.

use cairn_test_support::up::Up;
use cairn_test_support::{CLASSIFIER, SAMPLE_REQUEST, TestRepo};
use serde_json::{Value, json};
use std::time::Duration;

/// The job `train`: tries its own token on its project and on another,
/// and leaves it in `$TOKEN_FILE` for the test.
const PROBE_PY: &str = r#"import os, urllib.request, urllib.error
t = os.environ.get("CAIRN_TOKEN", "")
print("token=" + ("set" if t else "unset"))
def get(path):
    req = urllib.request.Request(os.environ["CAIRN_SERVER"] + path, headers={"Authorization": "Bearer " + t})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
print("own=%d" % get("/api/v1/projects/lab/jobs/train/runs"))
print("other=%d" % get("/api/v1/projects/other/jobs/probe/runs"))
with open(os.environ["TOKEN_FILE"], "w") as f:
    f.write(t)
"#;

const SPECS: &str = "apiVersion: cairn/v1
kind: Project
metadata:
  name: lab
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: Project
metadata:
  name: other
spec:
  defaultPool: local
---
apiVersion: cairn/v1
kind: ComputePool
metadata:
  name: local
spec:
  local: {}
---
apiVersion: cairn/v1
kind: Model
metadata:
  name: clf
  project: lab
spec:
  runtime: onnx
  artifact: models/classifier.onnx
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
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: train
  project: lab
spec:
  command: [python3, jobs/probe.py]
  trigger: {manual: true}
  env:
    TOKEN_FILE: TOKEN_FILE_PATH
---
apiVersion: cairn/v1
kind: Job
metadata:
  name: probe
  project: other
spec:
  command: [sh, -c, 'echo probe']
  trigger: {manual: true}
---
apiVersion: cairn/v1
kind: Application
metadata:
  name: web
  project: lab
spec:
  framework: command
  command: [python3, -m, http.server, \"$(PORT)\", --bind, 127.0.0.1]
  path: app
";

/// The quickstart's sample request.
fn sample() -> Value {
    serde_json::from_str(&std::fs::read_to_string(SAMPLE_REQUEST).unwrap()).unwrap()
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
}

/// `method path` with `token` (none: anonymous) and a JSON `body`.
fn call(up: &Up, token: Option<&str>, method: &str, path: &str, body: Option<&Value>) -> Answer {
    let agent = Up::agent_with(token, Duration::from_secs(30));
    let url = up.url(path);
    let result = match (method, body) {
        ("GET", _) => agent.get(&url).call(),
        ("DELETE", _) => agent.delete(&url).call(),
        ("POST", Some(b)) => agent.post(&url).send_json(b),
        ("POST", None) => agent.post(&url).send_empty(),
        ("PUT", Some(b)) => agent.put(&url).send_json(b),
        ("PATCH", Some(b)) => agent.patch(&url).send_json(b),
        (m, _) => panic!("no test call for {m}"),
    };
    let mut r = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    Answer {
        status: r.status().as_u16(),
        text: r.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// A token made by the admin: `role` in `project` (none: admin).
fn token(up: &Up, project: Option<&str>, role: &str, expires: Option<&str>) -> (String, String) {
    let mut body = json!({"name": format!("{role} test"), "role": role});
    if let Some(p) = project {
        body["project"] = json!(p);
    }
    if let Some(e) = expires {
        body["expiresIn"] = json!(e);
    }
    let a = call(
        up,
        up.token.as_deref(),
        "POST",
        "/api/v1/tokens",
        Some(&body),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let v = a.json();
    (
        v["token"].as_str().unwrap().to_string(),
        v["info"]["id"].as_str().unwrap().to_string(),
    )
}

struct Env {
    up: Up,
    data: tempfile::TempDir,
    _repo: TestRepo,
}

impl Env {
    /// Where the job left its token.
    fn token_file(&self) -> std::path::PathBuf {
        self.data.path().join("workload-token")
    }
}

fn start() -> Env {
    start_with(&[])
}

/// The repository served by `cairn up ARGS`, synced, its application up.
fn start_with(args: &[&str]) -> Env {
    let repo = TestRepo::new();
    let data = tempfile::tempdir().unwrap();
    let token_file = data.path().join("workload-token");
    repo.write(
        "specs/all.yaml",
        SPECS.replace("TOKEN_FILE_PATH", &token_file.to_string_lossy()),
    )
    .write("jobs/probe.py", PROBE_PY)
    .write(
        "models/classifier.onnx",
        std::fs::read(CLASSIFIER).expect("the quickstart model"),
    )
    .write("app/index.html", "hello from web\n");
    let commit = repo.commit("specs");
    let up = Up::start(repo.path(), &data.path().join("state"), args, &[]);
    up.wait_synced(&commit);
    up.wait_for(Duration::from_secs(60), "the application", || {
        let (s, _) = up.get_raw("/apps/web/").ok()?;
        (s == 200).then_some(())
    });
    Env {
        up,
        data,
        _repo: repo,
    }
}

/// The path of a route with its parameters filled in.
fn fill(path: &str, ids: &Ids) -> String {
    if let Some(url) = tracking_url(path, ids) {
        return url;
    }
    path.replace("{project}", "lab")
        .replace(
            "{name}",
            if path.contains("/jobs/") {
                "train"
            } else if path.contains("/apps/") {
                "web"
            } else {
                "clf"
            },
        )
        .replace("{number}", "1")
        .replace("{version}", "1")
        .replace("{uuid}", &ids.inference)
        .replace("{file}", "dashboard.css")
        .replace("{*rest}", "index.html")
        .replace(
            "{id}",
            if path.contains("/keys/") {
                &ids.key
            } else {
                &ids.token
            },
        )
}

struct Ids {
    inference: String,
    key: String,
    token: String,
    tracking: TrackingIds,
}

/// Experiments, runs and a logged model of project `lab` for the tracking
/// routes to name; the scratch ones may be deleted.
#[derive(Clone)]
struct TrackingIds {
    experiment: String,
    run: String,
    model: String,
    scratch_experiment: String,
    scratch_run: String,
}

impl TrackingIds {
    /// Made by the admin through MLflow's protocol; `train` run 1 is in
    /// experiment `lab/train`.
    fn make(up: &Up, admin: &str) -> TrackingIds {
        let post = |endpoint: &str, body: Value| -> Value {
            let a = call(
                up,
                Some(admin),
                "POST",
                &format!("/api/2.0/mlflow/{endpoint}"),
                Some(&body),
            );
            assert_eq!(a.status, 200, "{endpoint}: {}", a.text);
            a.json()
        };
        let experiment = call(
            up,
            Some(admin),
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=lab%2Ftrain",
            None,
        )
        .json()["experiment"]["experiment_id"]
            .as_str()
            .unwrap()
            .to_string();
        let run =
            post("runs/create", json!({"experiment_id": experiment}))["run"]["info"]["run_id"]
                .as_str()
                .unwrap()
                .to_string();
        let model = post(
            "logged-models",
            json!({"experiment_id": experiment, "name": "m", "source_run_id": run}),
        )["model"]["info"]["model_id"]
            .as_str()
            .unwrap()
            .to_string();
        let scratch_experiment =
            post("experiments/create", json!({"name": "lab/scratch"}))["experiment_id"]
                .as_str()
                .unwrap()
                .to_string();
        let scratch_run = post("runs/create", json!({"experiment_id": scratch_experiment}))["run"]
            ["info"]["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        TrackingIds {
            experiment,
            run,
            model,
            scratch_experiment,
            scratch_run,
        }
    }
}

/// The URL of a tracking route (MLflow's protocol or Cairn's experiments
/// API), its ids and query filled in.
fn tracking_url(path: &str, ids: &Ids) -> Option<String> {
    let t = &ids.tracking;
    let mlflow = path
        .strip_prefix("/api/2.0/mlflow")
        .or_else(|| path.strip_prefix("/ajax-api/2.0/mlflow"));
    if let Some(rest) = mlflow {
        let query = match rest {
            "/experiments/get" => format!("?experiment_id={}", t.experiment),
            "/experiments/get-by-name" => "?experiment_name=lab%2Ftrain".into(),
            "/runs/get" => format!("?run_id={}", t.run),
            "/metrics/get-history" => format!("?run_id={}&metric_key=m", t.run),
            "-artifacts/artifacts" => format!("?path={}%2F{}%2Fartifacts", t.experiment, t.run),
            _ => String::new(),
        };
        let path = path.replace("{model_id}", &t.model).replace(
            "{*path}",
            &format!("{}/{}/artifacts/walk.json", t.experiment, t.run),
        );
        return Some(format!("{path}{query}"));
    }
    if path.starts_with("/api/v1/experiments") || path.starts_with("/experiments") {
        let path = path
            .replace("{id}", &t.experiment)
            .replace("{run}", &t.run)
            .replace("{key}", "m");
        let query = if path.ends_with("/compare") {
            format!("?runs={},{}", t.run, t.run)
        } else {
            String::new()
        };
        return Some(format!("{path}{query}"));
    }
    None
}

/// The body a tracking route gets in this test.
fn tracking_body(method: &str, path: &str, t: &TrackingIds) -> Option<Value> {
    let rest = path
        .strip_prefix("/api/2.0/mlflow")
        .or_else(|| path.strip_prefix("/ajax-api/2.0/mlflow"))?;
    let run = &t.run;
    Some(match (method, rest) {
        ("POST", "/experiments/create") => json!({"name": format!("lab/walk{}", path.len())}),
        ("POST", "/experiments/search") => json!({}),
        ("POST", "/experiments/delete" | "/experiments/restore") => {
            json!({"experiment_id": t.scratch_experiment})
        }
        ("POST", "/experiments/update") => {
            json!({"experiment_id": t.scratch_experiment, "new_name": "lab/scratch2"})
        }
        ("POST", "/experiments/set-experiment-tag") => {
            json!({"experiment_id": t.experiment, "key": "k", "value": "v"})
        }
        ("POST", "/runs/create") => json!({"experiment_id": t.experiment}),
        ("POST", "/runs/update") => json!({"run_id": run, "status": "RUNNING"}),
        ("POST", "/runs/delete" | "/runs/restore") => json!({"run_id": t.scratch_run}),
        ("POST", "/runs/search") => json!({"experiment_ids": [t.experiment]}),
        ("POST", "/runs/log-metric") => {
            json!({"run_id": run, "key": "m", "value": 1.0, "timestamp": 1, "step": 0})
        }
        ("POST", "/runs/log-parameter") => json!({"run_id": run, "key": "p", "value": "1"}),
        ("POST", "/runs/log-batch") => json!({"run_id": run, "tags": [{"key": "t", "value": "1"}]}),
        ("POST", "/runs/set-tag") => json!({"run_id": run, "key": "t2", "value": "1"}),
        ("POST", "/runs/delete-tag") => json!({"run_id": run, "key": "t2"}),
        ("POST", "/runs/log-inputs") => json!({"run_id": run, "datasets": []}),
        ("POST", "/runs/outputs") => json!({"run_id": run, "models": []}),
        ("POST", "/logged-models") => json!({"experiment_id": t.experiment, "name": "m2"}),
        ("POST", "/logged-models/search") => json!({"experiment_ids": [t.experiment]}),
        ("PATCH", _) => json!({"model_id": t.model, "status": "LOGGED_MODEL_READY"}),
        _ => return None,
    })
    .or_else(|| (method == "PUT").then(|| json!({"walked": true})))
}

/// The body a state-changing route gets in this test.
fn body(method: &str, path: &str, ids: &Ids) -> Option<Value> {
    if let Some(b) = tracking_body(method, path, &ids.tracking) {
        return Some(b);
    }
    if method == "PUT" && path.contains("mlflow-artifacts") {
        return Some(json!({"walked": true}));
    }
    if path.ends_with("/promote") {
        return Some(json!({"model": "clf"}));
    }
    (method == "POST").then(|| {
        if path.ends_with("/rollback") {
            json!({"version": 999})
        } else if path == "/api/v1/tokens" {
            json!({"name": "t", "project": "lab", "role": "viewer"})
        } else {
            json!({})
        }
    })
}

#[test]
fn every_route_answers_only_the_roles_its_rule_names() {
    let env = start();
    let up = &env.up;
    let admin = up.token.clone().expect("an admin token");
    // Something for every route to name.
    let prediction = call(up, None, "POST", "/models/clf/predict", Some(&sample()));
    assert_eq!(prediction.status, 200, "{}", prediction.text);
    let started = call(
        up,
        Some(&admin),
        "POST",
        "/api/v1/jobs/train/runs",
        Some(&json!({})),
    );
    assert_eq!(started.status, 202, "{}", started.text);
    let run = up.wait_run("train", 1);
    assert_eq!(run["state"], "succeeded", "{run}");

    let (viewer, _) = token(up, Some("lab"), "viewer", None);
    let (editor, _) = token(up, Some("lab"), "editor", None);
    let (owner, _) = token(up, Some("lab"), "owner", None);
    let (outsider, _) = token(up, Some("other"), "owner", None);
    let table = call(up, Some(&viewer), "GET", "/api/v1/routes", None).json();
    let routes = table["routes"].as_array().unwrap().clone();
    assert!(routes.len() > 60, "{}", routes.len());

    // Every operation of the OpenAPI document has a rule.
    let doc = call(up, None, "GET", "/api/v1/openapi.json", None).json();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_ascii_uppercase();
            let row = routes
                .iter()
                .find(|r| r["path"] == *path && r["method"] == method)
                .unwrap_or_else(|| {
                    panic!("{method} {path} is in the OpenAPI document but has no rule")
                });
            // The document says what the table does: a token where the rule
            // needs a caller, none (or a model's key) where it does not.
            let open = matches!(row["rule"].as_str(), Some("public" | "gateway" | "webhook"));
            let schemes: Vec<String> = op["security"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_object().unwrap().keys().cloned())
                .collect();
            assert_eq!(
                !schemes.iter().any(|k| k == "token"),
                open,
                "{method} {path}: rule {} but security {schemes:?}",
                row["rule"]
            );
        }
    }

    let below = |role: &str| match role {
        "viewer" => outsider.clone(),
        "editor" => viewer.clone(),
        "owner" => editor.clone(),
        _ => owner.clone(),
    };
    let holder = |role: &str| match role {
        "viewer" => viewer.clone(),
        "editor" => editor.clone(),
        "owner" => owner.clone(),
        _ => admin.clone(),
    };
    let tracking = TrackingIds::make(up, &admin);
    let mut checked = 0;
    for r in &routes {
        let (path, rule) = (r["path"].as_str().unwrap(), r["rule"].as_str().unwrap());
        let method = match r["method"].as_str().unwrap() {
            "*" => "GET",
            m => m,
        };
        if matches!(rule, "public" | "gateway" | "webhook") {
            continue;
        }
        // Fresh things to revoke on each pass.
        let key = call(
            up,
            Some(&admin),
            "POST",
            "/api/v1/models/clf/keys",
            Some(&json!({})),
        )
        .json();
        let (_, revocable) = token(up, Some("lab"), "viewer", None);
        let ids = Ids {
            inference: prediction.json()["uuid"].as_str().unwrap().to_string(),
            key: key["info"]["id"].as_str().unwrap().to_string(),
            token: revocable,
            tracking: tracking.clone(),
        };
        let url = fill(path, &ids);
        let body = body(method, path, &ids);
        let anonymous = call(up, None, method, &url, body.as_ref());
        assert_eq!(
            anonymous.status, 401,
            "anonymous {method} {url}: {}",
            anonymous.text
        );
        let role = r["role"]
            .as_str()
            .unwrap_or(if rule == "admin" { "admin" } else { "" });
        if !role.is_empty() {
            let denied = call(up, Some(&below(role)), method, &url, body.as_ref());
            assert_eq!(
                denied.status, 403,
                "below {role}: {method} {url}: {}",
                denied.text
            );
            // Cairn's error body, or MLflow's on its protocol's routes.
            let refusal = denied.json();
            let message = refusal["error"]
                .as_str()
                .or(refusal["message"].as_str())
                .unwrap_or_default()
                .to_string();
            assert!(message.contains(role), "{}", denied.text);
        }
        let allowed = call(
            up,
            Some(&holder(if role.is_empty() { "viewer" } else { role })),
            method,
            &url,
            body.as_ref(),
        );
        assert!(
            ![401, 403].contains(&allowed.status) && allowed.status < 500,
            "{role}: {method} {url}: HTTP {} {}",
            allowed.status,
            allowed.text
        );
        checked += 1;
    }
    assert!(checked > 40, "{checked}");
}

#[test]
fn tokens_roles_actors_and_workloads() {
    let env = start();
    let up = &env.up;
    let admin = up.token.clone().unwrap();
    let prediction = call(up, None, "POST", "/models/clf/predict", Some(&sample()));
    let id = prediction.json()["uuid"].as_str().unwrap().to_string();

    // Key minting needs editor; inference inputs are hidden from viewers.
    let (viewer, _) = token(up, Some("lab"), "viewer", None);
    let (editor, editor_id) = token(up, Some("lab"), "editor", Some("1h"));
    let minted = call(
        up,
        Some(&viewer),
        "POST",
        "/api/v1/models/clf/keys",
        Some(&json!({})),
    );
    assert_eq!(minted.status, 403, "{}", minted.text);
    let minted = call(
        up,
        Some(&editor),
        "POST",
        "/api/v1/models/clf/keys",
        Some(&json!({})),
    );
    assert_eq!(minted.status, 201, "{}", minted.text);
    let hidden = call(
        up,
        Some(&viewer),
        "GET",
        &format!("/api/v1/inferences/{id}"),
        None,
    );
    assert_eq!(hidden.status, 403, "{}", hidden.text);
    assert!(!hidden.text.contains("mean_radius"), "{}", hidden.text);
    let shown = call(
        up,
        Some(&editor),
        "GET",
        &format!("/api/v1/inferences/{id}"),
        None,
    );
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(shown.text.contains("mean_radius"), "{}", shown.text);

    // A viewer of lab sees lab's resources only.
    let (outsider, _) = token(up, Some("other"), "viewer", None);
    let status = call(up, Some(&outsider), "GET", "/api/v1/status", None).json();
    let projects: Vec<&str> = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["project"].as_str())
        .collect();
    assert!(
        projects.iter().all(|p| *p == "other") && !projects.is_empty(),
        "{projects:?}"
    );
    let whoami = call(up, Some(&outsider), "GET", "/api/v1/whoami", None).json();
    assert_eq!(
        whoami["projects"],
        json!([{"project": "other", "role": "viewer"}])
    );

    // Bad tokens: 401 with a reason, never the secret.
    for (bad, reason) in [
        ("nonsense".to_string(), "malformed"),
        (
            format!("cairn_tok_00000000_{}", "0".repeat(64)),
            "not valid",
        ),
    ] {
        let a = call(up, Some(&bad), "GET", "/api/v1/status", None);
        assert_eq!(a.status, 401, "{}", a.text);
        assert!(
            a.text.contains(reason) && !a.text.contains(&bad),
            "{}",
            a.text
        );
    }
    // Revoked at once; listed with its last use.
    let listed = call(up, Some(&admin), "GET", "/api/v1/tokens", None).json();
    let row = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == editor_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["role"], "editor");
    assert!(row["expiresAt"].is_string(), "{row}");
    assert!(!listed.to_string().contains(&editor), "a secret was listed");
    let revoked = call(
        up,
        Some(&admin),
        "DELETE",
        &format!("/api/v1/tokens/{editor_id}"),
        None,
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let a = call(up, Some(&editor), "GET", "/api/v1/status", None);
    assert_eq!(
        (a.status, a.text.contains("revoked")),
        (401, true),
        "{}",
        a.text
    );
    // An owner of lab cannot make tokens for other, nor admin tokens.
    let (owner, _) = token(up, Some("lab"), "owner", None);
    for body in [
        json!({"name": "x", "project": "other", "role": "viewer"}),
        json!({"name": "x", "role": "admin"}),
    ] {
        let a = call(up, Some(&owner), "POST", "/api/v1/tokens", Some(&body));
        assert_eq!(a.status, 403, "{body}: {}", a.text);
    }

    // A run started with a token: the audit log names it; the workload's
    // own token works in its project only, and dies with the run.
    let (starter, starter_id) = token(up, Some("lab"), "editor", None);
    let started = call(
        up,
        Some(&starter),
        "POST",
        "/api/v1/projects/lab/jobs/train/runs",
        Some(&json!({})),
    );
    assert_eq!(started.status, 202, "{}", started.text);
    let run = up.wait_run("train", 1);
    assert_eq!(run["state"], "succeeded", "{run}");
    let log = call(
        up,
        Some(&admin),
        "GET",
        "/api/v1/projects/lab/jobs/train/runs/1/logs",
        None,
    )
    .text;
    assert!(log.contains("token=set"), "{log}");
    assert!(log.contains("own=200"), "{log}");
    assert!(log.contains("other=403"), "{log}");
    let workload_token = std::fs::read_to_string(env.token_file()).expect("the run left its token");
    assert!(workload_token.starts_with("cairn_tok_"), "{workload_token}");
    let after = call(
        up,
        Some(workload_token.trim()),
        "GET",
        "/api/v1/status",
        None,
    );
    assert_eq!(
        after.status, 401,
        "a workload's token outlived it: {}",
        after.text
    );
    let audit = call(up, Some(&admin), "GET", "/api/v1/audit", None).json();
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "run" && e["actor"] == format!("token:{starter_id}")),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "create" && e["actor"].as_str().unwrap().starts_with("git:")),
        "{audit}"
    );
    // The workload's token never appears in the log of the run or the server.
    assert!(!log.contains(workload_token.trim()));
    assert!(!up.logs().contains(workload_token.trim()));
    assert!(
        !up.logs().contains(&admin),
        "the admin token is in the server's log"
    );
}

#[test]
fn the_local_command_line_finds_the_admin_token() {
    let env = start();
    let up = &env.up;
    let out = std::process::Command::new(cairn_test_support::cairn_binary())
        .args([
            "whoami",
            "--server",
            &up.url("").replace("127.0.0.1", "localhost"),
        ])
        .env_remove("CAIRN_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("token:tok_") && stdout.contains("(operator)"),
        "{stdout}"
    );
    // A wrong token is refused, with the hint.
    let out = std::process::Command::new(cairn_test_support::cairn_binary())
        .args([
            "status",
            "--server",
            &up.url(""),
            "--token",
            "cairn_tok_00000000_x",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("HTTP 401"),
        "{stderr}"
    );
    // Tokens from the command line.
    let out = std::process::Command::new(cairn_test_support::cairn_binary())
        .args([
            "tokens",
            "create",
            "--project",
            "lab",
            "--role",
            "viewer",
            "--expires",
            "90d",
            "--server",
            &up.url(""),
        ])
        .output()
        .unwrap();
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        secret.starts_with("cairn_tok_"),
        "{secret} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who = call(up, Some(&secret), "GET", "/api/v1/whoami", None).json();
    assert_eq!(
        who["projects"],
        json!([{"project": "lab", "role": "viewer"}])
    );
}

#[test]
fn the_gateway_listener_serves_predictions_and_applications_only() {
    let gateway_port = cairn_test_support::up::free_port();
    let listen = format!("127.0.0.1:{gateway_port}");
    let env = start_with(&["--gateway-listen", &listen]);
    let up = &env.up;
    let admin = up.token.clone().unwrap();
    let gateway = |path: &str| format!("http://{listen}{path}");
    let agent = Up::agent_with(Some(&admin), Duration::from_secs(30));
    let status = |url: String| {
        agent
            .get(&url)
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    // Predictions answer there, with their inference id.
    let mut r = agent
        .post(&gateway("/models/clf/predict"))
        .send_json(sample())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(v["uuid"].is_string(), "{v}");
    assert_eq!(status(gateway("/v2/health/ready")), 200);
    assert_eq!(status(gateway("/healthz")), 200);
    up.wait_for(Duration::from_secs(60), "the application", || {
        (status(gateway("/apps/web/")) == 200).then_some(())
    });
    // The API, even with the operator's token, is not there.
    for path in [
        "/api/v1/status",
        "/api/v1/tokens",
        "/api/v1/models/clf/keys",
        "/metrics",
        "/api/v1/openapi.json",
        "/",
    ] {
        assert_eq!(status(gateway(path)), 404, "{path}");
        assert_eq!(status(up.url(path)), 200, "{path} on the main listener");
    }
}

#[test]
fn auth_none_is_for_throwaway_use_and_says_so() {
    let repo = TestRepo::new();
    repo.write("specs/project.yaml", cairn_test_support::PROJECT);
    let commit = repo.commit("a project");
    let data = tempfile::tempdir().unwrap();
    let up = Up::start(
        repo.path(),
        &data.path().join("state"),
        &["--auth", "none"],
        &[],
    );
    up.wait_synced(&commit);
    assert!(
        up.token.is_none(),
        "an admin token was made with --auth none"
    );
    let who = call(&up, None, "GET", "/api/v1/whoami", None);
    assert_eq!(who.status, 200, "{}", who.text);
    assert_eq!(
        (
            who.json()["subject"].as_str(),
            who.json()["admin"].as_bool()
        ),
        (Some("anonymous"), Some(true))
    );
    assert!(up.logs().contains("authentication is off"), "{}", up.logs());
}
